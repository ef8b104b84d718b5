"""One evaluation protocol for every language model: each character of a split scored exactly once.

    result = evaluate_lm(model, val_ids, device)       # any of the five LMs
    result.loss          # mean cross-entropy, nats per character, over result.count targets
    result.context       # (count,) how many characters of the split each target had before it

The result is a float, the loss itself, that also carries the count and the contexts, so that
a train.py logs and saves it like any loss and its summary line can say how much was scored.

The targets are data[1:], every character but the first (nothing comes before it). How a model
reads them depends on its family, told apart by its interface:

- recurrent models (they have `init_state`): the split read as one stream with the state carried
  throughout. To use more than one row of a batch, the split may be cut into `streams` segments,
  each read after first running the model, unscored, over the `warmup` characters before it: every
  target then has at least min(its position, warmup) characters of history. streams=1 is the state
  carried over the whole split, exactly.
- attention models (their config has `block_size`): sliding windows of block_size characters with a
  stride of half a block; the first window scores all its positions, every later one only its last
  `stride`, so that each of those has at least block_size - stride characters before it.
- fixed-window models (their config has `context`, Bengio's n-1): every target with its own window
  of the n-1 characters before it, padded on the left with `pad_id` near the start.

`fast_estimate` keeps the older, cheaper estimate for logging during training (B parallel streams
from a zero state, or non-overlapping blocks): it is not the protocol and is never reported as it.
"""
import numpy as np
import torch
import torch.nn.functional as F

from utils.batching import stream_batches
from utils.metrics import evaluate_recurrent, mean_loss

STREAMS = 16          # rows of a batch for a recurrent model
WARMUP = 1024         # characters each of those rows reads, unscored, before its segment
CHUNK = 256           # steps per forward call of a recurrent model
WINDOWS_PER_BATCH = 64
LOGITS = 1 << 22      # at most this many logits per forward call (16 MB): a word vocabulary of 14,000
                      # would otherwise make each call's logits hundreds of megabytes


def rows_per_call(tokens_per_row, vocab_size, most):
    """How many rows of tokens_per_row positions one forward call scores: `most`, fewer for a
    large vocabulary, so that the call's logits stay within LOGITS."""
    return max(1, min(most, LOGITS // max(1, tokens_per_row * vocab_size)))


class Evaluation(float):
    """The mean nats per scored character, with `count` (characters scored), `context` ((count,)
    the characters of history each scored character had) and `nats` ((count,) the loss of each
    target, data[1:] in order: what a mixture with another model's probabilities needs)."""

    def __new__(cls, loss, count, context, nats=None):
        self = super().__new__(cls, loss)
        self.count, self.context, self.nats = count, context, nats
        return self

    @property
    def loss(self):
        return float(self)

    def summary(self):
        c = self.context
        return (f"{self.loss:.4f} nats/char over {self.count:,} characters; context min {c.min()}, "
                f"median {int(np.median(c))}, mean {c.mean():.0f}")


def family(model):
    """'recurrent', 'attention' or 'window': which way the protocol reads the split for `model`."""
    if hasattr(model, "init_state"):
        return "recurrent"
    if hasattr(model.config, "block_size"):
        return "attention"
    if hasattr(model.config, "context"):
        return "window"
    raise TypeError(f"{type(model).__name__} follows none of the language-model interfaces")


@torch.no_grad()
def evaluate_lm(model, data, device="cpu", *, pad_id=0, streams=STREAMS, warmup=WARMUP, stride=None):
    """The protocol: every target data[1:] scored once (see the module docstring). `data`: 1-D ids."""
    if len(data) < 2:
        raise ValueError("a split of fewer than 2 characters has nothing to score")
    was_training = model.training
    model.eval()
    try:
        kind = family(model)
        if kind == "recurrent":
            nll, context = _recurrent(model, data, device, streams, warmup)
        elif kind == "attention":
            nll, context = _attention(model, data, device, stride)
        else:
            nll, context = _window(model, data, device, pad_id)
    finally:
        model.train(was_training)
    return Evaluation(loss=float(nll.sum() / len(nll)), count=len(nll), context=context, nats=np.asarray(nll))


def _recurrent(model, data, device, streams, warmup):
    """Per-target nats (in order) and contexts for a model(x, state, y) -> (logits, loss, state)."""
    n = len(data) - 1                                     # targets data[1..n], inputs data[0..n-1]
    streams = max(1, min(streams, n // max(1, warmup)))   # no segment shorter than the warm-up
    bounds = np.linspace(0, n, streams + 1).astype(int)   # segment i: inputs bounds[i] .. bounds[i+1]-1
    begin = np.maximum(bounds[:-1] - warmup, 0)           # row i starts reading here, from the zero state
    length = bounds[1:] - begin                           # ... for this many steps
    T = int(length.max())
    x = torch.zeros(streams, T, dtype=torch.long)        # rows shorter than T are padded at the end:
    y = torch.zeros(streams, T, dtype=torch.long)        # read after their text, never scored
    for i in range(streams):
        x[i, :length[i]] = data[begin[i]:bounds[i + 1]]
        y[i, :length[i]] = data[begin[i] + 1:bounds[i + 1] + 1]
    nll = torch.zeros(streams, T, dtype=torch.float64)
    state = None
    chunk = rows_per_call(streams, getattr(model.config, "vocab_size", 0), CHUNK)     # steps per call, here
    for t in range(0, T, chunk):
        xb, yb = x[:, t:t + chunk].to(device), y[:, t:t + chunk].to(device)
        logits, _, state = model(xb, state, yb)           # the state carried from chunk to chunk
        nll[:, t:t + xb.shape[1]] = F.cross_entropy(logits.transpose(1, 2), yb, reduction="none").double().cpu()
    # row i scores the steps of its own segment: after its warm-up, before its padding
    first = bounds[:-1] - begin
    scored = torch.cat([nll[i, first[i]:length[i]] for i in range(streams)])
    # the history of the target after input j: the characters its row has read, j - begin + 1
    context = np.concatenate([np.arange(bounds[i], bounds[i + 1]) - begin[i] + 1 for i in range(streams)])
    return scored.numpy(), context


def _attention(model, data, device, stride):
    """Sliding windows of block_size with the given stride (default half a block)."""
    T = model.config.block_size
    stride = stride or max(1, T // 2)
    n = len(data) - 1
    starts = [0]                                          # until a window reaches the last target
    while starts[-1] + T < n:
        starts.append(starts[-1] + stride)
    # window w reads inputs data[s .. s+T-1] and scores its targets after those scored already
    nll = np.zeros(n)
    context = np.zeros(n, dtype=np.int64)
    done = 0                                              # targets data[1..done] are scored
    per_call = rows_per_call(T, getattr(model.config, "vocab_size", 0), WINDOWS_PER_BATCH)
    for i in range(0, len(starts), per_call):
        batch = starts[i:i + per_call]
        ends = [min(s + T, n) for s in batch]
        L = max(e - s for s, e in zip(batch, ends))
        x = torch.zeros(len(batch), L, dtype=torch.long)
        y = torch.zeros(len(batch), L, dtype=torch.long)
        for r, (s, e) in enumerate(zip(batch, ends)):
            x[r, :e - s], y[r, :e - s] = data[s:e], data[s + 1:e + 1]
        logits, _ = model(x.to(device))
        losses = F.cross_entropy(logits.transpose(1, 2), y.to(device), reduction="none").double().cpu().numpy()
        for r, (s, e) in enumerate(zip(batch, ends)):
            if e <= done:
                continue
            j = np.arange(max(done, s), e)                  # input positions whose targets are new
            nll[j] = losses[r, j - s]
            context[j] = j - s + 1                           # the window's characters up to the input
            done = e
    assert done == n, (done, n)
    return nll, context


def _window(model, data, device, pad_id):
    """Each target data[t] with the n-1 characters before it, left-padded with pad_id near the start."""
    k = model.config.context
    padded = torch.cat([torch.full((k - 1,), pad_id, dtype=data.dtype), data])   # data[t] is padded[t+k-1]
    n = len(data) - 1
    nll = np.zeros(n)
    offsets = torch.arange(-k, 0)
    per_call = rows_per_call(1, getattr(model.config, "vocab_size", 0), 8192)
    for i in range(0, n, per_call):
        t = torch.arange(i + 1, min(n, i + per_call) + 1)   # targets data[t]
        x = padded[(t + k - 1)[:, None] + offsets]           # (B, n-1): data[t-k .. t-1], padded
        logits, _ = model(x.to(device))
        nll[i:i + len(t)] = F.cross_entropy(logits, data[t].to(device), reduction="none").double().cpu().numpy()
    context = np.minimum(np.arange(1, n + 1), k)
    return nll, context


def fast_estimate(model, data, device="cpu", batch_size=32, bptt=100):
    """The older, cheaper estimate, for logging during training only (--fast-val): recurrent models
    read the split as `batch_size` streams, each from a zero state (the last len % batch_size
    characters unscored); attention models non-overlapping blocks, so that a block's first
    positions see almost no context; fixed-window models are scored by the protocol itself."""
    kind = family(model)
    if kind == "recurrent":
        return evaluate_recurrent(model, data, batch_size, bptt, device)
    if kind == "attention":
        T = model.config.block_size
        streams = max(1, min(128, (len(data) - 1) // T))
        return mean_loss(model, ((x.to(device), y.to(device)) for x, y in stream_batches(data, streams, T)))
    return evaluate_lm(model, data, device).loss


def validation_loss(model, data, device, args, pad_id=0, final=False):
    """What a train.py reports as "val": the protocol; during training, with --fast-val, the estimate."""
    if getattr(args, "fast_val", False) and not final:
        return fast_estimate(model, data, device, args.batch_size, getattr(args, "bptt", 100))
    return evaluate_lm(model, data, device, pad_id=pad_id)
