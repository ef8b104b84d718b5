"""Recurrent neural network based language model (the Elman network), with BPTT written out.

Mikolov, Karafiát, Burget, Černocký & Khudanpur, "Recurrent neural network based language
model", Interspeech 2010, pp. 1045-1048 (no arXiv version), §2: the simple recurrent network,
Eqs. 1-5, and its training by backpropagation. The 2010 paper feeds x(t) = [w(t), s(t-1)]
(Eq. 1) through one matrix; we split that matrix into U (input) and W (recurrent), the notation of
Mikolov et al., "Extensions of recurrent neural network language model", ICASSP 2011, §2, whose
truncated backpropagation through time (BPTT) is what `ElmanBPTT.backward` writes out.

    paper     code          shape
    w(t)      idx[:, t]     (B,)               the current token (one-hot in the paper)
    U         U             (|V|, H)           input weights; U w(t) is the row U[w(t)]
    W         W             (H, H)             recurrent weights (stored transposed: s @ W)
    V         V             (H, |V|)           output weights
    s(t)      s             (B, H)             hidden state, the network's memory
    f         f             sigmoid (paper) or tanh
    y(t)      logits        (B, T, |V|)        g = softmax, applied inside the cross-entropy
    e_o(t)    grad_s        (T, B, H)          output error sent back through V: e_o(t) V^T
    e_h(t)    delta         (T, B, H)          error at the hidden pre-activation
"""
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from utils.init import orthogonal_, uniform_


@dataclass
class RNNConfig:
    vocab_size: int = 65
    n_hidden: int = 512          # H (the paper's WSJ models: 60 to 400 hidden units)
    nonlinearity: str = "sigmoid"  # f: sigmoid in the paper (Eq. 4); tanh is what torch.nn.RNN uses
    backward: str = "manual"     # "manual": ElmanBPTT (below) runs BPTT; "autograd": torch unrolls the loop


# ---------------------------------------------------------------- the network (§2, Eqs. 1-5)

class ElmanRNN(nn.Module):
    def __init__(self, config):
        super().__init__()
        if config.nonlinearity not in ("sigmoid", "tanh"):
            raise ValueError(f"nonlinearity must be sigmoid or tanh, got {config.nonlinearity!r}")
        if config.backward not in ("manual", "autograd"):
            raise ValueError(f"backward must be manual or autograd, got {config.backward!r}")
        self.config = config
        n_vocab, H = config.vocab_size, config.n_hidden
        # small random weights (§2); the recurrent matrix orthogonal, so that early on repeated
        # products by W neither blow the state up nor shrink it to nothing
        self.U = nn.Parameter(uniform_(torch.empty(n_vocab, H), 0.1))
        self.W = nn.Parameter(orthogonal_(torch.empty(H, H)))
        self.V = nn.Parameter(uniform_(torch.empty(H, n_vocab), H ** -0.5))
        self.b = nn.Parameter(torch.zeros(H))          # DEVIATION: biases; the paper's Eqs. 2-3 have none
        self.c = nn.Parameter(torch.zeros(n_vocab))    # DEVIATION: (see above)

    def init_state(self, batch_size):
        """s(0) = 0 for every stream. DEVIATION: the paper suggests small values such as 0.1."""
        return torch.zeros(batch_size, self.config.n_hidden, dtype=self.W.dtype, device=self.W.device)

    def recurrence(self, x, s):
        """s(t) = f(x(t) + s(t-1) W) for t = 1..T, left to autograd; same numbers as ElmanBPTT."""
        f = torch.sigmoid if self.config.nonlinearity == "sigmoid" else torch.tanh
        states = []
        for t in range(x.shape[1]):
            # s(t) = f(U w(t) + W s(t-1)), x(t) = [w(t), s(t-1)]          (Eqs. 1-2)
            s = f(torch.addmm(x[:, t], s, self.W))                  # (B, H)
            states.append(s)
        return torch.stack(states, 1)                               # (B, T, H)

    def forward(self, idx, state=None, targets=None):
        """idx: (B, T) tokens; state: s(0) (B, H), the last state of the previous chunk, or None
        for zeros; targets: (B, T) the next tokens. Returns logits (B, T, |V|), the mean
        cross-entropy (nats) when targets are given, and the last state s(T) (B, H).
        The state keeps its graph: detaching it at a chunk border is the caller's truncation."""
        B, T = idx.shape
        s0 = self.init_state(B) if state is None else state
        # U w(t) for a one-hot w(t) is row w(t) of U: the whole chunk in one lookup
        x = self.U[idx] + self.b                                    # (B, T, H)
        if self.config.backward == "manual":
            s = ElmanBPTT.apply(x, self.W, s0, self.config.nonlinearity == "sigmoid")   # (B, T, H)
        else:
            s = self.recurrence(x, s0)                              # (B, T, H)
        # y(t) = g(V s(t)), every step at once; g = softmax lives in the loss    (Eqs. 3, 5)
        logits = s @ self.V + self.c                                # (B, T, |V|)
        loss = None
        if targets is not None:
            loss = F.cross_entropy(logits.reshape(B * T, -1), targets.reshape(B * T))
        return logits, loss, s[:, -1]


# ---------------------------------------------------------------- training: BPTT written out (2011, §2)

class ElmanBPTT(torch.autograd.Function):
    """The recurrence s(t) = f(x(t) + s(t-1) W) over T steps, and its backward pass through time.

    forward(x (B, T, H) the input projections U w(t) + b, W (H, H), s0 (B, H), sigmoid: bool)
        -> s (B, T, H), every hidden state of the chunk.
    The chunk is the truncation: gradients flow back through these T steps and no further,
    because the caller detaches s0 from the previous chunk."""

    @staticmethod
    def forward(ctx, x, W, s0, sigmoid):
        B, T, H = x.shape
        # time-major buffer: S[0] = s(0), S[t] = s(t); every S[t] is one contiguous (B, H) block
        S = torch.empty(T + 1, B, H, dtype=x.dtype, device=x.device)
        S[0] = s0
        S[1:] = x.transpose(0, 1)                                   # (T, B, H), a copy
        f_ = torch.sigmoid_ if sigmoid else torch.tanh_
        for t in range(1, T + 1):
            # s(t) = f(U w(t) + W s(t-1)), x(t) = [w(t), s(t-1)]          (Eqs. 1-2)
            f_(S[t].addmm_(S[t - 1], W))                            # (B, H) in place
        ctx.save_for_backward(S, W)
        ctx.sigmoid = sigmoid
        return S[1:].transpose(0, 1)                                # (B, T, H), a view

    @staticmethod
    def backward(ctx, grad_s):
        S, W = ctx.saved_tensors
        # f'(a) from the output alone, for all steps at once: s(1 - s) for sigmoid, 1 - s^2 for tanh
        s = S[1:]                                                   # (T, B, H)
        fprime = s * (1 - s) if ctx.sigmoid else 1 - s * s          # (T, B, H)
        # e_o(t) V^T, the error each s(t) receives from its own output, time-major
        delta = grad_s.transpose(0, 1).clone(memory_format=torch.contiguous_format)   # (T, B, H)
        T = delta.shape[0]
        # back through time: e_h(t) = f'(a(t)) * (e_o(t) V^T + e_h(t+1) W^T)   (2011, §2)
        delta[T - 1].mul_(fprime[T - 1])
        for t in range(T - 2, -1, -1):
            delta[t].addmm_(delta[t + 1], W.T).mul_(fprime[t])      # (B, H) in place
        # dL/dW = sum_t s(t-1)^T e_h(t): all steps in one matmul
        H = W.shape[0]
        grad_W = S[:-1].reshape(-1, H).T @ delta.view(-1, H)        # (H, T*B) @ (T*B, H) = (H, H)
        grad_s0 = delta[0] @ W.T                                    # (B, H)
        return delta.transpose(0, 1), grad_W, grad_s0, None         # dL/dx: (B, T, H)
