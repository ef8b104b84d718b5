"""Corpora larger than memory: peak memory and encoding speed of `--data FILE` on a big file.

A benchmark, not a timed test. It writes a synthetic UTF-8 text of --megabytes (words of ASCII
and multi-byte letters, punctuation, line ends, an emoji now and then), then runs, one after the
other, each as its own process:

1. transformer/train.py for --steps steps on it: the first read, which encodes the text once into
   data/<name>.<sha>.char.u16 (utils/token_file.py) and prints the encoding speed;
2. lstm/train.py for --steps steps on it: the cache read back, B streams from the memory map;
3. for comparison, the in-memory path (utils/data.py lm_data with memmap=False, what a file under
   the threshold gets) on the first --compare-megabytes of the same text, loading only.

Each process's peak resident memory comes from os.wait4 (the kernel's ru_maxrss of that child).
The synthetic file and its cache are deleted at the end (unless --keep).

    python experiments/large_corpus.py                  # 512 MB, 20 steps each (see results/large_corpus.md)
    python experiments/large_corpus.py --quick          # 64 MB, 5 steps
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import datetime
import os
import platform
import re
import shlex
import shutil
import subprocess
import threading
import time

import numpy as np
import torch
from tqdm import tqdm

from utils.data import DATA_DIR
from utils.errors import UserError, run_main
from utils.training import ArgumentParser, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
# small models: the benchmark is about the data path; the closing validation (up to a million
# characters, utils/token_file.py VAL_TOKENS) is what costs time
RUNS = {
    "transformer": ["--layers", "2", "--heads", "4", "--d-model", "64", "--block-size", "64", "--batch-size", "12"],
    "lstm": ["--n-hidden", "128", "--layers", "1", "--batch-size", "32", "--bptt", "100"],
}
# letters and marks of the synthetic words: mostly ASCII, some 2-, 3- and 4-byte characters
ASCII = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
WIDE = "éèêàçñüöäßøåœæ—€“”’ΩπλжщЯ漢字🌹🚀"
ENCODED = re.compile(r"encoded ([\d,.]+) MB in ([\d.]+) s \(([\d.]+) MB/s\): ([\d,]+) characters")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megabytes", type=positive_float, default=512,
                        help="size of the synthetic text, in MB of 10^6 bytes (default: 512)")
    parser.add_argument("--steps", type=positive_int, default=20, help="training steps per model (default: 20)")
    parser.add_argument("--compare-megabytes", type=positive_float, default=32,
                        help="the in-memory path is loaded with this much of the text (default: 32)")
    parser.add_argument("--quick", action="store_true", help="64 MB, 5 steps, the comparison on 16 MB")
    parser.add_argument("--work", default="/tmp/large_corpus",
                        help="where the text and the checkpoints go (default: /tmp/large_corpus)")
    parser.add_argument("--keep", action="store_true", help="keep the text and its cache in data/")
    parser.add_argument("--out", default=str(ROOT / "experiments" / "results" / "large_corpus.md"),
                        help="the results file (default: experiments/results/large_corpus.md)")
    args = parser.parse_args(argv)
    if args.quick:
        args.megabytes, args.steps, args.compare_megabytes = 64, 5, 16
    return args


def lexicon(rng, size=5000):
    """`size` synthetic words, 1 to 10 characters, one in eight with a multi-byte character."""
    words = []
    for _ in range(size):
        letters = list(rng.choice(list(ASCII), rng.integers(1, 11)))
        if rng.random() < 1 / 8:
            letters[rng.integers(len(letters))] = str(rng.choice(list(WIDE)))
        words.append("".join(letters))
    return np.array(words + [",", ".", ".\n", "!\n", "?", ";", "\n\n"], dtype=object)


def write_synthetic(path, n_bytes, seed=0, block_words=1_000_000):
    """A UTF-8 text of n_bytes (a few fewer where the cut would split a character) at `path`: words
    drawn from a lexicon with Zipf-like frequencies (the k-th word with probability ~ 1/k),
    space-separated; returns its size in bytes."""
    rng = np.random.default_rng(seed)
    words = lexicon(rng)
    p = 1 / np.arange(1, len(words) + 1)
    p /= p.sum()
    written = 0
    with open(path, "wb") as f, tqdm(total=n_bytes, unit="B", unit_scale=True, desc="writing the text") as bar:
        while written < n_bytes:
            block = (" ".join(words[rng.choice(len(words), block_words, p=p)]) + " ").encode("utf-8")
            last = written + len(block) >= n_bytes
            if last:                                                 # cut, but never inside a character
                block = block[:n_bytes - written].decode("utf-8", errors="ignore").encode("utf-8")
            f.write(block)
            written += len(block)
            bar.update(len(block))
            if last:
                return written


def peak_rss(command, cwd=ROOT, env=None):
    """Run `command`; (exit status, stdout, stderr, wall seconds, its peak RSS in bytes), the peak
    from os.wait4 of that one child (Linux: ru_maxrss in KiB)."""
    start = time.perf_counter()
    with open(os.devnull) as devnull:
        proc = subprocess.Popen(command, cwd=cwd, stdin=devnull, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                env={**os.environ, "OMP_NUM_THREADS": "1", **(env or {})})
    out, err = [], []
    # read both pipes to their end (the child blocks on a full pipe), then reap it with wait4
    readers = [threading.Thread(target=lambda s, b: b.append(s.read()), args=(s, b)) for s, b in
               ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    for r in readers:
        r.join()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return (proc.returncode, out[0].decode("utf-8", "replace"), err[0].decode("utf-8", "replace"),
            time.perf_counter() - start, usage.ru_maxrss * 1024)


def parse_encoding(stdout):
    """(MB, seconds, MB/s, characters) from utils/token_file.py's 'encoded ...' line, or None."""
    m = ENCODED.search(stdout)
    if not m:
        return None
    mb, s, rate, chars = m.groups()
    return float(mb.replace(",", "")), float(s), float(rate), int(chars.replace(",", ""))


def train_command(folder, data, work, steps):
    return [sys.executable, str(ROOT / folder / "train.py"), "--data", str(data), "--epochs", str(steps),
            "--eval-every", str(steps), "--checkpoint", str(Path(work) / folder / "model.pt"), *RUNS[folder]]


IN_MEMORY = ("import sys; sys.path.insert(0, {root!r}); from utils.data import lm_data; "
             "tok, train, val = lm_data({path!r}, 'char', memmap=False); print(len(train) + len(val), 'ids')")


def gb(n):
    return f"{n / 1e9:.2f} GB"


def run_benchmark(args):
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    text = work / "large_corpus.txt"
    size = write_synthetic(text, int(args.megabytes * 1e6))
    rows, encoding = [], None
    try:
        for folder in RUNS:
            command = train_command(folder, text, work, args.steps)
            print(f"running {folder}/train.py for {args.steps} steps on {text} ({size / 1e6:,.0f} MB)", flush=True)
            code, out, err, wall, rss = peak_rss(command)
            if code != 0:
                raise UserError(f"{folder}/train.py failed (exit {code}): {err.strip().splitlines()[-1:]}")
            enc = parse_encoding(out)
            encoding = encoding or enc
            summary = next((l for l in out.splitlines() if l.startswith("summary:")), "")
            rows.append(dict(name=f"{folder}/train.py, {args.steps} steps", path="memory map, " +
                             ("encoding the text first" if enc else "the cache read back"), rss=rss, wall=wall, of=size,
                             command=command, summary=summary))
        prefix = work / "prefix.txt"
        with open(text, "rb") as f:
            prefix.write_bytes(f.read(int(args.compare_megabytes * 1e6)).decode("utf-8", "ignore").encode("utf-8"))
        print(f"loading {args.compare_megabytes:g} MB of it in memory", flush=True)
        code, out, err, wall, rss = peak_rss([sys.executable, "-c", IN_MEMORY.format(root=str(ROOT), path=str(prefix))])
        if code != 0:
            raise UserError(f"the in-memory load failed (exit {code}): {err.strip().splitlines()[-1:]}")
        rows.append(dict(name=f"lm_data(memmap=False), loading only, first {prefix.stat().st_size / 1e6:,.0f} MB",
                         path="in memory (files under the threshold)", rss=rss, wall=wall,
                         of=prefix.stat().st_size, command=None, summary=""))
    finally:
        if not args.keep:
            for cache in DATA_DIR.glob(f"{text.name}.*"):
                cache.unlink()
            for f in (text, work / "prefix.txt"):
                f.unlink(missing_ok=True)
            shutil.rmtree(work, ignore_errors=True)
    return size, encoding, rows


def report(args, size, encoding, rows, cpu_s, wall_s):
    date = datetime.date.today().isoformat()
    command = "python experiments/large_corpus.py" + (" --quick" if args.quick else
                                                        f" --megabytes {args.megabytes:g} --steps {args.steps}")
    out = [f"# Corpora larger than memory: a {size / 1e6:,.0f} MB text",
           "",
           f"Measured {date} by `flock /tmp/cpu.lock {command}` on {platform.machine()}, PyTorch {torch.__version__}, "
           f"one thread per process, one process at a time. The script's own cost: {cpu_s / 60:.1f} CPU-minutes "
           f"(user + system, children included), {wall_s / 60:.1f} minutes wall.",
           "",
           f"The text: {size:,} bytes of synthetic UTF-8 (`write_synthetic`: Zipf-distributed words of ASCII "
           f"letters, one word in eight with a 2-, 3- or 4-byte character, punctuation and line ends)."]
    if encoding:
        mb, s, rate, chars = encoding
        out += ["", f"Encoding, once, into `data/<name>.<sha>.char.u16` (utils/token_file.py): {mb:,.1f} MB in "
                    f"{s:.1f} s, **{rate:.1f} MB/s**, {chars:,} characters (the hashing pass before it not counted)."]
    out += ["", "Peak resident memory of each process (os.wait4's ru_maxrss; it counts the pages of the memory map "
                "the process has touched, page cache the kernel may drop) against the size of the text it read:",
            "", "| process | data path | text read | peak RSS | RSS / text size | wall |", "|---|---|---:|---:|---:|---:|"]
    for r in rows:
        out.append(f"| {r['name']} | {r['path']} | {r['of'] / 1e6:,.0f} MB | **{gb(r['rss'])}** | "
                   f"{r['rss'] / r['of']:.2f} | {r['wall']:.0f} s |")
    out += ["", "The runs' commands (from the repository root; the text was deleted afterwards):", ""]
    out += [f"    {shlex.join(['python'] + [c.replace(str(ROOT) + '/', '') for c in r['command'][1:]])}"
            for r in rows if r["command"]]
    out += ["", "Their summary lines (a few steps of training: the losses say nothing of the models):", ""]
    out += [f"    {r['summary']}" for r in rows if r["summary"]]
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(out) + "\n")
    return out


def cpu_seconds():
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def main(argv=None):
    args = parse_args(argv)
    cpu0, wall0 = cpu_seconds(), time.time()
    size, encoding, rows = run_benchmark(args)
    for line in report(args, size, encoding, rows, cpu_seconds() - cpu0, time.time() - wall0):
        print(line)


if __name__ == "__main__":
    run_main(main)
