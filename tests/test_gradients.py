"""experiments/gradients.py: the probe's logic on models whose answer is known, and a tiny run."""
import numpy as np
import pytest
import torch

from conftest import load_experiment, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


class LinearRNN(torch.nn.Module):
    """s_t = s_{t-1} (a I) + U[x_t]: the gradient k steps back is exactly a^k times the last one."""

    def __init__(self, vocab, hidden, a):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.U = torch.nn.Parameter(torch.randn(vocab, hidden, generator=g, dtype=torch.float64))
        self.W = torch.nn.Parameter(a * torch.eye(hidden, dtype=torch.float64))
        self.V = torch.nn.Parameter(torch.randn(hidden, vocab, generator=g, dtype=torch.float64))
        self.hidden = hidden

    def init_state(self, batch_size):
        return torch.zeros(batch_size, self.hidden, dtype=torch.float64)

    def forward(self, idx, state=None, targets=None):
        s = self.init_state(idx.shape[0]) if state is None else state
        states = []
        for t in range(idx.shape[1]):
            s = s @ self.W + self.U[idx[:, t]]
            states.append(s)
        return torch.stack(states, 1) @ self.V, None, s


@pytest.mark.parametrize("a", [0.5, 0.9, 1.1])
def test_on_a_linear_rnn_with_w_a_times_identity_the_ratio_at_k_is_a_to_the_k(a):
    g = load_experiment("gradients")
    data = torch.randint(0, 7, (400,), generator=torch.Generator().manual_seed(1))
    ks = g.ks_up_to(32)
    norms = g.recurrent_norms(LinearRNN(7, 5, a), data, [100, 200, 300], ks, warmup=5)["h"]
    for k, n in zip(ks, norms):
        assert n / norms[0] == pytest.approx(a ** (k - 1), rel=1e-9)      # relative to k = 1


def test_reach_is_the_first_k_below_the_floor():
    g = load_experiment("gradients")
    assert g.reach([1, 0.1, 1e-4, 1e-5], [1, 2, 4, 8]) == 4
    assert g.reach([1, 0.5], [1, 2]) is None


def test_lstm_state_has_h_and_c_and_the_transformer_probe_sees_every_position():
    g = load_experiment("gradients")
    from lstm.model import LSTM, LSTMConfig
    from transformer.model import TransformerConfig, TransformerLM
    torch.manual_seed(0)
    data = torch.randint(0, 11, (300,))
    lstm = g.with_autograd(LSTM(LSTMConfig(vocab_size=11, n_hidden=8, n_layers=2)))
    norms = g.recurrent_norms(lstm, data, [100, 150], [1, 2, 4], warmup=3)
    assert set(norms) == {"h", "c"} and all(np.all(v > 0) for v in norms.values())
    model = TransformerLM(TransformerConfig(vocab_size=11, block_size=16, n_layers=1, n_heads=2, d_model=8, d_ff=16))
    x = g.transformer_norms(model, data, [50, 60], [0, 1, 4, 15])
    assert x.shape == (4,) and np.all(x > 0)


def test_gradients_script_at_a_tiny_size_writes_its_report(tiny_corpus, tmp_path, scripts_on_one_thread):
    out = tmp_path / "out"
    r = run_script("experiments", "gradients.py", "--data", tiny_corpus, "--models", "rnn-tanh,transformer",
                   "--minutes", "0.02", "--k-max", "8", "--examples", "4", "--batch", "2", "--warmup", "4",
                   "--out", out, "--work", tmp_path / "work", timeout=300)
    assert r.returncode == 0, r.stderr
    report = (out / "gradients.md").read_text()
    assert "| rnn-tanh | h |" in report and "| transformer | x |" in report
    assert "sigma_max" in report or "σ_max(W)" in report
    assert (out / "gradients.png").stat().st_size > 0
