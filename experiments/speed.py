"""Training speed of our recurrent models against the torch.nn modules, side by side in one run.

Tokens per second of one training step (forward, backward, Adam step) at equal sizes, for each row
of ROWS: our model and its torch.nn reference are timed alternately, repeat after repeat, so that a
noisy machine slows both alike; the medians and their ratio are printed.

    python experiments/speed.py                                  # B 32, T 100, H 512, vocab 65
    python experiments/speed.py --rows rnn --repeats 3 --steps 5 --hidden 128
    python experiments/speed.py --rows lstm
    python experiments/speed.py --rows gru
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import statistics
import time

import torch
import torch.nn as nn
import torch.nn.functional as F
from tqdm import tqdm

from gru.model import GRUConfig, GRULanguageModel
from lstm.model import LSTM, LSTMConfig
from rnn.model import ElmanRNN, RNNConfig
from utils.training import ArgumentParser, positive_int


class TorchLM(nn.Module):
    """The reference: a torch.nn recurrent module on one-hot inputs (its weight_ih plays U) and a
    linear output layer, with our recurrent interface forward(idx, state, targets)."""

    def __init__(self, rnn_class, vocab_size, n_hidden, **kwargs):
        super().__init__()
        self.vocab_size = vocab_size
        self.rnn = rnn_class(vocab_size, n_hidden, batch_first=True, **kwargs)
        self.out = nn.Linear(n_hidden, vocab_size)

    def forward(self, idx, state=None, targets=None):
        h, state = self.rnn(F.one_hot(idx, self.vocab_size).float(), state)   # (B, T, H)
        logits = self.out(h)                                                  # (B, T, |V|)
        loss = None if targets is None else F.cross_entropy(logits.flatten(0, 1), targets.flatten())
        return logits, loss, state


def torch_rnn(V, H):
    return TorchLM(nn.RNN, V, H, nonlinearity="tanh")


def torch_lstm(V, H):
    return TorchLM(nn.LSTM, V, H)


def torch_gru(V, H):
    return TorchLM(nn.GRU, V, H)


# (name, our model, the torch.nn reference): each a function (vocab_size, n_hidden) -> module.
# A reference shared by several rows is timed once.
ROWS = [
    ("rnn (manual BPTT)", lambda V, H: ElmanRNN(RNNConfig(V, H, "tanh", "manual")), torch_rnn),
    ("rnn (autograd)", lambda V, H: ElmanRNN(RNNConfig(V, H, "tanh", "autograd")), torch_rnn),
    # one layer of lstm/'s cell (peepholes, LSTM derivatives clipped to [-1, 1]) against nn.LSTM
    ("lstm (manual BPTT)", lambda V, H: LSTM(LSTMConfig(V, H, n_layers=1)), torch_lstm),
    ("lstm (autograd)", lambda V, H: LSTM(LSTMConfig(V, H, n_layers=1, backward="autograd")), torch_lstm),
    # gru/'s cudnn variant is nn.GRU's unit (the reset after U h); one layer
    ("gru cudnn (manual BPTT)", lambda V, H: GRULanguageModel(GRUConfig(V, H, variant="cudnn")), torch_gru),
    ("gru cudnn (autograd)", lambda V, H: GRULanguageModel(GRUConfig(V, H, variant="cudnn",
                                                                     backward="autograd")), torch_gru),
    # the paper's unit (two recurrent matmuls a step, the reset before U) against the same nn.GRU
    ("gru cho (manual BPTT)", lambda V, H: GRULanguageModel(GRUConfig(V, H, variant="cho")), torch_gru),
]


def time_steps(model, optimizer, x, y, steps):
    """Seconds per training step, over `steps` steps."""
    t0 = time.perf_counter()
    for _ in range(steps):
        _, loss, _ = model(x, None, y)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return (time.perf_counter() - t0) / steps


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", nargs="*", default=None,
                        help="only the rows whose name starts with one of these, e.g. rnn (default: all)")
    parser.add_argument("--batch-size", type=positive_int, default=32, help="B (default: 32)")
    parser.add_argument("--bptt", type=positive_int, default=100, help="T (default: 100)")
    parser.add_argument("--hidden", type=positive_int, default=512, help="H (default: 512)")
    parser.add_argument("--vocab", type=positive_int, default=65, help="|V| (default: 65, Tiny Shakespeare)")
    parser.add_argument("--steps", type=positive_int, default=10, help="timed steps per repeat (default: 10)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per model first (default: 2)")
    parser.add_argument("--repeats", type=positive_int, default=5, help="alternating repeats (default: 5)")
    parser.add_argument("--threads", type=positive_int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [r for r in ROWS if args.rows is None or any(r[0].startswith(p) for p in args.rows)]
    if not rows:
        parser.error(f"no row matches --rows {' '.join(args.rows)} (rows: {', '.join(r[0] for r in ROWS)})")

    # every distinct model once, in a fixed order: ours, then its reference
    factories = list(dict.fromkeys(f for _, ours, ref in rows for f in (ours, ref)))
    torch.manual_seed(0)
    B, T, V, H = args.batch_size, args.bptt, args.vocab, args.hidden
    x, y = torch.randint(V, (B, T)), torch.randint(V, (B, T))
    models = {}
    for f in factories:
        model = f(V, H)
        optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
        if args.warmup:
            time_steps(model, optimizer, x, y, args.warmup)
        models[f] = (model, optimizer)

    seconds = {f: [] for f in factories}
    with tqdm(total=args.repeats * len(factories), desc="timing", unit="run", file=sys.stderr) as bar:
        for r in range(args.repeats):
            # alternate the order, so that neither side always runs first (or after the other)
            for f in (factories if r % 2 == 0 else factories[::-1]):
                seconds[f].append(time_steps(*models[f], x, y, args.steps))
                bar.update(1)

    tok_s = {f: B * T / statistics.median(s) for f, s in seconds.items()}
    print(f"training tokens/s (forward + backward + Adam step), B {B}, T {T}, H {H}, |V| {V}, "
          f"{torch.get_num_threads()} threads, median of {args.repeats} x {args.steps} steps")
    print(f"{'model':<24}{'ours tok/s':>12}{'torch tok/s':>13}{'ours/torch':>12}")
    for name, ours, ref in rows:
        print(f"{name:<24}{tok_s[ours]:>12,.0f}{tok_s[ref]:>13,.0f}{tok_s[ours] / tok_s[ref]:>11.2f}x")


if __name__ == "__main__":
    main()
