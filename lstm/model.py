"""Long short-term memory with peephole connections, stacked with skip connections, BPTT written out.

Graves, "Generating Sequences With Recurrent Neural Networks", arXiv:1308.0850v5 (2014).
§2: the deep recurrent network of Fig. 1, Eqs. (1)-(4): the input feeds every hidden layer and
every hidden layer feeds the output layer ("skip connections"). §2.1: the LSTM cell of Fig. 2,
Eqs. (7)-(11), with peephole weights from the cell to the gates, and the clipping of the LSTM
derivatives (the error at the gates' inputs, before the sigmoid and tanh) "to lie within a predefined
range"; the range for text, [-1, 1], is given with the experiments (§3.1 Penn Treebank, §3.2 Wikipedia).

    paper              code          shape
    x_t                idx[:, t]     (B,)            the input character (one-hot in the paper)
    W_{ih^n}           W_x           (|V|, 4H)       input -> gates [i|f|c|o] of layer n: row x_t
    W_{h^{n-1}h^n}     W_below       (H, 4H)         layer n-1 -> layer n, n >= 2
    W_{h^n h^n}        W_h           (H, 4H)         recurrent weights [W_hi|W_hf|W_hc|W_ho]
    b^n                b             (4H,)           [b_i|b_f|b_c|b_o]
    W_ci, W_cf, W_co   w_c           (3, H)          the diagonal peephole matrices, as vectors
    (pre-activations)  a             (B, T, 4H)      the gates' inputs before sigmoid / tanh
    i_t, f_t, o_t      i, f, o       (B, H)          input, forget and output gates
    tanh(W_xc x + ..)  g             (B, H)          the cell input of Eq. (9)
    c_t, h_t           c, h          (B, H)          cell state and output of one layer
    W_{h^n y}, b_y     W_y[n], b_y   (H, |V|), (|V|,)
    y_hat_t            logits        (B, T, |V|)     Y = softmax (Eq. 4) lives in the loss

Row vectors, batch first: `h @ W_h` is the paper's W_h h, so our matrices are the paper's transposed.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.init import orthogonal_, uniform_


@dataclass
class LSTMConfig:
    vocab_size: int = 65
    n_hidden: int = 256           # H per layer. DEVIATION: smaller than the paper's text networks
    n_layers: int = 2             # (§3: one layer of 1000 cells on Penn Treebank, 7 x 700 on Wikipedia)
    peepholes: bool = True        # W_ci, W_cf, W_co of Eqs. (7), (8), (10)
    skip: bool = True             # Fig. 1: input -> every layer, every layer -> output
    backward: str = "manual"      # "manual": LSTMBPTT (below) runs BPTT; "autograd": torch unrolls the loop
    forget_bias: float = 1.0      # DEVIATION: b_f starts at 1 (a common fix, Gers et al. 2000), not 0
    clip_lstm_grads: float | None = 1.0   # clip dL/da to [-v, v] at every step (§2.1); the paper's
                                          # [-1, 1] for text is in §3.1 and §3.2; None: off
    dropout: float = 0.0          # DEVIATION: dropout on each layer's h on its way up and out (Zaremba et
                                  # al. 2014), never on the recurrence; the paper regularised with weight noise.
                                  # train.py trains with 0.25


# ---------------------------------------------------------------- the network (§2, Eqs. 1-4)

class LSTMLayer(nn.Module):
    """The parameters of one hidden layer h^n; the time loop is `recurrence` or `LSTMBPTT`."""

    def __init__(self, config, first):
        super().__init__()
        V, H = config.vocab_size, config.n_hidden
        # the input weights: every layer with skip connections, else only the first. The input is
        # one-hot, so a_t gets one row of W_x and nothing else: the rows start at unit scale, like an
        # embedding. (Rows of ±0.1 left the input drowned by the recurrent term: the loss sat at the
        # unigram entropy for the first steps and trailed torch.nn.LSTM; lstm/README.md.)
        self.W_x = nn.Parameter(uniform_(torch.empty(V, 4 * H), 1.0)) if first or config.skip else None
        self.W_below = None if first else nn.Parameter(uniform_(torch.empty(H, 4 * H), H ** -0.5))
        # one orthogonal (H, H) block per gate: repeated products neither explode nor vanish at first
        self.W_h = nn.Parameter(torch.cat([orthogonal_(torch.empty(H, H)) for _ in range(4)], 1))
        self.b = nn.Parameter(torch.zeros(4 * H))
        with torch.no_grad():
            self.b[H:2 * H] = config.forget_bias                  # DEVIATION: b_f = 1 (see LSTMConfig)
        # peepholes start at zero: the cell begins as the peephole-free LSTM and learns to look
        self.w_c = nn.Parameter(torch.zeros(3, H)) if config.peepholes else None


class LSTM(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.backward not in ("manual", "autograd"):
            raise ValueError(f"backward must be manual or autograd, got {config.backward!r}")
        self.config = config
        V, H, N = config.vocab_size, config.n_hidden, config.n_layers
        self.layers = nn.ModuleList(LSTMLayer(config, first=n == 0) for n in range(N))
        # W_{h^n y}: every layer feeds the output with skip connections, else only the last
        n_out = N if config.skip else 1
        self.W_y = nn.ParameterList(uniform_(torch.empty(H, V), H ** -0.5) for _ in range(n_out))
        self.b_y = nn.Parameter(torch.zeros(V))

    def init_state(self, batch_size):
        """h_0 = c_0 = 0 for every layer: a list of (h, c), each (B, H)."""
        p = self.b_y
        zeros = lambda: torch.zeros(batch_size, self.config.n_hidden, dtype=p.dtype, device=p.device)
        return [(zeros(), zeros()) for _ in self.layers]

    def forward(self, idx, state=None, targets=None):
        """idx: (B, T) tokens; state: per layer (h_0, c_0), each (B, H), the last state of the
        previous chunk, or None for zeros; targets: (B, T) the next tokens. Returns logits
        (B, T, |V|), the mean cross-entropy (nats) when targets are given, and the last state.
        The state keeps its graph: detaching it at a chunk border is the caller's truncation."""
        B, T = idx.shape
        state = self.init_state(B) if state is None else state
        hs, new_state = [], []
        for layer, (h0, c0) in zip(self.layers, state):
            # W_{ih^n} x_t + W_{h^{n-1}h^n} h^{n-1}_t + b^n, the input side of Eqs. (1)-(2), for
            # every t at once; for a one-hot x_t the first term is row x_t of W_x (index_select:
            # the same rows as W_x[idx], with a faster backward on a CPU)
            if layer.W_x is None:
                a = torch.addmm(layer.b, hs[-1].reshape(B * T, -1), layer.W_below)   # (B T, H) @ (H, 4H)
            else:
                a = layer.W_x.index_select(0, idx.flatten())                   # (B T, 4H)
                if layer.W_below is not None:
                    a = torch.addmm(a, hs[-1].reshape(B * T, -1), layer.W_below)   # + (B T, H) @ (H, 4H)
                a = a.add_(layer.b)
            # h^n_t = H(a_t + W_{h^n h^n} h^n_{t-1}), H the LSTM cell of Eqs. (7)-(11)
            if self.config.backward == "manual":
                # a is this call's own temporary: LSTMBPTT may write the gates, then dL/da, over it
                h, c, _ = LSTMBPTT.apply(a, layer.W_h, layer.w_c, h0, c0, self.config.clip_lstm_grads, True)
            else:
                h, c = self.recurrence(a.view(B, T, -1), layer, h0, c0)         # (B, T, H), (B, H)
            new_state.append((h[:, -1], c))
            # DEVIATION: dropout on the connections to the layer above and to the output only: the
            # carried state, h_{t-1} -> h_t, is never dropped (see LSTMConfig)
            hs.append(F.dropout(h, self.config.dropout, self.training))
        # y_hat_t = b_y + sum_n W_{h^n y} h^n_t                                      (Eq. 3)
        logits = self.b_y + sum(h @ W for h, W in zip(hs[-len(self.W_y):], self.W_y))   # (B, T, |V|)
        loss = None
        if targets is not None:
            # Eqs. (4)-(6): softmax and the negative log-likelihood of the next character
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss, new_state

    def recurrence(self, a, layer, h, c):
        """Eqs. (7)-(11) over the chunk, left to autograd; the same numbers as LSTMBPTT."""
        clip, outputs = self.config.clip_lstm_grads, []
        for t in range(a.shape[1]):
            # all four gates' inputs in one matmul; only the recurrent product is inside the loop
            a_i, a_f, a_c, a_o = torch.addmm(a[:, t], h, layer.W_h).chunk(4, 1)   # 4 x (B, H)
            if layer.w_c is not None:
                a_i, a_f = a_i + layer.w_c[0] * c, a_f + layer.w_c[1] * c
            # i_t = σ(W_xi x_t + W_hi h_{t-1} + W_ci c_{t-1} + b_i)              (Eq. 7)
            i = torch.sigmoid(clip_grad(a_i, clip))
            # f_t = σ(W_xf x_t + W_hf h_{t-1} + W_cf c_{t-1} + b_f)              (Eq. 8)
            f = torch.sigmoid(clip_grad(a_f, clip))
            # c_t = f_t c_{t-1} + i_t tanh(W_xc x_t + W_hc h_{t-1} + b_c)        (Eq. 9)
            c = f * c + i * torch.tanh(clip_grad(a_c, clip))
            if layer.w_c is not None:
                a_o = a_o + layer.w_c[2] * c
            # o_t = σ(W_xo x_t + W_ho h_{t-1} + W_co c_t + b_o)                  (Eq. 10)
            o = torch.sigmoid(clip_grad(a_o, clip))
            # h_t = o_t tanh(c_t)                                                 (Eq. 11)
            h = o * torch.tanh(c)
            outputs.append(h)
        return torch.stack(outputs, 1), c                                       # (B, T, H), (B, H)


def clip_grad(a, clip):
    """Identity forward; in the backward pass dL/da is clipped to [-clip, clip] (§2.1)."""
    if clip is not None and a.requires_grad:
        a.register_hook(lambda grad: grad.clamp(-clip, clip))
    return a


# ---------------------------------------------------------------- training: BPTT written out

class LSTMBPTT(torch.autograd.Function):
    """Eqs. (7)-(11) over T steps, and their backward pass through time.

    forward(a (B, T, 4H) or (B T, 4H) the gates' inputs from below, W_h (H, 4H), w_c (3, H) or
            None, h0 (B, H), c0 (B, H), clip: float or None, overwrite: bool = False)
        -> h (B, T, H), c_T (B, H), and with overwrite also a itself.
    Clipping (§2.1): at every step, the error at the four gates' inputs dL/da_t (the
    pre-activations of i, f, o and of the cell input, before σ and tanh) is clamped to
    [-clip, clip] before it goes anywhere: to h_{t-1} through W_h, to c_{t-1} through the
    peepholes, to a (so to W_x, W_below, b and the layer below) and into the weight gradients.
    overwrite: a is the caller's own temporary (LSTM.forward's), so the forward writes the gates
    over it and the backward writes dL/da over the gates, step by step, each step's gates read
    before they are overwritten: one (B, T, 4H) buffer instead of three, and no copy of a. Such a
    backward runs once (retain_graph is refused); without overwrite a is left untouched.
    The loops read and write (B, ...) slices of preallocated buffers, in place; in the lists
    below index t is step t+1 of the paper, and c[t], h[t] are c_t, h_t (c[0] = c_0, h[0] = h_0).
    Only the recurrent products are inside the loops; the weight gradients come after, in one
    matmul over all steps. Every other per-step op touches at most 2 B H numbers (32768 at B 32,
    H 512: torch keeps an elementwise op that small on one thread), because on a (B, H) block a
    thread hand-off per op per step costs more than it saves, and far more when the CPU is shared."""

    @staticmethod
    def forward(ctx, a, W_h, w_c, h0, c0, clip, overwrite=False):
        (B, H), H4 = h0.shape, a.shape[-1]
        A = a.view(B, -1, H4)                                         # the gates' inputs a_t  (B, T, 4H)
        T = A.shape[1]
        G = A if overwrite else torch.empty_like(A, memory_format=torch.contiguous_format)   # the gates
        C, S, TC = a.new_empty(B, T, H), a.new_empty(B, T, H), a.new_empty(B, T, H)
        gates = G.view(B, T, 4, H)
        i, f, g, o = (x.unbind(1) for x in gates.unbind(2))           # each T views of (B, H)
        if_ = gates[:, :, :2].unbind(1)                               # T x (B, 2, H): i and f together
        a_, tanh_c = A.unbind(1), TC.unbind(1)
        c, h = (c0, *C.unbind(1)), (h0, *S.unbind(1))
        pre = a.new_empty(B, 4, H)                                    # one step's pre-activations
        pre_if, pre_g, pre_o, pre_ = pre[:, :2], pre[:, 2], pre[:, 3], pre.view(B, H4)
        for t in range(T):
            # all four gates' inputs: a_t + W_h h_{t-1}, the one matmul of the step, into a small
            # buffer that the next operations read while it is still in cache            (B, 4H)
            torch.addmm(a_[t], h[t], W_h, out=pre_)
            # i_t = σ(W_xi x_t + W_hi h_{t-1} + W_ci c_{t-1} + b_i), f_t alike      (Eqs. 7, 8)
            if w_c is not None:
                pre_if.addcmul_(c[t].unsqueeze(1), w_c[:2])           # (B, 2, H) + (B, 1, H) * (2, H)
            torch.sigmoid(pre_if, out=if_[t])
            # c_t = f_t c_{t-1} + i_t tanh(W_xc x_t + W_hc h_{t-1} + b_c)             (Eq. 9)
            torch.tanh(pre_g, out=g[t])
            torch.mul(f[t], c[t], out=c[t + 1]).addcmul_(i[t], g[t])
            # o_t = σ(W_xo x_t + W_ho h_{t-1} + W_co c_t + b_o)                       (Eq. 10)
            if w_c is not None:
                pre_o.addcmul_(c[t + 1], w_c[2])
            torch.sigmoid(pre_o, out=o[t])
            # h_t = o_t tanh(c_t)                                                      (Eq. 11)
            torch.mul(o[t], torch.tanh(c[t + 1], out=tanh_c[t]), out=h[t + 1])
        # with overwrite, a itself is saved (not G, a view of it made here, which autograd would refuse)
        ctx.save_for_backward(a if overwrite else G, C, S, TC, W_h, w_c, h0, c0)
        ctx.clip, ctx.overwrite, ctx.spent, ctx.a_shape = clip, overwrite, False, a.shape
        ctx.set_materialize_grads(False)
        if overwrite:
            ctx.mark_dirty(a)
            return S, C[:, -1], a                                     # (B, T, H), (B, H), the gates
        return S, C[:, -1]                                            # (B, T, H), (B, H)

    @staticmethod
    def backward(ctx, grad_h, grad_c, _grad_gates=None):
        if ctx.spent:
            raise RuntimeError("LSTMBPTT with overwrite=True runs its backward once (its gates are spent); "
                               "use LSTMConfig(backward='autograd') for retain_graph")
        G, C, S, TC, W_h, w_c, h0, c0 = ctx.saved_tensors
        ctx.spent = ctx.overwrite
        G = G.view(C.shape[0], C.shape[1], -1)                        # the gates  (B, T, 4H)
        clip, peep, (B, T, H4) = ctx.clip, w_c is not None, G.shape
        H = H4 // 4
        gates, one = G.view(B, T, 4, H), G.new_ones(())
        # the forward's per-step views, and the same for dL/da_t (B, T, 4H), filled step by step:
        # over the gates themselves (overwrite), or into a new buffer
        i, f, g, o = (x.unbind(1) for x in gates.unbind(2))
        if_ = gates[:, :, :2].unbind(1)
        c, h, tanh_c = (c0, *C.unbind(1)), (h0, *S.unbind(1)), TC.unbind(1)
        dA = G if ctx.overwrite else torch.empty_like(G)
        dA4 = dA.view(B, T, 4, H)
        dA_, dA_if, dA_i, dA_f, dA_c, dA_o = dA.unbind(1), *(
            x.unbind(1) for x in (dA4[:, :, :2], dA4[:, :, 0], dA4[:, :, 1], dA4[:, :, 2], dA4[:, :, 3]))
        # dL/dh_t from above (B, T, H), and dL/dc_T (B, H); None when the loss does not use them
        dH = torch.zeros_like(S) if grad_h is None else grad_h.clone(memory_format=torch.contiguous_format)
        dc = torch.zeros_like(c0) if grad_c is None else grad_c.clone()
        # W_h^T copied row-major once: the per-step product below then reads it in the order the
        # matmul kernel wants (through a transposed view of W_h the step's matmul runs ~1.5x slower)
        dH_, W_hT = dH.unbind(1), W_h.T.contiguous()
        tmp, tmp2, dc_prev, dsig_if = G.new_empty(B, H), G.new_empty(B, H), torch.empty_like(dc), G.new_empty(B, 2, H)
        if peep:                                                      # dL/dW_c = sum over t and b of dL/da * c
            grad_if, grad_o = G.new_zeros(B, 2, H), G.new_zeros(B, H)
        for t in range(T - 1, -1, -1):
            # dL/dh_t: from the output above, and from step t+1 through W_h
            if t < T - 1:
                dH_[t].addmm_(dA_[t + 1], W_hT)                       # (B, 4H) @ (4H, H)
            # Eq. (11): o_t (1 - tanh²(c_t)) = o_t - h_t tanh(c_t), read before o_t is overwritten
            torch.addcmul(o[t], h[t + 1], tanh_c[t], value=-1, out=tmp)
            # Eqs. (11), (10): dL/da_o = dL/dh_t tanh(c_t) o_t (1 - o_t) = dL/dh_t (h_t - h_t o_t)
            torch.addcmul(h[t + 1], h[t + 1], o[t], value=-1, out=tmp2)
            torch.mul(dH_[t], tmp2, out=dA_o[t])
            if clip is not None:
                dA_o[t].clamp_(-clip, clip)
            # Eqs. (11), (10): dL/dc_t += dL/dh_t o_t (1 - tanh²(c_t)) + dL/da_o W_co
            dc.addcmul_(dH_[t], tmp)
            if peep:
                dc.addcmul_(dA_o[t], w_c[2])
            # σ' = σ (1 - σ) of i and f, and i_t (1 - g_t²), all read before i, f, g are overwritten
            torch.addcmul(if_[t], if_[t], if_[t], value=-1, out=dsig_if)  # (B, 2, H)
            torch.addcmul(one, g[t], g[t], value=-1, out=tmp).mul_(i[t])
            # Eqs. (9), (7), (8): dL/dc_{t-1} = dL/dc_t f_t + dL/da_i W_ci + dL/da_f W_cf (the last two below)
            torch.mul(dc, f[t], out=dc_prev)
            # Eqs. (9), (7), (8): dL/da_i = dL/dc_t g_t σ'_i, dL/da_f = dL/dc_t c_{t-1} σ'_f
            torch.mul(dsig_if, dc.unsqueeze(1), out=dA_if[t])
            dA_i[t].mul_(g[t])
            dA_f[t].mul_(c[t])
            # Eq. (9): dL/da_c = dL/dc_t i_t (1 - g_t²)
            torch.mul(dc, tmp, out=dA_c[t])
            if clip is not None:
                dA_if[t].clamp_(-clip, clip)
                dA_c[t].clamp_(-clip, clip)
            if peep:
                dc_prev.addcmul_(dA_i[t], w_c[0]).addcmul_(dA_f[t], w_c[1])
                grad_if.addcmul_(dA_if[t], c[t].unsqueeze(1))
                grad_o.addcmul_(dA_o[t], c[t + 1])
            dc, dc_prev = dc_prev, dc
        # dL/dW_h = sum_t h_{t-1}^T dL/da_t: all steps in one matmul
        h_prev = torch.cat([h0.unsqueeze(1), S[:, :-1]], 1)          # h_0 .. h_{T-1}  (B, T, H)
        grad_W_h = h_prev.view(B * T, H).T @ dA.view(B * T, H4)      # (H, B T) @ (B T, 4H)
        grad_w_c = torch.cat([grad_if.sum(0), grad_o.sum(0)[None]]) if peep else None   # (3, H)
        grad_h0 = dA_[0] @ W_hT                                       # (B, H)
        return dA.view(ctx.a_shape), grad_W_h, grad_w_c, grad_h0, dc, None, None
