"""On a CUDA GPU (skipped without one): train two steps and generate there, in float32 and under
bfloat16 autocast, and a GPU-trained checkpoint generates on the CPU. Not run where no GPU was
available (README.md, Scaling up)."""
import pytest
import torch

from conftest import run_script

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")

TINY = {"mlp": ["--n-hidden", 16, "--n-embd", 4, "--batch-size", 8],
        "rnn": ["--n-hidden", 16, "--batch-size", 4, "--bptt", 8, "--backward", "autograd"],
        "lstm": ["--n-hidden", 16, "--batch-size", 4, "--bptt", 8, "--backward", "autograd"],
        "gru": ["--n-hidden", 16, "--batch-size", 4, "--bptt", 8, "--backward", "autograd"],
        "transformer": ["--layers", 1, "--heads", 2, "--d-model", 16, "--block-size", 16, "--batch-size", 4,
                        "--dropout", 0.1]}


@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
@pytest.mark.parametrize("folder", list(TINY))
def test_two_steps_on_cuda_then_generate_on_cuda_and_on_the_cpu(folder, dtype, tiny_corpus, tmp_path):
    path = tmp_path / "m.pt"
    r = run_script(folder, "train.py", "--data", tiny_corpus, "--epochs", 2, "--eval-every", 2, "--device", "cuda",
                   "--dtype", dtype, "--checkpoint", path, *TINY[folder])
    assert r.returncode == 0, r.stderr
    assert "summary:" in r.stdout
    ckpt = torch.load(path, map_location="cpu", weights_only=True)
    assert all(t.dtype == torch.float32 for t in ckpt["model"].values())
    for device in ("cuda", "cpu"):                           # a GPU-trained checkpoint generates on the CPU
        g = run_script(folder, "generate.py", "--checkpoint", path, "--device", device, "--prompt", "First",
                       "--length", 10, "--seed", 1)
        assert g.returncode == 0 and g.stdout.startswith("First"), g.stderr


def test_a_recurrent_checkpoint_resumes_on_the_cpu_after_cuda(tiny_corpus, tmp_path):
    """The carried state and the generators' states were saved from the GPU."""
    path = tmp_path / "m.pt"
    common = ["--data", tiny_corpus, "--eval-every", 2, *TINY["lstm"]]
    assert run_script("lstm", "train.py", *common, "--epochs", 2, "--device", "cuda",
                      "--checkpoint", path).returncode == 0
    r = run_script("lstm", "train.py", "--checkpoint", path, "--resume", "--epochs", 4, "--device", "cpu")
    assert r.returncode == 0, r.stderr


def test_compile_on_cuda_trains(tiny_corpus, tmp_path):
    r = run_script("transformer", "train.py", "--data", tiny_corpus, "--epochs", 3, "--eval-every", 3,
                   "--device", "cuda", "--compile", "--checkpoint", tmp_path / "m.pt", *TINY["transformer"],
                   timeout=600)
    assert r.returncode == 0, r.stderr
