"""Continue a prompt with a GRU (Cho et al. 2014) language model, or translate with its Encoder-Decoder.

The language model unless --task translate.

    cd gru && python generate.py --prompt "the" --length 300 --temperature 0.8
    cd gru && python generate.py --length 2000 --seed 1        # a long sample: does it stay well formed?
    cd gru && python generate.py --task translate --prompt "ein mann fährt fahrrad ." --beam 5
    cd gru && python generate.py --task translate --beam 1     # greedy; --task translate --help: its flags

A language model reads the prompt first, warming every layer's h on it; then each sampled character
is fed back, one step at a time (utils/sampling.py: generate_recurrent, shared by the recurrent
family). A translator encodes the sentence into c and decodes greedily or with a beam
(utils/translation.py). Without --checkpoint, --task lm (the default) reads
checkpoints/gru/model.pt and --task translate checkpoints/gru_seq2seq/model.pt; a --checkpoint of the
other task is an error naming the --task to add.
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from gru.model import GRUConfig, GRUEncoderDecoder, GRULanguageModel, Seq2SeqConfig
from utils.checkpoint import load_model
from utils.errors import run_main
from utils.sampling import add_sampling_args, generate_recurrent, print_samples, sampling_kwargs
from utils.training import ArgumentParser, pick_device
from utils.translation import add_generate_args, load_translator, pick_task, print_translation

TASKS = ("lm", "translate")
MODEL_TYPES = {"lm": "gru", "translate": "gru_seq2seq"}           # as gru/train.py saves them
WHAT = {"lm": "a GRU language model", "translate": "a GRU encoder-decoder (a translator)"}


def main(argv=None):
    task, path = pick_task(argv, MODEL_TYPES, WHAT)
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=TASKS, default=None,
                        help="lm: continue text; translate: translate a sentence (default: lm; "
                             "--task translate --help lists its flags)")
    if task == "translate":
        args = add_generate_args(parser).parse_args(argv)
        model, data = load_translator(path, MODEL_TYPES[task], lambda config: GRUEncoderDecoder(Seq2SeqConfig(**config)))
        print_translation(args, model.to(pick_device(args.device)), data)
        return
    args = add_sampling_args(parser).parse_args(argv)
    model, tokenizer = load_model(path, MODEL_TYPES[task], lambda config: GRULanguageModel(GRUConfig(**config)))
    model.to(pick_device(args.device))
    print_samples(args, tokenizer, lambda prompt_ids, generator: generate_recurrent(
        model, prompt_ids, args.length, generator, **sampling_kwargs(args)))


if __name__ == "__main__":
    run_main(main)
