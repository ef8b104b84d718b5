"""The training loop of the translators (gru/, attention/, transformer/ --task translate), written once.
What a paper specifies, the loss and with it the teacher forcing, stays in its train.py:

    from utils.translation import TranslationData, add_translation_args, sequence_loss
    from utils.translation_training import evaluate_checkpoint, train_translator

    def loss_fn(model, batch):
        # teacher forcing: the decoder reads the reference y_{<i}
        logits = model(batch.src, batch.src_len, batch.tgt_in)              # (B, T, |V|)
        return sequence_loss(logits, batch.tgt_out)                         # mean nats per target token

    # parser: utils.training.add_common_args(...) then utils.translation.add_translation_args(parser)
    if args.eval_only:
        return evaluate_checkpoint(args, "mytype", lambda config: MyModel(MyConfig(**config)))
    set_seed(args.seed)
    data = TranslationData.from_args(args)
    config = MyConfig(src_vocab=data.src_tokenizer.vocab_size, tgt_vocab=data.tgt_tokenizer.vocab_size)
    train_translator(args, model=MyModel(config), data=data, model_type="mytype", config=config,
                     loss_fn=loss_fn)

train_translator(args, *, model, data, model_type, config, loss_fn, optimizer=None, lr_at=None)
    model: a translator (the interface in utils/translation.py), not yet on a device; config: its
    @dataclass config (saved, and compared on --resume); loss_fn(model, batch) -> scalar loss.
    optimizer: default Adam(lr=--lr); lr_at(step, total) -> lr: default --schedule over total steps
    (utils.training.scheduled_lr), for a paper with its own (a warm-up formula written in its train.py).
    In order: the device, the optimizer, --resume; then --epochs optimizer steps (or --minutes of
    CPU time, total then projected from the pace so far), each: set lr ->
    batch -> loss_fn -> backward -> clip (--clip, global norm) -> step -> zero_grad -> log; every
    --eval-every steps and at the end the teacher-forced validation loss, a sample translation and
    a checkpoint (--checkpoint, default checkpoints/<model_type>/model.pt, with log.csv beside it).
    Ctrl-C stops at the end of the step, saves, and exits with status 130. Last, the test split: losses with and without teacher forcing, BLEU
    greedy and with --beam, BLEU by source length (utils.translation.print_evaluation).
    Returns evaluate_translation's results.

evaluate_checkpoint(args, model_type, build) -> results
    --eval-only: the same test report for the checkpoint at --checkpoint; build(config dict) makes
    the empty model.

Flags read: those of add_common_args (--epochs --lr --batch-size --schedule --clip --seed --device
--dtype --compile --eval-every --sample-every --checkpoint --resume) and of add_translation_args (--minutes
--eval-every-minutes --beam --alpha ...).
"""

import torch

from utils.checkpoint import RunSaver, checkpoint_path, load_checkpoint
from utils.interrupt import INTERRUPTED, StopOnCtrlC
from utils.metrics import perplexity
from utils.translation import (TranslationData, evaluate_translation, greedy_decode, load_translator,
                               model_device, print_evaluation, teacher_forced_loss, training_batches)
from utils.distributed import under_torchrun
from utils.errors import UserError
from utils.training import (Budget, TrainLog, autocast, clip_gradients, compiled, count_parameters, pick_device,
                            print_config, scheduled_lr, set_lr)


def sample_line(model, data, split="val"):
    """The greedy translation of the split's first sentence, beside its reference: learning, seen."""
    srcs, refs = data.text[split]
    if not srcs:
        return ""
    ids, device, was_training = data.pairs[split][0][0], model_device(model), model.training
    model.eval()
    out = greedy_decode(model, torch.tensor([ids], device=device), torch.tensor([len(ids)], device=device),
                        data.max_len)[0]
    model.train(was_training)
    return f"  {data.src_lang}: {srcs[0]}\n  ref: {refs[0]}\n  out: {data.tgt_tokenizer.decode(out)}"


def report_test(model, data, args, print=print):
    """The end of a run: evaluate_translation on the test split, printed; returns its results."""
    results = evaluate_translation(model, data, "test", beam=args.beam, alpha=args.alpha)
    print_evaluation(results, print)
    return results


def summary(val_loss, results, parameters, tokens_per_s, wall_s):
    beam = f" | BLEU {results['decoding']} {results['bleu_beam']:.2f}" if "bleu_beam" in results else ""
    return (f"summary: val loss {val_loss:.4f} nats | val ppl {perplexity(val_loss):.2f} | "
            f"test BLEU greedy {results['bleu_greedy']:.2f}{beam} | params {parameters:,} | "
            f"{tokens_per_s / 1e3:.1f}k target tok/s | wall {wall_s:.0f}s")


def train_translator(args, *, model, data, model_type, config, loss_fn, optimizer=None, lr_at=None):
    """Train a translator and report on the test split; see the module docstring."""
    if under_torchrun():
        raise UserError("the translators are not supported under torchrun: their batches of sentences bucketed "
                        "by length (the last of a pass smaller) are not cut into equal shards; train in one process")
    device = pick_device(args.device)
    model.to(device)
    net = compiled(model, args.compile)
    print_config(args, config)
    optimizer = optimizer or torch.optim.Adam(model.parameters(), lr=args.lr)
    lr_at = lr_at or (lambda step, total: scheduled_lr(args.schedule, step, total, args.lr))
    save = RunSaver(checkpoint_path(args, model_type), model_type, model, optimizer, config, args, data,
                    ignore=("backward",))
    start = save.resume() if args.resume else 0
    print(f"parameters: {count_parameters(model):,}")
    val_batches = data.eval_batches("val")

    budget = Budget.from_args(args, start)          # --epochs steps, or --minutes of CPU time
    log = TrainLog(save.path.with_name("log.csv"), start, args.epochs, resume=args.resume, budget=budget)
    # step k reads the k-th batch of a fixed shuffled order, so a resumed run reads what it would have
    batches = training_batches(data.pairs["train"], args.batch_size, args.seed, start)
    step, val_loss = start, float("inf")
    model.train()
    with StopOnCtrlC() as stop:
        while not budget.done(step) and not stop.requested:
            # set the learning rate (with --minutes, over the steps the budget is projected to allow)
            lr = lr_at(step, budget.total(step))
            set_lr(optimizer, lr)
            # a batch of sentence pairs of similar lengths, and the paper's loss on it
            batch = next(batches).to(device)
            with autocast(args, device):                    # --dtype bfloat16: the matmuls in bfloat16
                loss = loss_fn(net, batch)
            # backward, clip the global norm (--clip), step
            loss.backward()
            grad_norm = clip_gradients(model.parameters(), args.clip)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            # every N steps and at the end: the validation loss (teacher-forced), a sample, a checkpoint
            val = None
            with budget.paused(), stop.allowed():
                if budget.eval_due(step):
                    val_loss = val = teacher_forced_loss(model, val_batches)
                    log.print(f"step {step} | loss {loss.item():.4f} | val {val:.4f} | "
                              f"ppl {perplexity(val):.2f} | lr {lr:.1e}")
                    log.print(sample_line(model, data))
                    save(step, val)
                elif args.sample_every and step % args.sample_every == 0:
                    log.print(sample_line(model, data))
            log.step(step, loss.item(), lr, grad_norm, tokens=batch.n_tokens, val_loss=val)
    if stop.requested:
        # Ctrl-C: save first; the test report takes minutes, --eval-only gives it later
        log.print(f"interrupted at step {step}: saving {save.path}")
        save(step)
        log.close()
        print(f"checkpoint: {save.path} (evaluate it on the test split with --eval-only; "
              f"continue the run with --resume)")
        raise SystemExit(INTERRUPTED)
    log.close()
    results = report_test(model, data, args)
    print(summary(val_loss, results, count_parameters(model), log.tokens_per_s, log.wall))
    print(f"checkpoint: {save.path}")
    return results


def evaluate_checkpoint(args, model_type, build):
    """--eval-only: the test report of the checkpoint at --checkpoint (default checkpoints/<model_type>/
    model.pt), with the vocabularies saved in it; build(config dict) makes the empty model."""
    path = checkpoint_path(args, model_type)
    model, saved = load_translator(path, model_type, build)
    data = TranslationData.from_args(args, tokenizers=saved.to_dict())
    model.to(pick_device(args.device))
    print(f"evaluating {path} (step {load_checkpoint(path, model_type)['step']})")
    return report_test(model, data, args)
