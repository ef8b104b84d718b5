"""RNNsearch: a bidirectional GRU encoder, a GRU decoder, and an alignment model between them.

Bahdanau, Cho & Bengio, "Neural Machine Translation by Jointly Learning to Align and Translate",
arXiv:1409.0473v7 (ICLR 2015). §3.1 the decoder and its alignment model (Eqs. 4-6); §3.2 the
bidirectional encoder whose annotations h_j = [→h_j ; ←h_j]; Appendix A.1.2 the alignment model
(U_a h_j precomputed once per sentence); A.2.1 the encoder; A.2.2 the decoder: the GRU
s_i = f(s_{i-1}, y_{i-1}, c_i), its first state s_0 = tanh(W_s ←h_1), and the deep output with a
maxout layer. Translation goes through utils/translation.py (batches, greedy and beam decoding,
BLEU); this file implements its translator interface (forward, encode, init_decoder, decode_step).

    paper               code            shape
    x_j, y_i            src, tgt_in     (B, S), (B, T)  source words; <bos> y_1 .. y_n (teacher forcing)
    Ē, E                E_x, E_y        (|V_x|, m), (|V_y|, m)  word embeddings (Ē shared by both directions)
    →h_j, ←h_j          fwd, bwd        GRULayer(m, n) each (gru/model.py: W, U, b)
    h_j                 h               (B, S, 2n)      the annotations [→h_j ; ←h_j]
    W_a, U_a, v_a       W_a, U_a, v_a   (n, n'), (2n, n'), (n',)   the alignment model
    U_a h_j             Uh              (B, S, n')      once per sentence
    e_ij, α_ij          e, alpha        (B, S)          scores and weights over the source, step i
    c_i                 c               (B, 2n)         the context vector
    W_s                 W_s, b_s        (n, n), (n,)    s_0 = tanh(W_s ←h_1)
    s_i                 s               (B, n)          the decoder state
    W_r, W_z, W         dec.W[:m]       (m, 3n)         the decoder, a GRULayer(m + 2n, n) whose input
    C_r, C_z, C         dec.W[m:]       (2n, 3n)        is [E y_{i-1} ; c_i]: its W holds W and C stacked
    U_r, U_z, U         dec.U           (n, 3n)
    [U_o ; V_o ; C_o]   W_t, b_t        (n + m + 2n, 2l)  t~_i, before the maxout
    W_o                 W_o, b_o        (l, |V_y|)

Row vectors, batch first: `h @ U_a` is the paper's U_a h, so our matrices are the paper's transposed.
The paper's GRU writes s_i = (1 - z_i) ∘ s_{i-1} + z_i ∘ s~_i; gru/model.py's (Cho et al. 2014,
Eq. 7) writes h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h~: the same unit with z named for 1 - z.
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gru.model import BACKWARDS, VARIANTS, GRULayer
from utils.init import uniform_


@dataclass
class AttentionConfig:
    src_vocab: int = 30000        # |V_x|, |V_y|: the paper keeps the 30,000 most frequent words (§4.1)
    tgt_vocab: int = 30000
    n_embd: int = 256             # m. DEVIATION: smaller than the paper's (m = 620, §A.2.3)
    n_hidden: int = 256           # n, per direction and in the decoder. DEVIATION: paper n = 1000 (§A.2.3)
    n_align: int = 256            # n', the alignment model's hidden layer. DEVIATION: paper n' = 1000 (§A.2.3)
    n_maxout: int = 128           # l, maxout units of the deep output, n / 2 as in the paper. DEVIATION: 500
    dropout: float = 0.2          # DEVIATION: the paper has no dropout; here on E x, E y and t_i
    variant: str = "cho"          # the GRU of gru/model.py: "cho" as in the paper, or torch.nn.GRU's "cudnn"
    backward: str = "manual"      # the encoder's BPTT: gru/model.py's GRUBPTT ("manual") or "autograd"


class RNNsearch(nn.Module):

    def __init__(self, config):
        super().__init__()
        if config.variant not in VARIANTS or config.backward not in BACKWARDS:
            raise ValueError(f"variant must be one of {VARIANTS} and backward one of {BACKWARDS}")
        self.config = c = config
        m, n, n_a, l = c.n_embd, c.n_hidden, c.n_align, c.n_maxout
        # DEVIATION: uniform fan-in initialisations (embeddings at unit scale, as in gru/model.py);
        # the paper draws W_a, U_a from N(0, 0.001²), v_a and the biases at 0, the other
        # non-recurrent matrices from N(0, 0.01²), the recurrent ones orthogonal (§B.1; GRULayer's U are)
        # ---- the encoder (§3.2, §A.2.1)
        self.E_x = nn.Parameter(uniform_(torch.empty(c.src_vocab, m), 1.0))
        self.fwd = GRULayer(m, n, c.variant, c.backward)
        self.bwd = GRULayer(m, n, c.variant, c.backward)
        # ---- the decoder (§3.1, §A.2.2)
        self.W_s = nn.Parameter(uniform_(torch.empty(n, n), n ** -0.5))
        self.b_s = nn.Parameter(torch.zeros(n))
        self.W_a = nn.Parameter(uniform_(torch.empty(n, n_a), n ** -0.5))
        self.U_a = nn.Parameter(uniform_(torch.empty(2 * n, n_a), (2 * n) ** -0.5))
        self.v_a = nn.Parameter(uniform_(torch.empty(n_a), n_a ** -0.5))
        self.E_y = nn.Parameter(uniform_(torch.empty(c.tgt_vocab, m), 1.0))
        # s_i = f(s_{i-1}, y_{i-1}, c_i): a GRU whose input is [E y_{i-1} ; c_i]; step by step
        # (plain autograd), as c_i waits for s_{i-1}
        self.dec = GRULayer(m + 2 * n, n, c.variant, "autograd")
        self.W_t = nn.Parameter(uniform_(torch.empty(n + m + 2 * n, 2 * l), (n + m + 2 * n) ** -0.5))
        self.b_t = nn.Parameter(torch.zeros(2 * l))
        self.W_o = nn.Parameter(uniform_(torch.empty(l, c.tgt_vocab), l ** -0.5))
        self.b_o = nn.Parameter(torch.zeros(c.tgt_vocab))

    def drop(self, x):
        return F.dropout(x, self.config.dropout, self.training)

    # ---------------------------------------------------------------- encoder (§3.2, §A.2.1)

    def encode(self, src, src_len):
        """src (B, S) padded after src_len -> memory: the annotations h (B, S, 2n), U_a h_j
        (B, S, n') and the mask of real source positions (B, S). Annotations at padded positions
        are computed but never attended to. DEVIATION: src holds the words only, no end symbol
        (utils/translation.py's collate); the paper's sources end in <end> (its Fig. 3)."""
        B, S = src.shape
        j = torch.arange(S, device=src.device)
        mask = j < src_len[:, None]                                          # (B, S) bool
        x = self.drop(self.E_x.index_select(0, src.flatten())).view(B, S, -1)   # Ē x_j  (B, S, m)
        # →h_j = f(→h_{j-1}, x_j): left to right
        h_fwd, _ = self.fwd(x)                                               # (B, S, n)
        # ←h_j = f(←h_{j+1}, x_j): right to left, each sentence reversed within its own length
        # (position j <-> len - 1 - j; padding stays at the end), run, and put back in order
        rev = torch.where(mask, src_len[:, None] - 1 - j, j)                  # (B, S), its own inverse
        rows = (torch.arange(B, device=src.device)[:, None] * S + rev).flatten()   # (B S,)
        h_bwd, _ = self.bwd(x.reshape(B * S, -1).index_select(0, rows).view(B, S, -1))
        h_bwd = h_bwd.reshape(B * S, -1).index_select(0, rows).view(B, S, -1)    # (B, S, n)
        # h_j = [→h_j ; ←h_j]                                                 (§3.2)
        h = torch.cat([h_fwd, h_bwd], 2)                                     # (B, S, 2n)
        # U_a h_j does not depend on i: computed once per sentence           (§A.1.2)
        Uh = h @ self.U_a                                                    # (B, S, 2n) @ (2n, n')
        return {"h": h, "Uh": Uh, "mask": mask}

    # ---------------------------------------------------------------- decoder (§3.1, §A.2.2)

    def init_decoder(self, memory):
        """s_0 and the (empty) last alignment: state {"s": (B, n), "alpha": (B, S)}."""
        n = self.config.n_hidden
        # s_0 = tanh(W_s ←h_1)                                                (§A.2.2)
        s = torch.tanh(torch.addmm(self.b_s, memory["h"][:, 0, n:], self.W_s))    # (B, n) @ (n, n)
        return {"s": s, "alpha": torch.zeros_like(memory["mask"], dtype=s.dtype)}

    def attend(self, memory, s):
        """The alignment model at step i: s_{i-1} (B, n) -> alpha_i (B, S), c_i (B, 2n)."""
        # e_ij = a(s_{i-1}, h_j) = v_a^T tanh(W_a s_{i-1} + U_a h_j)          (Eq. 6, §A.1.2)
        e = torch.tanh(memory["Uh"] + (s @ self.W_a)[:, None]) @ self.v_a    # (B, S, n') @ (n',)
        e = e.masked_fill(~memory["mask"], float("-inf"))                    # padding: exp(-inf) = 0
        # α_ij = exp(e_ij) / Σ_k exp(e_ik)                                     (Eq. 6)
        alpha = torch.softmax(e, 1)                                          # (B, S)
        # c_i = Σ_j α_ij h_j                                                   (Eq. 5)
        c = torch.bmm(alpha[:, None], memory["h"]).squeeze(1)                 # (B, 1, S) @ (B, S, 2n)
        return alpha, c

    def deep_output(self, s_prev, Ey, c):
        """Logits of p(y_i | ...) from s_{i-1}, E y_{i-1}, c_i (any leading shape, e.g. (B, T, .)).
        Eq. (4) writes g(y_{i-1}, s_i, c_i); the appendix's t~_i reads s_{i-1}, as here."""
        # t~_i = U_o s_{i-1} + V_o E y_{i-1} + C_o c_i                        (§A.2.2)
        t_tilde = torch.cat([s_prev, Ey, c], -1) @ self.W_t + self.b_t        # (.., n + m + 2n) @ (.., 2l)
        # t_i = [max{t~_{i,2j-1}, t~_{i,2j}}]_{j=1..l}: maxout over pairs      (§A.2.2)
        t = t_tilde.unflatten(-1, (-1, 2)).amax(-1)                          # (.., l)
        # p(y_i | s_i, y_{i-1}, c_i) ∝ exp(y_i^T W_o t_i); the softmax lives in the loss
        return self.drop(t) @ self.W_o + self.b_o                            # (.., l) @ (l, |V_y|)

    def decode_step(self, memory, state, prev):
        """One step i: y_{i-1} = prev (B,) -> logits of y_i (B, |V_y|), state {s_i, alpha_i}."""
        s = state["s"]                                                       # s_{i-1}
        alpha, c = self.attend(memory, s)
        Ey = self.drop(self.E_y.index_select(0, prev))                       # (B, m)
        # s_i = f(s_{i-1}, y_{i-1}, c_i)                                       (§3.1, §A.2.2)
        s_next = self.dec.step(torch.cat([Ey, c], 1), s)                    # (B, m + 2n) -> (B, n)
        return self.deep_output(s, Ey, c), {"s": s_next, "alpha": alpha}

    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: the decoder reads tgt_in (B, T) = <bos> y_1 .. -> logits (B, T, |V_y|).
        The same numbers as decode_step over tgt_in, with the work moved out of the time loop."""
        memory = self.encode(src, src_len)
        s = self.init_decoder(memory)["s"]                                   # s_0  (B, n)
        B, T = tgt_in.shape
        m = self.config.n_embd
        Ey = self.drop(self.E_y.index_select(0, tgt_in.flatten())).view(B, T, m)   # (B, T, m)
        # [W_r|W_z|W] E y_{i-1} + b for every step: one matmul before the loop
        a_y = torch.addmm(self.dec.b, Ey.view(B * T, m), self.dec.W[:m]).view(B, T, -1)   # (B T, m) @ (m, 3n)
        # T x (B, 3n), unbound once: a_y[:, i] would zero-fill all of (B, T, 3n) in each step's backward
        a_y = a_y.unbind(1)
        C = self.dec.W[m:]                                                   # [C_r|C_z|C] (2n, 3n)
        s_prev, contexts = [], []
        for i in range(T):
            alpha, c = self.attend(memory, s)                                # (B, S), (B, 2n)
            s_prev.append(s)
            contexts.append(c)
            # s_i = f(s_{i-1}, y_{i-1}, c_i): the context's share of the gates added to a_y  (§A.2.2)
            s = self.dec.cell(torch.addmm(a_y[i], c, C), s)                 # (B, 2n) @ (2n, 3n)
        # the deep output and softmax of every step at once, after the loop
        return self.deep_output(torch.stack(s_prev, 1), Ey, torch.stack(contexts, 1))   # (B, T, |V_y|)
