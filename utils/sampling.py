"""Choosing the next token from logits: argmax, temperature, top-k, top-p (nucleus); the sampling
loop of recurrent models, and the flags and printing every generate.py shares."""
import sys

import torch
from tqdm import tqdm

from utils.errors import UserError

# generations longer than this show a progress bar: a 100,000-character sample takes minutes on a
# CPU, and nothing is printed until it is done
PROGRESS_FROM = 2000


def generation_steps(length, desc="generating"):
    """range(length) for a sampling loop; over PROGRESS_FROM tokens, with a progress bar on stderr
    that is erased when done (leave=False), so that stdout holds the sample alone."""
    if length <= PROGRESS_FROM:
        return range(length)
    return tqdm(range(length), desc=desc, unit="tok", leave=False, file=sys.stderr)


def sample_next(logits, temperature=1.0, top_k=None, top_p=None, greedy=False, generator=None):
    """logits: (B, V) -> next ids (B,).

    greedy: argmax. Otherwise sample from softmax(logits / temperature) after keeping only the
    top_k most likely tokens and/or the smallest set whose probability reaches top_p."""
    if greedy:
        return logits.argmax(-1)
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.size(-1)), dim=-1).values[:, -1:]   # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)           # (B, V)
        probs = torch.softmax(sorted_logits, dim=-1)
        # drop a token when the tokens ranked above it already reach top_p (the first always stays)
        drop = probs.cumsum(-1) - probs >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(-1, order, sorted_logits)
    probs = torch.softmax(logits, dim=-1)
    return torch.multinomial(probs, 1, generator=generator).squeeze(-1)


@torch.no_grad()
def generate_recurrent(model, prompt_ids, length, generator=None, **sampling):
    """Append `length` sampled tokens to prompt_ids with a recurrent model (the family interface
    model(idx, state) -> (logits, loss, state)). The whole prompt is read first, warming the hidden
    state on it; then each sampled token is fed back, one step at a time, the state carried."""
    model.eval()
    device = next(model.parameters()).device
    ids = list(prompt_ids)
    logits, _, state = model(torch.tensor([ids], device=device))    # (1, len(prompt), |V|)
    for _ in generation_steps(length):
        # sampled on the CPU, where the --seed generator lives
        next_id = sample_next(logits[:, -1].cpu(), generator=generator, **sampling)   # (1,)
        ids.append(next_id.item())
        logits, _, state = model(next_id[:, None].to(device), state)   # (1, 1, |V|)
    return ids


def sample_text(model, tokenizer, generate, length=200, temperature=0.8):
    """The short sample a train.py prints during and after training: `length` tokens continuing a
    newline (token 0 if the vocabulary has none). generate(model, prompt_ids, length, temperature=...)
    -> ids is the folder's sampling loop; the model goes back to training mode afterwards."""
    ids = generate(model, start_ids(tokenizer), length, temperature=temperature)
    model.train()
    return tokenizer.decode(ids)


def start_ids(tokenizer, prompt="\n"):
    """The ids of `prompt`; a newline (the default prompt) in a vocabulary without one is the
    beginning of a paragraph (a word tokenizer's boundary), or token 0."""
    try:
        ids = tokenizer.encode(prompt)
    except UserError:
        if prompt != "\n":
            raise
        ids = []
    return ids or [getattr(tokenizer, "boundary_id", 0)]


def add_sampling_args(parser, length=500):
    """The flags every generate.py shares."""
    from utils.training import fraction, positive_float, positive_int
    g = parser.add_argument_group("sampling")
    g.add_argument("--prompt", default="\n", help="text to continue (default: a newline)")
    g.add_argument("--length", type=positive_int, default=length,
                   help=f"tokens to generate (default: {length})")
    g.add_argument("--temperature", type=positive_float, default=1.0,
                   help="divide logits by this before sampling (default: 1.0)")
    g.add_argument("--top-k", type=positive_int, default=None,
                   help="sample only among the k most likely tokens (default: off)")
    g.add_argument("--top-p", type=fraction, default=None,
                   help="sample only among the smallest set of tokens whose probability reaches p (default: off)")
    g.add_argument("--greedy", action="store_true", help="always take the most likely token")
    g.add_argument("--seed", type=int, default=None, help="random seed for sampling (default: random)")
    g.add_argument("--num-samples", type=positive_int, default=1, help="how many samples (default: 1)")
    g.add_argument("--checkpoint", default=None, help="checkpoint to load (default: the folder's checkpoints/<folder>/model.pt)")
    add_device_arg(g)
    return parser


def add_device_arg(parser):
    """--device for a generate.py (the model moves there; sampling stays on the CPU, where the
    --seed generator lives, so a seed gives the same sample on every device)."""
    parser.add_argument("--device", choices=["auto", "cpu", "cuda", "mps"], default="auto",
                        help="where the model runs: auto picks cuda, then mps, then cpu (default: auto)")
    return parser


def sampling_kwargs(args):
    """The keyword arguments of sample_next taken from parsed sampling flags."""
    return dict(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p, greedy=args.greedy)


def print_samples(args, tokenizer, continue_ids):
    """The body every generate.py shares: check the prompt, seed the sampler, and print
    --num-samples continuations. continue_ids(prompt_ids, generator) -> ids, prompt included."""
    if not args.prompt:
        raise UserError("--prompt is empty: give at least one character to continue")
    prompt_ids = start_ids(tokenizer, args.prompt)
    unknown = tokenizer.unknown_words(args.prompt) if hasattr(tokenizer, "unknown_words") else []
    if unknown:
        print(f"note: not in the vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    generator = torch.Generator().manual_seed(args.seed) if args.seed is not None else None
    for i in range(args.num_samples):
        if i:
            print("\n" + "-" * 40)
        print(tokenizer.decode(continue_ids(prompt_ids, generator)))
