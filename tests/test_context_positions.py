"""experiments/context_positions.py: the probe's logic on models whose answer is known, and a tiny run."""
import math

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, load_experiment, run_script
from test_context import CopyEightBack, PreviousTokenOnly

pytestmark = pytest.mark.usefixtures("one_thread")


class PreviousTokenAttention(torch.nn.Module):
    """A bigram table behind the attention interface (no init_state), with a block of 8."""

    class config:
        block_size = 8

    def __init__(self, vocab):
        super().__init__()
        self.table = PreviousTokenOnly(vocab).table

    def forward(self, idx, targets=None):
        return self.table[idx], None


def test_a_model_that_sees_only_the_previous_token_is_flat_over_the_block_and_a_copier_drops_where_it_can_see():
    c = load_experiment("context_positions")
    data = torch.arange(9).repeat(577)           # 81 blocks of 64 (+1): 64 = 1 mod 9, so they start at every residue
    losses = c.position_losses(PreviousTokenOnly(9), data, 64)
    assert losses.shape == (9 * 9, 64)
    x, y = data[64 * 5 + 10], data[64 * 5 + 11]                   # block 5, position 10, by hand
    by_hand = torch.nn.functional.cross_entropy(PreviousTokenOnly(9).table[x][None], y[None])
    assert losses[5, 10] == pytest.approx(by_hand.item(), rel=1e-6)
    assert np.allclose(losses.mean(0), losses.mean(0)[0], atol=1e-9)   # every position alike
    periodic = torch.randint(0, 9, (8,), generator=torch.Generator().manual_seed(2)).repeat(100)
    copying = c.position_losses(CopyEightBack(9), periodic, 32).mean(0)
    assert np.allclose(copying[:7], math.log(9))                  # fewer than 8 characters read: no idea
    assert (copying[7:] < 1e-3).all()                             # 8 read (t = 7): the character 8 back is known


@pytest.mark.parametrize("folder", ["lstm", "gru"])
def test_the_state_is_reset_at_every_block(folder):
    c = load_experiment("context_positions")
    torch.manual_seed(0)
    if folder == "lstm":
        from lstm.model import LSTM, LSTMConfig
        model = LSTM(LSTMConfig(vocab_size=7, n_hidden=8, n_layers=2))
    else:
        from gru.model import GRUConfig, GRULanguageModel
        model = GRULanguageModel(GRUConfig(vocab_size=7, n_hidden=8, n_layers=2))
    data = torch.randint(0, 7, (5 * 12 + 3,), generator=torch.Generator().manual_seed(1))
    losses = c.position_losses(model, data, 12, batch=2)         # batches of 2 blocks: the batching must not matter
    assert losses.shape == (5, 12)
    state, carried = None, []
    with torch.no_grad():
        for i in range(5):
            x, y = data[12 * i:12 * i + 12][None], data[12 * i + 1:12 * i + 13]
            alone = torch.nn.functional.cross_entropy(model(x)[0][0], y, reduction="none")
            assert np.allclose(losses[i], alone.numpy(), atol=1e-6)        # each block as if alone
            logits, _, state = model(x, state)
            carried.append(torch.nn.functional.cross_entropy(logits[0], y, reduction="none").numpy())
    assert not np.allclose(losses[1:, 0], np.array(carried)[1:, 0], atol=1e-4)   # a carried state would show


@pytest.mark.parametrize("pos", ["sinusoidal", "rope"])
def test_the_longer_block_gives_the_trained_logits_within_the_block_and_reads_past_it(pos):
    c = load_experiment("context_positions")
    from transformer.model import TransformerConfig, TransformerLM
    torch.manual_seed(0)
    model = TransformerLM(TransformerConfig(vocab_size=11, block_size=8, n_layers=2, n_heads=2, d_model=16,
                                            d_ff=32, pos=pos)).eval()
    wide = c.longer(model, 32)
    x = torch.randint(0, 11, (3, 32))
    with torch.no_grad():
        assert torch.allclose(wide(x[:, :8])[0], model(x[:, :8])[0], atol=1e-6)
        with pytest.raises(ValueError):
            model(x)                                              # what the longer block is for
        long = wide(x)[0]
        assert torch.allclose(long[:, :8], model(x[:, :8])[0], atol=1e-6)   # still causal
    learned = TransformerLM(TransformerConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=16,
                                              d_ff=32, pos="learned"))
    assert c.longer(learned, 32) is None


def test_the_protocol_scores_the_same_targets_as_the_pieces():
    c = load_experiment("context_positions")
    data = torch.randint(0, 9, (16 * 5 + 7,), generator=torch.Generator().manual_seed(3))
    model = PreviousTokenAttention(9)
    sliding = c.sliding_losses(model, data, 16)
    assert sliding.shape == (5, 16)
    assert np.allclose(sliding, c.position_losses(model, data, 16, read=None), atol=1e-6)   # a bigram: context moot
    assert c.position_losses(model, data, 16, read=8).shape == (5, 8)


def test_buckets_double_past_the_block():
    c = load_experiment("context_positions")
    assert c.buckets(64, 512) == [(0, 63), (64, 127), (128, 255), (256, 511)]
    assert c.buckets(64, 100) == [(0, 63), (64, 99)]
    losses = np.arange(12.0).reshape(2, 6)
    assert c.bucket_means(losses, [(0, 1), (2, 5), (6, 11)]) == [3.5, 6.5, None]
    assert c.log_bins(8) == [(0, 0), (1, 1), (2, 3), (4, 7)]
    assert c.log_bins(10)[-2:] == [(4, 7), (8, 9)]
    rows = np.array([[0.0, 2.0, 1.0], [2.0, 4.0, 1.0]])            # bucket (0, 1): row means 1 and 3
    assert c.standard_error(rows, [(0, 1), (2, 2), (3, 9)]) == pytest.approx(np.sqrt(2) / np.sqrt(2))


def test_context_positions_script_at_a_tiny_size_writes_its_report(tiny_corpus, tmp_path, scripts_on_one_thread):
    out = tmp_path / "out"
    args = ["--data", tiny_corpus, "--minutes", "0.02", "--length", "128", "--out", out, "--work", tmp_path / "w",
            "--pos-work", tmp_path / "p"]
    assert_one_line_error(run_script("experiments", "context_positions.py", *args[:-6], "--length", "20"))
    r = run_script("experiments", "context_positions.py", *args, "--models", "transformer",
                   "--positions", "rope,learned", timeout=300)
    assert r.returncode == 0, r.stderr
    report = (out / "context_positions.md").read_text()
    assert "| transformer (rope) |" in report and "| transformer (learned) |" in report
    assert "| rope | read at once |" in report and "| learned | protocol |" in report
    assert "cannot extend beyond its table (64 positions)" in report and "| 64–127 |" in report
    assert report.count("cd transformer && ") == 2 and (out / "context_positions.png").stat().st_size > 0
