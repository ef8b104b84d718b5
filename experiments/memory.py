"""Long-range memory on controlled tasks: delayed recall at distance k, and closing brackets (Dyck).

Delayed recall. Tokens: n_keys keys, n_fill fillers (disjoint from the keys), MARK and QUERY. A
sequence is
    [prefix fillers]  MARK  key  [k-1 fillers]  QUERY          (length prefix + k + 2)
and the answer, predicted at the QUERY position, is the key: the token exactly k positions back.
Keys and fillers are uniform and independent, so nothing but memory of that one token answers it;
a model that cannot see the key scores chance = 1/n_keys (the prediction is the argmax among the
keys). Each (model, k, seed) is its own model, trained from scratch on fresh sequences for the same
number of Adam steps at the same batch size (not the same CPU time: the CPU time of each is in the
report), the cross-entropy taken at the answer position only, and scored on --eval fresh sequences.

Nested brackets (Dyck-like). n_types bracket pairs and n_fill fillers: at each position, with the
stack empty an opener (p = --p-open) or a filler; otherwise a closer of the innermost open bracket
(p = --p-close), an opener (p = --p-open, up to --max-depth), or a filler. Loss and score at every
position whose next token is a closer: is the argmax among the n_types closers the type of the
matching opener? Broken down by nesting depth (the open brackets just before the closer, itself
included) and by distance (closer position minus opener position). Chance = 1/n_types.

The models are the folders' own classes, each sized to about --params parameters (the nearest
hidden width; printed in the tables): mlp (its window: --mlp-window tokens), rnn with sigmoid and
with tanh, lstm (one layer, peepholes), gru (one layer), transformer (2 layers, d_model 32, its
block: --block tokens; it reads only the last block tokens). Where k is at least a model's reach,
its key is out of sight and its expected accuracy is chance: the plot marks both reaches.

The tasks are in experiments/memory_tasks.py, the models (building, training, scoring) in
experiments/memory_models.py, the report and plots in experiments/memory_report.py; this file is the
command line and the runs.

    python experiments/memory.py --quick        # k = 2..64, one seed: about 6 CPU-minutes
    python experiments/memory.py                # k = 2..256, 3 seeds
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime
import json
import time

import numpy as np
import torch
from tqdm import tqdm

from experiments.memory_models import breakdown, build, dyck_scores, n_params, reach, recall_accuracy, size_for, train
from experiments.memory_report import bin_label, plot_dyck, plot_recall, write_report
from experiments.memory_tasks import DISTANCE_BINS, Dyck, Recall
from utils.errors import UserError, run_main
from utils.training import ArgumentParser, comma_list, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
MODELS = ("mlp", "rnn-sigmoid", "rnn-tanh", "lstm", "gru", "transformer")


# ---------------------------------------------------------------- command line

def k_list(text):
    try:
        ks = sorted({int(x) for x in text.split(",") if x.strip()})
    except ValueError:
        raise UserError(f"--k: expected comma-separated integers, got {text!r}") from None
    if not ks or ks[0] < 1:
        raise UserError(f"--k: every k must be a positive integer, got {text!r}")
    return ks


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    t = p.add_argument_group("tasks")
    t.add_argument("--k", default="2,4,8,16,32,64,128,256", help="distances k of the recall task (default: 2..256)")
    t.add_argument("--tasks", default="recall,dyck", help="comma-separated among recall, dyck (default: both)")
    t.add_argument("--n-keys", type=positive_int, default=8, help="keys to recall, chance = 1/n (default: 8)")
    t.add_argument("--dyck-length", type=positive_int, default=64, help="tokens per bracket sequence (default: 64)")
    m = p.add_argument_group("models")
    m.add_argument("--models", default=",".join(MODELS), help=f"comma-separated among {', '.join(MODELS)} (default: all)")
    m.add_argument("--params", type=positive_int, default=22000, help="parameters per model, roughly (default: 22000)")
    m.add_argument("--mlp-window", type=positive_int, default=8, help="the MLP's window n-1 (default: 8)")
    m.add_argument("--block", type=positive_int, default=64, help="the Transformer's block (default: 64)")
    o = p.add_argument_group("training and scoring")
    o.add_argument("--steps", type=positive_int, default=600, help="Adam steps per model (default: 600)")
    o.add_argument("--batch", type=positive_int, default=32, help="sequences per step (default: 32)")
    o.add_argument("--lr", type=positive_float, default=3e-3, help="Adam learning rate, every model (default: 3e-3)")
    o.add_argument("--clip", type=positive_float, default=1.0, help="gradient norm clip (default: 1.0)")
    o.add_argument("--eval", type=positive_int, default=2000, help="recall sequences scored per model and k (default: 2000)")
    o.add_argument("--eval-dyck", type=positive_int, default=1000, help="bracket sequences scored per model (default: 1000)")
    o.add_argument("--seeds", default="1,2,3", help="comma-separated seeds (default: 1,2,3)")
    o.add_argument("--quick", action="store_true", help="--k 2,4,8,16,32,64 --seeds 1 (about 6 CPU-minutes)")
    o.add_argument("--out", default=str(RESULTS), help="folder of memory.md and the PNGs (default: experiments/results)")
    args = p.parse_args(argv)
    if args.quick:
        args.k, args.seeds = "2,4,8,16,32,64", "1"
    args.k = k_list(args.k)
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    except ValueError:
        raise UserError(f"--seeds: expected comma-separated integers, got {args.seeds!r}") from None
    if not args.seeds:
        raise UserError("--seeds: give at least one seed")
    args.models = comma_list(p, args.models, list(MODELS), "--models")
    args.tasks = comma_list(p, args.tasks, ["recall", "dyck"], "--tasks")
    if args.n_keys < 2:
        raise UserError("--n-keys must be at least 2")
    if args.dyck_length < 4:
        raise UserError("--dyck-length must be at least 4")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    started = time.time()
    rtask, dtask = Recall(n_keys=args.n_keys), Dyck(length=args.dyck_length)
    depths = [(d, d) for d in range(1, dtask.max_depth + 1)]
    sizes = {name: size_for(name, rtask.vocab_size, args) for name in args.models}
    sizes = {name: (s, n_params(build(name, rtask.vocab_size, s, args))) for name, s in sizes.items()}
    reaches = {name: reach(build(name, rtask.vocab_size, sizes[name][0], args)) for name in args.models}
    for name, (s, n) in sizes.items():
        print(f"{name}: width {s}, {n:,} parameters, reach {reaches[name] or 'unbounded'}")
    n_runs = (len(args.k) if "recall" in args.tasks else 0) + ("dyck" in args.tasks)
    bar = tqdm(total=n_runs * len(args.models) * len(args.seeds) * args.steps, desc="memory", unit="step",
               dynamic_ncols=True)
    recall, dres, cpu = {}, {}, {}
    for name in args.models:
        width = sizes[name][0]
        if "recall" in args.tasks:
            recall[name] = {}
            for k in args.k:
                recall[name][k] = []
                for seed in args.seeds:
                    bar.set_description(f"{name} k={k} seed {seed}")
                    torch.manual_seed(seed)
                    model = build(name, rtask.vocab_size, width, args)
                    g = torch.Generator().manual_seed(seed)
                    pad = rtask.n_keys                           # a filler
                    c = train(model, lambda: rtask.batch(args.batch, k, g), args.steps, args.lr, args.clip, bar, pad)
                    cpu[("recall", name)] = cpu.get(("recall", name), 0.0) + c
                    recall[name][k].append(recall_accuracy(model, rtask, k, args.eval, seed, pad))
            tqdm.write(f"{name} recall: " + ", ".join(f"k={k} {np.mean(v):.3f}" for k, v in recall[name].items()))
        if "dyck" in args.tasks:
            dres[name] = []
            for seed in args.seeds:
                bar.set_description(f"{name} dyck seed {seed}")
                torch.manual_seed(seed)
                model = build(name, dtask.vocab_size, width, args)
                g = torch.Generator().manual_seed(seed)
                pad = 2 * dtask.n_types
                c = train(model, lambda: dtask.batch(args.batch, g), args.steps, args.lr, args.clip, bar, pad)
                cpu[("dyck", name)] = cpu.get(("dyck", name), 0.0) + c
                correct, depth, dist = dyck_scores(model, dtask, args.eval_dyck, seed, pad)
                dres[name].append({"all": float(correct.mean()), "n": len(correct), "params": n_params(model),
                                   "depth": breakdown(correct, depth, depths),
                                   "distance": breakdown(correct, dist, DISTANCE_BINS)})
            tqdm.write(f"{name} dyck: {np.mean([r['all'] for r in dres[name]]):.3f}")
    bar.close()
    if recall:
        plot_recall(recall, args.k, rtask.chance(), reaches, out / "memory.png")
    if dres:
        plot_dyck(dres, depths, dtask.chance(), out / "memory_dyck.png")
    command = " ".join(["python experiments/memory.py", *(sys.argv[1:] if argv is None else argv)])
    write_report(args, out, command, recall, rtask, sizes, reaches, cpu, dres, dtask, depths, time.time() - started)
    raw = {"command": command, "date": datetime.date.today().isoformat(), "sizes": sizes,
           "recall": {n: {str(k): v for k, v in by_k.items()} for n, by_k in recall.items()},
           "dyck": {n: [{"all": r["all"], "n": r["n"], "params": r["params"],
                         **{key: {bin_label(*g): list(v) for g, v in r[key].items()} for key in ("depth", "distance")}}
                        for r in runs] for n, runs in dres.items()},
           "cpu_s": {f"{t} {n}": c for (t, n), c in cpu.items()}}
    (out / "memory_runs.json").write_text(json.dumps(raw, indent=1) + "\n")
    print(f"wrote {out / 'memory.md'}")


if __name__ == "__main__":
    run_main(main)
