"""How close a run comes to the machine's arithmetic peak: the FLOPs of one training step counted by
torch (torch.utils.flop_counter, the matmuls), and the machine's matmul peak measured on the spot.
train.py prints the fraction at the end; experiments/speed.py prints it for every row."""
import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from utils.evaluation import family


def matmul_peak(n=1024, repeats=10, device="cpu"):
    """GFLOP/s of an (n, n) @ (n, n) fp32 matmul on torch's current threads, the best of `repeats`."""
    x, y = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    best = float("inf")
    for _ in range(repeats + 1):              # the first is a warm-up
        if device != "cpu":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        x @ y
        if device != "cpu":
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - t0)
    return 2 * n ** 3 / best / 1e9


def training_flops_per_token(model, bptt=64):
    """FLOPs of forward and backward per target token, counted on one row of zeros: a block for an
    attention model, `bptt` steps for a recurrent one, one window for a fixed-window one. The RNG
    state and the parameters' gradients are left as they were."""
    device = next(model.parameters()).device
    kind = family(model)
    if kind == "window":
        x, tokens = torch.zeros(1, model.config.context, dtype=torch.long, device=device), 1
        y = torch.zeros(1, dtype=torch.long, device=device)
    else:
        T = model.config.block_size if kind == "attention" else bptt
        x, tokens = torch.zeros(1, T, dtype=torch.long, device=device), T
        y = x
    grads = [p.grad for p in model.parameters()]
    for p in model.parameters():
        p.grad = None                         # (backward would add into them in place)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []), torch.enable_grad(), \
            FlopCounterMode(display=False) as counter:
        loss = model(x, None, y)[1] if kind == "recurrent" else model(x, y)[1]
        loss.backward()
    for p, g in zip(model.parameters(), grads):
        p.grad = g
    return counter.get_total_flops() / tokens


def peak_line(model, tokens_per_s):
    """'pace: X GFLOP/s, Y% of this machine's matmul peak (Z GFLOP/s, measured now on N threads)'."""
    device = next(model.parameters()).device
    achieved = training_flops_per_token(model) * tokens_per_s / 1e9
    peak = matmul_peak(device=device.type)
    return (f"arithmetic: {achieved:.1f} GFLOP/s of matmuls, {achieved / peak:.0%} of this machine's fp32 matmul "
            f"peak ({peak:.0f} GFLOP/s, measured now on {torch.get_num_threads()} thread(s))")
