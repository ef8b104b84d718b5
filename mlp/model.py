"""A Neural Probabilistic Language Model.

Bengio, Ducharme, Vincent & Jauvin, JMLR 3 (2003) 1137-1155, §2 "A Neural Model": the
architecture of Fig. 1 and the equation y = b + Wx + U tanh(d + Hx) beneath it, with the optional
direct connections W. (§3 of the paper is its parallel implementation, not reproduced here.)
Batch normalisation (Ioffe & Szegedy 2015) is an addition of ours, off by default.

    paper           code        shape
    n - 1           context     the number of previous tokens the model sees
    C               C           (|V|, m)           the shared feature vectors C(i)
    x               x           (B, (n-1) m)       concatenated features of the context
    H, d            H, d        ((n-1) m, h), (h,) hidden layer
    U               U           (h, |V|)           hidden-to-output weights
    W               W           ((n-1) m, |V|)     direct connections (optional; W = 0 in the paper's "no" rows)
    b               b           (|V|,)             output biases
    y               y           (B, |V|)           unnormalised log-probabilities
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.init import uniform_, xavier_uniform_


@dataclass
class MLPConfig:
    vocab_size: int = 65
    context: int = 5             # n - 1 (the paper's best Brown model, MLP10 of Table 1, used n = 5 words)
    n_embd: int = 24             # m (the paper: m = 30, 60 or 100 features per word, §1.1)
    n_hidden: int = 768          # h (the paper: 0, 50 or 100 hidden units in Table 1, 60 in Table 2)
    direct: bool = False         # the direct connections W of §2 (Table 1 has rows with and without)
    batchnorm: bool = False      # DEVIATION: batch normalisation of d + Hx, not in the paper


class BatchNorm(nn.Module):
    """Batch normalisation of a (B, h) pre-activation, written out (Ioffe & Szegedy 2015)."""

    def __init__(self, size, momentum=0.1, eps=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(size))
        self.beta = nn.Parameter(torch.zeros(size))
        self.register_buffer("running_mean", torch.zeros(size))
        self.register_buffer("running_var", torch.ones(size))
        self.momentum, self.eps = momentum, eps

    def forward(self, a):
        if self.training:
            mean = a.mean(0)                                            # (h,)
            var = a.var(0, unbiased=False)                              # (h,)
            with torch.no_grad():
                self.running_mean.lerp_(mean, self.momentum)
                self.running_var.lerp_(a.var(0, unbiased=True), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        return self.gamma * (a - mean) / torch.sqrt(var + self.eps) + self.beta


class NPLM(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        V, m, h, k = config.vocab_size, config.n_embd, config.n_hidden, config.context * config.n_embd
        # the feature vectors C(i): one row of |V| x m per vocabulary entry, learned with the rest
        self.C = nn.Parameter(uniform_(torch.empty(V, m), 1.0))
        self.H = nn.Parameter(xavier_uniform_(torch.empty(k, h), gain=5 / 3))   # tanh gain
        self.d = nn.Parameter(torch.zeros(h))
        self.U = nn.Parameter(xavier_uniform_(torch.empty(h, V)))
        self.b = nn.Parameter(torch.zeros(V))
        # direct connections start at zero: the model begins as the paper's W = 0 network
        self.W = nn.Parameter(torch.zeros(k, V)) if config.direct else None
        self.norm = BatchNorm(h) if config.batchnorm else None

    def forward(self, idx, targets=None):
        """idx: (B, n-1) previous tokens, oldest first; targets: (B,) the next token.
        Returns logits y (B, |V|) and the mean cross-entropy (nats) when targets are given."""
        B = idx.shape[0]
        # x = (C(w_{t-1}), C(w_{t-2}), ..., C(w_{t-n+1}))                  (§2)
        # (we concatenate oldest first; the order of the blocks only permutes the rows of H)
        x = self.C[idx].view(B, -1)                                     # (B, (n-1) m)
        # the hidden layer: tanh(d + H x)                                 (§2)
        a = self.d + x @ self.H                                         # (B, h)
        if self.norm is not None:
            a = self.norm(a)                                            # DEVIATION: batch norm
        # y = b + W x + U tanh(d + H x)                                   (§2)
        y = self.b + torch.tanh(a) @ self.U                             # (B, |V|)
        if self.W is not None:
            y = y + x @ self.W                                          # (B, |V|)
        # P(w_t = i | context) = e^{y_i} / sum_j e^{y_j}; trained by maximising log-likelihood
        loss = None if targets is None else F.cross_entropy(y, targets)
        return y, loss
