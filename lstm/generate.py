"""Continue a prompt with a trained Graves 2013 LSTM language model.

    cd lstm && python generate.py --prompt "the" --length 300 --temperature 0.8
    cd lstm && python generate.py --length 2000 --seed 1        # a long sample: does it stay well formed?

The prompt is read first, warming every layer's (h, c) on it; then each sampled character is fed
back, one step at a time (utils/sampling.py: generate_recurrent, shared by the recurrent family).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lstm.model import LSTM, LSTMConfig
from utils.checkpoint import default_path, load_model
from utils.errors import run_main
from utils.sampling import add_sampling_args, generate_recurrent, print_samples, sampling_kwargs
from utils.training import ArgumentParser, pick_device


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    args = add_sampling_args(parser).parse_args(argv)
    path = args.checkpoint or default_path("lstm")
    model, tokenizer = load_model(path, "lstm", lambda config: LSTM(LSTMConfig(**config)))
    model.to(pick_device(args.device))
    print_samples(args, tokenizer, lambda prompt_ids, generator: generate_recurrent(
        model, prompt_ids, args.length, generator, **sampling_kwargs(args)))


if __name__ == "__main__":
    run_main(main)
