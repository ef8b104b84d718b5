"""Train a Transformer (Vaswani et al. 2017): a character language model, or the translator (--task translate).

The language model is decoder-only; the translator is the paper's encoder-decoder, German to
English on Multi30k by default.

    cd transformer && python train.py                 # Tiny Shakespeare: 4 layers, 4 heads, width 128, block 64
    cd transformer && python train.py --norm post --pos sinusoidal --dropout 0.1 --label-smoothing 0.1 \\
        --schedule noam --warmup 400 --lr 4.42e-3 --beta2 0.98 --weight-decay 0   # the paper's choices
    cd transformer && python train.py --task translate                # Multi30k de->en, BLEU at the end
    cd transformer && python train.py --task translate --eval-only    # the test report of the checkpoint
    cd transformer && python train.py --task translate --help         # the flags of the translation task

--lr is the peak learning rate under every schedule: with --schedule noam, the rate that Eq. 3's
warm-up reaches at step --warmup before it decays as 1/sqrt(step); the paper's own is
d_model^-0.5 warmup^-0.5 (7.0e-4 for its 512 and 4000). The translation loop is
utils/translation_training.py's (shared by the translators); what the paper specifies is here: the
loss with its label smoothing and teacher forcing (§5.4), Adam with beta_2 0.98 and the warm-up
schedule (§5.3).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import argparse

import torch
import torch.nn.functional as F

from transformer.generate import generate
from transformer.model import TransformerConfig, TransformerLM, TransformerTranslator, TranslatorConfig
from utils.batching import random_blocks
from utils.checkpoint import RunSaver, checkpoint_path
from utils.data import lm_data
from utils.distributed import Distributed
from utils.errors import UserError, run_main
from utils.evaluation import validation_loss
from utils.interrupt import StopOnCtrlC
from utils.metrics import bits_per_token
from utils.sampling import sample_text
from utils.training import (ArgumentParser, Budget, TrainLog, add_common_args, add_lm_args, autocast,
                            clip_gradients, compiled, count_parameters, end_of_run, parse_run_args, parse_task,
                            positive_int, print_config, probability, scheduled_lr, set_lr, start_run)
from utils.tokenizers import PAD, characters
from utils.translation import TranslationData, add_translation_args
from utils.translation_training import evaluate_checkpoint, train_translator

MODEL_TYPE = "transformer"
TRANSLATE_TYPE = "transformer_mt"    # its checkpoint: checkpoints/transformer_mt/model.pt
TASKS = ("lm", "translate")
SCHEDULES = ("constant", "cosine", "noam")
# per task: the flags' defaults. lr: the peak learning rate, under every schedule
DEFAULTS = {
    "lm": dict(epochs=2000, lr=1e-3, batch_size=12, eval_every=500, schedule="cosine",
               warmup=100, label_smoothing=0.0, beta2=0.99, weight_decay=0.1),
    # the paper's training (§5.3, §5.4): Adam with beta_2 0.98, no weight decay, label smoothing 0.1,
    # the noam schedule. DEVIATION: batches of 64 sentences (~900 target tokens; the paper's held
    # ~25,000) and a shorter warm-up (the paper: 4000 of 100,000 steps) at half Eq. 3's rate: its
    # peak at d_model 256 and step 800, 0.5 (256 * 800)^-0.5 = 1.105e-3, the rate of the measured
    # run. 4500 steps (~10 passes over Multi30k): transformer/README.md has that run
    "translate": dict(epochs=4500, lr=0.5 * (256 * 800) ** -0.5, batch_size=64, eval_every=500, schedule="noam",
                      warmup=800, label_smoothing=0.1, beta2=0.98, weight_decay=0.0),
}


def parse_args(argv=None):
    task = parse_task(argv, TASKS)
    D = DEFAULTS[task]
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default="lm",
                        help="lm: a character language model; translate: the encoder-decoder of §3.1 on "
                             "Multi30k (--task translate --help lists its flags) (default: lm)")
    add_common_args(parser, epochs=D["epochs"], lr=D["lr"], batch_size=D["batch_size"], eval_every=D["eval_every"],
                    folder=MODEL_TYPE if task == "lm" else TRANSLATE_TYPE, schedule=D["schedule"],
                    schedules=SCHEDULES)
    if task == "translate":
        add_translation_args(parser)
    else:
        add_lm_args(parser)
    next(a for a in parser._actions if a.dest == "lr").help = (
        f"the peak learning rate, under every schedule; with --schedule noam the rate Eq. 3 reaches at "
        f"step --warmup (the paper's: d_model^-0.5 warmup^-0.5) (default: {D['lr']:.4g})")
    d = TransformerConfig() if task == "lm" else TranslatorConfig()
    m = parser.add_argument_group("model (Vaswani et al. 2017, §3)")
    m.add_argument("--layers", type=positive_int, default=d.n_layers,
                   help=f"N, layers in the stack, §3.1 (default: {d.n_layers}; the paper: 6)")
    m.add_argument("--heads", type=positive_int, default=d.n_heads,
                   help=f"h, attention heads, §3.2.2 (default: {d.n_heads}; the paper: 8)")
    m.add_argument("--d-model", type=positive_int, default=d.d_model,
                   help=f"d_model, the width of every layer (default: {d.d_model}; the paper: 512)")
    if task == "lm":
        m.add_argument("--d-ff", type=positive_int, default=None,
                       help="d_ff, the feed-forward network's inner width, §3.3 (default: 4 d_model, the "
                            "paper's ratio)")
        m.add_argument("--block-size", type=positive_int, default=d.block_size,
                       help="the longest context, in characters: training blocks and generation "
                            f"(default: {d.block_size})")
    else:
        m.add_argument("--d-ff", type=positive_int, default=d.d_ff,
                       help=f"d_ff, the feed-forward network's inner width, §3.3 (default: {d.d_ff}; the paper: "
                            "4 d_model)")
    m.add_argument("--dropout", type=probability, default=d.dropout,
                   help=f"P_drop on every sub-layer's output and on the embeddings, §5.4 (default: {d.dropout}; "
                        "the paper: 0.1)")
    m.add_argument("--norm", choices=["post", "pre"], default=d.norm,
                   help="post: LayerNorm(x + Sublayer(x)), the paper's §3.1; pre: x + Sublayer(LayerNorm(x)) "
                        f"(default: {d.norm})")
    m.add_argument("--pos", choices=["sinusoidal", "learned", "rope"], default=d.pos,
                   help="positions: the paper's sinusoids (§3.5), a learned table (§3.5, Table 3 E), or rotary "
                        f"embeddings of the queries and keys (Su et al. 2021) (default: {d.pos})")
    m.add_argument("--tie", action=argparse.BooleanOptionalAction, default=d.tie,
                   help="share the " + ("" if task == "lm" else "target ") + "embedding matrix with the "
                        "pre-softmax projection, §3.4 (default: on)")
    t = parser.add_argument_group("the paper's training (§5.3, §5.4)")
    t.add_argument("--warmup", type=int, default=D["warmup"],
                   help="warm-up steps: linear for constant and cosine; for noam the paper's 4000 (§5.3) "
                        f"(default: {D['warmup']})")
    t.add_argument("--label-smoothing", type=probability, default=D["label_smoothing"],
                   help="epsilon_ls, §5.4; the logged train loss is then the smoothed one "
                        f"(default: {D['label_smoothing']:g}; the paper: 0.1)")
    t.add_argument("--beta2", type=probability, default=D["beta2"],
                   help=f"Adam's beta_2 (default: {D['beta2']:g}; the paper: 0.98, §5.3)")
    t.add_argument("--weight-decay", type=float, default=D["weight_decay"],
                   help="AdamW's decoupled weight decay of the matrices and embeddings "
                        f"(default: {D['weight_decay']:g}; the paper: 0)")
    args = parse_run_args(parser, argv, MODEL_TYPE if task == "lm" else TRANSLATE_TYPE)
    if args.schedule == "noam" and args.warmup < 1:
        parser.error("--schedule noam needs --warmup of at least 1")
    if args.warmup < 0:
        parser.error(f"--warmup must be 0 or more, got {args.warmup}")
    return args


def noam_lr(step, warmup, peak):
    """The paper's schedule (§5.3) at optimizer step `step` (from 1): linear warm-up for `warmup`
    steps, then decay with the inverse square root of the step; scaled so that its peak, at step
    `warmup`, is `peak` (--lr). Eq. 3 is the case peak = d_model^-0.5 warmup^-0.5."""
    # lrate = d_model^-0.5 min(step_num^-0.5, step_num warmup_steps^-1.5)         (Eq. 3)
    #       = peak min(step_num / warmup_steps, (warmup_steps / step_num)^0.5)   with that peak
    return peak * min(step / warmup, (warmup / step) ** 0.5)


def make_optimizer(model, args):
    """Adam(W) with --beta2 and --weight-decay; no decay for the biases and the layer norms' gains.
    With weight decay 0 it is the paper's Adam (beta_1 0.9, §5.3; eps 1e-8, not its 1e-9)."""
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    vectors = [p for p in model.parameters() if p.dim() < 2]
    return torch.optim.AdamW([{"params": matrices, "weight_decay": args.weight_decay},
                              {"params": vectors, "weight_decay": 0.0}], lr=args.lr, betas=(0.9, args.beta2))


def learning_rate(args, step, total=None):
    """The rate of optimizer step `step` (from 0) of `total` (default --epochs): --schedule's, or
    the paper's noam; at most --lr."""
    if args.schedule == "noam":
        return noam_lr(step + 1, args.warmup, args.lr)
    return scheduled_lr(args.schedule, step, total or args.epochs, args.lr, args.warmup)


def train_lm(args):
    """--task lm: next-character prediction on random blocks of the text."""
    device = start_run(args)
    ddp = Distributed.start(device, args.seed)      # one process, or this rank under torchrun
    ddp.check_batch(args.batch_size)
    tokenizer, train_data, val_data = lm_data(args.data, args.tokenizer, args.vocab_counts, args.vocab_size)
    config = TransformerConfig(vocab_size=tokenizer.vocab_size, block_size=args.block_size, n_layers=args.layers,
                               n_heads=args.heads, d_model=args.d_model, d_ff=args.d_ff or 4 * args.d_model,
                               dropout=args.dropout, norm=args.norm, pos=args.pos, tie=args.tie)
    if len(train_data) <= config.block_size or len(val_data) < 2:
        raise UserError(f"corpus too short for blocks of {config.block_size} characters: lower --block-size")
    print_config(args, config)
    try:
        model = TransformerLM(config).to(device)
    except ValueError as e:
        raise UserError(str(e)) from None
    net = compiled(ddp.wrap(model), args.compile)   # torchrun: gradients averaged over ranks; --compile

    # DEVIATION: AdamW with weight decay and beta_2 = 0.99 (the paper: Adam, beta_2 0.98, eps 1e-9, §5.3)
    optimizer = make_optimizer(model, args)
    save = RunSaver(checkpoint_path(args, MODEL_TYPE), MODEL_TYPE, model, optimizer, config, args, tokenizer,
                    ignore=("dropout",))
    start = save.resume() if args.resume else 0
    ddp.resume_rng(save.ranks)                      # under torchrun: each rank's own dropout stream
    print(f"parameters: {count_parameters(model):,}")

    def validate(final=False):
        """utils/evaluation.py's protocol: windows sliding by half a block"""
        return validation_loss(model, val_data, device, args, final=final)

    budget = Budget.from_args(args, start)
    log = TrainLog(save.path.with_name("log.csv"), start, args.epochs, resume=args.resume, budget=budget,
                   enabled=ddp.main)
    step, val_loss = start, None
    with StopOnCtrlC() as stop:
        while not ddp.agree(budget.done(step) or stop.requested):
            # set the learning rate: --schedule's, or the paper's (noam_lr, Eq. 3)
            lr = learning_rate(args, step, budget.total(step))
            set_lr(optimizer, lr)
            # a batch: B random blocks of T characters, and the character after each position
            x, y = random_blocks(train_data, args.batch_size, config.block_size)
            x, y = ddp.rows(x).to(device), ddp.rows(y).to(device)   # (B, T), (B, T): this rank's rows
            # forward; the loss with label smoothing of value epsilon_ls (§5.4), 0: plain cross-entropy
            with ddp.own_rng(), autocast(args, device):             # this rank's dropout; --dtype
                logits, _ = net(x)                                  # (B, T, |V|)
            loss = F.cross_entropy(logits.flatten(0, 1).float(), y.flatten(), label_smoothing=args.label_smoothing)
            # backward, clip, step
            loss.backward()
            grad_norm = clip_gradients(model.parameters(), args.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # evaluate on the whole validation split every N steps and at the end; save
            val_loss = None
            with budget.paused(), stop.allowed():
                due = ddp.agree(budget.eval_due(step))                 # (under torchrun, one decision)
                if due:
                    save.ranks = ddp.gather_rng()                       # every rank's dropout stream
                if due and ddp.main:
                    ms = 1e3 * log.wall / (step - start)                # training and earlier validations
                    val_loss = validate()
                    log.print(f"step {step} | loss {loss.item():.4f} | val {val_loss:.4f} | "
                              f"bpc {bits_per_token(val_loss):.3f} | lr {lr:.1e} | {ms:.1f} ms/step | "
                              f"{log.tokens_per_s / 1e3:.0f}k tok/s")
                    save(step, val_loss)
                if args.sample_every and step % args.sample_every == 0 and ddp.main:
                    log.sample(lambda: sample_text(model, tokenizer, generate))
            log.step(step, loss.item(), lr, grad_norm, tokens=x.numel() * ddp.world, val_loss=val_loss)
    save.ranks = ddp.gather_rng()
    # Ctrl-C: saved first; then, as at the end of every run, the protocol's val, a sample, the summary
    end_of_run(ddp, stop, log, save, step, val_loss, validate, lambda: sample_text(model, tokenizer, generate),
               fast_val=args.fast_val, unit=tokenizer.unit, chars=characters(tokenizer, val_data[1:]))


def translation_loss(model, batch, label_smoothing=0.0):
    """Mean cross-entropy (nats) per target token, padding ignored, with label smoothing of value
    epsilon_ls (§5.4): the target is (1 - epsilon_ls) on the reference word and epsilon_ls spread
    over the whole vocabulary."""
    # teacher forcing: the decoder reads the reference <bos> y_1 .. y_n and is scored on y_1 .. y_n <eos>
    logits = model(batch.src, batch.src_len, batch.tgt_in)                  # (B, T, |V_y|)
    return F.cross_entropy(logits.flatten(0, 1), batch.tgt_out.flatten(), ignore_index=PAD,
                           label_smoothing=label_smoothing)


def build_translator(config):
    return TransformerTranslator(TranslatorConfig(**config))


def train_translate(args):
    """--task translate: the encoder-decoder on sentence pairs; test losses and BLEU at the end."""
    if args.eval_only:
        return evaluate_checkpoint(args, TRANSLATE_TYPE, build_translator)
    start_run(args)
    data = TranslationData.from_args(args)
    # the decoder reads <bos> y_1 .. y_max_len: max_len + 1 positions, the learned table's length
    config = TranslatorConfig(src_vocab=data.src_tokenizer.vocab_size, tgt_vocab=data.tgt_tokenizer.vocab_size,
                              n_layers=args.layers, n_heads=args.heads, d_model=args.d_model, d_ff=args.d_ff,
                              dropout=args.dropout, norm=args.norm, pos=args.pos, tie=args.tie,
                              block_size=args.max_len + 1)
    try:
        model = TransformerTranslator(config)
    except ValueError as e:
        raise UserError(str(e)) from None
    return train_translator(args, model=model, data=data, model_type=TRANSLATE_TYPE, config=config,
                            loss_fn=lambda model, batch: translation_loss(model, batch, args.label_smoothing),
                            optimizer=make_optimizer(model, args),
                            lr_at=lambda step, total: learning_rate(args, step, total))


def main(argv=None):
    args = parse_args(argv)
    if args.task == "translate":
        return train_translate(args)
    train_lm(args)


if __name__ == "__main__":
    run_main(main)
