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


# the translator rows: their folders' default configs, with tiny vocabularies and sentences
TINY_SEQ = ["--seq-batch", "2", "--src-len", "3", "--tgt-len", "4", "--src-vocab", "50", "--tgt-vocab", "40"]
TRANSLATORS = ["translator rnnsearch", "translator gru (cho)", "translator transformer"]


@pytest.mark.parametrize("name", TRANSLATORS)
def test_each_translator_reference_gives_logits_and_a_finite_loss(name):
    speed = load_experiment("speed")
    args, (row,) = speed.parse_args(["--rows", name, *TINY_SEQ])
    src, src_len, tgt_in, tgt_out = batch = speed.seq2seq_batch(args)
    src_len[1] = 2                                                   # one padded sentence
    reference = row.reference(args)
    logits = reference(src, src_len, tgt_in)
    assert logits.shape == (2, 4, 40)
    loss = speed.loss_of(reference, batch, "seq2seq")
    assert torch.isfinite(loss)
    loss.backward()
    assert all(p.grad is not None for p in reference.parameters())


@pytest.mark.parametrize("name", TRANSLATORS)
def test_each_translator_reference_has_the_shape_of_ours(name):
    """Nearly the same parameters (nn.Linear's biases aside) and matmul FLOPs within 15% (the
    references' docstrings name their extra work), at the default vocabularies: with tiny ones the
    GRU reference's per-step context product is most of the work."""
    speed = load_experiment("speed")
    args, (row,) = speed.parse_args(["--rows", name, *TINY_SEQ[:6]])
    ours, reference = row.ours(args), row.reference(args)
    n_ours, n_ref = (sum(p.numel() for p in m.parameters()) for m in (ours, reference))
    assert n_ref == pytest.approx(n_ours, rel=0.01)
    batch = speed.seq2seq_batch(args)
    flops = speed.flops_per_step(row, args)
    assert flops == speed.counted_flops(row.ours, batch, args) > 0
    assert speed.counted_flops(row.reference, batch, args) == pytest.approx(flops, rel=0.15)


def test_a_tiny_run_prints_the_translator_rows_with_their_ratio():
    result = run_script("experiments", "speed.py", "--rows", "translator", *map(str, TINY), *TINY_SEQ, timeout=120)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("translator rows: B 2, S 3, T 4") for line in lines)
    for name in TRANSLATORS:
        row = next(line for line in lines if line.startswith(name))
        tok_ours, tok_ref, ratio = row[len(name):].split()[:3]
        assert ratio.endswith("x") and float(ratio[:-1]) > 0
        # the ratio is the two tok/s columns' (rounded as printed)
        assert float(ratio[:-1]) == pytest.approx(float(tok_ours.replace(",", "")) / float(tok_ref.replace(",", "")),
                                                  rel=0.02, abs=0.01)
