"""experiments/length.py and its parts (length_multi30k.py, length_synthetic.py): the binning, the bootstrap,
the accuracies on hand-made cases, and tiny runs."""
import numpy as np
import pytest
import torch

from conftest import assert_one_line_error, load_experiment, run_script, toy_translation_corpus

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def L():
    return load_experiment("length")


@pytest.fixture(scope="module")
def M():
    return load_experiment("length_multi30k")


@pytest.fixture(scope="module")
def S():
    return load_experiment("length_synthetic")


def test_bins_cover_every_length_once_and_sparse_ones_are_merged(M):
    # 30 sentences of 1-5 words, 3 of 6-10, 40 of 11-15, 2 of 16-20, 1 of 23: bins of 5, at least 10 each
    lengths = [3] * 30 + [7] * 3 + [12] * 40 + [18] * 2 + [23]
    bins = M.length_bins(lengths, width=5, min_count=10)
    assert bins == [(1, 5), (6, 23)]             # 6-10 is sparse: merged with 11-15; then 16-23 (3) into it
    assert bins[0][0] == 1 and bins[-1][1] == max(lengths)
    assert all(a[1] + 1 == b[0] for a, b in zip(bins, bins[1:]))          # contiguous, no overlap
    counts = [sum(lo <= n <= hi for n in lengths) for lo, hi in bins]
    assert sum(counts) == len(lengths) and min(counts) >= 10
    # no bin sparse: the bins are the plain ones; everything sparse: one bin
    assert M.length_bins([1, 2, 6, 7, 11], width=5, min_count=1) == [(1, 5), (6, 10), (11, 11)]
    assert M.length_bins([1, 2, 6, 7, 11], width=5, min_count=100) == [(1, 11)]


def some_sentences(n=60, seed=0):
    rng = np.random.default_rng(seed)
    words = "a man dog the sees small old young woman runs on street".split()
    refs = [" ".join(rng.choice(words, rng.integers(4, 12))) for _ in range(n)]
    hyps = [" ".join(w if rng.random() < 0.7 else "cat" for w in r.split()) for r in refs]
    return hyps, refs


def test_summed_sentence_statistics_give_the_corpus_bleu_of_utils_translation(M):
    from utils.translation import bleu
    hyps, refs = some_sentences()
    stats = M.sentence_stats(hyps, refs)
    assert stats.shape == (60, 10)
    assert M.bleu_of_stats(stats.sum(0)) == pytest.approx(bleu(hyps, refs)[0], abs=1e-9)
    subset = [3, 5, 8, 13, 21, 34]
    assert M.bleu_of_stats(stats[subset].sum(0)) == pytest.approx(
        bleu([hyps[i] for i in subset], [refs[i] for i in subset])[0], abs=1e-9)


def test_the_bootstrap_interval_holds_the_point_estimate_and_narrows_with_more_sentences(M):
    hyps, refs = some_sentences(400, seed=1)
    stats = M.sentence_stats(hyps, refs)
    rng = np.random.default_rng(0)
    point, lo, hi, scores = M.bootstrap_ci(stats, M.bootstrap_indices(400, 300, rng))
    assert lo < point < hi and len(scores) == 300
    _, lo_small, hi_small, _ = M.bootstrap_ci(stats[:40], M.bootstrap_indices(40, 300, rng))
    assert hi_small - lo_small > hi - lo
    # a perfect system: every resample scores 100
    perfect = M.sentence_stats(refs, refs)
    assert M.bootstrap_ci(perfect, M.bootstrap_indices(400, 50, rng))[:3] == pytest.approx((100, 100, 100))


def test_paired_bins_rank_a_perfect_system_above_a_worse_one_in_every_resample(M):
    hyps, refs = some_sentences(120, seed=2)
    lengths = [len(r.split()) for r in refs]
    stats = {"gru": M.sentence_stats(hyps, refs), "attention": M.sentence_stats(refs, refs)}
    bins = M.length_bins(lengths, 4, 20)
    rows = M.bleu_by_bins(lengths, stats, bins, resamples=100, seed=0)
    assert [r["bin"] for r in rows] == bins and sum(r["n"] for r in rows) == 120
    for r in rows:
        assert r["models"]["attention"]["bleu"] == pytest.approx(100)
        assert r["models"]["gru"]["lo"] <= r["models"]["gru"]["bleu"] <= r["models"]["gru"]["hi"]
        assert r["p_better"] == {"attention>gru": 1.0}


def test_exact_match_and_per_token_accuracy_on_hand_made_cases(S):
    refs = [[4, 5, 6, 7], [4, 5, 6, 7], [4, 5, 6, 7], [8, 9]]
    hyps = [[4, 5, 6, 7],            # right: exact, 4 of 4
            [4, 5, 6],               # one short: not exact, 3 of 4
            [4, 5, 6, 7, 7],         # one too many: not exact, 4 of 4 (extra tokens are not positions)
            [9, 9]]                  # 1 of 2
    exact, per_token = S.accuracies(hyps, refs)
    assert exact == 0.25
    assert per_token == pytest.approx((4 + 3 + 4 + 1) / 14)
    assert S.accuracies([[5, 6, 7]], [[4, 5, 6]]) == (0.0, 0.0)        # shifted by one: nothing in place


def test_synthetic_pairs_copy_and_reverse(S):
    g = torch.Generator().manual_seed(0)
    for task in ("copy", "reverse"):
        pairs = S.synthetic_pairs(task, [5, 9, 17], 6, g)
        assert [len(x) for x, _ in pairs] == [5, 9, 17]
        for x, y in pairs:
            assert y == (x if task == "copy" else x[::-1])
            assert all(4 <= t < 10 for t in x)                          # no special ids among the symbols
    batch = S.synthetic_batch("reverse", 16, 5, 8, 6, g)
    assert batch.src.shape[0] == 16 and int(batch.src_len.min()) >= 5 and int(batch.src_len.max()) <= 8


def test_the_synthetic_models_have_similar_parameter_counts(L, S):
    counts = {n: sum(p.numel() for p in S.synthetic_model(n, 24, "small").parameters()) for n in L.NAMES}
    assert max(counts.values()) / min(counts.values()) < 1.25, counts


def test_a_model_that_copies_scores_one_and_decodes_through_utils_translation(L, S):
    """A hand-made copier: accuracy_by_length must find 1.0 at every length, for copy."""
    from utils.tokenizers import EOS

    class Copier(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

        def encode(self, src, src_len):
            return {"src": src, "len": src_len}

        def init_decoder(self, memory):
            return torch.zeros(memory["src"].shape[0], dtype=torch.long)

        def decode_step(self, memory, t, prev):
            src, n = memory["src"], memory["len"]
            nxt = torch.where(t < n, src.gather(1, t.clamp(max=src.shape[1] - 1)[:, None])[:, 0], EOS)
            return torch.nn.functional.one_hot(nxt, 30).float(), t + 1

    args = L.parse_args(["--task", "copy", "--test-per-length", "7"])
    acc = S.accuracy_by_length(Copier(), args, [5, 30, 100], seed=0)
    assert acc == {5: (1.0, 1.0), 30: (1.0, 1.0), 100: (1.0, 1.0)}
    args.task = "reverse"
    exact, _ = S.accuracy_by_length(Copier(), args, [6], seed=0)[6]
    assert exact < 0.2                                   # copying is no reversing


def test_bad_flags_are_one_line_errors(L, capsys):
    assert "NAME=PATH" in assert_one_line_error(run_script("experiments", "length.py", "--checkpoint", "lstm=x.pt"))
    for flags, says in ((["--checkpoint", "gru=/nope.pt"], "no checkpoint"), (["--max-train-len", "200"], "max-train-len"),
                        (["--data", "/nope"], "no folder")):
        with pytest.raises(SystemExit) as e:
            L.parse_args(flags)
        assert e.value.code != 0 and says in capsys.readouterr().err


def test_length_script_at_a_tiny_size_writes_its_report(tmp_path, scripts_on_one_thread):
    data = toy_translation_corpus(tmp_path / "toy")
    out = tmp_path / "out"
    r = run_script("experiments", "length.py", "--data", data, "--models", "gru,attention", "--minutes", "0.01",
                   "--synthetic-minutes", "0.01", "--synthetic-size", "tiny", "--seeds", "2", "--max-train-len", "8",
                   "--max-test-len", "12", "--length-step", "2", "--test-per-length", "3", "--resamples", "20",
                   "--out", out, "--work", tmp_path / "w", timeout=300)
    assert r.returncode == 0, r.stderr
    report = (out / "length.md").read_text()
    assert "## Multi30k" in report and "## Synthetic" in report and "python experiments/length.py" in report
    assert "| 1-7 | 6 |" in report                       # the toy test split: 6 sentences, one merged bin
    assert "| gru: exact match |" in report and "| attention: per-token accuracy |" in report
    assert "cd gru && OMP_NUM_THREADS=1 python train.py" in report and "--minutes 0.01" in report
    assert "L=11" in report and "1337, 1338" in report and "## Claims" in report and "unverified" in report
    assert (out / "length_bleu.png").stat().st_size > 0 and (out / "length_synthetic.png").stat().st_size > 0


def test_longest_held_is_where_exact_match_first_drops_below_the_threshold(L):
    lengths = [5, 10, 15, 20]
    assert L.longest_held({5: 1.0, 10: 0.6, 15: 0.4, 20: 0.9}, lengths) == 10     # the first drop ends it
    assert L.longest_held({5: 0.2, 10: 1.0, 15: 1.0, 20: 1.0}, lengths) is None
    assert L.longest_held({n: 0.5 for n in lengths}, lengths) == 20
