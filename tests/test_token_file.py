"""utils/token_file.py: a corpus encoded into a memory-mapped file of ids gives the same ids,
vocabulary, notes and batches as the in-memory path (utils/data.py char_lm_data), at small size,
with the memory-mapped path forced."""
import numpy as np
import pytest
import torch

from conftest import TINY_TEXT
import utils.data as data
import utils.token_file as token_file
from utils.batching import random_blocks, stream_batches, train_chunks
from utils.errors import UserError
from utils.tokenizers import CharTokenizer

# multi-byte characters (2, 3 and 4 bytes), Windows line ends, and characters only in the last 10%
TEXT = ("Héllo wörld — ünïcode 🌹 text\r\nline two\r\n" + TINY_TEXT[:300]) * 30 + "Q€\r\n 🌹 end"


@pytest.fixture
def corpus(tmp_path, monkeypatch):
    """The text in a file, the cache in tmp_path/data, and blocks of 7 bytes, so that characters,
    and \\r\\n pairs, are cut by block boundaries everywhere."""
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(token_file, "BLOCK_BYTES", 7)
    path = tmp_path / "text.txt"
    path.write_bytes(TEXT.encode("utf-8"))
    return path


def both_paths(path, capsys, **kw):
    tok1, in_memory = data.lm_splits(str(path), "char", memmap=False, **kw)
    out1 = capsys.readouterr().out
    tok2, mapped = data.lm_splits(str(path), "char", memmap=True, **kw)
    out2 = capsys.readouterr().out
    return (tok1, in_memory, out1), (tok2, mapped, out2)


def test_the_memory_map_holds_the_same_ids_vocabulary_and_notes(corpus, capsys):
    (tok1, a, out1), (tok2, b, out2) = both_paths(corpus, capsys)
    assert isinstance(b["train"], np.memmap) and b["train"].dtype == np.uint16
    assert tok2.to_dict() == tok1.to_dict()
    assert tok1.chars[-2:] == ["Q", "€"]                          # only in validation: appended
    assert np.array_equal(b["train"], a["train"].numpy())
    assert torch.equal(b["val"], a["val"])
    for note in ("Windows line ends", "occur only in the validation split"):
        line = next(l for l in out1.splitlines() if note in l)
        assert line in out2.splitlines()
    assert "encoded" in out2 and "MB/s" in out2
    # the second time the file is read from the cache, with the same notes
    _, c = data.lm_splits(str(corpus), "char", memmap=True)
    out3 = capsys.readouterr().out
    assert "encoded before" in out3 and "encoded 0" not in out3 and "Windows line ends" in out3
    assert np.array_equal(c["train"], b["train"])
    assert len(list((corpus.parent / "data").glob("text.txt.*"))) == 2     # the ids and their .json


def test_the_same_batches_from_the_memory_map(corpus, capsys):
    (_, a, _), (_, b, _) = both_paths(corpus, capsys)
    for seed in (0, 1):
        g1, g2 = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
        for _ in range(3):
            x1, y1 = random_blocks(a["train"], 5, 16, generator=g1)
            x2, y2 = random_blocks(b["train"], 5, 16, generator=g2)
            assert x2.dtype == torch.long and torch.equal(x1, x2) and torch.equal(y1, y2)
    for (x1, y1), (x2, y2) in zip(stream_batches(a["train"], 4, 50), stream_batches(b["train"], 4, 50),
                                  strict=True):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    chunks1, chunks2 = train_chunks(a["train"], 3, 40, start_step=5), train_chunks(b["train"], 3, 40, start_step=5)
    for _ in range(30):                                                  # past the end of a pass
        (x1, y1, first1), (x2, y2, first2) = next(chunks1), next(chunks2)
        assert torch.equal(x1, x2) and torch.equal(y1, y2) and first1 == first2


def test_a_new_text_is_encoded_again(corpus, capsys):
    data.lm_splits(str(corpus), "char", memmap=True)
    corpus.write_bytes((TEXT + "more").encode("utf-8"))
    _, b = data.lm_splits(str(corpus), "char", memmap=True)
    assert "encoded before" not in capsys.readouterr().out
    assert len(list((corpus.parent / "data").glob("text.txt.*.u16"))) == 2


def test_a_checkpoints_vocabulary_encodes_the_same(corpus, capsys):
    tok, a = data.lm_splits(str(corpus), "char", memmap=False)
    given = CharTokenizer(tok.chars + ["#"])                             # not the file's own vocabulary
    (_, a, _), (tok2, b, _) = both_paths(corpus, capsys, tokenizer=given)
    assert tok2 is given and np.array_equal(b["train"], a["train"].numpy()) and torch.equal(b["val"], a["val"])
    with pytest.raises(UserError, match="not in the vocabulary: 'é'"):
        data.lm_splits(str(corpus), "char", memmap=True, tokenizer=CharTokenizer([c for c in tok.chars if c != "é"]))


def test_more_than_65536_characters_take_32_bit_ids(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    text = "".join(map(chr, range(0x20000, 0x20000 + 70_000))) * 2      # CJK extensions and beyond: 70,000 characters
    path = tmp_path / "wide.txt"
    path.write_text(text, encoding="utf-8")
    (tok1, a, _), (tok2, b, out) = both_paths(path, capsys)
    assert b["train"].dtype == np.uint32 and "32-bit ids" in out
    assert tok2.chars == tok1.chars and np.array_equal(b["train"], a["train"].numpy())


@pytest.mark.parametrize("content, message", [
    (b"ab\xffcd" * 3, "is not UTF-8 text (invalid byte at offset 2)"),
    (b"abcdef\xe2\x82", "is not UTF-8 text (invalid byte at offset 6)"),      # a character cut at the end
    (b" \n\r\n \t", "is empty"),
    (b"\x00" * 50, "one distinct character"),
    (b"\x01\x02" * 50 + b"ab", "control characters"),
])
def test_bad_text_is_refused_as_in_memory(tmp_path, monkeypatch, content, message):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    monkeypatch.setattr(token_file, "BLOCK_BYTES", 3)
    path = tmp_path / "bad.txt"
    path.write_bytes(content)
    for memmap in (False, True):
        with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
            data.lm_splits(str(path), "char", memmap=memmap)
    assert not list((tmp_path / "data").glob("*bad*"))                   # no half-written cache


def test_word_and_bpe_refuse_the_memory_map(corpus):
    for kind in ("word", "bpe"):
        with pytest.raises(UserError, match="--tokenizer char"):
            data.lm_splits(str(corpus), kind, memmap=True)


def test_files_over_the_threshold_take_the_memory_map(corpus, monkeypatch, capsys):
    _, splits = data.lm_splits(str(corpus), "char")
    assert isinstance(splits["train"], torch.Tensor)                     # small: in memory
    monkeypatch.setattr(data, "MEMMAP_BYTES", 100)
    _, splits = data.lm_splits(str(corpus))                              # auto: characters
    assert isinstance(splits["train"], np.memmap)


def test_the_validation_split_is_capped(corpus, capsys):
    tok, train, val = token_file.char_memmap_data(corpus, val_tokens=100)
    assert len(val) == 100 and "the first 100 of them are scored" in capsys.readouterr().out
    _, full = data.lm_splits(str(corpus), "char", memmap=False)
    assert torch.equal(val, full["val"][:100])


@pytest.mark.parametrize("folder, args", [
    ("transformer", ["--layers", "1", "--heads", "2", "--d-model", "16", "--block-size", "16", "--batch-size", "4"]),
    ("lstm", ["--n-hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "16"]),
])
def test_train_py_learns_the_same_weights_from_the_memory_map(folder, args, corpus, tmp_path, monkeypatch,
                                                             one_thread):
    """Three steps of a window model and of a recurrent model, in memory and memory-mapped: the same
    batches, so the same weights."""
    import importlib
    main = importlib.import_module(f"{folder}.train").main
    weights = []
    for threshold in (1 << 40, 0):                                       # in memory, then memory-mapped
        monkeypatch.setattr(data, "MEMMAP_BYTES", threshold)
        ckpt = tmp_path / f"{threshold}" / "model.pt"
        main(["--data", str(corpus), "--epochs", "3", "--eval-every", "3", "--checkpoint", str(ckpt), *args])
        weights.append(torch.load(ckpt, weights_only=True)["model"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
