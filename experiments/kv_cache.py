"""What the KV cache saves: transformer/'s generation with and without it, side by side.

A Transformer LM (random weights: the work does not depend on them) generates --tokens tokens with
a context of --block-size, once keeping every layer's keys and values (each new token is one
position of work per layer) and once re-reading the last --block-size tokens for every token.
Both runs are greedy, so they pick the same tokens while the context fits the block; the times and
their ratio are printed.

    python experiments/kv_cache.py                              # 1000 tokens, block 256, 4 x 128 wide
    python experiments/kv_cache.py --tokens 200 --block-size 64 --pos learned
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import time

import torch

from transformer.generate import generate
from transformer.model import TransformerConfig, TransformerLM
from utils.errors import UserError, run_main
from utils.training import ArgumentParser, positive_int


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=positive_int, default=1000, help="tokens to generate (default: 1000)")
    parser.add_argument("--block-size", type=positive_int, default=256,
                        help="the model's context, in tokens (default: 256)")
    parser.add_argument("--layers", type=positive_int, default=4, help="layers (default: 4)")
    parser.add_argument("--heads", type=positive_int, default=4, help="attention heads (default: 4)")
    parser.add_argument("--d-model", type=positive_int, default=128, help="width (default: 128)")
    parser.add_argument("--vocab-size", type=positive_int, default=65, help="vocabulary (default: 65)")
    parser.add_argument("--pos", choices=["sinusoidal", "learned", "rope"], default="rope",
                        help="positions; with learned ones the cache is rebuilt at every step once the context "
                             "is full, the cost of no cache (default: rope)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random weights (default: 0)")
    return parser.parse_args(argv)


def timed(fn):
    start = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - start


def main(argv=None):
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    config = TransformerConfig(vocab_size=args.vocab_size, block_size=args.block_size, n_layers=args.layers,
                               n_heads=args.heads, d_model=args.d_model, d_ff=4 * args.d_model, pos=args.pos)
    try:
        model = TransformerLM(config)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(f"model: {args.layers} layers, {args.heads} heads, width {args.d_model}, block {args.block_size}, "
          f"{args.pos} positions; {args.tokens} tokens from a one-token prompt, {torch.get_num_threads()} threads")
    generate(model, [0], 8)                                           # warm up
    with_cache, t_cache = timed(lambda: generate(model, [0], args.tokens, use_cache=True, greedy=True))
    without, t_plain = timed(lambda: generate(model, [0], args.tokens, use_cache=False, greedy=True))
    fits = min(args.tokens + 1, args.block_size)
    same = with_cache[:fits] == without[:fits]
    print(f"with cache:    {t_cache:7.2f} s  ({args.tokens / t_cache:,.0f} tokens/s)")
    print(f"without cache: {t_plain:7.2f} s  ({args.tokens / t_plain:,.0f} tokens/s)")
    print(f"ratio: {t_plain / t_cache:.1f}x faster with the cache; the first {fits} tokens "
          f"{'agree' if same else 'DIFFER'}")


if __name__ == "__main__":
    run_main(main)
