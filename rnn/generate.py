"""Continue a prompt with a trained Mikolov et al. 2010 recurrent language model.

    cd rnn && python generate.py --prompt "the" --length 300 --temperature 0.8
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from rnn.model import ElmanRNN, RNNConfig
from utils.checkpoint import default_path, load_model
from utils.errors import run_main
from utils.sampling import add_sampling_args, print_samples, sample_next, sampling_kwargs
from utils.training import ArgumentParser


@torch.no_grad()
def generate(model, prompt_ids, length, generator=None, **sampling):
    """Append `length` sampled tokens to prompt_ids. The whole prompt is read first, warming the
    hidden state s(t) on it; then each sampled token is fed back, one step at a time."""
    model.eval()
    device = model.W.device
    ids = list(prompt_ids)
    logits, _, state = model(torch.tensor([ids], device=device))    # (1, len(prompt), |V|)
    for _ in range(length):
        # sampled on the CPU, where the --seed generator lives
        next_id = sample_next(logits[:, -1].cpu(), generator=generator, **sampling)   # (1,)
        ids.append(next_id.item())
        logits, _, state = model(next_id[:, None].to(device), state)   # (1, 1, |V|)
    return ids


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    args = add_sampling_args(parser).parse_args(argv)
    path = args.checkpoint or default_path("rnn")
    model, tokenizer = load_model(path, "rnn", lambda config: ElmanRNN(RNNConfig(**config)))
    print_samples(args, tokenizer, lambda prompt_ids, generator: generate(
        model, prompt_ids, args.length, generator, **sampling_kwargs(args)))


if __name__ == "__main__":
    run_main(main)
