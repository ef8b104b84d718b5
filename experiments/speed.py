"""Training speed of our models against the same networks built from torch.nn, side by side in one run.

Tokens per second of one training step (forward, backward, Adam step) at equal sizes, for each row
of ROWS: our model and its torch.nn reference (experiments/speed_references.py) are timed
alternately, repeat after repeat, so that a noisy machine slows both alike; the medians and their
ratio are printed. The script first measures this machine's matmul peak (a large fp32 matmul on
the same threads) and prints, for each model, the achieved GFLOP/s and that fraction of the peak.
FLOPs per step count the model's matmuls: 6 x (weights used per token) x tokens, plus the
attention scores and their mixing, 12 x layers x B x T^2 x d (forward 1, backward 2 multiply-adds
per product); a one-hot input read as a row lookup counts nothing (our models read it so; the
torch.nn recurrent references multiply a one-hot matrix, work that is not counted). The translator
rows (family "seq2seq": random source and target ids at fixed lengths, every sentence at full
length; the loss the cross-entropy of model(src, src_len, tgt_in) against tgt_out; tokens are
target tokens) are counted by torch.utils.flop_counter.FlopCounterMode on one step of our model,
as utils/peak.py does, not by a formula; the references' own extra work (the ones their
docstrings name) is not counted.

    python experiments/speed.py                        # all rows at the default sizes
    python experiments/speed.py --threads 1 --clock cpu   # one core of a shared machine
    python experiments/speed.py --rows transformer     # layers 4, heads 4, width 128, block 64, batch 12
    python experiments/speed.py --rows lstm gru --hidden 256
    python experiments/speed.py --rows rnn --repeats 3 --steps 5 --hidden 128
    python experiments/speed.py --rows translator      # RNNsearch, Cho's GRU encoder-decoder, the Transformer
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import functools
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch.utils.flop_counter import FlopCounterMode
from tqdm import tqdm

from experiments.speed_references import TorchTransformerLM, torch_gru, torch_lstm, torch_rnn
from experiments.speed_translator_references import (TorchGRUEncoderDecoder, TorchRNNsearch,
                                                       TorchTransformerTranslator)
from attention.model import AttentionConfig, RNNsearch
from gru.model import GRUConfig, GRUEncoderDecoder, GRULanguageModel, Seq2SeqConfig
from lstm.model import LSTM, LSTMConfig
from rnn.model import ElmanRNN, RNNConfig
from transformer.model import TransformerConfig, TransformerLM, TransformerTranslator, TranslatorConfig
from utils.errors import run_main
from utils.peak import matmul_peak
from utils.training import ArgumentParser, positive_int


CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


@dataclass(frozen=True)
class Row:
    name: str
    ours: object          # (args) -> module
    reference: object     # (args) -> module; a reference shared by several rows is timed once
    family: str           # "recurrent": forward(x, None, y); "window": forward(x, y);
                          # "seq2seq": forward(src, src_len, tgt_in) -> logits
    gates: int = 0        # recurrent rows: (H, H) blocks of the recurrent matrix (FLOP count)


@functools.cache
def recurrent(make):
    """(V, H) -> module, as a function of the arguments; one function per `make`, so that a
    reference shared by several rows is one model, timed once."""
    return lambda a: make(a.vocab, a.hidden)


def transformer_config(a, backward="manual"):
    return TransformerConfig(vocab_size=a.vocab, block_size=a.block, n_layers=a.layers, n_heads=a.heads,
                             d_model=a.width, d_ff=4 * a.width, backward=backward)


def torch_transformer(a):
    c = transformer_config(a)
    return TorchTransformerLM(c.vocab_size, c.block_size, c.n_layers, c.n_heads, c.d_model, c.d_ff)


# ---- the translators at their default sizes (AttentionConfig, Seq2SeqConfig, TranslatorConfig), the
# vocabularies --src-vocab, --tgt-vocab; each reference built from the same config as ours

def rnnsearch_config(a):
    return AttentionConfig(src_vocab=a.src_vocab, tgt_vocab=a.tgt_vocab)


def torch_rnnsearch(a):
    c = rnnsearch_config(a)
    return TorchRNNsearch(c.src_vocab, c.tgt_vocab, c.n_embd, c.n_hidden, c.n_align, c.n_maxout, c.dropout)


def cho_config(a):
    return Seq2SeqConfig(src_vocab=a.src_vocab, tgt_vocab=a.tgt_vocab)


def torch_cho(a):
    c = cho_config(a)
    return TorchGRUEncoderDecoder(c.src_vocab, c.tgt_vocab, c.n_embd, c.n_hidden, c.dropout)


def translator_config(a):
    return TranslatorConfig(src_vocab=a.src_vocab, tgt_vocab=a.tgt_vocab)


def torch_translator(a):
    c = translator_config(a)
    return TorchTransformerTranslator(c.src_vocab, c.tgt_vocab, c.n_layers, c.n_heads, c.d_model, c.d_ff, c.dropout)


ROWS = [
    Row("rnn (manual BPTT)", recurrent(lambda V, H: ElmanRNN(RNNConfig(V, H, "tanh", "manual"))),
        recurrent(torch_rnn), "recurrent", 1),
    Row("rnn (autograd)", recurrent(lambda V, H: ElmanRNN(RNNConfig(V, H, "tanh", "autograd"))),
        recurrent(torch_rnn), "recurrent", 1),
    # one layer of lstm/'s cell (peepholes, LSTM derivatives clipped to [-1, 1]) against nn.LSTM
    Row("lstm (manual BPTT)", recurrent(lambda V, H: LSTM(LSTMConfig(V, H, n_layers=1))),
        recurrent(torch_lstm), "recurrent", 4),
    # the same cell without peepholes and clipping: nn.LSTM's equations exactly
    Row("lstm plain (manual BPTT)", recurrent(lambda V, H: LSTM(LSTMConfig(V, H, n_layers=1, peepholes=False,
                                                                          clip_lstm_grads=None))),
        recurrent(torch_lstm), "recurrent", 4),
    Row("lstm (autograd)", recurrent(lambda V, H: LSTM(LSTMConfig(V, H, n_layers=1, backward="autograd"))),
        recurrent(torch_lstm), "recurrent", 4),
    # gru/'s cudnn variant is nn.GRU's unit (the reset after U h); one layer
    Row("gru cudnn (manual BPTT)", recurrent(lambda V, H: GRULanguageModel(GRUConfig(V, H, variant="cudnn"))),
        recurrent(torch_gru), "recurrent", 3),
    Row("gru cudnn (autograd)", recurrent(lambda V, H: GRULanguageModel(
        GRUConfig(V, H, variant="cudnn", backward="autograd"))), recurrent(torch_gru), "recurrent", 3),
    # the paper's unit (two recurrent matmuls a step, the reset before U) against the same nn.GRU
    Row("gru cho (manual BPTT)", recurrent(lambda V, H: GRULanguageModel(GRUConfig(V, H, variant="cho"))),
        recurrent(torch_gru), "recurrent", 3),
    # transformer/'s default LM (pre-norm, RoPE, tied) against nn.Linear, nn.LayerNorm and SDPA
    Row("transformer (written out)", lambda a: TransformerLM(transformer_config(a)), torch_transformer, "window"),
    Row("transformer (autograd)", lambda a: TransformerLM(transformer_config(a, backward="autograd")),
        torch_transformer, "window"),
    # attention/'s RNNsearch (GRU "cho", the encoder's manual BPTT) against nn.GRU, nn.GRUCell, nn.Linear
    Row("translator rnnsearch", lambda a: RNNsearch(rnnsearch_config(a)), torch_rnnsearch, "seq2seq"),
    # gru/'s RNN Encoder-Decoder (--task translate) against nn.GRU encoder and decoder
    Row("translator gru (cho)", lambda a: GRUEncoderDecoder(cho_config(a)), torch_cho, "seq2seq"),
    # transformer/'s TransformerTranslator (post-norm, sinusoids, tied) against nn.Transformer
    Row("translator transformer", lambda a: TransformerTranslator(translator_config(a)), torch_translator,
        "seq2seq"),
]


def flops_per_step(row, a):
    """The matmul FLOPs of one training step (forward and backward), as the docstring counts them."""
    if row.family == "seq2seq":
        return counted_flops(row.ours, seq2seq_batch(a), a)
    if row.family == "recurrent":
        tokens = a.batch_size * a.bptt
        return 6 * tokens * (row.gates * a.hidden * a.hidden + a.hidden * a.vocab)
    c, tokens = transformer_config(a), a.tf_batch * a.block
    per_token = c.n_layers * (4 * c.d_model ** 2 + 2 * c.d_model * c.d_ff) + c.d_model * c.vocab_size
    return 6 * tokens * per_token + 12 * c.n_layers * a.tf_batch * a.block ** 2 * c.d_model


def seq2seq_batch(a):
    """(src (B, S), src_len (B,) all S, tgt_in (B, T), tgt_out (B, T)): random ids, --seq-batch B,
    --src-len S, --tgt-len T."""
    B, S, T = a.seq_batch, a.src_len, a.tgt_len
    return (torch.randint(a.src_vocab, (B, S)), torch.full((B,), S), torch.randint(a.tgt_vocab, (B, T)),
            torch.randint(a.tgt_vocab, (B, T)))


def loss_of(model, batch, family):
    if family == "seq2seq":
        src, src_len, tgt_in, tgt_out = batch
        return F.cross_entropy(model(src, src_len, tgt_in).flatten(0, 1), tgt_out.flatten())
    x, y = batch
    return model(x, None, y)[1] if family == "recurrent" else model(x, y)[1]


def counted_flops(make, batch, args, family="seq2seq"):
    """FLOPs of one forward and backward of a fresh make(args) (training mode) on batch, counted by
    torch's FlopCounterMode (its matmuls); the RNG state is left as it was."""
    with torch.random.fork_rng():
        model = make(args)
        with FlopCounterMode(display=False) as counter:
            loss_of(model, batch, family).backward()
    return counter.get_total_flops()


def time_steps(model, optimizer, batch, family, steps, clock=time.perf_counter):
    """Seconds per training step, over `steps` steps, on `clock` (wall time, or this process's CPU time)."""
    t0 = clock()
    for _ in range(steps):
        loss = loss_of(model, batch, family)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (clock() - t0) / steps


def parse_args(argv=None):
    p = ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", nargs="*", default=None,
                   help="only the rows whose name starts with one of these, e.g. rnn (default: all)")
    g = p.add_argument_group("recurrent rows")
    g.add_argument("--batch-size", type=positive_int, default=32, help="B (default: 32)")
    g.add_argument("--bptt", type=positive_int, default=100, help="T (default: 100)")
    g.add_argument("--hidden", type=positive_int, default=512, help="H (default: 512)")
    g = p.add_argument_group("transformer row (the issue's nanoGPT comparison)")
    g.add_argument("--tf-batch", type=positive_int, default=12, help="B (default: 12)")
    g.add_argument("--block", type=positive_int, default=64, help="T, the block (default: 64)")
    g.add_argument("--layers", type=positive_int, default=4, help="N (default: 4)")
    g.add_argument("--heads", type=positive_int, default=4, help="h (default: 4)")
    g.add_argument("--width", type=positive_int, default=128, help="d_model; d_ff = 4 d_model (default: 128)")
    g = p.add_argument_group("translator rows (each at its folder's default config)")
    g.add_argument("--seq-batch", type=positive_int, default=32, help="B, sentence pairs (default: 32)")
    g.add_argument("--src-len", type=positive_int, default=20, help="S, source words (default: 20)")
    g.add_argument("--tgt-len", type=positive_int, default=20, help="T, target tokens (default: 20)")
    g.add_argument("--src-vocab", type=positive_int, default=8000, help="|V_x| (default: 8000)")
    g.add_argument("--tgt-vocab", type=positive_int, default=6000, help="|V_y| (default: 6000)")
    g = p.add_argument_group("timing")
    g.add_argument("--vocab", type=positive_int, default=65, help="|V| (default: 65, Tiny Shakespeare)")
    g.add_argument("--steps", type=positive_int, default=10, help="timed steps per repeat (default: 10)")
    g.add_argument("--warmup", type=int, default=2, help="untimed steps per model first (default: 2)")
    g.add_argument("--repeats", type=positive_int, default=5, help="alternating repeats (default: 5)")
    g.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    g.add_argument("--clock", choices=CLOCKS, default="wall",
                   help="wall: seconds on the wall clock; cpu: this process's CPU seconds, which other jobs on a "
                        "shared machine disturb less (with one thread: the same as wall on an idle machine)")
    args = p.parse_args(argv)
    rows = [r for r in ROWS if args.rows is None or any(r.name.startswith(q) for q in args.rows)]
    if not rows:
        p.error(f"no row matches --rows {' '.join(args.rows)} (rows: {', '.join(r.name for r in ROWS)})")
    return args, rows


def main(argv=None):
    args, rows = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    peak = matmul_peak()
    torch.manual_seed(0)
    batches = {"recurrent": (args.batch_size, args.bptt), "window": (args.tf_batch, args.block)}
    batches = {f: (torch.randint(args.vocab, s), torch.randint(args.vocab, s)) for f, s in batches.items()}
    batches["seq2seq"] = seq2seq_batch(args)
    # every distinct model once, in a fixed order: ours, then its reference
    models = {}
    for row in rows:
        for make in (row.ours, row.reference):
            if make not in models:
                model = make(args)
                optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
                if args.warmup:
                    time_steps(model, optimizer, batches[row.family], row.family, args.warmup)
                models[make] = (model, optimizer, row.family)

    seconds = {make: [] for make in models}
    order = list(models)
    with tqdm(total=args.repeats * len(order), desc="timing", unit="run", file=sys.stderr) as bar:
        for r in range(args.repeats):
            # alternate the order, so that neither side always runs first (or after the other)
            for make in (order if r % 2 == 0 else order[::-1]):
                model, optimizer, family = models[make]
                seconds[make].append(time_steps(model, optimizer, batches[family], family, args.steps,
                                                CLOCKS[args.clock]))
                bar.update(1)

    step_s = {make: statistics.median(s) for make, s in seconds.items()}
    print(f"training steps (forward + backward + Adam step), {torch.get_num_threads()} thread(s), {args.clock} "
          f"clock, median of {args.repeats} x {args.steps} steps; matmul peak {peak:.1f} GFLOP/s "
          f"(fp32 1024 x 1024 @ 1024 x 1024, best of 10)")
    print(f"recurrent rows: B {args.batch_size}, T {args.bptt}, H {args.hidden}, |V| {args.vocab}; "
          f"transformer: N {args.layers}, h {args.heads}, d {args.width}, block {args.block}, B {args.tf_batch}")
    if any(row.family == "seq2seq" for row in rows):
        print(f"translator rows: B {args.seq_batch}, S {args.src_len}, T {args.tgt_len}, |V_x| {args.src_vocab}, "
              f"|V_y| {args.tgt_vocab}, tok/s of target tokens, FLOPs counted by FlopCounterMode on ours")
    print(f"{'model':<28}{'ours tok/s':>11}{'torch tok/s':>12}{'ours/torch':>11}"
          f"{'ours GFLOP/s':>13}{'of peak':>8}{'torch GFLOP/s':>14}{'of peak':>8}")
    for row in rows:
        tokens = batches[row.family][-1].numel()         # targets: y, or tgt_out
        ours, ref = step_s[row.ours], step_s[row.reference]
        flops = flops_per_step(row, args)
        gf_ours, gf_ref = (flops / s / 1e9 for s in (ours, ref))
        print(f"{row.name:<28}{tokens / ours:>11,.0f}{tokens / ref:>12,.0f}{ref / ours:>10.2f}x"
              f"{gf_ours:>13.1f}{gf_ours / peak:>8.0%}{gf_ref:>14.1f}{gf_ref / peak:>8.0%}")


if __name__ == "__main__":
    run_main(main)
