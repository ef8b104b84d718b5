"""--dtype bfloat16 (autocast) and --compile (torch.compile, eager where it fails), on the CPU;
the translators' one-line refusal under torchrun. utils/training.py autocast, compiled."""
import csv
import importlib
import math

import pytest
import torch

from conftest import ROOT, SCRIPT_ENV, assert_one_line_error, run_script, toy_translation_corpus
from utils import training

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"mlp": ["--n-hidden", 16, "--n-embd", 4, "--batch-size", 8],
        "rnn": ["--n-hidden", 16, "--batch-size", 4, "--bptt", 8, "--backward", "autograd"],
        "lstm": ["--n-hidden", 16, "--batch-size", 4, "--bptt", 8, "--backward", "autograd"],
        "gru": ["--n-hidden", 16, "--batch-size", 4, "--bptt", 8, "--backward", "autograd"],
        "transformer": ["--layers", 1, "--heads", 2, "--d-model", 16, "--block-size", 16, "--batch-size", 4]}


def train(folder, *argv):
    """main(argv) of <folder>/train.py in this process."""
    importlib.import_module(f"{folder}.train").main([str(a) for a in argv])


def logged_losses(path):
    with open(path, newline="") as f:
        return [float(r["train_loss"]) for r in csv.DictReader(f)]


@pytest.mark.parametrize("folder", list(TINY))
def test_bfloat16_autocast_trains_two_steps_to_a_finite_loss(folder, tiny_corpus, tmp_path):
    train(folder, "--data", tiny_corpus, "--epochs", 2, "--eval-every", 2, "--dtype", "bfloat16",
          "--checkpoint", tmp_path / "m.pt", *TINY[folder])
    losses = logged_losses(tmp_path / "log.csv")
    assert losses and all(math.isfinite(x) for x in losses)
    ckpt = torch.load(tmp_path / "m.pt", weights_only=True)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())      # the weights stay float32


def test_a_translator_trains_under_bfloat16_autocast(tmp_path):
    data = toy_translation_corpus(tmp_path / "toy")
    train("gru", "--task", "translate", "--data", data, "--epochs", 2, "--eval-every", 2, "--dtype", "bfloat16",
          "--n-hidden", 16, "--n-embd", 8, "--batch-size", 4, "--min-freq", 1, "--beam", 1,
          "--backward", "autograd", "--checkpoint", tmp_path / "t.pt")
    assert all(math.isfinite(x) for x in logged_losses(tmp_path / "log.csv"))


@pytest.mark.parametrize("folder", ["lstm", "attention"])
def test_bfloat16_with_a_written_out_bptt_is_one_line(folder, tiny_corpus, tmp_path):
    r = run_script(folder, "train.py", "--data", tiny_corpus, "--epochs", 2, "--dtype", "bfloat16",
                   "--backward", "manual", "--checkpoint", tmp_path / "m.pt")
    assert "--backward autograd" in assert_one_line_error(r)


def test_where_torch_compile_fails_one_warning_and_the_eager_losses(monkeypatch, capsys, tiny_corpus, tmp_path):
    """The fallback: a compile that fails at its first call (as with no C++ compiler)."""
    def failing_compile(module):
        def call(*args, **kwargs):
            torch.rand(1)                                   # it may draw random numbers before failing
            raise RuntimeError("InductorError: no working C++ compiler found\nmore detail")
        return call
    monkeypatch.setattr(training.torch, "compile", failing_compile)
    common = ["--data", tiny_corpus, "--epochs", 6, "--eval-every", 3, "--dropout", 0.25, *TINY["lstm"]]
    train("lstm", *common, "--checkpoint", tmp_path / "eager" / "m.pt")
    capsys.readouterr()
    train("lstm", *common, "--compile", "--checkpoint", tmp_path / "fallback" / "m.pt")
    warnings = [line for line in capsys.readouterr().err.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "torch.compile failed" in warnings[0] and "no working C++" in warnings[0]
    a, b = (torch.load(tmp_path / d / "m.pt", weights_only=True)["model"] for d in ("eager", "fallback"))
    assert all(torch.equal(a[k], b[k]) for k in a)                             # dropout included


@pytest.mark.slow   # 47 s wall cold, 15 s with inductor's cache warm (2026-12-02, 2 shared cores): it compiles C++
def test_compiled_training_takes_the_eager_steps_for_20_steps(tiny_corpus, tmp_path):
    common = ["--data", tiny_corpus, "--epochs", 20, "--eval-every", 10, *TINY["mlp"]]
    eager = run_script("mlp", "train.py", *common, "--checkpoint", tmp_path / "eager" / "m.pt")
    fast = run_script("mlp", "train.py", *common, "--compile", "--checkpoint", tmp_path / "fast" / "m.pt",
                      timeout=600)
    assert eager.returncode == 0 and fast.returncode == 0, fast.stderr
    assert "warning: --compile" not in fast.stderr                             # it did compile
    e, f = (logged_losses(tmp_path / d / "log.csv") for d in ("eager", "fast"))
    assert len(e) == len(f) >= 2 and all(abs(x - y) < 1e-4 for x, y in zip(e, f))
    a, b = (torch.load(tmp_path / d / "m.pt", weights_only=True)["model"] for d in ("eager", "fast"))
    assert all(torch.allclose(a[k], b[k], atol=1e-5) for k in a)


@pytest.mark.parametrize("folder", ["attention", "gru", "transformer"])
def test_the_translators_refuse_torchrun_in_one_line(folder, tmp_path, monkeypatch):
    """WORLD_SIZE is what torchrun sets; the refusal comes before any process group is joined."""
    import subprocess
    import sys
    task = [] if folder == "attention" else ["--task", "translate"]
    r = subprocess.run([sys.executable, "train.py", *task, "--data", toy_translation_corpus(tmp_path / "toy"),
                        "--min-freq", "1", "--epochs", "2", "--checkpoint", str(tmp_path / "t.pt")],
                       cwd=ROOT / folder, capture_output=True, text=True, timeout=120,
                       env={**SCRIPT_ENV, "WORLD_SIZE": "2", "RANK": "0", "LOCAL_RANK": "0"})
    assert "not supported under torchrun" in assert_one_line_error(r)
