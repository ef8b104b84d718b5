"""Training plumbing that no paper specifies: flags, seed, device, clipping, schedules, the
progress bar, the CSV log, resuming, and the closing summary line.

The loop itself stays in each paper's train.py, where the reader can see it."""
import argparse
import csv
import math
import os
import random
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import torch
from tqdm import tqdm

from utils.checkpoint import checkpoint_path, load_checkpoint
from utils.data import TOKENIZERS, VOCAB_COUNTS
from utils.peak import peak_line
from utils.errors import UserError
from utils.interrupt import INTERRUPTED
from utils.metrics import bits_per_token, perplexity


# ---------------------------------------------------------------- command line

class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a bad flag is one line on stderr (no usage dump) and exit status 2."""

    def error(self, message):
        self.exit(2, f"error: {message} (see --help)\n")


def _number(s, kind, what):
    """s read as int or float; a message in words (not "invalid positive_int value") if it is not one."""
    try:
        return kind(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be {what}, got {s!r}") from None


def positive_int(s):
    v = _number(s, int, "a positive integer")
    if v <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {s}")
    return v


def positive_float(s):
    v = _number(s, float, "a positive number")
    if not v > 0 or not math.isfinite(v):
        raise argparse.ArgumentTypeError(f"must be a positive number, got {s}")
    return v


def fraction(s):
    v = _number(s, float, "a number in (0, 1]")
    if not 0.0 < v <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in (0, 1], got {s}")
    return v


def probability(s):
    """A flag in [0, 1): a dropout rate."""
    v = _number(s, float, "a number in [0, 1)")
    if not 0.0 <= v < 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1), got {s}")
    return v


def add_common_args(parser, *, epochs, lr, batch_size, eval_every, folder, schedule="constant",
                    schedules=("constant", "cosine")):
    """The flags every train.py shares, grouped; each paper adds its own model flags.
    `schedules` lists the --schedule choices: a paper with its own schedule adds its name and
    computes that schedule in its train.py (e.g. rnn/'s "mikolov")."""
    data = parser.add_argument_group("data")
    data.add_argument("--data", default="tinyshakespeare",
                      help="corpus name or path to a UTF-8 text file (default: tinyshakespeare, "
                           "downloaded into data/ on first use)")
    opt = parser.add_argument_group("optimisation")
    opt.add_argument("--epochs", type=positive_int, default=epochs,
                     help=f"number of optimizer steps (default: {epochs})")
    opt.add_argument("--lr", type=positive_float, default=lr, help=f"learning rate (default: {lr})")
    opt.add_argument("--batch-size", type=positive_int, default=batch_size,
                     help=f"sequences per step (default: {batch_size})")
    opt.add_argument("--schedule", choices=list(schedules), default=schedule,
                     help=f"learning-rate schedule (default: {schedule})")
    opt.add_argument("--clip", type=positive_float, default=None,
                     help="clip gradients to this global norm (default: off)")
    opt.add_argument("--seed", type=int, default=1337, help="random seed (default: 1337)")
    opt.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                     help="where to train (default: auto = cuda, then mps, then cpu)")
    opt.add_argument("--threads", type=positive_int, default=None,
                     help="CPU threads for PyTorch (default: PyTorch's own choice, one per core)")
    opt.add_argument("--dtype", choices=["float32", "bfloat16"], default="float32",
                     help="bfloat16: the training forward under torch.autocast, its matmuls in bfloat16 (weights, "
                          "optimizer, validation and generation stay float32); where the device has it "
                          "(default: float32)")
    opt.add_argument("--compile", action="store_true",
                     help="torch.compile the model for training; where compiling fails, one line of warning and "
                          "eager training (default: off)")
    log = parser.add_argument_group("logging and checkpoints")
    log.add_argument("--eval-every", type=positive_int, default=eval_every,
                     help=f"validate on the whole validation split every N steps (default: {eval_every})")
    log.add_argument("--sample-every", type=int, default=0,
                     help="print a short sample every N steps (default: 0 = only at the end)")
    log.add_argument("--checkpoint", default=None,
                     help=f"checkpoint path (default: checkpoints/{folder}/model.pt for the default "
                          f"corpus, checkpoints/{folder}/<corpus>/model.pt for another --data)")
    log.add_argument("--resume", action="store_true",
                     help="continue the run saved in the checkpoint, exactly: its flags unless given "
                          "again, its random numbers, its place in the data")
    return parser


def add_budget_args(group):
    """--minutes and --eval-every-minutes (a Budget of CPU time), on a parser or an argument group."""
    group.add_argument("--minutes", type=positive_float, default=None,
                       help="train for this many minutes of the process's CPU time (validation not "
                            "counted) instead of --epochs steps; the schedule ends with the budget "
                            "(default: off)")
    group.add_argument("--eval-every-minutes", type=positive_float, default=None,
                       help="with --minutes: validate every this many CPU-minutes instead (default: off)")
    return group


def add_lm_args(parser):
    """The flags of the language models' train.py (not the translators'): a CPU-time budget, and
    how validation is done during training."""
    parser.add_argument("--tokenizer", choices=TOKENIZERS, default="auto",
                        help="char; word (white-space words; those seen 3 times or fewer become <unk>); bpe "
                             "(byte-level byte-pair encoding learned from the training split, --vocab-size "
                             "tokens); auto: words for --data brown, characters otherwise (default: auto)")
    parser.add_argument("--vocab-size", type=positive_int, default=1024,
                        help="--tokenizer bpe: tokens in the vocabulary, the 256 bytes included (default: 1024)")
    parser.add_argument("--vocab-counts", choices=VOCAB_COUNTS, default="auto",
                        help="word level: count words in the training split or in all splits to decide which "
                             "are rare; auto: all for brown (what the paper's numbers imply, utils/brown.py), "
                             "train otherwise (default: auto)")
    g = add_budget_args(parser.add_argument_group("budget and validation (utils/evaluation.py has the protocol)"))
    g.add_argument("--fast-val", action="store_true",
                   help="validate during training with the older, cheaper estimate (utils/evaluation.py "
                        "fast_estimate); the closing summary is always the full protocol")
    return parser


def comma_list(parser, text, choices, flag):
    """The names in a comma-separated flag value, each one of `choices`; any other is a one-line
    error naming the choices."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in choices]
    if unknown:
        parser.error(f"{flag}: unknown {', '.join(unknown)} (choose among {', '.join(choices)})")
    return names


def flags_given(parser, argv=None):
    """The dests of the flags on the command line itself (not left at their defaults)."""
    actions = [a for a in parser._actions if a.dest != "help"]
    saved = [a.default for a in actions], dict(parser._defaults)
    for a in actions:
        a.default = argparse.SUPPRESS
    parser._defaults.clear()
    try:
        return set(vars(parser.parse_args(argv)))
    finally:
        for a, default in zip(actions, saved[0]):
            a.default = default
        parser._defaults.update(saved[1])


def parse_task(argv, tasks):
    """--task alone, read first in a folder with two tasks: the other flags and their defaults
    depend on it. Not given: the language model, or with --resume --checkpoint the saved run's."""
    parser = ArgumentParser(add_help=False)
    parser.add_argument("--task", choices=tasks, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--checkpoint", default=None)
    known = parser.parse_known_args(argv)[0]
    if known.task is None and known.resume and known.checkpoint:
        return load_checkpoint(known.checkpoint, None)["args"].get("task", tasks[0])
    return known.task or tasks[0]


def parse_run_args(parser, argv, folder):
    """parser.parse_args(argv) for a train.py; a --data file is made an absolute path (the
    checkpoint records which corpus it learned). With --resume, every flag not given again is the
    checkpoint's, as the run was started (the changed ones are printed): resuming continues it."""
    args = parser.parse_args(argv)
    if hasattr(args, "data") and Path(args.data).exists():
        args.data = str(Path(args.data).resolve())
    if not args.resume:
        return args
    saved = load_checkpoint(checkpoint_path(args, folder), None)["args"]
    given = flags_given(parser, argv)
    changed = [f"--{k.replace('_', '-')} {getattr(args, k)} (the run had {saved[k]})"
               for k in sorted(given & saved.keys() - {"resume", "checkpoint"}) if getattr(args, k) != saved[k]]
    given |= {"resume", "checkpoint"}                    # this run's, whatever the saved run had
    for k, v in saved.items():
        if k not in given and hasattr(args, k):
            setattr(args, k, v)
    if getattr(args, "minutes", None) is not None:
        print(f"note: the run had a budget of --minutes {args.minutes}; resuming counts --epochs "
              f"{args.epochs} steps instead")
        args.minutes = args.eval_every_minutes = None
    print("resume: the run's own flags" + (", except " + ", ".join(changed) if changed else ""))
    return args


def print_config(args, config):
    print("config: " + " ".join(f"{k}={v}" for k, v in vars(config).items()))
    print("run:    " + " ".join(f"{k}={v}" for k, v in vars(args).items()))


# ---------------------------------------------------------------- seed and device

def set_seed(seed):
    """Same seed, same numbers on the CPU."""
    random.seed(seed)
    torch.manual_seed(seed)


def start_run(args):
    """The seed, the threads (--threads) and the device (--device) of a train.py; returns the device,
    after checking that it can do --dtype."""
    set_seed(args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    check_dtype(args, device)
    return device


def check_dtype(args, device):
    """A UserError if --dtype bfloat16 cannot run: no bfloat16 autocast on `device`, or a written-out
    BPTT (--backward manual: the recurrent models' torch.autograd.Function, float32 only)."""
    if getattr(args, "dtype", "float32") == "bfloat16":
        if getattr(args, "backward", None) == "manual":
            raise UserError("--dtype bfloat16 goes with --backward autograd: the written-out BPTT "
                            "(--backward manual) computes in float32 only")
        if device.type == "cuda" and not torch.cuda.is_bf16_supported():
            raise UserError("--dtype bfloat16: this CUDA device has no bfloat16 (use --dtype float32)")
        if not torch.amp.is_autocast_available(device.type):
            raise UserError(f"--dtype bfloat16: no autocast on {device.type} here (use --dtype float32)")


def autocast(args, device):
    """The training forward's context: torch.autocast to bfloat16 with --dtype bfloat16 (the matmuls
    run in bfloat16, the reductions and the loss in float32), nothing with float32."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=getattr(args, "dtype", "float32") == "bfloat16")


def compiled(module, enabled):
    """--compile: `module` behind torch.compile (CompiledOrEager), or `module` itself."""
    return CompiledOrEager(module) if enabled else module


class CompiledOrEager:
    """Calls go to torch.compile(module); if one fails (no C++ compiler, an op it cannot trace), one
    line of warning, the random numbers put back, and the eager module from then on: that call and
    every later one. What it returns is the module's own output, so the loop is unchanged."""

    def __init__(self, module):
        self.module, self.fast = module, torch.compile(module)

    def __call__(self, *args, **kwargs):
        if self.fast is not None:
            rng = torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []
            try:
                return self.fast(*args, **kwargs)
            except Exception as e:                       # torch.compile's many failures: fall back
                torch.set_rng_state(rng[0])
                if rng[1]:
                    torch.cuda.set_rng_state_all(rng[1])
                reason = (str(e).strip().splitlines() or [type(e).__name__])[0][:160]
                tqdm.write(f"warning: --compile: torch.compile failed here ({type(e).__name__}: {reason}); "
                           f"training eagerly", file=sys.stderr)      # (its own line, above a progress bar)
                self.fast = None
        return self.module(*args, **kwargs)


def pick_device(name="auto"):
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device here (try --device cpu)")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("--device mps: no MPS device here (try --device cpu)")
    return torch.device(name)


def count_parameters(model):
    return sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- how long to train

class Budget:
    """--epochs N optimizer steps, or --minutes M of this process's CPU time spent training.

    With minutes, `total(step)` projects the run's length from the pace so far, so that a schedule
    over `total` ends with the budget; time inside `with budget.paused():` (validation, saving,
    samples) is not counted. `eval_due(step)` says when to validate: every eval_every steps, or
    every eval_every_minutes of the budget, and at the end."""

    def __init__(self, epochs, minutes=None, eval_every=None, eval_every_minutes=None, start=0):
        self.last = (None, False)          # done() is asked more than once a step: one answer a step
        self.epochs, self.seconds = epochs, None if minutes is None else 60.0 * minutes
        self.eval_every = eval_every
        self.eval_seconds = None if eval_every_minutes is None else 60.0 * eval_every_minutes
        self.start, self.used, self.next_eval = start, 0.0, self.eval_seconds
        self.clock = time.process_time()

    def _count(self):
        now = time.process_time()
        self.used += now - self.clock
        self.clock = now

    def total(self, step):
        if self.seconds is None:
            return self.epochs
        self._count()
        if self.used <= 0 or step <= self.start:
            return max(self.epochs, step + 1)
        return max(step + 1, self.start + round((step - self.start) * self.seconds / self.used))

    def done(self, step):
        if self.seconds is None:
            return step >= self.epochs
        if self.last[0] != step:
            self._count()
            self.last = (step, self.used >= self.seconds)
        return self.last[1]

    def eval_due(self, step):
        if self.done(step):
            return True
        if self.eval_seconds is not None and self.seconds is not None:
            if self.used >= self.next_eval:
                self.next_eval += self.eval_seconds
                return True
            return False
        return step % self.eval_every == 0

    @classmethod
    def from_args(cls, args, start=0):
        """The budget of a train.py's --epochs, --minutes, --eval-every and --eval-every-minutes."""
        if args.eval_every_minutes is not None and args.minutes is None:
            raise UserError("--eval-every-minutes goes with --minutes (use --eval-every N steps otherwise)")
        if args.minutes is not None and args.resume:
            raise UserError("--minutes starts a run: resume with --epochs (the checkpoint's step count)")
        return cls(args.epochs, args.minutes, args.eval_every, args.eval_every_minutes, start)

    @contextmanager
    def paused(self):
        self._count()
        try:
            yield
        finally:
            self.clock = time.process_time()


# ---------------------------------------------------------------- gradients and schedules

class EarlyStopping:
    """Early stopping on the validation loss: `stop` turns true after `patience` validations in a
    row without a new best; the best weights are kept (in memory) and restore() puts them back.

        early = EarlyStopping(model, patience=3)
        if early.update(val_loss): save(step, val_loss)     # only a new best is saved
        ... at the end: val_loss = early.restore()"""

    def __init__(self, model, patience):
        self.model, self.patience = model, patience
        self.best, self.best_state, self.misses = None, None, 0

    def update(self, val_loss):
        """Whether val_loss is a new best (then its weights are kept)."""
        if self.best is None or float(val_loss) < float(self.best):
            self.best, self.misses = val_loss, 0
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
            return True
        self.misses += 1
        return False

    @property
    def stop(self):
        return self.misses >= self.patience

    def restore(self):
        """Put the best weights back into the model; returns the best validation loss."""
        if self.best_state is not None:
            self.model.load_state_dict(self.best_state)
        return self.best


def clip_gradients(parameters, max_norm=None, mode="norm"):
    """Clip in place and return the global gradient norm measured *before* clipping.
    mode "norm": rescale all gradients together so their global L2 norm is at most max_norm;
    mode "value": clamp each gradient element to [-max_norm, max_norm]."""
    grads = [p.grad for p in parameters if p.grad is not None]
    norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
    if max_norm is not None:
        if mode == "norm":
            scale = torch.clamp(max_norm / (norm + 1e-6), max=1.0)
            for g in grads:
                g.mul_(scale)
        elif mode == "value":
            for g in grads:
                g.clamp_(-max_norm, max_norm)
        else:
            raise ValueError(f"unknown clip mode {mode!r}")
    return norm.item()


def cosine_lr(step, total_steps, lr, warmup=0, min_lr_ratio=0.1):
    """Linear warm-up over `warmup` steps, then cosine decay from lr to lr * min_lr_ratio."""
    if step < warmup:
        return lr * (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
    return lr * (min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))


def scheduled_lr(schedule, step, total_steps, lr, warmup=0):
    """The learning rate of the common --schedule flag at this step; with `warmup`, it first rises
    linearly over that many steps (constant: to lr; cosine: see cosine_lr)."""
    if schedule == "constant":
        return lr * min(1.0, (step + 1) / warmup) if warmup else lr
    return cosine_lr(step, total_steps, lr, warmup)


def set_lr(optimizer, lr):
    for group in optimizer.param_groups:
        group["lr"] = lr


# ---------------------------------------------------------------- progress, log, summary

class TrainLog:
    """A tqdm bar over the steps and a CSV file beside the checkpoint (step, train_loss, val_loss, lr,
    grad_norm, tokens_per_s, and since the start of this process tokens_seen and train_cpu_s: the
    CPU seconds of training that a Budget counted). Resuming at step k keeps the rows up to k and
    appends: the rows a stopped run wrote after its last checkpoint are dropped, since the resumed
    run does those steps again. Once, early on, it prints the pace and what it projects for the
    whole run."""

    FIELDS = ["step", "train_loss", "val_loss", "lr", "grad_norm", "tokens_per_s", "tokens_seen", "train_cpu_s"]
    PACE_AFTER_S = 10                      # print the estimate after this long, or PACE_AFTER_STEPS
    PACE_AFTER_STEPS = 200

    def __init__(self, csv_path, start_step, total_steps, resume=False, budget=None, enabled=True):
        """enabled=False: a log that shows and writes nothing (the other ranks under torchrun)."""
        csv_path = Path(csv_path) if enabled else Path(os.devnull)
        if enabled:
            csv_path.parent.mkdir(parents=True, exist_ok=True)
        kept = self._rows_until(csv_path, start_step) if resume and enabled else []
        self.enabled = enabled
        self.file = open(csv_path, "w", newline="")
        self.writer = csv.writer(self.file)
        self.writer.writerow(self.FIELDS)
        self.writer.writerows(kept)
        self.start_step, self.paced = start_step, budget is not None and budget.seconds is not None
        self.bar = tqdm(total=total_steps, initial=start_step, desc="training", unit="step",
                        dynamic_ncols=True, file=sys.stderr, disable=not enabled)
        self.start_time = time.time()
        self.last_time = self.start_time
        self.tokens = 0
        self.window_tokens = 0
        self.budget = budget               # with --minutes the bar's total follows its projection

    @staticmethod
    def _rows_until(csv_path, step):
        """The data rows of an earlier log of this run up to `step` (none if there is no log)."""
        if not csv_path.exists():
            return []
        with open(csv_path, newline="") as f:
            rows = list(csv.reader(f))[1:]
        return [r for r in rows if r and r[0].isdigit() and int(r[0]) <= step]

    def step(self, step, loss, lr, grad_norm, tokens, val_loss=None, log_every=10, cpu_s=None):
        """Record one optimizer step; writes a CSV row every `log_every` steps and at validation."""
        self.tokens += tokens
        self.window_tokens += tokens
        if self.budget is not None:
            self.bar.total = self.budget.total(step)
            cpu_s = self.budget.used
        self.bar.update(1)
        done = step - self.start_step
        if not self.paced and (self.wall >= self.PACE_AFTER_S or done >= self.PACE_AFTER_STEPS):
            self.paced = True
            left = (self.bar.total - step) * self.wall / done
            self.print(f"pace: {1e3 * self.wall / done:.0f} ms/step on {torch.get_num_threads()} thread(s); "
                       f"the {self.bar.total - step:,} steps left take about {duration(left)} more "
                       f"(validation included so far; --threads N to change)")
        if step % log_every == 0 or val_loss is not None:
            now = time.time()
            tok_s = self.window_tokens / max(now - self.last_time, 1e-9)
            self.last_time, self.window_tokens = now, 0
            self.bar.set_postfix(loss=f"{loss:.4f}", lr=f"{lr:.1e}", tok_s=f"{tok_s / 1e3:.0f}k")
            self.writer.writerow([step, f"{loss:.5f}", "" if val_loss is None else f"{val_loss:.5f}",
                                  f"{lr:.3e}", f"{grad_norm:.4f}", f"{tok_s:.0f}", self.tokens,
                                  "" if cpu_s is None else f"{cpu_s:.2f}"])
            self.file.flush()

    def print(self, message):
        if self.enabled:
            self.bar.write(message)

    def sample(self, make_sample):
        """Print make_sample()'s text, drawn without moving the run's random numbers: a sample
        every N steps must not change the batches and dropout that follow (nor what --resume
        repeats)."""
        with torch.random.fork_rng(devices=[]):
            self.print(make_sample())

    def close(self):
        self.bar.close()
        self.file.close()

    @property
    def wall(self):
        return time.time() - self.start_time

    @property
    def tokens_per_s(self):
        return self.tokens / max(self.wall, 1e-9)


def duration(seconds):
    """'1 h 35 min', '18 min', '40 s'."""
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {round(seconds % 3600 / 60)} min"
    return f"{round(seconds / 60)} min" if seconds >= 90 else f"{seconds:.0f} s"


def finish_run(log, save, step, val_loss, validate, make_sample, interrupted=False, fast_val=False, unit="char",
               chars=None):
    """The end of every LM train.py, finished or interrupted. Interrupted (Ctrl-C): the run is
    saved first, at `step`, so that nothing after can lose it. Then, when interrupted or with
    --fast-val, the protocol's validation (validate(final=True)); the bar and the log are closed,
    and a sample (make_sample()), the summary line and where the checkpoint is are printed. An
    interrupted run then exits with status 130; a finished one returns."""
    if interrupted:
        log.print(f"interrupted at step {step}: saving {save.path}")
        save(step)
    if interrupted or fast_val:
        val_loss = validate(final=True)
    log.close()
    print(make_sample())
    print(summary_line(val_loss, count_parameters(save.model), log.tokens_per_s, log.wall, unit, chars))
    if log.tokens_per_s:
        print(peak_line(save.model, log.tokens_per_s))
    print(f"checkpoint: {save.path}")
    if interrupted:
        print("interrupted: python train.py --resume continues the run (with the same --data or "
              "--checkpoint)", file=sys.stderr)
        raise SystemExit(INTERRUPTED)


def end_of_run(ddp, stop, log, save, step, val_loss, validate, make_sample, *, fast_val, unit, chars):
    """The last lines of every LM train.py, under torchrun or not: ranks other than 0 leave (rank 0
    saves, validates and reports); rank 0 ends as finish_run says, Ctrl-C included."""
    if not ddp.main:
        ddp.close()
        raise SystemExit(INTERRUPTED if stop.requested else 0)
    try:
        finish_run(log, save, step, val_loss, validate, make_sample, interrupted=stop.requested,
                   fast_val=fast_val, unit=unit, chars=chars)
    finally:
        ddp.close()


def summary_line(val_loss, parameters, tokens_per_s, wall_s, unit="char", chars=None):
    """The one line every train.py prints at the end; val loss under utils/evaluation.py's protocol
    (an Evaluation, which says how many tokens it scored), or a translator's plain float. `unit`:
    what a token is, "char", "word" or "token" (BPE): the loss, bits and perplexity are per one of
    them; for words and BPE tokens also bits per character, the scored tokens' total bits over
    the `chars` characters they stand for, comparable across tokenizers."""
    scored = getattr(val_loss, "count", None)
    bits = "bpc" if unit == "char" else f"bits/{unit}"
    per_char = ""
    if unit != "char" and scored and chars:
        per_char = f" | {bits_per_token(val_loss) * scored / chars:.3f} bits/char over {chars:,} chars"
    return (f"summary: val loss {val_loss:.4f} nats/{unit} | {bits} {bits_per_token(val_loss):.3f}{per_char} | "
            f"ppl {perplexity(val_loss):.2f} per {unit} | params {parameters:,} | "
            f"{tokens_per_s / 1e3:.1f}k tok/s | wall {wall_s:.0f}s"
            + ("" if scored is None else f" | scored {scored:,} {unit}s"))
