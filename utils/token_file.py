"""Corpora larger than memory: a text file encoded once into a file of character ids under data/,
then read through a numpy memory map, so that memory does not grow with the corpus.

    tokenizer, train, val = char_memmap_data("big.txt")    # what char_lm_data gives, for big files
    train[i:j]           # a numpy memmap slice (uint16 or uint32); utils/batching.py reads it per batch

The cache is data/<file name>.<sha256 prefix>.<key>.<u16|u32> beside a .json of the same name
(the vocabulary, the split point, the notes to repeat), keyed by the file's content (its SHA-256,
read in a first pass) and the tokenizer: key "char" for the file's own vocabulary, "char-<hash>"
for a given one (a checkpoint's). Both are written atomically, the token file first, so a .json
means a complete cache.

Encoding reads the file in blocks of BLOCK_BYTES, decodes them (UTF-8, incrementally, so that a
character cut by a block boundary is whole in the next), reads Windows line ends as \\n, and maps
the code points to ids with one lookup table over all of Unicode (numpy, no Python loop over
characters). Ids are given in order of first appearance while reading, since the vocabulary (the
sorted characters of the training split) is only known at the end; one pass over the ids then
renumbers them. The result is the same ids, vocabulary and notes as the in-memory path
(utils/data.py char_lm_data), which tests/test_token_file.py checks.

The validation split is the same last 10%, but at most VAL_TOKENS of it (its first ones) are
scored: the evaluation protocol keeps a loss per target, and would grow with the corpus.
"""
import codecs
import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from utils.errors import UserError
from utils.tokenizers import CharTokenizer

BLOCK_BYTES = 1 << 23          # 8 MiB of the file decoded at a time
VAL_TOKENS = 1_000_000         # at most this many validation characters are scored
UNICODE = 0x110000             # code points 0 .. U+10FFFF
U16_MAX = 1 << 16              # vocabularies of up to 65,536 characters fit uint16 ids


def file_sha256(path, desc):
    """The SHA-256 of a file, read in blocks, with a progress bar."""
    h = hashlib.sha256()
    with open(path, "rb") as f, tqdm(total=os.path.getsize(path), unit="B", unit_scale=True, desc=desc,
                                     leave=False) as bar:
        while block := f.read(BLOCK_BYTES):
            h.update(block)
            bar.update(len(block))
    return h.hexdigest()


def cache_paths(path, sha256, key, dtype, data_dir):
    stem = f"{Path(path).name}.{sha256[:16]}.{key}.{'u16' if dtype == np.uint16 else 'u32'}"
    return Path(data_dir) / stem, Path(data_dir) / (stem + ".json")


def vocabulary_key(chars):
    """The tokenizer part of a cache name: "char-" and a hash of the given vocabulary."""
    return "char-" + hashlib.sha256(json.dumps(list(chars)).encode("utf-8")).hexdigest()[:12]


class NeedsWideIds(Exception):
    """More than 65,536 distinct characters: the file is encoded again with uint32 ids."""


def encode_blocks(path, out, dtype, lut, chars, fixed):
    """Encode the text of `path` into the open file `out`, block by block, as `dtype` ids.
    lut: code point -> id (-1: not seen yet), grown in place as new characters appear unless
    `fixed` (a given vocabulary: a new character is a UserError); chars: id -> character, grown the
    same way. Returns (number of characters, count of each id, Windows line ends read as \\n)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    counts = np.zeros(len(chars), dtype=np.int64)
    n, crlf, consumed, cr_carried = 0, 0, 0, False
    with open(path, "rb") as f, tqdm(total=os.path.getsize(path), unit="B", unit_scale=True,
                                     desc=f"encoding {Path(path).name}") as bar:
        while True:
            block = f.read(BLOCK_BYTES)
            pending = len(decoder.getstate()[0])
            try:
                text = decoder.decode(block, final=not block)
            except UnicodeDecodeError as e:
                raise UserError(f"{path} is not UTF-8 text (invalid byte at offset {consumed - pending + e.start})") \
                    from None
            consumed += len(block)
            # Windows line ends as \n; a \r at the end of a block may be the first half of one
            if cr_carried:
                text = "\r" + text
            cr_carried = bool(block) and text.endswith("\r")
            if cr_carried:
                text = text[:-1]
            if "\r\n" in text:
                crlf += text.count("\r\n")
                text = text.replace("\r\n", "\n")
            # intp indices into an int32 table: numpy's fastest gather (an int64 table, or uint32
            # indices, are ten times slower)
            codes = np.frombuffer(text.encode("utf-32-le"), dtype=np.uint32).astype(np.intp)
            ids = lut[codes]
            if (ids < 0).any():
                new = np.unique(codes[ids < 0])
                if fixed:
                    shown = " ".join(repr(chr(c)) for c in new)
                    raise UserError(f"characters not in the vocabulary: {shown}")
                if len(chars) + len(new) > U16_MAX and dtype == np.uint16:
                    raise NeedsWideIds
                lut[new] = np.arange(len(chars), len(chars) + len(new))
                chars.extend(chr(c) for c in new)
                counts = np.concatenate([counts, np.zeros(len(new), dtype=np.int64)])
                ids = lut[codes]
            counts += np.bincount(ids, minlength=len(chars))
            out.write(ids.astype(dtype).tobytes())
            n += len(ids)
            bar.update(len(block))
            if not block:
                return n, counts, crlf


def encode_file(path, token_path, meta_path, sha256, train_fraction, vocab=None):
    """Encode `path` into token_path and write meta_path (see the module docstring); returns the
    meta dict. vocab: the given characters (a checkpoint's), else the file's own vocabulary."""
    from utils.data import atomic_write, check_char_counts, list_chars
    dtype = np.uint32 if token_path.suffix == ".u32" else np.uint16
    start, size = time.perf_counter(), os.path.getsize(path)
    meta = {}

    def write(out):
        lut = np.full(UNICODE, -1, dtype=np.int32)
        chars = list(vocab or [])
        lut[[ord(c) for c in chars]] = np.arange(len(chars))
        n, counts, crlf = encode_blocks(path, out, dtype, lut, chars, fixed=vocab is not None)
        out.flush()
        if crlf:
            print(f"note: {path}: {crlf:,} Windows line ends (\\r\\n) read as \\n")
        if n == 0 or all(c.isspace() for c, k in zip(chars, counts) if k):
            raise UserError(f"{path} is empty")
        check_char_counts({c: int(k) for c, k in zip(chars, counts) if k}, n, path)
        n_train = int(n * train_fraction)
        ids = np.memmap(out, dtype=dtype, mode="r+", shape=(n,))
        unseen = []
        if vocab is None:
            # the vocabulary: the sorted characters of the training split, then those only in validation
            in_val = np.zeros(len(chars), dtype=np.int64)
            for i in range(n_train, n, BLOCK_BYTES):
                in_val += np.bincount(ids[i:min(n, i + BLOCK_BYTES)], minlength=len(chars))
            in_train = counts - in_val
            seen = sorted(c for c, k in zip(chars, in_train) if k)
            unseen = sorted(c for c, k, v in zip(chars, in_train, in_val) if not k and v)
            final = seen + unseen
            position = {c: i for i, c in enumerate(final)}       # every character read is in one split
            renumber = np.array([position[c] for c in chars], dtype=dtype)
            if (renumber != np.arange(len(chars))).any():
                for i in tqdm(range(0, n, BLOCK_BYTES), desc="numbering", leave=False):
                    ids[i:i + BLOCK_BYTES] = renumber[ids[i:i + BLOCK_BYTES].astype(np.intp)]
            chars = final
        ids.flush()
        del ids
        seconds = time.perf_counter() - start
        meta.update(source=str(path), sha256=sha256, bytes=size, tokens=n, train=n_train, chars=chars,
                    crlf=crlf, unseen=unseen, seconds=round(seconds, 3))
        print(f"encoded {size / 1e6:,.1f} MB in {seconds:.1f} s ({size / 1e6 / seconds:.1f} MB/s): "
              f"{n:,} characters, {len(chars)} distinct, into {token_path}")
        if unseen:
            print(f"note: {len(unseen)} characters occur only in the validation split ({list_chars(unseen)}); "
                  f"added to the vocabulary")

    print(f"encoding {path} ({size / 1e6:,.1f} MB) once into {token_path}")
    atomic_write(token_path, write)
    atomic_write(meta_path, lambda f: f.write(json.dumps(meta).encode("utf-8")))
    return meta


def char_memmap_data(path, train_fraction=0.9, tokenizer=None, data_dir=None, val_tokens=VAL_TOKENS):
    """(tokenizer, train ids, val ids) of a character model, through the cache of `path`: train a
    read-only numpy memmap (uint16 or uint32), val at most `val_tokens` ids as a torch tensor.
    tokenizer: encode with this CharTokenizer (a checkpoint's) instead of the file's own."""
    from utils.data import DATA_DIR, list_chars
    data_dir = Path(data_dir or DATA_DIR)
    sha256 = file_sha256(path, f"hashing {Path(path).name}")
    vocab = None if tokenizer is None else tokenizer.chars
    key = "char" if vocab is None else vocabulary_key(vocab)
    dtypes = (np.uint16, np.uint32) if vocab is None or len(vocab) <= U16_MAX else (np.uint32,)
    for dtype in dtypes:
        token_path, meta_path = cache_paths(path, sha256, key, dtype, data_dir)
        if meta_path.exists() and token_path.exists():
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            print(f"reading {path} as {token_path} (encoded before)")
            if meta["crlf"]:
                print(f"note: {path}: {meta['crlf']:,} Windows line ends (\\r\\n) read as \\n")
            if meta["unseen"]:
                print(f"note: {len(meta['unseen'])} characters occur only in the validation split "
                      f"({list_chars(meta['unseen'])}); added to the vocabulary")
            break
    else:
        for dtype in dtypes:
            token_path, meta_path = cache_paths(path, sha256, key, dtype, data_dir)
            try:
                meta = encode_file(path, token_path, meta_path, sha256, train_fraction, vocab)
                break
            except NeedsWideIds:
                print(f"{path}: more than {U16_MAX:,} distinct characters: encoding again with 32-bit ids")
    ids = np.memmap(token_path, dtype=dtype, mode="r", shape=(meta["tokens"],))
    train, val = ids[:meta["train"]], ids[meta["train"]:]
    if len(val) > val_tokens:
        print(f"note: the validation split holds {len(val):,} characters: the first {val_tokens:,} of them "
              f"are scored (utils/token_file.py VAL_TOKENS)")
        val = val[:val_tokens]
    return tokenizer or CharTokenizer(meta["chars"]), train, torch.from_numpy(val.astype(np.int64))
