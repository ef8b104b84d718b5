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

The multi30k part is in experiments/length_multi30k.py, the synthetic part in
experiments/length_synthetic.py; this file is the command line and the report (results/length.md).

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
import os
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch

from experiments.length_multi30k import bin_label, multi30k_lines, multi30k_part, plot_multi30k
from experiments.length_synthetic import SIZES, plot_synthetic, synthetic_lines, synthetic_part
from utils.errors import run_main
from utils.training import ArgumentParser, comma_list, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
NAMES = ("gru", "attention", "transformer")
PARTS = ("multi30k", "synthetic")


# ---------------------------------------------------------------- the report

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
