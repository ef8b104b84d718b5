"""Batches from a 1-D tensor of token ids.

Window and attention models train on random blocks; recurrent models read the corpus as
B parallel streams, chunk after chunk, so that row i of chunk k+1 continues row i of chunk k.
The ids may also be a numpy array, a memory map of a corpus larger than memory
(utils/token_file.py): each batch is then read from it and made a tensor of int64 ids, the same
batch as from the tensor of the same ids.
"""
import math

import numpy as np
import torch

from utils.errors import UserError


def random_blocks(data, batch_size, block_size, generator=None):
    """B random windows of T tokens and, for each position, the token that follows it.
    x, y: (B, T) with y[:, t] = data[start + t + 1]."""
    starts = torch.randint(len(data) - block_size, (batch_size,), generator=generator)
    offsets = torch.arange(block_size)
    if isinstance(data, np.ndarray):                            # a memory map: read just these blocks
        index = (starts[:, None] + offsets).numpy()
        return ids_tensor(data[index]), ids_tensor(data[index + 1])
    x = data[starts[:, None] + offsets]                         # (B, T)
    y = data[starts[:, None] + offsets + 1]                     # (B, T)
    return x, y


def ids_tensor(ids):
    """A numpy array of ids (uint16 or uint32, from a memory map) as a torch tensor of int64 ids."""
    return torch.from_numpy(ids.astype(np.int64))


def sliding_windows(data, context, batch_size):
    """Every position t >= context exactly once, in order: x = data[t-context:t], y = data[t].
    Yields x (B, context), y (B,); the last batch may be smaller. For scoring a whole split."""
    targets = torch.arange(context, len(data))
    offsets = torch.arange(-context, 0)
    for i in range(0, len(targets), batch_size):
        t = targets[i:i + batch_size]
        yield data[t[:, None] + offsets], data[t]


def stream_batches(data, batch_size, bptt):
    """One pass over the corpus as `batch_size` contiguous streams, in chunks of `bptt` steps.

    The corpus is cut into B equal streams (the last len % B tokens are dropped); chunk k holds
    steps [k*bptt, (k+1)*bptt) of every stream, so a hidden state carried from chunk k continues
    the same text in chunk k+1. Yields x, y: (B, T) with y the next token; the last chunk may be
    shorter. When the generator is exhausted the streams wrap around: reset the state then."""
    n = (len(data) - 1) // batch_size
    if n < 1:
        raise ValueError(f"{len(data)} tokens cannot make {batch_size} streams")
    if isinstance(data, np.ndarray):                            # a memory map: views, read chunk by chunk
        xs = data[:n * batch_size].reshape(batch_size, n)       # (B, N)
        ys = data[1:n * batch_size + 1].reshape(batch_size, n)  # (B, N)
        for start in range(0, n, bptt):
            yield ids_tensor(xs[:, start:start + bptt]), ids_tensor(ys[:, start:start + bptt])
        return
    xs = data[:n * batch_size].view(batch_size, n)              # (B, N)
    ys = data[1:n * batch_size + 1].view(batch_size, n)         # (B, N), row i shifted by one
    for start in range(0, n, bptt):
        yield xs[:, start:start + bptt], ys[:, start:start + bptt]


def check_streams(data, batch_size, name):
    """A UserError unless `data` (the `name` split) fills `batch_size` streams of at least one step."""
    if (len(data) - 1) // batch_size < 1:
        raise UserError(f"the {name} split ({len(data)} characters) is too short for {batch_size} "
                        f"streams: lower --batch-size or use a longer text")


def steps_per_pass(data, batch_size, bptt):
    """How many chunks of B streams of T steps make one pass over `data` (the last may be shorter)."""
    return math.ceil(((len(data) - 1) // batch_size) / bptt)


def train_chunks(data, batch_size, bptt, start_step=0):
    """The chunks of the B training streams, pass after pass, as (x, y, first_of_a_pass).
    Resuming at step k continues with the chunk that step k would have read."""
    per_pass = steps_per_pass(data, batch_size, bptt)
    skip = start_step % per_pass
    while True:
        for k, (x, y) in enumerate(stream_batches(data, batch_size, bptt)):
            if k >= skip:
                yield x, y, k == 0
        skip = 0
