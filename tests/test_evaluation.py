"""utils/evaluation.py: one protocol for every language model, every character scored once;
utils/training.py's Budget (--minutes)."""
import time

import numpy as np
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from rnn.model import ElmanRNN, RNNConfig
from transformer.model import TransformerConfig, TransformerLM
from utils.evaluation import evaluate_lm, fast_estimate, family
from utils.training import Budget

pytestmark = pytest.mark.usefixtures("one_thread")
V = 7


class Bigram(nn.Module):
    """Predicts from the previous token only, in any of the three interfaces: logits = table[x_t]."""

    def __init__(self, kind, table, block_size=16, context=3):
        super().__init__()
        self.kind, self.table = kind, table
        self.config = (TransformerConfig(block_size=block_size) if kind == "attention"
                       else type("C", (), {"context": context})())
        if kind == "recurrent":
            self.init_state = lambda batch_size: torch.zeros(batch_size, 1)

    def forward(self, idx, *rest):
        if self.kind == "recurrent":                     # (idx, state, targets) -> (logits, loss, state)
            state = rest[0] if rest and rest[0] is not None else torch.zeros(idx.shape[0], 1)
            targets = rest[1] if len(rest) > 1 else None
            logits = self.table[idx]
            loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
            return logits, loss, state + idx.shape[1]
        if self.kind == "attention":                     # (idx) -> (B, T, V) logits
            return self.table[idx], None
        return self.table[idx[:, -1]], None              # a window (B, n-1) -> (B, V)


def hand_mean(table, data):
    """The mean of -log p(data[t] | data[t-1]) over t = 1 .. len-1, one target at a time."""
    logp = F.log_softmax(table, -1)
    return float(np.mean([-logp[data[t - 1], data[t]].item() for t in range(1, len(data))]))


@pytest.mark.parametrize("kind", ["recurrent", "attention", "window"])
@pytest.mark.parametrize("n", [2, 37, 1000, 3001])
def test_protocol_equals_the_hand_computed_mean_over_every_target(kind, n):
    torch.manual_seed(n)
    table, data = torch.randn(V, V), torch.randint(V, (n,))
    result = evaluate_lm(Bigram(kind, table), data, warmup=100)
    assert result.count == n - 1 == len(result.context)
    assert result.loss == pytest.approx(hand_mean(table, data), rel=1e-9)


def test_attention_windows_score_each_target_once_with_half_a_block_of_context():
    torch.manual_seed(0)
    block, n = 16, 203
    data = torch.randint(V, (n,))
    result = evaluate_lm(Bigram("attention", torch.randn(V, V), block_size=block), data)
    assert result.count == n - 1
    assert (result.context[:block] == np.arange(1, block + 1)).all()         # the first window: all of it
    assert result.context[block:].min() >= block // 2                        # later: at least half a block
    assert result.context.max() <= block


def test_recurrent_streams_give_every_target_its_warm_up_of_history():
    torch.manual_seed(0)
    n, warmup = 5000, 300
    result = evaluate_lm(Bigram("recurrent", torch.randn(V, V)), torch.randint(V, (n,)), streams=8, warmup=warmup)
    positions = np.arange(1, n)
    assert result.count == n - 1
    assert (result.context >= np.minimum(positions, warmup)).all()
    assert (result.context <= positions).all()


def test_one_stream_is_the_state_carried_over_the_whole_split():
    """A real recurrent model: streams=1 equals one forward pass over the whole text."""
    torch.manual_seed(0)
    model = ElmanRNN(RNNConfig(vocab_size=V, n_hidden=16)).eval()
    data = torch.randint(V, (700,))
    with torch.no_grad():
        logits, _, _ = model(data[None, :-1])
    whole = F.cross_entropy(logits[0], data[1:]).item()
    assert evaluate_lm(model, data, streams=1).loss == pytest.approx(whole, rel=1e-6)


def test_more_streams_with_a_long_warm_up_change_a_real_model_little():
    """A trained-looking recurrent model forgets: 4 streams with a warm-up of 200 characters score
    within 1e-3 of one stream (the random RNN's state forgets in far fewer steps)."""
    torch.manual_seed(0)
    model = ElmanRNN(RNNConfig(vocab_size=V, n_hidden=16)).eval()
    data = torch.randint(V, (2000,))
    one = evaluate_lm(model, data, streams=1).loss
    assert evaluate_lm(model, data, streams=4, warmup=200).loss == pytest.approx(one, abs=1e-3)


def test_attention_protocol_matches_a_transformer_scored_window_by_window():
    """A real TransformerLM: the protocol's mean equals windows scored one at a time by hand."""
    torch.manual_seed(0)
    block = 8
    model = TransformerLM(TransformerConfig(vocab_size=V, block_size=block, n_layers=1, n_heads=2,
                                            d_model=16, d_ff=32)).eval()
    data = torch.randint(V, (60,))
    losses = {}
    with torch.no_grad():
        for start in range(0, 60, block // 2):
            x, y = data[start:start + block], data[start + 1:start + block + 1]
            x = x[:len(y)]
            if len(y) == 0:
                break
            nll = F.cross_entropy(model(x[None])[0][0], y, reduction="none")
            for j in range(len(y)):
                losses.setdefault(start + j + 1, nll[j].item())      # the first window to score it
            if start + block >= 59:
                break
    assert sorted(losses) == list(range(1, 60))
    assert evaluate_lm(model, data).loss == pytest.approx(np.mean(list(losses.values())), rel=1e-6)


def test_family_follows_the_interface():
    table = torch.randn(V, V)
    assert [family(Bigram(k, table)) for k in ("recurrent", "attention", "window")] == \
        ["recurrent", "attention", "window"]


def test_fast_estimate_is_kept_for_recurrent_models():
    torch.manual_seed(0)
    table, data = torch.randn(V, V), torch.randint(V, (301,))
    # 3 streams of 100 steps cover the 300 targets: the estimate is then the hand mean too
    assert fast_estimate(Bigram("recurrent", table), data, batch_size=3, bptt=40) == \
        pytest.approx(hand_mean(table, data), rel=1e-6)


# ---------------------------------------------------------------- Budget

def busy(seconds):
    end = time.process_time() + seconds
    while time.process_time() < end:
        pass


def test_budget_in_steps_is_epochs():
    b = Budget(epochs=5, eval_every=2)
    assert [b.done(s) for s in range(7)] == [False] * 5 + [True] * 2
    assert [b.eval_due(s) for s in range(1, 6)] == [False, True, False, True, True]
    assert b.total(3) == 5


def test_budget_in_minutes_counts_training_cpu_time_only():
    b = Budget(epochs=1000, minutes=0.3 / 60)            # 0.3 CPU-seconds
    step = 0
    while not b.done(step):
        busy(0.01)
        step += 1
        with b.paused():                                   # validation: not counted
            busy(0.02)
    assert 0.3 <= b.used < 0.4
    assert 20 <= step <= 40                                # ~30 steps of 0.01 s, not ~10 of 0.03 s


def test_budget_in_minutes_projects_the_run_from_its_pace():
    b = Budget(epochs=1000, minutes=0.3 / 60)
    assert b.total(0) == 1000                              # nothing measured yet: --epochs
    for _ in range(10):
        busy(0.01)
    assert b.total(10) == pytest.approx(30, abs=4)         # 10 steps in 0.1 of 0.3 s


def test_budget_flags_that_do_not_go_together_are_a_user_error():
    from argparse import Namespace
    from utils.errors import UserError
    base = dict(epochs=10, minutes=None, eval_every=5, eval_every_minutes=None, resume=False)
    with pytest.raises(UserError, match="goes with --minutes"):
        Budget.from_args(Namespace(**{**base, "eval_every_minutes": 1.0}))
    with pytest.raises(UserError, match="resume with --epochs"):
        Budget.from_args(Namespace(**{**base, "minutes": 1.0, "resume": True}))
    assert Budget.from_args(Namespace(**base)).epochs == 10
