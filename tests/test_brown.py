"""Word level and the Brown corpus: the split, the rare-word merge, the word tokenizer, the n-gram
and mixtures over a word vocabulary, dynamic evaluation's targets, word-level train.py and
generate.py, and experiments/brown.py at a tiny size."""
import collections
import math

import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, load_experiment, run_script
from utils.tokenizers import CorpusWordTokenizer, tokenizer_from_dict

pytestmark = pytest.mark.usefixtures("one_thread")

# a small word text: paragraphs of sentences over a few dozen words, so that some words are rare
WORDS = ("the jury said that the city of Atlanta had no evidence . it was a good day , "
         "and the man went home to his wife and the children .").split()


def word_text(paragraphs=60, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(paragraphs):
        n = int(rng.integers(5, 30))
        words = [WORDS[i] for i in rng.integers(0, len(WORDS), n)] + [f"rare{rng.integers(0, 400)}"]
        out.append(" ".join(words))
    return "\n\n".join(out)


@pytest.fixture
def words_file(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text(word_text(), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def brown_tokens():
    """The real Brown corpus (data/brown.zip, fetched if need be); skipped only where it is not
    there and cannot be downloaded."""
    from utils.brown import read_brown
    from utils.data import fetch
    from utils.errors import UserError
    try:
        path = fetch("brown")
    except UserError as e:
        pytest.skip(f"needs the Brown corpus in data/brown.zip: {e}")
    return read_brown(path)


# ---------------------------------------------------------------- the corpus and the split

def test_brown_split_is_bengios_by_position_and_deterministic(brown_tokens):
    from utils.brown import PARAGRAPH, TEXT, bengio_split, read_brown
    from utils.data import fetch
    train, val, test = bengio_split(brown_tokens)
    assert (len(train), len(val)) == (800_000, 200_000)
    assert train + val + test == brown_tokens                       # in corpus order, nothing dropped
    assert brown_tokens.count(TEXT) == 500 and brown_tokens[-1] == TEXT
    assert not any("/" in w and w.rsplit("/", 1)[1].islower() and w.rsplit("/", 1)[1].isalpha()
                   for w in brown_tokens[:5000] if w not in (PARAGRAPH, TEXT)), "tags must be stripped"
    assert brown_tokens[:4] == ["The", "Fulton", "County", "Grand"]   # case kept
    # NLTK's 1,161,192 white-space tokens, plus one mark per paragraph and one per text
    words = [w for w in brown_tokens if w not in (PARAGRAPH, TEXT)]
    assert len(words) == 1_161_192
    assert read_brown(fetch("brown")) == brown_tokens              # the same every time


def test_rare_words_are_those_seen_three_times_or_fewer_where_they_are_counted(brown_tokens):
    from utils.data import lm_splits
    for counts in ("train", "all"):
        tok, splits = lm_splits("brown", "word", vocab_counts=counts)
        counted = brown_tokens[:800_000] if counts == "train" else brown_tokens
        c = collections.Counter(counted)
        assert set(tok.words[1:]) == {w for w, n in c.items() if n > 3}
        assert tok.words[0] == "<unk>"
        # every split encoded: a rare word is <unk>, every other word itself
        val_words = brown_tokens[800_000:1_000_000]
        ids = splits["val"].tolist()
        assert len(ids) == len(val_words)
        assert all((i == 0) == (c[w] <= 3) for w, i in zip(val_words[:20000], ids[:20000]))
        assert [tok.words[i] for i in ids[:100] if i] == [w for w in val_words[:100] if c[w] > 3]
    assert lm_splits("brown", "word")[0].vocab_size == tok.vocab_size   # "auto" counts all, for Brown


def test_char_tokenizer_on_brown_and_words_on_a_missing_file_are_one_line_errors(tmp_path):
    r = run_script("mlp", "train.py", "--data", "brown", "--tokenizer", "char", "--epochs", "1")
    assert_one_line_error(r)
    assert "--tokenizer word" in r.stderr


# ---------------------------------------------------------------- the word tokenizer

def test_word_tokenizer_round_trips_any_ids_and_reads_blank_lines_as_paragraphs():
    tok = CorpusWordTokenizer.from_tokens(WORDS * 4 + ["</p>"] * 4 + ["once"], rare=3)
    assert "once" not in tok.index and tok.index["</p>"] == tok.boundary_id
    rng = np.random.default_rng(1)
    for _ in range(200):
        ids = rng.integers(1, tok.vocab_size, int(rng.integers(0, 30))).tolist()
        assert tok.encode(tok.decode(ids)) == ids
    assert tok.encode("the jury\n\nsaid") == tok.encode_tokens(["the", "jury", "</p>", "said"])
    assert tok.encode("the\n  \nJury once") == [tok.index["the"], tok.boundary_id, 0, 0]   # case kept
    assert tok.unknown_words("the Jury once jury") == ["Jury", "once"]
    back = tokenizer_from_dict(tok.to_dict())
    assert back.words == tok.words and back.unit == "word"


# ---------------------------------------------------------------- n-gram and mixtures over words

def test_kneser_ney_sums_to_one_over_the_whole_word_vocabulary(words_file):
    from utils.data import lm_splits
    from utils.ngram import KneserNey
    tok, splits = lm_splits(str(words_file), "word")
    V = tok.vocab_size
    for n in (3, 5):
        lm = KneserNey(splits["train"].numpy(), n, V)
        val = splits["val"].numpy()
        for t in (n, n + 7, len(val) - 1):                    # seen and unseen contexts
            rows = np.concatenate([np.tile(val[t - n + 1:t], (V, 1)), np.arange(V)[:, None]], axis=1)
            assert abs(lm.prob(rows).sum() - 1) < 1e-9
        unseen = np.concatenate([np.full((V, n - 1), V - 1), np.arange(V)[:, None]], axis=1)
        assert abs(lm.prob(unseen).sum() - 1) < 1e-9


def test_the_mixture_of_two_distributions_is_a_distribution():
    brown = load_experiment("brown")
    g = torch.Generator().manual_seed(0)
    logp = torch.log_softmax(torch.randn(3, 50, generator=g, dtype=torch.float64), -1).numpy()
    logq = torch.log_softmax(3 * torch.randn(3, 50, generator=g, dtype=torch.float64), -1).numpy()
    for w in (0.25, 0.5, 0.75):
        mixed = brown.mixture(-logp, -logq, w)                    # nats of every word of every row
        assert np.allclose(np.exp(-mixed).sum(-1), 1, atol=1e-12)
        assert np.allclose(np.exp(-mixed), w * np.exp(logp) + (1 - w) * np.exp(logq), atol=1e-15)


# ---------------------------------------------------------------- dynamic evaluation

def test_dynamic_evaluation_scores_every_target_in_order_and_at_rate_zero_equals_the_protocol(words_file):
    from rnn.model import ElmanRNN, RNNConfig
    from rnn.train import dynamic_nats
    from utils.data import lm_splits
    from utils.evaluation import evaluate_lm
    tok, splits = lm_splits(str(words_file), "word")
    torch.manual_seed(0)
    model = ElmanRNN(RNNConfig(vocab_size=tok.vocab_size, n_hidden=16))
    val = splits["val"]
    static = evaluate_lm(model, val, streams=1).nats
    frozen = dynamic_nats(model, val, 1, 7, 1e-12, "cpu")
    assert frozen.shape == static.shape and np.allclose(frozen, static, atol=1e-5)
    learning = dynamic_nats(model, val, 1, 7, 0.5, "cpu")
    assert np.allclose(learning[:7], static[:7], atol=1e-5)      # the first chunk is scored before any update
    # then it learns the text it reads: a passage read ten times over is predicted better and better
    repeated = val[:40].repeat(10)
    nats = dynamic_nats(model, repeated, 1, 7, 0.5, "cpu")
    assert nats[-39:].mean() < nats[:39].mean() - 0.2


# ---------------------------------------------------------------- the scripts at word level

def test_mlp_trains_on_words_and_generate_continues_in_words(words_file, tmp_path, scripts_on_one_thread):
    ckpt = tmp_path / "mlp.pt"
    r = run_script("mlp", "train.py", "--data", words_file, "--tokenizer", "word", "--epochs", "30",
                   "--eval-every", "15", "--context", "4", "--n-embd", "8", "--n-hidden", "16",
                   "--checkpoint", ckpt)
    assert r.returncode == 0, r.stderr
    assert "nats/word" in r.stdout and "per word" in r.stdout and "scored" in r.stdout
    g = run_script("mlp", "generate.py", "--checkpoint", ckpt, "--prompt", "the", "--length", "12", "--seed", "3")
    assert g.returncode == 0, g.stderr
    out = g.stdout.split()
    assert out[0] == "the" and len(out) >= 10                   # words, separated by spaces
    known = set(WORDS) | {"<unk>"}
    assert sum(w in known for w in out) >= len(out) - 2          # (a paragraph break may join two lines)


def test_rnn_validates_once_per_pass_with_eval_per_pass(words_file, tmp_path, scripts_on_one_thread):
    from utils.batching import steps_per_pass
    from utils.data import lm_splits
    _, splits = lm_splits(str(words_file), "word")
    per_pass = steps_per_pass(splits["train"], 4, 10)
    ckpt = tmp_path / "rnn.pt"
    r = run_script("rnn", "train.py", "--data", words_file, "--tokenizer", "word", "--epochs", str(3 * per_pass),
                   "--batch-size", "4", "--bptt", "10", "--n-hidden", "8", "--eval-per-pass",
                   "--schedule", "mikolov", "--checkpoint", ckpt)
    assert r.returncode == 0, r.stderr
    steps = [int(line.split()[1]) for line in r.stdout.splitlines() if line.startswith("step ") and "val" in line]
    assert steps[:3] == [per_pass, 2 * per_pass, 3 * per_pass][:len(steps[:3])] and steps


def test_brown_experiment_at_a_tiny_size_writes_its_table(words_file, tmp_path, scripts_on_one_thread):
    out, work = tmp_path / "out", tmp_path / "work"
    args = ("experiments", "brown.py", "--data", words_file, "--minutes", "0.01", "--rows", "MLP9,RNN",
            "--out", out, "--work", work)
    r = run_script(*args, timeout=300)
    assert r.returncode == 0, r.stderr
    report = (out / "brown_words.md").read_text()
    for name in ("KN 3-gram", "KN 5-gram", "| MLP9 |", "| MLP10 |", "| RNN |", "RNN dynamic", "RNN + KN5"):
        assert name in report, name
    assert (out / "brown_curves.png").stat().st_size > 0
    table = [line for line in report.splitlines() if line.startswith("| MLP9 |")][0].split("|")
    assert math.isfinite(float(table[3]))                          # a measured validation perplexity
    # started again, nothing is trained twice
    again = run_script(*args, timeout=300)
    assert again.returncode == 0 and "rows to train" not in again.stdout


# ---------------------------------------------------------------- the paper's training of the MLP

def test_paper_sgd_decays_the_weights_and_C_but_not_the_biases():
    import argparse
    from mlp.model import MLPConfig, NPLM
    from mlp.train import make_optimizer
    torch.manual_seed(0)
    model = NPLM(MLPConfig(vocab_size=20, context=3, n_embd=4, n_hidden=5, direct=True))
    with torch.no_grad():
        model.d.fill_(0.3)
        model.b.fill_(-0.2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    opt = make_optimizer(model, argparse.Namespace(optimizer="sgd", lr=0.1, weight_decay=0.01))
    for p in model.parameters():
        p.grad = torch.zeros_like(p)                    # no data gradient: only the penalty moves them
    opt.step()
    for name in ("C", "H", "U", "W"):
        assert torch.allclose(getattr(model, name), before[name] * (1 - 0.1 * 0.01)), name
    for name in ("d", "b"):
        assert torch.equal(getattr(model, name), before[name]), name


def test_bengio_schedule_in_the_log_is_epsilon_over_one_plus_r_t(tiny_corpus, tmp_path, scripts_on_one_thread):
    import csv
    ckpt = tmp_path / "m.pt"
    r = run_script("mlp", "train.py", "--data", tiny_corpus, "--epochs", "40", "--eval-every", "40",
                   "--optimizer", "sgd", "--schedule", "bengio", "--lr", "0.01", "--decay", "0.001",
                   "--batch-size", "8", "--n-hidden", "8", "--n-embd", "4", "--checkpoint", ckpt)
    assert r.returncode == 0, r.stderr
    rows = list(csv.DictReader(open(tmp_path / "log.csv")))
    for row in rows:
        t = (int(row["step"]) - 1) * 8                  # the examples seen before that step
        assert float(row["lr"]) == pytest.approx(0.01 / (1 + 0.001 * t), rel=1e-3)


def test_early_stopping_stops_after_patience_misses_and_restores_the_best_weights():
    from utils.training import EarlyStopping
    model = torch.nn.Linear(2, 1)
    early = EarlyStopping(model, patience=2)
    kept = None
    for i, loss in enumerate([3.0, 2.0, 2.5, 2.6]):
        with torch.no_grad():
            model.weight.fill_(float(i))
        new_best = early.update(loss)
        assert new_best == (i in (0, 1))
        if i == 1:
            kept = model.weight.clone()
        assert early.stop == (i == 3)
    assert early.restore() == 2.0 and torch.equal(model.weight, kept)
