"""Checkpoints: one dict with fixed keys, written atomically, readable with weights_only=True.

    keys: model_type, model (state dict), optimizer (state dict), config, args, tokenizer
          (plain dict), step, best_val_loss; and since resuming continues the run exactly,
          resume: the random-number generators' states and the state a recurrent model carries
          into the next step (absent from older checkpoints); under torchrun also `ranks`, every
          rank's own random numbers (utils/distributed.py)
Only tensors, numbers, strings, lists and dicts go in, so `torch.load(path, weights_only=True)`
reads it back and generate.py needs nothing but the file.

Where a run is saved by default (default_path): checkpoints/<folder>/model.pt for the folder's
own corpus, checkpoints/<folder>/<corpus>/model.pt for another --data, so that training on a
second corpus never replaces the first model; and a default checkpoint of another model
configuration is not overwritten either (check_not_clobbering): --checkpoint names a new file."""
import pickle
import random
import re
import zipfile
from pathlib import Path

import numpy as np
import torch

from utils.data import atomic_write
from utils.errors import UserError
from utils.interrupt import sigint_deferred
from utils.tokenizers import tokenizer_from_dict

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("model_type", "model", "optimizer", "config", "args", "tokenizer", "step", "best_val_loss")
DEFAULT_CORPORA = ("tinyshakespeare", "multi30k")     # the language models' and the translators' --data default
# where each model type's scripts live, and the flag that picks its task there
HOMES = {"gru_seq2seq": ("gru", " --task translate"), "transformer_mt": ("transformer", " --task translate")}


def home(model_type):
    """'<folder>/' and the task flag of the scripts that train and use a `model_type` model."""
    folder, flag = HOMES.get(model_type, (model_type, ""))
    return folder, flag


def corpus_name(data):
    """A short name for --data, to name its checkpoint folder: the corpus name, or the file's
    (or the translators' folder's) name without its suffix, in safe characters."""
    name = Path(str(data).rstrip("/")).stem if data not in DEFAULT_CORPORA else data
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "data"


def default_path(folder, data=None):
    """checkpoints/<folder>/model.pt at the top of the repository, for the default corpus (data
    None or a default); checkpoints/<folder>/<corpus>/model.pt for another one."""
    if data is None or data in DEFAULT_CORPORA:
        return ROOT / "checkpoints" / folder / "model.pt"
    return ROOT / "checkpoints" / folder / corpus_name(data) / "model.pt"


def checkpoint_path(args, folder):
    """The run's checkpoint: --checkpoint, or the default for its folder and --data."""
    return Path(args.checkpoint) if args.checkpoint else default_path(folder, args.data)


def check_not_clobbering(path, model_type, config, args, ignore=()):
    """A UserError before a run starts if its *default* checkpoint path holds a model of another
    type, configuration (fields in `ignore` aside) or corpus: it would be overwritten at the first
    save. An explicit --checkpoint is the user's own choice, and --resume continues that model."""
    if args.checkpoint or args.resume or not Path(path).is_file():
        return
    try:
        ckpt = load_checkpoint(path, None)
    except UserError:
        return                                       # not a readable checkpoint: nothing to keep
    old, new = ckpt["config"], vars(config)
    diffs = [(k, old.get(k), v) for k, v in new.items() if k not in ignore and old.get(k) != v]
    diffs += [(k, ckpt["args"].get(k), getattr(args, k)) for k in ("data", "src", "tgt")
              if hasattr(args, k) and ckpt["args"].get(k) != getattr(args, k)]
    if ckpt["model_type"] != model_type:
        diffs = [("model", ckpt["model_type"], model_type)]
    if diffs:
        had, this = (", ".join(f"{k}={d[i]}" for k, *d in diffs) for i in (0, 1))
        raise UserError(f"{path} holds a model trained with {had} (this run: {this}): pass --checkpoint "
                        f"PATH to keep both, or delete it to replace it")


def save_checkpoint(path, **fields):
    missing = [k for k in KEYS if k not in fields]
    if missing:
        raise ValueError(f"checkpoint is missing {missing}")
    fields["best_val_loss"] = float(fields["best_val_loss"])   # not an Evaluation: plain data only
    with sigint_deferred():                                    # a Ctrl-C now waits for the file
        atomic_write(path, lambda f: torch.save(fields, f))


# ---------------------------------------------------------------- the random numbers of a run

def rng_state():
    """The states of every generator a run draws from (torch, CUDA, numpy, Python), as tensors and
    numbers only, so a checkpoint holding them still loads with weights_only=True."""
    version, python, gauss = random.getstate()
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(),
            "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
            "python": [version, torch.tensor(python, dtype=torch.int64), gauss],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}


def set_rng_state(state):
    """Put the generators back where rng_state() found them."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
    version, python, gauss = state["python"]
    random.setstate((version, tuple(python.tolist()), gauss))
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))


class RunSaver:
    """save(step, val_loss): a train.py's checkpoint of its run at the end of this step, from which
    --resume continues exactly as if the run had not stopped. Holds what does not change between
    saves (the path, the model and optimizer whose state is saved, config, args, tokenizer), the
    best validation loss so far, which every save updates, and `carry`: what a recurrent model
    hands from one step to the next (its detached state), which the loop keeps up to date.

    resume(): the other way round, for --resume: the weights, optimizer, best loss, generators and
    carry put back from the checkpoint at path; returns the step to continue from."""

    def __init__(self, path, model_type, model, optimizer, config, args, tokenizer, ignore=()):
        self.path, self.model_type, self.model, self.optimizer = Path(path), model_type, model, optimizer
        self.config, self.args, self.tokenizer = config, args, tokenizer
        self.ignore = ignore            # config fields that may change on resume (leave the weights alone)
        self.best_val_loss, self.carry = float("inf"), None
        self.ranks = None               # under torchrun: every rank's own random numbers (Distributed.gather_rng)
        check_not_clobbering(self.path, model_type, config, args, ignore)

    def __call__(self, step, val_loss=None):
        """Save the run at the end of `step`; val_loss None: not validated (an interrupted run)."""
        if val_loss is not None:
            self.best_val_loss = min(self.best_val_loss, float(val_loss))
        save_checkpoint(self.path, model_type=self.model_type, model=self.model.state_dict(),
                        optimizer=self.optimizer.state_dict(), config=vars(self.config), args=vars(self.args),
                        tokenizer=self.tokenizer.to_dict(), step=step, best_val_loss=self.best_val_loss,
                        resume={"rng": rng_state(), "carry": self.carry, "ranks": self.ranks})

    def resume(self):
        ckpt = load_checkpoint(self.path, self.model_type)
        wanted = {k: v for k, v in vars(self.config).items() if k not in self.ignore}
        diffs = [f"{k}={ckpt['config'].get(k)} (asked {v})" for k, v in wanted.items() if ckpt["config"].get(k) != v]
        if diffs:
            raise UserError(f"cannot resume {self.path}: it was trained with " + ", ".join(diffs))
        if ckpt["step"] >= self.args.epochs:
            raise UserError(f"{self.path} is already at step {ckpt['step']}; ask for more with --epochs")
        self.model.load_state_dict(ckpt["model"])
        self.optimizer.load_state_dict(ckpt["optimizer"])
        self.best_val_loss = ckpt["best_val_loss"]
        saved = ckpt.get("resume")
        if saved is None:
            print(f"note: {self.path} predates resumable checkpoints: the random numbers (batches, dropout) "
                  f"start afresh, so the run will not repeat the uninterrupted one")
        else:
            set_rng_state(saved["rng"])
            self.carry = to_device(saved["carry"], next(self.model.parameters()).device)
            self.ranks = saved.get("ranks")
        print(f"resuming from step {ckpt['step']} of {self.path}")
        return ckpt["step"]


def to_device(state, device):
    """A carried state (a tensor, or lists and tuples of them, or None) moved to `device`."""
    if isinstance(state, torch.Tensor):
        return state.to(device)
    if isinstance(state, (list, tuple)):
        return type(state)(to_device(s, device) for s in state)
    return state


def load_checkpoint(path, model_type):
    """The checkpoint dict at path; a clear UserError if it is missing, unreadable, or made by
    another model (an LSTM checkpoint handed to the GRU's generate.py). model_type None: any model
    (a script with two tasks reads ckpt["model_type"] to pick one)."""
    path = Path(path)
    if not path.is_file():
        folder, flag = home(model_type) if model_type else (None, "")
        where = f"cd {folder} && " if folder else ""
        raise UserError(f"no checkpoint at {path}: train one first ({where}python train.py{flag})")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError, OSError):
        # not PyTorch's advice, which suggests weights_only=False: unsafe, and wrong for random bytes
        raise UserError(f"{path} is not a readable checkpoint (damaged, truncated, or not made by "
                        f"torch.save)") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in KEYS):
        raise UserError(f"{path} is not a checkpoint of this project (missing keys)")
    if model_type is not None and ckpt["model_type"] != model_type:
        folder, flag = home(ckpt["model_type"])
        raise UserError(f"{path} holds a {ckpt['model_type']!r} model, not {model_type!r}: "
                        f"use {folder}/generate.py{flag}, or pass --checkpoint")
    return ckpt


def load_weights(model, ckpt, path):
    """Put the checkpoint's weights into `model`; a UserError if they do not fit its shapes."""
    try:
        model.load_state_dict(ckpt["model"])
    except RuntimeError as e:
        raise UserError(f"{path}: the weights do not match the model config stored with them "
                        f"({str(e).splitlines()[0]})") from None
    return model


def load_model(path, model_type, build):
    """(model, tokenizer) from the checkpoint at path; build(config dict) makes the empty model."""
    ckpt = load_checkpoint(path, model_type)
    return load_weights(build(ckpt["config"]), ckpt, path), tokenizer_from_dict(ckpt["tokenizer"])
