"""The RNN Encoder-Decoder of Cho et al. 2014 (gru/model.py GRUEncoderDecoder), its --task translate
in gru/train.py and gru/generate.py, and the shared loop in utils/translation_training.py."""
import itertools

import pytest
import torch

from conftest import assert_one_line_error, interrupt_training, run_script, write_parallel_corpus
from gru import generate
from gru.model import GRUBPTT, GRUConfig, GRUEncoderDecoder, GRULanguageModel, GRULayer, Seq2SeqConfig
from gru.train import loss_fn, main, parse_args
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import UserError
from utils.tokenizers import CharTokenizer
from utils.translation import (TranslationData, collate, greedy_decode, load_translator, teacher_forced_loss,
                               translate)

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = ["--n-hidden", 16, "--n-embd", 8, "--batch-size", 4, "--min-freq", 1, "--beam", 2]


def randomise(model, scale=0.5):
    """Biases start at zero; make every parameter matter."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def tiny_model(maxout=0, backward="manual", seed=0, V_x=11, V_y=13):
    torch.manual_seed(seed)
    config = Seq2SeqConfig(src_vocab=V_x, tgt_vocab=V_y, n_embd=5, n_hidden=6, maxout=maxout, dropout=0.0,
                           backward=backward)
    return randomise(GRUEncoderDecoder(config)).eval()


def padded_batch(B=3, S=7, T=5, V_x=11, V_y=13, seed=1):
    """Sources of lengths S, S-3, 2 with random ids (not only PAD) after their ends; targets (B, T)."""
    g = torch.Generator().manual_seed(seed)
    src_len = torch.tensor([S, S - 3, 2][:B])
    return torch.randint(4, V_x, (B, S), generator=g), src_len, torch.randint(4, V_y, (B, T), generator=g)


def decode_steps(model, memory, h, tgt_in):
    """Every step's logits from decode_step, fed the reference tokens: (B, T, V)."""
    out = []
    for t in range(tgt_in.size(1)):
        logits, h = model.decode_step(memory, h, tgt_in[:, t])
        out.append(logits)
    return torch.stack(out, 1)


# ---------------------------------------------------------------- the model

@pytest.mark.parametrize("maxout", [0, 3])
@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_teacher_forced_forward_equals_decode_step_by_step(maxout, backward):
    model = tiny_model(maxout, backward)
    src, src_len, tgt_in = padded_batch()
    fast = model(src, src_len, tgt_in)                                   # one call of the fast BPTT
    memory = model.encode(src, src_len)
    slow = decode_steps(model, memory, model.init_decoder(memory), tgt_in)
    assert fast.shape == (3, 5, 13)
    assert torch.allclose(fast, slow, atol=1e-5), (fast - slow).abs().max()


@pytest.mark.parametrize("maxout", [0, 3])
def test_written_out_bptt_gives_autograds_gradients_for_the_whole_model(maxout):
    manual, auto = tiny_model(maxout, "manual"), tiny_model(maxout, "autograd")
    auto.load_state_dict(manual.state_dict())
    src, src_len, tgt_in = padded_batch()
    tgt_out = torch.roll(tgt_in, -1, 1)
    for model in (manual, auto):
        torch.nn.functional.cross_entropy(model(src, src_len, tgt_in).flatten(0, 1), tgt_out.flatten()).backward()
    for (name, p), q in zip(manual.named_parameters(), auto.parameters()):
        assert p.grad is not None and p.grad.abs().sum() > 0, name
        assert torch.allclose(p.grad, q.grad, atol=1e-5), (name, (p.grad - q.grad).abs().max())


def paper_decoder_step(model, e, h, c):
    """h'_t and the logits of the paper's appendix (decoder) written out from the model's weights (plus our biases)."""
    W_r, W_z, W = model.decoder.W.chunk(3, 1)
    U_r, U_z, U = model.decoder.U.chunk(3, 1)
    C_r, C_z, C = model.C.chunk(3, 1)
    b_r, b_z, b = model.decoder.b.chunk(3)
    z = torch.sigmoid(e @ W_z + h @ U_z + c @ C_z + b_z)
    r = torch.sigmoid(e @ W_r + h @ U_r + c @ C_r + b_r)
    h_tilde = torch.tanh(e @ W + b + r * (h @ U + model.decoder.b_hn + c @ C))   # the reset scales U'h' + Cc
    h = z * h + (1 - z) * h_tilde
    s = h @ model.O_h + e @ model.O_y + c @ model.O_c + model.b_o
    if model.config.maxout:
        s = torch.maximum(s[:, 0::2], s[:, 1::2])                                # max{s'_2i-1, s'_2i}
        s = s @ model.G + model.b_g
    return s, h


@pytest.mark.parametrize("maxout", [0, 3])
def test_decode_step_is_the_papers_decoder_written_out(maxout):
    model = tiny_model(maxout)
    src, src_len, _ = padded_batch()
    memory = model.encode(src, src_len)
    c = memory["c"]
    h = model.init_decoder(memory)
    assert torch.allclose(h, torch.tanh(c @ model.V_prime))                      # h'_0 = tanh(V' c)
    for prev in (torch.tensor([2, 2, 2]), torch.tensor([5, 12, 7])):
        logits, h_next = model.decode_step(memory, h, prev)
        want_logits, want_h = paper_decoder_step(model, model.E_y[prev], h, c)
        assert torch.allclose(h_next, want_h, atol=1e-6) and torch.allclose(logits, want_logits, atol=1e-5)
        h = h_next


def test_the_encoders_summary_and_the_translation_ignore_what_follows_each_source():
    model = tiny_model(3)
    src, src_len, tgt_in = padded_batch()
    other = src.clone()
    other[1, 4:] = torch.randint(4, 11, (3,))                                    # other ids after the end
    other[2, 2:] = 0                                                             # or plain padding
    assert not torch.equal(src, other)
    assert torch.allclose(model.encode(src, src_len)["c"], model.encode(other, src_len)["c"], atol=1e-6)
    assert torch.allclose(model(src, src_len, tgt_in), model(other, src_len, tgt_in), atol=1e-6)
    # and each sentence alone, unpadded, gives what it gives in the padded batch
    for b, n in enumerate(src_len.tolist()):
        alone = model(src[b:b + 1, :n], src_len[b:b + 1], tgt_in[b:b + 1])
        assert torch.allclose(alone, model(src, src_len, tgt_in)[b:b + 1], atol=1e-5)
    # while a source word before the end does change c
    changed = src.clone()
    changed[:, 0] = (src[:, 0] - 4 + 1) % 7 + 4
    assert (model.encode(changed, src_len)["c"] - model.encode(src, src_len)["c"]).abs().amax(1).min() > 1e-4


@pytest.mark.parametrize("path", ["both", "gru_only", "output_only"])
def test_the_decoder_reads_c_at_every_step(path):
    """h'_0 fixed, c changed: every step's logits change, through the GRU's gates (C) and through
    the output (O_c), each on its own."""
    model = tiny_model(3)
    with torch.no_grad():
        if path == "gru_only":
            model.O_c.zero_()
        if path == "output_only":
            model.C.zero_()
    src, src_len, tgt_in = padded_batch(T=8)
    memory = model.encode(src, src_len)
    h0 = model.init_decoder(memory)
    other_memory = model.encode(src.flip(1), src_len.new_full((3,), src.size(1)))
    assert (memory["c"] - other_memory["c"]).abs().min() > 1e-4
    a = decode_steps(model, memory, h0, tgt_in)
    b = decode_steps(model, other_memory, h0, tgt_in)                            # the same h'_0
    assert (a - b).abs().amax(-1).min() > 1e-4                                   # every sentence, every step


def test_inner_term_gradients_pass_gradcheck_and_only_the_cudnn_form_takes_it():
    torch.manual_seed(0)
    B, T, H = 2, 4, 3
    kw = dict(dtype=torch.float64, requires_grad=True)
    a, U, inner, h0 = torch.randn(B, T, 3 * H, **kw), torch.randn(H, 3 * H, **kw), torch.randn(B, H, **kw), \
        torch.randn(B, H, **kw)
    assert torch.autograd.gradcheck(GRUBPTT.apply, (a, U, inner, h0))
    layer = randomise(GRULayer(2, H, "cudnn").double())
    x = torch.randn(B, T, 2, dtype=torch.float64)
    h, _ = layer(x, h0, inner)
    h_t = h0
    for t in range(T):                                                            # the same as step by step
        h_t = layer.step(x[:, t], h_t, inner)
        assert torch.allclose(h[:, t], h_t)
    assert not torch.allclose(h, layer(x, h0)[0])                                 # and inner matters
    with pytest.raises(ValueError, match="cudnn"):
        GRULayer(2, H, "cho")(x.float(), inner=inner.float())


def test_learns_to_reverse_a_sequence():
    torch.manual_seed(0)
    V = 10                                                     # 4 specials, 6 symbols
    model = GRUEncoderDecoder(Seq2SeqConfig(V, V, n_embd=16, n_hidden=32, maxout=16, dropout=0.0))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)

    def batch(n=32):
        xs = [torch.randint(4, V, (int(torch.randint(2, 6, ())),)).tolist() for _ in range(n)]
        return collate([(x, x[::-1]) for x in xs], list(range(n)))

    losses = []
    for _ in range(250):
        loss = loss_fn(model, batch())
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    assert sum(losses[-10:]) / 10 < 0.2 * sum(losses[:10]) / 10
    model.eval()
    test = batch(100)
    hyps = greedy_decode(model, test.src, test.src_len, 8)
    refs = [row[:n].flip(0).tolist() for row, n in zip(test.src, test.src_len)]
    assert sum(h == r for h, r in zip(hyps, refs)) >= 50                        # chance: ~0


# ---------------------------------------------------------------- train.py and generate.py

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """A tiny German-English corpus under Multi30k's file names, word for word."""
    folder = tmp_path_factory.mktemp("corpus")
    words = [("alter", "old"), ("junger", "young"), ("großer", "tall")]
    objects = [("den hund", "the dog"), ("keinen ball", "no ball"), ("einen baum", "a tree")]
    pairs = [(f"ein {w} mann sieht {o} .", f"a {v} man sees {p} .") for (w, v), (o, p) in itertools.product(words, objects)]
    return write_parallel_corpus(folder, {"train": pairs, "val": pairs[::2], "test": pairs[::2]})


def lm_checkpoint(path):
    model = GRULanguageModel(GRUConfig(vocab_size=3, n_hidden=4))
    save_checkpoint(path, model_type="gru", model=model.state_dict(), optimizer={}, config=vars(model.config),
                    args={}, tokenizer=CharTokenizer("ab ").to_dict(), step=1, best_val_loss=1.0)
    return path


def test_flags_and_defaults_follow_the_task():
    lm, mt = parse_args([]), parse_args(["--task", "translate"])
    assert (lm.data, lm.n_hidden, lm.bptt) == ("tinyshakespeare", 512, 100)
    d = Seq2SeqConfig()
    assert (mt.data, mt.src, mt.tgt, mt.n_hidden, mt.n_embd, mt.maxout, mt.beam) == \
        ("multi30k", "de", "en", d.n_hidden, d.n_embd, False, 5)
    assert mt.epochs != lm.epochs and not hasattr(mt, "bptt")


def test_train_then_generate_then_resume_then_eval_only(corpus, tmp_path, scripts_on_one_thread, capsys):
    ckpt = tmp_path / "model.pt"
    r = run_script("gru", "train.py", "--task", "translate", "--data", corpus, "--epochs", 4, "--eval-every", 2,
                   "--checkpoint", ckpt, "--maxout", *TINY)
    assert r.returncode == 0, r.stderr
    for label in ("with teacher forcing", "without teacher forcing", "BLEU greedy", "BLEU beam 2",
                  "sacrebleu nrefs:1", "source words", "summary: val loss"):
        assert label in r.stdout, label
    assert "detokenize" not in r.stderr
    assert (tmp_path / "log.csv").read_text().startswith("step,train_loss,val_loss")
    saved = load_checkpoint(ckpt, "gru_seq2seq")
    assert saved["step"] == 4 and saved["config"]["maxout"] == 8 and saved["tokenizer"]["kind"] == "translation"

    # generate.py --task translate prints the translation, greedy or with a beam
    model, data = load_translator(ckpt, "gru_seq2seq", lambda c: GRUEncoderDecoder(Seq2SeqConfig(**c)))
    sentence = "ein alter mann sieht den hund ."
    r = run_script("gru", "generate.py", "--task", "translate", "--checkpoint", ckpt, "--prompt", sentence, "--beam", 3)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == translate(model, data, sentence, beam=3)
    capsys.readouterr()
    generate.main(["--task", "translate", "--checkpoint", str(ckpt), "--prompt", sentence, "--beam", "1"])
    assert capsys.readouterr().out.strip() == translate(model, data, sentence, beam=1)

    # resume continues the step count; --eval-only reports the checkpoint on the test split
    main(["--task", "translate", "--data", str(corpus), "--epochs", "6", "--eval-every", "2",
          "--checkpoint", str(ckpt), "--resume", "--maxout", *map(str, TINY)])
    assert "resuming from step 4" in capsys.readouterr().out and load_checkpoint(ckpt, "gru_seq2seq")["step"] == 6
    with pytest.raises(UserError, match="n_hidden=16 .asked 8."):     # another size, asked for again
        main(["--task", "translate", "--data", str(corpus), "--epochs", "8", "--checkpoint", str(ckpt), "--resume",
              *map(str, TINY), "--n-hidden", "8"])
    results = main(["--task", "translate", "--eval-only", "--data", str(corpus), "--checkpoint", str(ckpt),
                    *map(str, TINY)])
    model, saved = load_translator(ckpt, "gru_seq2seq", lambda c: GRUEncoderDecoder(Seq2SeqConfig(**c)))
    test = TranslationData.load("de", "en", 1, 50, corpus, tokenizers=saved.to_dict())
    assert results["pairs"] == len(test.pairs["test"]) == 5
    assert results["loss_teacher_forced"] == pytest.approx(teacher_forced_loss(model, test.eval_batches("test")))


def test_a_checkpoint_of_the_other_task_is_a_one_line_error(corpus, tmp_path, scripts_on_one_thread, capsys):
    lm = lm_checkpoint(tmp_path / "lm.pt")
    mt = tmp_path / "mt.pt"
    main(["--task", "translate", "--data", str(corpus), "--epochs", "1", "--checkpoint", str(mt), "--beam", "1",
          *map(str, TINY[:-2])])
    assert "translator" in assert_one_line_error(run_script("gru", "generate.py", "--checkpoint", mt, "--task", "lm"))
    with pytest.raises(UserError, match="holds a GRU language model, not a GRU encoder-decoder"):
        generate.main(["--checkpoint", str(lm), "--task", "translate"])
    with pytest.raises(UserError, match="'gru' model"):
        main(["--task", "translate", "--eval-only", "--checkpoint", str(lm), "--data", str(corpus)])
    capsys.readouterr()
    with pytest.raises(SystemExit):                                   # an LM flag: one line, exit status 2
        parse_args(["--task", "translate", "--bptt", "5"])
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: unrecognized arguments: --bptt") and "\n" not in err


def test_ctrl_c_saves_a_loadable_checkpoint_and_exits_cleanly(corpus, tmp_path, scripts_on_one_thread):
    code, out, err = interrupt_training("gru", tmp_path, "--task", "translate", "--data", corpus, *TINY)
    assert code == 130, err  # 128 + SIGINT: interrupted, not finished
    assert "Traceback" not in err and "interrupted" in out and "--eval-only" in out
    assert load_checkpoint(tmp_path / "model.pt", "gru_seq2seq")["step"] > 0
