"""Translate a sentence with a trained RNNsearch (Bahdanau et al. 2015), and show where it looked.

    cd attention && python generate.py --prompt "Ein Mann fährt Fahrrad."
    cd attention && python generate.py --prompt "Zwei Hunde spielen im Schnee." --plot alignment.png

--plot saves the alignment α_ij of the translation printed (the chosen beam, or the greedy path)
as a heat map, source words along the top, target words down the side: the paper's Fig. 3.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from attention.model import AttentionConfig, RNNsearch
from utils.checkpoint import default_path
from utils.errors import UserError, run_main
from utils.tokenizers import BOS, tokenize
from utils.training import ArgumentParser, pick_device
from utils.translation import EXAMPLES, add_generate_args, decode, load_translator, model_device, translate

MODEL_TYPE = "attention"


@torch.no_grad()
def alignment(model, src_ids, tgt_ids):
    """α_ij of a translation: the decoder reads <bos> y_1 .. y_n (the words it chose) and the α of
    each step is one row: (n + 1, len(src_ids)), row i for y_{i+1}, the last for <eos>. On the CPU,
    for the plot, wherever the model runs."""
    device = model_device(model)
    src = torch.tensor([src_ids], device=device)                             # (1, S)
    memory = model.encode(src, torch.tensor([len(src_ids)], device=device))
    state, rows = model.init_decoder(memory), []
    for prev in [BOS] + list(tgt_ids):
        _, state = model.decode_step(memory, state, torch.tensor([prev], device=device))
        rows.append(state["alpha"][0])                                       # α_i  (S,)
    return torch.stack(rows).cpu()                                           # (n + 1, S)


def check_plot_path(path):
    """A UserError, before any work, for a --plot file that cannot be written."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    kinds = FigureCanvasAgg(Figure()).get_supported_filetypes()
    path = Path(path)
    if path.suffix.lower().lstrip(".") not in kinds:
        others = ", .".join(sorted(set(kinds) - {"png"}))
        raise UserError(f"--plot {path}: give a file name ending in .png (or .{others})")
    if not path.parent.is_dir():
        raise UserError(f"--plot {path}: no folder {path.parent}")


def plot_alignment(alpha, src_words, tgt_words, path):
    """alpha (len(tgt_words), len(src_words)) as a grey-scale image, white = 1 (Fig. 3)."""
    from matplotlib.figure import Figure
    fig = Figure(figsize=(1.5 + 0.4 * len(src_words), 1.5 + 0.4 * len(tgt_words)))
    ax = fig.subplots()
    ax.imshow(alpha.numpy(), cmap="gray", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(len(src_words)), src_words, rotation=90)
    ax.set_yticks(range(len(tgt_words)), tgt_words)
    ax.xaxis.tick_top()
    fig.savefig(path, bbox_inches="tight", dpi=100)


def main(argv=None):
    parser = add_generate_args(ArgumentParser(description=__doc__.splitlines()[0]))
    parser.add_argument("--plot", metavar="FILE.png", default=None,
                        help="save the alignment of the translation as a heat map, as the paper's Fig. 3 "
                             "(default: no plot)")
    args = parser.parse_args(argv)
    if args.plot:
        check_plot_path(args.plot)
    model, data = load_translator(args.checkpoint or default_path(MODEL_TYPE), MODEL_TYPE,
                                  lambda config: RNNsearch(AttentionConfig(**config)))
    model.to(pick_device(args.device)).eval()
    prompt = args.prompt if args.prompt is not None else EXAMPLES.get(data.src_lang, "")
    print(translate(model, data, prompt, args.beam, args.alpha))
    if args.plot:
        # the same decoding again, for the ids of the words printed; then its α, step by step
        src_ids = data.src_tokenizer.encode(prompt)[:data.max_len]
        device = model_device(model)
        tgt_ids = decode(model, torch.tensor([src_ids], device=device), torch.tensor([len(src_ids)], device=device),
                         args.beam, data.max_len, args.alpha)[0]
        alpha = alignment(model, src_ids, tgt_ids)                           # (n + 1, S)
        tgt_words = [data.tgt_tokenizer.words[i] for i in tgt_ids] + ["<eos>"]
        if len(tgt_ids) == data.max_len:                                     # cut at max_len: no <eos>
            alpha, tgt_words = alpha[:-1], tgt_words[:-1]
        plot_alignment(alpha, tokenize(prompt)[:data.max_len], tgt_words, args.plot)
        print(f"alignment: {args.plot}")


if __name__ == "__main__":
    run_main(main)
