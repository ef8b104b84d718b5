"""The models of experiments/memory.py: each folder's class at one size, what it sees, its training and scoring.

build and size_for make a folder's model at about --params parameters; reach and logits_at give
each model only what it can see (a recurrent model the whole prefix, the MLP its window, the
Transformer its last block); train is the loss at the masked positions only; recall_accuracy,
dyck_scores and breakdown score the tasks of experiments/memory_tasks.py."""
import time

import numpy as np
import torch
import torch.nn.functional as F

from gru.model import GRUConfig, GRULanguageModel
from lstm.model import LSTM, LSTMConfig
from mlp.model import NPLM, MLPConfig
from rnn.model import ElmanRNN, RNNConfig
from transformer.model import TransformerConfig, TransformerLM
from utils.evaluation import family

# ---------------------------------------------------------------- the models, at one size

def build(name, vocab, size, args):
    """The folder's model `name` with hidden width `size`."""
    if name == "mlp":
        return NPLM(MLPConfig(vocab_size=vocab, context=args.mlp_window, n_embd=16, n_hidden=size))
    if name.startswith("rnn"):
        return ElmanRNN(RNNConfig(vocab_size=vocab, n_hidden=size, nonlinearity=name.split("-")[1]))
    if name == "lstm":
        return LSTM(LSTMConfig(vocab_size=vocab, n_hidden=size, n_layers=1))
    if name == "gru":
        return GRULanguageModel(GRUConfig(vocab_size=vocab, n_hidden=size, n_layers=1))
    if name == "transformer":       # size = d_ff; d_model 32, 2 heads, 2 layers
        return TransformerLM(TransformerConfig(vocab_size=vocab, block_size=args.block, n_layers=2, n_heads=2,
                                               d_model=32, d_ff=size))
    raise ValueError(name)


def n_params(model):
    return sum(p.numel() for p in model.parameters())


def size_for(name, vocab, args):
    """The hidden width whose parameter count is nearest --params (counts grow with the width)."""
    count = lambda s: n_params(build(name, vocab, s, args))
    lo, hi = 1, 2
    while count(hi) <= args.params:                    # doubling, then bisection
        lo, hi = hi, 2 * hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if count(mid) <= args.params else (lo, mid)
    return min((lo, hi), key=lambda s: abs(count(s) - args.params))


def reach(model):
    """How many positions back from the one predicting a model can see the input: the MLP its window
    (positions t-w+1..t), the Transformer its block; None for a recurrent model."""
    kind = family(model)
    return model.config.context if kind == "window" else model.config.block_size if kind == "attention" else None


def logits_at(model, idx, mask, pad_id=0):
    """(N, V): the logits predicting the token after each masked position of idx (B, T), in row-major
    order, each from what the model can see there: a recurrent model the whole prefix from a zero
    state, the MLP its window (padded on the left at the start), the Transformer its last block."""
    kind = family(model)
    if kind == "recurrent":
        logits, _, _ = model(idx)
        return logits[mask]
    B, T = idx.shape
    w = reach(model)
    if kind == "attention" and T <= w:
        return model(idx)[0][mask]
    rows, cols = mask.nonzero(as_tuple=True)
    if kind == "attention":
        out = torch.empty(len(rows), model.config.vocab_size)
        early = cols < w                                   # inside the first block: read from the start
        if early.any():
            out[early] = model(idx[:, :w])[0][rows[early], cols[early]]
        late = ~early
        if late.any():
            starts = cols[late] - w + 1
            windows = torch.stack([idx[r, s:s + w] for r, s in zip(rows[late].tolist(), starts.tolist())])
            out[late] = model(windows)[0][:, -1]
        return out
    padded = torch.cat([torch.full((B, w - 1), pad_id, dtype=idx.dtype), idx], 1)   # (B, T + w - 1)
    windows = padded.unfold(1, w, 1)                                                  # (B, T, w)
    return model(windows[rows, cols])[0]


def predictions(model, idx, mask, answers, pad_id=0):
    """The argmax among the answer tokens at each masked position: (N,) token ids."""
    return answers[logits_at(model, idx, mask, pad_id)[:, answers].argmax(-1)]


def train(model, sample, steps, lr, clip, bar=None, pad_id=0):
    """Adam for `steps` steps on fresh batches from sample(); the cross-entropy at the masked
    (answer) positions only. Returns the CPU seconds it took."""
    started = time.process_time()
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    model.train()
    for _ in range(steps):
        idx, mask, target = sample()[:3]
        loss = F.cross_entropy(logits_at(model, idx, mask, pad_id), target[mask])
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
        opt.step()
        opt.zero_grad(set_to_none=True)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{loss.item():.3f}", refresh=False)
    return time.process_time() - started


@torch.no_grad()
def recall_accuracy(model, task, k, n, seed, pad_id=0):
    """Accuracy on n fresh sequences at distance k (seeded apart from the training batches)."""
    model.eval()
    idx, mask, target = task.batch(n, k, torch.Generator().manual_seed(10 ** 6 + seed))
    return (predictions(model, idx, mask, task.answers, pad_id) == target[mask]).float().mean().item()


@torch.no_grad()
def dyck_scores(model, task, n, seed, pad_id=None):
    """(correct (N,) bool, depth (N,), distance (N,)) over every closer of n fresh sequences."""
    model.eval()
    idx, mask, target, info = task.batch(n, torch.Generator().manual_seed(10 ** 6 + seed))
    pad = 2 * task.n_types if pad_id is None else pad_id
    correct = (predictions(model, idx, mask, task.answers, pad) == target[mask]).numpy()
    info = np.array(info)
    return correct, info[:, 2], info[:, 3]


def breakdown(correct, values, groups):
    """{group: (accuracy, count)} for each group (lo, hi) of values, lo <= v <= hi; empty ones left out."""
    out = {}
    for lo, hi in groups:
        sel = (values >= lo) & (values <= hi)
        if sel.any():
            out[(lo, hi)] = (float(correct[sel].mean()), int(sel.sum()))
    return out
