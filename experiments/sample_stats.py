"""How well formed is a long sample? Its words and its layout, against the corpus it learned from.

A character model has to invent its words letter by letter and keep the play's layout (a speaker's
name on its own line, then the speech, a blank line between turns) over thousands of characters.
For each text file given (samples from any generate.py), and for a slice of the validation text of
the same length as a reference, this prints:

- known words: the share of its words (runs of letters and apostrophes) that occur in the training
  text;
- longest clean stretch: the most characters in a row in which every word is a known word;
- turns: the blocks between blank lines, and the share of them that open with a speaker's name in
  the corpus's form (a line of capitalised words ending in a colon), followed by speech.

    cd lstm && python generate.py --length 2000 --seed 1 > ../lstm-sample.txt
    python experiments/sample_stats.py lstm-sample.txt rnn-sample.txt     # from the top of the repository
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import re

from utils.data import load_corpus, read_text, split
from utils.errors import run_main
from utils.training import ArgumentParser

WORD = re.compile(r"[A-Za-z']+")
SPEAKER = re.compile(r"^[A-Z][A-Za-z']*( [A-Z][A-Za-z']*)*:$")   # "ROMEO:", "First Citizen:", "KING RICHARD III:"


def parse_args(argv=None):
    parser = ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("samples", nargs="+", help="text files, one sample each (e.g. generate.py's output)")
    parser.add_argument("--data", default="tinyshakespeare",
                        help="the corpus the models learned from (default: tinyshakespeare)")
    return parser.parse_args(argv)


def known_words(text, vocabulary):
    """(words, share of them in the vocabulary, longest run of characters whose words are all known)."""
    words = list(WORD.finditer(text))
    if not words:
        return 0, 0.0, 0
    known = [m.group().lower() in vocabulary for m in words]
    longest, start = 0, None
    for m, ok in zip(words, known):
        if ok:
            start = m.start() if start is None else start
            longest = max(longest, m.end() - start)
        else:
            start = None
    return len(words), sum(known) / len(words), longest


def turns(text):
    """(blocks between blank lines, share of them that are a speaker's line followed by speech)."""
    blocks = [b.strip("\n").split("\n") for b in re.split(r"\n\s*\n", text) if b.strip()]
    well_formed = sum(1 for lines in blocks if len(lines) >= 2 and SPEAKER.match(lines[0].strip()))
    return len(blocks), well_formed / max(len(blocks), 1)


def main(argv=None):
    args = parse_args(argv)
    train, val = split(load_corpus(args.data))
    vocabulary = {m.group().lower() for m in WORD.finditer(train)}
    rows = []
    for name in args.samples:
        rows.append((Path(name).name, read_text(name)))
    length = max(len(text) for _, text in rows)
    start = val.find("\n\n") + 2                       # the validation text from a turn's start
    rows.append((f"validation text ({length:,} chars)", val[start:start + length]))

    print(f"{'text':<32} {'chars':>6} {'words':>6} {'known words':>12} {'longest clean':>14} {'turns':>6} {'well formed':>12}")
    for name, text in rows:
        n_words, share, longest = known_words(text, vocabulary)
        n_turns, formed = turns(text)
        print(f"{name:<32} {len(text):>6,} {n_words:>6,} {share:>11.1%} {longest:>9,} chars {n_turns:>6} {formed:>11.0%}")


if __name__ == "__main__":
    run_main(main)
