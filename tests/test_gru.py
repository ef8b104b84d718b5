import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import TINY_TEXT, assert_one_line_error, interrupt_training, run_script
from gru.model import GRUBPTT, GRUConfig, GRULanguageModel, GRULayer
from gru.train import main, parse_args
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import UserError
from utils.metrics import evaluate_recurrent
from utils.sampling import generate_recurrent

# two layers, to exercise the stack
TINY = ["--n-hidden", 16, "--layers", 2, "--batch-size", 8, "--bptt", 16]
BOTH = pytest.mark.parametrize("backward", ["manual", "autograd"])

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(model, scale=0.5):
    """Biases start at zero; make every parameter matter."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def copy_from_torch_gru(rnn, layers):
    """Put the weights of nn.GRU `rnn` into our cudnn-variant layers, one per torch layer.
    nn.GRU stacks its gates as rows [r|z|n] of weight_ih_l{k} (3H, I) and weight_hh_l{k} (3H, H);
    ours are the columns [r|z|h~] of W (I, 3H) and U (H, 3H): the same order, transposed. Its two
    biases: b_ih and the r, z parts of b_hh add up to our b; b_hn (inside the reset) is ours."""
    H = rnn.hidden_size
    with torch.no_grad():
        for k, layer in enumerate(layers):
            b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}"), getattr(rnn, f"bias_hh_l{k}")
            layer.W.copy_(getattr(rnn, f"weight_ih_l{k}").T)
            layer.U.copy_(getattr(rnn, f"weight_hh_l{k}").T)
            layer.b.copy_(b_ih + torch.cat([b_hh[:2 * H], torch.zeros(H, dtype=b_hh.dtype)]))
            layer.b_hn.copy_(b_hh[2 * H:])


def torch_gradient_pairs(rnn, layers):
    """(ours, torch's) for every gradient of the weights, in our layout."""
    H, pairs = rnn.hidden_size, []
    for k, layer in enumerate(layers):
        b_ih, b_hh = getattr(rnn, f"bias_ih_l{k}").grad, getattr(rnn, f"bias_hh_l{k}").grad
        pairs += [(layer.W.grad, getattr(rnn, f"weight_ih_l{k}").grad.T),
                  (layer.U.grad, getattr(rnn, f"weight_hh_l{k}").grad.T),
                  (layer.b.grad, b_ih), (layer.b.grad[:2 * H], b_hh[:2 * H]), (layer.b_hn.grad, b_hh[2 * H:])]
    return pairs


@BOTH
def test_cudnn_variant_layer_matches_torch_nn_gru_with_every_gradient(backward):
    torch.manual_seed(0)
    B, T, I, H = 3, 7, 5, 4                                           # any input size
    rnn = nn.GRU(I, H, batch_first=True).double()
    ours = GRULayer(I, H, variant="cudnn", backward=backward).double()
    copy_from_torch_gru(rnn, [ours])
    x, h0 = torch.randn(B, T, I, dtype=torch.float64), torch.randn(B, H, dtype=torch.float64)
    x_ref, h0_ref = x.clone().requires_grad_(), h0.clone().requires_grad_()
    x.requires_grad_(), h0.requires_grad_()

    h, h_T = ours(x, h0)
    h_ref, h_T_ref = rnn(x_ref, h0_ref[None])
    assert torch.allclose(h, h_ref, atol=1e-10) and torch.allclose(h_T, h_T_ref[0], atol=1e-10)
    # a loss that weighs every output and the final state differently
    w, v = torch.randn_like(h), torch.randn_like(h_T)
    ((h * w).sum() + (h_T * v).sum()).backward()
    ((h_ref * w).sum() + (h_T_ref[0] * v).sum()).backward()
    pairs = torch_gradient_pairs(rnn, [ours]) + [(x.grad, x_ref.grad), (h0.grad, h0_ref.grad)]
    for a, b in pairs:
        assert torch.allclose(a, b, atol=1e-10), (a - b).abs().max()


@BOTH
def test_cudnn_variant_language_model_matches_torch_nn_gru_two_layers(backward):
    torch.manual_seed(0)
    V, H = 11, 6
    ours = GRULanguageModel(GRUConfig(V, H, n_layers=2, variant="cudnn", backward=backward))
    rnn, out = nn.GRU(V, H, num_layers=2, batch_first=True), nn.Linear(H, V)
    copy_from_torch_gru(rnn, ours.layers)
    with torch.no_grad():
        out.weight.copy_(ours.W_y.T)
        out.bias.copy_(ours.b_y)
    idx, y = torch.randint(V, (3, 8)), torch.randint(V, (3, 8))
    h0 = torch.randn(2, 3, H)

    logits, loss, state = ours(idx, list(h0), y)
    h, h_T = rnn(F.one_hot(idx, V).float(), h0)
    assert torch.allclose(logits, out(h), atol=1e-5)
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(state, h_T))
    loss.backward()
    F.cross_entropy(out(h).reshape(-1, V), y.reshape(-1)).backward()
    for a, b in torch_gradient_pairs(rnn, ours.layers):
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def cho_step(x, h, W_r, W_z, W, U_r, U_z, U, b_r, b_z, b):
    """One step of Cho et al. 2014, §2.3, written out (matrices (in, out); plus our biases)."""
    r = torch.sigmoid(x @ W_r + h @ U_r + b_r)                        # (5)
    z = torch.sigmoid(x @ W_z + h @ U_z + b_z)                        # (6)
    h_tilde = torch.tanh(x @ W + (r * h) @ U + b)                     # (8)
    return z * h + (1 - z) * h_tilde                                  # (7)


@BOTH
def test_cho_variant_matches_a_hand_written_step_of_eqs_5_to_8(backward):
    torch.manual_seed(0)
    B, T, I, H = 2, 5, 3, 4
    layer = randomise(GRULayer(I, H, variant="cho", backward=backward))
    assert layer.b_hn is None                                         # no bias inside the reset
    x, h = torch.randn(B, T, I), torch.randn(B, H)
    outputs, h_T = layer(x, h)
    with torch.no_grad():
        weights = [*layer.W.chunk(3, 1), *layer.U.chunk(3, 1), *layer.b.chunk(3)]
        for t in range(T):
            h = cho_step(x[:, t], h, *weights)
            assert torch.allclose(outputs[:, t], h, atol=1e-6)
    assert torch.allclose(h_T, h, atol=1e-6)


def test_the_variants_differ_only_where_the_reset_acts_and_z_keeps_the_old_state():
    """With the reset gate open (r = 1) the two forms are one unit; with z = 1 both copy h_{t-1}
    forward, as torch.nn.GRU does: torch does not swap the role of z against Eq. (7)."""
    torch.manual_seed(0)
    cho, cudnn = GRULayer(3, 4, "cho"), GRULayer(3, 4, "cudnn")
    randomise(cho)
    cudnn.load_state_dict({**cho.state_dict(), "b_hn": torch.zeros(4)})
    x, h0 = torch.randn(2, 6, 3), torch.randn(2, 4)
    assert not torch.allclose(cho(x, h0)[0], cudnn(x, h0)[0], atol=1e-3)
    with torch.no_grad():
        for layer in (cho, cudnn):
            layer.b[:4] = 50.0                                        # r = σ(... + 50) = 1
    assert torch.allclose(cho(x, h0)[0], cudnn(x, h0)[0], atol=1e-6)
    rnn = nn.GRU(3, 4, batch_first=True)
    with torch.no_grad():
        for layer in (cho, cudnn):
            layer.b[4:8] = 50.0                                       # z = 1
        rnn.bias_ih_l0[4:8] = 50.0                                    # torch's z: rows [r|z|n]
    for out in (cho(x, h0)[0], cudnn(x, h0)[0], rnn(x, h0[None])[0]):
        assert torch.allclose(out, h0[:, None].expand(-1, 6, -1), atol=1e-6)


@pytest.mark.parametrize("variant", ["cho", "cudnn"])
def test_manual_bptt_passes_gradcheck_in_double_precision(variant):
    torch.manual_seed(0)
    B, T, H = 2, 4, 3
    d = dict(dtype=torch.float64, requires_grad=True)
    a, U, h0 = torch.randn(B, T, 3 * H, **d), torch.randn(H, 3 * H, **d), torch.randn(B, H, **d)
    if variant == "cho":
        assert torch.autograd.gradcheck(lambda a, U, h0: GRUBPTT.apply(a, U, None, h0), (a, U, h0))
    else:
        b_hn = torch.randn(H, **d)
        assert torch.autograd.gradcheck(GRUBPTT.apply, (a, U, b_hn, h0))


def gradients(model, idx, y, state=None):
    _, loss, new_state = model(idx, state, y)
    loss.backward()
    return loss, new_state, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("variant", ["cho", "cudnn"])
def test_manual_and_autograd_backward_agree_with_two_layers(variant):
    torch.manual_seed(0)
    config = GRUConfig(9, 6, n_layers=2, variant=variant)
    manual = randomise(GRULanguageModel(config))
    auto = GRULanguageModel(GRUConfig(**{**config.__dict__, "backward": "autograd"}))
    auto.load_state_dict(manual.state_dict())
    idx, y = torch.randint(9, (4, 10)), torch.randint(9, (4, 10))
    state = [torch.randn(4, 6, requires_grad=True) for _ in range(2)]
    (l1, s1, g1), (l2, s2, g2) = gradients(manual, idx, y, state), gradients(auto, idx, y, state)
    assert torch.allclose(l1, l2, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(s1, s2))
    assert len(g1) == len(g2) == (8 if variant == "cudnn" else 6) + 2
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g2))
    # and the error reaches the initial state the same way (twice: grads accumulate over both runs)
    h0_grads = [s.grad.clone() for s in state]
    for s in state:
        s.grad = None
    gradients(manual, idx, y, state)
    assert all(torch.allclose(2 * s.grad, g, atol=1e-6) and s.grad.abs().max() > 0
               for s, g in zip(state, h0_grads))


@pytest.mark.parametrize("variant", ["cho", "cudnn"])
def test_step_is_forward_one_step_at_a_time(variant):
    torch.manual_seed(0)
    layer = randomise(GRULayer(7, 5, variant=variant))
    x, h0 = torch.randn(3, 4, 7), torch.randn(3, 5)
    outputs, _ = layer(x, h0)
    assert torch.allclose(layer.step(x[:, 0], h0), layer(x[:, :1], h0)[1], atol=1e-6)
    h = h0
    for t in range(4):
        h = layer.step(x[:, t], h)
        assert torch.allclose(h, outputs[:, t], atol=1e-6)
    assert h.grad_fn is not None                                      # plain autograd: decoders train through it
    assert torch.allclose(layer(x)[0], layer(x, torch.zeros(3, 5))[0])   # h0 None: zeros


def test_manual_forward_leaves_its_input_untouched():
    a = torch.randn(1, 1, 9)
    before = a.clone()
    for b_hn in (None, torch.randn(3)):
        GRUBPTT.apply(a, torch.randn(3, 9), b_hn, torch.randn(1, 3))
        assert torch.equal(a, before)


def test_bad_variant_or_backward_is_refused():
    with pytest.raises(ValueError, match="variant"):
        GRULayer(3, 4, variant="keras")
    with pytest.raises(ValueError, match="backward"):
        GRULayer(3, 4, backward="numeric")


@BOTH
def test_state_carries_across_chunks_but_gradients_stop_at_the_border(backward):
    torch.manual_seed(0)
    model = GRULanguageModel(GRUConfig(vocab_size=10, n_hidden=8, n_layers=2, backward=backward))
    # chunk 1 uses tokens 0-4 only, chunk 2 tokens 5-9 only: rows 0-4 of W are chunk 1's inputs
    x1, x2 = torch.randint(5, (2, 6)), torch.randint(5, 10, (2, 6))
    y2 = torch.randint(10, (2, 6))
    W = model.layers[0].W

    _, _, state = model(x1)
    carried = [h.detach() for h in state]                             # as train.py does at the border
    assert all(h.grad_fn is not None for h in state)
    assert all(h.grad_fn is None for h in carried)
    _, loss_carried, _ = model(x2, carried, y2)
    _, loss_zero, _ = model(x2, None, y2)
    assert not torch.isclose(loss_carried, loss_zero)                 # the state did carry information

    loss_carried.backward()
    assert torch.count_nonzero(W.grad[:5]) == 0                       # nothing reached chunk 1's inputs
    assert torch.count_nonzero(W.grad[5:]) > 0
    # without the detach the gradient would have flowed into chunk 1
    model.zero_grad()
    _, _, state = model(x1)
    model(x2, state, y2)[1].backward()
    assert torch.count_nonzero(W.grad[:5]) > 0


def test_overfits_a_tiny_text():
    torch.manual_seed(0)
    chars = sorted(set(TINY_TEXT))
    data = torch.tensor([chars.index(ch) for ch in TINY_TEXT[:401]])
    x, y = data[:-1].view(4, 100), data[1:].view(4, 100)
    model = GRULanguageModel(GRUConfig(vocab_size=len(chars), n_hidden=48, n_layers=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(80):
        _, loss, _ = model(x, None, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, loss.item()         # from ln(25) = 3.2 nats per character


def test_evaluate_recurrent_carries_every_layers_state_across_chunks():
    torch.manual_seed(0)
    model = GRULanguageModel(GRUConfig(vocab_size=7, n_hidden=6, n_layers=2))
    data = torch.randint(7, (50,))
    n = (50 - 1) // 3
    x, y = data[:3 * n].view(3, n), data[1:3 * n + 1].view(3, n)
    whole = model(x, None, y)[1].item()
    assert evaluate_recurrent(model, data, batch_size=3, bptt=5, device="cpu") == pytest.approx(whole, rel=1e-5)


def test_a_long_greedy_sample_is_what_one_pass_over_it_predicts():
    """1000 characters fed back one at a time, h of both layers carried: each greedy pick is the
    argmax of one forward pass over the whole sample, so no step lost or garbled the state."""
    torch.manual_seed(0)
    model = randomise(GRULanguageModel(GRUConfig(vocab_size=12, n_hidden=16, n_layers=2)), scale=1.0)
    ids = generate_recurrent(model, [3, 1, 4], 1000, greedy=True)
    assert len(ids) == 1003 and not model.training
    logits, _, _ = model(torch.tensor([ids[:-1]]))
    assert logits[0, 2:].argmax(-1).tolist() == ids[3:]


def test_flags():
    args = parse_args([])
    assert (args.task, args.variant, args.backward, args.n_hidden, args.layers) == ("lm", "cho", "manual", 512, 1)
    args = parse_args(["--variant", "cudnn", "--backward", "autograd", "--layers", "3"])
    assert (args.variant, args.backward, args.layers) == ("cudnn", "autograd", 3)


def test_a_short_text_is_a_user_error(tiny_corpus, tmp_path):
    # (--task translate: tests/test_gru_seq2seq.py)
    with pytest.raises(UserError, match="too short for 10000 streams"):
        main(["--data", str(tiny_corpus), "--batch-size", "10000", "--checkpoint", str(tmp_path / "m.pt")])


def test_train_then_generate_then_resume(tiny_corpus, tmp_path, scripts_on_one_thread):
    ckpt = tmp_path / "model.pt"
    r = run_script("gru", "train.py", "--data", tiny_corpus, "--epochs", 4, "--eval-every", 2,
                   "--checkpoint", ckpt, "--variant", "cudnn", *TINY)
    assert r.returncode == 0, r.stderr
    assert "summary: val loss" in r.stdout
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("step,train_loss,val_loss")
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 4 and saved["model_type"] == "gru"
    assert saved["config"]["n_layers"] == 2 and saved["config"]["variant"] == "cudnn"
    r = run_script("gru", "generate.py", "--checkpoint", ckpt, "--prompt", "the", "--length", 20,
                   "--seed", 1, "--num-samples", 2)
    assert r.returncode == 0, r.stderr
    samples = r.stdout.split("-" * 40)
    assert len(samples) == 2 and all(s.strip().startswith("the") for s in samples)

    # resume continues the step count, with either backward (it does not change the weights)
    r = run_script("gru", "train.py", "--data", tiny_corpus, "--epochs", 6, "--eval-every", 2,
                   "--checkpoint", ckpt, "--resume", "--variant", "cudnn", "--backward", "autograd", *TINY)
    assert r.returncode == 0, r.stderr
    assert "resuming from step 4" in r.stdout and torch.load(ckpt, weights_only=True)["step"] == 6
    # but not with the other variant, asked for again (other weights); not given, it is the run's
    with pytest.raises(UserError, match="variant=cudnn"):
        main(["--data", str(tiny_corpus), "--epochs", "8", "--checkpoint", str(ckpt), "--resume",
              "--variant", "cho", *map(str, TINY)])

    # bad input: one line, non-zero exit
    assert "--bptt" in assert_one_line_error(run_script("gru", "train.py", "--bptt", 0))
    assert_one_line_error(run_script("gru", "generate.py", "--checkpoint", ckpt, "--prompt", ""))
    assert "'~'" in assert_one_line_error(run_script("gru", "generate.py", "--checkpoint", ckpt, "--prompt", "th~e"))
    other = torch.load(ckpt, weights_only=True)
    other["model_type"] = "lstm"
    save_checkpoint(tmp_path / "lstm.pt", **other)
    assert "'lstm' model" in assert_one_line_error(
        run_script("gru", "generate.py", "--checkpoint", tmp_path / "lstm.pt"))


def test_ctrl_c_saves_a_loadable_checkpoint_and_exits_cleanly(tiny_corpus, tmp_path, scripts_on_one_thread):
    code, out, err = interrupt_training("gru", tmp_path, "--data", tiny_corpus, *TINY)
    assert code == 130, err  # 128 + SIGINT: interrupted, not finished
    assert "Traceback" not in err and "interrupted" in out
    assert load_checkpoint(tmp_path / "model.pt", "gru")["step"] > 0
    assert "summary: val loss" in out


# ---------------------------------------------------------------- what gru/README.md says of the translator

def test_the_translators_sources_carry_no_eos_while_its_targets_end_in_one(tmp_path):
    """gru/README.md, departures: Cho et al. §2.2 end the source with an end-of-sequence symbol;
    ours stop at the last word (utils/translation.py), and the summary c is the encoder's state
    there. The targets do end in <eos>: the decoder learns when to stop."""
    from conftest import toy_translation_corpus
    from gru.model import GRUEncoderDecoder, Seq2SeqConfig
    from utils.tokenizers import EOS, PAD
    from utils.translation import TranslationData, collate

    data = TranslationData.load(min_freq=1, data_dir=toy_translation_corpus(tmp_path / "corpus"))
    pairs = data.pairs["train"]
    assert all(EOS not in x and EOS not in y for x, y in pairs)
    batch = collate(pairs, list(range(len(pairs))))
    real = batch.src[batch.src_mask]
    assert EOS not in real.tolist() and PAD not in real.tolist()
    last = batch.src[torch.arange(len(pairs)), batch.src_len - 1]
    assert data.src_tokenizer.decode(last.tolist()).split() == ["."] * len(pairs)   # the last word, not a marker
    tgt_len = torch.tensor([len(y) for _, y in pairs])
    assert (batch.tgt_out[torch.arange(len(pairs)), tgt_len] == EOS).all()
    # the summary c is read from the state after that last word: the same with or without padding
    torch.manual_seed(0)
    model = GRUEncoderDecoder(Seq2SeqConfig(src_vocab=data.src_tokenizer.vocab_size,
                                            tgt_vocab=data.tgt_tokenizer.vocab_size,
                                            n_embd=5, n_hidden=6, dropout=0.0)).eval()
    n = batch.src_len[0].item()
    alone = model.encode(batch.src[:1, :n], batch.src_len[:1])["c"]
    padded = torch.cat([batch.src[:1, :n], torch.full((1, 4), PAD)], 1)
    assert torch.allclose(alone, model.encode(padded, batch.src_len[:1])["c"], atol=1e-6)


def test_the_maxout_deep_output_is_off_by_default_and_the_help_cites_no_appendix_number():
    """gru/README.md explains why --maxout (the paper's deep output) is not the default, and cites
    the appendix by content: its subsection numbers could not be checked."""
    args = parse_args(["--task", "translate"])
    assert args.maxout is False
    import io
    from contextlib import redirect_stdout
    out = io.StringIO()
    with redirect_stdout(out), pytest.raises(SystemExit):
        parse_args(["--task", "translate", "--help"])
    assert "--maxout" in out.getvalue() and "A.1" not in out.getvalue()
