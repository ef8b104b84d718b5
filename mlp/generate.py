"""Continue a prompt with a trained Bengio et al. 2003 MLP.

    cd mlp && python generate.py --prompt "the" --length 300 --temperature 0.8
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from mlp.model import MLPConfig, NPLM
from utils.checkpoint import default_path, load_model
from utils.errors import UserError, run_main
from utils.sampling import add_sampling_args, generation_steps, print_samples, sample_next, sampling_kwargs
from utils.training import ArgumentParser, pick_device


@torch.no_grad()
def generate(model, prompt_ids, length, pad_id, generator=None, **sampling):
    """Append `length` sampled tokens to prompt_ids. The model sees a fixed window of the last
    n-1 tokens; a prompt shorter than that is padded on the left with pad_id."""
    model.eval()
    n = model.config.context
    ids = [pad_id] * max(0, n - len(prompt_ids)) + list(prompt_ids)
    for _ in generation_steps(length):
        window = torch.tensor([ids[-n:]], device=model.C.device)         # (1, n-1)
        logits, _ = model(window)                                       # (1, |V|)
        # sampled on the CPU, where the --seed generator lives
        ids.append(sample_next(logits.cpu(), generator=generator, **sampling).item())
    return ids[max(0, n - len(prompt_ids)):]


def padding_id(tokenizer):
    """Pad short prompts as if a paragraph began: with a word vocabulary's paragraph boundary, or
    with newlines when the vocabulary has them."""
    if hasattr(tokenizer, "boundary_id"):
        return tokenizer.boundary_id
    try:
        return tokenizer.encode("\n")[0]
    except UserError:
        return 0


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    args = add_sampling_args(parser).parse_args(argv)
    path = args.checkpoint or default_path("mlp")
    model, tokenizer = load_model(path, "mlp", lambda config: NPLM(MLPConfig(**config)))
    model.to(pick_device(args.device))
    pad_id = padding_id(tokenizer)
    print_samples(args, tokenizer, lambda prompt_ids, generator: generate(
        model, prompt_ids, args.length, pad_id, generator, **sampling_kwargs(args)))


if __name__ == "__main__":
    run_main(main)
