"""transformer/layers.py's written-out backward passes: gradcheck in float64, and the same numbers
as the formulas left to autograd (backward="autograd"), piece by piece and for the whole model."""
import pytest
import torch
import torch.nn.functional as F

from transformer.layers import (AttentionFunction, LayerNorm, LayerNormFunction, additive, attention, rotary,
                                split_heads)
from transformer.model import TransformerConfig, TransformerLM, TransformerTranslator, TranslatorConfig

pytestmark = pytest.mark.usefixtures("one_thread")


def double(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed)).requires_grad_()


def test_layer_norm_backward_passes_gradcheck():
    x, gamma, beta = double(3, 4, 10), double(10, seed=1), double(10, seed=2)
    assert torch.autograd.gradcheck(lambda x, g, b: LayerNormFunction.apply(x, g, b, 1e-5), (x, gamma, beta))


def test_layer_norm_written_out_equals_autograd_and_f_layer_norm():
    x = (torch.randn(5, 7, 12) * 3 + 1).requires_grad_()
    w = torch.randn(5, 7, 12)
    grads = []
    for backward in ("manual", "autograd"):
        norm = LayerNorm(12, backward=backward)
        with torch.no_grad():
            norm.gamma.normal_(generator=torch.Generator().manual_seed(3))
            norm.beta.normal_(generator=torch.Generator().manual_seed(4))
        y = norm(x)
        assert torch.allclose(y, F.layer_norm(x, (12,), norm.gamma, norm.beta), atol=1e-5)
        grads.append(torch.autograd.grad((y * w).sum(), (x, norm.gamma, norm.beta)))
    for manual, auto in zip(*grads):
        assert torch.allclose(manual, auto, atol=1e-5)


@pytest.mark.parametrize("mask_kind", ["none", "causal", "padding"])
def test_attention_backward_passes_gradcheck(mask_kind):
    q, k, v = double(2, 3, 5, 4), double(2, 3, 6, 4, seed=1), double(2, 3, 6, 4, seed=2)
    mask = {"none": None,
            "causal": torch.ones(5, 6, dtype=torch.bool).tril(1),
            "padding": torch.arange(6) < torch.tensor([[[[6]]], [[[3]]]])}[mask_kind]   # (2, 1, 1, 6)
    mask = additive(mask, torch.float64)
    assert torch.autograd.gradcheck(lambda q, k, v: AttentionFunction.apply(q, k, v, mask)[0], (q, k, v))


def test_attention_written_out_equals_autograd_and_sdpa():
    q, k, v = (torch.randn(2, 3, 7, 8, requires_grad=True) for _ in range(3))
    mask = torch.ones(7, 7, dtype=torch.bool).tril()
    g = torch.randn(2, 3, 7, 8)
    results = []
    for backward in ("manual", "autograd"):
        out, alpha = attention(q, k, v, mask, backward)
        assert torch.allclose(out, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5)
        results.append((out, alpha, *torch.autograd.grad((out * g).sum(), (q, k, v))))
    for manual, auto in zip(*results):
        assert torch.allclose(manual, auto, atol=1e-5)


@pytest.mark.parametrize("rope", [True, False])
def test_split_into_heads_passes_gradcheck_and_equals_autograd(rope):
    y = double(2, 5, 3 * 8)
    rotation = tuple(t.double() for t in rotary(torch.arange(3, 8), 4)) if rope else None
    assert torch.autograd.gradcheck(lambda y: split_heads(y, 2, 3, rotation, 2), (y,))
    g = [double(2, 2, 5, 4, seed=s) for s in (1, 2, 3)]
    manual = split_heads(y, 2, 3, rotation, 2)
    auto = split_heads(y, 2, 3, rotation, 2, backward="autograd")
    for m, a in zip(manual, auto):
        assert m.is_contiguous() and torch.allclose(m, a)
    dm, = torch.autograd.grad(sum((m * w).sum() for m, w in zip(manual, g)), y)
    da, = torch.autograd.grad(sum((a * w).sum() for a, w in zip(auto, g)), y)
    assert torch.allclose(dm, da)


@pytest.mark.parametrize("pos", ["rope", "sinusoidal", "learned"])
@pytest.mark.parametrize("norm", ["pre", "post"])
def test_the_whole_language_model_has_the_same_loss_and_gradients_either_way(pos, norm):
    idx, targets = torch.randint(0, 11, (3, 9)), torch.randint(0, 11, (3, 9))
    runs = []
    for backward in ("manual", "autograd"):
        torch.manual_seed(0)
        model = TransformerLM(TransformerConfig(vocab_size=11, block_size=9, n_layers=2, n_heads=2, d_model=8,
                                                d_ff=16, norm=norm, pos=pos, backward=backward)).double()
        _, loss = model(idx, targets)
        loss.backward()
        runs.append((loss, [p.grad for p in model.parameters()]))
    (loss_m, grads_m), (loss_a, grads_a) = runs
    assert torch.allclose(loss_m, loss_a)
    for gm, ga in zip(grads_m, grads_a):
        assert torch.allclose(gm, ga, atol=1e-10)


def test_the_translator_has_the_same_gradients_either_way():
    src, src_len, tgt = torch.randint(4, 13, (2, 6)), torch.tensor([6, 4]), torch.randint(4, 11, (2, 5))
    runs = []
    for backward in ("manual", "autograd"):
        torch.manual_seed(0)
        model = TransformerTranslator(TranslatorConfig(src_vocab=13, tgt_vocab=11, n_layers=2, n_heads=2,
                                                       d_model=8, d_ff=16, dropout=0.0, pos="rope",
                                                       backward=backward)).double()
        logits = model(src, src_len, tgt)
        logits.square().sum().backward()
        runs.append((logits, [p.grad for p in model.parameters()]))
    assert torch.allclose(runs[0][0], runs[1][0])
    for gm, ga in zip(runs[0][1], runs[1][1]):
        assert torch.allclose(gm, ga, atol=1e-10)


def test_an_unknown_backward_is_refused():
    with pytest.raises(ValueError, match="backward"):
        TransformerLM(TransformerConfig(backward="fused"))
