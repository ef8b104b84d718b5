"""experiments/speed.py: its FLOP count against torch's own counter, and a tiny run's table."""
import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from conftest import load_experiment, run_script

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--repeats", 1, "--steps", 1, "--warmup", 0, "--batch-size", 2, "--bptt", 3, "--hidden", 8,
        "--tf-batch", 2, "--block", 8, "--width", 16, "--layers", 1, "--heads", 2, "--threads", 1]


def counted_flops(model, x, y, family):
    with FlopCounterMode(display=False) as counter:
        loss = model(x, None, y)[1] if family == "recurrent" else model(x, y)[1]
        loss.backward()
    return counter.get_total_flops()


@pytest.mark.parametrize("prefix, tolerance", [("transformer (written out)", 1e-9), ("transformer (autograd)", 1e-9),
                                               ("rnn (autograd)", 0.05), ("gru cudnn (autograd)", 0.05)])
def test_the_flop_count_is_what_torch_counts(prefix, tolerance):
    speed = load_experiment("speed")
    args, rows = speed.parse_args(["--rows", prefix, *map(str, TINY)])
    row = rows[0]
    shape = (args.batch_size, args.bptt) if row.family == "recurrent" else (args.tf_batch, args.block)
    x, y = torch.randint(args.vocab, shape), torch.randint(args.vocab, shape)
    counted = counted_flops(row.ours(args), x, y, row.family)
    # the recurrent rows: the formula counts T steps of the recurrent product, forward and backward;
    # autograd's count differs by the first step's (zero state) products, a few per cent at T 3
    assert speed.flops_per_step(row, args) == pytest.approx(counted, rel=tolerance)


def test_a_tiny_run_prints_every_row_with_its_ratio():
    result = run_script("experiments", "speed.py", "--rows", "transformer", "lstm plain", *TINY, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "matmul peak" in lines[0] and "GFLOP/s" in lines[0]
    for name in ("transformer (written out)", "transformer (autograd)", "lstm plain (manual BPTT)"):
        row = next(line for line in lines if line.startswith(name))
        ratio = row[len(name):].split()[2]
        assert ratio.endswith("x") and float(ratio[:-1]) > 0


def test_an_unknown_row_is_one_line():
    result = run_script("experiments", "speed.py", "--rows", "nosuchmodel")
    assert result.returncode != 0 and "no row matches" in result.stderr and "Traceback" not in result.stderr
