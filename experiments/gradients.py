"""How far back the gradient reaches: ||dl_T / dh_{T-k}|| against k, at initialisation and trained.

For a recurrent model (rnn with sigmoid or tanh, lstm's h and c, gru) and a target at position
T of the validation text, the model reads the text from a fixed start S up to T, and the loss
l_T of that one target is differentiated with respect to the state it carried k steps earlier,
after reading position T-k: the state is cut there (read without a graph up to T-k, then made a
leaf), so each k is one forward of k steps and one backward. The start S is the same for every k,
so every k differentiates the same prediction. For the Transformer, the same with respect to the
input of its first block (the embeddings, with the positions) at position T-k inside one window
of block_size tokens. Norms are per example, averaged over --examples validation targets; each
curve is divided by its value at the nearest position (k = 1 for the recurrent models, whose
state after reading T itself is inside the model; k = 0 for the Transformer) and its reach is the
first k at which it falls below 1e-3 of that.

The models come from each folder's own train.py (via experiments/compare.py's run_one), given
--minutes of CPU time on Tiny Shakespeare; "init" is the same configuration before any step. The
rnn runs also print the largest singular value of W at every validation (rnn/train.py), set
against Pascanu, Mikolov & Bengio 2013's bound: gradients must vanish while sigma_max(W) < 1/gamma,
gamma bounding f' (1 for tanh, 1/4 for sigmoid).

    python experiments/gradients.py --quick           # 1 CPU-minute per model, about 8 minutes in all
    python experiments/gradients.py                   # 4 CPU-minutes per model
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import datetime
import re
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from experiments.compare import Run, commands_section, run_one
from experiments.compare_report import load_lm
from utils.data import char_lm_data
from utils.errors import run_main
from utils.training import ArgumentParser, comma_list, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
# name: (folder, train.py flags); the probe uses the autograd path of each model (same numbers)
MODELS = {
    "rnn-sigmoid": ("rnn", ["--nonlinearity", "sigmoid"]),
    "rnn-tanh": ("rnn", ["--nonlinearity", "tanh", "--clip", "1.0"]),
    "lstm": ("lstm", []),
    "gru": ("gru", []),
    "transformer": ("transformer", []),
}
GAMMA = {"sigmoid": 0.25, "tanh": 1.0}        # max |f'|: the bound is sigma_max(W) < 1 / gamma
FLOOR = 1e-3
NOTES = (30, 50)                              # the original notes: "vanishing gradients visible after ~30-50 steps"


def ks_up_to(k_max, start=1):
    ks, k = [], start
    while k <= k_max:
        ks.append(k)
        k = k * 2 if k else 1
    return ks


def split_state(state):
    """The carried state as {name: tensor}: rnn s, lstm h and c (all layers), gru h (all layers)."""
    if torch.is_tensor(state):
        return {"h": state}
    if isinstance(state[0], tuple):
        return {"h": torch.cat([h for h, _ in state], -1), "c": torch.cat([c for _, c in state], -1)}
    return {"h": torch.cat(list(state), -1)}


def leaf_state(state):
    """A copy of the state whose tensors are leaves that require grad, and the list of them."""
    if torch.is_tensor(state):
        s = state.detach().requires_grad_()
        return s, {"h": [s]}
    if isinstance(state[0], tuple):
        pairs = [(h.detach().requires_grad_(), c.detach().requires_grad_()) for h, c in state]
        return pairs, {"h": [h for h, _ in pairs], "c": [c for _, c in pairs]}
    hs = [h.detach().requires_grad_() for h in state]
    return hs, {"h": hs}


def recurrent_norms(model, data, targets, ks, warmup):
    """{state name: (len(ks),) mean over the targets of ||dl_T / dstate_{T-k}||}. `targets`: positions
    T of `data` whose next token data[T+1] is predicted; the model reads data[S..T], S = T - max(ks) - warmup + 1."""
    model.eval()
    T = torch.as_tensor(targets)
    start = T - max(ks) - warmup + 1
    out = {}
    for i, k in enumerate(ks):
        # read data[S .. T-k] without a graph: the state after position T-k
        prefix = torch.stack([data[s:t - k + 1] for s, t in zip(start.tolist(), T.tolist())])
        with torch.no_grad():
            _, _, state = model(prefix)
        state, leaves = leaf_state(state)
        # then data[T-k+1 .. T] from that state, and the loss of the next token after T
        rest = torch.stack([data[t - k + 1:t + 1] for t in T.tolist()])
        logits, _, _ = model(rest, state)
        loss = F.cross_entropy(logits[:, -1], data[T + 1], reduction="sum")   # one target per row
        grads = torch.autograd.grad(loss, [t for ts in leaves.values() for t in ts])
        j = 0
        for name, ts in leaves.items():
            g = torch.cat(grads[j:j + len(ts)], -1)
            j += len(ts)
            out.setdefault(name, np.zeros(len(ks)))[i] = g.norm(dim=-1).mean().item()
    return out


def transformer_norms(model, data, targets, ks):
    """(len(ks),) mean ||dl_T / dx_{T-k}||, x the input of the first block, in one window ending at T."""
    model.eval()
    L = model.config.block_size
    captured = {}

    def hook(block, args):
        x = args[0].detach().requires_grad_()
        captured["x"] = x
        return (x,) + args[1:]

    handle = model.blocks[0].register_forward_pre_hook(hook)
    try:
        T = torch.as_tensor(targets)
        window = torch.stack([data[t - L + 1:t + 1] for t in T.tolist()])          # (B, L), ends at T
        logits, _ = model(window)
        loss = F.cross_entropy(logits[:, -1], data[T + 1], reduction="sum")
        (g,) = torch.autograd.grad(loss, [captured["x"]])                        # (B, L, d)
    finally:
        handle.remove()
    norms = g.norm(dim=-1).mean(0)                                              # (L,), position L-1 is T
    return np.array([norms[L - 1 - k].item() for k in ks])


def reach(ratios, ks, floor=FLOOR):
    """The first k at which the curve is below floor, or None if it never is (within ks)."""
    below = [k for k, r in zip(ks, ratios) if r < floor]
    return below[0] if below else None


def sigma_max_log(stdout_path):
    """[(step, sigma_max(W))] from an rnn run's validation lines."""
    pattern = re.compile(r"^step (\d+) \|.*sigma_max\(W\) ([\d.]+)")
    return [(int(m.group(1)), float(m.group(2))) for line in Path(stdout_path).read_text().splitlines()
            if (m := pattern.match(line))]


def probe(name, folder, model, val, args, ks_rnn, ks_tf, rng):
    """{curve name: ratios} and the raw norms for one model."""
    if folder == "transformer":
        L = model.config.block_size
        targets = rng.integers(L, len(val) - 2, args.examples)
        ks = sorted({k for k in [0] + ks_tf if k < L} | {L - 1})
        norms = {"x": transformer_norms(model, val, targets, ks)}
    else:
        targets = rng.integers(max(ks_rnn) + args.warmup, len(val) - 2, args.examples)
        ks = ks_rnn
        norms = {}
        for i in range(0, args.examples, args.batch):
            part = recurrent_norms(model, val, targets[i:i + args.batch], ks, args.warmup)
            for k, v in part.items():
                norms[k] = norms.get(k, 0) + v * len(targets[i:i + args.batch]) / args.examples
    return ks, norms


def with_autograd(model):
    """The probe differentiates through the state: the autograd path (the same numbers as manual),
    and the true derivative (the LSTM's clip of dl/da to [-1, 1] in training, Graves §2.1, is off)."""
    if hasattr(model.config, "clip_lstm_grads"):
        model.config.clip_lstm_grads = None
    if hasattr(model.config, "backward"):
        model.config.backward = "autograd"
        for layer in getattr(model, "layers", []):
            if hasattr(layer, "backward"):
                layer.backward = "autograd"
    return model


def fresh_copy(folder, checkpoint, seed):
    """The checkpoint's configuration before training: its weights as the folder initialises them."""
    model, _ = load_lm(folder, checkpoint)
    torch.manual_seed(seed)
    return type(model)(model.config)


def plot(results, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"rnn-sigmoid": "tab:blue", "rnn-tanh": "tab:cyan", "lstm": "tab:red", "gru": "tab:orange",
              "transformer": "tab:green"}
    for ax, when in zip(axes, ("init", "trained")):
        for name, r in results.items():
            for curve, ratios in r[when]["ratios"].items():
                ks = np.array(r[when]["ks"])
                keep = ks > 0
                ax.plot(ks[keep], np.maximum(ratios[keep], 1e-12), color=colors[name],
                        linestyle="-" if curve in ("h", "x") else "--", marker=".",
                        label=f"{name} {curve}" + (" (embeddings)" if curve == "x" else ""))
        ax.axhline(FLOOR, color="black", linewidth=0.8)
        ax.axvspan(*NOTES, color="gray", alpha=0.15, label="the notes' 30-50 steps")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel("k, steps back")
        ax.set_ylabel("||dl_T/dh_(T-k)|| / its value at the nearest k")
        ax.set_title(f"{when}")
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(args, results, sigmas, records, out, command, cpu_s):
    lines = ["# How far back the gradient reaches", "",
             f"`{command}` on {datetime.date.today().isoformat()}, {cpu_s / 60:.1f} CPU-minutes of probing "
             f"(the training is in the commands below). Each model trained by its folder's train.py for "
             f"{args.minutes:g} CPU-minutes on {Path(args.data).name} (one thread, the defaults unless a flag is shown). "
             f"Norms averaged over {args.examples} validation targets; each curve divided by its value at the "
             f"nearest k (1 for the recurrent states, 0 for the Transformer's inputs); reach = the first k "
             f"(of the powers of 2 measured) at which it is below {FLOOR:g} of that.", "",
             "| model | state | reach at init | reach trained | ratio at k = 32, trained | ratio at k = 64, trained | ratio at the largest k, trained |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for name, r in results.items():
        for curve in r["trained"]["ratios"]:
            ks = r["trained"]["ks"]
            tr, it = r["trained"]["ratios"][curve], r["init"]["ratios"][curve]
            at = {k: v for k, v in zip(ks, tr)}
            fmt = lambda k: f"{at[k]:.2e}" if k in at else "–"
            ri, rt = reach(it, ks), reach(tr, ks)
            lines.append(f"| {name} | {curve} | {ri if ri is not None else f'> {max(ks)}'} | "
                         f"{rt if rt is not None else f'> {max(ks)}'} | {fmt(32)} | {fmt(64)} | "
                         f"{tr[-1]:.2e} (k = {ks[-1]}) |")
    lines += ["", "![gradient norm against steps back](gradients.png)", "",
              "## The RNN's recurrent matrix during training", "",
              "Pascanu, Mikolov & Bengio 2013: the gradient must vanish while the largest singular value of W stays "
              "below 1/γ, γ the bound of |f'| (tanh: 1, so 1; sigmoid: 1/4, so 4).", "",
              "| model | bound 1/γ | σ_max(W) at the validations (step: value) |", "|---|---:|---|"]
    for name, log in sigmas.items():
        f = MODELS[name][1][1]
        lines.append(f"| {name} | {1 / GAMMA[f]:g} | " + ", ".join(f"{s}: {v:.2f}" for s, v in log) + " |")
    lines += commands_section(records)
    (out / "gradients.md").write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare", help="corpus name or UTF-8 text file (default: tinyshakespeare)")
    parser.add_argument("--minutes", type=positive_float, default=4.0, help="CPU-minutes of training per model (default: 4)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated among {', '.join(MODELS)} (default: all)")
    parser.add_argument("--k-max", type=positive_int, default=256, help="the farthest step back for the recurrent models (default: 256)")
    parser.add_argument("--examples", type=positive_int, default=64, help="validation targets averaged over (default: 64)")
    parser.add_argument("--batch", type=positive_int, default=32, help="targets per forward (default: 32)")
    parser.add_argument("--warmup", type=positive_int, default=64,
                        help="characters read before the farthest k, so that no state starts cold (default: 64)")
    parser.add_argument("--seed", type=int, default=1337, help="training and probing seed (default: 1337)")
    parser.add_argument("--quick", action="store_true", help="--minutes 1")
    parser.add_argument("--out", default=str(RESULTS), help="folder of gradients.md and gradients.png (default: experiments/results)")
    parser.add_argument("--work", default=str(ROOT / "checkpoints" / "gradients"),
                        help="folder of the trained models (default: checkpoints/gradients)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 1.0
    args.models = comma_list(parser, args.models, list(MODELS), "--models")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, _, val = char_lm_data(args.data)
    ks_rnn, ks_tf = ks_up_to(args.k_max), ks_up_to(1024)
    run_args = argparse.Namespace(data=args.data, work=args.work)
    results, sigmas, records = {}, {}, {}
    probe_cpu = 0.0
    for name in tqdm(args.models, desc="gradients", unit="model", dynamic_ncols=True):
        folder, flags = MODELS[name]
        run = Run("gradients", folder, name, flags, args.seed, args.minutes)
        records[name] = rec = run_one(run, run_args, threads=1, reuse=True)
        started = time.process_time()
        torch.set_num_threads(1)
        trained, _ = load_lm(folder, rec["checkpoint"])
        results[name] = {}
        for when, model in (("init", fresh_copy(folder, rec["checkpoint"], args.seed)), ("trained", trained)):
            rng = np.random.default_rng(args.seed)
            ks, norms = probe(name, folder, with_autograd(model), val, args, ks_rnn, ks_tf, rng)
            results[name][when] = {"ks": ks, "norms": norms,
                                   "ratios": {c: v / max(v[0], 1e-30) for c, v in norms.items()}}
        probe_cpu += time.process_time() - started
        if folder == "rnn":
            sigmas[name] = sigma_max_log(Path(rec["checkpoint"]).with_name("stdout.txt"))
    plot(results, out / "gradients.png")
    command = " ".join(["python experiments/gradients.py", *(sys.argv[1:] if argv is None else argv)])
    write_report(args, results, sigmas, records, out, command, probe_cpu)
    print(f"wrote {out / 'gradients.md'}")


if __name__ == "__main__":
    run_main(main)
