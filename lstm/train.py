"""Train the LSTM language model of Graves 2013 on characters, with truncated BPTT.

    cd lstm && python train.py                                       # Tiny Shakespeare, the defaults below
    cd lstm && python train.py --layers 2 --no-skip                  # a plain stack (no skip connections)
    cd lstm && python train.py --no-peepholes --clip-lstm-grads none # the LSTM of torch.nn.LSTM
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse

import torch

from lstm.model import LSTM, LSTMConfig
from utils.batching import check_streams, train_chunks
from utils.checkpoint import RunSaver, checkpoint_path
from utils.data import lm_data
from utils.distributed import Distributed
from utils.errors import run_main
from utils.evaluation import validation_loss
from utils.interrupt import StopOnCtrlC
from utils.metrics import bits_per_token
from utils.sampling import generate_recurrent, sample_text
from utils.tokenizers import characters
from utils.training import (ArgumentParser, Budget, TrainLog, add_common_args, add_lm_args, autocast,
                            clip_gradients, compiled, count_parameters, end_of_run, parse_run_args,
                            positive_float, positive_int, print_config, probability, scheduled_lr, set_lr,
                            start_run)

MODEL_TYPE = "lstm"


def bound_or_none(s):
    """--clip-lstm-grads: a positive bound, or none / 0 for no clipping."""
    if s.lower() == "none":
        return None
    try:
        return None if float(s) == 0 else positive_float(s)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a positive number, 0 or none, got {s}") from None


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    add_common_args(parser, epochs=2400, lr=3e-3, batch_size=32, eval_every=500, folder="lstm",
                    schedule="cosine")
    add_lm_args(parser)
    d = LSTMConfig()
    m = parser.add_argument_group("model (Graves 2013, §2 and §2.1)")
    m.add_argument("--n-hidden", type=positive_int, default=d.n_hidden,
                   help=f"H, LSTM cells per layer (default: {d.n_hidden})")
    m.add_argument("--layers", type=positive_int, default=d.n_layers,
                   help=f"N, stacked hidden layers, Fig. 1 (default: {d.n_layers})")
    m.add_argument("--peepholes", action=argparse.BooleanOptionalAction, default=d.peepholes,
                   help="the peephole weights W_ci, W_cf, W_co from the cell to the gates, Eqs. 7, 8, 10 "
                        f"(default: {'on' if d.peepholes else 'off'})")
    m.add_argument("--skip", action=argparse.BooleanOptionalAction, default=d.skip,
                   help="skip connections: the input feeds every layer and every layer the output, "
                        f"Fig. 1 and Eqs. 1-3 (default: {'on' if d.skip else 'off'})")
    m.add_argument("--backward", choices=["manual", "autograd"], default=d.backward,
                   help="BPTT written out (lstm/model.py LSTMBPTT) or left to autograd; same numbers "
                        f"(default: {d.backward})")
    m.add_argument("--dropout", type=probability, default=0.25,
                   help="dropout on each layer's output on its way to the layer above and to the output "
                        "layer, never on the recurrence; not in the paper (default: 0.25)")
    t = parser.add_argument_group("truncated BPTT and clipping (§2.1, §3)")
    t.add_argument("--bptt", type=positive_int, default=100,
                   help="T, steps per chunk: gradients flow back this far and no further; the paper's "
                        "100 (§3.2) (default: 100)")
    t.add_argument("--clip-lstm-grads", type=bound_or_none, default=d.clip_lstm_grads, metavar="V",
                   help="clip the error at the gates' inputs to [-V, V] at every step back (§2.1); the "
                        "paper's text runs used [-1, 1] (§3.1, §3.2); none or 0: off "
                        f"(default: {d.clip_lstm_grads})")
    return parse_run_args(parser, argv, "lstm")


def main(argv=None):
    args = parse_args(argv)
    device = start_run(args)
    ddp = Distributed.start(device, args.seed)      # one process, or this rank under torchrun
    ddp.check_batch(args.batch_size)
    tokenizer, train_data, val_data = lm_data(args.data, args.tokenizer, args.vocab_counts, args.vocab_size)
    check_streams(train_data, args.batch_size, "training")
    check_streams(val_data, args.batch_size, "validation")
    config = LSTMConfig(vocab_size=tokenizer.vocab_size, n_hidden=args.n_hidden, n_layers=args.layers,
                        peepholes=args.peepholes, skip=args.skip, backward=args.backward,
                        clip_lstm_grads=args.clip_lstm_grads, dropout=args.dropout)
    print_config(args, config)

    model = LSTM(config).to(device)
    net = compiled(ddp.wrap(model), args.compile)   # torchrun: gradients averaged over ranks; --compile
    # DEVIATION: Adam and a cosine schedule; the paper trains with SGD and momentum (§3)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    save = RunSaver(checkpoint_path(args, "lstm"), MODEL_TYPE, model, optimizer, config, args, tokenizer,
                    ignore=("backward", "dropout"))
    start = save.resume() if args.resume else 0
    ddp.resume_rng(save.ranks)                      # under torchrun: each rank's own dropout stream
    print(f"parameters: {count_parameters(model):,}")

    def validate(final=False):
        """utils/evaluation.py's protocol: the state carried through the whole split"""
        return validation_loss(model, val_data, device, args, final=final)

    budget = Budget.from_args(args, start)
    log = TrainLog(save.path.with_name("log.csv"), start, args.epochs, resume=args.resume, budget=budget,
                   enabled=ddp.main)
    chunks = train_chunks(train_data, args.batch_size, args.bptt, start)
    # h_0 = c_0 = 0 in every layer (made by the model), or the resumed one (this rank's streams of it)
    state = ddp.state_rows(save.carry)
    step, val_loss = start, None
    with StopOnCtrlC() as stop:
        while not ddp.agree(budget.done(step) or stop.requested):
            # set the learning rate (with --minutes, over the steps the budget is projected to allow)
            lr = scheduled_lr(args.schedule, step, budget.total(step), args.lr)
            set_lr(optimizer, lr)
            # the next chunk: T more steps of each of the B streams, continuing the previous chunk
            x, y, first_of_a_pass = next(chunks)
            if first_of_a_pass:
                state = None                                 # the streams wrapped around: start afresh
            x, y = ddp.rows(x).to(device), ddp.rows(y).to(device)    # (B, T), (B, T): this rank's streams
            # forward from the state the previous chunk left, then cut the graph at the border:
            # every layer's (h_T, c_T) goes on into the next chunk, its gradient stops here
            with ddp.own_rng(), autocast(args, device):      # this rank's dropout; --dtype
                _, loss, state = net(x, state, y)
            state = [(h.detach(), c.detach()) for h, c in state]  # truncated BPTT
            save.carry = state                               # what a checkpoint of this step resumes from
            # backward through this chunk's T steps only (the LSTM derivatives clipped inside,
            # §2.1), clip the global norm (--clip), step
            loss.backward()
            grad_norm = clip_gradients(model.parameters(), args.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # evaluate on the whole validation split every N steps and at the end; save
            val_loss = None
            with budget.paused(), stop.allowed():
                due = ddp.agree(budget.eval_due(step))          # (under torchrun, one decision for all)
                if due:
                    save.carry, save.ranks = ddp.gather_state(state), ddp.gather_rng()   # every rank's
                if due and ddp.main:
                    val_loss = validate()
                    log.print(f"step {step} | loss {loss.item():.4f} | val {val_loss:.4f} | "
                              f"bpc {bits_per_token(val_loss):.3f} | lr {lr:.1e}")
                    save(step, val_loss)
                if args.sample_every and step % args.sample_every == 0 and ddp.main:
                    log.sample(lambda: sample_text(model, tokenizer, generate_recurrent))
            log.step(step, loss.item(), lr, grad_norm, tokens=y.numel() * ddp.world, val_loss=val_loss)
    save.carry, save.ranks = ddp.gather_state(state), ddp.gather_rng()
    # Ctrl-C: saved first; then, as at the end of every run, the protocol's val, a sample, the summary
    end_of_run(ddp, stop, log, save, step, val_loss, validate, lambda: sample_text(model, tokenizer, generate_recurrent),
               fast_val=args.fast_val, unit=tokenizer.unit, chars=characters(tokenizer, val_data[1:]))


if __name__ == "__main__":
    run_main(main)
