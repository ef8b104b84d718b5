import hashlib
import math

import pytest
import torch
import torch.nn.functional as F

from utils import batching, checkpoint, data, init, metrics, sampling, training
from utils.errors import UserError
from utils.tokenizers import CharTokenizer, UnknownTokenError, tokenizer_from_dict


# ---------------------------------------------------------------- tokenizers

def test_char_tokenizer_round_trip_and_sorted_vocabulary():
    tok = CharTokenizer.from_text("hello, world\n")
    assert tok.chars == sorted(set("hello, world\n"))
    ids = tok.encode("world, hello")
    assert tok.decode(ids) == "world, hello"
    again = tokenizer_from_dict(tok.to_dict())
    assert again.encode("hello") == tok.encode("hello") and again.vocab_size == tok.vocab_size


def test_unknown_characters_are_listed_in_the_error():
    tok = CharTokenizer.from_text("abc")
    with pytest.raises(UnknownTokenError) as e:
        tok.encode("abXcYX")
    assert "'X'" in str(e.value) and "'Y'" in str(e.value)


# ---------------------------------------------------------------- data

def test_split_is_first_ninety_percent_then_the_rest():
    train, val = data.split("abcdefghij")
    assert (train, val) == ("abcdefghi", "j")


def test_read_text_rejects_empty_and_non_utf8(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n")
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9".encode("latin-1"))
    with pytest.raises(UserError, match="empty"):
        data.read_text(empty)
    with pytest.raises(UserError, match="not UTF-8"):
        data.read_text(latin)
    with pytest.raises(UserError, match="no such file"):
        data.load_corpus(str(tmp_path / "missing.txt"))


def fake_corpus(monkeypatch, tmp_path, content, sha256):
    source = tmp_path / "source.txt"
    source.write_bytes(content)
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    monkeypatch.setitem(data.CORPORA, "fake", data.Corpus(source.as_uri(), sha256, "fake.txt"))


def test_download_on_first_use_verifies_checksum(monkeypatch, tmp_path):
    content = "to be or not to be\n".encode()
    fake_corpus(monkeypatch, tmp_path, content, hashlib.sha256(content).hexdigest())
    assert data.load_corpus("fake") == content.decode()
    assert (tmp_path / "data" / "fake.txt").read_bytes() == content


def test_download_with_wrong_checksum_leaves_no_file(monkeypatch, tmp_path):
    fake_corpus(monkeypatch, tmp_path, b"tampered\n", "0" * 64)
    with pytest.raises(UserError, match="checksum"):
        data.load_corpus("fake")
    assert list((tmp_path / "data").iterdir()) == []


def test_offline_error_names_url_target_and_data_flag(monkeypatch, tmp_path):
    url = "http://127.0.0.1:9/corpus.txt"   # nothing listens on the discard port
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    monkeypatch.setitem(data.CORPORA, "fake", data.Corpus(url, "0" * 64, "fake.txt"))
    with pytest.raises(UserError) as e:
        data.load_corpus("fake")
    message = str(e.value)
    assert url in message and str(tmp_path / "data" / "fake.txt") in message and "--data FILE" in message
    assert "\n" not in message


def test_char_lm_data_adds_characters_seen_only_in_validation(tmp_path, capsys):
    path = tmp_path / "t.txt"
    path.write_text("ab" * 45 + "abcz" * 3)
    tok, train, val = data.char_lm_data(str(path))
    assert set(tok.chars) == set("abcz")
    assert tok.decode(val.tolist()) == ("ab" * 45 + "abcz" * 3)[len(train):]
    assert "only in the validation" in capsys.readouterr().out


# ---------------------------------------------------------------- batching

def test_random_blocks_targets_are_inputs_shifted_by_one():
    corpus = torch.arange(1000)
    x, y = batching.random_blocks(corpus, 8, 16, torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 16)
    assert torch.equal(y, x + 1)            # with corpus = arange, the next token is x + 1


def test_sliding_windows_score_every_position_once():
    corpus = torch.arange(50)
    batches = list(batching.sliding_windows(corpus, context=4, batch_size=7))
    ys = torch.cat([y for _, y in batches])
    assert torch.equal(ys, torch.arange(4, 50))
    for x, y in batches:
        assert torch.equal(x, y[:, None] + torch.arange(-4, 0))


def test_stream_batches_continue_each_row_across_chunks():
    corpus = torch.arange(103)
    chunks = list(batching.stream_batches(corpus, batch_size=4, bptt=7))
    xs = torch.cat([x for x, _ in chunks], dim=1)            # (B, N): each row one stream
    ys = torch.cat([y for _, y in chunks], dim=1)
    n = (103 - 1) // 4
    assert xs.shape == (4, n)
    for i in range(4):
        assert torch.equal(xs[i], corpus[i * n:(i + 1) * n])     # row i of chunk k+1 follows chunk k
    assert torch.equal(ys, xs + 1)
    assert all(x.shape[1] == 7 for x, _ in chunks[:-1])


# ---------------------------------------------------------------- init

def test_uniform_and_xavier_statistics():
    torch.manual_seed(0)
    w = init.uniform_(torch.empty(300, 400), 0.1)
    assert w.abs().max() <= 0.1 and abs(w.var().item() - 0.1 ** 2 / 3) < 2e-4
    w = init.xavier_uniform_(torch.empty(300, 500))
    assert abs(w.var().item() - 2 / 800) / (2 / 800) < 0.05


@pytest.mark.parametrize("shape", [(64, 64), (32, 96), (96, 32)])
def test_orthogonal_has_orthonormal_rows_or_columns(shape):
    w = init.orthogonal_(torch.empty(shape), generator=torch.Generator().manual_seed(0))
    small = min(shape)
    gram = w @ w.T if shape[0] == small else w.T @ w
    assert torch.allclose(gram, torch.eye(small), atol=1e-5)


# ---------------------------------------------------------------- metrics

def test_conversions():
    assert metrics.perplexity(math.log(10)) == pytest.approx(10)
    assert metrics.bits_per_token(math.log(2)) == pytest.approx(1)


class Unigram(torch.nn.Module):
    def __init__(self, V):
        super().__init__()
        self.logits = torch.nn.Parameter(torch.randn(V))

    def forward(self, x, y):
        logits = self.logits.expand(len(y), -1)
        return logits, F.cross_entropy(logits, y)


def test_mean_loss_weights_uneven_batches_by_their_size():
    torch.manual_seed(0)
    model, ys = Unigram(5), torch.randint(5, (23,))
    whole = F.cross_entropy(model.logits.expand(23, -1), ys).item()
    batches = [(None, ys[:20]), (None, ys[20:])]
    assert metrics.mean_loss(model, batches) == pytest.approx(whole, rel=1e-6)


# ---------------------------------------------------------------- sampling

def test_temperature_near_zero_equals_argmax():
    torch.manual_seed(0)
    logits = torch.randn(64, 30)
    picks = sampling.sample_next(logits, temperature=1e-4)
    assert torch.equal(picks, logits.argmax(-1))
    assert torch.equal(sampling.sample_next(logits, greedy=True), logits.argmax(-1))


def test_top_k_never_picks_an_excluded_token():
    logits = torch.tensor([[3.0, 2.0, 1.0, 0.5, 0.0]]).repeat(2000, 1)
    picks = sampling.sample_next(logits, top_k=2, generator=torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {0, 1}


def test_top_p_keeps_the_smallest_set_reaching_p():
    probs = torch.tensor([[0.5, 0.3, 0.15, 0.05]])
    logits = probs.log().repeat(2000, 1)
    picks = sampling.sample_next(logits, top_p=0.7, generator=torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {0, 1}           # 0.5 < 0.7 <= 0.5 + 0.3
    picks = sampling.sample_next(logits, top_p=0.1, generator=torch.Generator().manual_seed(0))
    assert set(picks.tolist()) == {0}               # the most likely token always stays


# ---------------------------------------------------------------- checkpoint

def make_ckpt(model_type="mlp"):
    model = torch.nn.Module()
    model.w = torch.nn.Parameter(torch.randn(3, 4))
    opt = torch.optim.Adam(model.parameters())
    model.w.grad = torch.ones(3, 4)
    opt.step()
    return dict(model_type=model_type, model=model.state_dict(), optimizer=opt.state_dict(),
                config={"n": 3}, args={"lr": 1e-3}, tokenizer=CharTokenizer("ab").to_dict(),
                step=7, best_val_loss=1.5)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    path = tmp_path / "m" / "model.pt"
    fields = make_ckpt()
    checkpoint.save_checkpoint(path, **fields)
    raw = torch.load(path, weights_only=True)
    assert torch.equal(raw["model"]["w"], fields["model"]["w"]) and raw["step"] == 7
    loaded = checkpoint.load_checkpoint(path, "mlp")
    assert loaded["optimizer"]["state"][0]["step"] == fields["optimizer"]["state"][0]["step"]


def test_checkpoint_errors_are_clear(tmp_path):
    path = tmp_path / "model.pt"
    with pytest.raises(UserError, match="no checkpoint"):
        checkpoint.load_checkpoint(path, "gru")
    checkpoint.save_checkpoint(path, **make_ckpt("lstm"))
    with pytest.raises(UserError, match="'lstm' model, not 'gru'"):
        checkpoint.load_checkpoint(path, "gru")
    path.write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable checkpoint"):
        checkpoint.load_checkpoint(path, "gru")


def test_a_crash_while_saving_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "model.pt"
    checkpoint.save_checkpoint(path, **make_ckpt())
    before = path.read_bytes()

    def crashing_save(obj, f):
        f.write(b"half a file")
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", crashing_save)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.save_checkpoint(path, **make_ckpt())
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["model.pt"]     # no temporary left behind


# ---------------------------------------------------------------- training helpers

def test_clip_by_norm_and_by_value():
    p = torch.nn.Parameter(torch.zeros(4))
    p.grad = torch.tensor([3.0, 4.0, 0.0, 0.0])
    assert training.clip_gradients([p], 1.0) == pytest.approx(5.0)
    assert torch.linalg.vector_norm(p.grad).item() == pytest.approx(1.0, rel=1e-4)
    p.grad = torch.tensor([3.0, -4.0, 0.5, 0.0])
    training.clip_gradients([p], 1.0, mode="value")
    assert torch.equal(p.grad, torch.tensor([1.0, -1.0, 0.5, 0.0]))
    p.grad = torch.tensor([0.3, 0.4, 0.0, 0.0])
    training.clip_gradients([p], 1.0)                                  # under the limit: unchanged
    assert torch.allclose(p.grad, torch.tensor([0.3, 0.4, 0.0, 0.0]))


def test_cosine_schedule_warms_up_then_decays_to_the_floor():
    lrs = [training.cosine_lr(s, 100, 1.0, warmup=10, min_lr_ratio=0.1) for s in range(101)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert lrs[100] == pytest.approx(0.1)
    assert all(a >= b for a, b in zip(lrs[10:], lrs[11:]))


def test_same_seed_same_numbers():
    training.set_seed(3)
    a = torch.randn(5)
    training.set_seed(3)
    assert torch.equal(a, torch.randn(5))


def test_device_choice():
    assert training.pick_device("cpu").type == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no CUDA"):
            training.pick_device("cuda")


def test_bad_numbers_on_the_command_line_are_rejected():
    parser = training.ArgumentParser()
    training.add_common_args(parser, epochs=10, lr=1e-3, batch_size=4, eval_every=5, folder="x")
    for bad in (["--epochs", "0"], ["--epochs", "-3"], ["--lr", "nan"], ["--batch-size", "two"]):
        with pytest.raises(SystemExit) as e:
            parser.parse_args(bad)
        assert e.value.code == 2
