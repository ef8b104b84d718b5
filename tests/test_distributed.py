"""torchrun: two CPU processes (gloo) take the same steps as one process with the combined batch,
write a checkpoint that one process reads, and resume. utils/distributed.py."""
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, SCRIPT_ENV, run_script

SIZES = {"mlp": ["--n-hidden", "16", "--n-embd", "4", "--batch-size", "8"],
         "rnn": ["--n-hidden", "16", "--batch-size", "4", "--bptt", "8"]}


def torchrun(folder, *args, processes=2):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "train.py", *map(str, args)],
                          cwd=ROOT / folder, capture_output=True, text=True, timeout=300, env=SCRIPT_ENV)


def weights(path):
    return torch.load(path, weights_only=True)["model"]


@pytest.mark.parametrize("folder", ["mlp", "rnn"])
def test_two_processes_take_the_steps_of_one_with_the_combined_batch(folder, tiny_corpus, tmp_path):
    common = ["--data", tiny_corpus, "--eval-every", "3", "--schedule", "constant", *SIZES[folder]]
    one = run_script(folder, "train.py", *common, "--epochs", "6", "--checkpoint", tmp_path / "one.pt")
    assert one.returncode == 0, one.stderr
    two = torchrun(folder, *common, "--epochs", "6", "--checkpoint", tmp_path / "two.pt")
    assert two.returncode == 0, two.stderr
    a, b = weights(tmp_path / "one.pt"), weights(tmp_path / "two.pt")
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in b)      # the unwrapped model
    for k in a:
        assert torch.allclose(a[k], b[k], atol=1e-6), k
    assert sum("summary:" in line for line in two.stdout.splitlines()) == 1             # rank 0 reports
    # the torchrun checkpoint generates in a single process
    g = run_script(folder, "generate.py", "--checkpoint", tmp_path / "two.pt", "--prompt", "First", "--length", "10",
                   "--seed", "1")
    assert g.returncode == 0 and g.stdout.startswith("First"), g.stderr
    # and a run resumed under torchrun continues it exactly
    half = torchrun(folder, *common, "--epochs", "3", "--checkpoint", tmp_path / "half.pt")
    assert half.returncode == 0, half.stderr
    resumed = torchrun(folder, "--checkpoint", tmp_path / "half.pt", "--resume", "--epochs", "6")
    assert resumed.returncode == 0, resumed.stderr
    c = weights(tmp_path / "half.pt")
    for k in a:
        assert torch.allclose(a[k], c[k], atol=1e-6), k


def test_a_batch_that_does_not_split_over_the_processes_is_one_line(tiny_corpus, tmp_path):
    r = torchrun("mlp", "--data", tiny_corpus, "--epochs", "2", "--batch-size", "7", "--checkpoint", tmp_path / "m.pt")
    assert r.returncode != 0
    assert "error: --batch-size 7 does not split into 2 processes" in r.stderr
    # our processes exit with that line; the only traceback is torchrun's own report of their exit
    assert 'train.py", line' not in r.stderr and "utils/" not in r.stderr
