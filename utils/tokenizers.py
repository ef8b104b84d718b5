"""Tokenizers: text <-> list of integer ids.

Every tokenizer has the same small interface, so callers never care which one they hold:
    tok.encode(text) -> list[int]      tok.decode(ids) -> str      tok.vocab_size
    tok.to_dict() -> plain dict (for checkpoints)   tokenizer_from_dict(d) -> the tokenizer back
Word-level and BPE tokenizers join by implementing the same four things.
"""
from utils.errors import UserError


class UnknownTokenError(UserError):
    pass


class CharTokenizer:
    """Character level; the vocabulary is the sorted set of characters in the training text."""

    kind = "char"

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            shown = " ".join(repr(c) for c in unknown)
            raise UnknownTokenError(f"characters not in the vocabulary: {shown}")
        return [self.index[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def to_dict(self):
        return {"kind": self.kind, "chars": self.chars}


def tokenizer_from_dict(d):
    if d.get("kind") == "char":
        return CharTokenizer(d["chars"])
    raise UserError(f"unknown tokenizer kind in checkpoint: {d.get('kind')!r}")
