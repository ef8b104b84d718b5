"""How much context each trained language model uses (Khandelwal et al. 2018, "Sharp Nearby, Fuzzy Far Away").

The same --targets validation characters are scored with only the last n characters as context,
n = 1, 2, 4, ..., 512: a recurrent model reads those n characters from a zero state, the
Transformer sees a window of n (at most its block), the MLP its window cut to n (the rest padded,
as at the start of a text). The loss increase over the longest context, against n, says how far
back each model's predictions depend on the text; its effective context is the smallest n within
0.01 nats of the longest. The second panel keeps the nearest b characters in order and shuffles
the rest of the context (the characters farther than b back, within the longest context): where
does order stop mattering?

The models are trained by their folders' train.py (experiments/compare.py's run_one) for
--minutes CPU-minutes on Tiny Shakespeare, or reused when that run already finished in --work
(by default the same models experiments/gradients.py probes).

    python experiments/context.py --quick        # reuses or trains 1 CPU-minute models
    python experiments/context.py --minutes 4
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import datetime
import json
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
from utils.evaluation import family
from utils.training import ArgumentParser, comma_list, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
MODELS = {                      # name: (folder, train.py flags), as in experiments/gradients.py
    "mlp": ("mlp", []),
    "rnn-sigmoid": ("rnn", ["--nonlinearity", "sigmoid"]),
    "lstm": ("lstm", []),
    "gru": ("gru", []),
    "transformer": ("transformer", []),
}
SHUFFLE_FROM = (5, 10, 20, 50, 100)
WITHIN = 0.01                   # nats: "effective context", the smallest n this close to the longest


def longest_context(model, n_max):
    """How many characters of context a model can use at most: its window, its block, or n_max."""
    kind = family(model)
    if kind == "window":
        return model.config.context
    if kind == "attention":
        return min(n_max, model.config.block_size)
    return n_max


def target_nats(model, contexts, targets, pad_id=0, batch=256):
    """-ln p(target | context) for each row: contexts (M, n) the n characters before each target."""
    kind, out = family(model), []
    model.eval()
    with torch.no_grad():
        for i in range(0, len(contexts), batch):
            x, y = contexts[i:i + batch], targets[i:i + batch]
            if kind == "window":
                k = model.config.context
                if x.shape[1] < k:                      # fewer characters than the window: padded on the left
                    x = torch.cat([torch.full((len(x), k - x.shape[1]), pad_id, dtype=x.dtype), x], 1)
                logits, _ = model(x[:, -k:])
            elif kind == "attention":
                logits, _ = model(x)
                logits = logits[:, -1]
            else:
                logits, _, _ = model(x)                  # from a zero state
                logits = logits[:, -1]
            out.append(F.cross_entropy(logits, y, reduction="none").double())
    return torch.cat(out).numpy()


def contexts_of(data, positions, n):
    """(M, n): the n characters before each position."""
    return torch.stack([data[p - n:p] for p in positions.tolist()])


def context_curve(model, data, positions, ns, pad_id):
    """{n: mean nats} with the last n characters as context, n up to the model's longest."""
    longest = longest_context(model, max(ns))
    targets = data[positions]
    return {n: float(target_nats(model, contexts_of(data, positions, n), targets, pad_id).mean())
            for n in sorted({n for n in ns if n <= longest} | {longest})}


def shuffle_curve(model, data, positions, bs, pad_id, seed, n_max=512):
    """{b: mean nats} with the longest context, its characters farther than b back shuffled
    (each row its own permutation); b = None: in order."""
    L = longest_context(model, n_max)
    x = contexts_of(data, positions, L)
    targets = data[positions]
    g = torch.Generator().manual_seed(seed)
    out = {None: float(target_nats(model, x, targets, pad_id).mean())}
    for b in bs:
        if b >= L:
            continue
        shuffled = x.clone()
        far = L - b                                      # positions 0 .. far-1 are farther than b back
        order = torch.argsort(torch.rand(len(x), far, generator=g), dim=1)
        shuffled[:, :far] = torch.gather(x[:, :far], 1, order)
        out[b] = float(target_nats(model, shuffled, targets, pad_id).mean())
    return out


def probe(checkpoint, folder, val, positions, ns, args):
    """Both curves of one model, kept beside its checkpoint (context.json) for the same targets, n
    and seed, so that a second run of the report scores only what is new."""
    cache = Path(checkpoint).with_name("context.json")
    key = {"targets": len(positions), "n_max": max(ns), "seed": args.seed, "data": args.data}
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved["key"] == key:
            return {"context": {int(n): v for n, v in saved["context"].items()},
                    "shuffle": {None if b == "none" else int(b): v for b, v in saved["shuffle"].items()},
                    "longest": saved["longest"]}
    model, pad_id = load_lm(folder, checkpoint)
    result = {"context": context_curve(model, val, positions, ns, pad_id),
              "shuffle": shuffle_curve(model, val, positions, SHUFFLE_FROM, pad_id, args.seed, args.n_max),
              "longest": longest_context(model, args.n_max)}
    cache.write_text(json.dumps({"key": key, "context": result["context"], "longest": result["longest"],
                                 "shuffle": {"none" if b is None else b: v for b, v in result["shuffle"].items()}}))
    return result


def effective_context(curve):
    full = curve[max(curve)]
    return min(n for n, loss in curve.items() if loss - full <= WITHIN)


def plot(results, path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    colors = {"mlp": "tab:gray", "rnn-sigmoid": "tab:blue", "lstm": "tab:red", "gru": "tab:orange",
              "transformer": "tab:green"}
    for name, r in results.items():
        c = r["context"]
        full = c[max(c)]
        ns = sorted(c)
        a.plot(ns, [max(c[n] - full, 1e-4) for n in ns], marker="o", color=colors[name], label=name)
        s = r["shuffle"]
        bs = sorted(k for k in s if k is not None)
        if bs:
            b.plot(bs, [s[k] - s[None] for k in bs], marker="o", color=colors[name], label=name)
    a.axhline(WITHIN, color="black", linewidth=0.8, label=f"{WITHIN} nats")
    a.set_xscale("log", base=2)
    a.set_yscale("log")
    a.set_xlabel("n, characters of context")
    a.set_ylabel("loss increase over the longest context (nats/char)")
    a.set_title("only the last n characters")
    a.legend(fontsize=8)
    b.axhline(0, color="black", linewidth=0.8)
    b.set_xscale("log")
    b.set_xlabel("b: the nearest b characters kept in order, the rest shuffled")
    b.set_ylabel("loss increase over the context in order (nats/char)")
    b.set_title("order farther than b back")
    b.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(args, results, records, out, command, cpu_s):
    ns = sorted({n for r in results.values() for n in r["context"]})
    lines = ["# How much context each model uses", "",
             f"`{command}` on {datetime.date.today().isoformat()}, {cpu_s / 60:.1f} CPU-minutes of scoring; "
             f"{args.targets:,} validation characters of {Path(args.data).name}, the same for every model and n. "
             f"Each model trained by its folder's train.py for {args.minutes:g} CPU-minutes (one thread; commands "
             f"below). Loss in nats per character with only the last n characters as context; effective context = "
             f"the smallest n within {WITHIN} nats of the longest.", "",
             "| model | " + " | ".join(f"n = {n}" for n in ns) + " | effective context |",
             "|---|" + "---:|" * (len(ns) + 1)]
    for name, r in results.items():
        c = r["context"]
        lines.append(f"| {name} | " + " | ".join(f"{c[n]:.4f}" if n in c else "–" for n in ns)
                     + f" | {effective_context(c)} |")
    bs = list(SHUFFLE_FROM)
    lines += ["", "![loss increase against context, and against where the shuffling starts](context.png)", "",
              "The longest context with the characters farther than b back shuffled (nats per character; "
              "the first column is the context in order):", "",
              "| model | longest context | in order | " + " | ".join(f"b = {b}" for b in bs) + " |",
              "|---|---:|---:|" + "---:|" * len(bs)]
    for name, r in results.items():
        s = r["shuffle"]
        lines.append(f"| {name} | {r['longest']} | {s[None]:.4f} | " +
                     " | ".join(f"{s[b]:.4f}" if b in s else "–" for b in bs) + " |")
    lines += ["", "Issue 13's other panels, the Transformer's loss per position inside its block against the LSTM's "
              "and the GRU's with their state reset at the same points, and Transformers with sinusoidal, learned "
              "and rotary positions on contexts longer than their training block, are experiments/"
              "context_positions.py's: [context_positions.md](context_positions.md)."]
    lines += commands_section(records)
    (out / "context.md").write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare", help="corpus name or UTF-8 text file (default: tinyshakespeare)")
    parser.add_argument("--minutes", type=positive_float, default=4.0, help="CPU-minutes of training per model (default: 4)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"comma-separated among {', '.join(MODELS)} (default: all)")
    parser.add_argument("--n-max", type=positive_int, default=512, help="the longest context tried (default: 512)")
    parser.add_argument("--targets", type=positive_int, default=2000, help="validation characters scored (default: 2000)")
    parser.add_argument("--seed", type=int, default=1337, help="training, target and shuffling seed (default: 1337)")
    parser.add_argument("--quick", action="store_true", help="--minutes 1 --targets 1000")
    parser.add_argument("--out", default=str(RESULTS), help="folder of context.md and context.png (default: experiments/results)")
    parser.add_argument("--work", default=str(ROOT / "checkpoints" / "gradients"),
                        help="folder of the trained models, shared with experiments/gradients.py (default: checkpoints/gradients)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.targets = 1.0, 1000
    args.models = comma_list(parser, args.models, list(MODELS), "--models")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tokenizer, _, val = char_lm_data(args.data)
    ns = [2 ** i for i in range(int(np.log2(args.n_max)) + 1)]
    rng = np.random.default_rng(args.seed)
    positions = torch.as_tensor(rng.integers(args.n_max, len(val), min(args.targets, len(val) - args.n_max)))
    run_args = argparse.Namespace(data=args.data, work=args.work)
    results, records, cpu = {}, {}, 0.0
    torch.set_num_threads(1)
    for name in tqdm(args.models, desc="context", unit="model", dynamic_ncols=True):
        folder, flags = MODELS[name]
        records[name] = rec = run_one(Run("gradients", folder, name, flags, args.seed, args.minutes), run_args,
                                      threads=1, reuse=True)
        started = time.process_time()
        results[name] = probe(rec["checkpoint"], folder, val, positions, ns, args)
        cpu += time.process_time() - started
    plot(results, out / "context.png")
    command = " ".join(["python experiments/context.py", *(sys.argv[1:] if argv is None else argv)])
    write_report(args, results, records, out, command, cpu)
    print(f"wrote {out / 'context.md'}")


if __name__ == "__main__":
    run_main(main)
