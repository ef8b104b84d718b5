"""utils/bpe.py: the byte-level byte-pair encoding, and --tokenizer bpe end to end."""
import random

import numpy as np
import pytest

from conftest import TINY_TEXT, run_script
from utils.bpe import BPETokenizer, merge
from utils.tokenizers import characters, tokenizer_from_dict


def merge_by_hand(ids, pair, new_id):
    """The merge rule as a loop: left to right, a match is replaced and skipped past."""
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == pair:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def test_merge_replaces_left_to_right_without_overlaps_as_the_loop_does():
    rng = np.random.default_rng(0)
    for _ in range(300):
        ids = rng.integers(0, 3, int(rng.integers(0, 40)))           # many runs like 1 1 1 1
        pair = tuple(int(v) for v in rng.integers(0, 3, 2))
        assert merge(ids, pair, 9).tolist() == merge_by_hand(ids.tolist(), pair, 9)


@pytest.fixture(scope="module")
def tokenizer():
    return BPETokenizer.train(TINY_TEXT * 3, 300)


def random_text(rng, n):
    """Random code points from all of Unicode but the surrogates, with emoji and combining marks."""
    pool = ["🌹", "👩‍👩‍👧", "e\u0301", "\u0308", "日本", "\x00", "\uffff", "\U0010ffff", " ", "\n"]
    out = []
    for _ in range(n):
        if rng.random() < 0.3:
            out.append(rng.choice(pool))
        else:
            c = rng.randrange(0x110000)
            out.append(chr(c) if not 0xD800 <= c < 0xE000 else "x")
    return "".join(out)


def test_any_unicode_text_round_trips(tokenizer):
    rng = random.Random(1)
    for _ in range(200):
        text = random_text(rng, rng.randrange(0, 50))
        assert tokenizer.decode(tokenizer.encode(text)) == text
    raw = bytes(rng.randrange(256) for _ in range(2000)).decode("latin-1")   # every byte value as a character
    assert tokenizer.decode(tokenizer.encode(raw)) == raw
    assert tokenizer.decode(tokenizer.encode(TINY_TEXT)) == TINY_TEXT


def test_training_learns_frequent_pieces_and_compresses(tokenizer):
    assert tokenizer.vocab_size == 300 and len(tokenizer.merges) == 44
    ids = tokenizer.encode(TINY_TEXT)
    assert len(ids) < len(TINY_TEXT.encode()) / 2                  # a repetitive text compresses well
    assert b"Citizen" in b"".join(tokenizer.pieces[i] for i in tokenizer.encode(" Citizen"))
    assert max(len(p) for p in tokenizer.pieces) > 4
    assert characters(tokenizer, ids) == len(TINY_TEXT)
    back = tokenizer_from_dict(tokenizer.to_dict())
    assert back.encode(TINY_TEXT) == ids


def test_a_transformer_trains_on_bpe_and_reports_bits_per_character(tiny_corpus, tmp_path, scripts_on_one_thread):
    ckpt = tmp_path / "t.pt"
    r = run_script("transformer", "train.py", "--data", tiny_corpus, "--tokenizer", "bpe", "--vocab-size", "300",
                   "--epochs", "4", "--eval-every", "4", "--layers", "1", "--d-model", "16", "--heads", "2",
                   "--block-size", "16", "--batch-size", "4", "--checkpoint", ckpt)
    assert r.returncode == 0, r.stderr
    summary = next(line for line in r.stdout.splitlines() if line.startswith("summary:"))
    assert "nats/token" in summary and "bits/char over" in summary
    g = run_script("transformer", "generate.py", "--checkpoint", ckpt, "--prompt", "First 🌹", "--length", "5", "--seed", "1")
    assert g.returncode == 0, g.stderr
    assert g.stdout.startswith("First 🌹")
