"""experiments/memory.py and its parts (memory_tasks.py, memory_models.py): the tasks' answers, the scoring on
models whose answer is known, and a tiny run."""
import numpy as np
import pytest
import torch

from conftest import load_experiment, run_script

pytestmark = pytest.mark.usefixtures("one_thread")


class RecallOracle(torch.nn.Module):
    """Recurrent interface; sees the last `window` tokens (None: all) and, where a MARK is among them
    with a token after it, predicts that token; otherwise always key 0."""

    def __init__(self, task, window=None):
        super().__init__()
        self.task, self.window = task, window

    def init_state(self, batch_size):
        return None

    def forward(self, idx, state=None, targets=None):
        B, T = idx.shape
        logits = torch.zeros(B, T, self.task.vocab_size)
        logits[:, :, 0] = 1.0
        for b in range(B):
            for t in range(T):
                lo = 0 if self.window is None else max(0, t - self.window + 1)
                seen = idx[b, lo:t + 1].tolist()
                if self.task.MARK in seen[:-1]:
                    key = seen[seen.index(self.task.MARK) + 1]
                    logits[b, t, key] = 10.0
        return logits, None, None


class StackOracle(torch.nn.Module):
    """Recurrent interface; keeps the stack of open brackets and predicts the closer of the innermost."""

    def __init__(self, task):
        super().__init__()
        self.task = task

    def init_state(self, batch_size):
        return None

    def forward(self, idx, state=None, targets=None):
        B, T = idx.shape
        n = self.task.n_types
        logits = torch.zeros(B, T, self.task.vocab_size)
        for b in range(B):
            stack = []
            for t, tok in enumerate(idx[b].tolist()):
                if tok < n:
                    stack.append(tok)
                elif tok < 2 * n:
                    stack.pop()
                if stack:
                    logits[b, t, n + stack[-1]] = 10.0
        return logits, None, None


def test_the_recall_answer_is_the_token_k_back_and_nothing_else_is_a_key():
    tasks = load_experiment("memory_tasks")
    task = tasks.Recall(n_keys=5, n_fill=6, prefix=3)
    for k in (1, 2, 7, 30):
        idx, mask, target = task.batch(64, k, torch.Generator().manual_seed(k))
        L = idx.shape[1]
        assert L == 3 + k + 2 and mask[:, -1].all() and mask.sum() == 64
        assert torch.equal(target[:, -1], idx[:, L - 1 - k])           # the token k back from the query
        assert (idx[:, -1] == task.QUERY).all() and (idx[:, L - 2 - k] == task.MARK).all()
        others = torch.cat([idx[:, :L - 2 - k], idx[:, L - k:L - 1]], 1)
        assert ((others >= task.n_keys) & (others < task.n_keys + task.n_fill)).all()   # fillers only
    keys = task.batch(5000, 4, torch.Generator().manual_seed(0))[2][:, -1]
    assert torch.bincount(keys, minlength=5).min() > 900                 # uniform over the 5 keys


def test_an_oracle_scores_100_percent_and_a_blind_model_scores_the_chance_the_formula_says():
    tasks = load_experiment("memory_tasks")
    models = load_experiment("memory_models")
    task = tasks.Recall(n_keys=4, n_fill=5, prefix=2)
    assert task.chance() == 1 / 4
    for k in (2, 9):
        assert models.recall_accuracy(RecallOracle(task), task, k, 200, seed=0) == 1.0
    # a window of 6: the MARK and the key are in sight for k <= 4, out of sight for k = 8
    short = RecallOracle(task, window=6)
    assert models.recall_accuracy(short, task, 4, 200, seed=0) == 1.0
    blind = models.recall_accuracy(short, task, 8, 4000, seed=1)
    assert abs(blind - task.chance()) < 4 * np.sqrt(0.25 * 0.75 / 4000)   # binomial, 4 sd


def test_windowed_models_see_exactly_their_reach():
    models = load_experiment("memory_models")
    from mlp.model import MLPConfig, NPLM
    from transformer.model import TransformerConfig, TransformerLM
    torch.manual_seed(0)
    idx = torch.randint(0, 9, (3, 40))
    mask = torch.zeros(3, 40, dtype=torch.bool)
    mask[:, [2, 20, 39]] = True
    mlp = NPLM(MLPConfig(vocab_size=9, context=5, n_embd=3, n_hidden=4)).eval()
    tr = TransformerLM(TransformerConfig(vocab_size=9, block_size=16, n_layers=1, n_heads=2, d_model=8, d_ff=8)).eval()
    assert models.reach(mlp) == 5 and models.reach(tr) == 16
    with torch.no_grad():
        got = models.logits_at(mlp, idx, mask, pad_id=0)
        assert torch.allclose(got[1], mlp(idx[:1, 16:21])[0][0])         # position 20: tokens 16..20
        assert torch.allclose(got[0], mlp(torch.cat([torch.zeros(1, 2, dtype=torch.long), idx[:1, :3]], 1))[0][0])
        got = models.logits_at(tr, idx, mask)
        assert torch.allclose(got[2], tr(idx[:1, 24:40])[0][0, -1], atol=1e-5)   # the last block only
        assert torch.allclose(got[0], tr(idx[:1, :3])[0][0, -1], atol=1e-5)      # the start: no padding
        changed = idx.clone()
        changed[:, :24] = (changed[:, :24] + 1) % 9                      # out of the last block
        assert torch.allclose(models.logits_at(tr, changed, mask)[2], got[2], atol=1e-5)


def test_dyck_brackets_match_and_depth_and_distance_are_counted_by_hand():
    tasks = load_experiment("memory_tasks")
    task = tasks.Dyck(n_types=2, n_fill=2, length=10)
    o0, o1, c0, c1, f = 0, 1, 2, 3, 4
    seq = [o0, f, o1, c1, f, c0, o1, c1]        # ( . [ ] . ) [ ]
    assert task.annotate(seq) == [(2, 2, 1), (4, 1, 5), (6, 1, 1)]        # (predicting position, depth, distance)
    with pytest.raises(ValueError):
        task.annotate([o0, c1])
    idx, mask, target, info = task.batch(50, torch.Generator().manual_seed(0))
    assert idx.shape == (50, 10) and mask.sum() == len(info) > 0
    assert ((target[mask] >= 2) & (target[mask] < 4)).all()              # every answer is a closer
    for b, t, depth, dist in info:
        opener = int(torch.cat([idx[b], target[b, -1:]])[t + 1 - dist])
        assert opener == int(target[b, t]) - 2                          # the matching opener's type


def test_a_stack_oracle_closes_every_bracket_and_the_breakdown_counts_them():
    tasks = load_experiment("memory_tasks")
    models = load_experiment("memory_models")
    task = tasks.Dyck(n_types=3, n_fill=2, length=40)
    correct, depth, dist = models.dyck_scores(StackOracle(task), task, 40, seed=0)
    assert correct.all() and len(correct) > 50 and depth.min() >= 1 and dist.min() >= 1
    by = models.breakdown(np.array([1, 0, 1, 1]), np.array([1, 2, 2, 9]), [(1, 1), (2, 4), (5, 8), (9, 10)])
    assert by == {(1, 1): (1.0, 1), (2, 4): (0.5, 2), (9, 10): (1.0, 1)}


def test_models_are_sized_to_the_same_parameter_count():
    m = load_experiment("memory")
    models = load_experiment("memory_models")
    args = m.parse_args([])
    for name in m.MODELS:
        width = models.size_for(name, 18, args)  # the default 22,000
        assert abs(models.n_params(models.build(name, 18, width, args)) - 22000) < 0.02 * 22000, name


def test_memory_script_at_a_tiny_size_writes_its_report(tmp_path, scripts_on_one_thread):
    out = tmp_path / "out"
    r = run_script("experiments", "memory.py", "--k", "2,70", "--steps", "3", "--batch", "4", "--eval", "20",
                   "--eval-dyck", "8", "--dyck-length", "20", "--params", "3000", "--seeds", "1,2", "--out", out,
                   timeout=300)
    assert r.returncode == 0, r.stderr
    report = (out / "memory.md").read_text()
    for name in ("mlp", "rnn-sigmoid", "rnn-tanh", "lstm", "gru", "transformer"):
        assert f"| {name} |" in report
    assert "k = 2" in report and "k = 70" in report and "| chance |" in report and "0.125" in report
    assert "depth 1" in report and "closers scored" in report and "python experiments/memory.py" in report
    assert "Against the original notes" in report and "longest k ≥ 0.9" in report
    assert (out / "memory.png").stat().st_size > 0 and (out / "memory_dyck.png").stat().st_size > 0
    import json
    raw = json.loads((out / "memory_runs.json").read_text())
    assert set(raw["recall"]["lstm"]) == {"2", "70"} and len(raw["recall"]["lstm"]["70"]) == 2   # both seeds
    assert len(raw["dyck"]["gru"]) == 2 and raw["sizes"]["rnn-tanh"][1] > 0


def test_bad_flags_are_one_line_errors(tmp_path):
    from conftest import assert_one_line_error
    assert_one_line_error(run_script("experiments", "memory.py", "--k", "0,4", "--out", tmp_path))
    assert_one_line_error(run_script("experiments", "memory.py", "--models", "cnn", "--out", tmp_path))
