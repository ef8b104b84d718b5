"""Byte-level byte-pair encoding, trained from scratch (Sennrich et al. 2016; bytes as in GPT-2).

    tok = BPETokenizer.train(train_text, vocab_size=1024)    # seconds on Tiny Shakespeare
    ids = tok.encode("Wherefore art thou 🌹?")                # any Unicode text
    tok.decode(ids) == "Wherefore art thou 🌹?"               # lossless

The text is read as its UTF-8 bytes, so the first 256 tokens are the 256 byte values and nothing
is ever unknown. Training repeats one step until the vocabulary is full: count every adjacent
pair of tokens in the training text, and merge the most frequent pair into a new token
everywhere (left to right, so "aaa" with the merge (a, a) becomes "aa" "a"). Encoding applies
the same merges, in the order they were learned. Merges may cross spaces (no pre-splitting into
words): simpler, and the decode is the same.
"""
import numpy as np

from utils.errors import UserError


def merge(ids, pair, new_id):
    """ids with every occurrence of `pair` replaced by new_id, left to right (non-overlapping)."""
    a, b = pair
    hits = np.flatnonzero((ids[:-1] == a) & (ids[1:] == b))
    if len(hits) == 0:
        return ids
    if a == b:                                   # a run "aaaa" holds overlapping hits: keep every other
        run_start = np.ones(len(hits), dtype=bool)
        run_start[1:] = hits[1:] != hits[:-1] + 1
        first = np.maximum.accumulate(np.where(run_start, hits, 0))
        hits = hits[(hits - first) % 2 == 0]
    out = ids.copy()
    out[hits] = new_id
    return np.delete(out, hits + 1)


class BPETokenizer:
    """Ids 0-255 are bytes; id 256 + k is the k-th merge (a pair of earlier ids)."""

    kind = "bpe"
    unit = "token"

    def __init__(self, merges):
        self.merges = [tuple(m) for m in merges]
        self.pieces = [bytes([i]) for i in range(256)]           # the bytes each id stands for
        for a, b in self.merges:
            self.pieces.append(self.pieces[a] + self.pieces[b])

    @classmethod
    def train(cls, text, vocab_size):
        """Learn vocab_size - 256 merges from `text` (fewer if the text runs out of pairs)."""
        if vocab_size < 256:
            raise UserError(f"--vocab-size {vocab_size}: a byte-level BPE has at least the 256 bytes")
        ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        merges = []
        for new_id in range(256, vocab_size):
            if len(ids) < 2:
                break
            counts = np.bincount(ids[:-1] * vocab_size + ids[1:])   # pair (a, b) counted at a V + b
            best = int(counts.argmax())
            if counts[best] < 2:                                  # no pair repeats: nothing to learn
                break
            pair = divmod(best, vocab_size)
            merges.append(pair)
            ids = merge(ids, pair, new_id)
        return cls(merges)

    @property
    def vocab_size(self):
        return len(self.pieces)

    def encode(self, text):
        ids = np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)
        for k, pair in enumerate(self.merges):
            ids = merge(ids, pair, 256 + k)
        return ids.tolist()

    def decode(self, ids):
        """The text; a cut inside a character (a sample may end there) shows as U+FFFD."""
        return b"".join(self.pieces[int(i)] for i in ids).decode("utf-8", errors="replace")

    def to_dict(self):
        return {"kind": self.kind, "merges": [list(m) for m in self.merges]}
