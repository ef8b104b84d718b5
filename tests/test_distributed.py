"""torchrun: two CPU processes (gloo) take the same steps as one process with the combined batch,
write a checkpoint that one process reads, and resume (exactly, dropout included: each rank's own
random numbers are saved). utils/distributed.py."""
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, SCRIPT_ENV, run_script
from utils.distributed import Distributed

SIZES = {"mlp": ["--n-hidden", "16", "--n-embd", "4", "--batch-size", "8"],
         "rnn": ["--n-hidden", "16", "--batch-size", "4", "--bptt", "8"],
         "lstm": ["--n-hidden", "16", "--batch-size", "4", "--bptt", "8"],
         "gru": ["--n-hidden", "16", "--batch-size", "4", "--bptt", "8"],
         "transformer": ["--layers", "1", "--heads", "2", "--d-model", "16", "--block-size", "16",
                         "--batch-size", "4", "--warmup", "0"]}


def torchrun(folder, *args, processes=2):
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc_per_node={processes}", "train.py", *map(str, args)],
                          cwd=ROOT / folder, capture_output=True, text=True, timeout=300, env=SCRIPT_ENV)


def weights(path):
    return torch.load(path, weights_only=True)["model"]


def assert_same(a, b, atol=1e-6):
    assert a.keys() == b.keys() and not any(k.startswith("module.") for k in b)      # the unwrapped model
    for k in a:
        assert torch.allclose(a[k], b[k], atol=atol), k


def generates(folder, path):
    g = run_script(folder, "generate.py", "--checkpoint", path, "--prompt", "First", "--length", "10", "--seed", "1")
    return g.returncode == 0 and g.stdout.startswith("First")


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


@pytest.mark.parametrize("folder", ["gru", "transformer"])
def test_the_other_language_models_under_torchrun_take_the_steps_of_one_process(folder, tiny_corpus, tmp_path):
    """dropout 0 (the transformer's default): no random numbers but the batches', shared by the ranks"""
    common = ["--data", tiny_corpus, "--eval-every", "3", "--schedule", "constant", "--epochs", "4", *SIZES[folder]]
    one = run_script(folder, "train.py", *common, "--checkpoint", tmp_path / "one.pt")
    assert one.returncode == 0, one.stderr
    two = torchrun(folder, *common, "--checkpoint", tmp_path / "two.pt")
    assert two.returncode == 0, two.stderr
    # to float tolerance: the sums run in another order, and Adam's first steps magnify that (~3e-6 here)
    assert_same(weights(tmp_path / "one.pt"), weights(tmp_path / "two.pt"), atol=2e-5)
    assert generates(folder, tmp_path / "two.pt")


def test_an_lstm_with_dropout_resumed_under_torchrun_repeats_the_uninterrupted_run(tiny_corpus, tmp_path):
    """each rank's dropout masks come from its own stream, which the checkpoint keeps per rank"""
    common = ["--data", tiny_corpus, "--eval-every", "3", "--schedule", "constant", "--dropout", "0.25", *SIZES["lstm"]]
    full = torchrun("lstm", *common, "--epochs", "6", "--checkpoint", tmp_path / "full.pt")
    assert full.returncode == 0, full.stderr
    half = torchrun("lstm", *common, "--epochs", "3", "--checkpoint", tmp_path / "half.pt")
    assert half.returncode == 0, half.stderr
    ranks = torch.load(tmp_path / "half.pt", weights_only=True)["resume"]["ranks"]
    assert len(ranks) == 2 and not torch.equal(ranks[0]["cpu"], ranks[1]["cpu"])     # two streams
    resumed = torchrun("lstm", "--checkpoint", tmp_path / "half.pt", "--resume", "--epochs", "6")
    assert resumed.returncode == 0, resumed.stderr
    assert_same(weights(tmp_path / "full.pt"), weights(tmp_path / "half.pt"))
    assert generates("lstm", tmp_path / "half.pt")


def test_each_rank_draws_its_own_dropout_and_all_share_the_batch_stream():
    torch.manual_seed(5)
    expected = torch.rand(3)                                  # what the shared stream draws next
    masks = []
    for rank in (0, 1):
        torch.manual_seed(5)
        ddp = Distributed(rank=rank, world=2, seed=5)
        with ddp.own_rng():
            masks.append(torch.rand(4))
        with ddp.own_rng():                                   # the own stream goes on, not from its start
            assert not torch.equal(torch.rand(4), masks[-1])
        assert torch.equal(torch.rand(3), expected)           # the shared stream did not move
    assert not torch.equal(masks[0], masks[1])
    one = Distributed()                                       # one process: no-op
    torch.manual_seed(5)
    with one.own_rng():
        assert torch.equal(torch.rand(3), expected)
