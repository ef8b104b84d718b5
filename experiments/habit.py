"""What the README's habit costs: `python train.py --epochs 20000 --lr 1e-3` in every folder, timed.

Each folder's train.py runs the habit for real, on one thread, for --seconds of training; then it
gets a Ctrl-C, which (issue 18) saves at the end of the step and, for the language models, runs the
full validation before it exits: that validation is timed too. From those two measurements:

    projected time = 20,000 steps x (seconds per step) + validations (20,000 / --eval-every) x (one validation)

The translators' validation (teacher-forced, small) is not timed, nor their test report at the end
(greedy and beam BLEU on 1,000 sentences), nor anybody's start-up (reported apart). The train loss
of the first and last logged steps shows whether the habit trains at all (issue 18: under the
transformer translator's noam schedule --lr used to be a factor, so that 1e-3 meant a rate of
5e-8 to 5e-7 in the issue's first 75 s).

    python experiments/habit.py                           # all eight, 60 s each (9.4 minutes on 2026-12-02)
    python experiments/habit.py --only mlp,lstm --seconds 30
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import csv
import datetime
import math
import os
import platform
import shlex
import signal
import subprocess
import threading
import time

import torch
from tqdm import tqdm

from utils.errors import UserError, run_main
from utils.training import ArgumentParser, duration, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RUNS = {                                   # name: (folder, the task's flags)
    "mlp": ("mlp", []), "rnn": ("rnn", []), "lstm": ("lstm", []), "gru": ("gru", []),
    "gru-translate": ("gru", ["--task", "translate"]), "attention": ("attention", []),
    "transformer": ("transformer", []), "transformer-translate": ("transformer", ["--task", "translate"]),
}
TRANSLATORS = {"gru-translate", "attention", "transformer-translate"}


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=positive_float, default=60,
                        help="seconds of training per folder before the Ctrl-C (default: 60)")
    parser.add_argument("--epochs", type=positive_int, default=20000, help="the habit's steps (default: 20000)")
    parser.add_argument("--lr", default="1e-3", help="the habit's learning rate (default: 1e-3)")
    parser.add_argument("--threads", type=positive_int, default=1, help="threads per run (default: 1)")
    parser.add_argument("--only", default=",".join(RUNS), help=f"comma-separated, of {', '.join(RUNS)}")
    parser.add_argument("--extra", default="", help="more flags for every train.py (for tests: tiny models)")
    parser.add_argument("--work", default=str(ROOT / "checkpoints" / "habit"),
                        help="where the runs' checkpoints go (default: checkpoints/habit)")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "habit.md"),
                        help="the results file (default: experiments/results/habit.md)")
    args = parser.parse_args(argv)
    args.only = [n for n in args.only.split(",") if n]
    unknown = [n for n in args.only if n not in RUNS]
    if unknown:
        raise UserError(f"--only: unknown {', '.join(unknown)} (choose among {', '.join(RUNS)})")
    return args


def command(name, args):
    folder, task = RUNS[name]
    return task + ["--epochs", str(args.epochs), "--lr", args.lr, "--threads", str(args.threads),
                   "--checkpoint", str(Path(args.work) / name / "model.pt"), *shlex.split(args.extra)]


def stamped_lines(stream, lines):
    """Read a child's stdout into `lines` as (time, line), in a thread."""
    for line in stream:
        lines.append((time.time(), line.rstrip("\n")))


def first(lines, prefix):
    return next((t for t, line in lines if line.startswith(prefix)), None)


def time_one(name, args):
    """Run the habit in `name`'s folder for --seconds of training, Ctrl-C it; what was measured."""
    folder, _ = RUNS[name]
    ckpt = Path(args.work) / name / "model.pt"
    for stale in (ckpt, ckpt.with_name("log.csv")):
        stale.unlink(missing_ok=True)
    cmd = [sys.executable, "train.py", *command(name, args)]
    began = time.time()
    proc = subprocess.Popen(cmd, cwd=ROOT / folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines = []
    reader = threading.Thread(target=stamped_lines, args=(proc.stdout, lines), daemon=True)
    reader.start()
    errors = []                                                         # the bar, and an error line if any
    threading.Thread(target=stamped_lines, args=(proc.stderr, errors), daemon=True).start()
    while first(lines, "parameters:") is None and proc.poll() is None:
        time.sleep(0.1)
    started = first(lines, "parameters:")
    if started is None:
        time.sleep(0.5)                                                  # let the reader take the last line
        said = [line for _, line in errors if line.startswith("error:")]
        raise UserError(f"{name}: train.py ended before training ({said[-1] if said else 'no error line'})")
    time.sleep(max(0.0, started + args.seconds - time.time()))
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=600)
    reader.join(timeout=10)
    stopped, summary = first(lines, "interrupted at step"), first(lines, "summary:")
    saved = torch.load(ckpt, weights_only=True)
    steps, eval_every = saved["step"], saved["args"]["eval_every"]
    t_val = None if name in TRANSLATORS or summary is None else summary - stopped
    in_window = steps // eval_every                                       # validations inside the window
    train_s = (stopped - started) - in_window * (t_val or 0.0)
    with open(ckpt.with_name("log.csv"), newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["train_loss"]]
    projected = args.epochs * train_s / steps + (0 if t_val is None else math.ceil(args.epochs / eval_every) * t_val)
    return dict(name=name, folder=folder, command="python train.py " + " ".join(RUNS[name][1] + [
        "--epochs", str(args.epochs), "--lr", args.lr, "--threads", str(args.threads)]),
                startup=started - began, steps=steps, ms_per_step=1e3 * train_s / steps, eval_every=eval_every,
                t_val=t_val, projected=projected, exit=proc.returncode,
                loss_first=(rows[0]["step"], rows[0]["train_loss"]), loss_last=(rows[-1]["step"], rows[-1]["train_loss"]))


def report(results, args, cpu_s, wall_s):
    date = datetime.date.today().isoformat()
    out = [f"# The habit's cost: `python train.py --epochs {args.epochs} --lr {args.lr}` per folder",
           "",
           f"Measured {date} by `python experiments/habit.py --seconds {args.seconds:g}"
           + (f" --only {','.join(args.only)}" if args.only != list(RUNS) else "")
           + (f" --extra {shlex.quote(args.extra)}" if args.extra else "") + "`"
           f" on {platform.machine()} ({platform.processor() or 'cpu'}), PyTorch {torch.__version__}, "
           f"{args.threads} thread(s) per run, one run at a time. The script's own cost: "
           f"{cpu_s / 60:.1f} CPU-minutes (user + system, children included), {wall_s / 60:.1f} minutes wall.",
           "",
           f"Each run trained for {args.seconds:g} s, then got a Ctrl-C; its pace over those seconds and "
           f"(language models) the time of the full validation it then ran give the projection: "
           f"{args.epochs:,} steps at that pace, plus one validation every `--eval-every` steps. Not "
           f"counted: start-up (shown apart), the translators' validations and their test report "
           f"(BLEU, greedy and beam, on 1,000 sentences), and any sample printing. A projection, not a "
           f"timed full run.",
           "",
           "| folder | command | ms/step | validation | projected, all steps | start-up | steps done | train loss (step) first → last |",
           "|---|---|---|---|---|---|---|---|"]
    for r in results:
        val = "not timed" if r["t_val"] is None else f"{r['t_val']:.1f} s every {r['eval_every']}"
        out.append(f"| {r['folder']} | `{r['command']}` | {r['ms_per_step']:.1f} | {val} | "
                   f"**{duration(r['projected'])}** | {r['startup']:.0f} s | {r['steps']:,} | "
                   f"{r['loss_first'][1]} ({r['loss_first'][0]}) → {r['loss_last'][1]} ({r['loss_last'][0]}) |")
    bad = [r["name"] for r in results if r["exit"] != 130]
    if bad:
        out += ["", f"Runs that did not exit 130 after their Ctrl-C: {', '.join(bad)}."]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(out) + "\n")
    return out


def main(argv=None):
    args = parse_args(argv)
    cpu0, wall0 = _children_cpu(), time.time()
    results = []
    for name in tqdm(args.only, desc="folders", unit="folder", file=sys.stderr):
        results.append(time_one(name, args))
        tqdm.write(f"{name}: {results[-1]['ms_per_step']:.1f} ms/step, projected {duration(results[-1]['projected'])}",
                   file=sys.stderr)
    for line in report(results, args, _children_cpu() - cpu0, time.time() - wall0):
        print(line)


def _children_cpu():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


if __name__ == "__main__":
    run_main(main)
