"""The translation pipeline in utils/ (tokenizer, Multi30k, batches, decoding, losses, BLEU), on toy
models written here that implement the translator interface of utils/translation.py."""
import gzip
import itertools
import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import write_parallel_corpus
from utils import data as data_module
from utils import translation as tr
from utils.checkpoint import load_model, save_checkpoint
from utils.errors import UserError
from utils.tokenizers import (BOS, EOS, PAD, SPECIALS, UNK, CharTokenizer, WordTokenizer, tokenize,
                              tokenizer_from_dict)
from utils.training import ArgumentParser, add_common_args

pytestmark = pytest.mark.usefixtures("one_thread")


# ---------------------------------------------------------------- toy translators

class ToyRNN(nn.Module):
    """A random tanh RNN decoder started from the mean source embedding: logits depend on the
    source and on the whole history through the state, so a wrong reorder of the state shows."""

    def __init__(self, src_vocab, tgt_vocab, hidden=8, seed=0, scale=3.0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.E_src = nn.Parameter(torch.randn(src_vocab, hidden, generator=g))
        self.E_tgt = nn.Parameter(torch.randn(tgt_vocab, hidden, generator=g))
        self.W = nn.Parameter(torch.randn(hidden, hidden, generator=g) / hidden ** 0.5)
        self.U = nn.Parameter(torch.randn(hidden, tgt_vocab, generator=g) * scale / hidden ** 0.5)

    def encode(self, src, src_len):
        mask = (torch.arange(src.size(1)) < src_len[:, None]).float()[..., None]   # (B, S, 1)
        mean = (self.E_src[src] * mask).sum(1) / src_len[:, None].float()          # (B, H)
        return {"mean": mean, "unused": None}

    def init_decoder(self, memory):
        return (torch.tanh(memory["mean"]), None)

    def decode_step(self, memory, state, prev):
        h = torch.tanh(state[0] @ self.W + self.E_tgt[prev] + memory["mean"])      # (B, H)
        logits = (h @ self.U).index_fill(1, torch.tensor([PAD, BOS]), -30.0)         # as if trained
        return logits, (h, None)

    def forward(self, src, src_len, tgt_in):
        memory = self.encode(src, src_len)
        state, out = self.init_decoder(memory), []
        for t in range(tgt_in.size(1)):
            logits, state = self.decode_step(memory, state, tgt_in[:, t])
            out.append(logits)
        return torch.stack(out, 1)                                                  # (B, T, V)


class TableModel(nn.Module):
    """Fixed transition log-probabilities: log p(next | prev) = table[prev], whatever the source."""

    def __init__(self, table):
        super().__init__()
        self.table = nn.Parameter(table)

    def encode(self, src, src_len):
        return src_len.float()[:, None]                                            # (B, 1), unused

    def init_decoder(self, memory):
        return None

    def decode_step(self, memory, state, prev):
        return self.table[prev], state

    def forward(self, src, src_len, tgt_in):
        return self.table[tgt_in]                                                   # (B, T, V)


class HistoryModel(nn.Module):
    """log p(next | source, tokens so far) read from a fixed random table at a hash of the source and
    the history: every prefix has a distribution of its own, so a beam whose state does not follow
    it, or a step scored with the wrong penalty, picks another hypothesis than exhaustive search."""

    def __init__(self, vocab, seed=0, scale=2.0, size=997):
        super().__init__()
        self.size = size
        self.table = nn.Parameter(torch.randn(size, vocab, generator=torch.Generator().manual_seed(seed)) * scale)

    def encode(self, src, src_len):
        return (src * torch.arange(1, src.size(1) + 1)).sum(1) % self.size       # (B,)

    def init_decoder(self, memory):
        return memory

    def decode_step(self, memory, state, prev):
        state = (state * 31 + prev + 7) % self.size                              # (B,) hash of the history
        return self.table[state], state


class LexiconModel(nn.Module):
    """Word-for-word translation in source order with a fixed lexicon (source id -> target id),
    then <eos>: a perfect translator of a corpus whose sentences align word by word."""

    def __init__(self, lexicon, tgt_vocab):
        super().__init__()
        self.logits = nn.Parameter(F.one_hot(lexicon, tgt_vocab).float() * 20)     # (src V, tgt V)
        self.eos = F.one_hot(torch.tensor(EOS), tgt_vocab).float() * 20             # (tgt V,)

    def encode(self, src, src_len):
        return {"src": src, "src_len": src_len}

    def init_decoder(self, memory):
        return torch.zeros_like(memory["src_len"])                                  # (B,) words read

    def decode_step(self, memory, state, prev):
        src, src_len = memory["src"], memory["src_len"]
        word = src.gather(1, state.clamp(max=src.size(1) - 1)[:, None])[:, 0]        # (B,)
        logits = torch.where((state < src_len)[:, None], self.logits[word], self.eos)
        return logits, state + 1

    def forward(self, src, src_len, tgt_in):
        memory = self.encode(src, src_len)
        state, out = self.init_decoder(memory), []
        for t in range(tgt_in.size(1)):
            logits, state = self.decode_step(memory, state, tgt_in[:, t])
            out.append(logits)
        return torch.stack(out, 1)


def sequence_log_prob(model, src, ids, alpha, finished=True):
    """Oracle: log p(ids [+ <eos>] | src) / lp, by feeding the tokens one at a time."""
    memory = model.encode(src, torch.tensor([src.size(1)]))
    state, prev, total = model.init_decoder(memory), torch.tensor([BOS]), 0.0
    for token in list(ids) + ([EOS] if finished else []):
        logits, state = model.decode_step(memory, state, prev)
        total += F.log_softmax(logits, -1)[0, token].item()
        prev = torch.tensor([token])
    return total / (((5 + len(ids) + finished) / 6) ** alpha)


def random_sources(n, vocab, seed=0, lo=1, hi=7):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(lo, hi, (n,), generator=g).tolist()
    return [torch.randint(4, vocab, (n_,), generator=g).tolist() for n_ in lengths]


def batch_of(sources):
    return tr.collate([(s, [4]) for s in sources], list(range(len(sources))))


# ---------------------------------------------------------------- tokenizer

def test_tokenize_lower_cases_and_splits_punctuation_keeping_accented_letters():
    assert tokenize("Zwei Männer, in T-Shirts; l'été!") == \
        ["zwei", "männer", ",", "in", "t-shirts", ";", "l", "'", "été", "!"]
    assert tokenize("  ") == []


def test_word_tokenizer_round_trip_unknown_words_and_specials():
    tok = WordTokenizer.from_texts(["A man rides a bike.", "A man eats.", "a dog"], min_freq=2)
    assert tok.words[:4] == list(SPECIALS) and (PAD, UNK, BOS, EOS) == (0, 1, 2, 3)
    assert (tok.PAD, tok.UNK, tok.BOS, tok.EOS) == (PAD, UNK, BOS, EOS)
    assert set(tok.words[4:]) == {"a", "man", "."}                 # seen at least twice
    assert tok.words[4] == "a"                                        # the most frequent first
    ids = tok.encode("A MAN .")
    assert tok.decode(ids) == "a man ."
    unknown = tok.encode("a zebra rides")                             # never raises
    assert unknown == [tok.index["a"], UNK, UNK]
    assert tok.unknown_words("a zebra rides a zebra") == ["zebra", "rides"]
    assert tok.decode([BOS] + ids + [EOS, PAD, PAD]) == "a man ."      # <bos>, <eos>, <pad> dropped
    assert tok.decode([UNK]) == "<unk>"
    assert tok.encode(tok.decode(unknown)) == unknown                # "<unk>" reads back as UNK


def test_tokenizer_from_dict_round_trips_and_refuses_the_wrong_kind():
    tok = WordTokenizer.from_texts(["b a a", "b c"], min_freq=1)
    again = tokenizer_from_dict(tok.to_dict())
    assert isinstance(again, WordTokenizer) and again.words == tok.words
    assert again.encode("c a zz") == tok.encode("c a zz")
    assert isinstance(tokenizer_from_dict(CharTokenizer("ab").to_dict()), CharTokenizer)
    pair = tr.TranslationData("de", "en", tok, tok, 10).to_dict()
    with pytest.raises(UserError, match="translation model"):
        tokenizer_from_dict(pair)
    with pytest.raises(UserError, match="language model"):
        tr.TranslationData.from_dict(CharTokenizer("ab").to_dict())
    back = tr.TranslationData.from_dict(pair)
    assert (back.src_lang, back.tgt_lang, back.max_len, back.tgt_tokenizer.words) == ("de", "en", 10, tok.words)


# ---------------------------------------------------------------- batches

def toy_pairs(n=230, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [(torch.randint(4, 20, (int(a),), generator=g).tolist(),
             torch.randint(4, 20, (int(b),), generator=g).tolist())
            for a, b in torch.randint(1, 40, (n, 2), generator=g)]


def test_batches_pad_mask_and_shift_the_target():
    pairs = toy_pairs(50)
    for batch in tr.bucketed_batches(pairs, 8, torch.Generator().manual_seed(0)):
        for b, i in enumerate(batch.index.tolist()):
            x, y = pairs[i]
            n, m = len(x), len(y)
            assert batch.src_len[b] == n and batch.src[b, :n].tolist() == x
            assert (batch.src[b, n:] == PAD).all() and batch.src_mask[b].tolist() == [True] * n + [False] * (batch.src.size(1) - n)
            assert batch.tgt_in[b, :m + 1].tolist() == [BOS] + y
            assert batch.tgt_out[b, :m + 1].tolist() == y + [EOS]
            assert (batch.tgt_in[b, m + 1:] == PAD).all() and (batch.tgt_out[b, m + 1:] == PAD).all()
            assert batch.tgt_mask[b].sum() == m + 1 and batch.tgt_mask[b, :m + 1].all()
        assert batch.n_tokens == sum(len(pairs[i][1]) + 1 for i in batch.index.tolist())
        assert batch.src.size(1) == batch.src_len.max()


def test_every_pair_once_per_pass_with_close_lengths_and_a_fixed_order_per_seed():
    pairs = toy_pairs(230)
    one_pass = lambda seed, **kw: [b.index.tolist() for b in tr.bucketed_batches(
        pairs, 8, torch.Generator().manual_seed(seed), **kw)]
    order = one_pass(0)
    assert sorted(i for batch in order for i in batch) == list(range(len(pairs)))
    assert order == one_pass(0) and order != one_pass(1)
    spread = lambda batches: sum(max(len(pairs[i][0]) for i in b) - min(len(pairs[i][0]) for i in b)
                                 for b in batches) / len(batches)
    assert spread(order) < 0.25 * spread(one_pass(0, pool=1))          # pool=1: random batches
    evaluation = [b.index.tolist() for b in tr.bucketed_batches(pairs, 8, shuffle=False)]
    assert sorted(i for b in evaluation for i in b) == list(range(len(pairs)))
    lengths = [len(pairs[i][0]) for b in evaluation for i in b]
    assert lengths == sorted(lengths)
    one_pool = one_pass(0, pool=1000)                                   # sorted as a whole, then shuffled
    first_lengths = [len(pairs[b[0]][0]) for b in one_pool]
    assert first_lengths != sorted(first_lengths)


def test_training_batches_go_on_forever_and_resume_where_they_stopped():
    pairs = toy_pairs(50)
    stream = tr.training_batches(pairs, 8, seed=3)
    first = [next(stream).index.tolist() for _ in range(20)]             # 7 batches a pass: 3 passes
    per_pass = math.ceil(50 / 8)
    for p in range(2):
        assert sorted(i for b in first[p * per_pass:(p + 1) * per_pass] for i in b) == list(range(50))
    assert first[:per_pass] != first[per_pass:2 * per_pass]             # reshuffled each pass
    resumed = tr.training_batches(pairs, 8, seed=3, start_step=9)
    assert [next(resumed).index.tolist() for _ in range(11)] == first[9:]


# ---------------------------------------------------------------- decoding

def test_index_batch_reorders_every_tensor_of_a_nested_state():
    state = {"h": (torch.arange(3.0), None), "c": [torch.arange(6).view(3, 2)], "n": 7}
    out = tr.index_batch(state, torch.tensor([2, 0, 0]))
    assert out["h"][0].tolist() == [2.0, 0.0, 0.0] and out["h"][1] is None and out["n"] == 7
    assert out["c"][0].tolist() == [[4, 5], [0, 1], [0, 1]]


def test_beam_of_one_is_greedy():
    model = ToyRNN(30, 12)
    batch = batch_of(random_sources(9, 30))
    greedy = tr.greedy_decode(model, batch.src, batch.src_len, max_len=12)
    assert tr.beam_search(model, batch.src, batch.src_len, beam=1, max_len=12, alpha=0.6) == greedy
    assert any(0 < len(h) < 12 for h in greedy)                       # some stop at <eos>, some do not
    assert all(EOS not in h and BOS not in h for h in greedy)
    # the oracle: the argmax of each step, fed back one sentence at a time
    for b in range(batch.src.size(0)):
        src = batch.src[b:b + 1, :batch.src_len[b]]
        memory = model.encode(src, batch.src_len[b:b + 1])
        state, prev, ids = model.init_decoder(memory), torch.tensor([BOS]), []
        for _ in range(12):
            logits, state = model.decode_step(memory, state, prev)
            prev = logits.argmax(-1)
            if prev.item() == EOS:
                break
            ids.append(prev.item())
        assert greedy[b] == ids


def test_beam_search_beats_myopic_greedy_on_a_fixed_table():
    # from <bos>, "a" (0.6) beats "b" (0.4); but after "a" the best is 0.4, after "b" <eos> has 0.95
    a, b, c, V = 4, 5, 6, 7
    p = torch.full((V, V), 1e-9)
    p[BOS, a], p[BOS, b] = 0.6, 0.4
    p[a, EOS], p[a, b], p[a, c] = 0.4, 0.3, 0.3
    p[b, EOS], p[b, c] = 0.95, 0.05
    p[c, EOS] = 1.0
    model = TableModel(p.log())
    src, src_len = torch.tensor([[4, 5]]), torch.tensor([2])
    greedy = tr.greedy_decode(model, src, src_len, max_len=5)[0]
    beam = tr.beam_search(model, src, src_len, beam=2, max_len=5, alpha=0.0)[0]
    # the oracle: every sequence of up to 4 words over {a, b, c}
    candidates = [list(s) for n in range(5) for s in itertools.product([a, b, c], repeat=n)]
    best = max(candidates, key=lambda s: sequence_log_prob(model, src, s, 0.0))
    assert greedy == [a]
    assert beam == best
    assert sequence_log_prob(model, src, beam, 0.0) > sequence_log_prob(model, src, greedy, 0.0) + 0.3


def test_a_beam_wide_enough_to_keep_everything_finds_the_best_normalised_hypothesis():
    model = HistoryModel(6)                                           # 4 specials + 2 words: 6^3 paths
    for sentence in random_sources(6, 20, seed=1):
        src = torch.tensor([sentence])
        found = tr.beam_search(model, src, torch.tensor([len(sentence)]), beam=256, max_len=3, alpha=1.0)[0]
        words = [t for t in range(6) if t != EOS]
        finished = [list(s) for n in range(3) for s in itertools.product(words, repeat=n)]
        unfinished = [list(s) for s in itertools.product(words, repeat=3)]   # cut at max_len
        scored = [(sequence_log_prob(model, src, s, 1.0), s) for s in finished] + \
                 [(sequence_log_prob(model, src, s, 1.0, finished=False), s) for s in unfinished]
        assert found == max(scored)[1]


def test_batched_beam_search_equals_one_sentence_at_a_time():
    model = ToyRNN(30, 12, seed=2)
    sources = random_sources(6, 30, seed=3)
    batch = batch_of(sources)
    together = tr.beam_search(model, batch.src, batch.src_len, beam=4, max_len=10, alpha=0.6)
    alone = [tr.beam_search(model, torch.tensor([s]), torch.tensor([len(s)]), 4, 10, 0.6)[0] for s in sources]
    assert together == alone
    assert together != tr.greedy_decode(model, batch.src, batch.src_len, 10)     # the beam matters here


# ---------------------------------------------------------------- losses

def test_free_running_loss_equals_teacher_forcing_when_greedy_follows_the_reference():
    model = ToyRNN(30, 12, seed=4)
    sources = random_sources(7, 30, seed=5)
    batch = batch_of(sources)
    greedy = tr.greedy_decode(model, batch.src, batch.src_len, max_len=8)
    following = [(s, g) for s, g in zip(sources, greedy) if g]           # references = its own greedy output
    batches = list(tr.bucketed_batches(following, 3, shuffle=False))
    tf, fr = tr.teacher_forced_loss(model, batches), tr.free_running_loss(model, batches)
    assert fr == pytest.approx(tf, rel=1e-6)
    # the oracle for the teacher-forced number: cross-entropy over each reference token, summed by hand
    total = count = 0
    for s, g in following:
        logits = model(torch.tensor([s]), torch.tensor([len(s)]), torch.tensor([[BOS] + g]))[0]
        total += F.cross_entropy(logits, torch.tensor(g + [EOS]), reduction="sum").item()
        count += len(g) + 1
    assert tf == pytest.approx(total / count, rel=1e-6)
    # references the model would not produce: feeding its own tokens now scores differently
    other = [(s, [(t + 1) % 8 + 4 for t in g]) for s, g in following]
    batches = list(tr.bucketed_batches(other, 3, shuffle=False))
    assert tr.free_running_loss(model, batches) != pytest.approx(tr.teacher_forced_loss(model, batches), rel=1e-3)


# ---------------------------------------------------------------- BLEU

SENTENCES = ["a man in a blue shirt is standing on a ladder .", "two dogs run through the snow together .",
             "a little girl climbs into a wooden playhouse .", "people are walking down a busy city street ."]


def test_bleu_is_100_for_identical_and_0_for_disjoint_text():
    score, signature = tr.bleu(SENTENCES, [s.upper() for s in SENTENCES])     # case does not count
    assert score == pytest.approx(100.0)
    assert "tok:none" in signature and "case:lc" in signature and "version:2.6.0" in signature
    disjoint = ["xx yy zz ww vv uu tt", "qq rr ss pp oo nn mm", "ll kk jj ii hh gg ff", "ee dd cc bb aa zy yx"]
    assert tr.bleu(disjoint, SENTENCES)[0] == 0.0
    assert 0 < tr.bleu(SENTENCES[:2] + disjoint[2:], SENTENCES)[0] < 100


def test_bleu_by_length_buckets_partition_the_sentences():
    words = lambda n: " ".join(f"w{i}" for i in range(n)) + " ."          # n words and a full stop
    lengths = [1, 5, 10, 11, 20, 21, 30, 31, 44, 3]
    srcs = [words(n) for n in lengths]
    refs = [SENTENCES[i % 4] for i in range(len(srcs))]
    hyps = [r if i % 3 else "nothing like it at all here" for i, r in enumerate(refs)]
    rows = tr.bleu_by_length(srcs, hyps, refs)
    assert [label for label, _, _ in rows] == ["1-10", "11-20", "21-30", "31+"]
    assert sum(n for _, n, _ in rows) == len(srcs)
    expected = {"1-10": [0, 1, 2, 9], "11-20": [3, 4], "21-30": [5, 6], "31+": [7, 8]}
    for label, n, score in rows:
        picked = expected[label]
        assert n == len(picked)
        assert score == pytest.approx(tr.bleu([hyps[i] for i in picked], [refs[i] for i in picked])[0])
    table = tr.format_bleu_table(rows + [("99+", 0, None)])
    assert len(table.splitlines()) == 6 and table.splitlines()[-1].rstrip().endswith("-")


# ---------------------------------------------------------------- data

def test_multi30k_loads_from_data_with_its_sizes(multi30k_on_disk):
    splits = data_module.load_parallel("de", "en")
    assert {k: (len(s), len(t)) for k, (s, t) in splits.items()} == \
        {"train": (29000, 29000), "val": (1014, 1014), "test": (1000, 1000)}
    assert all(s.strip() and t.strip() for s, t in zip(*splits["test"]))
    fr = data_module.load_parallel("en", "fr")
    assert fr["train"][0] == splits["train"][1]                           # the same English side


@pytest.mark.parametrize("src, tgt, match", [("de", "xx", "Multi30k has no 'xx'"), ("en", "en", "both")])
def test_a_bad_language_is_a_one_line_error(src, tgt, match):
    with pytest.raises(UserError, match=match) as e:
        data_module.load_parallel(src, tgt)
    assert "\n" not in str(e.value)


def test_a_folder_of_parallel_files_and_its_errors(tmp_path):
    pairs = [("Ein Mann\u2028fährt.", "A man rides."), ("Zwei Hunde.", "Two dogs.")]
    write_parallel_corpus(tmp_path / "c", {"train": pairs, "val": pairs[:1], "test": pairs[1:]}, "aa", "bb")
    splits = data_module.load_parallel("aa", "bb", tmp_path / "c")
    assert splits["train"] == ([p[0] for p in pairs], [p[1] for p in pairs])   # U+2028 does not split a line
    for folder, match in [(tmp_path / "none", "no such folder"), ("tinyshakespeare", "language modelling")]:
        with pytest.raises(UserError, match=match):
            data_module.load_parallel("aa", "bb", folder)
    with pytest.raises(UserError, match=r"no train\.aa\.gz"):
        data_module.load_parallel("aa", "bb", tmp_path)
    with gzip.open(tmp_path / "c" / "val.bb.gz", "wt", encoding="utf-8") as f:
        f.write("one\ntwo\n")
    with pytest.raises(UserError, match="aligned"):
        data_module.load_parallel("aa", "bb", tmp_path / "c")


def test_offline_multi30k_error_names_url_target_and_data_flag(monkeypatch, tmp_path):
    monkeypatch.setattr(data_module, "DATA_DIR", tmp_path / "data")
    url = "http://127.0.0.1:9/train.de.gz"                                 # nothing listens on the discard port
    old = data_module.CORPORA["multi30k/train.de.gz"]
    monkeypatch.setitem(data_module.CORPORA, "multi30k/train.de.gz", data_module.Corpus(url, old.sha256, old.filename))
    with pytest.raises(UserError) as e:
        data_module.load_parallel("de", "en")
    message = str(e.value)
    assert "train.de.gz from http://127.0.0.1:9/" in message and str(tmp_path / "data" / "multi30k") in message
    assert "--data DIR" in message and "\n" not in message


def test_translation_data_truncates_with_one_warning_and_drops_empty_pairs(tmp_path, capsys):
    long = " ".join(["wort"] * 12)
    train = [("ein hund .", "a dog ."), ("ein hund läuft .", "a dog runs ."), (long, "a dog ."), ("...", "")]
    write_parallel_corpus(tmp_path, {"train": train, "val": train[:2], "test": train[2:3]}, "aa", "bb")
    data = tr.TranslationData.load("aa", "bb", min_freq=2, max_len=5, data_dir=tmp_path)
    out = capsys.readouterr()
    assert out.err.count("warning") == 1 and "2 of" in out.err               # the long pair, in train and test
    assert "1 sentence pairs with an empty side" in out.out
    assert [len(data.pairs[k]) for k in ("train", "val", "test")] == [3, 2, 1]
    assert all(len(x) <= 5 and len(y) <= 5 for p in data.pairs.values() for x, y in p)
    assert data.text["test"] == ([long], ["a dog ."])                       # references untruncated
    assert data.src_tokenizer.encode("läuft") == [UNK]                     # seen once: below --min-freq
    again = tr.TranslationData.load("aa", "bb", 2, 5, tmp_path, tokenizers=data.to_dict())
    assert again.pairs == data.pairs
    with pytest.raises(UserError, match="aa->bb"):
        tr.TranslationData.load("bb", "aa", 2, 5, tmp_path, tokenizers=data.to_dict())


# ---------------------------------------------------------------- evaluation, checkpoints, generate

def tiny_data(tmp_path):
    sentences = [(f"ein {w} mann sieht {v} hund .", f"a {w} man sees {v} dog .")      # lengths 7 to 10
                 for w, v in itertools.product(["alter", "sehr junger", "großer"], ["keinen kleinen braunen", "den"])]
    sentences += sentences[:3]
    write_parallel_corpus(tmp_path, {"train": sentences, "val": sentences[:4], "test": sentences[4:]}, "aa", "bb")
    return tr.TranslationData.load("aa", "bb", min_freq=1, max_len=12, data_dir=tmp_path)


def test_evaluate_translation_reports_labelled_numbers(tmp_path, capsys):
    data = tiny_data(tmp_path)
    model = ToyRNN(data.src_tokenizer.vocab_size, data.tgt_tokenizer.vocab_size)
    model.train()
    r = tr.evaluate_translation(model, data, "test", beam=3, batch_size=2)
    assert model.training                                                    # put back as it was
    assert r["pairs"] == 5 and len(r["hypotheses"]) == 5
    assert r["ppl_teacher_forced"] == pytest.approx(math.exp(r["loss_teacher_forced"]))
    assert r["ppl_free_running"] == pytest.approx(math.exp(r["loss_free_running"]))
    assert r["bleu"] == r["bleu_beam"] and "bleu_greedy" in r
    assert sum(n for _, n, _ in r["bleu_by_length"]) == 5
    for sentence, hyp in zip(data.text["test"][0], r["hypotheses"]):        # in the order of the split
        ids = data.src_tokenizer.encode(sentence)
        alone = tr.beam_search(model, torch.tensor([ids]), torch.tensor([len(ids)]), 3, 12, 0.6)[0]
        assert hyp == data.tgt_tokenizer.decode(alone)
    assert len(set(r["hypotheses"])) > 1
    tr.print_evaluation(r)
    printed = capsys.readouterr().out
    for label in ("with teacher forcing", "without teacher forcing", "BLEU greedy", "beam 3", "version:2.6.0"):
        assert label in printed


def test_a_perfect_word_for_word_translator_scores_bleu_100_in_every_bucket(tmp_path):
    data = tiny_data(tmp_path)
    lexicon = torch.full((data.src_tokenizer.vocab_size,), UNK)
    for s, t in zip(*data.text["train"]):                              # the sentences align word by word
        for a, b in zip(data.src_tokenizer.encode(s), data.tgt_tokenizer.encode(t)):
            lexicon[a] = b
    model = LexiconModel(lexicon, data.tgt_tokenizer.vocab_size)
    r = tr.evaluate_translation(model, data, "test", beam=2, batch_size=2)
    references = data.text["test"][1]
    assert r["hypotheses"] == [" ".join(tokenize(t)) for t in references]
    assert r["bleu"] == pytest.approx(100.0) and r["bleu_greedy"] == pytest.approx(100.0)
    assert all(score == pytest.approx(100.0) for _, n, score in r["bleu_by_length"] if n)
    assert r["loss_teacher_forced"] < 1e-6 and r["loss_free_running"] < 1e-6


def test_checkpoints_know_translation_from_language_modelling(tmp_path):
    data = tiny_data(tmp_path / "corpus")
    build = lambda config: ToyRNN(config["src_vocab"], config["tgt_vocab"])
    config = {"src_vocab": data.src_tokenizer.vocab_size, "tgt_vocab": data.tgt_tokenizer.vocab_size}
    model = build(config)
    fields = dict(model_type="toy", model=model.state_dict(), optimizer={}, config=config, args={},
                  step=1, best_val_loss=1.0)
    save_checkpoint(tmp_path / "mt.pt", tokenizer=data.to_dict(), **fields)
    save_checkpoint(tmp_path / "lm.pt", tokenizer=CharTokenizer("ab").to_dict(), **fields)
    loaded, saved = tr.load_translator(tmp_path / "mt.pt", "toy", build)
    assert saved.src_tokenizer.words == data.src_tokenizer.words and saved.max_len == data.max_len
    assert torch.equal(loaded.U, model.U)
    with pytest.raises(UserError, match="not a translator"):
        tr.load_translator(tmp_path / "lm.pt", "toy", build)
    with pytest.raises(UserError, match="not a language model"):
        load_model(tmp_path / "mt.pt", "toy", build)


def test_translate_handles_unknown_long_and_empty_sources(tmp_path, capsys):
    data = tiny_data(tmp_path)
    model = ToyRNN(data.src_tokenizer.vocab_size, data.tgt_tokenizer.vocab_size)
    capsys.readouterr()
    text = tr.translate(model, data, "ein quatsch mann", beam=2)
    assert isinstance(text, str) and "quatsch" in capsys.readouterr().err
    ids = data.src_tokenizer.encode("ein mann " * 10)
    expected = data.tgt_tokenizer.decode(tr.greedy_decode(model, torch.tensor([ids[:12]]), torch.tensor([12]), 12)[0])
    assert tr.translate(model, data, "ein mann " * 10) == expected           # cut to max_len 12
    assert "first 12" in capsys.readouterr().err
    for empty in ("", "   "):
        with pytest.raises(UserError, match="nothing to translate"):
            tr.translate(model, data, empty)


def test_translation_flags_default_to_multi30k():
    parser = ArgumentParser()
    add_common_args(parser, epochs=10, lr=1e-3, batch_size=4, eval_every=5, folder="toy")
    tr.add_translation_args(parser)
    args = parser.parse_args([])
    assert (args.data, args.src, args.tgt, args.min_freq, args.max_len, args.beam, args.eval_only) == \
        ("multi30k", "de", "en", 2, 50, 5, False)
    assert parser.parse_args(["--src", "en", "--tgt", "fr", "--beam", "1"]).beam == 1
    generate = tr.add_generate_args(ArgumentParser()).parse_args(["--prompt", "ein mann ."])
    assert (generate.prompt, generate.beam, generate.alpha) == ("ein mann .", 5, 0.6)
