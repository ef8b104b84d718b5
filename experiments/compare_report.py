"""The report of experiments/compare.py: tables, the original notes' claims checked, and plots.

Everything here is computed from the run records (experiments/results/compare_runs.jsonl), the
checkpoints those runs left in checkpoints/compare/, and the Kneser-Ney baseline fitted here."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime
import math
import os
import platform
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch

from utils.data import char_lm_data
from utils.evaluation import evaluate_lm, fast_estimate
from utils.metrics import bits_per_token
from utils.ngram import KneserNey

MODELS = ("mlp", "rnn", "lstm", "gru", "transformer")
COLORS = {"mlp": "tab:gray", "rnn": "tab:blue", "lstm": "tab:red", "gru": "tab:orange",
          "transformer": "tab:green", "kn": "black"}
KN_ORDERS = range(2, 11)
LN2 = math.log(2)


# ---------------------------------------------------------------- numbers

def mean_sd(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0


def pm(values, digits=4):
    m, s = mean_sd(values)
    return f"{m:.{digits}f} ± {s:.{digits}f}" if len(values) > 1 else f"{m:.{digits}f}"


def groups(asked, records, part):
    """{model: [records]} of one part of the study, in MODELS order (models without records left out)."""
    by_key = {r["key"]: r for r in records}
    out = {}
    for run in asked:
        if run.part == part and run.key in by_key:
            out.setdefault(run.model, []).append(by_key[run.key])
    return {m: out[m] for m in MODELS if m in out}


def mean_curve(runs, axis):
    """The seeds' validation curves, point by point (every run validates at the same fractions of
    its budget): x (mean over seeds), y mean, y min, y max. axis 0: CPU seconds, 1: characters."""
    n = min(len(r["curve"]) for r in runs)
    xs = np.array([[p[axis] for p in r["curve"][:n]] for r in runs], dtype=float)
    ys = np.array([[p[2] for p in r["curve"][:n]] for r in runs], dtype=float)
    return xs.mean(0), ys.mean(0), ys.min(0), ys.max(0)


def first_reaching(x, y, level):
    """The first x at which the curve y(x) comes down to `level`, linearly interpolated; None if never."""
    for i in range(len(y)):
        if y[i] <= level:
            if i == 0:
                return float(x[0])
            return float(x[i - 1] + (x[i] - x[i - 1]) * (y[i - 1] - level) / (y[i - 1] - y[i]))
    return None


def kneser_ney(data):
    """{order: (val nats/char, scored, stored n-grams, seconds)} on the study's split."""
    _, train, val = char_lm_data(data)
    out = {}
    for n in KN_ORDERS:
        start = time.process_time()
        lm = KneserNey(train.numpy(), n, int(max(train.max(), val.max())) + 1)
        nats = lm.nats(val.numpy())
        out[n] = (float(nats.mean()), len(nats), sum(len(k) for k in lm.keys[1:]), time.process_time() - start)
    return out


def scored_of(stdout_path):
    """The characters a run's final validation scored, from its summary line; None if it does not say."""
    if not stdout_path.exists():
        return None
    for line in stdout_path.read_text().splitlines():
        if line.startswith("summary:") and "| scored " in line:
            return int(line.split("| scored ")[1].split()[0].replace(",", ""))
    return None


def spikes(train_curve, threshold=0.5, skip=0.1):
    """How often the logged training loss rises more than `threshold` nats above its lowest value so
    far, after the first `skip` of the run (a diverged run counts once, at its start)."""
    losses = [l for _, l in train_curve]
    start = int(len(losses) * skip)
    best, count, above = float("inf"), 0, False
    for i, l in enumerate(losses):
        if not math.isfinite(l):
            return count + 1
        if i >= start and l > best + threshold:
            count += not above
            above = True
        else:
            above = False
        best = min(best, l)
    return count


def diverged(record, vocab_size):
    """A run ends no better than the uniform guess, or with a loss that is not a number."""
    return not math.isfinite(record["val"]) or record["val"] >= math.log(vocab_size)


# ---------------------------------------------------------------- the protocol against the old estimate

def load_lm(model, path):
    """(model, pad id) from a checkpoint of one of the five folders."""
    from gru.model import GRUConfig, GRULanguageModel
    from lstm.model import LSTM, LSTMConfig
    from mlp.generate import padding_id
    from mlp.model import NPLM, MLPConfig
    from rnn.model import ElmanRNN, RNNConfig
    from transformer.model import TransformerConfig, TransformerLM
    from utils.checkpoint import load_model
    build = {"mlp": lambda c: NPLM(MLPConfig(**c)), "rnn": lambda c: ElmanRNN(RNNConfig(**c)),
             "lstm": lambda c: LSTM(LSTMConfig(**c)), "gru": lambda c: GRULanguageModel(GRUConfig(**c)),
             "transformer": lambda c: TransformerLM(TransformerConfig(**c))}[model]
    lm, tokenizer = load_model(path, model, build)
    return lm, padding_id(tokenizer)


def protocol_check(data, defaults):
    """Per model, its first-seed checkpoint of the defaults part scored three ways: the protocol,
    the old fast estimate, and (recurrent models) the protocol with one stream, the state carried
    over the whole split with no warm-up cut. [(model, protocol, fast, one stream or None)]"""
    _, _, val = char_lm_data(data)
    rows = []
    for model, runs in defaults.items():
        path = Path(runs[0]["checkpoint"])
        if not path.exists():
            continue
        lm, pad_id = load_lm(model, path)
        full = evaluate_lm(lm, val, pad_id=pad_id)
        fast = fast_estimate(lm, val, "cpu", 32, 100)
        one = evaluate_lm(lm, val, streams=1) if hasattr(lm, "init_state") else None
        rows.append((model, full, fast, one))
    return rows


# ---------------------------------------------------------------- plots

def plot_curves(parts, kn_best, path):
    """Validation bpc against training CPU time and against characters seen, per part (rows)."""
    fig, axes = plt.subplots(len(parts), 2, figsize=(11, 4 * len(parts)), squeeze=False)
    for row, (title, grouped) in enumerate(parts.items()):
        for col, (axis, label, scale) in enumerate(((0, "training time (CPU-minutes, one thread)", 60),
                                                    (1, "characters seen (millions)", 1e6))):
            ax = axes[row][col]
            shown = [kn_best[1] / LN2]
            for model, runs in grouped.items():
                x, y, lo, hi = mean_curve(runs, axis)
                shown += list(lo[1:] / LN2) + list(hi[1:] / LN2)      # the first validation is off the scale
                ax.plot(x / scale, y / LN2, color=COLORS[model], label=f"{model} ({len(runs)} seeds)")
                ax.fill_between(x / scale, lo / LN2, hi / LN2, color=COLORS[model], alpha=0.2)
            ax.axhline(kn_best[1] / LN2, color="black", ls="--", lw=1, label=f"Kneser-Ney {kn_best[0]}-gram")
            if axis == 1:
                ax.set_xscale("log")          # the MLP reads ten times more characters than the Transformer
            ax.set_xlabel(label)
            ax.set_ylabel("validation bits per character")
            ax.set_title(f"{title}: mean over seeds, min-max shaded")
            ax.set_ylim(min(shown) - 0.05, max(shown) + 0.05)
            ax.grid(alpha=0.3)
            ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_scaling(scaling, kn_best, path):
    """Final validation bpc against the budget, one line per model and size."""
    fig, ax = plt.subplots(figsize=(7, 4.5))
    styles = {"small": ":", "medium": "-", "large": "--"}
    for (model, size), runs in sorted(scaling.items()):
        runs = sorted(runs, key=lambda r: r["minutes"])
        ax.plot([r["minutes"] for r in runs], [r["val"] / LN2 for r in runs], styles.get(size, "-"), marker="o",
                color=COLORS[model], label=f"{model} {size} ({runs[0]['params'] / 1e6:.2f}M)")
    ax.axhline(kn_best[1] / LN2, color="black", ls="--", lw=1, label=f"Kneser-Ney {kn_best[0]}-gram")
    ax.set_xscale("log", base=2)
    ax.set_xlabel("training budget (CPU-minutes, one thread)")
    ax.set_ylabel("validation bits per character")
    ax.set_title("loss against compute: the LSTM and the Transformer at three sizes")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def plot_batchnorm(bn, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for label, color in (("no-batchnorm", "tab:blue"), ("batchnorm", "tab:red")):
        pts = [(lr, r["val"] / LN2) for (lr, b), runs in bn.items() if b == label for r in runs]
        if pts:
            ax.scatter(*zip(*pts), color=color, label=label, alpha=0.7)
            lrs = sorted({lr for lr, _ in pts})
            ax.plot(lrs, [np.mean([v for l, v in pts if l == lr]) for lr in lrs], color=color)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (AdamW, cosine)")
    ax.set_ylabel("validation bits per character")
    ax.set_title("the MLP with and without batch normalisation, each seed a point")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


# ---------------------------------------------------------------- the report

def results_table(grouped, kn):
    lines = ["| model | params | steps | characters seen | train chars / CPU-s | val nats/char | val bpc | seeds |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for model, runs in grouped.items():
        tok_s = [r["chars"] / r["cpu_s"] for r in runs]
        lines.append(f"| {model} | {runs[0]['params']:,} | {mean_sd([r['steps'] for r in runs])[0]:,.0f} | "
                     f"{mean_sd([r['chars'] for r in runs])[0] / 1e6:.2f}M | {mean_sd(tok_s)[0] / 1e3:.1f}k | "
                     f"{pm([r['val'] for r in runs])} | {pm([r['val'] / LN2 for r in runs], 3)} | {len(runs)} |")
    n, (loss, _, grams, _) = kn
    lines.append(f"| Kneser-Ney {n}-gram | {grams:,} n-grams | – | one count of the training split | – | "
                 f"{loss:.4f} | {loss / LN2:.3f} | – |")
    return lines


def claims(defaults, matched, kn_best, budget):
    """The original notes' claims about the LMs, each with what the tables above say."""
    out = []

    def best(grouped):
        return min(grouped, key=lambda m: mean_sd([r["val"] for r in grouped[m]])[0])

    def mean(grouped, m):
        return mean_sd([r["val"] for r in grouped[m]])[0]

    for name, grouped in (("defaults", defaults), ("matched sizes", matched)):
        if not grouped:
            continue
        b = best(grouped)
        verdict = "holds" if b == "transformer" and mean(grouped, b) < kn_best[1] else "does not hold"
        order = ", ".join(f"{m} {mean(grouped, m):.4f}" for m in sorted(grouped, key=lambda m: mean(grouped, m)))
        out.append(f"- *\"Transformer: lowest perplexity among all models tested\"* ({name}, {budget:g} CPU-min): "
                   f"**{verdict}**. Lowest first: {order}; Kneser-Ney {kn_best[1]:.4f}.")
    for name, grouped in (("defaults", defaults), ("matched sizes", matched)):
        if len(grouped) < 2:
            continue
        x_common = min(mean_curve(runs, 1)[0][-1] for runs in grouped.values())
        at, early = {}, []
        for m, runs in grouped.items():
            x, y = mean_curve(runs, 1)[:2]
            if x[0] <= x_common:               # interpolate between validations, never extrapolate
                at[m] = float(np.interp(x_common, x, y))
            else:
                early.append(f"{m} (first validated at {x[0] / 1e6:.2f}M)")
        b = min(at, key=at.get)
        verdict = "holds" if b == "transformer" and not early else ("does not hold" if b != "transformer" else "open")
        out.append(f"- *\"Transformer: most sample-efficient model\"* ({name}): **{verdict}**. "
                   f"At {x_common / 1e6:.2f}M characters seen (where the model that reads slowest stops), "
                   "interpolated on the validation curves: " + ", ".join(f"{m} {v:.4f}" for m, v in sorted(at.items(), key=lambda kv: kv[1]))
                   + (f"; not measured that early: {', '.join(early)}" if early else "")
                   + ". Each run's learning-rate schedule spans its own budget, so this is sample efficiency under a fixed CPU budget, not at equal schedules.")
    for name, grouped in (("defaults", defaults), ("matched sizes", matched)):
        if "lstm" in grouped and "rnn" in grouped:
            l, r = [r_["val"] for r_ in grouped["lstm"]], [r_["val"] for r_ in grouped["rnn"]]
            gap = np.mean(r) - np.mean(l)
            separate = max(l) < min(r)
            out.append(f"- *\"LSTM: significantly lower loss than RNN\"* ({name}): **{'holds' if separate and gap > 0 else 'does not hold'}**: "
                       f"LSTM {pm(l)} against RNN {pm(r)}, {gap:.4f} nats/char lower; "
                       f"{'no seed of the RNN comes as low as any seed of the LSTM' if separate else 'the seeds overlap'}.")
    for name, grouped in (("defaults", defaults), ("matched sizes", matched)):
        if "lstm" in grouped and "gru" in grouped:
            speed = {m: mean_sd([r["chars"] / r["cpu_s"] for r in grouped[m]])[0] for m in ("lstm", "gru")}
            level = max(mean(grouped, "lstm"), mean(grouped, "gru"))
            reach = {m: first_reaching(*mean_curve(grouped[m], 0)[:2], level) for m in ("lstm", "gru")}
            faster = reach["gru"] is not None and reach["lstm"] is not None and reach["gru"] < reach["lstm"]
            out.append(f"- *\"GRU trains faster than LSTM\"* ({name}): **{'holds' if faster else 'does not hold'}** by time to a loss: "
                       f"both reach {level:.4f} nats/char (the worse of their final means) after "
                       f"GRU {reach['gru'] / 60:.2f}, LSTM {reach['lstm'] / 60:.2f} CPU-minutes (mean curves, interpolated between "
                       f"validations). Throughput: GRU {speed['gru'] / 1e3:.1f}k, LSTM {speed['lstm'] / 1e3:.1f}k training "
                       "characters per CPU-second.")
    return out


def write_report(args, asked, records, sizes, out, command, quick_minutes):
    out = Path(out)
    vocab = sizes.vocab_size
    for r in records:
        r.setdefault("checkpoint", r["command"].split("--checkpoint ")[1].split()[0])
        if "scored" not in r:       # records written before compare.py kept it: the run's summary line
            r["scored"] = scored_of(Path(r["checkpoint"]).with_name("stdout.txt"))
    defaults, matched = groups(asked, records, "defaults"), groups(asked, records, "matched")
    by_key = {r["key"]: r for r in records}
    kn = kneser_ney(args.data)
    kn_best = min(kn.items(), key=lambda kv: kv[1][0])
    kn_best = (kn_best[0], kn_best[1][0], kn_best[1])
    budget = args.minutes
    used = list({r.key: by_key[r.key] for r in asked if r.key in by_key}.values())   # each run once
    L = [f"# The journey in numbers: every language model under one protocol", "",
         f"Written by `{command}` on {datetime.date.today()}; the runs it reports ran "
         f"{min((r['date'] for r in used), default='-')} to {max((r['date'] for r in used), default='-')} "
         f"(their commands are in `compare_runs.jsonl`). Machine: {platform.machine()}, "
         f"{os.cpu_count()} cores, PyTorch {torch.__version__}; each run a "
         f"separate process on {used[0]['threads'] if used else 1} thread (OMP_NUM_THREADS), {args.jobs} at a time. "
         "Budgets are the process's own CPU time spent training (validation not counted), so two runs "
         "sharing the machine do not shorten each other's budget; throughput is per CPU-second.", "",
         "Corpus: " + (f"`{args.data}`" if args.data != "tinyshakespeare" else "Tiny Shakespeare") +
         ", first 90% training, last 10% validation. **val** is `utils/evaluation.py`'s protocol: every "
         "character of the validation split but the first scored exactly once; recurrent models carry "
         "their state through the split (16 segments, each read after a warm-up of the 1,024 characters "
         "before it); the Transformer slides its 64-character window by half a block, so every character "
         "after the first block has at least 32 characters of context; the MLP sees its own 5. Mean ± sd "
         "over seeds (sd with n-1)."]
    scored = sorted({r.get("scored") for r in used if r.get("scored")})
    if scored:
        L.append(f"Characters scored per run: {', '.join(f'{s:,}' for s in scored)}.")
    if defaults:
        L += ["", f"## Each folder's defaults, {budget:g} CPU-minutes each", ""] + results_table(defaults, (kn_best[0], kn_best[2]))
    if matched:
        L += ["", f"## Matched sizes, {budget:g} CPU-minutes each", "", sizes.describe() + ".", ""] + \
             results_table(matched, (kn_best[0], kn_best[2]))
    L += ["", "## The Kneser-Ney baseline", "",
          "Interpolated modified Kneser-Ney (`utils/ngram.py`, Chen & Goodman 1998), counted on the training "
          "split and scored on the same validation characters as the networks:", "",
          "| order n | " + " | ".join(str(n) for n in kn) + " |", "|---" * (len(kn) + 1) + "|",
          "| val nats/char | " + " | ".join(f"{v[0]:.4f}" for v in kn.values()) + " |",
          "| n-grams stored | " + " | ".join(f"{v[2] / 1e6:.2f}M" for v in kn.values()) + " |",
          "| CPU seconds (count + score) | " + " | ".join(f"{v[3]:.1f}" for v in kn.values()) + " |", "",
          f"Best on validation: n = {kn_best[0]}, {kn_best[1]:.4f} nats/char ({kn_best[1] / LN2:.3f} bpc)."]
    scaling = {}
    for run in asked:
        if run.part == "scaling" and run.key in by_key:
            scaling.setdefault((run.model, run.size), []).append(by_key[run.key])
    for run in asked:   # the medium sizes' runs at the study's budget belong on the same curves
        if run.part == "matched" and run.key in by_key and run.model in ("lstm", "transformer") and run.seed == args.seed:
            if (run.model, "medium") in scaling:
                scaling[(run.model, "medium")].append(by_key[run.key])
    if scaling:
        budgets = sorted({r["minutes"] for runs in scaling.values() for r in runs})
        L += ["", "## Loss against compute: the LSTM and the Transformer at three sizes", "",
              f"One seed ({args.seed}) per point; the medium size is the matched size (its {budget:g}-minute point is the "
              "matched part's first seed).", "",
              "| model | size | params | " + " | ".join(f"{b:g} CPU-min" for b in budgets) + " |",
              "|---|---|---:|" + "---:|" * len(budgets)]
        for (model, size), runs in sorted(scaling.items()):
            v = {r["minutes"]: r["val"] for r in runs}
            L.append(f"| {model} | {size} | {runs[0]['params']:,} | " +
                     " | ".join(f"{v[b]:.4f}" if b in v else "–" for b in budgets) + " |")
        best_at = {}
        for b in budgets:
            for model in ("lstm", "transformer"):
                vals = [(r["val"], size) for (m, size), runs in scaling.items() if m == model for r in runs if r["minutes"] == b]
                if vals:
                    best_at[(model, b)] = min(vals)
        L += ["", "Best size at each budget: " + "; ".join(
            f"{b:g} min: LSTM {best_at[('lstm', b)][0]:.4f} ({best_at[('lstm', b)][1]}), Transformer "
            f"{best_at[('transformer', b)][0]:.4f} ({best_at[('transformer', b)][1]})"
            for b in budgets if ("lstm", b) in best_at and ("transformer", b) in best_at) + "."]
        overtakes = [b for b in budgets if ("lstm", b) in best_at and ("transformer", b) in best_at
                     and best_at[("transformer", b)][0] < best_at[("lstm", b)][0]]
        L.append(f"The Transformer's best size beats the LSTM's best at: {', '.join(f'{b:g}' for b in overtakes)} CPU-minutes."
                 if overtakes else "At no budget measured does the Transformer's best size beat the LSTM's best.")
        plot_scaling(scaling, kn_best, out / "compare_scaling.png")
        L += ["", "![loss against compute](compare_scaling.png)"]
    bn, bn_claim = {}, None
    for run in asked:
        if run.part == "batchnorm" and run.key in by_key:
            bn.setdefault((float(run.flags[1]), run.size), []).append(by_key[run.key])
    if bn:
        L += ["", f"## The MLP with and without batch normalisation, {args.bn_minutes:g} CPU-minutes each", "",
              "A run *diverged* when it ends no better than the uniform guess (ln |V| nats) or not a number; a *spike* is a "
              "logged training loss more than 0.5 nats above the lowest so far, after the first 10% of the run.", "",
              "| lr | batch norm | val nats/char | runs diverged | runs with spikes | seeds |", "|---:|---|---:|---:|---:|---:|"]
        for (lr, label), runs in sorted(bn.items()):
            L.append(f"| {lr:g} | {'on' if label == 'batchnorm' else 'off'} | {pm([r['val'] for r in runs])} | "
                     f"{sum(diverged(r, vocab) for r in runs)} | {sum(spikes(r['train_curve']) > 0 for r in runs)} | {len(runs)} |")
        spiky = {b: sum(spikes(r["train_curve"]) > 0 for (lr, l), runs in bn.items() if l == b for r in runs)
                 for b in ("no-batchnorm", "batchnorm")}
        gone = {b: sum(diverged(r, vocab) for (lr, l), runs in bn.items() if l == b for r in runs)
                for b in ("no-batchnorm", "batchnorm")}
        n_runs = {b: sum(len(runs) for (lr, l), runs in bn.items() if l == b) for b in ("no-batchnorm", "batchnorm")}
        lrs = sorted({lr for lr, _ in bn})
        bn_better = [lr for lr in lrs if (lr, "batchnorm") in bn and (lr, "no-batchnorm") in bn and
                     np.mean([r["val"] for r in bn[(lr, "batchnorm")]]) < np.mean([r["val"] for r in bn[(lr, "no-batchnorm")]])]
        bn_claim = (f"- *\"MLP: unstable without BatchNorm, smoother with it\"* ({args.bn_minutes:g} CPU-min runs): "
                    f"without batch norm {gone['no-batchnorm']} of {n_runs['no-batchnorm']} runs diverged and "
                    f"{spiky['no-batchnorm']} had spikes; with it {gone['batchnorm']} of {n_runs['batchnorm']} diverged and "
                    f"{spiky['batchnorm']} had spikes. Batch norm ends lower at {len(bn_better)} of {len(lrs)} learning rates"
                    + (f" ({', '.join(f'{lr:g}' for lr in bn_better)})" if bn_better else "") + ". **"
                    + ("holds" if gone["no-batchnorm"] > gone["batchnorm"] else
                       "holds for spikes only" if spiky["no-batchnorm"] > spiky["batchnorm"] else "does not hold")
                    + "** (the table above).")
        plot_batchnorm(bn, out / "compare_batchnorm.png")
        L += ["", "![batch norm sweep](compare_batchnorm.png)"]
    if defaults or matched:
        L += ["", "## The original notes' claims, at this scale", "",
              "The claims are the original project notes', not the papers'."] + [""] + claims(defaults, matched, kn_best, budget) \
             + ([bn_claim] if bn_claim else [])
        parts = {k: v for k, v in (("defaults", defaults), ("matched sizes", matched)) if v}
        plot_curves(parts, kn_best, out / "compare_curves.png")
        L += ["", "![validation curves](compare_curves.png)"]
    if defaults:
        check = protocol_check(args.data, defaults)
        if check:
            L += ["", "## The protocol against the older estimates", "",
                  "Each model's first-seed checkpoint of the defaults part, scored by the protocol and by the fast "
                  "estimate that train.py used to report (recurrent: 32 streams from a zero state, chunks of 100; "
                  "Transformer: non-overlapping 64-character blocks); for the recurrent models also with one stream, "
                  "the state carried over the whole split.", "",
                  "| model | protocol | old estimate | one stream | scored (protocol) |", "|---|---:|---:|---:|---:|"]
            for model, full, fast, one in check:
                L.append(f"| {model} | {full.loss:.4f} | {fast:.4f} | {'–' if one is None else f'{one.loss:.4f}'} | {full.count:,} |")
    if used:
        wall = sum(r["wall_s"] for r in used)
        cpu = sum(r["cpu_s"] for r in used)
        L += ["", "## What the study cost", "",
              f"{len(used)} runs, {cpu / 60:.0f} CPU-minutes of training; {wall / 60:.0f} minutes of run time in all "
              f"(training, validation, start-up), {wall / 60 / max(1, args.jobs):.0f} minutes of wall time at "
              f"{args.jobs} at a time. The full study is `python experiments/compare.py`; the reader's version, "
              f"`python experiments/compare.py --quick`, asks for {quick_minutes:g} CPU-minutes of training in all "
              f"(the sum of its runs' budgets; about {quick_minutes / 2 * wall / max(cpu, 1):.0f} minutes on 2 cores "
              "at the full study's ratio of run time to training time, not timed itself)."]
    path = out / "compare.md"
    path.write_text("\n".join(L) + "\n")
    return path
