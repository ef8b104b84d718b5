"""Where in its context a model's loss falls (Kaplan et al. 2020, Fig. 7 style), and the Transformer past its block.

Inside the block: the validation split is cut into consecutive blocks of the Transformer's block
size (64). At position t of a block the Transformer has read the block's characters 0..t and
nothing before them; the LSTM and the GRU read each block from a zero state, their state reset at
every block start, the same points. The loss of each position t, averaged over every block.

Past the block: Transformers of the same size and budget, one per position option of
transformer/train.py (--pos sinusoidal, learned, rope), read the split in consecutive pieces of
--length characters (512) at once. The model is rebuilt with a longer block (its causal mask is
a buffer, not a weight) and given the trained weights; learned positions cannot be: the table has
one row per position of the training block. Beside each, the same targets scored by the protocol
(utils/evaluation.py: windows of the training block sliding by half a block, 33 to 64 characters
of context), the way the model is meant to be read past its block.

The models are trained by their folders' train.py (experiments/compare.py's run_one) for
--minutes CPU-minutes, or reused when that run already finished: the Transformer (rope, the
default), LSTM and GRU are experiments/context.py's and experiments/gradients.py's, in --work.

    python experiments/context_positions.py --quick     # 1 CPU-minute models
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse
import dataclasses
import datetime
import time

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from experiments.compare import Run, commands_section, run_one
from experiments.compare_report import load_lm
from experiments.context import MODELS
from transformer.model import TransformerConfig, TransformerLM
from utils.data import char_lm_data
from utils.errors import UserError, run_main
from utils.evaluation import evaluate_lm, family
from utils.training import ArgumentParser, comma_list, positive_float, positive_int

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "experiments" / "results"
IN_BLOCK = ("transformer", "lstm", "gru")           # experiments/context.py's models, reset at each block
POSITIONS = ("sinusoidal", "learned", "rope")       # transformer/train.py --pos
COLORS = {"lstm": "tab:red", "gru": "tab:orange", "transformer (sinusoidal)": "tab:purple",
          "transformer (learned)": "tab:brown", "transformer (rope)": "tab:green"}


def position_losses(model, data, block, read=None, batch=128):
    """(blocks, read) nats: data cut into consecutive blocks of `block` inputs (each with the next
    characters as targets), the first `read` (default all) of every block read on their own: the
    Transformer sees only the block, a recurrent model starts it from a zero state. Row i, column
    t: the loss of the character after position t of block i, having read t + 1 characters."""
    n, read = (len(data) - 1) // block, read or block
    x, y = data[:n * block].view(n, block)[:, :read], data[1:n * block + 1].view(n, block)[:, :read]
    if family(model) == "window":
        raise ValueError("a fixed-window model has no position inside a block")
    out = []
    model.eval()
    with torch.no_grad():
        for i in range(0, n, batch):
            xb = x[i:i + batch]
            logits = model(xb)[0]                        # recurrent: state None, a zero state per block
            out.append(F.cross_entropy(logits.transpose(1, 2), y[i:i + batch], reduction="none").double())
    return torch.cat(out).numpy()


def longer(model, block_size):
    """The same Transformer able to read block_size characters at once: a TransformerLM with a
    longer block (so a longer causal mask, a non-persistent buffer) and the trained weights. None
    for learned positions: their table has a row per position of the training block, no more."""
    if model.config.pos == "learned":
        return None
    wide = TransformerLM(dataclasses.replace(model.config, block_size=block_size))
    wide.load_state_dict(model.state_dict())
    return wide.eval()


def sliding_losses(model, data, length):
    """(pieces, length) nats of the same targets as position_losses(.., length), scored by the
    protocol (windows of the model's block sliding by half a block)."""
    n = (len(data) - 1) // length
    return evaluate_lm(model, data[:n * length + 1]).nats.reshape(n, length)


def buckets(block, length):
    """[(first, last)] positions: the training block, then doubling ranges up to length."""
    edges = [0, block]
    while edges[-1] < length:
        edges.append(min(2 * edges[-1], length))
    return list(zip(edges[:-1], [e - 1 for e in edges[1:]]))


def bucket_means(losses, ranges):
    """Mean over every piece of columns first..last of (pieces, positions) losses, for each range
    inside them (None for one beyond them)."""
    return [float(losses[:, a:b + 1].mean()) if b < losses.shape[1] else None for a, b in ranges]


def standard_error(losses, ranges):
    """The largest standard error of bucket_means(losses, ranges): sd over the rows / sqrt(rows)."""
    return max(float(losses[:, a:b + 1].mean(1).std(ddof=1) / np.sqrt(len(losses)))
               for a, b in ranges if b < losses.shape[1])


def log_bins(length):
    """Positions 0, 1, 2-3, 4-7, ...: for plotting a noisy per-position curve on a log axis."""
    edges = [0] + [2 ** k for k in range(int(np.log2(length)) + 1) if 2 ** k < length] + [length]
    return [(a, b - 1) for a, b in zip(edges[:-1], edges[1:])]


def label(name_or_pos):
    """How a row is named: the recurrent models by name, a Transformer by its positions."""
    if name_or_pos in POSITIONS:
        return f"transformer ({name_or_pos})"
    return label(TransformerConfig.pos) if name_or_pos == "transformer" else name_or_pos


def probe(args, records, val):
    """{row: (blocks, block) losses inside the block}, {pos: the past-the-block losses, (pieces, positions)}."""
    models = {row: load_lm(rec["model"], rec["checkpoint"])[0] for row, rec in records.items()}
    block = next(m.config.block_size for m in models.values() if family(m) == "attention")
    inside, past = {}, {}
    for row, model in models.items():
        inside[row] = position_losses(model, val, block)
    for pos in args.positions:
        model = models[label(pos)]
        if model.config.pos != pos:
            raise UserError(f"{records[label(pos)]['checkpoint']} has {model.config.pos} positions, not {pos}")
        wide = longer(model, args.length)
        past[pos] = {"block": block, "sliding": sliding_losses(model, val, args.length),    # learned: its block only
                     "longer": position_losses(model, val, args.length, read=block) if wide is None
                     else position_losses(wide, val, args.length)}
    return inside, past


def plot(inside, past, records, path):
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    for row, losses in inside.items():
        n = np.arange(1, losses.shape[1] + 1)
        recurrent = records[row]["model"] != "transformer"
        a.plot(n, losses.mean(0), linewidth=1, color=COLORS[row], label=row + (", state reset at each block" if recurrent else ""))
        a.axhline(records[row]["val"], color=COLORS[row], linestyle=":", linewidth=1)
    a.set_xscale("log", base=2)
    a.set_xlabel("t + 1: characters of the block read (position t)")
    a.set_ylabel("loss of the next character (nats/char)")
    a.set_title("inside the Transformer's block (dotted: each model's protocol val loss)", fontsize=10)
    a.legend(fontsize=8)
    for pos, r in past.items():
        for key, style, how in (("longer", "-", "read at once"), ("sliding", "--", "protocol's sliding windows")):
            bins = log_bins(r[key].shape[1])
            centre = [np.sqrt((x + 1) * (y + 1)) for x, y in bins]
            b.plot(centre, bucket_means(r[key], bins), style, marker="o" if key == "longer" else None,
                   color=COLORS[label(pos)], label=f"{pos}, {how}")
    block = next(iter(past.values()))["block"]
    b.axvline(block, color="black", linewidth=0.8, label=f"training block ({block})")
    b.set_xscale("log", base=2)
    b.set_xlabel("t + 1: characters read (position t of the piece), mean over a doubling bin")
    b.set_ylabel("loss of the next character (nats/char)")
    b.set_title("Transformers past their training block", fontsize=10)
    b.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def write_report(args, inside, past, records, out, command, cpu_s, chars):
    block = next(iter(past.values()))["block"]
    bins = log_bins(block)
    span = lambda a, b: f"{a + 1}" if a == b else f"{a + 1}–{b + 1}"
    lines = ["# Where in its context each model's loss falls", "",
             f"`{command}` on {datetime.date.today().isoformat()}, {cpu_s / 60:.1f} CPU-minutes of scoring; "
             f"{chars:,} validation characters of {Path(args.data).name}. Each model trained by its folder's "
             f"train.py for {args.minutes:g} CPU-minutes, seed {args.seed}, one run each (commands below): "
             f"the spread over seeds is not measured.", "",
             "## Inside the block", "",
             f"Loss of the next character (nats) after reading t + 1 characters of a block, mean over every "
             f"consecutive block of {block} characters of the split; a Transformer reads only the block, the LSTM "
             f"and the GRU start it from a zero state. Last column: the model's protocol validation loss (recurrent: "
             f"the state carried over the split; Transformer: windows sliding by half a block). Standard error of a "
             f"cell (sd over the blocks / √blocks): at most {max(standard_error(v, bins) for v in inside.values()):.3f}.",
             "", "| model | " + " | ".join(f"t + 1 = {span(a, b)}" for a, b in bins) + " | protocol |",
             "|---|" + "---:|" * (len(bins) + 1)]
    for row, losses in inside.items():
        lines.append(f"| {row} | " + " | ".join(f"{v:.4f}" for v in bucket_means(losses, bins))
                     + f" | {records[row]['val']:.4f} |")
    ranges = buckets(block, args.length)
    lines += ["", "![loss against position inside the block, and past it](context_positions.png)", "",
              "## Past the block", "",
              f"The split in consecutive pieces of {args.length} characters, each read at once by the Transformer "
              f"rebuilt with a block of {args.length} and its trained weights; loss (nats) of the character after "
              f"positions a–b, mean over every piece. Below each, the same targets by the protocol (windows of "
              f"{block} sliding by {block // 2}: every target past the first window sees {block - block // 2 + 1}–"
              f"{block} characters). Standard error of a cell (sd over the pieces / √pieces): at most "
              f"{max(standard_error(r[k], ranges) for r in past.values() for k in r if k != 'block'):.3f}.", "",
              "| positions | how | " + " | ".join(f"{a}–{b}" for a, b in ranges) + " |",
              "|---|---|" + "---:|" * len(ranges)]
    for pos, r in past.items():
        cells = [f"{v:.4f}" if v is not None else f"cannot extend beyond its table ({block} positions)"
                 for v in bucket_means(r["longer"], ranges)]
        lines.append(f"| {pos} | read at once | " + " | ".join(cells) + " |")
        lines.append(f"| {pos} | protocol | " + " | ".join(f"{v:.4f}" for v in bucket_means(r["sliding"], ranges)) + " |")
    lines += commands_section(records)
    (out / "context_positions.md").write_text("\n".join(lines) + "\n")


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="tinyshakespeare", help="corpus name or UTF-8 text file (default: tinyshakespeare)")
    parser.add_argument("--minutes", type=positive_float, default=4.0, help="CPU-minutes of training per model (default: 4)")
    parser.add_argument("--length", type=positive_int, default=512,
                        help="characters the Transformers read at once past their block (default: 512)")
    parser.add_argument("--models", default=",".join(IN_BLOCK),
                        help=f"inside the block: comma-separated among {', '.join(IN_BLOCK)} (default: all)")
    parser.add_argument("--positions", default=",".join(POSITIONS),
                        help=f"past the block: comma-separated among {', '.join(POSITIONS)} (default: all)")
    parser.add_argument("--seed", type=int, default=1337, help="training seed (default: 1337)")
    parser.add_argument("--quick", action="store_true", help="--minutes 1")
    parser.add_argument("--out", default=str(RESULTS),
                        help="folder of context_positions.md and .png (default: experiments/results)")
    parser.add_argument("--work", default=str(ROOT / "checkpoints" / "gradients"),
                        help="folder of the Transformer, LSTM and GRU, shared with experiments/context.py (default: checkpoints/gradients)")
    parser.add_argument("--pos-work", default=str(ROOT / "checkpoints" / "context_positions"),
                        help="folder of the Transformers with sinusoidal and learned positions (default: checkpoints/context_positions)")
    args = parser.parse_args(argv)
    if args.quick:
        args.minutes = 1.0
    args.models = comma_list(parser, args.models, list(IN_BLOCK), "--models")
    args.positions = comma_list(parser, args.positions, list(POSITIONS), "--positions")
    if not args.models or not args.positions:
        parser.error("--models and --positions need one name each at least")
    return args


def main(argv=None):
    args = parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    _, _, val = char_lm_data(args.data)
    block = TransformerConfig.block_size
    if args.length < block or len(val) <= args.length:
        raise UserError(f"--length must be at least the block ({block}) and shorter than the validation split ({len(val):,})")
    runs = {label(name): (Run("gradients", MODELS[name][0], name, MODELS[name][1], args.seed, args.minutes), args.work)
            for name in args.models}
    for pos in args.positions:            # the default position option is the shared Transformer, in --work
        runs.setdefault(label(pos), (Run("positions", "transformer", pos, ["--pos", pos], args.seed, args.minutes),
                                     args.pos_work))
    records = {}
    torch.set_num_threads(1)
    for row, (run, work) in tqdm(runs.items(), desc="train", unit="model", dynamic_ncols=True):
        records[row] = run_one(run, argparse.Namespace(data=args.data, work=work), threads=1, reuse=True)
    started = time.process_time()
    inside, past = probe(args, records, val)
    cpu = time.process_time() - started
    plot(inside, past, records, out / "context_positions.png")
    command = " ".join(["python experiments/context_positions.py", *(sys.argv[1:] if argv is None else argv)])
    write_report(args, inside, past, records, out, command, cpu, len(val))
    print(f"wrote {out / 'context_positions.md'}")


if __name__ == "__main__":
    run_main(main)
