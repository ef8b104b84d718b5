"""Train the recurrent network language model of Mikolov et al. 2010 on characters, with truncated BPTT.

    cd rnn && python train.py                                        # Tiny Shakespeare, the defaults below
    cd rnn && python train.py --nonlinearity tanh --clip 1.0
    cd rnn && python train.py --optimizer sgd --lr 0.1 --schedule mikolov   # the paper's recipe (§2)
    cd rnn && python train.py --eval-only --dynamic                  # static vs dynamic evaluation
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import copy

import torch
import torch.nn.functional as F

from rnn.model import ElmanRNN, RNNConfig
from utils.batching import check_streams, steps_per_pass, stream_batches, train_chunks
from utils.checkpoint import RunSaver, checkpoint_path, load_checkpoint, load_weights
from utils.data import lm_data, lm_splits
from utils.distributed import Distributed
from utils.errors import UserError, run_main
from utils.evaluation import evaluate_lm, validation_loss
from utils.interrupt import StopOnCtrlC
from utils.metrics import bits_per_token, evaluate_recurrent
from utils.sampling import generate_recurrent, sample_text
from utils.tokenizers import characters, tokenizer_from_dict
from utils.training import (ArgumentParser, Budget, TrainLog, add_common_args, add_lm_args, autocast,
                            clip_gradients, compiled, count_parameters, end_of_run, parse_run_args,
                            positive_float, positive_int, print_config, scheduled_lr, set_lr, start_run)

MODEL_TYPE = "rnn"
# "significant improvement" (§2 gives no number): the rnnlm toolkit's min_improvement = 1.003, i.e. a
# validation loss at least 0.3% below the reference (rnnlmlib.cpp, CRnnLM::trainNet); the toolkit's, not §2's
MIN_IMPROVEMENT = 1.003


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, epochs=5000, lr=3e-3, batch_size=32, eval_every=1000, folder="rnn",
                    schedule="cosine", schedules=("constant", "cosine", "mikolov"))
    add_lm_args(parser)
    d = RNNConfig()
    m = parser.add_argument_group("model (Mikolov et al. 2010, §2)")
    m.add_argument("--n-hidden", type=positive_int, default=d.n_hidden,
                   help=f"H, hidden units in s(t) (default: {d.n_hidden})")
    m.add_argument("--nonlinearity", choices=["sigmoid", "tanh"], default=d.nonlinearity,
                   help=f"f in s(t) = f(U w(t) + W s(t-1)); the paper's is sigmoid, Eq. 4 (default: {d.nonlinearity})")
    m.add_argument("--backward", choices=["manual", "autograd"], default=d.backward,
                   help="BPTT written out (rnn/model.py ElmanBPTT) or left to autograd; same numbers "
                        f"(default: {d.backward})")
    t = parser.add_argument_group("truncated BPTT and the paper's training (§2)")
    t.add_argument("--bptt", type=positive_int, default=100,
                   help="T, steps per chunk: gradients flow back this far and no further (default: 100)")
    t.add_argument("--clip-mode", choices=["norm", "value"], default="norm",
                   help="--clip bounds the global gradient norm, or clamps each weight-gradient element "
                        "(the rnnlm toolkit instead clamps each element of the error sent back through a "
                        "weight matrix, at 15) (default: norm)")
    t.add_argument("--eval-per-pass", action="store_true",
                   help="validate at the end of every pass over the training text, the paper's epoch (§2), "
                        "instead of every --eval-every steps or --eval-every-minutes (default: off)")
    t.add_argument("--optimizer", choices=["adam", "sgd"], default="adam",
                   help="adam, or the paper's plain SGD (there with --lr 0.1 --schedule mikolov) (default: adam)")
    e = parser.add_argument_group("evaluation")
    e.add_argument("--eval-only", action="store_true",
                   help="do not train: score the validation split with the model in --checkpoint")
    e.add_argument("--dynamic", action="store_true",
                   help="with --eval-only, also the dynamic model of §2: keep learning while reading the text")
    e.add_argument("--dynamic-lr", type=positive_float, default=0.1,
                   help="SGD learning rate of dynamic evaluation, on each chunk's mean loss (default: 0.1)")
    return parse_run_args(parser, argv, "rnn")


class MikolovSchedule:
    """The learning-rate rule of §2: "If log-likelihood of validation data increases, training
    continues in new epoch. If no significant improvement is observed, learning rate α is halved
    at start of each new epoch. After there is again no significant improvement, training is
    finished." `update(val_loss)` takes one validation and returns True when training is finished;
    `lr` is then the rate until the next validation.

    "An epoch" is one validation: with --eval-per-pass, one pass over the training text as in §2;
    otherwise (a DEVIATION) every --eval-every steps or --eval-every-minutes. "Significant" is the rnnlm toolkit's threshold,
    min_improvement = 1.003 (the loss must be 0.3% below the reference), not a number from §2.
    The reference is the best validation loss so far; §2 does not say against what, and the
    toolkit compares with the previous validation, the same whenever the loss keeps falling.
    Not done: the toolkit also goes back to the previous validation's weights when a validation
    is worse (restoreWeights in CRnnLM::trainNet); §2 does not mention it.
    `halving` and `best` let --resume continue where the run was (train.py reads them back)."""

    def __init__(self, lr, best=float("inf"), halving=False, min_improvement=MIN_IMPROVEMENT):
        self.lr, self.best, self.halving, self.min_improvement = lr, best, halving, min_improvement

    def update(self, val_loss):
        val_loss = float(val_loss)
        significant = val_loss * self.min_improvement <= self.best     # the toolkit stalls at logp*min_improvement<llogp
        self.best = min(self.best, val_loss)
        if not significant:
            if self.halving:
                return True                  # "again no significant improvement": training is finished
            self.halving = True              # the first stall: from now on, halve at every validation
        if self.halving:
            self.lr /= 2                     # "halved at start of each new epoch"
        return False


def dynamic_evaluate(model, data, batch_size, bptt, lr, device):
    """The mean loss (nats) of dynamic_nats: the dynamic model's predictions on `data`."""
    return float(dynamic_nats(model, data, batch_size, bptt, lr, device).mean())


def dynamic_nats(model, data, batch_size, bptt, lr, device):
    """The dynamic model of §2: read `data` once, scoring each chunk with the current weights
    *before* an SGD step on that chunk's loss, so the model keeps adapting to the text it reads.
    Works on a copy of `model`; returns the nats of every prediction made on the way, chunk by
    chunk (with batch_size 1: data[1:] in order, the targets of utils/evaluation.py's protocol).
    DEVIATION: the paper updates after every word; here after every chunk of T steps."""
    model = copy.deepcopy(model).train()
    nats, state = [], None
    for x, y in stream_batches(data, batch_size, bptt):
        x, y = x.to(device), y.to(device)
        logits, loss, state = model(x, state, y)                     # predict the chunk first...
        nats.append(F.cross_entropy(logits.detach().transpose(1, 2), y, reduction="none").double().cpu().T.reshape(-1))
        loss.backward()                                              # ...then learn from it
        with torch.no_grad():
            for p in model.parameters():
                p -= lr * p.grad
                p.grad = None
        state = state.detach()                                       # truncated BPTT, as in training
    return torch.cat(nats).numpy()


def evaluate_only(args, device):
    """--eval-only: the validation loss of a trained checkpoint, static and (--dynamic) dynamic."""
    path = checkpoint_path(args, "rnn")
    ckpt = load_checkpoint(path, MODEL_TYPE)
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    kind = {"char": "char", "bpe": "bpe"}.get(tokenizer.kind, "word")     # how the checkpoint read its text
    _, splits = lm_splits(args.data, kind, tokenizer)
    val_data = splits["val"]
    check_streams(val_data, args.batch_size, "validation")
    config = RNNConfig(**{**ckpt["config"], "backward": args.backward})
    model = load_weights(ElmanRNN(config), ckpt, path).to(device)
    print(f"{path}: step {ckpt['step']}, {len(val_data):,} validation tokens as "
          f"{args.batch_size} streams in chunks of {args.bptt}")
    static = evaluate_lm(model, val_data, device)
    line = f"val loss: static {static:.4f} nats, {bits_per_token(static):.3f} bpc (utils/evaluation.py)"
    if args.dynamic:
        # dynamic evaluation reads B streams from a zero state: set it beside the static loss of the same read
        streams = evaluate_recurrent(model, val_data, args.batch_size, args.bptt, device)
        dynamic = dynamic_evaluate(model, val_data, args.batch_size, args.bptt, args.dynamic_lr, device)
        line += (f" | over the same {args.batch_size} streams: static {streams:.4f}, dynamic {dynamic:.4f} nats, "
                 f"{bits_per_token(dynamic):.3f} bpc (lr {args.dynamic_lr})")
    print(line)


def main(argv=None):
    args = parse_args(argv)
    if args.dynamic and not args.eval_only:
        raise UserError("--dynamic goes with --eval-only (python train.py --eval-only --dynamic)")
    device = start_run(args)
    if args.eval_only:
        return evaluate_only(args, device)
    ddp = Distributed.start(device)                 # one process, or this rank under torchrun
    ddp.check_batch(args.batch_size)
    tokenizer, train_data, val_data = lm_data(args.data, args.tokenizer, args.vocab_counts, args.vocab_size)
    check_streams(train_data, args.batch_size, "training")
    check_streams(val_data, args.batch_size, "validation")
    config = RNNConfig(vocab_size=tokenizer.vocab_size, n_hidden=args.n_hidden,
                       nonlinearity=args.nonlinearity, backward=args.backward)
    print_config(args, config)

    model = ElmanRNN(config).to(device)
    net = compiled(ddp.wrap(model), args.compile)   # torchrun: gradients averaged over ranks; --compile
    if args.optimizer == "adam":
        # DEVIATION: Adam by default; the paper trains with plain SGD from α = 0.1 (§2)
        optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    else:
        optimizer = torch.optim.SGD(model.parameters(), lr=args.lr)
    save = RunSaver(checkpoint_path(args, "rnn"), MODEL_TYPE, model, optimizer, config, args, tokenizer,
                    ignore=("backward",))
    start, lr = 0, args.lr
    if args.resume:
        start = save.resume()
        lr = optimizer.param_groups[0]["lr"]                 # where the mikolov schedule had got to
    # the mikolov schedule only ever halves --lr, and only once it has started halving: resume from that
    schedule = MikolovSchedule(lr, save.best_val_loss, halving=lr < args.lr)
    print(f"parameters: {count_parameters(model):,}")
    per_pass = steps_per_pass(train_data, args.batch_size, args.bptt)
    print(f"one pass over the training text (an epoch): {per_pass:,} steps")
    if args.eval_per_pass:
        args.eval_every, args.eval_every_minutes = per_pass, None     # validate after every epoch

    def validate(final=False):
        """utils/evaluation.py's protocol: the state carried through the whole split"""
        return validation_loss(model, val_data, device, args, final=final)

    budget = Budget.from_args(args, start)
    log = TrainLog(save.path.with_name("log.csv"), start, args.epochs, resume=args.resume, budget=budget,
                   enabled=ddp.main)
    chunks = train_chunks(train_data, args.batch_size, args.bptt, start)
    # s(0): zeros, made by the model; or where the resumed run was (this rank's streams of it)
    state = ddp.state_rows(save.carry)
    step, val_loss, finished = start, None, False
    with StopOnCtrlC() as stop:
        while not ddp.agree(budget.done(step) or stop.requested or finished):
            # set the learning rate (the mikolov schedule changes it only after a validation, below)
            if args.schedule != "mikolov":
                lr = scheduled_lr(args.schedule, step, budget.total(step), args.lr)
            set_lr(optimizer, lr)
            # the next chunk: T more steps of each of the B streams, continuing the previous chunk
            x, y, first_of_a_pass = next(chunks)
            if first_of_a_pass:
                state = None                                 # the streams wrapped around: start afresh
            x, y = ddp.rows(x).to(device), ddp.rows(y).to(device)    # (B, T), (B, T): this rank's streams
            # forward from the state the previous chunk left, then cut the graph at the border
            with autocast(args, device):                     # --dtype bfloat16: the matmuls in bfloat16
                _, loss, state = net(x, state, y)
            state = state.detach()  # truncated BPTT: s(T) goes on, its gradient stops here
            save.carry = state                               # what a checkpoint of this step resumes from
            # backward through this chunk's T steps only, clip, step
            loss.backward()
            grad_norm = clip_gradients(model.parameters(), args.clip, args.clip_mode)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # evaluate on the whole validation split every N steps and at the end; save
            val_loss = None
            with budget.paused(), stop.allowed():
                due = ddp.agree(budget.eval_due(step))          # (under torchrun, one decision for all)
                if due:
                    save.carry = ddp.gather_state(state)     # every rank's streams, for the checkpoint
                if due and ddp.main:
                    val_loss = validate()
                    # sigma_max(W): against 1/gamma (Pascanu et al. 2013), see experiments/gradients.py
                    sigma = torch.linalg.matrix_norm(model.W.detach(), 2).item()
                    log.print(f"step {step} | loss {loss.item():.4f} | val {val_loss:.4f} | "
                              f"bpc {bits_per_token(val_loss):.3f} | lr {lr:.1e} | sigma_max(W) {sigma:.3f}")
                    if args.schedule == "mikolov":
                        finished = schedule.update(val_loss)     # halve α after a stall; a second: stop
                        lr = schedule.lr
                        set_lr(optimizer, lr)                    # (so that the checkpoint keeps it)
                        if finished:
                            log.print(f"step {step}: no significant improvement again (mikolov schedule, §2): "
                                      f"training is finished")
                    save(step, val_loss)
                if args.sample_every and step % args.sample_every == 0 and ddp.main:
                    log.sample(lambda: sample_text(model, tokenizer, generate_recurrent))
                if ddp.world > 1 and args.schedule == "mikolov":
                    lr = ddp.share(lr)                           # rank 0's schedule, on every rank
                    set_lr(optimizer, lr)
            log.step(step, loss.item(), lr, grad_norm, tokens=y.numel() * ddp.world, val_loss=val_loss)
    save.carry = ddp.gather_state(state)
    # Ctrl-C: saved first; then, as at the end of every run, the protocol's val, a sample, the summary
    end_of_run(ddp, stop, log, save, step, val_loss, validate, lambda: sample_text(model, tokenizer, generate_recurrent),
               fast_val=args.fast_val, unit=tokenizer.unit, chars=characters(tokenizer, val_data[1:]))


if __name__ == "__main__":
    run_main(main)
