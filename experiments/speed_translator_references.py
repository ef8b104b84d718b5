"""The translators' references for experiments/speed.py: attention/'s RNNsearch, gru/'s RNN
Encoder-Decoder and transformer/'s TransformerTranslator, each rebuilt from torch.nn modules at the
same sizes (nn.Embedding, nn.GRU, nn.GRUCell, nn.Linear, nn.Transformer), with the seq2seq
interface forward(src, src_len, tgt_in) -> logits (B, T, |V_y|), so that one timing loop drives
both sides. Each class's docstring says where it differs from ours."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from transformer.layers import sinusoids


class TorchRNNsearch(nn.Module):
    """attention/'s RNNsearch (Bahdanau et al.): a bidirectional nn.GRU encoder, s_0 = tanh(W_s ←h_1),
    an nn.GRUCell decoder over [E y_{i-1} ; c_i], the additive alignment v_a^T tanh(W_a s + U_a h)
    from bias-free nn.Linear layers (U_a h once per sentence), and the deep output: nn.Linear on
    [s_{i-1} ; E y_{i-1} ; c_i] to 2l units, a maxout over pairs, nn.Linear(l, |V_y|); dropout on
    E x, E y and t_i, as ours. Where it differs from ours:
    - nn.GRU/GRUCell are the reset-after unit (ours, variant "cho", resets before U: three
      (H, H) products a step instead of one (H, 3H), the same multiply-adds);
    - the backward direction reads the padded batch as it is (ours reverses each sentence within
      its own length): the same at the benchmark's equal lengths, not with padding;
    - nn.GRUCell multiplies the whole input [E y ; c] by its W_ih at each step (ours multiplies
      the E y part for all steps in one matmul before the loop; the same multiply-adds)."""

    def __init__(self, src_vocab, tgt_vocab, n_embd, n_hidden, n_align, n_maxout, dropout):
        super().__init__()
        m, n, n_a, l = n_embd, n_hidden, n_align, n_maxout
        self.n, self.l, self.p = n, l, dropout
        self.E_x, self.E_y = nn.Embedding(src_vocab, m), nn.Embedding(tgt_vocab, m)
        self.encoder = nn.GRU(m, n, batch_first=True, bidirectional=True)
        self.W_s = nn.Linear(n, n)
        self.W_a, self.U_a = nn.Linear(n, n_a, bias=False), nn.Linear(2 * n, n_a, bias=False)
        self.v_a = nn.Linear(n_a, 1, bias=False)
        self.dec = nn.GRUCell(m + 2 * n, n)
        self.W_t, self.W_o = nn.Linear(n + m + 2 * n, 2 * l), nn.Linear(l, tgt_vocab)

    def forward(self, src, src_len, tgt_in):
        B, S = src.shape
        mask = torch.arange(S, device=src.device) < src_len[:, None]             # (B, S)
        h, _ = self.encoder(F.dropout(self.E_x(src), self.p, self.training))     # (B, S, 2n)
        Uh = self.U_a(h)                                                           # (B, S, n')
        s = torch.tanh(self.W_s(h[:, 0, self.n:]))                                 # s_0  (B, n)
        Ey = F.dropout(self.E_y(tgt_in), self.p, self.training)                    # (B, T, m)
        s_prev, contexts = [], []
        for i in range(tgt_in.shape[1]):
            e = self.v_a(torch.tanh(Uh + self.W_a(s)[:, None])).squeeze(-1)       # (B, S)
            alpha = torch.softmax(e.masked_fill(~mask, float("-inf")), 1)         # (B, S)
            c = torch.bmm(alpha[:, None], h).squeeze(1)                            # (B, 2n)
            s_prev.append(s)
            contexts.append(c)
            s = self.dec(torch.cat([Ey[:, i], c], 1), s)                           # (B, n)
        t = self.W_t(torch.cat([torch.stack(s_prev, 1), Ey, torch.stack(contexts, 1)], -1))   # (B, T, 2l)
        t = t.unflatten(-1, (self.l, 2)).amax(-1)                                  # maxout (B, T, l)
        return self.W_o(F.dropout(t, self.p, self.training))                       # (B, T, |V_y|)


class TorchGRUEncoderDecoder(nn.Module):
    """gru/'s RNN Encoder-Decoder (Cho et al. 2014), pytorch-seq2seq style: an nn.GRU encoder,
    c = tanh(V h_N) at each sentence's last word, h'_0 = tanh(V' c), an nn.GRU decoder reading
    [e(y_{t-1}) ; c] at every step, and the output s' = [O_h|O_y] [h'_t ; e(y_{t-1})] + O_c c
    (O_c c once per sentence, as ours), no maxout (gru/'s default); dropout on e(x), e(y) and h'_t.
    Where it differs from ours:
    - c enters the decoder's gates through nn.GRU's input matmul, at every step: T times the
      (B, H) @ (H, 3H) product ours computes once per sentence, and the candidate's share of it
      outside the reset (ours: inside, r' ⊙ (U' h' + C c), the paper's decoder). That extra work
      is not in the FLOP count (counted on ours);
    - the encoder is nn.GRU's reset-after unit (ours, variant "cho": reset before U, the same
      multiply-adds)."""

    def __init__(self, src_vocab, tgt_vocab, n_embd, n_hidden, dropout):
        super().__init__()
        E, H = n_embd, n_hidden
        self.p = dropout
        self.E_x, self.E_y = nn.Embedding(src_vocab, E), nn.Embedding(tgt_vocab, E)
        self.encoder = nn.GRU(E, H, batch_first=True)
        self.V, self.V_prime = nn.Linear(H, H, bias=False), nn.Linear(H, H, bias=False)
        self.decoder = nn.GRU(E + H, H, batch_first=True)
        self.O_hy, self.O_c = nn.Linear(H + E, tgt_vocab), nn.Linear(H, tgt_vocab, bias=False)

    def forward(self, src, src_len, tgt_in):
        B, T = tgt_in.shape
        h, _ = self.encoder(F.dropout(self.E_x(src), self.p, self.training))     # (B, S, H)
        c = torch.tanh(self.V(h[torch.arange(B, device=src.device), src_len - 1]))   # (B, H)
        h0 = torch.tanh(self.V_prime(c))                                           # (B, H)
        e = F.dropout(self.E_y(tgt_in), self.p, self.training)                     # (B, T, E)
        h, _ = self.decoder(torch.cat([e, c[:, None].expand(B, T, -1)], -1), h0[None])   # (B, T, H)
        h = F.dropout(h, self.p, self.training)
        return self.O_hy(torch.cat([h, e], -1)) + self.O_c(c)[:, None]             # (B, T, |V_y|)


class TorchTransformerTranslator(nn.Module):
    """transformer/'s default TransformerTranslator (post-norm, sinusoids, the target embedding
    tied to the pre-softmax weights, embeddings times √d_model) on nn.Transformer: the same N, h,
    d_model, d_ff, dropout and ReLU, and no final LayerNorms (nn.Transformer's are removed, as
    post-norm has none). Where it differs from ours: nn.MultiheadAttention's projections have
    biases (ours: none, as the paper's); the source embedding is nn.Embedding, the tied target one
    a parameter read by F.embedding and F.linear."""

    def __init__(self, src_vocab, tgt_vocab, n_layers, n_heads, d_model, d_ff, dropout):
        super().__init__()
        self.d, self.p = d_model, dropout
        self.E_src = nn.Embedding(src_vocab, d_model)
        self.E_tgt = nn.Parameter(torch.randn(tgt_vocab, d_model) * d_model ** -0.5)
        nn.init.normal_(self.E_src.weight, std=d_model ** -0.5)
        self.transformer = nn.Transformer(d_model, n_heads, n_layers, n_layers, d_ff, dropout, batch_first=True)
        self.transformer.encoder.norm = self.transformer.decoder.norm = None     # post-norm: no final norms

    def embed(self, x):
        positions = torch.arange(x.shape[1], device=x.device)
        return F.dropout(x * math.sqrt(self.d) + sinusoids(positions, self.d), self.p, self.training)

    def forward(self, src, src_len, tgt_in):
        S, T = src.shape[1], tgt_in.shape[1]
        pad = torch.arange(S, device=src.device) >= src_len[:, None]              # (B, S) bool
        causal = torch.ones(T, T, dtype=torch.bool, device=src.device).triu(1)     # (T, T), True: masked
        x = self.transformer(self.embed(self.E_src(src)), self.embed(F.embedding(tgt_in, self.E_tgt)),
                             tgt_mask=causal, src_key_padding_mask=pad, memory_key_padding_mask=pad,
                             tgt_is_causal=True)                                   # (B, T, d)
        return F.linear(x, self.E_tgt)                                             # (B, T, |V_y|), tied
