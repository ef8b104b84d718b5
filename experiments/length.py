"""BLEU and accuracy against sentence length: where the encoder-decoder's fixed vector runs out.

Two parts (issue 13, part 4), the three translators of gru/ (the RNN Encoder-Decoder of Cho et al.
2014), attention/ (RNNsearch, Bahdanau et al. 2015) and transformer/ (Vaswani et al. 2017):

  multi30k   each translator trained by its folder's train.py for --minutes CPU-minutes (through
             experiments/compare.py's run_one; a finished run in --work is reused), or given with
             --checkpoint NAME=PATH; the test split decoded greedily; the sentences grouped by
             source length (words, utils.translation.source_words) into bins of --bin-width, a bin
             with fewer than --min-bin sentences merged into its neighbour; corpus BLEU per bin
             (sacrebleu, as utils.translation.bleu) with a 95% percentile-bootstrap interval from
             --resamples resamplings of the bin's sentences, paired: every model scored on the
             same resampled sentences.
  synthetic  copy (or reverse, --task) a random sequence of --symbols symbols: trained on lengths
             5..--max-train-len, tested on 5..--max-test-len, the lengths Multi30k lacks. The
             three model classes built directly at similar parameter counts, each trained by the
             same teacher-forced loop here for the same --synthetic-minutes of CPU time, per seed;
             greedy decoding; exact-match and per-token accuracy against length. The Transformer
             uses the sinusoids (§3.5), defined at every position: a learned table has no rows past
             the training length at all.

    python experiments/length.py --quick          # about 15 minutes on 2 cores (numbers in results/length.md)
    python experiments/length.py                  # 10 CPU-minutes per translator, 3 seeds of the synthetic task
    python experiments/length.py --parts multi30k --checkpoint gru=checkpoints/gru_seq2seq/model.pt \\
        --checkpoint attention=checkpoints/attention/model.pt --checkpoint transformer=checkpoints/transformer_mt/model.pt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import datetime
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
from sacrebleu.metrics import BLEU
from tqdm import tqdm

from attention.model import AttentionConfig, RNNsearch
from experiments.compare import Run, command_line, run_one
from gru.model import GRUEncoderDecoder, Seq2SeqConfig
from transformer.model import TransformerTranslator, TranslatorConfig
from utils.checkpoint import load_checkpoint
from utils.errors import UserError, run_main
from utils.tokenizers import tokenize
from utils.training import ArgumentParser, comma_list, count_parameters, positive_float, positive_int, set_seed
from utils.translation import (TranslationData, collate, greedy_decode, load_translator, sequence_loss,
                               source_words, translate_batches)

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
NAMES = ("gru", "attention", "transformer")
PARTS = ("multi30k", "synthetic")
PAIRS = (("attention", "gru"), ("transformer", "gru"), ("transformer", "attention"))
COLORS = {"gru": "tab:orange", "attention": "tab:blue", "transformer": "tab:green"}
LABELS = {"gru": "GRU encoder-decoder (gru/)", "attention": "RNNsearch (attention/)",
          "transformer": "Transformer (transformer/)"}
# name: (folder, train.py flags, checkpoint model_type). --beam 1: train.py's own closing report
# decodes greedily too (the beam would cost minutes and is not what this probe scores). The
# Transformer's --warmup 50: its default 800 steps of warm-up is longer than a few CPU-minutes' run
TRANSLATORS = {"gru": ("gru", ["--task", "translate", "--beam", "1"], "gru_seq2seq"),
               "attention": ("attention", ["--beam", "1"], "attention"),
               "transformer": ("transformer", ["--task", "translate", "--beam", "1", "--warmup", "50"],
                               "transformer_mt")}


def build_translator(name, config):
    """The empty model of a translation checkpoint's config dict."""
    if name == "gru":
        return GRUEncoderDecoder(Seq2SeqConfig(**config))
    if name == "attention":
        return RNNsearch(AttentionConfig(**config))
    return TransformerTranslator(TranslatorConfig(**config))


# ---------------------------------------------------------------- Multi30k: bins and BLEU

def length_bins(lengths, width, min_count):
    """Bins (lo, hi) of source lengths covering 1..max(lengths): [1, width], [width+1, 2 width], ...,
    then, from the shortest, each bin with fewer than min_count sentences merged with the next, and
    a sparse last bin merged into the one before it. The last bin's hi is max(lengths)."""
    lengths = np.asarray(lengths)
    top = int(lengths.max())
    edges = [(lo, min(lo + width - 1, top)) for lo in range(1, top + 1, width)]
    merged, start = [], None
    for lo, hi in edges:
        start = lo if start is None else start
        if ((lengths >= start) & (lengths <= hi)).sum() >= min_count:
            merged.append((start, hi))
            start = None
    if start is not None:                           # what is left is sparse: into the bin before it
        if merged:
            merged[-1] = (merged[-1][0], top)
        else:
            merged.append((start, top))
    return merged


def bin_label(lo, hi):
    return f"{lo}-{hi}" if lo != hi else f"{lo}"


def sentence_stats(hyps, refs):
    """Per sentence, sacrebleu's BLEU statistics (hypothesis and reference lengths, then matching and
    total n-grams, n = 1..4), of the text as utils.translation.bleu scores it (lower-cased,
    tokenized by utils.tokenizers.tokenize): (N, 10) int array. Summed over any subset of
    sentences they give that subset's corpus BLEU (bleu_of_stats)."""
    join = lambda s: " ".join(tokenize(s))
    metric = BLEU(tokenize="none", lowercase=True, force=True)
    return np.array(metric._extract_corpus_statistics([join(h) for h in hyps], [[join(r) for r in refs]]),
                    dtype=np.int64).reshape(len(hyps), -1)


def bleu_of_stats(stats):
    """Corpus BLEU (0-100) from summed sentence statistics (10,)."""
    return BLEU(tokenize="none", lowercase=True, force=True)._compute_score_from_stats(
        [int(v) for v in stats]).score


def bootstrap_indices(n, resamples, rng):
    """(resamples, n) indices into n sentences, drawn with replacement: one bootstrap sample a row."""
    return rng.integers(0, n, size=(resamples, n))


def bootstrap_ci(stats, indices, level=0.95):
    """(BLEU of all the sentences, lower, upper): the percentile interval of the corpus BLEU over the
    resamples `indices` (R, n) of the rows of stats (n, 10)."""
    point = bleu_of_stats(stats.sum(0))
    scores = np.array([bleu_of_stats(s) for s in stats[indices].sum(1)])
    tail = 100 * (1 - level) / 2
    return point, float(np.percentile(scores, tail)), float(np.percentile(scores, 100 - tail)), scores


def bleu_by_bins(lengths, stats_by_model, bins, resamples, seed):
    """Per bin: {"bin", "n", per model {"bleu", "lo", "hi"}, "p_better": {(a, b): the share of the
    resamples where a's BLEU beats b's}}. The resamples are paired: one set of indices per bin,
    used for every model."""
    lengths = np.asarray(lengths)
    rng = np.random.default_rng(seed)
    rows = []
    for lo, hi in bins:
        picked = np.flatnonzero((lengths >= lo) & (lengths <= hi))
        indices = bootstrap_indices(len(picked), resamples, rng)
        row, samples = {"bin": (lo, hi), "n": len(picked), "models": {}}, {}
        for name, stats in stats_by_model.items():
            point, low, high, samples[name] = bootstrap_ci(stats[picked], indices)
            row["models"][name] = {"bleu": point, "lo": low, "hi": high}
        row["p_better"] = {f"{a}>{b}": float((samples[a] > samples[b]).mean())
                           for a, b in PAIRS if a in samples and b in samples}
        rows.append(row)
    return rows


# ---------------------------------------------------------------- Multi30k: the models and their test output

def trained_translators(args):
    """{name: (checkpoint path, record or None)}: --checkpoint paths, the others trained by their
    train.py (one --jobs at a time), or reused when already finished in --work."""
    given = dict(args.checkpoint)
    todo = [n for n in args.models if n not in given]
    run_args = argparse.Namespace(data=args.data, work=args.work, evals_per_run=1)
    out = {n: (Path(given[n]), None) for n in args.models if n in given}

    def one(name):
        folder, flags, _ = TRANSLATORS[name]
        return name, run_one(Run("length", folder, name, flags, args.seed, args.minutes), run_args, threads=1,
                             reuse=True)
    if todo:
        bar = tqdm(total=len(todo), desc="multi30k: training", unit="model", dynamic_ncols=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            for name, record in pool.map(one, todo):
                out[name] = (Path(record["checkpoint"]), record)
                bar.update(1)
        bar.close()
    return {n: out[n] for n in args.models}


def test_translations(name, path, args):
    """(sources, greedy hypotheses, references) of the test split for the checkpoint at path, kept
    beside it in length_test.json (reused while the checkpoint is unchanged)."""
    cache = path.with_name("length_test.json")
    key = {"data": str(args.data), "mtime": path.stat().st_mtime, "decoding": "greedy"}
    if cache.exists():
        saved = json.loads(cache.read_text())
        if saved["key"] == key:
            return saved["srcs"], saved["hyps"], saved["refs"]
    _, _, model_type = TRANSLATORS[name]
    model, saved = load_translator(path, model_type, lambda config: build_translator(name, config))
    data = TranslationData.load(saved.src_lang, saved.tgt_lang, 2, saved.max_len, args.data, tokenizers=saved.to_dict())
    model.eval()
    ids = translate_batches(model, data.eval_batches("test"), beam=1, max_len=data.max_len)
    srcs, refs = data.text["test"]
    hyps = [data.tgt_tokenizer.decode(h) for h in ids]
    cache.write_text(json.dumps({"key": key, "srcs": srcs, "hyps": hyps, "refs": refs}))
    return srcs, hyps, refs


def multi30k_part(args):
    models = trained_translators(args)
    outputs, meta = {}, {}
    for name in tqdm(args.models, desc="multi30k: decoding the test split", unit="model", dynamic_ncols=True):
        path, record = models[name]
        outputs[name] = test_translations(name, path, args)
        ckpt = load_checkpoint(path, TRANSLATORS[name][2])
        meta[name] = {"path": str(path), "step": ckpt["step"], "record": record,
                      "params": sum(v.numel() for v in ckpt["model"].values())}
    srcs = outputs[args.models[0]][0]
    if any(o[0] != srcs for o in outputs.values()):
        raise UserError("the checkpoints were tested on different test splits (another --src/--tgt or --data)")
    lengths = [source_words(s) for s in srcs]
    stats = {n: sentence_stats(o[1], o[2]) for n, o in outputs.items()}
    bins = length_bins(lengths, args.bin_width, args.min_bin)
    rows = bleu_by_bins(lengths, stats, bins, args.resamples, args.seed)
    overall = {n: bleu_of_stats(s.sum(0)) for n, s in stats.items()}
    return {"rows": rows, "overall": overall, "meta": meta, "sentences": len(srcs),
            "examples": pick_long_examples(srcs, outputs, lengths)}


def pick_long_examples(srcs, outputs, lengths):
    """The longest test sentence and what each model made of it."""
    i = int(np.argmax(lengths))
    return {"src": srcs[i], "ref": next(iter(outputs.values()))[2][i],
            "hyps": {n: o[1][i] for n, o in outputs.items()}}


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


# ---------------------------------------------------------------- plots

def plot_multi30k(result, path):
    rows = result["rows"]
    x = np.arange(len(rows))
    fig, ax = plt.subplots(figsize=(8, 4.8))
    names = list(result["overall"])
    for k, name in enumerate(names):
        shift = (k - (len(names) - 1) / 2) * 0.08
        b = np.array([r["models"][name]["bleu"] for r in rows])
        lo = np.array([r["models"][name]["lo"] for r in rows])
        hi = np.array([r["models"][name]["hi"] for r in rows])
        ax.errorbar(x + shift, b, yerr=[b - lo, hi - b], marker="o", capsize=3, color=COLORS[name],
                    label=f"{LABELS[name]}: {result['overall'][name]:.1f} overall")
    ax.set_xticks(x, [f"{bin_label(*r['bin'])}\n{r['n']} sent." for r in rows])
    ax.set_xlabel("source sentence length (words), and test sentences per bin")
    ax.set_ylabel("corpus BLEU of the bin (greedy)")
    ax.set_title("Multi30k de→en test: BLEU against source length, 95% bootstrap intervals")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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


# ---------------------------------------------------------------- the report

def multi30k_lines(result, args):
    names = list(result["overall"])
    lines = ["## Multi30k: BLEU against source length", "",
             f"The {result['sentences']:,} sentences of the test split (de→en), decoded greedily (at most "
             f"max_len tokens), grouped by source length in words (utils.translation.source_words: punctuation "
             f"not counted) into bins of {args.bin_width}, a bin with fewer than {args.min_bin} sentences merged "
             f"into the next (the last into the one before). BLEU: corpus BLEU of the bin (sacrebleu, lower-cased, "
             f"tokenized as utils.translation.bleu); in brackets the 95% percentile-bootstrap interval over "
             f"{args.resamples} resamplings of the bin's sentences, the same resamplings for every model "
             f"(paired). P(att > gru): the share of those resamplings in which RNNsearch scores above the "
             f"GRU encoder-decoder.", "",
             "| source words | sentences | " + " | ".join(names) + " | P(att > gru) |",
             "|---|---:|" + "---|" * len(names) + "---:|"]
    for r in result["rows"]:
        cells = [f"{m['bleu']:.2f} [{m['lo']:.2f}, {m['hi']:.2f}]" for m in (r["models"][n] for n in names)]
        p = r["p_better"].get("attention>gru")
        lines.append(f"| {bin_label(*r['bin'])} | {r['n']} | " + " | ".join(cells) + f" | {'–' if p is None else f'{p:.2f}'} |")
    lines.append("| all | " + f"{result['sentences']} | " + " | ".join(f"{result['overall'][n]:.2f}" for n in names)
                 + " | |")
    lines += ["", "![BLEU against source length](length_bleu.png)", "", "The models:", "",
              "| model | parameters | steps | training CPU-minutes | checkpoint |", "|---|---:|---:|---:|---|"]
    for name, m in result["meta"].items():
        rec = m["record"]
        cpu = f"{rec['cpu_s'] / 60:.2f}" if rec else "(given)"
        lines.append(f"| {name} | {m['params']:,} | {m['step']:,} | {cpu} | `{Path(m['path']).relative_to(ROOT) if Path(m['path']).is_relative_to(ROOT) else m['path']}` |")
    ex = result["examples"]
    lines += ["", f"The longest test source and the three greedy translations:", "",
              f"- source: {ex['src']}", f"- reference: {ex['ref']}"]
    lines += [f"- {n}: {h}" for n, h in ex["hyps"].items()]
    commands = [f"- {n} ({m['record']['date']}): `{command_line(m['record'])}`" for n, m in result["meta"].items()
                if m["record"]]
    if commands:
        lines += ["", "Training commands (each folder's own train.py, defaults except those flags):", ""] + commands
    return lines


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


def longest_held(acc, lengths, threshold=0.5):
    """The longest tested length up to which exact match stays at or above threshold (None: not even
    the shortest)."""
    held = None
    for n in lengths:
        if acc[n] < threshold:
            break
        held = n
    return held


def claims_lines(parts, args):
    """The claims set against the measurements, each with whose it is, and what was measured here."""
    lines = ["## Claims and what was measured", "",
             "- The original notes: the GRU encoder-decoder's \"bottleneck vector loses information beyond 20-30 "
             "tokens\", and attention \"resolves the bottleneck\".",
             "- Cho et al. 2014 (arXiv:1409.1259), abstract: neural machine translation \"performs relatively well "
             "on short sentences without unknown words, but its performance degrades rapidly as the length of the "
             "sentence and the number of unknown words increase\".",
             "- Bahdanau et al. 2015 (arXiv:1409.0473), abstract: \"we conjecture that the use of a fixed-length "
             "vector is a bottleneck in improving the performance of this basic encoder-decoder architecture\". "
             "That their Fig. 2 shows RNNsearch's BLEU holding up with sentence length while the encoder-decoder's "
             "falls: unverified (the figure's text was not checked here).", ""]
    if "multi30k" in parts:
        rows = parts["multi30k"]["rows"]
        first, last = rows[0], rows[-1]
        for name in parts["multi30k"]["overall"]:
            a, b = first["models"][name], last["models"][name]
            overlap = "overlapping" if a["lo"] <= b["hi"] and b["lo"] <= a["hi"] else "disjoint"
            lines.append(f"- Multi30k, {name}: BLEU {a['bleu']:.2f} on {bin_label(*first['bin'])}-word sources, "
                         f"{b['bleu']:.2f} on {bin_label(*last['bin'])} ({last['n']} sentences); 95% intervals "
                         f"{overlap}.")
    if "synthetic" in parts:
        r = parts["synthetic"]
        for name, m in r["models"].items():
            exact = {n: np.mean([run["acc"][n][0] for run in m["runs"]]) for n in r["lengths"]}
            tok = {n: np.mean([run["acc"][n][1] for run in m["runs"]]) for n in r["lengths"]}
            held = longest_held(exact, r["lengths"])
            inside = max(n for n in r["lengths"] if n <= args.max_train_len)
            lines.append(f"- {args.task}, {name}: exact match >= 0.5 up to length "
                         f"{'none' if held is None else held}; per-token accuracy {tok[inside]:.2f} at length {inside} "
                         f"(the longest trained), {tok[r['lengths'][-1]]:.2f} at {r['lengths'][-1]}.")
    return lines


def write_report(args, parts, command, wall, cpu):
    out = Path(args.out)
    lines = ["# Length: BLEU and accuracy against sentence length", "",
             f"`{command}` on {datetime.date.today().isoformat()}: {wall / 60:.1f} minutes of wall time, "
             f"{cpu / 60:.1f} CPU-minutes in this process (the train.py runs are separate processes: their CPU "
             f"time is in the table of the models).", ""]
    if "multi30k" in parts:
        lines += multi30k_lines(parts["multi30k"], args) + [""]
    if "synthetic" in parts:
        lines += synthetic_lines(parts["synthetic"], args) + [""]
    lines += claims_lines(parts, args) + [""]
    (out / "length.md").write_text("\n".join(lines))
    return out / "length.md"


# ---------------------------------------------------------------- the command line

def checkpoint_arg(s):
    name, sep, path = s.partition("=")
    if not sep or name not in NAMES:
        raise argparse.ArgumentTypeError(f"takes NAME=PATH with NAME one of {', '.join(NAMES)}, got {s!r}")
    if not Path(path).is_file():
        raise argparse.ArgumentTypeError(f"no checkpoint at {path}")
    return name, str(Path(path).resolve())


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated among {', '.join(PARTS)} (default: both)")
    parser.add_argument("--models", default=",".join(NAMES), help=f"comma-separated among {', '.join(NAMES)} (default: all)")
    parser.add_argument("--seed", type=int, default=1337, help="training, bootstrap and test seed; then seed+1, ... (default: 1337)")
    parser.add_argument("--quick", action="store_true",
                        help="--minutes 2.5 --resamples 500 --synthetic-minutes 2 --seeds 1 --test-per-length 50 "
                             "(about 15 minutes on 2 cores)")
    parser.add_argument("--out", default=str(RESULTS), help="folder of length.md and its plots (default: experiments/results)")
    m = parser.add_argument_group("Multi30k")
    m.add_argument("--data", default="multi30k",
                   help="multi30k, or a folder of {train,val,test_2016_flickr}.{de,en}.gz (default: multi30k)")
    m.add_argument("--minutes", type=positive_float, default=10.0,
                   help="CPU-minutes of training per translator, each its folder's train.py (default: 10)")
    m.add_argument("--checkpoint", type=checkpoint_arg, action="append", default=[], metavar="NAME=PATH",
                   help="use this translation checkpoint for NAME (gru, attention, transformer) instead of "
                        "training one; may be repeated")
    m.add_argument("--jobs", type=positive_int, default=2, help="train.py runs at a time, one thread each (default: 2)")
    m.add_argument("--work", default=str(ROOT / "checkpoints" / "length"),
                   help="folder of the trained translators; a finished run there is reused (default: checkpoints/length)")
    m.add_argument("--bin-width", type=positive_int, default=5, help="source words per bin before merging (default: 5)")
    m.add_argument("--min-bin", type=positive_int, default=50,
                   help="a bin with fewer sentences is merged with its neighbour (default: 50)")
    m.add_argument("--resamples", type=positive_int, default=1000, help="bootstrap resamplings per bin (default: 1000)")
    s = parser.add_argument_group("synthetic copy / reverse")
    s.add_argument("--task", choices=["copy", "reverse"], default="copy", help="(default: copy)")
    s.add_argument("--symbols", type=positive_int, default=20, help="distinct symbols (default: 20)")
    s.add_argument("--min-len", type=positive_int, default=5, help="the shortest sequence, trained and tested (default: 5)")
    s.add_argument("--max-train-len", type=positive_int, default=50, help="the longest training sequence (default: 50)")
    s.add_argument("--max-test-len", type=positive_int, default=100, help="the longest test sequence (default: 100)")
    s.add_argument("--length-step", type=positive_int, default=5, help="tested lengths: min-len, +step, ... (default: 5)")
    s.add_argument("--test-per-length", type=positive_int, default=100, help="test sequences per length (default: 100)")
    s.add_argument("--synthetic-minutes", type=positive_float, default=5.0,
                   help="CPU-minutes of training per model and seed (default: 5)")
    s.add_argument("--seeds", type=positive_int, default=3, help="seeds per model (default: 3)")
    s.add_argument("--synthetic-batch", type=positive_int, default=32, help="sequences per step (default: 32)")
    s.add_argument("--synthetic-lr", type=positive_float, default=2e-3, help="Adam's learning rate (default: 0.002)")
    s.add_argument("--synthetic-size", choices=list(SIZES), default="small",
                   help="small: ~290k parameters per model; tiny: for tests (default: small)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.resamples, args.synthetic_minutes, args.seeds, args.test_per_length = 2.5, 500, 2.0, 1, 50
    args.parts = comma_list(parser, args.parts, PARTS, "--parts")
    args.models = comma_list(parser, args.models, NAMES, "--models")
    if not args.min_len <= args.max_train_len <= args.max_test_len:
        parser.error("need --min-len <= --max-train-len <= --max-test-len")
    if args.data != "multi30k":
        if not Path(args.data).is_dir():
            parser.error(f"--data: no folder {args.data} (multi30k, or a folder of Multi30k's file names)")
        args.data = str(Path(args.data).resolve())
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    started, cpu0 = time.time(), time.process_time()
    command = " ".join(["python experiments/length.py", *(sys.argv[1:] if argv is None else argv)])
    parts = {}
    with ThreadPoolExecutor(1) as background:
        # the translators train in their own processes while this one trains the synthetic models
        multi = background.submit(multi30k_part, args) if "multi30k" in args.parts else None
        if "synthetic" in args.parts:
            parts["synthetic"] = synthetic_part(args)
            plot_synthetic(parts["synthetic"], args, out / "length_synthetic.png")
        if multi is not None:
            parts["multi30k"] = multi.result()
            plot_multi30k(parts["multi30k"], out / "length_bleu.png")
    report = write_report(args, parts, command, time.time() - started, time.process_time() - cpu0)
    print(f"wrote {report}")


if __name__ == "__main__":
    run_main(main)
