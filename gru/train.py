"""Train a GRU (Cho et al. 2014) character language model, or the paper's RNN Encoder-Decoder.

--task lm: next-character prediction with truncated BPTT; --task translate: the Encoder-Decoder
of §2.2 and the paper's appendix on Multi30k, German to English, with losses and BLEU on the test split.

    cd gru && python train.py                                        # Tiny Shakespeare, the defaults below
    cd gru && python train.py --layers 2 --clip 1.0                  # a stack of two GRU layers
    cd gru && python train.py --variant cudnn                        # torch.nn.GRU's form of the unit
    cd gru && python train.py --task translate                       # Multi30k de->en, BLEU at the end
    cd gru && python train.py --task translate --maxout              # the maxout deep output of the appendix's decoder
    cd gru && python train.py --task translate --eval-only           # the test report of the checkpoint
    cd gru && python train.py --task translate --help                # the flags of the translation task
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from gru.model import BACKWARDS, VARIANTS, GRUConfig, GRUEncoderDecoder, GRULanguageModel, Seq2SeqConfig
from utils.batching import check_streams, train_chunks
from utils.checkpoint import RunSaver, checkpoint_path
from utils.data import lm_data
from utils.distributed import Distributed
from utils.errors import UserError, run_main
from utils.evaluation import validation_loss
from utils.interrupt import StopOnCtrlC
from utils.metrics import bits_per_token
from utils.sampling import generate_recurrent, sample_text
from utils.tokenizers import characters
from utils.training import (ArgumentParser, Budget, TrainLog, add_common_args, add_lm_args, autocast,
                            clip_gradients, compiled, count_parameters, end_of_run, parse_run_args, parse_task,
                            positive_int, print_config, scheduled_lr, set_lr, start_run)
from utils.translation import TranslationData, add_translation_args, sequence_loss
from utils.translation_training import evaluate_checkpoint, train_translator

MODEL_TYPE = "gru"
TRANSLATE_TYPE = "gru_seq2seq"                   # its checkpoint: checkpoints/gru_seq2seq/model.pt
TASKS = ("lm", "translate")
TRANSLATE_EPOCHS = 4000          # ~9 passes over Multi30k's 29k pairs (gru/README.md has the measured run)
DEFAULTS = {"lm": dict(epochs=2000, lr=3e-3, batch_size=32, eval_every=500, folder="gru", schedule="cosine"),
            "translate": dict(epochs=TRANSLATE_EPOCHS, lr=1e-3, batch_size=64, eval_every=1000,
                              folder=TRANSLATE_TYPE, schedule="cosine")}


def parse_args(argv=None):
    task = parse_task(argv, TASKS)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default="lm",
                        help="lm: a character language model; translate: the RNN Encoder-Decoder of "
                             "§2.2 (--task translate --help lists its flags) (default: lm)")
    add_common_args(parser, **DEFAULTS[task])
    if task == "translate":
        add_translation_args(parser)
        add_seq2seq_args(parser)
        return parse_run_args(parser, argv, TRANSLATE_TYPE)
    add_lm_args(parser)
    d = GRUConfig()
    m = parser.add_argument_group("model (Cho et al. 2014, §2.3)")
    m.add_argument("--n-hidden", type=positive_int, default=d.n_hidden,
                   help=f"H, GRU units per layer (default: {d.n_hidden})")
    m.add_argument("--layers", type=positive_int, default=d.n_layers,
                   help=f"N, stacked GRU layers (default: {d.n_layers})")
    m.add_argument("--variant", choices=VARIANTS, default=d.variant,
                   help="cho: the unit of Eqs. 5-8, the reset gate applied to h_{t-1} before U; cudnn: "
                        f"torch.nn.GRU's, the reset applied after U h_{{t-1}} (default: {d.variant})")
    m.add_argument("--backward", choices=BACKWARDS, default=d.backward,
                   help="BPTT written out (gru/model.py GRUBPTT) or left to autograd; same numbers "
                        f"(default: {d.backward})")
    t = parser.add_argument_group("truncated BPTT")
    t.add_argument("--bptt", type=positive_int, default=100,
                   help="T, steps per chunk: gradients flow back this far and no further (default: 100)")
    return parse_run_args(parser, argv, "gru")


def add_seq2seq_args(parser):
    d = Seq2SeqConfig()
    m = parser.add_argument_group("model (Cho et al. 2014, §2.2 and the appendix)")
    m.add_argument("--n-embd", type=positive_int, default=d.n_embd,
                   help=f"E, word embedding size of both languages (paper: 100) (default: {d.n_embd})")
    m.add_argument("--n-hidden", type=positive_int, default=d.n_hidden,
                   help=f"H, GRU units of the encoder and of the decoder (paper: 1000) (default: {d.n_hidden})")
    m.add_argument("--maxout", action="store_true",
                   help="the appendix's deep output: s' of H units, a maxout over pairs (H/2 units), then "
                        "the softmax layer; without it s' is the logits (default: off)")
    m.add_argument("--variant", choices=VARIANTS, default=d.variant,
                   help="the encoder's unit: cho (Eqs. 5-8) or cudnn; the decoder's is the appendix's, "
                        f"the reset scaling U' h' + C c (default: {d.variant})")
    m.add_argument("--dropout", type=float, default=d.dropout,
                   help=f"dropout on the word embeddings and the softmax layer's input (default: {d.dropout})")
    m.add_argument("--backward", choices=BACKWARDS, default=d.backward,
                   help=f"BPTT written out or left to autograd; same numbers (default: {d.backward})")


def train_lm(args):
    """--task lm: next-character prediction on B streams of the text, state carried across chunks."""
    device = start_run(args)
    ddp = Distributed.start(device, args.seed)      # one process, or this rank under torchrun
    ddp.check_batch(args.batch_size)
    tokenizer, train_data, val_data = lm_data(args.data, args.tokenizer, args.vocab_counts, args.vocab_size)
    check_streams(train_data, args.batch_size, "training")
    check_streams(val_data, args.batch_size, "validation")
    config = GRUConfig(vocab_size=tokenizer.vocab_size, n_hidden=args.n_hidden, n_layers=args.layers,
                       variant=args.variant, backward=args.backward)
    print_config(args, config)

    model = GRULanguageModel(config).to(device)
    net = compiled(ddp.wrap(model), args.compile)   # torchrun: gradients averaged over ranks; --compile
    # DEVIATION: Adam and a cosine schedule; the paper trains with Adadelta (its setup; section unverified)
    optimizer = torch.optim.Adam(model.parameters(), lr=args.lr)
    save = RunSaver(checkpoint_path(args, "gru"), MODEL_TYPE, model, optimizer, config, args, tokenizer,
                    ignore=("backward",))
    start = save.resume() if args.resume else 0
    ddp.resume_rng(save.ranks)                      # under torchrun: each rank's own random numbers
    print(f"parameters: {count_parameters(model):,}")

    def validate(final=False):
        """utils/evaluation.py's protocol: the state carried through the whole split"""
        return validation_loss(model, val_data, device, args, final=final)

    budget = Budget.from_args(args, start)
    log = TrainLog(save.path.with_name("log.csv"), start, args.epochs, resume=args.resume, budget=budget,
                   enabled=ddp.main)
    chunks = train_chunks(train_data, args.batch_size, args.bptt, start)
    # h_0 = 0 in every layer (made by the model), or the resumed one (this rank's streams of it)
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
            # every layer's h_T goes on into the next chunk, its gradient stops here
            with ddp.own_rng(), autocast(args, device):      # this rank's random numbers; --dtype
                _, loss, state = net(x, state, y)
            state = [h.detach() for h in state]              # truncated BPTT
            save.carry = state                               # what a checkpoint of this step resumes from
            # backward through this chunk's T steps only, clip the global norm (--clip), step
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


def loss_fn(model, batch):
    """Mean cross-entropy (nats) per target token, the objective of §2.2 (the mean log p(y | x))."""
    # teacher forcing: the decoder reads the reference y_{<t}, <bos> first, and is scored on y_t
    logits = model(batch.src, batch.src_len, batch.tgt_in)                  # (B, T, |V_y|)
    return sequence_loss(logits, batch.tgt_out)


def build_seq2seq(config):
    return GRUEncoderDecoder(Seq2SeqConfig(**config))


def train_translate(args):
    """--task translate: the RNN Encoder-Decoder on sentence pairs; test losses and BLEU at the end."""
    if not 0 <= args.dropout < 1:
        raise UserError(f"--dropout must be in [0, 1), got {args.dropout}")
    if args.eval_only:
        return evaluate_checkpoint(args, TRANSLATE_TYPE, build_seq2seq)
    start_run(args)
    data = TranslationData.from_args(args)
    config = Seq2SeqConfig(src_vocab=data.src_tokenizer.vocab_size, tgt_vocab=data.tgt_tokenizer.vocab_size,
                           n_embd=args.n_embd, n_hidden=args.n_hidden,
                           maxout=args.n_hidden // 2 if args.maxout else 0, variant=args.variant,
                           dropout=args.dropout, backward=args.backward)
    # DEVIATION: Adam (--lr) and a cosine schedule; the paper trains with Adadelta (its setup; section unverified)
    return train_translator(args, model=GRUEncoderDecoder(config), data=data, model_type=TRANSLATE_TYPE,
                            config=config, loss_fn=loss_fn)


def main(argv=None):
    args = parse_args(argv)
    if args.task == "translate":
        return train_translate(args)
    train_lm(args)


if __name__ == "__main__":
    run_main(main)
