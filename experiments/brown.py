"""Bengio et al. 2003's Table 1 on the Brown corpus, word level, and the rest of the lineage beside it.

Every row is a folder's own train.py on `--data brown` (utils/brown.py: Bengio's split, 800,000 /
200,000 / the rest, rare words as <unk>), given --minutes of its process's CPU time, then scored
here on the validation and the test split by utils/evaluation.py's protocol (every word once).
Beside them the interpolated modified Kneser-Ney n-grams of orders 3, 4, 5 (utils/ngram.py), the
paper's mixtures (an MLP with the trigram, 0.5 / 0.5: Table 1's "mix"), and Mikolov et al. 2010's
(the RNN with KN5, 0.75 / 0.25, their §3) and dynamic evaluation (their §2).

    python experiments/brown.py                  # train the rows not trained yet, score, write results/brown.md
    python experiments/brown.py --report-only    # score what is there, rewrite the report
    python experiments/brown.py --quick          # 2 CPU-minutes a row instead of 12
    python experiments/brown.py --data words.txt --minutes 0.05 --rows MLP9,RNN   # any text, as words

A finished row is recorded in results/brown_runs.jsonl and not trained again; its scores are kept
beside its checkpoint (checkpoints/brown/<row>/scores.npz) and recomputed only if that file is gone.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import csv
import datetime
import json
import os
import subprocess
import time
from dataclasses import dataclass

import numpy as np
import torch
from tqdm import tqdm

from experiments.brown_report import write_report
from experiments.compare_report import load_lm
from utils.data import lm_splits
from utils.errors import UserError, run_main
from utils.evaluation import evaluate_lm
from utils.ngram import KneserNey
from utils.training import ArgumentParser, comma_list, positive_float

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
WORK = ROOT / "checkpoints" / "brown"
N_CONTEXT = ["--context", "4"]          # Table 1's n = 5: four words of context


@dataclass
class Row:
    name: str            # the table's name for it
    model: str           # the folder
    flags: list          # its train.py flags, beyond the data, budget and checkpoint
    paper: tuple = None  # Table 1's (valid, test) perplexity, for the rows the paper has
    mixed: str = None    # Table 1's name of this row mixed with the trigram


ROWS = [
    # Table 1: n = 5, h hidden units, m features, direct connections; Adam(W) (our default optimizer)
    Row("MLP9", "mlp", N_CONTEXT + ["--n-hidden", "100", "--n-embd", "30", "--no-direct", "--lr", "1e-3"],
        paper=(280, 276), mixed="MLP10"),
    Row("RNN", "rnn", ["--n-hidden", "100", "--nonlinearity", "sigmoid", "--schedule", "mikolov",
                       "--eval-per-pass", "--lr", "3e-3"]),
    Row("MLP1", "mlp", N_CONTEXT + ["--n-hidden", "50", "--n-embd", "60", "--direct", "--lr", "1e-3"],
        paper=(284, 268), mixed="MLP2"),
    Row("MLP5", "mlp", N_CONTEXT + ["--n-hidden", "50", "--n-embd", "30", "--direct", "--lr", "1e-3"],
        paper=(296, 279), mixed="MLP6"),
    Row("Transformer", "transformer", ["--d-model", "128", "--layers", "4", "--heads", "4", "--block-size", "64"]),
    Row("LSTM", "lstm", ["--n-hidden", "200", "--layers", "1"]),
    Row("GRU", "gru", ["--n-hidden", "200", "--layers", "1"]),
    # MLP9 trained as the paper trains (§4, §4.2): SGD, epsilon_0 = 1e-3 per example decaying with
    # r = 1e-8, weight decay 1e-4 on the weights and C, early stopping on the validation split
    Row("MLP9 paper SGD", "mlp", N_CONTEXT + ["--n-hidden", "100", "--n-embd", "30", "--no-direct", "--optimizer", "sgd",
                                              "--schedule", "bengio", "--lr", "1e-3", "--decay", "1e-8",
                                              "--weight-decay", "1e-4", "--early-stopping", "2"], paper=(280, 276)),
]
KN_ORDERS = (3, 4, 5)


# ---------------------------------------------------------------- training

def run_row(row, args):
    """Train one row in its own process; returns its record (a dict) for the JSONL file."""
    folder = Path(args.work) / row.name
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, str(ROOT / row.model / "train.py"), "--data", args.data, "--tokenizer", "word", "--device", "cpu",
           "--minutes", f"{args.minutes:g}", "--seed", str(args.seed), "--checkpoint", str(folder / "model.pt"),
           "--threads", "1", *row.flags]
    if "--eval-per-pass" not in row.flags:
        cmd += ["--eval-every-minutes", f"{args.minutes / 3:g}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    started = datetime.datetime.now()
    with open(folder / "stdout.txt", "w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT / row.model)
    stdout = (folder / "stdout.txt").read_text()
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{row.name} failed ({last}); see {folder / 'stdout.txt'}")
    rows = list(csv.DictReader(open(folder / "log.csv")))
    params = int(next(l for l in stdout.splitlines() if l.startswith("parameters:")).split()[1].replace(",", ""))
    return {"row": row.name, "model": row.model, "data": args.data, "minutes": args.minutes, "seed": args.seed,
            "params": params, "steps": int(rows[-1]["step"]), "tokens": int(rows[-1]["tokens_seen"]),
            "cpu_s": float(rows[-1]["train_cpu_s"]), "wall_s": (datetime.datetime.now() - started).total_seconds(),
            "curve": [[float(r["train_cpu_s"]), int(r["tokens_seen"]), float(r["val_loss"])] for r in rows if r["val_loss"]],
            "checkpoint": str(folder / "model.pt"), "date": started.strftime("%Y-%m-%d %H:%M"),
            "command": f"cd {row.model} && OMP_NUM_THREADS=1 python train.py " + " ".join(cmd[2:]).replace(str(ROOT) + "/", "../")}


def read_records(path, args):
    """The records of this study's rows (same corpus, budget and seed), the last of each name."""
    if not path.exists():
        return {}
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return {r["row"]: r for r in records
            if (r["data"], r["minutes"], r["seed"]) == (args.data, args.minutes, args.seed)}


def train_missing(rows, args, records_path):
    done = read_records(records_path, args)
    todo = [row for row in rows if row.name not in done]
    if not todo:
        return
    print(f"{len(todo)} rows to train, {args.minutes:g} CPU-minutes each, one at a time on one thread")
    for row in tqdm(todo, desc="brown", unit="row", dynamic_ncols=True):
        record = run_row(row, args)
        with open(records_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        tqdm.write(f"{row.name}: {record['params']:,} params, {record['steps']} steps, "
                   f"{record['tokens'] / 1e6:.2f}M words in {record['cpu_s'] / 60:.1f} CPU-min")


# ---------------------------------------------------------------- scoring

def score_row(record, splits, args):
    """{split: per-word nats} of a trained row under the protocol (and, for the RNN, dynamic
    evaluation), cached beside its checkpoint."""
    cache = Path(record["checkpoint"]).with_name("scores.npz")
    if cache.exists():
        return dict(np.load(cache))
    torch.set_num_threads(1)
    model, pad_id = load_lm(record["model"], record["checkpoint"])
    if model.config.vocab_size != args.vocab_size:
        raise UserError(f"{record['checkpoint']} has a vocabulary of {model.config.vocab_size:,} words, the study's "
                        f"{args.vocab_size:,}: it was trained on other data; delete it to train the row again")
    scores, started = {}, time.process_time()
    for name, ids in splits.items():
        if name != "train":
            scores[name] = evaluate_lm(model, ids, pad_id=pad_id).nats
            if record["model"] == "rnn":
                from rnn.train import dynamic_nats
                scores[f"{name}_dynamic"] = dynamic_nats(model, ids, 1, args.dynamic_bptt, args.dynamic_lr, "cpu")
    scores["cpu_s"] = np.array(time.process_time() - started)
    np.savez(cache, **scores)
    return scores


def kneser_ney_scores(splits, vocab_size):
    """{order: {split: per-word nats}} of the interpolated modified Kneser-Ney models."""
    out = {}
    for n in KN_ORDERS:
        lm = KneserNey(splits["train"].numpy(), n, vocab_size)
        out[n] = {name: lm.nats(ids.numpy()) for name, ids in splits.items() if name != "train"}
    return out


def mixture(nats_a, nats_b, weight_a):
    """Per-word nats of the mixture weight_a p_a + (1 - weight_a) p_b, from each model's nats."""
    return -np.logaddexp(np.log(weight_a) - nats_a, np.log1p(-weight_a) - nats_b)


def vocabulary_study(data):
    """How where the rare words are counted changes the vocabulary and the KN trigram."""
    out = []
    for counts in ("train", "all"):
        tokenizer, splits = lm_splits(data, "word", vocab_counts=counts)
        lm = KneserNey(splits["train"].numpy(), 3, tokenizer.vocab_size)
        ppl = {name: float(np.exp(lm.nats(ids.numpy()).mean())) for name, ids in splits.items() if name != "train"}
        unk = {name: float((ids == 0).float().mean()) for name, ids in splits.items()}
        out.append({"counts": counts, "vocab": tokenizer.vocab_size, "ppl": ppl, "unk": unk})
    return out


# ---------------------------------------------------------------- the command line

def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="brown",
                        help="brown (Bengio's split), or a UTF-8 text read as words, first 90%% / last 10%% "
                             "(default: brown)")
    parser.add_argument("--minutes", type=positive_float, default=12.0,
                        help="CPU-minutes of training per row (default: 12)")
    parser.add_argument("--seed", type=int, default=1337, help="every row's seed (default: 1337)")
    parser.add_argument("--rows", default=",".join(r.name for r in ROWS),
                        help="which rows, comma-separated (default: all)")
    parser.add_argument("--dynamic-lr", type=positive_float, default=0.1,
                        help="the RNN's dynamic evaluation: SGD rate, Mikolov et al.'s alpha = 0.1 (default: 0.1)")
    parser.add_argument("--dynamic-bptt", type=int, default=10,
                        help="the RNN's dynamic evaluation: words per update (the paper: 1) (default: 10)")
    parser.add_argument("--quick", action="store_true", help="--minutes 2")
    parser.add_argument("--report-only", action="store_true", help="train nothing: score and report what is there")
    parser.add_argument("--out", default=str(RESULTS), help="folder of brown.md and its plots (default: experiments/results)")
    parser.add_argument("--work", default=str(WORK), help="folder of the rows' checkpoints (default: checkpoints/brown)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 2.0
    names = comma_list(parser, args.rows, [r.name for r in ROWS], "--rows")
    args.rows = [r for r in ROWS if r.name in names]
    if args.data != "brown" and Path(args.data).exists():
        args.data = str(Path(args.data).resolve())
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / ("brown_runs.jsonl" if args.data == "brown" else f"brown_runs_{Path(args.data).stem}.jsonl")
    tokenizer, splits = lm_splits(args.data, "word")
    args.vocab_size = tokenizer.vocab_size
    if not args.report_only:
        train_missing(args.rows, args, records_path)
    records = read_records(records_path, args)
    started = time.process_time()
    kn = kneser_ney_scores(splits, tokenizer.vocab_size)
    vocab = vocabulary_study(args.data) if args.data == "brown" else None
    kn_cpu_s = time.process_time() - started
    scores = {}
    for row in tqdm([r for r in args.rows if r.name in records], desc="scoring", unit="row", dynamic_ncols=True):
        scores[row.name] = score_row(records[row.name], splits, args)
    command = " ".join(["python experiments/brown.py", *(sys.argv[1:] if argv is None else argv)])
    path = write_report(args, ROWS, records, scores, kn, vocab, tokenizer, splits, out, command, kn_cpu_s, mixture)
    print(f"wrote {path}")


if __name__ == "__main__":
    run_main(main)
