"""The gated recurrent unit (GRU), one layer for any input, a stacked GRU language model, and
the RNN Encoder-Decoder that translates with it.

Cho, van Merriënboer, Gulcehre, Bahdanau, Bougares, Schwenk & Bengio, "Learning Phrase
Representations using RNN Encoder-Decoder for Statistical Machine Translation", EMNLP 2014,
arXiv:1406.1078v3. §2.3: the hidden unit that adaptively remembers and forgets, Eqs. (5)-(8).
§2.2 and the paper's appendix: the encoder and decoder built from it (GRUEncoderDecoder, at the
end, with its own symbol table). The appendix is cited by content, "(appendix: encoder)" and
"(appendix: decoder)": its subsection numbers (A.1, A.1.1, A.1.2 in earlier versions of this
file) could not be checked against the paper's text, so they are not used (gru/README.md). The
character language model (a stack of GRU layers and a softmax output) is our test bed for the
unit, not the paper's.

    paper              code          shape
    x                  x             (B, T, I)       the layer's input (a one-hot character for the LM)
    W_r, W_z, W        W             (I, 3H)         input weights of the gates [r|z|h~]
    U_r, U_z, U        U             (H, 3H)         recurrent weights [U_r|U_z|U]
    (biases)           b             (3H,)           DEVIATION: the paper's equations have none
    [W x]_j ...        a             (B, T, 3H)      x @ W + b for every step, before the time loop
    r, z               r, z          (B, H)          reset and update gates
    h~                 h_tilde       (B, H)          the candidate activation
    h_{t-1}, h_t       h             (B, H)          the hidden state
    (LM output)        W_y, b_y      (H, |V|), (|V|,)

Row vectors, batch first: `h @ U` is the paper's U h, so our matrices are the paper's transposed.

variant "cudnn" is the GRU of cuDNN and torch.nn.GRU (whose docs give the equations):
    r = σ(W_r x + b_r + U_r h_{t-1})        z = σ(W_z x + b_z + U_z h_{t-1})      as Eqs. (5), (6)
    n = tanh(W x + b + r ⊙ (U h_{t-1} + b_hn))              vs h~ = tanh(W x + U (r ⊙ h_{t-1}))  (8)
    h_t = (1 - z) ⊙ n + z ⊙ h_{t-1}                          the same as Eq. (7): z keeps the old state
It differs from the paper in one place: the reset gate scales U h_{t-1} AFTER the matmul, so the
three recurrent products are one (B, H) @ (H, 3H) matmul of h_{t-1}, and the recurrent bias b_hn
sits inside the reset. The role of z is NOT swapped: in both, z -> 1 copies h_{t-1} forward.
(The convention with z and 1 - z swapped is Chung et al. 2014, arXiv:1412.3555, Eq. 5.)
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from gru.bptt import GRUBPTT  # noqa: F401  (also imported from here by tests and attention/)
from utils.init import orthogonal_, uniform_

VARIANTS = ("cho", "cudnn")
BACKWARDS = ("manual", "autograd")


@dataclass
class GRUConfig:
    vocab_size: int = 65
    n_hidden: int = 512           # H per layer
    n_layers: int = 1             # stacked GRU layers, each feeding the next
    variant: str = "cho"          # "cho": Eqs. (5)-(8); "cudnn": torch.nn.GRU's reset-after form
    backward: str = "manual"      # "manual": GRUBPTT (gru/bptt.py) runs BPTT; "autograd": torch unrolls the loop


# ---------------------------------------------------------------- the hidden unit (§2.3, Eqs. 5-8)

class GRULayer(nn.Module):
    """One GRU layer: forward(x (B, T, I), h0 (B, H) or None) -> outputs (B, T, H), h_T (B, H)."""

    def __init__(self, input_size, hidden_size, variant="cho", backward="manual"):
        super().__init__()
        if variant not in VARIANTS:
            raise ValueError(f"variant must be cho or cudnn, got {variant!r}")
        if backward not in BACKWARDS:
            raise ValueError(f"backward must be manual or autograd, got {backward!r}")
        self.input_size, self.hidden_size, self.variant, self.backward = input_size, hidden_size, variant, backward
        I, H = input_size, hidden_size
        # W_r, W_z, W side by side; scaled by fan-in so that any input size starts alike
        self.W = nn.Parameter(uniform_(torch.empty(I, 3 * H), I ** -0.5))
        # U_r, U_z, U: one orthogonal (H, H) block each, so repeated products neither explode nor vanish
        self.U = nn.Parameter(torch.cat([orthogonal_(torch.empty(H, H)) for _ in range(3)], 1))
        self.b = nn.Parameter(torch.zeros(3 * H))                 # DEVIATION: biases [b_r|b_z|b]
        # torch.nn.GRU's bias inside the reset, r ⊙ (U h + b_hn): only the cudnn variant has it
        self.b_hn = nn.Parameter(torch.zeros(H)) if variant == "cudnn" else None

    def forward(self, x, h0=None, inner=None):
        B, T, I = x.shape
        # [W_r x | W_z x | W x] + b for every step at once: one matmul before the time loop
        a = torch.addmm(self.b, x.reshape(B * T, I), self.W).view(B, T, -1)   # (B T, I) @ (I, 3H)
        return self.unroll(a, h0, inner)

    def unroll(self, a, h0=None, inner=None):
        """The time loop over a (B, T, 3H), the input side of every gate, precomputed (a language
        model looks up rows of W instead of multiplying one-hot vectors). -> (B, T, H), (B, H).
        inner (B, H) or None, cudnn variant only: a term of each sequence added inside the reset,
        r ⊙ (U h_{t-1} + b_hn + inner), the same at every step (the decoder's C c, appendix: decoder)."""
        h0 = a.new_zeros(a.shape[0], self.hidden_size) if h0 is None else h0
        if self.backward == "manual":
            h = GRUBPTT.apply(a, self.U, self.reset_bias(inner), h0)          # (B, T, H)
        else:
            h = torch.stack(self.recurrence(a, h0, inner), 1)                # (B, T, H)
        return h, h[:, -1]

    def reset_bias(self, inner=None):
        """What the reset gate scales besides U h_{t-1}: b_hn (H,), or b_hn + inner (B, H)."""
        if inner is None:
            return self.b_hn
        if self.variant != "cudnn":
            raise ValueError("inner: only the cudnn variant has a term inside the reset gate")
        return self.b_hn + inner

    def recurrence(self, a, h, inner=None):
        """Eqs. (5)-(8) step after step, left to autograd; the same numbers as GRUBPTT."""
        outputs = []
        for t in range(a.shape[1]):
            h = self.cell(a[:, t], h, inner)
            outputs.append(h)
        return outputs

    def step(self, x, h, inner=None):
        """One step, plain autograd ops: x (B, I), h (B, H) -> h_t (B, H). The same as forward on
        a sequence of length one; for decoders that feed each output back in."""
        return self.cell(torch.addmm(self.b, x, self.W), h, inner)           # (B, I) @ (I, 3H)

    def cell(self, a, h, inner=None):
        """h_t from a = [W_r x | W_z x | W x] + b (B, 3H) and h_{t-1} (B, H); inner as in unroll."""
        a_r, a_z, a_h = a.chunk(3, 1)                                        # 3 x (B, H)
        U_r, U_z, U = self.U.chunk(3, 1)                                     # 3 x (H, H)
        if self.variant == "cho":
            # r = σ(W_r x + U_r h_{t-1})                                     (Eq. 5)
            r = torch.sigmoid(a_r + h @ U_r)
            # z = σ(W_z x + U_z h_{t-1})                                     (Eq. 6)
            z = torch.sigmoid(a_z + h @ U_z)
            # h~ = tanh(W x + U (r ⊙ h_{t-1}))                               (Eq. 8)
            h_tilde = torch.tanh(a_h + (r * h) @ U)
        else:
            # torch.nn.GRU: all three recurrent products in one matmul, the reset applied after
            g_r, g_z, g_h = (h @ self.U).chunk(3, 1)                         # (B, H) @ (H, 3H)
            r = torch.sigmoid(a_r + g_r)
            z = torch.sigmoid(a_z + g_z)
            # n = tanh(W x + b + r ⊙ (U h_{t-1} + b_hn))   DEVIATION from Eq. 8 (see the docstring)
            h_tilde = torch.tanh(a_h + r * (g_h + self.reset_bias(inner)))
        # h_t = z ⊙ h_{t-1} + (1 - z) ⊙ h~                                   (Eq. 7)
        return z * h + (1 - z) * h_tilde


# ---------------------------------------------------------------- the language model (our test bed)

class GRULanguageModel(nn.Module):
    """N stacked GRU layers over one-hot characters, and a softmax over the next character."""

    def __init__(self, config):
        super().__init__()
        self.config = config
        V, H, N = config.vocab_size, config.n_hidden, config.n_layers
        self.layers = nn.ModuleList(GRULayer(V if n == 0 else H, H, config.variant, config.backward)
                                    for n in range(N))
        # the first layer's input is one-hot, so its a_t is one row of W and nothing else: those rows
        # start at unit scale, like an embedding (at ±V^-0.5 the recurrent term drowns the input at
        # first; lstm/model.py measured what that costs)
        with torch.no_grad():
            uniform_(self.layers[0].W, 1.0)
        self.W_y = nn.Parameter(uniform_(torch.empty(H, V), H ** -0.5))
        self.b_y = nn.Parameter(torch.zeros(V))

    def init_state(self, batch_size):
        """h_0 = 0 in every layer: a list of (B, H)."""
        p = self.b_y
        return [torch.zeros(batch_size, self.config.n_hidden, dtype=p.dtype, device=p.device)
                for _ in self.layers]

    def forward(self, idx, state=None, targets=None):
        """idx: (B, T) tokens; state: per layer h_0 (B, H), the last state of the previous chunk,
        or None for zeros; targets: (B, T) the next tokens. Returns logits (B, T, |V|), the mean
        cross-entropy (nats) when targets are given, and the last state of every layer.
        The state keeps its graph: detaching it at a chunk border is the caller's truncation."""
        B, T = idx.shape
        state = self.init_state(B) if state is None else state
        first = self.layers[0]
        # W x_t for a one-hot x_t is row x_t of W: the whole chunk in one lookup (index_select:
        # the same rows as W[idx], with a faster backward on a CPU)
        a = first.W.index_select(0, idx.flatten()).add_(first.b).view(B, T, -1)   # (B, T, 3H)
        h, h_T = first.unroll(a, state[0])                                   # (B, T, H), (B, H)
        new_state = [h_T]
        for layer, h0 in zip(self.layers[1:], state[1:]):
            h, h_T = layer(h, h0)                                            # the layer below feeds this one
            new_state.append(h_T)
        # y_t = softmax(h_t W_y + b_y), every step at once; the softmax lives in the loss
        logits = h @ self.W_y + self.b_y                                     # (B, T, |V|)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss, new_state


# ---------------------------------------------------------------- the RNN Encoder-Decoder (§2.2 and the appendix)

@dataclass
class Seq2SeqConfig:
    src_vocab: int = 8000
    tgt_vocab: int = 6000
    n_embd: int = 256             # e(x), e(y): word embeddings. DEVIATION: the paper's are rank-100 (its setup; unverified)
    n_hidden: int = 256           # H, encoder and decoder. DEVIATION: the paper's are 1000; smaller trains faster on a CPU
    maxout: int = 0               # M maxout units of the deep output, 0 = none; the paper's: 500 for H = 1000 (its setup; unverified)
    variant: str = "cho"          # the encoder's unit (cho = Eqs. 5-8); the decoder's is the appendix's, always
    dropout: float = 0.3          # DEVIATION (none in the paper): on e(x), e(y) and the softmax layer's input
    backward: str = "manual"      # as in GRUConfig


class GRUEncoderDecoder(nn.Module):
    """The RNN Encoder-Decoder: a GRU reads the source into one vector c; a second GRU, started
    from c and reading c again at every step, predicts the translation word by word.

    model(src (B, S), src_len (B,), tgt_in (B, T)) -> logits (B, T, |V_y|), teacher-forced; and
    encode / init_decoder / decode_step, the translator interface of utils/translation.py.

        paper            code                    shape
        e(x_i), e(y_j)   E_x[x_i], E_y[y_j]      (E,)          rows of (|V_x|, E), (|V_y|, E)
        h^<N>            h_N                     (B, H)        the encoder's state after the last word
        V, c             V, c                    (H, H), (B, H)
        V', h'^<0>       V_prime, h0             (H, H), (B, H)
        W', U'           decoder.W, decoder.U    (E, 3H), (H, 3H)   [r'|z'|h~'] side by side
        C_r, C_z, C      C                       (H, 3H)       [C_r|C_z|C]: c into r', z' and h~'
        O_h, O_y, O_c    O_h, O_y, O_c           (H, D), (E, D), (H, D)   D = 2M with maxout, else |V_y|
        s', s            s                       (B, T, 2M), (B, T, M)
        G                G                       (M, |V_y|)    the softmax layer after the maxout
    """

    def __init__(self, config):
        super().__init__()
        self.config = config
        E, H, M, V_y = config.n_embd, config.n_hidden, config.maxout, config.tgt_vocab
        D = 2 * M if M else V_y
        # appendix, encoder: Eqs. (5)-(8) over e(x_1) .. e(x_N), then the summary c
        self.E_x = nn.Parameter(torch.randn(config.src_vocab, E))     # rows at unit scale, like the LM's
        self.encoder = GRULayer(E, H, config.variant, config.backward)
        self.V = nn.Parameter(uniform_(torch.empty(H, H), H ** -0.5))
        # appendix, decoder: its reset gate scales U' h'_{t-1} + C c: torch.nn.GRU's reset-after
        # form ("cudnn" above), with C c a term of each sentence inside the reset
        self.E_y = nn.Parameter(torch.randn(V_y, E))
        self.decoder = GRULayer(E, H, "cudnn", config.backward)
        self.C = nn.Parameter(uniform_(torch.empty(H, 3 * H), H ** -0.5))
        self.V_prime = nn.Parameter(uniform_(torch.empty(H, H), H ** -0.5))
        # the deep output: s' from h'_t, y_{t-1} and c, then a maxout and the softmax layer (or s' = logits)
        self.O_h = nn.Parameter(uniform_(torch.empty(H, D), H ** -0.5))
        self.O_y = nn.Parameter(uniform_(torch.empty(E, D), E ** -0.5))
        self.O_c = nn.Parameter(uniform_(torch.empty(H, D), H ** -0.5))
        self.b_o = nn.Parameter(torch.zeros(D))                     # DEVIATION: biases throughout
        if M:
            self.G = nn.Parameter(uniform_(torch.empty(M, V_y), M ** -0.5))
            self.b_g = nn.Parameter(torch.zeros(V_y))

    def embed(self, table, ids):
        """Rows of an embedding table for ids of any shape -> (*ids.shape, E); dropout when training."""
        e = table.index_select(0, ids.reshape(-1)).view(*ids.shape, -1)
        return F.dropout(e, self.config.dropout, self.training)

    # ---------------------------------------------------------------- encoder (appendix: encoder)

    def encode(self, src, src_len):
        """src (B, S) padded after src_len (B,) words -> memory: c and its products the decoder adds
        at every step (a dict of (B, ...) tensors)."""
        B, H = src.shape[0], self.config.n_hidden
        h, _ = self.encoder(self.embed(self.E_x, src))                      # (B, S, H)
        # h^<N>: the state after each sentence's own last word. The padding comes after it, and a
        # recurrence cannot look ahead, so the padding changes nothing up to there
        h_N = h[torch.arange(B, device=src.device), src_len - 1]            # (B, H)
        # c = tanh(V h^<N>)                                                  (appendix: encoder)
        c = torch.tanh(h_N @ self.V)                                         # (B, H) @ (H, H)
        # [C_r c | C_z c | C c]: the same for every step of the decoder, so computed once here
        Cc = c @ self.C                                                      # (B, H) @ (H, 3H)
        return {"c": c,
                "a_c": torch.cat([Cc[:, :2 * H], Cc.new_zeros(B, H)], 1),   # into r', z': (B, 3H)
                "inner": Cc[:, 2 * H:],                                      # inside the reset: (B, H)
                "o_c": c @ self.O_c + self.b_o}                              # O_c c into s': (B, D)

    # ---------------------------------------------------------------- decoder (appendix: decoder)

    def init_decoder(self, memory):
        # h'^<0> = tanh(V' c)                                                (appendix: decoder)
        return torch.tanh(memory["c"] @ self.V_prime)                        # (B, H)

    def decode_step(self, memory, h, prev):
        """One step: prev (B,) = y_{t-1}, h (B, H) = h'_{t-1} -> logits (B, |V_y|), h'_t (B, H).
        DEVIATION: e(y_0) is the learned row of <bos>; the paper's is all zeros."""
        e = self.embed(self.E_y, prev)                                       # (B, E)
        # z' = σ(W'_z e(y_{t-1}) + U'_z h'_{t-1} + C_z c), r' likewise,
        # h~' = tanh(W' e(y_{t-1}) + r' ⊙ (U' h'_{t-1} + C c)), h'_t = z' h'_{t-1} + (1 - z') h~'
        a = torch.addmm(self.decoder.b, e, self.decoder.W) + memory["a_c"]  # (B, E) @ (E, 3H)
        h = self.decoder.cell(a, h, memory["inner"])                         # (B, H)
        return self.output(h, e, memory["o_c"]), h

    def output(self, h, e, o_c):
        """p(y_t | y_{t-1}, ..., y_1, c) from h'_t, e(y_{t-1}) and O_c c: logits (..., |V_y|)."""
        h = F.dropout(h, self.config.dropout, self.training)
        # s' = O_h h'_t + O_y y_{t-1} + O_c c                                (appendix: decoder)
        # DEVIATION: O_y reads the embedding e(y_{t-1}), not the one-hot y_{t-1}
        s = h @ self.O_h + e @ self.O_y + o_c                                # (..., D)
        if not self.config.maxout:
            return s                                                         # §2.2's g: a softmax over s'
        # s_i = max{s'_{2i-1}, s'_{2i}}: maxout over pairs of units           (appendix: decoder)
        s = s.unflatten(-1, (self.config.maxout, 2)).amax(-1)                # (..., M)
        # p(y_t = j | ...) = exp(g_j s) / sum_k exp(g_k s)                    (appendix: decoder)
        return s @ self.G + self.b_g                                         # (..., |V_y|)

    def forward(self, src, src_len, tgt_in):
        """Teacher forcing: tgt_in (B, T) = <bos> y_1 .. y_{T-1} are known, so every step's input
        e(y_{t-1}) and c is known too, and the decoder runs as one call of the fast BPTT."""
        memory = self.encode(src, src_len)
        h0 = self.init_decoder(memory)                                       # (B, H)
        B, T = tgt_in.shape
        e = self.embed(self.E_y, tgt_in)                                     # (B, T, E)
        # [W'_r e | W'_z e | W' e] + b for every step, plus [C_r c | C_z c | 0]
        a = torch.addmm(self.decoder.b, e.reshape(B * T, -1), self.decoder.W).view(B, T, -1)  # (B T, E) @ (E, 3H)
        a = a + memory["a_c"][:, None]                                       # (B, T, 3H)
        h, _ = self.decoder.unroll(a, h0, memory["inner"])                   # (B, T, H)
        return self.output(h, e, memory["o_c"][:, None])                     # (B, T, |V_y|)
