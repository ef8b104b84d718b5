"""Continue a prompt with a Transformer language model, or translate a sentence with the translator.

The language model (reading through a KV cache) unless --task translate.

    cd transformer && python generate.py --prompt "the" --length 300 --temperature 0.8
    cd transformer && python generate.py --prompt "the" --no-cache     # re-read the context for every token
    cd transformer && python generate.py --task translate --prompt "Ein Mann fährt Fahrrad." --beam 5
    cd transformer && python generate.py --task translate --beam 1     # greedy; --task translate --help: its flags

A translator encodes the sentence once and decodes greedily or with a beam (utils/translation.py),
one position per step: its decoder keeps the keys and values of the words so far, and those of
the source, computed once. Without --checkpoint, --task lm (the default) reads
checkpoints/transformer/model.pt and --task translate checkpoints/transformer_mt/model.pt; a
--checkpoint of the other task is an error naming the --task to add.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from transformer.model import KVCache, TransformerConfig, TransformerLM, TransformerTranslator, TranslatorConfig
from utils.checkpoint import load_model
from utils.errors import run_main
from utils.sampling import add_sampling_args, generation_steps, print_samples, sample_next, sampling_kwargs
from utils.training import ArgumentParser, pick_device
from utils.translation import add_generate_args, load_translator, pick_task, print_translation

TASKS = ("lm", "translate")
MODEL_TYPES = {"lm": "transformer", "translate": "transformer_mt"}      # as train.py saves them
WHAT = {"lm": "a Transformer language model", "translate": "a Transformer encoder-decoder (a translator)"}


@torch.no_grad()
def generate(model, prompt_ids, length, use_cache=True, generator=None, **sampling):
    """Append `length` sampled tokens to prompt_ids. The model reads at most block_size tokens:
    a longer prompt is read from its last block_size tokens.

    Without the cache, every new token re-reads the last block_size tokens (positions 0 ..
    block_size - 1 each time). With it, the prompt is read once and each new token attends to the
    keys and values kept from earlier steps: one position of work per layer, not the whole prefix.
    Once the context fills the block:
      rope, sinusoidal: the cache is cropped to its last block_size - 1 positions and positions keep
        counting: a sliding window of attention. Not the same numbers as --no-cache, whose window
        restarts at position 0 every time: the cached keys and values of the deeper layers still
        carry what their own windows saw. Sinusoids then reach positions never seen in training.
      learned: a table of block_size positions cannot slide, so the cache is rebuilt from the last
        block_size tokens at every step: exactly --no-cache, at its cost."""
    model.eval()
    block, device = model.config.block_size, model.E.device
    ids = list(prompt_ids)
    cache = KVCache(model.config.n_layers) if use_cache else None
    unread = ids[-block:]                                              # tokens not in the cache yet
    for _ in generation_steps(length):
        if cache is None:
            logits, _ = model(torch.tensor([ids[-block:]], device=device))        # (1, <= block, |V|)
        else:
            logits, _ = model(torch.tensor([unread], device=device), cache=cache)  # (1, len(unread), |V|)
        # sampled on the CPU, where the --seed generator lives
        ids.append(sample_next(logits[:, -1].cpu(), generator=generator, **sampling).item())
        unread = ids[-1:]
        if cache is not None and cache.length == block:
            if model.config.pos == "learned":
                cache, unread = KVCache(model.config.n_layers), ids[-block:]
            else:
                cache.crop(block - 1)
    return ids


def main(argv=None):
    task, path = pick_task(argv, MODEL_TYPES, WHAT)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default=None,
                        help="lm: continue text; translate: translate a sentence (default: lm; "
                             "--task translate --help lists its flags)")
    if task == "translate":
        args = add_generate_args(parser).parse_args(argv)
        model, data = load_translator(path, MODEL_TYPES[task],
                                      lambda config: TransformerTranslator(TranslatorConfig(**config)))
        print_translation(args, model.to(pick_device(args.device)), data)
        return
    add_sampling_args(parser)
    parser.add_argument("--no-cache", action="store_true",
                        help="re-read the whole context for every new token instead of keeping its keys and "
                             "values (slower; to compare)")
    args = parser.parse_args(argv)
    model, tokenizer = load_model(path, MODEL_TYPES[task], lambda config: TransformerLM(TransformerConfig(**config)))
    model.to(pick_device(args.device))
    print_samples(args, tokenizer, lambda prompt_ids, generator: generate(
        model, prompt_ids, args.length, not args.no_cache, generator, **sampling_kwargs(args)))


if __name__ == "__main__":
    run_main(main)
