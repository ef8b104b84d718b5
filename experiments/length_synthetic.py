"""The synthetic part of experiments/length.py: copy (or reverse) a random sequence, past the training lengths.

The (source, target) pairs and batches, the three model classes at similar parameter counts, the
teacher-forced training loop, exact-match and per-token accuracy against length, and the part's plot
and its section of results/length.md."""
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from tqdm import tqdm

from attention.model import AttentionConfig, RNNsearch
from experiments.length_multi30k import COLORS, LABELS
from gru.model import GRUEncoderDecoder, Seq2SeqConfig
from transformer.model import TransformerTranslator, TranslatorConfig
from utils.training import count_parameters, set_seed
from utils.translation import collate, greedy_decode, sequence_loss

# ---------------------------------------------------------------- synthetic: copy or reverse

N_SPECIALS = 4              # PAD, UNK, BOS, EOS (utils.tokenizers): the symbols are ids 4 ..


def synthetic_pairs(task, lengths, n_symbols, generator):
    """One (source, target) id-list pair per length: a random sequence of symbols 4 .. 4+n_symbols-1,
    and itself (copy) or itself reversed (reverse)."""
    pairs = []
    for n in lengths:
        x = torch.randint(N_SPECIALS, N_SPECIALS + n_symbols, (int(n),), generator=generator).tolist()
        pairs.append((x, x if task == "copy" else x[::-1]))
    return pairs


def synthetic_batch(task, batch_size, lo, hi, n_symbols, generator):
    """A training Batch (utils.translation.collate): lengths uniform in lo..hi."""
    lengths = torch.randint(lo, hi + 1, (batch_size,), generator=generator).tolist()
    pairs = synthetic_pairs(task, lengths, n_symbols, generator)
    return collate(pairs, list(range(batch_size)))


def synthetic_model(name, vocab, size):
    """The three model classes at similar parameter counts (the sizes of SIZES, by --synthetic-size);
    no dropout."""
    s = SIZES[size][name]
    if name == "gru":
        return GRUEncoderDecoder(Seq2SeqConfig(src_vocab=vocab, tgt_vocab=vocab, n_embd=s["embd"],
                                               n_hidden=s["hidden"], dropout=0.0))
    if name == "attention":
        return RNNsearch(AttentionConfig(src_vocab=vocab, tgt_vocab=vocab, n_embd=s["embd"], n_hidden=s["hidden"],
                                         n_align=s["hidden"], n_maxout=s["hidden"] // 2, dropout=0.0))
    return TransformerTranslator(TranslatorConfig(src_vocab=vocab, tgt_vocab=vocab, n_layers=s["layers"], n_heads=4,
                                                  d_model=s["d"], d_ff=2 * s["d"], dropout=0.0, norm="pre",
                                                  pos="sinusoidal"))


# about 290k parameters each at 24 ids ("small"), ~20k ("tiny", for tests)
SIZES = {"small": {"gru": {"embd": 64, "hidden": 144}, "attention": {"embd": 64, "hidden": 96},
                   "transformer": {"layers": 2, "d": 88}},
         "tiny": {"gru": {"embd": 16, "hidden": 32}, "attention": {"embd": 16, "hidden": 24},
                  "transformer": {"layers": 1, "d": 32}}}
WARMUP = 100                # steps of linear warm-up, then the constant --synthetic-lr, for every model


def train_synthetic(model, args, seed, bar):
    """Teacher-forced cross-entropy, Adam at --synthetic-lr after WARMUP steps of linear warm-up,
    gradients clipped to norm 1, batches of --synthetic-batch sequences of lengths 5..--max-train-len,
    for --synthetic-minutes of this thread's CPU time (the Multi30k part decodes in another thread of
    the process). Returns (steps, CPU seconds, last loss)."""
    g = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.synthetic_lr)
    budget, used, step, loss = 60 * args.synthetic_minutes, 0.0, 0, float("nan")
    model.train()
    while used < budget:
        started = time.thread_time()
        for group in optimizer.param_groups:
            group["lr"] = args.synthetic_lr * min(1.0, (step + 1) / WARMUP)
        batch = synthetic_batch(args.task, args.synthetic_batch, args.min_len, args.max_train_len, args.symbols, g)
        # teacher forcing: the decoder reads <bos> y_1 .. y_n and is scored on y_1 .. y_n <eos>
        logits = model(batch.src, batch.src_len, batch.tgt_in)
        loss_t = sequence_loss(logits, batch.tgt_out)
        loss_t.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        step, loss = step + 1, loss_t.item()
        spent = time.thread_time() - started
        bar.update(min(spent, budget - used))       # the bar: this model's share of the budget, no more
        used += spent
        if step % 20 == 0:
            bar.set_postfix(loss=f"{loss:.3f}", step=step)
    model.eval()
    return step, used, loss


def accuracies(hyps, refs):
    """(exact-match accuracy, per-token accuracy) of hypotheses against references (id lists):
    exact = the hypothesis is the reference, length included; per-token = the share of reference
    positions i at which hyp[i] == ref[i], a hypothesis too short counting as wrong at the
    positions it lacks (extra tokens past the reference's end are not counted: exact match does)."""
    exact = np.mean([h == r for h, r in zip(hyps, refs)])
    right = sum(sum(a == b for a, b in zip(h, r)) for h, r in zip(hyps, refs))
    return float(exact), right / sum(len(r) for r in refs)


@torch.no_grad()
def accuracy_by_length(model, args, test_lengths, seed):
    """{length: (exact, per-token)} on --test-per-length fresh sequences of each length, decoded
    greedily for at most length + 10 tokens."""
    g = torch.Generator().manual_seed(10_000 + seed)
    out = {}
    for n in test_lengths:
        pairs = synthetic_pairs(args.task, [n] * args.test_per_length, args.symbols, g)
        batch = collate(pairs, list(range(len(pairs))))
        hyps = greedy_decode(model, batch.src, batch.src_len, max_len=n + 10)
        out[n] = accuracies(hyps, [y for _, y in pairs])
    return out


def synthetic_part(args):
    vocab = N_SPECIALS + args.symbols
    test_lengths = list(range(args.min_len, args.max_test_len + 1, args.length_step))
    seeds = list(range(args.seed, args.seed + args.seeds))
    results = {n: {"runs": []} for n in args.models}
    bar = tqdm(total=60 * args.synthetic_minutes * len(seeds) * len(args.models), unit="CPU-s",
               desc=f"synthetic: training ({args.task})", dynamic_ncols=True, bar_format="{l_bar}{bar}| "
               "{n:.0f}/{total:.0f} CPU-s [{elapsed}<{remaining}{postfix}]")
    for seed in seeds:
        for name in args.models:
            set_seed(seed)
            model = synthetic_model(name, vocab, args.synthetic_size)
            results[name]["params"] = count_parameters(model)
            steps, cpu, loss = train_synthetic(model, args, seed, bar)
            started = time.thread_time()
            acc = accuracy_by_length(model, args, test_lengths, seed)
            results[name]["runs"].append({"seed": seed, "steps": steps, "cpu_s": cpu, "loss": loss, "acc": acc,
                                          "eval_cpu_s": time.thread_time() - started})
            bar.write(f"{name} seed {seed}: {steps} steps, last loss {loss:.4f}, exact match at length "
                      f"{args.max_train_len} {acc[max(l for l in test_lengths if l <= args.max_train_len)][0]:.2f}")
    bar.close()
    return {"models": results, "lengths": test_lengths, "vocab": vocab}


def mean_sd(values):
    v = np.asarray(values, dtype=float)
    return float(v.mean()), float(v.std(ddof=1)) if len(v) > 1 else 0.0



# ---------------------------------------------------------------- the plot

def plot_synthetic(result, args, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5), sharex=True)
    lengths = result["lengths"]
    for name, r in result["models"].items():
        for i, ax in enumerate(axes):
            runs = np.array([[run["acc"][n][i] for n in lengths] for run in r["runs"]])   # (seeds, lengths)
            mean = runs.mean(0)
            ax.plot(lengths, mean, marker=".", color=COLORS[name], label=f"{LABELS[name]}, {r['params']:,} params")
            if len(runs) > 1:
                ax.fill_between(lengths, runs.min(0), runs.max(0), color=COLORS[name], alpha=0.2)
    for ax, what in zip(axes, ("exact-match accuracy (whole sequence right)", "per-token accuracy")):
        ax.axvline(args.max_train_len, color="black", linewidth=0.8, linestyle="--")
        ax.text(args.max_train_len, 1.02, " longest training length", fontsize=8, va="bottom")
        ax.set_xlabel(f"sequence length (symbols); {args.task} task")
        ax.set_ylabel(what)
        ax.set_ylim(-0.02, 1.08)
    seeds = len(next(iter(result["models"].values()))["runs"])
    axes[0].legend(fontsize=8, loc="lower left")
    fig.suptitle(f"{args.task} a random sequence: {args.synthetic_minutes:g} CPU-minutes of training per model, "
                 f"{seeds} seed(s)" + (" (band: min-max)" if seeds > 1 else ""))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)



# ---------------------------------------------------------------- the report's section

def synthetic_lines(result, args):
    models = result["models"]
    lengths = result["lengths"]
    seeds = len(next(iter(models.values()))["runs"])
    shown = [n for n in lengths if n in (5, 10, 20, 30, 40, 50, 60, 70, 80, 90, 100) or n == lengths[-1]]
    lines = ["## Synthetic: copy and reverse past the training lengths", "",
             f"Task: **{args.task}** a sequence of random symbols ({args.symbols} symbols; vocabulary {result['vocab']} "
             f"with the 4 specials). Training: lengths uniform in {args.min_len}..{args.max_train_len}, batches of "
             f"{args.synthetic_batch}, teacher-forced cross-entropy, Adam lr {args.synthetic_lr:g} after {WARMUP} "
             f"warm-up steps, gradient norm clipped to 1, no dropout: the same loop and the same "
             f"{args.synthetic_minutes:g} CPU-minutes (one thread) for every model, {seeds} seed(s) "
             f"({', '.join(str(args.seed + i) for i in range(seeds))}). Test: {args.test_per_length} fresh sequences "
             f"per length, greedy decoding (at most length + 10 tokens). Exact match: the whole output is the "
             f"target; per-token: the share of target positions right (missing positions wrong). The Transformer "
             f"is pre-norm with the sinusoidal positions (defined at any position; a learned table would have no "
             f"row past position {args.max_train_len + 1}).", "",
             "| model | parameters | steps (per seed) | final train loss | " +
             " | ".join(f"L={n}" for n in shown) + " |", "|---|---:|---:|---:|" + "---:|" * len(shown)]
    for i, what in enumerate(("exact match", "per-token accuracy")):
        for name, r in models.items():
            cells = []
            for n in shown:
                mean, sd = mean_sd([run["acc"][n][i] for run in r["runs"]])
                cells.append(f"{mean:.2f}" + (f" ± {sd:.2f}" if seeds > 1 else ""))
            steps = "/".join(str(run["steps"]) for run in r["runs"])
            loss = "/".join(f"{run['loss']:.3f}" for run in r["runs"])
            lines.append(f"| {name}: {what} | {r['params']:,} | {steps} | {loss} | " + " | ".join(cells) + " |")
    lines += ["", ("mean ± sd over the seeds. " if seeds > 1 else "One seed: no spread. ") +
              f"L = sequence length; the longest seen in training is {args.max_train_len}.", "",
              "![accuracy against length](length_synthetic.png)"]
    return lines
