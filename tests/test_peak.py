"""utils/peak.py: FLOPs per token counted on one row, the RNG and the gradients left alone."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from lstm.model import LSTM, LSTMConfig
from mlp.model import MLPConfig, NPLM
from transformer.model import TransformerConfig, TransformerLM
from utils.peak import matmul_peak, peak_line, training_flops_per_token

pytestmark = pytest.mark.usefixtures("one_thread")


def per_token_on_a_batch(model, x, y, recurrent=False):
    with FlopCounterMode(display=False) as counter:
        loss = model(x, None, y)[1] if recurrent else model(x, y)[1]
        loss.backward()
    model.zero_grad(set_to_none=True)
    return counter.get_total_flops() / y.numel()


@pytest.mark.parametrize("kind", ["mlp", "lstm", "transformer"])
def test_flops_per_token_are_those_of_a_whole_batch_and_leave_rng_and_grads_alone(kind):
    torch.manual_seed(0)
    if kind == "mlp":
        model = NPLM(MLPConfig(vocab_size=11, context=3, n_embd=4, n_hidden=8))
        x, y = torch.randint(11, (6, 3)), torch.randint(11, (6,))
    elif kind == "lstm":
        model = LSTM(LSTMConfig(vocab_size=11, n_hidden=8, n_layers=2))
        x, y = torch.randint(11, (3, 64)), torch.randint(11, (3, 64))
    else:
        model = TransformerLM(TransformerConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=8, d_ff=16))
        x, y = torch.randint(11, (3, 8)), torch.randint(11, (3, 8))
    expected = per_token_on_a_batch(model, x, y, recurrent=kind == "lstm")
    marker = torch.ones(1)
    for p in model.parameters():
        p.grad = marker.expand_as(p).clone()
    state = torch.get_rng_state()
    assert training_flops_per_token(model) == pytest.approx(expected, rel=1e-6)
    assert torch.equal(torch.get_rng_state(), state)
    assert all(torch.equal(p.grad, torch.ones_like(p)) for p in model.parameters())


def test_the_peak_line_names_the_fraction_and_the_peak():
    model = TransformerLM(TransformerConfig(vocab_size=11, block_size=8, n_layers=1, n_heads=2, d_model=8, d_ff=16))
    line = peak_line(model, tokens_per_s=1000.0)
    assert line.startswith("arithmetic: ") and "% of this machine's fp32 matmul peak" in line
    assert matmul_peak(n=64, repeats=2) > 0
