"""Translation plumbing shared by the encoder-decoder folders (gru/, attention/, transformer/):
Multi30k as id pairs, length-bucketed batches, greedy and beam decoding, losses with and without
teacher forcing, BLEU (sacrebleu), and the flags and printing their train.py / generate.py share.

    data = TranslationData.from_args(args)                   # tokenizers from train, encoded splits
    batches = training_batches(data.pairs["train"], 64, seed=args.seed)   # endless, resumable
    batch = next(batches).to(device)                         # src, src_len, tgt_in, tgt_out, masks
    logits = model(batch.src, batch.src_len, batch.tgt_in)   # teacher forcing, in train.py
    loss = sequence_loss(logits, batch.tgt_out)              # mean over target tokens (PAD ignored)
    results = evaluate_translation(model, data, "test", beam=5)   # losses, BLEU, BLEU by length
    print_evaluation(results)

The model interface every translator implements (no base class; these four methods):

    model(src, src_len, tgt_in) -> logits (B, T, V)                  # teacher forcing
    model.encode(src, src_len) -> memory                             # what the decoder reads
    model.init_decoder(memory) -> state                              # the decoder's first state
    model.decode_step(memory, state, prev) -> (logits (B, V), state) # one step; prev (B,) long

src (B, S) holds source ids padded with PAD after src_len[b] tokens; tgt_in (B, T) = <bos> y_1..y_n
and the scores are against tgt_out (B, T) = y_1..y_n <eos> (PAD after). memory and state are
tensors or nested tuples / lists / dicts of tensors (None allowed) whose tensors all have the batch
as dim 0: beam search reorders them with index_batch. A decoder that needs the tokens so far (a
Transformer without a cache) keeps them in its state.
"""
import argparse
import math
import sys
from dataclasses import dataclass, fields
from pathlib import Path

import torch
import torch.nn.functional as F
from sacrebleu.metrics import BLEU

from utils.checkpoint import default_path, load_checkpoint, load_weights
from utils.data import MULTI30K, load_parallel
from utils.errors import UserError
from utils.metrics import perplexity
from utils.sampling import add_device_arg
from utils.tokenizers import BOS, EOS, PAD, WordTokenizer, tokenize
from utils.training import ArgumentParser, add_budget_args, positive_int

# a sentence to translate when generate.py gets no --prompt, per source language
EXAMPLES = {"de": "Ein Mann fährt Fahrrad.", "en": "A man rides a bike.", "fr": "Un homme fait du vélo."}


# ---------------------------------------------------------------- data

class TranslationData:
    """A parallel corpus ready for a translator.

    src_tokenizer, tgt_tokenizer: WordTokenizers built from the training split (words seen at least
    min_freq times; the rest read as <unk>). pairs[split]: list of (src ids, tgt ids), each side cut
    to max_len tokens (no <bos>/<eos>: a model sees at most max_len + 1 positions). text[split]:
    (src sentences, tgt sentences), untruncated, aligned with pairs[split] (the BLEU references).
    Pairs with an empty side are dropped. A TranslationData made by from_dict (generate.py) has the
    tokenizers only."""

    def __init__(self, src_lang, tgt_lang, src_tokenizer, tgt_tokenizer, max_len, text=None):
        self.src_lang, self.tgt_lang = src_lang, tgt_lang
        self.src_tokenizer, self.tgt_tokenizer = src_tokenizer, tgt_tokenizer
        self.max_len = max_len
        self.text, self.pairs = {}, {}
        truncated = total = dropped = 0
        for name, (srcs, tgts) in (text or {}).items():
            kept_src, kept_tgt, pairs = [], [], []
            for s, t in zip(srcs, tgts):
                x, y = src_tokenizer.encode(s), tgt_tokenizer.encode(t)
                if not x or not y:
                    dropped += 1
                    continue
                total += 1
                truncated += len(x) > max_len or len(y) > max_len
                kept_src.append(s)
                kept_tgt.append(t)
                pairs.append((x[:max_len], y[:max_len]))
            self.text[name], self.pairs[name] = (kept_src, kept_tgt), pairs
        if dropped:
            print(f"note: {dropped} sentence pairs with an empty side were left out")
        if truncated:
            print(f"warning: {truncated} of {total:,} sentence pairs are longer than --max-len {max_len} "
                  f"tokens on one side or both; cut to {max_len}", file=sys.stderr)

    @classmethod
    def load(cls, src="de", tgt="en", min_freq=2, max_len=50, data_dir=None, tokenizers=None):
        """Multi30k (or the corpus in the folder data_dir) with tokenizers built from its training
        split; or, given `tokenizers` (a checkpoint's "tokenizer" entry), with those (--eval-only)."""
        splits = load_parallel(src, tgt, data_dir)
        if tokenizers is None:
            src_tok = WordTokenizer.from_texts(splits["train"][0], min_freq)
            tgt_tok = WordTokenizer.from_texts(splits["train"][1], min_freq)
        else:
            saved = cls.from_dict(tokenizers)
            if (saved.src_lang, saved.tgt_lang) != (src, tgt):
                raise UserError(f"the checkpoint translates {saved.src_lang}->{saved.tgt_lang}, not {src}->{tgt}: "
                                f"pass --src {saved.src_lang} --tgt {saved.tgt_lang}")
            src_tok, tgt_tok = saved.src_tokenizer, saved.tgt_tokenizer
        data = cls(src, tgt, src_tok, tgt_tok, max_len, splits)
        sizes = " | ".join(f"{name} {len(pairs):,}" for name, pairs in data.pairs.items())
        print(f"data: {data_dir or MULTI30K} {src}->{tgt} | {sizes} pairs | vocabulary {src} "
              f"{src_tok.vocab_size:,}, {tgt} {tgt_tok.vocab_size:,} (min freq {min_freq}) | max len {max_len}")
        return data

    @classmethod
    def from_args(cls, args, tokenizers=None):
        """load() with the flags of add_translation_args (and --data)."""
        return cls.load(args.src, args.tgt, args.min_freq, args.max_len, getattr(args, "data", None), tokenizers)

    def to_dict(self):
        """The checkpoint's "tokenizer" entry: both vocabularies, the languages and max_len."""
        return {"kind": "translation", "src_lang": self.src_lang, "tgt_lang": self.tgt_lang,
                "src": self.src_tokenizer.to_dict(), "tgt": self.tgt_tokenizer.to_dict(), "max_len": self.max_len}

    @classmethod
    def from_dict(cls, d):
        """The tokenizers of a checkpoint (no sentences); a UserError for a language-model checkpoint."""
        if not isinstance(d, dict) or d.get("kind") != "translation":
            kind = d.get("kind") if isinstance(d, dict) else None
            raise UserError(f"the checkpoint holds a language model ({kind} tokenizer), not a translator: "
                            f"continue text with it (the language-model task) instead")
        return cls(d["src_lang"], d["tgt_lang"], WordTokenizer(d["src"]["words"]), WordTokenizer(d["tgt"]["words"]),
                   d["max_len"])

    def eval_batches(self, split, batch_size=100):
        """Every pair of a split once, in batches of similar length (for losses and decoding)."""
        return list(bucketed_batches(self.pairs[split], batch_size, shuffle=False))


# ---------------------------------------------------------------- batches

@dataclass
class Batch:
    """Pairs padded into tensors. Masks are True at real tokens, False at padding."""
    src: torch.Tensor        # (B, S) source ids, PAD after src_len
    src_len: torch.Tensor    # (B,)   source lengths
    src_mask: torch.Tensor   # (B, S) bool
    tgt_in: torch.Tensor     # (B, T) <bos> y_1 .. y_n, PAD after: the decoder's inputs
    tgt_out: torch.Tensor    # (B, T) y_1 .. y_n <eos>, PAD after: what is scored
    tgt_mask: torch.Tensor   # (B, T) bool
    index: torch.Tensor      # (B,)   position of each pair in the list it came from

    def to(self, device):
        return Batch(**{f.name: getattr(self, f.name).to(device) for f in fields(self)})

    @property
    def n_tokens(self):
        """Target tokens scored (<eos> included, padding not)."""
        return int(self.tgt_mask.sum())


def collate(pairs, indices):
    """The Batch of pairs[i] for i in indices."""
    xs, ys = [pairs[i][0] for i in indices], [pairs[i][1] for i in indices]
    S, T = max(map(len, xs)), max(map(len, ys)) + 1
    src = torch.tensor([x + [PAD] * (S - len(x)) for x in xs])                         # (B, S)
    tgt_in = torch.tensor([[BOS] + y + [PAD] * (T - 1 - len(y)) for y in ys])          # (B, T)
    tgt_out = torch.tensor([y + [EOS] + [PAD] * (T - 1 - len(y)) for y in ys])         # (B, T)
    src_len = torch.tensor([len(x) for x in xs])
    tgt_len = torch.tensor([len(y) + 1 for y in ys])
    return Batch(src=src, src_len=src_len, src_mask=torch.arange(S) < src_len[:, None],
                 tgt_in=tgt_in, tgt_out=tgt_out, tgt_mask=torch.arange(T) < tgt_len[:, None],
                 index=torch.tensor(indices))


def bucket_indices(pairs, batch_size, generator=None, shuffle=True, pool=50):
    """The batches of one pass as lists of indices into pairs. shuffle: a random order, cut into pools
    of `pool` batches, each pool sorted by (source, target) length and cut into batches, then the
    batches in a random order: little padding, yet a different mix every pass. No shuffle: the whole
    list sorted by length, for evaluation. Deterministic given the generator."""
    n = len(pairs)
    order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
    size = pool * batch_size if shuffle else max(n, 1)
    batches = []
    for start in range(0, n, size):
        chunk = sorted(order[start:start + size], key=lambda i: (len(pairs[i][0]), len(pairs[i][1])))
        batches += [chunk[j:j + batch_size] for j in range(0, len(chunk), batch_size)]
    if shuffle:
        batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
    return batches


def bucketed_batches(pairs, batch_size, generator=None, shuffle=True, pool=50):
    """One pass over pairs (every pair exactly once) as Batches of similar lengths; see bucket_indices."""
    for indices in bucket_indices(pairs, batch_size, generator, shuffle, pool):
        yield collate(pairs, indices)


def training_batches(pairs, batch_size, seed, start_step=0):
    """Shuffled bucketed batches, pass after pass, without end: step k of training reads the k-th.
    Pass p is shuffled by a generator seeded from (seed, p), so a run resumed at start_step reads
    the same batches the uninterrupted run would have."""
    per_pass = math.ceil(len(pairs) / batch_size)
    epoch, skip = divmod(start_step, per_pass)
    while True:
        generator = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
        for k, indices in enumerate(bucket_indices(pairs, batch_size, generator)):
            if k >= skip:
                yield collate(pairs, indices)
        epoch, skip = epoch + 1, 0


# ---------------------------------------------------------------- decoding

def index_batch(tree, idx):
    """tree (a tensor, None, or a tuple / list / dict of those, nested) with every tensor's dim 0
    indexed by idx: selects, repeats and reorders the rows of memory or decoder state."""
    if tree is None:
        return None
    if torch.is_tensor(tree):
        return tree.index_select(0, idx.to(tree.device))
    if isinstance(tree, dict):
        return {k: index_batch(v, idx) for k, v in tree.items()}
    if isinstance(tree, (list, tuple)):
        items = [index_batch(v, idx) for v in tree]
        return type(tree)(*items) if hasattr(tree, "_fields") else type(tree)(items)
    return tree                                                # numbers, strings: not per sentence


def cut_at_eos(ids):
    """The tokens before the first <eos>."""
    return ids[:ids.index(EOS)] if EOS in ids else ids


@torch.no_grad()
def greedy_decode(model, src, src_len, max_len):
    """The most likely next token at every step, fed back, for a batch of sources; stops when every
    sentence has emitted <eos>, or after max_len tokens. A list of id lists, without <bos>/<eos>."""
    memory = model.encode(src, src_len)
    state = model.init_decoder(memory)
    prev = torch.full((src.size(0),), BOS, dtype=torch.long, device=src.device)     # (B,)
    done = torch.zeros_like(prev, dtype=torch.bool)
    out = []
    for _ in range(max_len):
        logits, state = model.decode_step(memory, state, prev)                       # (B, V)
        prev = logits.argmax(-1)                                                     # (B,)
        out.append(prev)
        done |= prev == EOS
        if done.all():
            break
    if not out:
        return [[] for _ in range(src.size(0))]
    return [cut_at_eos(row) for row in torch.stack(out, 1).tolist()]


def length_penalty(length, alpha):
    """GNMT's lp(Y) = ((5 + |Y|) / 6)^alpha (Wu et al. 2016, §7); alpha = 0: no normalisation."""
    return ((5 + length) / 6) ** alpha


@torch.no_grad()
def beam_search(model, src, src_len, beam, max_len, alpha=0.6):
    """The K = beam best partial translations of each source kept at every step, all sources at once
    (the batch holds B*K rows). A hypothesis ending in <eos> is finished with score
    log p(Y|X) / lp(Y), GNMT's length penalty with |Y| counting the <eos> (alpha 0: the raw log
    probability). As in fairseq, only an <eos> ranked among the top K candidates finishes a
    hypothesis, and a source is done once it has K finished hypotheses; at max_len the live beams
    count as finished. Returns the best finished hypothesis of each source (beam 1 = greedy), as a
    list of id lists without <bos>/<eos>."""
    B, K, device = src.size(0), beam, src.device
    rows = torch.arange(B, device=device).repeat_interleave(K)                       # (B*K,)
    memory = index_batch(model.encode(src, src_len), rows)                           # K copies of each source
    state = model.init_decoder(memory)
    prev = torch.full((B * K,), BOS, dtype=torch.long, device=device)
    scores = torch.full((B, K), float("-inf"), device=device)                        # log p of each beam
    scores[:, 0] = 0.0                                                               # one live beam at first
    tokens = torch.zeros(B, K, 0, dtype=torch.long, device=device)                   # (B, K, t)
    finished = [[] for _ in range(B)]                                                # (normalised score, ids)
    done = [False] * B
    for t in range(max_len):
        logits, state = model.decode_step(memory, state, prev)                      # (B*K, V)
        V = logits.size(-1)
        logp = F.log_softmax(logits.float(), dim=-1).view(B, K, V)
        candidates = (scores[:, :, None] + logp).view(B, K * V)                      # (B, K*V)
        top, flat = candidates.topk(min(2 * K, K * V), dim=1)                       # (B, 2K)
        source_beam, token = flat // V, flat % V
        # <eos> among the top K: that hypothesis is finished (read on the CPU, once per step)
        eos = (token == EOS) & torch.isfinite(top)
        ended = eos[:, :K].nonzero().tolist()
        if ended:
            top_, beam_, prefix = top.tolist(), source_beam.tolist(), tokens.tolist()
            for b, j in ended:
                if not done[b]:
                    finished[b].append((top_[b][j] / length_penalty(t + 1, alpha), prefix[b][beam_[b][j]]))
        for b in range(B):
            done[b] = done[b] or len(finished[b]) >= K
        if all(done):
            break
        # the K best candidates that do not end in <eos> live on (at most K of the 2K end in <eos>)
        keep = torch.sort(eos.int(), dim=1, stable=True).indices[:, :K]             # (B, K)
        source_beam, token, scores = source_beam.gather(1, keep), token.gather(1, keep), top.gather(1, keep)
        tokens = torch.cat([tokens.gather(1, source_beam[:, :, None].expand(-1, -1, tokens.size(2))),
                            token[:, :, None]], dim=2)                               # (B, K, t+1)
        state = index_batch(state, (torch.arange(B, device=device)[:, None] * K + source_beam).view(-1))
        prev = token.view(-1)                                                        # (B*K,)
    else:                                                                            # out of steps
        scores_, prefix = scores.tolist(), tokens.tolist()
        for b in range(B):
            if not done[b]:
                finished[b] += [(scores_[b][k] / length_penalty(max_len, alpha), prefix[b][k])
                                for k in range(K) if math.isfinite(scores_[b][k])]
    return [max(hyps, key=lambda h: h[0])[1] if hyps else [] for hyps in finished]


def decode(model, src, src_len, beam=1, max_len=50, alpha=0.6):
    """greedy_decode for beam 1, beam_search otherwise."""
    if beam == 1:
        return greedy_decode(model, src, src_len, max_len)
    return beam_search(model, src, src_len, beam, max_len, alpha)


def model_device(model):
    return next(model.parameters()).device


def translate_batches(model, batches, beam=1, max_len=50, alpha=0.6):
    """Translations of every pair in batches (each Batch's `index` gives its place), in order."""
    device = model_device(model)
    out = {}
    for batch in batches:
        hyps = decode(model, batch.src.to(device), batch.src_len.to(device), beam, max_len, alpha)
        out.update(zip(batch.index.tolist(), hyps))
    return [out[i] for i in range(len(out))]


# ---------------------------------------------------------------- losses

def sequence_loss(logits, tgt_out, reduction="mean"):
    """Cross-entropy of logits (B, T, V) against tgt_out (B, T), padding ignored: the mean over the
    target tokens (reduction "sum": the total)."""
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), tgt_out.reshape(-1),
                           ignore_index=PAD, reduction=reduction)


@torch.no_grad()
def teacher_forced_loss(model, batches):
    """Mean cross-entropy (nats) per target token, the decoder reading the reference: model(src,
    src_len, tgt_in). The model is put in eval mode and back."""
    was_training, device = model.training, model_device(model)
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        total += sequence_loss(model(batch.src, batch.src_len, batch.tgt_in), batch.tgt_out, "sum").item()
        count += batch.n_tokens
    model.train(was_training)
    return total / count


@torch.no_grad()
def free_running_loss(model, batches):
    """Mean cross-entropy (nats) per target token without teacher forcing: the decoder reads its own
    greedy token of the previous step, for as many steps as the reference has (<eos> included),
    each step scored against the reference token. Training and test then differ in what the decoder
    reads, the gap teacher forcing leaves (exposure bias)."""
    was_training, device = model.training, model_device(model)
    model.eval()
    total, count = 0.0, 0
    for batch in batches:
        batch = batch.to(device)
        memory = model.encode(batch.src, batch.src_len)
        state = model.init_decoder(memory)
        prev = batch.tgt_in[:, 0]                                                    # <bos> (B,)
        for t in range(batch.tgt_out.size(1)):
            logits, state = model.decode_step(memory, state, prev)                  # (B, V)
            total += F.cross_entropy(logits.float(), batch.tgt_out[:, t], ignore_index=PAD,
                                     reduction="sum").item()
            prev = logits.argmax(-1)                                                 # its own guess
        count += batch.n_tokens
    model.train(was_training)
    return total / count


# ---------------------------------------------------------------- BLEU

def bleu(hyps, refs):
    """Corpus BLEU of hypothesis strings against one reference string each, both lower-cased and
    tokenized by utils.tokenizers.tokenize, so sacrebleu adds no tokenization of its own
    (tok:none). Returns (score in 0-100, sacrebleu's signature string)."""
    metric = BLEU(tokenize="none", lowercase=True, force=True)   # force: no warning that the text looks tokenized (it is, on purpose)
    join = lambda s: " ".join(tokenize(s))
    score = metric.corpus_score([join(h) for h in hyps], [[join(r) for r in refs]]).score
    return score, str(metric.get_signature())


LENGTH_BUCKETS = ((1, 10), (11, 20), (21, 30), (31, None))


def source_words(sentence):
    """Words of a sentence (tokens holding a letter or digit; punctuation not counted), at least 1."""
    return max(1, sum(any(c.isalnum() for c in w) for w in tokenize(sentence)))


def bleu_by_length(srcs, hyps, refs, buckets=LENGTH_BUCKETS):
    """BLEU of the sentences whose source has lo..hi words (hi None: no upper end), per bucket:
    rows (label, sentences, BLEU or None when the bucket is empty)."""
    rows = []
    for lo, hi in buckets:
        picked = [i for i, s in enumerate(srcs) if lo <= source_words(s) and (hi is None or source_words(s) <= hi)]
        score = bleu([hyps[i] for i in picked], [refs[i] for i in picked])[0] if picked else None
        rows.append((f"{lo}-{hi}" if hi is not None else f"{lo}+", len(picked), score))
    return rows


def format_bleu_table(rows):
    lines = ["  source words | sentences |  BLEU"]
    for label, n, score in rows:
        lines.append(f"  {label:>12} | {n:>9,} | {'-' if score is None else f'{score:5.2f}':>5}")
    return "\n".join(lines)


def print_bleu_table(rows, print=print):
    print(format_bleu_table(rows))


# ---------------------------------------------------------------- evaluation

def decoding_label(beam, alpha):
    return "greedy" if beam == 1 else f"beam {beam}, alpha {alpha:g}"


def evaluate_translation(model, data, split="test", beam=1, alpha=0.6, max_len=None, batch_size=100):
    """Everything reported on a split: losses and perplexities with and without teacher forcing,
    BLEU of greedy decoding, and of beam search when beam > 1, with BLEU by source length for the
    last decoding. max_len caps the translations (default: the data's max_len)."""
    max_len = max_len or data.max_len
    srcs, refs = data.text[split]
    batches = data.eval_batches(split, batch_size)
    tf, fr = teacher_forced_loss(model, batches), free_running_loss(model, batches)
    was_training = model.training
    model.eval()
    results = {"split": split, "pairs": len(srcs), "direction": f"{data.src_lang}->{data.tgt_lang}",
               "loss_teacher_forced": tf, "ppl_teacher_forced": perplexity(tf),
               "loss_free_running": fr, "ppl_free_running": perplexity(fr)}
    for b in sorted({1, beam}):                     # greedy, then the beam: the last one is reported by length
        ids = translate_batches(model, batches, b, max_len, alpha)
        hyps = [data.tgt_tokenizer.decode(h) for h in ids]
        score, signature = bleu(hyps, refs)
        results["bleu_greedy" if b == 1 else "bleu_beam"] = score
    model.train(was_training)
    results.update(bleu=score, bleu_signature=signature, decoding=decoding_label(beam, alpha),
                   bleu_by_length=bleu_by_length(srcs, hyps, refs), hypotheses=hyps)
    return results


def print_evaluation(results, print=print):
    """The labelled numbers of evaluate_translation, then the BLEU-by-length table."""
    r = results
    print(f"{r['split']} ({r['pairs']:,} pairs, {r['direction']}):")
    print(f"  loss with teacher forcing     {r['loss_teacher_forced']:.4f} nats | ppl {r['ppl_teacher_forced']:.2f}")
    print(f"  loss without teacher forcing  {r['loss_free_running']:.4f} nats | ppl {r['ppl_free_running']:.2f}"
          f"  (its own greedy tokens fed back)")
    print(f"  BLEU greedy                   {r['bleu_greedy']:.2f}")
    if "bleu_beam" in r:
        print(f"  BLEU {r['decoding']:<24} {r['bleu_beam']:.2f}")
    print(f"  sacrebleu {r['bleu_signature']} (lower-cased, tokenized by utils.tokenizers.tokenize)")
    print(f"  BLEU by source length ({r['decoding']}):")
    print_bleu_table(r["bleu_by_length"], print)


# ---------------------------------------------------------------- flags, checkpoints, generate.py

def non_negative_float(s):
    v = float(s)
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be a number >= 0, got {s}")
    return v


def add_decoding_args(parser):
    """--beam and --alpha, shared by train.py (the final evaluation) and generate.py."""
    g = parser.add_argument_group("decoding")
    g.add_argument("--beam", type=positive_int, default=5,
                   help="beam width; 1 = greedy decoding (default: 5)")
    g.add_argument("--alpha", type=non_negative_float, default=0.6,
                   help="length penalty ((5 + |Y|) / 6)^alpha of GNMT (Wu et al. 2016), dividing a "
                        "beam hypothesis' log probability; 0 = none (default: 0.6)")
    return parser


def add_translation_args(parser, data_default=MULTI30K):
    """The flags the translation train.py scripts share: languages, vocabulary, lengths, decoding and
    --eval-only. Call after utils.training.add_common_args: the --data default becomes Multi30k
    (data_default=None leaves it, for a script with a language-model task too)."""
    g = parser.add_argument_group("translation data")
    g.add_argument("--src", default="de", help="source language: de, en or fr (default: de)")
    g.add_argument("--tgt", default="en", help="target language: de, en or fr (default: en)")
    g.add_argument("--min-freq", type=positive_int, default=2,
                   help="words seen fewer times in training read as <unk> (default: 2)")
    g.add_argument("--max-len", type=positive_int, default=50,
                   help="cut longer sentences to this many tokens, and stop decoding there (default: 50)")
    g.add_argument("--eval-only", action="store_true",
                   help="load --checkpoint and report the test split's losses and BLEU; no training")
    add_budget_args(parser.add_argument_group("budget"))
    add_decoding_args(parser)
    if data_default is not None:
        parser.set_defaults(data=data_default)
        for action in parser._actions:
            if action.dest == "data":
                action.help = (f"{MULTI30K} (downloaded into data/{MULTI30K}/ on first use), or a folder "
                               f"holding {{train,val,test_2016_flickr}}.{{src,tgt}}.gz (default: {data_default})")
    return parser


def add_generate_args(parser):
    """The flags of a translation generate.py: --prompt, --checkpoint, --device, --beam, --alpha."""
    parser.add_argument("--prompt", default=None,
                        help="the sentence to translate, in the source language (default: an example)")
    parser.add_argument("--checkpoint", default=None,
                        help="checkpoint to load (default: the folder's checkpoints/<folder>/model.pt)")
    add_device_arg(parser)
    return add_decoding_args(parser)


TRAIN_COMMANDS = {"lm": "python train.py", "translate": "python train.py --task translate"}


def pick_task(argv, model_types, what):
    """For a generate.py with two tasks: (task, checkpoint path) from --task and --checkpoint.
    model_types: {"lm": ..., "translate": ...}, the model_type train.py saves for each; what: task
    -> its name in messages. The task is --task, else the language model: which checkpoint is newer
    must not change what `generate.py --prompt "the" --length 50` means. The path is --checkpoint,
    else the task's default. A checkpoint of the other task is a UserError naming the --task to add."""
    parser = ArgumentParser(add_help=False)
    parser.add_argument("--task", choices=list(model_types), default=None)
    parser.add_argument("--checkpoint", default=None)
    parser.add_argument("-h", "--help", action="store_true")
    known = parser.parse_known_args(argv)[0]
    task = known.task or "lm"
    defaults = {t: default_path(model_type) for t, model_type in model_types.items()}
    path = Path(known.checkpoint) if known.checkpoint else defaults[task]
    if known.help:                     # the task's flags, trained or not: the script's parser prints them
        return task, path
    if not path.is_file():
        raise UserError(missing_checkpoint_message(path, task, known, defaults, what))
    saved = {v: k for k, v in model_types.items()}.get(load_checkpoint(path, None)["model_type"])
    if saved and saved != task:
        raise UserError(f"{path} holds {what[saved]}, not {what[task]}: add --task {saved}")
    return task, path


def missing_checkpoint_message(path, task, known, defaults, what):
    """No checkpoint where pick_task looked: how to train one for this task, and, when only the
    other task's default checkpoint exists (a translator trained, --task forgotten), the --task
    that would use it."""
    message = f"no checkpoint at {path}: train one first ({TRAIN_COMMANDS[task]})"
    others = [t for t in defaults if t != task and defaults[t].is_file()]
    if not known.checkpoint and not known.task and others:
        message += f", or add --task {others[0]} for {what[others[0]]} at {defaults[others[0]]}"
    return message


def load_translator(path, model_type, build):
    """(model, data) from a translation checkpoint, data holding its tokenizers (TranslationData
    with no sentences); build(config dict) makes the empty model. A language-model checkpoint is a
    UserError."""
    ckpt = load_checkpoint(path, model_type)
    try:
        data = TranslationData.from_dict(ckpt["tokenizer"])
    except UserError as e:
        raise UserError(f"{path}: {e}") from None
    return load_weights(build(ckpt["config"]), ckpt, path), data


def translate(model, data, sentence, beam=1, alpha=0.6, max_len=None):
    """The translation of one sentence, as text. Unknown words read as <unk> (noted on stderr); a
    source longer than the data's max_len is cut to it (a warning); an empty one is a UserError."""
    ids = data.src_tokenizer.encode(sentence)
    if not ids:
        raise UserError(f"nothing to translate: give a sentence in {data.src_lang!r} with --prompt")
    unknown = data.src_tokenizer.unknown_words(sentence)
    if unknown:
        print(f"note: not in the {data.src_lang} vocabulary, read as <unk>: {' '.join(unknown)}", file=sys.stderr)
    if len(ids) > data.max_len:
        print(f"warning: the source has {len(ids)} tokens; translating its first {data.max_len} "
              f"(the model's --max-len)", file=sys.stderr)
        ids = ids[:data.max_len]
    device = model_device(model)
    was_training = model.training
    model.eval()
    src = torch.tensor([ids], device=device)                                         # (1, S)
    out = decode(model, src, torch.tensor([len(ids)], device=device), beam, max_len or data.max_len, alpha)[0]
    model.train(was_training)
    return data.tgt_tokenizer.decode(out)


def print_translation(args, model, data):
    """The body of a translation generate.py: translate --prompt (default: an example sentence)."""
    prompt = args.prompt if args.prompt is not None else EXAMPLES.get(data.src_lang, "")
    print(translate(model, data, prompt, args.beam, args.alpha))
