"""The two tasks of experiments/memory.py: delayed recall at distance k, and nested brackets (Dyck-like).

Each task makes its batches (idx, the mask of the scored positions, the targets) and knows its
answer tokens and its chance accuracy; the Dyck task also annotates each closer with its nesting
depth and its distance from the matching opener."""
import numpy as np
import torch

DISTANCE_BINS = ((1, 2), (3, 4), (5, 8), (9, 16), (17, 32), (33, 64), (65, 10 ** 9))


# ---------------------------------------------------------------- the delayed-recall task

class Recall:
    """Token ids: keys 0..n_keys-1, fillers n_keys..n_keys+n_fill-1, then MARK and QUERY."""

    def __init__(self, n_keys=8, n_fill=8, prefix=4):
        self.n_keys, self.n_fill, self.prefix = n_keys, n_fill, prefix
        self.MARK, self.QUERY = n_keys + n_fill, n_keys + n_fill + 1
        self.vocab_size = n_keys + n_fill + 2
        self.answers = torch.arange(n_keys)               # the tokens a prediction is chosen among

    def chance(self):
        return 1.0 / self.n_keys

    def batch(self, B, k, g):
        """(idx (B, L), mask (B, L) True at the answer position, target (B, L)); L = prefix + k + 2,
        idx[:, L-1] = QUERY and idx[:, L-1-k] = the key = target[:, L-1]."""
        L = self.prefix + k + 2
        idx = torch.randint(self.n_keys, self.n_keys + self.n_fill, (B, L), generator=g)
        key = torch.randint(0, self.n_keys, (B,), generator=g)
        idx[:, self.prefix] = self.MARK
        idx[:, self.prefix + 1] = key
        idx[:, L - 1] = self.QUERY
        mask = torch.zeros(B, L, dtype=torch.bool)
        mask[:, L - 1] = True
        target = torch.zeros(B, L, dtype=torch.long)
        target[:, L - 1] = key
        return idx, mask, target


# ---------------------------------------------------------------- the nested-bracket task

class Dyck:
    """Token ids: openers 0..n_types-1, closers n_types..2 n_types-1, fillers after them."""

    def __init__(self, n_types=3, n_fill=4, length=64, p_open=0.25, p_close=0.2, max_depth=8):
        self.n_types, self.n_fill, self.length = n_types, n_fill, length
        self.p_open, self.p_close, self.max_depth = p_open, p_close, max_depth
        self.vocab_size = 2 * n_types + n_fill
        self.answers = torch.arange(n_types, 2 * n_types)

    def chance(self):
        return 1.0 / self.n_types

    def sequence(self, rng):
        """One sequence (list of ids) of self.length + 1 tokens (the last one is only predicted)."""
        out, stack = [], []
        for _ in range(self.length + 1):
            u = rng.random()
            if stack and u < self.p_close:
                out.append(self.n_types + stack.pop())
            elif u < (self.p_close if stack else 0.0) + self.p_open and len(stack) < self.max_depth:
                stack.append(int(rng.integers(self.n_types)))
                out.append(stack[-1])
            else:
                out.append(2 * self.n_types + int(rng.integers(self.n_fill)))
        return out

    def annotate(self, seq):
        """For each position t whose next token seq[t+1] is a closer: (t, depth, distance), depth the
        number of brackets open just before it (its own included), distance from its opener."""
        stack, out = [], []
        for t, tok in enumerate(seq):
            if tok < self.n_types:
                stack.append(t)
            elif tok < 2 * self.n_types:
                if not stack or seq[stack[-1]] != tok - self.n_types:
                    raise ValueError(f"closer at {t} does not match")
                out.append((t - 1, len(stack), t - stack.pop()))
        return out

    def batch(self, B, g):
        """(idx (B, L), mask (B, L) True where the next token is a closer, target (B, L)), and
        the (row, t, depth, distance) of every masked position."""
        rng = np.random.default_rng(int(torch.randint(0, 2 ** 62, (1,), generator=g)))
        seqs = [self.sequence(rng) for _ in range(B)]
        data = torch.tensor(seqs)
        idx, target = data[:, :-1], data[:, 1:]
        mask = torch.zeros_like(idx, dtype=torch.bool)
        info = []
        for b, seq in enumerate(seqs):
            for t, depth, dist in self.annotate(seq):
                if t >= 0:
                    mask[b, t] = True
                    info.append((b, t, depth, dist))
        info.sort()                        # row-major, the order of logits[mask]
        return idx, mask, target, info
