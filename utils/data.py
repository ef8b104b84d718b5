"""Corpora: download on first use into data/, verify the checksum, read as UTF-8 text.

    text = load_corpus("tinyshakespeare")   # a known corpus, fetched once into data/
    text = load_corpus("my_notes.txt")      # or any UTF-8 text file (the --data flag)
    train, val = split(text)                # first 90% / last 10%
"""
import hashlib
import os
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from utils.errors import UserError
from utils.tokenizers import CharTokenizer

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


@dataclass(frozen=True)
class Corpus:
    url: str
    sha256: str
    filename: str  # relative to data/


CORPORA = {
    "tinyshakespeare": Corpus(
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        sha256="86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        filename="tinyshakespeare.txt",
    ),
}


def sha256_of(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it into place:
    a crash or Ctrl-C never leaves a half-written file where a good one was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def download(url, path, sha256):
    """Fetch url into path with a progress bar; the file only appears if its checksum matches."""
    hint = f"download {url} to {path} by hand, or pass --data FILE"
    try:
        response = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise UserError(f"cannot download {url} ({reason}): {hint}") from None

    def write(f):
        h = hashlib.sha256()
        total = int(response.headers.get("Content-Length") or 0) or None
        with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {path.name}") as bar:
            while block := response.read(1 << 16):
                f.write(block)
                h.update(block)
                bar.update(len(block))
        if h.hexdigest() != sha256:
            raise UserError(f"checksum mismatch for {url} (got {h.hexdigest()}, expected {sha256}): {hint}")

    with response:
        atomic_write(path, write)


def fetch(name):
    """Path of a known corpus in data/, downloading it first if it is not there yet."""
    corpus = CORPORA[name]
    path = DATA_DIR / corpus.filename
    if not path.exists():
        download(corpus.url, path, corpus.sha256)
    elif sha256_of(path) != corpus.sha256:
        raise UserError(f"{path} does not match the checksum of {corpus.url}: delete it to download it again")
    return path


def read_text(path):
    """A UTF-8 text file as a str; empty or undecodable files are a UserError."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (invalid byte at offset {e.start})") from None
    if not text.strip():
        raise UserError(f"{path} is empty")
    return text


def load_corpus(name_or_path="tinyshakespeare"):
    """Text of a known corpus (by name) or of any UTF-8 file (by path)."""
    if name_or_path in CORPORA:
        return read_text(fetch(name_or_path))
    if not Path(name_or_path).exists():
        known = ", ".join(CORPORA)
        raise UserError(f"no such file: {name_or_path} (known corpora: {known})")
    return read_text(name_or_path)


def split(sequence, train_fraction=0.9):
    """First train_fraction for training, the rest for validation (no shuffling: text is ordered)."""
    n = int(len(sequence) * train_fraction)
    return sequence[:n], sequence[n:]


def char_lm_data(name_or_path, train_fraction=0.9):
    """A character-level corpus ready for a language model: (tokenizer, train ids, val ids).

    The vocabulary is the sorted set of characters of the training split. Should the validation
    split hold characters the training split never shows (possible with --data FILE), they are
    appended to the vocabulary, with a note, so the whole split can still be scored."""
    train_text, val_text = split(load_corpus(name_or_path), train_fraction)
    tokenizer = CharTokenizer.from_text(train_text)
    unseen = sorted(set(val_text) - set(train_text))
    if unseen:
        print(f"note: {len(unseen)} characters occur only in the validation split; added to the vocabulary")
        tokenizer = CharTokenizer(tokenizer.chars + unseen)
    train = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
    val = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
    return tokenizer, train, val
