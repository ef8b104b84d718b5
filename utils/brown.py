"""The Brown corpus as Bengio et al. 2003 split it: words in corpus order, 800,000 / 200,000 / the rest.

    tokens = read_brown(path_of_brown_zip)       # ['The', 'Fulton', 'County', ..., '.', '</p>', ...]
    train, val, test = bengio_split(tokens)      # 800,000 / 200,000 / 177,359 tokens

The NLTK packaging (../shared/data/SOURCES.md): 500 files ca01 ... cr09 in a zip, Latin-1, one
sentence per line, paragraphs separated by blank lines, every token written word/tag. We read the
files in corpus order, keep each word as written (case kept; punctuation marks are tokens of
their own already), drop the /tag, end every paragraph with the token PARAGRAPH and every one of
the 500 texts with TEXT.

Why these marks: the paper counts 1,181,041 words in all, "including the syntactical marks used to
separate texts and paragraphs" (see mlp/README.md for the quotation), and the NLTK copy has
1,161,192 white-space tokens. With one mark per paragraph (15,667) and one per text (500) we have
1,177,359 tokens, 0.31% short of the paper's count; a mark per sentence (57,340) would overshoot
by 3.2%. The split is the paper's by position: the first 800,000 tokens, the next 200,000, the rest
(177,359 here, 181,041 in the paper).

Which words are rare: "Rare words with frequency <= 3 were merged into a single symbol, reducing
the vocabulary size to |V| = 16,383" (§4) does not say in which text the frequency was counted.
Measured on this copy (`python experiments/brown.py`, 2026-12-02, results/brown.md), interpolated modified
Kneser-Ney trigram, validation / test perplexity, against the paper's 334 / 323 (Table 1):

    counted in                  |V|      KN3 valid / test
    the training split          14,039   201 / 190
    the whole corpus            17,907   332 / 310

Only the whole-corpus count reproduces both of the paper's perplexities (within 1% and 4%), so
that is what `--data brown` does by default (lm_splits' vocab_counts "all"; "train" is the
stricter choice, where no validation or test text decides the vocabulary). In every case the
models learn from the training split alone; the count only decides which words are <unk>.
"""
import re
import zipfile

from utils.errors import UserError

PARAGRAPH = "</p>"                   # the end of a paragraph, a token like any word
TEXT = "</text>"                     # the end of one of the 500 texts (after its last PARAGRAPH)
TRAIN_WORDS, VALID_WORDS = 800_000, 200_000
FILE_NAME = re.compile(r"brown/c[a-r]\d\d")


def read_brown(path):
    """The tokens of the Brown corpus zip at `path`, in corpus order (see the module docstring)."""
    try:
        with zipfile.ZipFile(path) as z:
            names = sorted(n for n in z.namelist() if FILE_NAME.fullmatch(n))
            texts = [z.read(n).decode("latin-1") for n in names]
    except (zipfile.BadZipFile, OSError) as e:
        raise UserError(f"cannot read the Brown corpus from {path} ({e})") from None
    if len(names) != 500:
        raise UserError(f"{path} holds {len(names)} Brown files (ca01 ... cr09), not 500")
    tokens = []
    for text in texts:
        for paragraph in re.split(r"\n\s*\n", text):
            words = [token.rsplit("/", 1)[0] for token in paragraph.split()]
            if words:
                tokens += words
                tokens.append(PARAGRAPH)
        tokens.append(TEXT)
    return tokens


def bengio_split(tokens):
    """(train, valid, test): the first 800,000 tokens, the next 200,000, the rest (§4.1)."""
    if len(tokens) <= TRAIN_WORDS + VALID_WORDS:
        raise UserError(f"{len(tokens):,} tokens: Bengio's split needs more than "
                        f"{TRAIN_WORDS + VALID_WORDS:,}")
    return tokens[:TRAIN_WORDS], tokens[TRAIN_WORDS:TRAIN_WORDS + VALID_WORDS], tokens[TRAIN_WORDS + VALID_WORDS:]
