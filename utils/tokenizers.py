"""Tokenizers: text <-> list of integer ids.

Every tokenizer has the same small interface, so callers never care which one they hold:
    tok.encode(text) -> list[int]      tok.decode(ids) -> str      tok.vocab_size
    tok.to_dict() -> plain dict (for checkpoints)   tokenizer_from_dict(d) -> the tokenizer back
Word-level and BPE tokenizers join by implementing the same four things.

    tok = WordTokenizer.from_texts(train_sentences, min_freq=2)   # words of translation corpora
    tok.encode("Ein Mann fährt Fahrrad.")   # lower-cased, punctuation split; unknown words -> UNK
    tokenize("A man's T-shirt.")            # ['a', 'man', "'", 's', 't-shirt', '.'] (BLEU references)
"""
import re
from collections import Counter

from utils.errors import UserError


class UnknownTokenError(UserError):
    pass


class CharTokenizer:
    """Character level; the vocabulary is the sorted set of characters in the training text."""

    kind = "char"
    unit = "char"

    def __init__(self, chars):
        self.chars = list(chars)
        self.index = {c: i for i, c in enumerate(self.chars)}

    @classmethod
    def from_text(cls, text):
        return cls(sorted(set(text)))

    @property
    def vocab_size(self):
        return len(self.chars)

    def encode(self, text):
        unknown = sorted(set(text) - self.index.keys())
        if unknown:
            shown = " ".join(repr(c) for c in unknown)
            raise UnknownTokenError(f"characters not in the vocabulary: {shown}")
        return [self.index[c] for c in text]

    def decode(self, ids):
        return "".join(self.chars[i] for i in ids)

    def to_dict(self):
        return {"kind": self.kind, "chars": self.chars}


# ---------------------------------------------------------------- words

# the special symbols, at fixed ids in every word vocabulary
PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS = ("<pad>", "<unk>", "<bos>", "<eos>")

# a word is a run of letters or digits (umlauts and accents are letters), hyphens inside it kept
# ("t-shirt", as the Moses tokenizer does); every other non-space character is a token of its own,
# so punctuation and apostrophes split off ("man's" -> man ' s, "d'un" -> d ' un). "<unk>" stays whole.
TOKEN = re.compile(r"<unk>|\w+(?:-\w+)*|[^\w\s]")


def tokenize(text):
    """Lower-cased words and punctuation marks of `text`, as a list of strings."""
    return TOKEN.findall(text.lower())


class WordTokenizer:
    """Word level: ids 0-3 are <pad> <unk> <bos> <eos>, then the words, most frequent first.
    encode never raises (an unknown word is UNK); decode drops <pad>, <bos> and <eos>, shows <unk>,
    and joins the tokens with spaces."""

    kind = "word"
    PAD, UNK, BOS, EOS = PAD, UNK, BOS, EOS

    def __init__(self, words):
        self.words = list(words)
        if tuple(self.words[:len(SPECIALS)]) != SPECIALS:
            raise UserError(f"a word vocabulary must start with {' '.join(SPECIALS)}")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_texts(cls, texts, min_freq=2):
        """The words seen at least min_freq times in `texts` (training sentences); ties in
        frequency are broken alphabetically, so the same texts always give the same ids."""
        counts = Counter(w for text in texts for w in tokenize(text))
        kept = sorted((w for w, c in counts.items() if c >= min_freq and w not in SPECIALS),
                      key=lambda w: (-counts[w], w))
        return cls(list(SPECIALS) + kept)

    @property
    def vocab_size(self):
        return len(self.words)

    def encode(self, text):
        return [self.index.get(w, UNK) for w in tokenize(text)]

    def unknown_words(self, text):
        """The words of `text` that encode reads as <unk>, in order, each once."""
        return list(dict.fromkeys(w for w in tokenize(text) if w not in self.index or w == "<unk>"))

    def decode(self, ids):
        return " ".join(self.words[int(i)] for i in ids if int(i) not in (PAD, BOS, EOS))

    def to_dict(self):
        return {"kind": self.kind, "words": self.words}


def characters(tokenizer, ids):
    """How many characters of text `ids` stand for: what bits per character divide by, so that
    character, word and BPE models can be set side by side (a word model's text is its words
    joined by spaces, a blank line for each paragraph)."""
    if tokenizer.kind == CharTokenizer.kind:      # one id, one character: no need to decode millions
        return len(ids)
    return len(tokenizer.decode(ids))


def tokenizer_from_dict(d):
    if d.get("kind") == "char":
        return CharTokenizer(d["chars"])
    if d.get("kind") == "word":
        return WordTokenizer(d["words"])
    if d.get("kind") == CorpusWordTokenizer.kind:
        return CorpusWordTokenizer(d["words"])
    if d.get("kind") == "bpe":
        from utils.bpe import BPETokenizer
        return BPETokenizer(d["merges"])
    if d.get("kind") == "translation":
        raise UserError(f"the checkpoint holds a {d.get('src_lang')}->{d.get('tgt_lang')} translation model, "
                        f"not a language model: give it a sentence to translate (the translation task)")
    raise UserError(f"unknown tokenizer kind in checkpoint: {d.get('kind')!r}")


# ---------------------------------------------------------------- words of a language model

class CorpusWordTokenizer:
    """Word level for language models: a word is what white space separates, case and punctuation
    as the text has them (Brown's tokens are already split that way). A blank line ends a paragraph,
    the token PARAGRAPH, so that decode(ids) encodes back to the same ids. Id 0 is <unk>, which
    stands for every word outside the vocabulary (Bengio et al. 2003 merge the training words seen 3
    times or fewer into one symbol); then the words, most frequent first.

        tok = CorpusWordTokenizer.from_tokens(train_tokens, rare=3)
        tok.encode("the jury said")     # [ids of the, jury, said]"""

    kind = "corpus-word"
    unit = "word"
    UNK = "<unk>"
    PARAGRAPH = "</p>"

    def __init__(self, words):
        self.words = list(words)
        if self.words[:1] != [self.UNK]:
            raise UserError(f"a word vocabulary must start with {self.UNK}")
        self.index = {w: i for i, w in enumerate(self.words)}

    @classmethod
    def from_tokens(cls, tokens, rare=3):
        """The tokens seen more than `rare` times; ties in frequency broken alphabetically, so the
        same tokens always give the same ids."""
        counts = Counter(tokens)
        kept = sorted((w for w, c in counts.items() if c > rare and w != cls.UNK), key=lambda w: (-counts[w], w))
        return cls([cls.UNK] + kept)

    @property
    def vocab_size(self):
        return len(self.words)

    @property
    def boundary_id(self):
        """What a window model is padded with before the first word: the end of a paragraph."""
        return self.index.get(self.PARAGRAPH, 0)

    @classmethod
    def split(cls, text):
        """The tokens of `text`: its words, and PARAGRAPH at each blank line."""
        tokens = []
        for i, paragraph in enumerate(re.split(r"\n[ \t\r\f\v]*\n", text)):
            tokens += [cls.PARAGRAPH] * (i > 0) + paragraph.split()
        return tokens

    def unknown_words(self, text):
        """The words of `text` outside the vocabulary (read as <unk>), in order, each once."""
        return list(dict.fromkeys(w for w in self.split(text) if w not in self.index))

    def encode_tokens(self, tokens):
        return [self.index.get(w, 0) for w in tokens]

    def encode(self, text):
        return self.encode_tokens(self.split(text))

    def decode(self, ids):
        """The words joined by spaces, a blank line for each PARAGRAPH."""
        paragraphs = [[]]
        for i in ids:
            word = self.words[int(i)]
            if word == self.PARAGRAPH:
                paragraphs.append([])
            else:
                paragraphs[-1].append(word)
        return "\n\n".join(" ".join(words) for words in paragraphs)

    def to_dict(self):
        return {"kind": self.kind, "words": self.words}
