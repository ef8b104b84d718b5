"""Continue a prompt with a trained Bengio et al. 2003 MLP.

    cd mlp && python generate.py --prompt "the" --length 300 --temperature 0.8
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from mlp.model import MLPConfig, NPLM
from utils.checkpoint import default_path, load_checkpoint, load_weights
from utils.errors import UserError, run_main
from utils.sampling import add_sampling_args, sample_next, sampling_kwargs
from utils.tokenizers import tokenizer_from_dict
from utils.training import ArgumentParser


@torch.no_grad()
def generate(model, prompt_ids, length, pad_id, generator=None, **sampling):
    """Append `length` sampled tokens to prompt_ids. The model sees a fixed window of the last
    n-1 tokens; a prompt shorter than that is padded on the left with pad_id."""
    model.eval()
    n = model.config.context
    ids = [pad_id] * max(0, n - len(prompt_ids)) + list(prompt_ids)
    for _ in range(length):
        window = torch.tensor([ids[-n:]])                               # (1, n-1)
        logits, _ = model(window)                                       # (1, |V|)
        ids.append(sample_next(logits, generator=generator, **sampling).item())
    return ids[max(0, n - len(prompt_ids)):]


def padding_id(tokenizer):
    """Pad short prompts with newlines when the vocabulary has one: as if a paragraph began."""
    try:
        return tokenizer.encode("\n")[0]
    except UserError:
        return 0


def main(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    args = add_sampling_args(parser).parse_args(argv)
    path = args.checkpoint or default_path("mlp")
    ckpt = load_checkpoint(path, "mlp")
    tokenizer = tokenizer_from_dict(ckpt["tokenizer"])
    model = load_weights(NPLM(MLPConfig(**ckpt["config"])), ckpt, path)
    if not args.prompt:
        raise UserError("--prompt is empty: give at least one character to continue")
    prompt_ids = tokenizer.encode(args.prompt)
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    for i in range(args.num_samples):
        if i:
            print("\n" + "-" * 40)
        ids = generate(model, prompt_ids, args.length, padding_id(tokenizer), generator, **sampling_kwargs(args))
        print(tokenizer.decode(ids))


if __name__ == "__main__":
    run_main(main)
