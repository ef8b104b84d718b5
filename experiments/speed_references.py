"""The references experiments/speed.py times our models against: the same networks built from the
torch.nn modules our model.py files may not use (nn.RNN/LSTM/GRU, nn.Linear, nn.LayerNorm,
F.scaled_dot_product_attention, nn.Transformer), each with our family's interface, so that one
timing loop drives both sides."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F


class TorchRecurrentLM(nn.Module):
    """A torch.nn recurrent module on one-hot inputs (its weight_ih plays U) and a linear output
    layer, with our recurrent interface forward(idx, state, targets) -> (logits, loss, state)."""

    def __init__(self, rnn_class, vocab_size, n_hidden, **kwargs):
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = rnn_class(vocab_size, n_hidden, batch_first=True, **kwargs)
        self.out = nn.Linear(n_hidden, vocab_size)

    def forward(self, idx, state=None, targets=None):
        h, state = self.rnn(F.one_hot(idx, self.vocab_size).float(), state)   # (B, T, H)
        logits = self.out(h)                                                  # (B, T, |V|)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss, state


def torch_rnn(V, H):
    return TorchRecurrentLM(nn.RNN, V, H, nonlinearity="tanh")


def torch_lstm(V, H):
    return TorchRecurrentLM(nn.LSTM, V, H)


def torch_gru(V, H):
    return TorchRecurrentLM(nn.GRU, V, H)


# ---------------------------------------------------------------- the Transformer LM, nanoGPT style

def rope_tables(T, d_k):
    """cos and sin of RoPE's angles for positions 0..T-1, (T, d_k) each, in the rotate-half layout
    (the pair of feature j is feature j + d_k/2), computed once, as library code does."""
    theta = 10000 ** (-torch.arange(0, d_k, 2) / d_k)                      # (d_k/2,)
    angle = torch.arange(T)[:, None].float() * theta                       # (T, d_k/2)
    angle = torch.cat((angle, angle), -1)                                  # (T, d_k)
    return angle.cos(), angle.sin()


def rope(x, cos, sin):
    x1, x2 = x.chunk(2, -1)
    return x * cos + torch.cat((-x2, x1), -1) * sin


class TorchBlock(nn.Module):
    """Pre-norm block: x + attention(LN(x)), then x + FFN(LN(x)); nn.Linear, nn.LayerNorm and
    F.scaled_dot_product_attention, the projections without biases and the FFN with, as ours."""

    def __init__(self, d, n_heads, d_ff):
        super().__init__()
        self.h = n_heads
        self.ln_1, self.ln_2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv, self.proj = nn.Linear(d, 3 * d, bias=False), nn.Linear(d, d, bias=False)
        self.fc_1, self.fc_2 = nn.Linear(d, d_ff), nn.Linear(d_ff, d)

    def forward(self, x, cos, sin):
        B, T, d = x.shape
        q, k, v = self.qkv(self.ln_1(x)).view(B, T, 3, self.h, d // self.h).permute(2, 0, 3, 1, 4)
        q, k = rope(q, cos, sin), rope(k, cos, sin)                        # (B, h, T, d_k)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)       # (B, h, T, d_k)
        x = x + self.proj(y.transpose(1, 2).reshape(B, T, d))
        return x + self.fc_2(F.relu(self.fc_1(self.ln_2(x))))


class TorchTransformerLM(nn.Module):
    """transformer/'s default LM (pre-norm, RoPE, tied embedding scaled by √d, ReLU FFN) from torch.nn
    modules, with the window interface forward(idx, targets) -> (logits, loss)."""

    def __init__(self, vocab_size, block_size, n_layers, n_heads, d_model, d_ff):
        super().__init__()
        self.d = d_model
        self.embed = nn.Embedding(vocab_size, d_model)
        nn.init.normal_(self.embed.weight, std=0.02)
        self.blocks = nn.ModuleList(TorchBlock(d_model, n_heads, d_ff) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d_model)
        cos, sin = rope_tables(block_size, d_model // n_heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)

    def forward(self, idx, targets=None):
        B, T = idx.shape
        x = self.embed(idx) * math.sqrt(self.d)                            # (B, T, d)
        for block in self.blocks:
            x = block(x, self.cos[:T], self.sin[:T])
        logits = F.linear(self.ln_f(x), self.embed.weight)                 # (B, T, |V|), tied
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss
