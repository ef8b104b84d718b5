"""Corpora: download on first use into data/, verify the checksum, read as UTF-8 text.

    text = load_corpus("tinyshakespeare")   # a known corpus, fetched once into data/
    text = load_corpus("my_notes.txt")      # or any UTF-8 text file (the --data flag)
    train, val = split(text)                # first 90% / last 10%
    pairs = load_parallel("de", "en")       # Multi30k: {"train": (German, English), "val": ..., "test": ...}
"""
import gzip
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

# Multi30k task 1 (Elliott et al. 2016), raw text, gzip: 29,000 / 1,014 / 1,000 aligned sentences;
# line i of train.en translates to line i of train.de and train.fr
MULTI30K = "multi30k"
MULTI30K_LANGUAGES = ("de", "en", "fr")
MULTI30K_SPLITS = {"train": "train", "val": "val", "test": "test_2016_flickr"}   # split -> file stem
MULTI30K_SHA256 = {
    "train.de.gz": "726e39b2fa9eb9ffb6dc763fb35a179f80fae06ffc5d28b6ace5faa883de28a6",
    "train.en.gz": "d79cfa999dd4c51d2cb42499b6796d5a882c3a8a961923c25a898c90f8bbd56f",
    "train.fr.gz": "622e75069e9f4c577425c4f277116ce66e63a2401c0a2312d90073cb12379a3c",
    "val.de.gz": "f0cba2f995189cf5770f29a8a9a537a3ad3f51657ad873405082ff6863a5e75a",
    "val.en.gz": "14f7d25ddd868909a9213e361768460edcacdd6ab9d1e77b92560dc10c10dc28",
    "val.fr.gz": "ca3106f1a72390591d25f6c45cb4cd39dec4cd3f123e099748a3ce5256c160e9",
    "test_2016_flickr.de.gz": "9204244e408ccb38d2a55cfcd344df15005fc42a07a6e55ca6c52b6ababb8cc8",
    "test_2016_flickr.en.gz": "611d361c6334bc7246101d48097c13cf5c4413c5befc793cc629934359d532d9",
    "test_2016_flickr.fr.gz": "6d326e188d259fb1d04ac19eae3af956559b3a0b93d7635e56c90987c40c8b90",
}
CORPORA.update({
    f"{MULTI30K}/{file}": Corpus(url=f"https://raw.githubusercontent.com/multi30k/dataset/master/data/task1/raw/{file}",
                                 sha256=sha256, filename=f"{MULTI30K}/{file}")
    for file, sha256 in MULTI30K_SHA256.items()
})


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


def download(url, path, sha256, hint=None):
    """Fetch url into path with a progress bar; the file only appears if its checksum matches.
    `hint` ends the error message when that fails (default: fetch by hand, or pass --data FILE)."""
    hint = hint or f"download {url} to {path} by hand, or pass --data FILE"
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


def fetch(name, hint=None):
    """Path of a known corpus in data/, downloading it first if it is not there yet."""
    corpus = CORPORA[name]
    path = DATA_DIR / corpus.filename
    if not path.exists():
        download(corpus.url, path, corpus.sha256, hint)
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


# ---------------------------------------------------------------- parallel text (translation)

def read_lines(path):
    """The lines of a UTF-8 text file, gzip-compressed when its name ends in .gz, without their
    line ends; a file that cannot be read that way is a UserError."""
    path = Path(path)
    try:
        if path.suffix == ".gz":
            with gzip.open(path, "rt", encoding="utf-8", newline="\n") as f:
                text = f.read()
        else:
            text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise UserError(f"{path} is not UTF-8 text (invalid byte at offset {e.start})") from None
    except (OSError, EOFError) as e:
        raise UserError(f"cannot read {path} ({e})") from None
    lines = text.split("\n")         # not splitlines(): a U+2028 inside a sentence must not split it
    if lines[-1] == "":
        lines.pop()
    return [line.rstrip("\r") for line in lines]


def parallel_file(split_name, lang, data_dir):
    """Path of one side of one split: Multi30k's file in data/ (fetched on first use) when data_dir
    is None or "multi30k", else {stem}.{lang}.gz or {stem}.{lang} inside the folder data_dir."""
    stem = MULTI30K_SPLITS[split_name]
    if data_dir in (None, MULTI30K):
        if lang not in MULTI30K_LANGUAGES:
            raise UserError(f"Multi30k has no {lang!r} side: choose --src/--tgt among "
                            f"{', '.join(MULTI30K_LANGUAGES)}")
        name = f"{MULTI30K}/{stem}.{lang}.gz"
        corpus = CORPORA[name]
        hint = (f"download {corpus.url} to {DATA_DIR / corpus.filename} by hand, "
                f"or pass --data DIR (a folder holding {stem}.{lang}.gz)")
        return fetch(name, hint)
    if data_dir in CORPORA:
        raise UserError(f"--data {data_dir} is a text corpus for language modelling: translation reads "
                        f"--data {MULTI30K} or a folder of {{train,val,test_2016_flickr}}.{{src,tgt}}.gz files")
    folder = Path(data_dir)
    if not folder.is_dir():
        raise UserError(f"--data {data_dir}: no such folder (translation reads --data {MULTI30K}, "
                        f"or a folder of {{train,val,test_2016_flickr}}.{{src,tgt}}.gz files)")
    for path in (folder / f"{stem}.{lang}.gz", folder / f"{stem}.{lang}"):
        if path.is_file():
            return path
    raise UserError(f"--data {data_dir}: no {stem}.{lang}.gz (nor {stem}.{lang}) in that folder "
                    f"for the {lang!r} side of the {split_name} split")


def load_parallel(src="de", tgt="en", data_dir=None):
    """Aligned sentences of a parallel corpus: {"train"|"val"|"test": (src sentences, tgt sentences)},
    line i of one list translating line i of the other. Multi30k (downloaded into data/multi30k/ on
    first use) unless data_dir names a folder with the same file names."""
    if src == tgt:
        raise UserError(f"--src and --tgt are both {src!r}: translate between two languages")
    splits = {}
    for split_name in MULTI30K_SPLITS:
        src_path, tgt_path = parallel_file(split_name, src, data_dir), parallel_file(split_name, tgt, data_dir)
        src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
        if len(src_lines) != len(tgt_lines):
            raise UserError(f"{src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}: "
                            f"the two sides of a parallel corpus must be aligned line by line")
        splits[split_name] = (src_lines, tgt_lines)
    return splits
