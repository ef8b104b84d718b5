"""Train the neural probabilistic language model of Bengio et al. 2003 on characters.

    cd mlp && python train.py                          # Tiny Shakespeare, the defaults below
    cd mlp && python train.py --epochs 20000 --lr 1e-3 --direct --data my.txt
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse

import torch

from mlp.generate import generate, padding_id
from mlp.model import MLPConfig, NPLM
from utils.batching import random_blocks
from utils.checkpoint import RunSaver, checkpoint_path
from utils.data import lm_data
from utils.distributed import Distributed
from utils.errors import UserError, run_main
from utils.evaluation import validation_loss
from utils.interrupt import StopOnCtrlC
from utils.sampling import sample_text
from utils.tokenizers import characters
from utils.training import (ArgumentParser, Budget, EarlyStopping, TrainLog, add_common_args, add_lm_args,
                            autocast, clip_gradients, compiled, count_parameters, end_of_run, parse_run_args,
                            positive_int, print_config, scheduled_lr, set_lr, start_run)

MODEL_TYPE = "mlp"


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, epochs=20000, lr=3e-3, batch_size=256, eval_every=2000, folder="mlp",
                    schedule="cosine", schedules=("constant", "cosine", "bengio"))
    add_lm_args(parser)
    d = MLPConfig()
    m = parser.add_argument_group("model (Bengio et al. 2003, §2)")
    m.add_argument("--context", type=positive_int, default=d.context,
                   help=f"n-1, how many previous characters the model sees (default: {d.context})")
    m.add_argument("--n-embd", type=positive_int, default=d.n_embd,
                   help=f"m, features per character in C (default: {d.n_embd})")
    m.add_argument("--n-hidden", type=positive_int, default=d.n_hidden,
                   help=f"h, hidden tanh units (default: {d.n_hidden})")
    m.add_argument("--direct", action=argparse.BooleanOptionalAction, default=d.direct,
                   help="direct connections W from the features to the output (default: off)")
    m.add_argument("--batchnorm", action=argparse.BooleanOptionalAction, default=d.batchnorm,
                   help="batch-normalise the hidden pre-activation; not in the paper (default: off)")
    parser.add_argument("--weight-decay", type=float, default=0.0,
                        help="AdamW's decoupled weight decay, or with --optimizer sgd the paper's penalty on the "
                             "weights and C, not the biases (default: 0; the paper: 1e-4 on Brown, 1e-5 on AP News, §4.2)")
    p = parser.add_argument_group("the paper's training (§4)")
    p.add_argument("--optimizer", choices=["adamw", "sgd"], default="adamw",
                   help="adamw, or the paper's stochastic gradient ascent: with it --lr is epsilon_0 per "
                        "example (the batch's loss is summed, not averaged); the paper's 1e-3 (default: adamw)")
    p.add_argument("--early-stopping", type=positive_int, default=None, metavar="N",
                   help="stop after N validations without a new best, and end with the best weights, which are "
                        "all the checkpoint ever holds (\"Early stopping on the validation set was used\", §4.2) "
                        "(default: off)")
    p.add_argument("--decay", type=float, default=1e-8,
                   help="r of --schedule bengio: epsilon_t = epsilon_0 / (1 + r t), t the examples seen so far "
                        "(the paper: r = 1e-8, t its parameter updates, one per example) (default: 1e-8)")
    return parse_run_args(parser, argv, "mlp")


def make_optimizer(model, args):
    """AdamW (our default), or the paper's SGD with its weight decay on the weights and C only:
    "R is a weight decay penalty applied only to the weights of the neural network and to the C
    matrix, not to the biases" (§2)."""
    if args.optimizer == "adamw":
        # DEVIATION: Adam(W) instead of the paper's plain SGD with a decreasing learning rate (§4)
        return torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=args.weight_decay)
    biases = [model.d, model.b]
    weights = [p for p in model.parameters() if all(p is not b for b in biases)]
    return torch.optim.SGD([{"params": weights, "weight_decay": args.weight_decay},
                            {"params": biases, "weight_decay": 0.0}], lr=args.lr)


def bengio_lr(lr, decay, examples):
    """epsilon_t = epsilon_0 / (1 + r t) (§4), t counted in examples (the paper updates once per example)."""
    return lr / (1 + decay * examples)


def sample(model, tokenizer):
    """A short sample continuing a newline, for the log."""
    pad_id = padding_id(tokenizer)
    return sample_text(model, tokenizer, lambda m, ids, n, **kw: generate(m, ids, n, pad_id, **kw))


def main(argv=None):
    args = parse_args(argv)
    device = start_run(args)
    ddp = Distributed.start(device)                 # one process, or this rank under torchrun
    ddp.check_batch(args.batch_size)
    tokenizer, train_data, val_data = lm_data(args.data, args.tokenizer, args.vocab_counts, args.vocab_size)
    config = MLPConfig(vocab_size=tokenizer.vocab_size, context=args.context, n_embd=args.n_embd,
                       n_hidden=args.n_hidden, direct=args.direct, batchnorm=args.batchnorm)
    if len(train_data) <= config.context + 1 or len(val_data) <= config.context:
        raise UserError(f"corpus too short for a context of {config.context} tokens")
    print_config(args, config)

    model = NPLM(config).to(device)
    net = compiled(ddp.wrap(model), args.compile)   # torchrun: gradients averaged over ranks; --compile
    optimizer = make_optimizer(model, args)
    save = RunSaver(checkpoint_path(args, "mlp"), MODEL_TYPE, model, optimizer, config, args, tokenizer,
                    ignore=())
    start = save.resume() if args.resume else 0
    print(f"parameters: {count_parameters(model):,}")

    def validate(final=False):
        """utils/evaluation.py's protocol: every character once, each with its own window"""
        return validation_loss(model, val_data, device, args, padding_id(tokenizer), final)

    budget = Budget.from_args(args, start)
    log = TrainLog(save.path.with_name("log.csv"), start, args.epochs, resume=args.resume, budget=budget,
                   enabled=ddp.main)
    step, val_loss = start, None
    early = EarlyStopping(model, args.early_stopping) if args.early_stopping else None
    with StopOnCtrlC() as stop:
        while not ddp.agree(budget.done(step) or stop.requested or (early and early.stop)):
            # set the learning rate (with --minutes, over the steps the budget is projected to allow)
            if args.schedule == "bengio":
                lr = bengio_lr(args.lr, args.decay, step * args.batch_size)
            else:
                lr = scheduled_lr(args.schedule, step, budget.total(step), args.lr)
            set_lr(optimizer, lr)
            # a batch: B random windows of n-1 characters and the character that follows each
            x, y = random_blocks(train_data, args.batch_size, config.context)
            x, y = ddp.rows(x).to(device), ddp.rows(y[:, -1]).to(device)    # (B, n-1), (B,): this rank's rows
            # forward, backward, clip, step
            with autocast(args, device):                    # --dtype bfloat16: the matmuls in bfloat16
                _, loss = net(x, y)
            # the paper's SGD takes a step of epsilon per example: the batch's summed loss
            (loss * len(y) if args.optimizer == "sgd" else loss).backward()
            grad_norm = clip_gradients(model.parameters(), args.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # evaluate on the whole validation split every N steps and at the end; save
            val_loss = None
            with budget.paused(), stop.allowed():
                if ddp.agree(budget.eval_due(step)) and ddp.main:     # (under torchrun, one decision)
                    val_loss = validate()
                    log.print(f"step {step} | loss {loss.item():.4f} | val {val_loss:.4f} | lr {lr:.1e}")
                    if early is None or early.update(val_loss):
                        save(step, val_loss)                        # with --early-stopping: a new best only
                    elif early.stop:
                        log.print(f"step {step}: {early.patience} validations without a new best: early stopping, "
                                  f"back to the best weights (val {early.best:.4f})")
                if args.sample_every and step % args.sample_every == 0 and ddp.main:
                    log.sample(lambda: sample(model, tokenizer))
            log.step(step, loss.item(), lr, grad_norm, tokens=len(y) * ddp.world, val_loss=val_loss)
    if early is not None and not stop.requested:
        val_loss = early.restore()                                  # the checkpoint's weights, the best
    # Ctrl-C: saved first; then, as at the end of every run, the protocol's val, a sample, the summary
    end_of_run(ddp, stop, log, save, step, val_loss, validate, lambda: sample(model, tokenizer),
               fast_val=args.fast_val, unit=tokenizer.unit, chars=characters(tokenizer, val_data[1:]))


if __name__ == "__main__":
    run_main(main)
