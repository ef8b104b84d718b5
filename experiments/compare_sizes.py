"""Model sizes for experiments/compare.py: train.py flags that give a wanted parameter count.

The counts come from building each folder's model with its own config class, so they are the
models' real parameter counts, not formulas."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gru.model import GRUConfig, GRULanguageModel
from lstm.model import LSTM, LSTMConfig
from mlp.model import NPLM, MLPConfig
from rnn.model import ElmanRNN, RNNConfig
from transformer.model import TransformerConfig, TransformerLM
from utils.training import count_parameters

TOLERANCE = 0.10          # matched sizes: within 10% of the target count
SCALING = {"small": 0.25, "medium": 1.0, "large": 4.0}    # times the matched count


def parameters(model, width, V):
    """The parameter count of `model` (a folder) at `width` (the flag width_flag() names), the rest
    at the folder's defaults."""
    if model == "mlp":
        return count_parameters(NPLM(MLPConfig(vocab_size=V, n_hidden=width)))
    if model == "rnn":
        return count_parameters(ElmanRNN(RNNConfig(vocab_size=V, n_hidden=width)))
    if model == "lstm":
        return count_parameters(LSTM(LSTMConfig(vocab_size=V, n_hidden=width)))
    if model == "gru":
        return count_parameters(GRULanguageModel(GRUConfig(vocab_size=V, n_hidden=width)))
    return count_parameters(TransformerLM(TransformerConfig(vocab_size=V, d_model=width, d_ff=4 * width)))


def width_flag(model):
    return "--d-model" if model == "transformer" else "--n-hidden"


def default_width(model):
    return {"mlp": MLPConfig().n_hidden, "rnn": RNNConfig().n_hidden, "lstm": LSTMConfig().n_hidden,
            "gru": GRUConfig().n_hidden, "transformer": TransformerConfig().d_model}[model]


def closest_width(model, target, V):
    """The width whose count is nearest `target` (the Transformer's: a multiple of 8, for 4 heads
    of even width, as rotary positions need)."""
    step = 8 if model == "transformer" else 1
    lo, hi = 1, 1
    while parameters(model, hi * step, V) < target:
        lo, hi = hi, hi * 2
    while hi - lo > 1:                        # the count grows with the width: bisect
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if parameters(model, mid * step, V) < target else (lo, mid)
    return min((lo * step, hi * step), key=lambda w: abs(parameters(model, w, V) - target))


class Sizes:
    """matched: per model, the flags for the Transformer's default count (none where the default is
    already within TOLERANCE); scaling: the LSTM's and the Transformer's flags at SCALING's sizes."""

    def __init__(self, vocab_size):
        V = self.vocab_size = vocab_size
        self.target = parameters("transformer", default_width("transformer"), V)
        self.matched, self.counts = {}, {}
        for model in ("mlp", "rnn", "lstm", "gru", "transformer"):
            w = default_width(model)
            if abs(parameters(model, w, V) / self.target - 1) > TOLERANCE:
                w = closest_width(model, self.target, V)
            self.matched[model] = [] if w == default_width(model) else [width_flag(model), str(w)]
            self.counts[model] = parameters(model, w, V)
        self.scaling = {}
        for model in ("lstm", "transformer"):
            self.scaling[model] = {}
            for label, factor in SCALING.items():
                w = closest_width(model, self.target * factor, V) if factor != 1 else None
                self.scaling[model][label] = self.matched[model] if w is None else [width_flag(model), str(w)]

    def describe(self):
        return f"{self.target:,} parameters (the Transformer's default) ±{TOLERANCE:.0%}: " + ", ".join(
            f"{m} {' '.join(f) or 'defaults'} ({self.counts[m]:,})" for m, f in self.matched.items())
