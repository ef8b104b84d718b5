"""experiments/context.py: the probe's logic on models whose answer is known, and a tiny run."""
import numpy as np
import pytest
import torch

from conftest import load_experiment, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


class PreviousTokenOnly(torch.nn.Module):
    """A recurrent-interface model whose prediction depends on the last input token alone."""

    def __init__(self, vocab):
        super().__init__()
        self.table = torch.nn.Parameter(torch.randn(vocab, vocab, generator=torch.Generator().manual_seed(0)))

    def init_state(self, batch_size):
        return None

    def forward(self, idx, state=None, targets=None):
        return self.table[idx], None, None


class CopyEightBack(PreviousTokenOnly):
    """Predicts the token 8 positions back, once it has read that far (else no preference)."""

    def forward(self, idx, state=None, targets=None):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.table.shape[0])
        if T >= 8:
            logits[:, 7:] = 10 * torch.nn.functional.one_hot(idx[:, :T - 7], self.table.shape[0]).float()
        return logits, None, None


def test_a_model_that_sees_only_the_previous_token_gains_nothing_from_more_context():
    c = load_experiment("context")
    data = torch.randint(0, 9, (2000,), generator=torch.Generator().manual_seed(1))
    positions = torch.arange(600, 700)
    curve = c.context_curve(PreviousTokenOnly(9), data, positions, [1, 2, 4, 64, 512], pad_id=0)
    assert set(curve) == {1, 2, 4, 64, 512}
    assert np.allclose(list(curve.values()), curve[1], atol=1e-6)
    assert c.effective_context(curve) == 1
    shuffled = c.shuffle_curve(PreviousTokenOnly(9), data, positions, [5, 100], pad_id=0, seed=0)
    assert np.allclose(list(shuffled.values()), shuffled[None], atol=1e-6)   # order never matters to it
    periodic = torch.randint(0, 9, (8,), generator=torch.Generator().manual_seed(2)).repeat(250)
    copying = c.context_curve(CopyEightBack(9), periodic, positions, [1, 2, 4, 8, 16, 64], pad_id=0)
    assert c.effective_context(copying) == 8                                  # it needs 8 characters, no more
    assert copying[4] - copying[64] > 1


def test_windows_are_cut_to_n_and_padded_as_at_the_start_of_a_text():
    c = load_experiment("context")
    from mlp.model import MLPConfig, NPLM
    torch.manual_seed(0)
    model = NPLM(MLPConfig(vocab_size=9, context=5, n_embd=3, n_hidden=4))
    data = torch.randint(1, 9, (400,))
    positions = torch.arange(100, 140)
    curve = c.context_curve(model, data, positions, [1, 2, 4, 8], pad_id=0)
    assert set(curve) == {1, 2, 4, 5}                    # its window of 5, and nothing past it
    padded = torch.cat([torch.zeros(40, 3, dtype=torch.long), c.contexts_of(data, positions, 2)], 1)
    by_hand = torch.nn.functional.cross_entropy(model(padded)[0], data[positions], reduction="none").mean()
    assert curve[2] == pytest.approx(by_hand.item(), rel=1e-6)


def test_context_script_at_a_tiny_size_writes_its_report(tiny_corpus, tmp_path, scripts_on_one_thread):
    out = tmp_path / "out"
    r = run_script("experiments", "context.py", "--data", tiny_corpus, "--models", "mlp,rnn-sigmoid,transformer",
                   "--minutes", "0.02", "--n-max", "16", "--targets", "20", "--out", out, "--work", tmp_path / "w",
                   timeout=300)
    assert r.returncode == 0, r.stderr
    report = (out / "context.md").read_text()
    assert "| mlp |" in report and "| rnn-sigmoid |" in report and "| transformer |" in report
    assert "effective context" in report and (out / "context.png").stat().st_size > 0
