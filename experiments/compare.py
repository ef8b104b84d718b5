"""The whole lineage side by side: every LM trained for the same CPU time, scored by one protocol.

Each run is a folder's own train.py (mlp, rnn, lstm, gru, transformer) started with --minutes M, a
budget of the process's own CPU time, so a shared machine shortens nobody's training; validation is
utils/evaluation.py's protocol, every character of the split once. Next to them, the interpolated
modified Kneser-Ney n-gram (utils/ngram.py). The study, in order:

  defaults   each folder's default model and training, --seeds seeds, --minutes each
  matched    every model resized to the Transformer's default parameter count (within 10%)
  batchnorm  the MLP at four learning rates, with and without --batchnorm
  scaling    the LSTM and the Transformer at three sizes, for each of --scaling-minutes

Every finished run is appended to experiments/results/compare_runs.jsonl and skipped when the
study is started again, so an interrupted study continues; the report (compare.md and its PNGs)
is rewritten from that file at the end, or alone with --report-only.

    python experiments/compare.py                      # the full study (results/compare.md ends with its cost)
    python experiments/compare.py --quick              # the same study, smaller: under 30 minutes
    python experiments/compare.py --minutes 0.05 --seeds 1 --parts defaults --data tiny.txt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import csv
import datetime
import json
import os
import subprocess
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from tqdm import tqdm

from experiments.compare_report import scored_of, write_report
from experiments.compare_sizes import Sizes
from utils.data import char_lm_data
from utils.errors import UserError, run_main
from utils.training import ArgumentParser, comma_list, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
WORK = ROOT / "checkpoints" / "compare"
MODELS = ("mlp", "rnn", "lstm", "gru", "transformer")
PARTS = ("defaults", "matched", "batchnorm", "scaling")
BN_LRS = (1e-3, 3e-3, 1e-2, 3e-2)
EVALS_PER_RUN = 5            # validations along each run (the last at the end of the budget)


@dataclass
class Run:
    part: str                # which part of the study
    model: str               # the folder
    size: str                # a label: "default", "matched", "small", ...
    flags: list              # train.py flags beyond the budget and the seed
    seed: int
    minutes: float

    @property
    def key(self):
        """What makes two runs the same (the defaults and matched parts may ask for one run twice)."""
        return f"{self.model} {' '.join(self.flags)}|seed {self.seed}|{self.minutes:g} CPU-min"

    @property
    def dirname(self):
        flags = "".join(f.strip("-")[:10] for f in self.flags)[:60] or "defaults"
        return f"{self.model}-{flags}-s{self.seed}-{self.minutes:g}m"


# ---------------------------------------------------------------- the plan

def plan(args, sizes):
    """The runs of the study, in the order they are started."""
    runs = []
    seeds = range(args.seed, args.seed + args.seeds)
    if "defaults" in args.parts:
        runs += [Run("defaults", m, "default", [], s, args.minutes) for s in seeds for m in MODELS]
    if "matched" in args.parts:
        runs += [Run("matched", m, "matched", sizes.matched[m], s, args.minutes) for s in seeds for m in MODELS]
    if "batchnorm" in args.parts:
        for lr in BN_LRS:
            for bn in ("--no-batchnorm", "--batchnorm"):
                runs += [Run("batchnorm", "mlp", bn.strip("-"), ["--lr", f"{lr:g}", bn], s, args.bn_minutes)
                         for s in range(args.seed, args.seed + args.bn_seeds)]
    if "scaling" in args.parts:
        for minutes in args.scaling_minutes:
            for model in ("lstm", "transformer"):
                for label, flags in sizes.scaling[model].items():
                    runs.append(Run("scaling", model, label, flags, args.seed, minutes))
    # a run asked twice (the Transformer's default is also its matched size) is run once
    unique = {}
    for r in runs:
        unique.setdefault(r.key, r)
    return list(unique.values()), runs


def run_folder(run, args):
    """Where a run keeps its checkpoint, log and output: --work / [corpus-]dirname, an absolute path
    (train.py runs in its own folder, so a --work relative to where the script was started must be resolved)."""
    corpus = "" if args.data == "tinyshakespeare" else Path(args.data).stem + "-"
    return Path(args.work).resolve() / (corpus + run.dirname)


def run_command(run, args):
    """The train.py command line of a run; args.evals_per_run (default EVALS_PER_RUN) validations along it."""
    evals = getattr(args, "evals_per_run", EVALS_PER_RUN)
    data = str(Path(args.data).resolve()) if Path(args.data).is_file() else args.data   # a file, or a corpus name
    return [sys.executable, str(ROOT / run.model / "train.py"), "--data", data, "--device", "cpu",
            "--minutes", f"{run.minutes:g}", "--eval-every-minutes", f"{run.minutes / evals:g}",
            "--seed", str(run.seed), "--checkpoint", str(run_folder(run, args) / "model.pt"), *run.flags]


def run_one(run, args, threads, reuse=False):
    """Train one run in its own process; returns its record (a dict) for the JSONL file. With
    `reuse`, a run already finished in its folder (its summary printed) is read back, not retrained."""
    folder = run_folder(run, args)
    if reuse and (folder / "model.pt").exists() and "summary:" in read_or_empty(folder / "stdout.txt"):
        started = datetime.datetime.fromtimestamp((folder / "stdout.txt").stat().st_ctime)
        return record_of(run, args, threads, started, wall=None)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}
    started = datetime.datetime.now()
    with open(folder / "stdout.txt", "w") as out:
        proc = subprocess.run(run_command(run, args), stdout=out, stderr=subprocess.PIPE, text=True, env=env,
                              cwd=ROOT / run.model)
    wall = (datetime.datetime.now() - started).total_seconds()
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        raise UserError(f"{run.key} failed ({last}); see {folder / 'stdout.txt'}")
    return record_of(run, args, threads, started, wall)


def command_line(record):
    """How to run a record's training again by hand: `cd <folder> && OMP_NUM_THREADS=1 python train.py ...`."""
    folder = record["model"]
    command = record["command"].replace(str(ROOT / folder / "train.py"), "python train.py").replace(str(ROOT) + "/", "../")
    return f"cd {folder} && OMP_NUM_THREADS=1 {command}"


def commands_section(records):
    """The "## Commands" section of a probe's results file: how each model it used was trained,
    with the date; records: {name: run record}."""
    return ["", "## Commands", ""] + [f"- {name} ({rec['date']}): `{command_line(rec)}`"
                                      for name, rec in records.items()]


def read_or_empty(path):
    return Path(path).read_text() if Path(path).exists() else ""


def record_of(run, args, threads, started, wall):
    """The record of a finished run, from what it left in its folder."""
    folder = run_folder(run, args)
    stdout = (folder / "stdout.txt").read_text()
    rows = list(csv.DictReader(open(folder / "log.csv")))
    evals = [r for r in rows if r["val_loss"]]
    params = int(next(l for l in stdout.splitlines() if l.startswith("parameters:")).split()[1].replace(",", ""))
    last = rows[-1]
    return {**asdict(run), "key": run.key, "data": args.data, "params": params, "steps": int(last["step"]),
            "chars": int(last["tokens_seen"]), "cpu_s": float(last["train_cpu_s"]), "wall_s": wall,
            "val": float(evals[-1]["val_loss"]), "threads": threads, "checkpoint": str(folder / "model.pt"),
            "scored": scored_of(folder / "stdout.txt"),
            "curve": [[float(r["train_cpu_s"]), int(r["tokens_seen"]), float(r["val_loss"])] for r in evals],
            "train_curve": [[int(r["step"]), float(r["train_loss"])] for r in rows],
            "date": started.strftime("%Y-%m-%d %H:%M"), "command": " ".join(run_command(run, args)[1:])}


def read_records(path, data):
    """The records of the runs on corpus `data` (one records file may hold studies of several)."""
    if not path.exists():
        return []
    records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return [r for r in records if r.get("data", r["command"].split("--data ")[1].split()[0]) == data]


def run_study(args, todo, records_path):
    """Run what the records file lacks, --jobs at a time, appending each record as it finishes."""
    done = {r["key"] for r in read_records(records_path, args.data)}
    todo = [r for r in todo if r.key not in done]
    if not todo:
        print("every run of the study is in the records already")
        return
    print(f"{len(todo)} runs to do, {sum(r.minutes for r in todo):.1f} CPU-minutes of training, "
          f"{args.jobs} at a time on {args.threads} thread(s) each")
    lock = threading.Lock()
    bar = tqdm(total=round(sum(r.minutes for r in todo), 2), unit="CPU-min", desc="study", dynamic_ncols=True)

    def one(run):
        record = run_one(run, args, args.threads)
        with lock:
            with open(records_path, "a") as f:
                f.write(json.dumps(record) + "\n")
            bar.update(run.minutes)
            bar.write(f"{run.key}: val {record['val']:.4f} nats/char, {record['params']:,} params, "
                      f"{record['steps']} steps, {record['chars'] / 1e6:.2f}M chars")
    with ThreadPoolExecutor(args.jobs) as pool:
        for future in [pool.submit(one, r) for r in todo]:
            future.result()
    bar.close()


# ---------------------------------------------------------------- the command line

def minutes_list(s):
    try:
        values = [positive_float(v) for v in s.split(",")]
    except Exception:
        raise UserError(f"--scaling-minutes takes positive numbers separated by commas, got {s!r}") from None
    return values


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare",
                        help="corpus name or UTF-8 text file; first 90%% train, last 10%% validation "
                             "(default: tinyshakespeare)")
    parser.add_argument("--minutes", type=positive_float, default=5.0,
                        help="CPU-minutes of training per run in the defaults and matched parts (default: 5)")
    parser.add_argument("--seeds", type=positive_int, default=3,
                        help="seeds per model in the defaults and matched parts (default: 3)")
    parser.add_argument("--seed", type=int, default=1337, help="the first seed; then seed+1, ... (default: 1337)")
    parser.add_argument("--parts", default=",".join(PARTS),
                        help=f"which parts of the study, comma-separated among {', '.join(PARTS)} (default: all)")
    parser.add_argument("--scaling-minutes", type=str, default="1,4",
                        help="CPU-minute budgets of the scaling part, comma-separated (default: 1,4)")
    parser.add_argument("--bn-minutes", type=positive_float, default=0.5,
                        help="CPU-minutes of each batch-norm sweep run (default: 0.5)")
    parser.add_argument("--bn-seeds", type=positive_int, default=3,
                        help="seeds per learning rate in the batch-norm sweep (default: 3)")
    parser.add_argument("--jobs", type=positive_int, default=2,
                        help="runs at a time (default: 2, one per core of a 2-core machine)")
    parser.add_argument("--threads", type=positive_int, default=1,
                        help="torch threads of each run, pinned with OMP_NUM_THREADS (default: 1)")
    parser.add_argument("--quick", action="store_true",
                        help="a smaller study: --minutes 1 --seeds 2 --scaling-minutes 0.5,1 --bn-minutes 0.25 "
                             "--bn-seeds 1 (under 30 minutes on 2 cores)")
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder of compare.md, its plots and the records compare_runs.jsonl "
                             "(default: experiments/results)")
    parser.add_argument("--work", default=str(WORK),
                        help="folder of the runs' checkpoints and outputs (default: checkpoints/compare)")
    parser.add_argument("--report-only", action="store_true", help="train nothing: rewrite the report from the records")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes, args.seeds, args.scaling_minutes, args.bn_minutes, args.bn_seeds = 1.0, 2, "0.5,1", 0.25, 1
    args.scaling_minutes = minutes_list(args.scaling_minutes)
    args.parts = comma_list(parser, args.parts, PARTS, "--parts")
    return args


def main(argv=None):
    args = parse_args(argv)

    tokenizer, _, _ = char_lm_data(args.data)
    sizes = Sizes(tokenizer.vocab_size)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    records_path = out / "compare_runs.jsonl"
    todo, asked = plan(args, sizes)
    command = "python experiments/compare.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if not args.report_only:
        print(f"threads: {args.threads} per run (OMP_NUM_THREADS), {args.jobs} runs at a time")
        print(f"matched size: {sizes.describe()}")
        run_study(args, todo, records_path)
    quick = sum(r.minutes for r in plan(parse_args(["--quick"]), sizes)[0])
    report = write_report(args, asked, read_records(records_path, args.data), sizes, out, command, quick)
    print(f"report: {report}")


if __name__ == "__main__":
    run_main(main)
