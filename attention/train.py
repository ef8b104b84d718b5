"""Train RNNsearch (Bahdanau, Cho & Bengio 2015) to translate: Multi30k German -> English by default.

    cd attention && python train.py                                   # the defaults below
    cd attention && python train.py --src en --tgt fr --beam 10       # another direction, a wider beam
    cd attention && python train.py --eval-only                       # the test report of the checkpoint

The loop is utils/translation_training.py's (shared by the translators); what the paper specifies
is here: the loss with its teacher forcing (§3.1), and the gradient clipping of §B.2.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from attention.model import AttentionConfig, RNNsearch
from gru.model import BACKWARDS, VARIANTS
from utils.errors import run_main
from utils.training import ArgumentParser, add_common_args, parse_run_args, positive_int, probability, start_run
from utils.translation import TranslationData, add_translation_args, sequence_loss
from utils.translation_training import evaluate_checkpoint, train_translator

MODEL_TYPE = "attention"


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    # DEVIATION: Adam and a cosine schedule; the paper trains with Adadelta (ε = 1e-6, ρ = 0.95) on
    # minibatches of 80 sentences (§B.2)
    add_common_args(parser, epochs=2500, lr=2e-3, batch_size=128, eval_every=500, folder=MODEL_TYPE,
                    schedule="cosine")
    add_translation_args(parser)
    # §B.2: "We explicitly normalized the L2-norm of the gradient of the cost function each time to be
    # at most a predefined threshold of 1"
    parser.set_defaults(clip=1.0)
    next(a for a in parser._actions if a.dest == "clip").help = \
        "clip gradients to this global norm (default: 1.0, §B.2)"
    d = AttentionConfig()
    m = parser.add_argument_group("model (Bahdanau et al. 2015, §A.2; sizes smaller than the paper's)")
    m.add_argument("--n-embd", type=positive_int, default=d.n_embd,
                   help=f"m, word embedding size, both languages (default: {d.n_embd}; paper: 620)")
    m.add_argument("--n-hidden", type=positive_int, default=d.n_hidden,
                   help=f"n, GRU units per encoder direction and in the decoder (default: {d.n_hidden}; "
                        f"paper: 1000)")
    m.add_argument("--n-align", type=positive_int, default=d.n_align,
                   help=f"n', hidden units of the alignment model (default: {d.n_align}; paper: 1000)")
    m.add_argument("--n-maxout", type=positive_int, default=d.n_maxout,
                   help=f"l, maxout units of the deep output (default: {d.n_maxout}; paper: 500)")
    m.add_argument("--dropout", type=probability, default=d.dropout,
                   help=f"dropout on the word embeddings and the maxout output (default: {d.dropout}; "
                        f"the paper has none)")
    m.add_argument("--variant", choices=VARIANTS, default=d.variant,
                   help="the GRU of gru/model.py: cho, the paper's unit; cudnn, torch.nn.GRU's, the reset "
                        f"applied after U h (default: {d.variant})")
    m.add_argument("--backward", choices=BACKWARDS, default=d.backward,
                   help="the encoder's BPTT written out (gru/model.py GRUBPTT) or left to autograd; same "
                        f"numbers (default: {d.backward})")
    return parse_run_args(parser, argv, MODEL_TYPE)


def loss_fn(model, batch):
    """-log p(y | x) per target token (Eq. 4), the decoder reading the reference (teacher forcing):
    it is fed <bos> y_1 .. y_n and scored on y_1 .. y_n <eos>."""
    logits = model(batch.src, batch.src_len, batch.tgt_in)                  # (B, T, |V_y|)
    return sequence_loss(logits, batch.tgt_out)                             # mean nats, padding ignored


def build(config):
    return RNNsearch(AttentionConfig(**config))


def main(argv=None):
    args = parse_args(argv)
    if args.eval_only:
        evaluate_checkpoint(args, MODEL_TYPE, build)
        return
    start_run(args)
    data = TranslationData.from_args(args)
    config = AttentionConfig(src_vocab=data.src_tokenizer.vocab_size, tgt_vocab=data.tgt_tokenizer.vocab_size,
                             n_embd=args.n_embd, n_hidden=args.n_hidden, n_align=args.n_align,
                             n_maxout=args.n_maxout, dropout=args.dropout, variant=args.variant,
                             backward=args.backward)
    train_translator(args, model=RNNsearch(config), data=data, model_type=MODEL_TYPE, config=config,
                     loss_fn=loss_fn)


if __name__ == "__main__":
    run_main(main)
