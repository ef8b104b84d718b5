"""Corpora: download on first use into data/, verify the checksum, read as UTF-8 text.

    text = load_corpus("tinyshakespeare")   # a known corpus, fetched once into data/
    text = load_corpus("my_notes.txt")      # or any UTF-8 text file (the --data flag)
    train, val = split(text)                # first 90% / last 10%
    tok, splits = lm_splits("brown")        # words: {"train", "val", "test"} ids, Bengio's split
    pairs = load_parallel("de", "en")       # Multi30k: {"train": (German, English), "val": ..., "test": ...}
"""
import collections
import functools
import gzip
import hashlib
import os
import re
import tempfile
import unicodedata
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import torch
from tqdm import tqdm

from utils.errors import UserError
from utils.tokenizers import CharTokenizer, CorpusWordTokenizer

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
    # NLTK's packaging of the Brown corpus: a zip of 500 files, tokens as word/tag (utils/brown.py)
    "brown": Corpus(
        url="https://raw.githubusercontent.com/nltk/nltk_data/gh-pages/packages/corpora/brown.zip",
        sha256="9b275f9b3b95d7bd66ccfb7cd259f445a13bbe5d1f4107aba09fd3e8364bafa6",
        filename="brown.zip",
    ),
}
WORD_CORPORA = ("brown",)          # known corpora that are read as words, not characters

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


@functools.lru_cache(maxsize=None)
def default_file_mode():
    """The permissions open() would give a new file: 0o666 less the umask. The umask can only be
    read by setting it, so it is set and restored at once, and read once per process."""
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def pid_alive(pid):
    """Whether a process with this id runs (signal 0 checks without sending anything). Another
    user's process (PermissionError) runs too; any other doubt counts as alive: keep its file."""
    if os.name == "nt":                # there os.kill(pid, 0) would terminate the process
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, OverflowError):
        return True
    return True


def temporary_pattern(path):
    """The names atomic_write gives its temporaries of `path`: .<name>.<pid>.<random>.tmp, the
    random part without dots (mkstemp's letters), so a target named model.pt.1 cannot pass for
    a temporary of model.pt. Group 1: the writer's pid."""
    return re.compile(rf"^\.{re.escape(path.name)}\.(\d+)\.[A-Za-z0-9_]+\.tmp$")


def remove_stale_temporaries(path):
    """Delete the temporaries of `path` whose writer is gone (a kill -9 in the middle of a save
    leaves one behind); those of writers still running are theirs, and stay."""
    pattern = temporary_pattern(path)
    for tmp in path.parent.iterdir():
        match = pattern.match(tmp.name)
        if match and int(match.group(1)) != os.getpid() and not pid_alive(int(match.group(1))):
            try:
                tmp.unlink()
            except FileNotFoundError:        # another writer cleaned it up first
                pass


def atomic_write(path, write):
    """Call write(file) on a temporary file beside `path`, then rename it into place:
    a crash or Ctrl-C never leaves a half-written file where a good one was. The temporary carries
    the writer's pid, so that a later write can tell a dead writer's leftover from a live one's;
    the file gets the mode open() would give it (mkstemp's is 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.{os.getpid()}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w+b") as f:             # readable too: a writer may map what it wrote
            write(f)
        os.chmod(tmp, default_file_mode())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


class DownloadFailed(UserError):
    """The URL could not be reached (offline, a refused connection): `reason` says why."""

    def __init__(self, message, reason):
        super().__init__(message)
        self.reason = reason


def download(url, path, sha256, hint=None):
    """Fetch url into path with a progress bar; the file only appears if its checksum matches.
    `hint` ends the error message when that fails (default: fetch by hand, or pass --data FILE)."""
    hint = hint or f"download {url} to {path} by hand, or pass --data FILE"
    try:
        response = urllib.request.urlopen(url, timeout=30)
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", e)
        raise DownloadFailed(f"cannot download {url} ({reason}): {hint}", reason) from None

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
    """A UTF-8 text file as a str; a directory, an empty or an undecodable file is a UserError."""
    path = Path(path)
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a text file: give one UTF-8 text file")
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


def normalise_line_ends(text, source):
    """Windows line ends (\\r\\n) as \\n, with a note: otherwise every line of a file saved on
    Windows ends in a '\\r' the model must learn to emit, and its samples carry it."""
    crlf = text.count("\r\n")
    if crlf:
        text = text.replace("\r\n", "\n")
        print(f"note: {source}: {crlf:,} Windows line ends (\\r\\n) read as \\n")
    return text


# control characters that belong in text
TEXT_CONTROLS = {"\n", "\t", "\r"}


def check_char_corpus(text, source):
    """A UserError for text a character model cannot learn from: fewer than two distinct characters
    (20,000 NUL bytes are valid UTF-8, and would train a model of one symbol), or mostly control
    characters (a binary file that happens to decode)."""
    check_char_counts(collections.Counter(text), len(text), source)


def check_char_counts(counts, length, source):
    """check_char_corpus from the count of each character (`counts`) of a text of `length`."""
    if len(counts) < 2:
        (char, n), = counts.items()
        raise UserError(f"{source} holds one distinct character ({char!r}, {n:,} times): "
                        f"a language model needs text with at least two")
    controls = {c: n for c, n in counts.items() if c not in TEXT_CONTROLS and unicodedata.category(c) == "Cc"}
    if sum(controls.values()) * 2 > length:
        share = sum(controls.values()) / length
        examples = ", ".join(repr(c) for c in sorted(controls, key=controls.get, reverse=True)[:3])
        raise UserError(f"{source}: {share:.0%} of its characters are control characters ({examples}, ...): "
                        f"not text; give a UTF-8 text file")


def language_model_corpora():
    """The known corpora a language model reads (Multi30k's files, named multi30k/..., are for translation)."""
    return [name for name in CORPORA if "/" not in name]


def load_corpus(name_or_path="tinyshakespeare"):
    """Text of a known corpus (by name) or of any UTF-8 file (by path), for a character model:
    Windows line ends read as \\n, and degenerate text (one symbol, mostly control characters)
    refused."""
    if name_or_path in WORD_CORPORA:
        raise UserError(f"--data {name_or_path} is read as words: --tokenizer word (its default)")
    if name_or_path in CORPORA:
        text = read_text(fetch(name_or_path))
    elif not Path(name_or_path).exists():
        known = ", ".join(language_model_corpora())
        raise UserError(f"no such file: {name_or_path} (known corpora: {known})")
    else:
        text = read_text(name_or_path)
    text = normalise_line_ends(text, name_or_path)
    check_char_corpus(text, name_or_path)
    return text


def split(sequence, train_fraction=0.9):
    """First train_fraction for training, the rest for validation (no shuffling: text is ordered)."""
    n = int(len(sequence) * train_fraction)
    return sequence[:n], sequence[n:]


def list_chars(chars, limit=20):
    """Characters for a message, each as its repr ('é', '\\x0c'), the first `limit` of them."""
    shown = ", ".join(repr(c) for c in chars[:limit])
    return shown + (f" and {len(chars) - limit} more" if len(chars) > limit else "")


def char_lm_data(name_or_path, train_fraction=0.9):
    """A character-level corpus ready for a language model: (tokenizer, train ids, val ids).

    The vocabulary is the sorted set of characters of the training split. Should the validation
    split hold characters the training split never shows (possible with --data FILE), they are
    appended to the vocabulary, with a note, so the whole split can still be scored."""
    train_text, val_text = split(load_corpus(name_or_path), train_fraction)
    tokenizer = CharTokenizer.from_text(train_text)
    unseen = sorted(set(val_text) - set(train_text))
    if unseen:
        print(f"note: {len(unseen)} characters occur only in the validation split ({list_chars(unseen)}); "
              f"added to the vocabulary")
        tokenizer = CharTokenizer(tokenizer.chars + unseen)
    train = torch.tensor(tokenizer.encode(train_text), dtype=torch.long)
    val = torch.tensor(tokenizer.encode(val_text), dtype=torch.long)
    return tokenizer, train, val


# a text file larger than this is encoded once into a memory-mapped token file (utils/token_file.py)
# rather than read into memory (16 MiB; the environment variable NN_MEMMAP_BYTES sets another
# threshold, 0 for every file)
MEMMAP_BYTES = 16 << 20


def memmap_bytes():
    """The threshold: NN_MEMMAP_BYTES if set, else MEMMAP_BYTES."""
    value = os.environ.get("NN_MEMMAP_BYTES")
    if value is None:
        return MEMMAP_BYTES
    if not value.isdigit():
        raise UserError(f"NN_MEMMAP_BYTES={value!r}: give a number of bytes (0: every file memory-mapped)")
    return int(value)


def corpus_path(name_or_path):
    """The file a character corpus is read from (a known corpus fetched first), with
    load_corpus's errors for a name that is neither."""
    if name_or_path in WORD_CORPORA:
        raise UserError(f"--data {name_or_path} is read as words: --tokenizer word (its default)")
    if name_or_path in CORPORA:
        return fetch(name_or_path)
    path = Path(name_or_path)
    if not path.exists():
        known = ", ".join(language_model_corpora())
        raise UserError(f"no such file: {name_or_path} (known corpora: {known})")
    if path.is_dir():
        raise UserError(f"{path} is a directory, not a text file: give one UTF-8 text file")
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    return path


def use_memmap(name_or_path, kind, memmap):
    """Whether lm_splits reads the corpus through a memory-mapped token file: `memmap` True or
    False, or None (the default): for a file (--data FILE) larger than memmap_bytes(); the known
    corpora are small, and read into memory. Only characters go that way: a word or BPE tokenizer
    on such a file is a UserError (both would read the whole text into memory)."""
    if memmap is None:
        if name_or_path in CORPORA or not Path(name_or_path).is_file():
            return False               # a known corpus, or load_corpus's error for what is no file
        memmap = os.path.getsize(name_or_path) > memmap_bytes()
    if memmap and kind != "char":
        size = os.path.getsize(corpus_path(name_or_path))
        raise UserError(f"--data {name_or_path} ({size / 1e6:,.0f} MB) is read through a memory-mapped file of "
                        f"character ids, which a {kind} tokenizer cannot use: --tokenizer char, "
                        f"or a file of at most {memmap_bytes() / 1e6:.0f} MB")
    return bool(memmap)


TOKENIZERS = ("auto", "char", "word", "bpe")
VOCAB_COUNTS = ("auto", "train", "all")


def lm_splits(name_or_path, kind="auto", tokenizer=None, vocab_counts="auto", vocab_size=1024, memmap=None):
    """(tokenizer, {"train": ids, "val": ids[, "test": ids]}) for a language model.

    kind: "char", "word" (utils/tokenizers.py CorpusWordTokenizer: white-space words, those seen 3
    times or fewer as <unk>), or "auto": words for Brown, characters otherwise. Brown has Bengio et
    al.'s three splits (utils/brown.py); any other text the first 90% / the last 10%.
    vocab_counts: where a word is counted to decide whether it is rare, "train" (the training split)
    or "all" (every split, as Bengio et al.'s Brown numbers imply: utils/brown.py says why);
    "auto": all for Brown, train otherwise.
    kind "bpe": utils/bpe.py's byte-level BPE of vocab_size tokens, learned from the training split.
    `tokenizer`: encode with this one (a checkpoint's) instead of building one.
    memmap (see use_memmap; default: for files over MEMMAP_BYTES): characters through the cache of
    utils/token_file.py, the same ids, the training split a numpy memmap that utils/batching.py
    reads batch by batch, and at most token_file.VAL_TOKENS validation characters."""
    if kind == "auto":
        kind = "word" if name_or_path in WORD_CORPORA else "char"
    if use_memmap(name_or_path, kind if tokenizer is None else tokenizer.kind, memmap):
        from utils.token_file import char_memmap_data
        tokenizer, train, val = char_memmap_data(corpus_path(name_or_path), tokenizer=tokenizer)
        return tokenizer, {"train": train, "val": val}
    if kind == "bpe":
        from utils.bpe import BPETokenizer
        train_text, val_text = split(load_corpus(name_or_path))
        if tokenizer is None:
            if vocab_size < 256:
                raise UserError(f"--vocab-size {vocab_size}: a byte-level BPE has at least the 256 bytes")
            print(f"learning a byte-pair encoding of {vocab_size:,} tokens from the training split")
            tokenizer = BPETokenizer.train(train_text, vocab_size)
        return tokenizer, {"train": encode_ids(tokenizer, train_text), "val": encode_ids(tokenizer, val_text)}
    if kind == "char":
        if tokenizer is not None:
            train_text, val_text = split(load_corpus(name_or_path))
            return tokenizer, {"train": encode_ids(tokenizer, train_text), "val": encode_ids(tokenizer, val_text)}
        tokenizer, train, val = char_lm_data(name_or_path)
        return tokenizer, {"train": train, "val": val}
    if name_or_path in WORD_CORPORA:
        from utils.brown import bengio_split, read_brown
        splits = dict(zip(("train", "val", "test"), bengio_split(read_brown(fetch(name_or_path)))))
    else:
        train, val = split(CorpusWordTokenizer.split(load_corpus(name_or_path)))
        splits = {"train": train, "val": val}
    if vocab_counts == "auto":
        vocab_counts = "all" if name_or_path in WORD_CORPORA else "train"
    if tokenizer is None:
        counted = splits["train"] if vocab_counts == "train" else [w for part in splits.values() for w in part]
        tokenizer = CorpusWordTokenizer.from_tokens(counted)
    if tokenizer.kind != CorpusWordTokenizer.kind:
        raise UserError(f"the checkpoint's tokenizer reads {tokenizer.kind}s, not the words of {name_or_path}")
    ids = {name: torch.tensor(tokenizer.encode_tokens(tokens), dtype=torch.long) for name, tokens in splits.items()}
    if len(ids["val"]) < 2:
        raise UserError(f"{name_or_path}: fewer than two words in the validation split")
    return tokenizer, ids


def encode_ids(tokenizer, text):
    return torch.tensor(tokenizer.encode(text), dtype=torch.long)


def lm_data(name_or_path, kind="auto", vocab_counts="auto", vocab_size=1024, memmap=None):
    """(tokenizer, train ids, val ids): what a language model's train.py reads (see lm_splits)."""
    tokenizer, splits = lm_splits(name_or_path, kind, vocab_counts=vocab_counts, vocab_size=vocab_size,
                                  memmap=memmap)
    return tokenizer, splits["train"], splits["val"]


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


def check_multi30k_languages(*langs):
    """A UserError, before any download, for a language Multi30k does not have."""
    for lang in langs:
        if lang not in MULTI30K_LANGUAGES:
            raise UserError(f"Multi30k has no {lang!r} side: choose --src/--tgt among "
                            f"{', '.join(MULTI30K_LANGUAGES)}")


def multi30k_name(split_name, lang):
    """The CORPORA name of one side of one split: multi30k/<stem>.<lang>.gz."""
    return f"{MULTI30K}/{MULTI30K_SPLITS[split_name]}.{lang}.gz"


def fetch_multi30k(langs):
    """Download every Multi30k file of these languages not yet in data/multi30k/. Offline, the
    error names all the files that could not be fetched at once (not one per run), with where each
    goes, and the --data DIR way around."""
    check_multi30k_languages(*langs)
    missing = [CORPORA[multi30k_name(split_name, lang)] for split_name in MULTI30K_SPLITS for lang in langs]
    missing = [corpus for corpus in missing if not (DATA_DIR / corpus.filename).exists()]
    failed, reason = [], None
    for corpus in missing:
        try:
            path = DATA_DIR / corpus.filename
            download(corpus.url, path, corpus.sha256, f"download {corpus.url} to {path} by hand, "
                     f"or pass --data DIR (a folder holding {path.name})")
        except DownloadFailed as e:
            failed.append(corpus)
            reason = reason or e.reason
    if failed:
        folder = DATA_DIR / MULTI30K
        raise UserError(f"cannot download {len(failed)} Multi30k file{'s' * (len(failed) > 1)} ({reason}): "
                        f"fetch {files_by_source(failed)} by hand into {folder}{os.sep}, "
                        f"or pass --data DIR (a folder holding those files)")


def files_by_source(corpora):
    """'a.gz, b.gz from https://host/dir/' for a message: the file names, grouped by the URL folder
    they come from (nine full URLs would bury the names)."""
    groups = {}
    for corpus in corpora:
        base, name = corpus.url.rsplit("/", 1)
        groups.setdefault(base + "/", []).append(name)
    return "; ".join(f"{', '.join(names)} from {base}" for base, names in groups.items())


def parallel_file(split_name, lang, data_dir):
    """Path of one side of one split: Multi30k's file in data/ (fetched on first use) when data_dir
    is None or "multi30k", else {stem}.{lang}.gz or {stem}.{lang} inside the folder data_dir."""
    stem = MULTI30K_SPLITS[split_name]
    if data_dir in (None, MULTI30K):
        check_multi30k_languages(lang)
        name = multi30k_name(split_name, lang)
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
    if data_dir in (None, MULTI30K):
        fetch_multi30k((src, tgt))
    splits = {}
    for split_name in MULTI30K_SPLITS:
        src_path, tgt_path = parallel_file(split_name, src, data_dir), parallel_file(split_name, tgt, data_dir)
        src_lines, tgt_lines = read_lines(src_path), read_lines(tgt_path)
        if len(src_lines) != len(tgt_lines):
            raise UserError(f"{src_path} has {len(src_lines)} lines but {tgt_path} has {len(tgt_lines)}: "
                            f"the two sides of a parallel corpus must be aligned line by line")
        splits[split_name] = (src_lines, tgt_lines)
    return splits
