"""The Multi30k part of experiments/length.py: BLEU of the three translators against source length.

The translators (trained by their folders' train.py, or given as checkpoints), their greedy test
translations, the length bins, the paired bootstrap of corpus BLEU per bin, and the part's plot and
its section of results/length.md."""
import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
from sacrebleu.metrics import BLEU
from tqdm import tqdm

from attention.model import AttentionConfig, RNNsearch
from experiments.compare import Run, command_line, run_one
from gru.model import GRUEncoderDecoder, Seq2SeqConfig
from transformer.model import TransformerTranslator, TranslatorConfig
from utils.checkpoint import load_checkpoint
from utils.errors import UserError
from utils.tokenizers import tokenize
from utils.translation import TranslationData, load_translator, source_words, translate_batches

ROOT = Path(__file__).resolve().parent.parent
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



# ---------------------------------------------------------------- the plot

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



# ---------------------------------------------------------------- the report's section

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

