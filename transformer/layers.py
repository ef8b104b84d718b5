"""The Transformer's sub-layers (Vaswani et al. 2017, arXiv:1706.03762v7), with written-out backward passes.

§3.1 layer normalisation, §3.2 scaled dot-product and multi-head attention, §3.3 the position-wise
feed-forward network, §3.5 sinusoidal positions, RoPE (Su et al. 2021, arXiv:2104.09864), and the
layer that stacks them (Block). transformer/model.py builds the language model and the translator
from these.

Each piece that autograd would record as many small operations has its backward pass written out
as a torch.autograd.Function, the way rnn/, lstm/ and gru/ write out BPTT: layer normalisation
(LayerNormFunction), attention with the softmax's backward from the saved probabilities
(AttentionFunction), and the split into heads with RoPE's rotation (HeadsFunction). With
backward="autograd" the same numbers come from the plain formulas, left to autograd
(tests/test_transformer.py checks both against each other, and the written-out ones with gradcheck
in float64). experiments/speed.py times both against torch.nn.
"""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.init import xavier_uniform_

BACKWARDS = ("manual", "autograd")


# ---------------------------------------------------------------- layer normalisation (§3.1)

class LayerNormFunction(torch.autograd.Function):
    """LN(x) = gamma x_hat + beta, x_hat = (x - mu) / sqrt(sigma^2 + eps), over the last dimension.
    Backward, with g = dL/dy and g_hat = g gamma = dL/dx_hat (n features):
        dL/dx = (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)) / sqrt(sigma^2 + eps)
        dL/dgamma = sum g x_hat,  dL/dbeta = sum g   (over every position)"""

    @staticmethod
    def forward(ctx, x, gamma, beta, eps):
        n = x.shape[-1]
        x_hat = x - x.mean(-1, keepdim=True)                            # x - mu  (..., n)
        # sigma^2 = |x - mu|^2 / n, one pass (on a CPU torch.var_mean over the last dimension is ~10x slower)
        rstd = torch.rsqrt(torch.linalg.vector_norm(x_hat, dim=-1, keepdim=True).square_().add_(n * eps)).mul_(n ** 0.5)
        x_hat.mul_(rstd)                                                # (..., n)
        ctx.save_for_backward(x_hat, rstd, gamma)
        return torch.addcmul(beta, x_hat, gamma)                       # (..., n)

    @staticmethod
    def backward(ctx, g):
        x_hat, rstd, gamma = ctx.saved_tensors
        n = g.shape[-1]
        g2, x2, r = g.reshape(-1, n), x_hat.reshape(-1, n), rstd.reshape(-1, 1)   # N positions: (N, n), (N, 1)
        gx = g2 * x2                                                    # g x_hat  (N, n)
        # the two means over the features, as matrix-vector products with gamma:
        # mean(g_hat) = g gamma / n, and -mean(g_hat x_hat) = -(g x_hat) gamma / n      (N, 1)
        mean_g = (g2 @ gamma).unsqueeze(1).div_(n)
        minus_mean_gx = (gx @ gamma).unsqueeze(1).div_(-n)
        dgamma = gx.sum(0) if ctx.needs_input_grad[1] else None
        dbeta = g2.sum(0) if ctx.needs_input_grad[2] else None
        # dL/dx = rstd (g_hat - mean(g_hat) - x_hat mean(g_hat x_hat)), written over g x_hat, which
        # dL/dgamma has used: one (N, n) buffer for the backward, no other         (N, n)
        dx = torch.mul(x2, minus_mean_gx, out=gx).addcmul_(g2, gamma).sub_(mean_g).mul_(r)
        return dx.view(g.shape), dgamma, dbeta, None


class LayerNorm(nn.Module):
    """Layer normalisation (Ba et al. 2016) over the last dimension, written out."""

    def __init__(self, d, eps=1e-5, backward="manual"):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(d))
        self.beta = nn.Parameter(torch.zeros(d))
        self.eps, self.manual = eps, backward == "manual"

    def forward(self, x):
        if self.manual:
            return LayerNormFunction.apply(x, self.gamma, self.beta, self.eps)
        # LN(x) = gamma (x - mu) / sqrt(sigma^2 + eps) + beta, mu and sigma^2 over the d features
        x = x - x.mean(-1, keepdim=True)                                # x - mu  (B, T, d)
        var = (x * x).mean(-1, keepdim=True)                            # sigma^2 (B, T, 1)
        return self.gamma * x * torch.rsqrt(var + self.eps) + self.beta


# ---------------------------------------------------------------- attention (§3.2.1)

def additive(mask, dtype):
    """A boolean mask (True where a query may attend to a key) as the numbers added to the scores:
    0 where allowed, -inf where not (an illegal connection gets weight 0 after softmax, §3.2.3)."""
    if mask is None or mask.dtype != torch.bool:
        return mask if mask is None or mask.dtype == dtype else mask.to(dtype)
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(mask.logical_not(), float("-inf"))


class AttentionFunction(torch.autograd.Function):
    """softmax(Q K^T / sqrt(d_k) + M) V and the weights alpha. Backward, with G = dL/d(output):
        dL/dV = alpha^T G,  dL/dalpha = G V^T,
        dL/dscores = alpha (dL/dalpha - sum_s alpha dL/dalpha)   (the softmax's, from the saved alpha)
        dL/dQ = dL/dscores K / sqrt(d_k),  dL/dK = dL/dscores^T Q / sqrt(d_k)"""

    @staticmethod
    def forward(ctx, q, k, v, mask):
        scale = q.shape[-1] ** -0.5
        B, h, T, d_k = q.shape
        if mask is not None and mask.dim() == 2 and q.is_contiguous() and k.is_contiguous():
            # Q K^T / sqrt(d_k) + M in one pass: the (T, S) mask broadcast over the B h heads
            S = k.shape[2]
            scores = torch.baddbmm(mask, q.view(B * h, T, d_k), k.view(B * h, S, d_k).transpose(1, 2),
                                   alpha=scale).view(B, h, T, S)
        else:
            scores = q @ k.transpose(-2, -1)                            # (B, h, T, S)
            scores = scores.mul_(scale) if mask is None else torch.add(mask, scores, alpha=scale)
        alpha = torch.softmax(scores, dim=-1, out=scores)               # (B, h, T, S), in place
        ctx.save_for_backward(q, k, v, alpha)
        ctx.mark_non_differentiable(alpha)
        return alpha @ v, alpha                                         # (B, h, T, d_k)

    @staticmethod
    def backward(ctx, g, _):
        q, k, v, alpha = ctx.saved_tensors
        scale = q.shape[-1] ** -0.5
        g = g.contiguous()                                              # once, not in each matmul
        dv = alpha.transpose(-2, -1) @ g                                # (B, h, S, d_k)
        ds = g @ v.transpose(-2, -1)                                    # dL/dalpha  (B, h, T, S)
        ds.sub_((ds * alpha).sum(-1, keepdim=True)).mul_(alpha)        # dL/dscores
        dq = (ds @ k).mul_(scale)                                       # (B, h, T, d_k)
        dk = (ds.transpose(-2, -1) @ q).mul_(scale)                     # (B, h, S, d_k)
        return dq, dk, dv, None


def attention(q, k, v, mask=None, backward="manual"):
    """Scaled dot-product attention. q: (..., T, d_k); k, v: (..., S, d_k); mask: broadcastable to
    (..., T, S), booleans (True where a query may attend to a key) or numbers added to the scores
    (0 or -inf), as for F.scaled_dot_product_attention. Returns the output (..., T, d_k) and the
    weights alpha (..., T, S)."""
    mask = additive(mask, q.dtype)
    if backward == "manual":
        return AttentionFunction.apply(q, k, v, mask)
    d_k = q.shape[-1]
    scores = (q / math.sqrt(d_k)) @ k.transpose(-2, -1)                # (B, h, T, S)
    if mask is not None:
        scores = scores + mask                                          # (on a CPU 4x faster than masked_fill)
    # Attention(Q, K, V) = softmax(Q K^T / sqrt(d_k)) V                    (Eq. 1)
    alpha = torch.softmax(scores, dim=-1)                               # (B, h, T, S)
    return alpha @ v, alpha                                             # (B, h, T, d_k)


# ---------------------------------------------------------------- positions (§3.5, RoPE)

def sinusoids(positions, d_model):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)),
    for any positions (T,): the table needs no maximum length. Returns (T, d_model)."""
    i2 = torch.arange(0, d_model, 2, device=positions.device)          # 2i
    angle = positions[:, None].float() / 10000 ** (i2 / d_model)       # (T, d/2)
    return torch.stack((angle.sin(), angle.cos()), -1).flatten(-2)     # (T, d), sin and cos interleaved


def rotary(positions, d_k):
    """RoPE (Su et al. 2021): the pair (x_2i, x_2i+1) at position m turns by the angle m theta_i,
    theta_i = 10000^(-2i/d_k). Returns cos and sin of the angles, (T, d_k/2) each."""
    theta = 10000 ** (-torch.arange(0, d_k, 2, device=positions.device) / d_k)   # (d_k/2,)
    angle = positions[:, None].float() * theta                          # (T, d_k/2)
    return angle.cos(), angle.sin()


def rotate(x, cos, sin):
    """Rotate every pair of features of x (..., T, d_k) by its position's angles (RoPE): then
    q_m . k_n depends on the positions only through the offset m - n."""
    x1, x2 = x[..., 0::2], x[..., 1::2]                                 # (B, h, T, d_k/2) each
    return torch.stack((x1 * cos - x2 * sin, x1 * sin + x2 * cos), -1).flatten(-2)   # (B, h, T, d_k)


def rotate_into(out, x, cos, sin):
    """out = rotate(x, cos, sin), written into out (..., T, d_k), which may be laid out unlike x. In
    float32 and float64 a pair is a complex number and the rotation one complex product,
    (x1 + i x2)(cos + i sin): one vectorised pass, where the pairs' strided halves take eight."""
    if x.dtype in (torch.float32, torch.float64) and x.stride(-1) == 1 and out.stride(-1) == 1:
        turn = torch.complex(cos.to(x.dtype), sin.to(x.dtype))         # (T, d_k/2)
        torch.mul(torch.view_as_complex(x.unflatten(-1, (-1, 2))), turn,
                  out=torch.view_as_complex(out.unflatten(-1, (-1, 2))))
        return out
    x1, x2, o1, o2 = x[..., 0::2], x[..., 1::2], out[..., 0::2], out[..., 1::2]
    torch.mul(x1, cos, out=o1).addcmul_(x2, sin, value=-1)             # x1 cos - x2 sin
    torch.mul(x1, sin, out=o2).addcmul_(x2, cos)                       # x1 sin + x2 cos
    return out


def heads_of(y, n_heads, n_parts):
    """y (B, T, P d) as P blocks of heads: a view (P, B, h, T, d_k)."""
    B, T, Pd = y.shape
    return y.view(B, T, n_parts, n_heads, Pd // (n_parts * n_heads)).permute(2, 0, 3, 1, 4)


class HeadsFunction(torch.autograd.Function):
    """y (B, T, P d), P projections side by side (e.g. [Q | K | V]) -> P tensors (B, h, T, d_k), each
    laid out contiguously for the attention's matmuls; the first `n_rotated` turned by RoPE's
    (cos, sin) (T, d_k/2), all of them in one pass. The backward pass turns the gradients back (a
    rotation by -angle is its own transpose) and writes them into their columns of dL/dy."""

    @staticmethod
    def forward(ctx, y, n_heads, n_parts, cos, sin, n_rotated):
        B, T, Pd = y.shape
        src = heads_of(y, n_heads, n_parts)                             # (P, B, h, T, d_k), a view
        out = y.new_empty(src.shape)
        if n_rotated:
            rotate_into(out[:n_rotated], src[:n_rotated], cos, sin)
        out[n_rotated:].copy_(src[n_rotated:])
        ctx.save_for_backward(cos, sin)
        ctx.n_heads, ctx.n_rotated = n_heads, n_rotated
        return out.unbind(0)

    @staticmethod
    def backward(ctx, *grads):
        cos, sin = ctx.saved_tensors
        g0 = next(g for g in grads if g is not None)
        B, h, T, d_k = g0.shape
        dy = g0.new_empty(B, T, len(grads) * h * d_k)
        dst = heads_of(dy, h, len(grads))                               # (P, B, h, T, d_k), a view
        for p, g in enumerate(grads):
            if g is None:
                dst[p].zero_()
            elif p < ctx.n_rotated:
                rotate_into(dst[p], g.contiguous(), cos, -sin)
            else:
                dst[p].copy_(g)
        return dy, None, None, None, None, None


def split_heads(y, n_heads, n_parts=1, rotation=None, n_rotated=0, backward="manual"):
    """y (B, T, P d) -> P tensors (B, h, T, d_k), head i from columns i d_k .. (i+1) d_k of each
    part; the first n_rotated turned by RoPE's rotation (cos, sin), when there is one."""
    n_rotated = n_rotated if rotation is not None else 0
    if backward == "manual":
        cos, sin = rotation if rotation is not None else (None, None)
        return HeadsFunction.apply(y, n_heads, n_parts, cos, sin, n_rotated)
    B, T, Pd = y.shape
    parts = [x.view(B, T, n_heads, -1).transpose(1, 2) for x in y.split(Pd // n_parts, -1)]
    return tuple(rotate(x, *rotation) if p < n_rotated else x for p, x in enumerate(parts))


# ---------------------------------------------------------------- multi-head attention (§3.2.2)

class MultiHeadAttention(nn.Module):
    """h heads, computed together: the heads are a batch dimension of one matmul. Self-attention is
    forward(x); encoder-decoder attention is forward(x, memory), queries from x and keys and values
    from memory (§3.2.3)."""

    def __init__(self, d_model, n_heads, backward="manual"):
        super().__init__()
        self.h, self.backward = n_heads, backward
        # no biases: the paper's projections are matrices only
        self.W_QKV = nn.Parameter(xavier_uniform_(torch.empty(d_model, 3 * d_model)))
        self.W_O = nn.Parameter(xavier_uniform_(torch.empty(d_model, d_model)))

    def keys_values(self, memory):
        """K W^K_i, V W^V_i of every head for memory (B, S, d): (K, V), (B, h, S, d_k) each. A
        decoder computes them once per sentence: the encoder's output does not change while decoding."""
        d = memory.shape[-1]
        return split_heads(memory @ self.W_QKV[:, d:], self.h, 2, backward=self.backward)

    def forward(self, x, memory=None, mask=None, rotation=None, past=None):
        """x: (B, T, d) the queries' positions; memory: (B, S, d), the keys' and values' (default x),
        or their (K, V) from keys_values(); mask: broadcastable to (B, h, T, P + S), see attention(),
        P the length of `past`; rotation: RoPE's (cos, sin) of the new positions, or None; past:
        (K, V) of earlier positions (B, h, P, d_k) from a KV cache. Returns (B, T, d) and (K, V) of
        every position attended to, past ones first."""
        B, T, d = x.shape
        if memory is None:
            # Q W^Q_i, K W^K_i, V W^V_i for every head i, in one matmul; RoPE turns Q and K (DEVIATION)
            q, k, v = split_heads(x @ self.W_QKV, self.h, 3, rotation, 2, self.backward)   # (B, h, T, d_k)
        else:
            (q,) = split_heads(x @ self.W_QKV[:, :d], self.h, 1, rotation, 1, self.backward)
            k, v = memory if isinstance(memory, tuple) else self.keys_values(memory)   # (B, h, S, d_k)
        if past is not None:
            k, v = torch.cat((past[0], k), 2), torch.cat((past[1], v), 2)   # (B, h, P + S, d_k)
        # head_i = Attention(Q W^Q_i, K W^K_i, V W^V_i)                    (§3.2.2, Eq. 1)
        heads, _ = attention(q, k, v, mask, self.backward)              # (B, h, T, d_k)
        # MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O             (§3.2.2)
        out = heads.transpose(1, 2).reshape(B, T, d) @ self.W_O         # (B, T, d)
        return out, (k, v)


# ---------------------------------------------------------------- feed-forward network (§3.3)

class FeedForward(nn.Module):
    def __init__(self, d_model, d_ff):
        super().__init__()
        self.W_1 = nn.Parameter(xavier_uniform_(torch.empty(d_model, d_ff)))
        self.b_1 = nn.Parameter(torch.zeros(d_ff))
        self.W_2 = nn.Parameter(xavier_uniform_(torch.empty(d_ff, d_model)))
        self.b_2 = nn.Parameter(torch.zeros(d_model))

    def forward(self, x):
        # FFN(x) = max(0, x W_1 + b_1) W_2 + b_2                          (Eq. 2), the bias in each matmul
        h = torch.addmm(self.b_1, x.reshape(-1, x.shape[-1]), self.W_1).relu_()   # (B T, d_ff)
        return torch.addmm(self.b_2, h, self.W_2).view(x.shape)                   # (B, T, d)


# ---------------------------------------------------------------- one layer of the stack (§3.1)

class Block(nn.Module):
    """Multi-head self-attention, then the feed-forward network; each sub-layer with dropout, a
    residual connection and layer normalisation. The paper's encoder layer; with the causal mask,
    the layer of a decoder-only LM. (The encoder-decoder's DecoderBlock puts a third sub-layer,
    MultiHeadAttention(x, memory), between the two.)"""

    def __init__(self, config):
        super().__init__()
        d, backward = config.d_model, config.backward
        self.attn = MultiHeadAttention(d, config.n_heads, backward)
        self.norm_1 = LayerNorm(d, config.eps, backward)
        self.ffn, self.norm_2 = FeedForward(d, config.d_ff), LayerNorm(d, config.eps, backward)
        self.pre, self.p = config.norm == "pre", config.dropout

    def dropout(self, x):
        return F.dropout(x, self.p, self.training) if self.p > 0 else x

    def sublayer(self, x, f, norm):
        """post-norm: LayerNorm(x + Dropout(Sublayer(x)))   (§3.1, dropout §5.4)
        pre-norm:  x + Dropout(Sublayer(LayerNorm(x)))   (DEVIATION)
        f returns the sub-layer's output and anything else to hand back (the attention's K, V)."""
        if self.pre:
            out, extra = f(norm(x))
            return x + self.dropout(out), extra
        out, extra = f(x)
        return norm(x + self.dropout(out)), extra

    def forward(self, x, mask=None, rotation=None, past=None):
        """x: (B, T, d). Returns (B, T, d) and the self-attention's (K, V), for a KV cache."""
        x, kv = self.sublayer(x, lambda h: self.attn(h, mask=mask, rotation=rotation, past=past), self.norm_1)
        x, _ = self.sublayer(x, lambda h: (self.ffn(h), None), self.norm_2)
        return x, kv
