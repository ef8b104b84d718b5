"""Continue a prompt with a trained Mikolov et al. 2010 recurrent language model.

    cd rnn && python generate.py --prompt "the" --length 300 --temperature 0.8

The prompt is read first, warming the hidden state s(t) on it; then each sampled character is fed
back, one step at a time (utils/sampling.py: generate_recurrent, shared by the recurrent family).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rnn.model import ElmanRNN, RNNConfig
from utils.checkpoint import default_path, load_model
from utils.errors import run_main
from utils.sampling import add_sampling_args, generate_recurrent, print_samples, sampling_kwargs
from utils.training import ArgumentParser, pick_device


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    args = add_sampling_args(parser).parse_args(argv)
    path = args.checkpoint or default_path("rnn")
    model, tokenizer = load_model(path, "rnn", lambda config: ElmanRNN(RNNConfig(**config)))
    model.to(pick_device(args.device))
    print_samples(args, tokenizer, lambda prompt_ids, generator: generate_recurrent(
        model, prompt_ids, args.length, generator, **sampling_kwargs(args)))


if __name__ == "__main__":
    run_main(main)
