"""Checkpoints: one dict with fixed keys, written atomically, readable with weights_only=True.

    keys: model_type, model (state dict), optimizer (state dict), config, args, tokenizer
          (plain dict), step, best_val_loss
Only tensors, numbers, strings, lists and dicts go in, so `torch.load(path, weights_only=True)`
reads it back and generate.py needs nothing but the file."""
import pickle
import zipfile
from pathlib import Path

import torch

from utils.data import atomic_write
from utils.errors import UserError
from utils.tokenizers import tokenizer_from_dict

ROOT = Path(__file__).resolve().parent.parent
KEYS = ("model_type", "model", "optimizer", "config", "args", "tokenizer", "step", "best_val_loss")


def default_path(folder):
    """checkpoints/<folder>/model.pt at the top of the repository."""
    return ROOT / "checkpoints" / folder / "model.pt"


def save_checkpoint(path, **fields):
    missing = [k for k in KEYS if k not in fields]
    if missing:
        raise ValueError(f"checkpoint is missing {missing}")
    fields["best_val_loss"] = float(fields["best_val_loss"])   # not an Evaluation: plain data only
    atomic_write(path, lambda f: torch.save(fields, f))


class RunSaver:
    """save(step, val_loss): a train.py's checkpoint of its run at this step. Holds what does not
    change between saves (the path, the model and optimizer whose state is saved, config, args,
    tokenizer) and the best validation loss so far, which every save updates."""

    def __init__(self, path, model_type, model, optimizer, config, args, tokenizer, best_val_loss=float("inf")):
        self.path, self.model_type, self.model, self.optimizer = path, model_type, model, optimizer
        self.config, self.args, self.tokenizer = config, args, tokenizer
        self.best_val_loss = best_val_loss

    def __call__(self, step, val_loss):
        self.best_val_loss = min(self.best_val_loss, float(val_loss))
        save_checkpoint(self.path, model_type=self.model_type, model=self.model.state_dict(),
                        optimizer=self.optimizer.state_dict(), config=vars(self.config), args=vars(self.args),
                        tokenizer=self.tokenizer.to_dict(), step=step, best_val_loss=self.best_val_loss)


def load_checkpoint(path, model_type):
    """The checkpoint dict at path; a clear UserError if it is missing, unreadable, or made by
    another model (an LSTM checkpoint handed to the GRU's generate.py). model_type None: any model
    (a script with two tasks reads ckpt["model_type"] to pick one)."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no checkpoint at {path}: train one first (python train.py)")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, pickle.UnpicklingError, zipfile.BadZipFile, EOFError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"{path} is not a readable checkpoint ({first_line})") from None
    if not isinstance(ckpt, dict) or any(k not in ckpt for k in KEYS):
        raise UserError(f"{path} is not a checkpoint of this project (missing keys)")
    if model_type is not None and ckpt["model_type"] != model_type:
        raise UserError(f"{path} holds a {ckpt['model_type']!r} model, not {model_type!r}: "
                        f"use {ckpt['model_type']}/generate.py, or pass --checkpoint")
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
