import re
from pathlib import Path

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import TINY_TEXT, assert_one_line_error, interrupt_training, load_experiment, run_script
from lstm.model import LSTM, LSTMBPTT, LSTMConfig
from lstm.train import main, parse_args
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import UserError
from utils.metrics import evaluate_recurrent
from utils.sampling import generate_recurrent

# two layers, to exercise the stack and the skip connections
TINY = ["--n-hidden", 16, "--layers", 2, "--batch-size", 8, "--bptt", 16]

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(model, scale=0.5):
    """Biases and peepholes start at constants; make every parameter matter."""
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn_like(p))
    return model


def copy_into_torch_lstm(ours):
    """An nn.LSTM on one-hot inputs plus an nn.Linear, holding our weights: the oracle.
    nn.LSTM stacks its gates as rows [i|f|g|o] of weight_ih_l0 (4H, V) and weight_hh_l0 (4H, H)
    and computes x W_ih^T + b_ih + h W_hh^T + b_hh; ours are the columns [i|f|c|o] of W_x (V, 4H)
    and W_h (H, 4H), so gate k of ours (block k of the columns) is block k of torch's rows."""
    V, H = ours.config.vocab_size, ours.config.n_hidden
    layer = ours.layers[0]
    rnn, out = nn.LSTM(V, H, batch_first=True), nn.Linear(H, V)
    with torch.no_grad():
        for k, (our_gate, torch_gate) in enumerate(zip("ifco", "ifgo")):
            block = slice(k * H, (k + 1) * H)
            rnn.weight_ih_l0[block] = layer.W_x[:, block].T           # W_x{our_gate} -> W_i{torch_gate}
            rnn.weight_hh_l0[block] = layer.W_h[:, block].T
            rnn.bias_ih_l0[block] = layer.b[block]
        rnn.bias_hh_l0.zero_()
        out.weight.copy_(ours.W_y[0].T)
        out.bias.copy_(ours.b_y)
    return rnn, out


@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_without_peepholes_one_layer_matches_torch_nn_lstm(backward):
    torch.manual_seed(0)
    V, H = 11, 7
    ours = randomise(LSTM(LSTMConfig(V, H, 1, peepholes=False, backward=backward, clip_lstm_grads=None)))
    rnn, out = copy_into_torch_lstm(ours)
    idx, y = torch.randint(V, (3, 6)), torch.randint(V, (3, 6))
    h0, c0 = torch.randn(3, H, requires_grad=True), torch.randn(3, H, requires_grad=True)
    h0_ref, c0_ref = (s.detach().clone().requires_grad_() for s in (h0, c0))

    logits, loss, [(h_T, c_T)] = ours(idx, [(h0, c0)], y)
    h, (h_T_ref, c_T_ref) = rnn(F.one_hot(idx, V).float(), (h0_ref[None], c0_ref[None]))
    ref_logits = out(h)
    assert torch.allclose(logits, ref_logits, atol=1e-5)
    assert torch.allclose(h_T, h_T_ref[0], atol=1e-5) and torch.allclose(c_T, c_T_ref[0], atol=1e-5)

    # the loss and the final cell both send gradients back (c_T is an output of the manual backward)
    (loss + c_T.square().sum()).backward()
    (F.cross_entropy(ref_logits.reshape(-1, V), y.reshape(-1)) + c_T_ref.square().sum()).backward()
    layer = ours.layers[0]
    pairs = [(layer.W_x.grad, rnn.weight_ih_l0.grad.T), (layer.W_h.grad, rnn.weight_hh_l0.grad.T),
             (layer.b.grad, rnn.bias_ih_l0.grad), (ours.W_y[0].grad, out.weight.grad.T),
             (ours.b_y.grad, out.bias.grad), (h0.grad, h0_ref.grad), (c0.grad, c0_ref.grad)]
    for a, b in pairs:
        assert torch.allclose(a, b, atol=1e-5), (a - b).abs().max()


def graves_step(x, h, c, W_x, W_h, b, w_ci, w_cf, w_co):
    """One step of Eqs. (7)-(11), written out gate by gate (matrices are (in, out), x one-hot)."""
    H = h.shape[1]
    Wx = {k: W_x[:, n * H:(n + 1) * H] for n, k in enumerate("ifco")}
    Wh = {k: W_h[:, n * H:(n + 1) * H] for n, k in enumerate("ifco")}
    bb = {k: b[n * H:(n + 1) * H] for n, k in enumerate("ifco")}
    i = torch.sigmoid(x @ Wx["i"] + h @ Wh["i"] + w_ci * c + bb["i"])                 # (7)
    f = torch.sigmoid(x @ Wx["f"] + h @ Wh["f"] + w_cf * c + bb["f"])                 # (8)
    c = f * c + i * torch.tanh(x @ Wx["c"] + h @ Wh["c"] + bb["c"])                   # (9)
    o = torch.sigmoid(x @ Wx["o"] + h @ Wh["o"] + w_co * c + bb["o"])                 # (10)
    h = o * torch.tanh(c)                                                             # (11)
    return h, c


@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_peephole_terms_match_a_hand_written_step_of_eqs_7_to_11(backward):
    torch.manual_seed(0)
    V, H = 5, 4
    ours = randomise(LSTM(LSTMConfig(V, H, 1, peepholes=True, backward=backward)))
    layer = ours.layers[0]
    assert layer.w_c.abs().min() > 0                                  # the peepholes are in play
    idx = torch.randint(V, (2, 3))
    h, c = torch.randn(2, H), torch.randn(2, H)
    logits, _, [(h_T, c_T)] = ours(idx, [(h, c)])
    with torch.no_grad():
        for t in range(3):
            h, c = graves_step(F.one_hot(idx[:, t], V).float(), h, c, layer.W_x, layer.W_h, layer.b, *layer.w_c)
            assert torch.allclose(logits[:, t], h @ ours.W_y[0] + ours.b_y, atol=1e-5)
    assert torch.allclose(h_T, h, atol=1e-5) and torch.allclose(c_T, c, atol=1e-5)


@pytest.mark.parametrize("peepholes", [True, False])
def test_manual_bptt_passes_gradcheck_in_double_precision(peepholes):
    torch.manual_seed(0)
    B, T, H = 2, 4, 3
    d = dict(dtype=torch.float64, requires_grad=True)
    a, W_h = torch.randn(B, T, 4 * H, **d), torch.randn(H, 4 * H, **d)
    w_c = torch.randn(3, H, **d) if peepholes else None
    h0, c0 = torch.randn(B, H, **d), torch.randn(B, H, **d)
    assert torch.autograd.gradcheck(lambda a, W_h, h0, c0: LSTMBPTT.apply(a, W_h, w_c, h0, c0, None),
                                    (a, W_h, h0, c0))
    if peepholes:
        assert torch.autograd.gradcheck(lambda w_c: LSTMBPTT.apply(a, W_h, w_c, h0, c0, None), (w_c,))


def gradients(model, idx, y, state=None):
    _, loss, new_state = model(idx, state, y)
    loss.backward()
    return loss, new_state, [p.grad.clone() for p in model.parameters()]


@pytest.mark.parametrize("clip", [None, 1e-3])
@pytest.mark.parametrize("skip, peepholes", [(True, True), (False, True), (True, False)])
def test_manual_and_autograd_backward_agree_with_two_layers_skip_and_peepholes(skip, peepholes, clip):
    torch.manual_seed(0)
    config = LSTMConfig(9, 6, n_layers=2, skip=skip, peepholes=peepholes, clip_lstm_grads=clip)
    manual = randomise(LSTM(config))
    auto = LSTM(LSTMConfig(**{**config.__dict__, "backward": "autograd"}))
    auto.load_state_dict(manual.state_dict())
    idx, y = torch.randint(9, (4, 10)), torch.randint(9, (4, 10))
    state = [(torch.randn(4, 6), torch.randn(4, 6)) for _ in range(2)]
    (l1, s1, g1), (l2, s2, g2) = gradients(manual, idx, y, state), gradients(auto, idx, y, state)
    assert torch.allclose(l1, l2, atol=1e-6)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(sum(s1, ()), sum(s2, ())))
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g2))
    if clip is not None:                                              # and the clipping did bite
        manual.zero_grad()
        manual.config.clip_lstm_grads = None
        g3 = gradients(manual, idx, y, state)[2]
        assert not all(torch.allclose(a, b, atol=1e-6) for a, b in zip(g1, g3))


def test_skip_connections_feed_the_input_to_every_layer_and_every_layer_to_the_output():
    skip, plain = LSTM(LSTMConfig(10, 8, n_layers=3)), LSTM(LSTMConfig(10, 8, n_layers=3, skip=False))
    assert [l.W_x is not None for l in skip.layers] == [True, True, True] and len(skip.W_y) == 3
    assert [l.W_x is not None for l in plain.layers] == [True, False, False] and len(plain.W_y) == 1
    assert [l.W_below is not None for l in skip.layers] == [False, True, True]
    idx = torch.randint(10, (2, 5))
    for model in (skip, plain):
        logits, loss, state = model(idx)
        assert logits.shape == (2, 5, 10) and loss is None
        assert len(state) == 3 and all(h.shape == c.shape == (2, 8) for h, c in state)
    H = 8
    assert torch.all(skip.layers[0].b[H:2 * H] == 1) and torch.all(skip.layers[0].b[:H] == 0)   # b_f = 1


def test_dropout_reaches_the_layer_above_and_the_output_but_never_the_carried_state():
    torch.manual_seed(0)
    dropped = randomise(LSTM(LSTMConfig(10, 8, n_layers=2, dropout=0.5)))
    plain = LSTM(LSTMConfig(10, 8, n_layers=2))
    plain.load_state_dict(dropped.state_dict())
    idx = torch.randint(10, (3, 6))
    ref_logits, _, ref_state = plain(idx)
    logits, _, state = dropped.train()(idx)
    assert not torch.allclose(logits, ref_logits)                        # the output saw dropped units
    # layer 1's state is untouched; layer 2 read a dropped layer 1, so its state moves
    assert torch.equal(state[0][0], ref_state[0][0]) and torch.equal(state[0][1], ref_state[0][1])
    assert not torch.allclose(state[1][1], ref_state[1][1])
    _, _, one_state = LSTM(LSTMConfig(10, 8, dropout=0.5)).train()(idx, None)
    assert one_state[0][0].abs().min() > 0                              # h_T is never zeroed by the mask
    eval_logits, _, eval_state = dropped.eval()(idx)                     # no dropout when evaluating
    assert torch.equal(eval_logits, ref_logits) and torch.equal(eval_state[1][1], ref_state[1][1])


def test_clipping_bounds_the_error_at_the_gates_inputs():
    torch.manual_seed(0)
    a, W_h = torch.randn(3, 5, 8, requires_grad=True), torch.randn(2, 8)
    w_c, h0, c0 = torch.randn(3, 2), torch.zeros(3, 2), torch.zeros(3, 2)
    h, c = LSTMBPTT.apply(a, W_h, w_c, h0, c0, 0.5)
    (100 * h.sum() + 100 * c.sum()).backward()
    assert a.grad.abs().max() == 0.5                                  # dL/da_t, clipped to [-0.5, 0.5]


def test_manual_forward_leaves_its_input_untouched():
    a = torch.randn(1, 1, 8)                                          # B = T = 1: already "time-major"
    before = a.clone()
    LSTMBPTT.apply(a, torch.randn(2, 8), torch.randn(3, 2), torch.zeros(1, 2), torch.zeros(1, 2), None)
    assert torch.equal(a, before)


@pytest.mark.parametrize("peepholes, clip", [(True, 0.5), (False, None)])
def test_overwriting_its_input_gives_the_same_numbers_and_refuses_a_second_backward(peepholes, clip):
    torch.manual_seed(0)
    B, T, H = 3, 5, 4
    a, W_h = torch.randn(B, T, 4 * H), torch.randn(H, 4 * H)
    w_c = torch.randn(3, H) if peepholes else None
    h0, c0, gh, gc = torch.randn(B, H), torch.randn(B, H), torch.randn(B, T, H), torch.randn(B, H)
    leaves = [[x.clone().requires_grad_() for x in (a, W_h, h0, c0)] for _ in range(2)]
    outs = []
    for (x, W, h, c), overwrite in zip(leaves, (False, True)):
        inp = x.reshape(B * T, 4 * H) * 1 if overwrite else x           # a temporary, given as (B T, 4H)
        h_T, c_T, *rest = LSTMBPTT.apply(inp, W, w_c, h, c, clip, overwrite)
        assert len(rest) == overwrite and (not overwrite or rest[0] is inp)
        outs.append((h_T.detach(), c_T.detach()))
        torch.autograd.backward([h_T, c_T], [gh, gc], retain_graph=True)
        if overwrite:                                                  # the gates are spent
            with pytest.raises(RuntimeError, match="backward once"):
                torch.autograd.backward([h_T, c_T], [gh, gc])
    assert all(torch.equal(p, q) for p, q in zip(*outs))
    assert all(torch.equal(p.grad, q.grad) for p, q in zip(*leaves))


@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_state_carries_across_chunks_but_gradients_stop_at_the_border(backward):
    torch.manual_seed(0)
    model = LSTM(LSTMConfig(vocab_size=10, n_hidden=8, n_layers=2, backward=backward))
    # chunk 1 uses tokens 0-4 only, chunk 2 tokens 5-9 only: rows 0-4 of W_x are chunk 1's inputs
    x1, x2 = torch.randint(5, (2, 6)), torch.randint(5, 10, (2, 6))
    y2 = torch.randint(10, (2, 6))
    W_x = model.layers[0].W_x

    _, _, state = model(x1)
    carried = [(h.detach(), c.detach()) for h, c in state]           # as train.py does at the border
    assert all(s.grad_fn is not None for s in sum(state, ()))
    assert all(s.grad_fn is None for s in sum(carried, ()))
    _, loss_carried, _ = model(x2, carried, y2)
    _, loss_zero, _ = model(x2, None, y2)
    assert not torch.isclose(loss_carried, loss_zero)                 # the state did carry information

    loss_carried.backward()
    assert torch.count_nonzero(W_x.grad[:5]) == 0                     # nothing reached chunk 1's inputs
    assert torch.count_nonzero(W_x.grad[5:]) > 0
    # without the detach the gradient would have flowed into chunk 1
    model.zero_grad()
    _, _, state = model(x1)
    model(x2, state, y2)[1].backward()
    assert torch.count_nonzero(W_x.grad[:5]) > 0


def test_overfits_a_tiny_text():
    torch.manual_seed(0)
    chars = sorted(set(TINY_TEXT))
    data = torch.tensor([chars.index(ch) for ch in TINY_TEXT[:401]])
    x, y = data[:-1].view(4, 100), data[1:].view(4, 100)
    model = LSTM(LSTMConfig(vocab_size=len(chars), n_hidden=48, n_layers=2))
    optimizer = torch.optim.Adam(model.parameters(), lr=2e-2)
    for _ in range(80):
        _, loss, _ = model(x, None, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.1, loss.item()         # from ln(25) = 3.2 nats per character


def test_evaluate_recurrent_carries_every_layers_state_across_chunks():
    torch.manual_seed(0)
    model = LSTM(LSTMConfig(vocab_size=7, n_hidden=6, n_layers=2))
    data = torch.randint(7, (50,))
    n = (50 - 1) // 3
    x, y = data[:3 * n].view(3, n), data[1:3 * n + 1].view(3, n)
    whole = model(x, None, y)[1].item()
    assert evaluate_recurrent(model, data, batch_size=3, bptt=5, device="cpu") == pytest.approx(whole, rel=1e-5)


def test_a_long_greedy_sample_is_what_one_pass_over_it_predicts():
    """2000 characters fed back one at a time, (h, c) of both layers carried: each greedy pick is
    the argmax of one forward pass over the whole sample, so no step lost or garbled the state."""
    torch.manual_seed(0)
    model = randomise(LSTM(LSTMConfig(vocab_size=12, n_hidden=16, n_layers=2)), scale=1.0)
    ids = generate_recurrent(model, [3, 1, 4], 2000, greedy=True)
    assert len(ids) == 2003 and not model.training
    logits, _, _ = model(torch.tensor([ids[:-1]]))
    assert logits[0, 2:].argmax(-1).tolist() == ids[3:]


def test_clip_lstm_grads_flag_takes_a_bound_or_none():
    assert parse_args([]).clip_lstm_grads == LSTMConfig().clip_lstm_grads == 1.0
    assert parse_args(["--clip-lstm-grads", "0.5"]).clip_lstm_grads == 0.5
    assert parse_args(["--clip-lstm-grads", "none"]).clip_lstm_grads is None
    assert parse_args(["--clip-lstm-grads", "0"]).clip_lstm_grads is None
    args = parse_args(["--no-peepholes", "--no-skip", "--layers", "3"])
    assert (args.peepholes, args.skip, args.layers) == (False, False, 3)


def test_clip_lstm_grads_help_cites_the_sections_that_give_the_range(capsys):
    """§2.1 clips "to lie within a predefined range"; [-1, 1] for text is in §3.1 and §3.2."""
    with pytest.raises(SystemExit):
        parse_args(["--help"])
    help_text = " ".join(capsys.readouterr().out.split())
    assert "[-1, 1] (§3.1, §3.2)" in help_text


def test_readme_names_code_by_function_and_has_the_paper_table_and_try_this():
    readme = (Path(__file__).resolve().parent.parent / "lstm" / "README.md").read_text(encoding="utf-8")
    assert not re.search(r"\blines? \d", readme), re.search(r".{40}\blines? \d.{20}", readme).group()
    assert "## The paper said, we measured" in readme and "## Try this" in readme
    for path in (Path(__file__).resolve().parent.parent / "lstm").glob("*.*"):
        if path.suffix in (".md", ".py"):                            # §2.1 gives no number for the range
            text = path.read_text(encoding="utf-8").replace("−", "-")
            assert not re.search(r"\[-1, 1\][^.\n]{0,20}§2\.1\)", text), path.name


def test_a_text_too_short_for_the_streams_is_a_user_error(tiny_corpus, tmp_path):
    with pytest.raises(UserError, match="too short for 10000 streams"):
        main(["--data", str(tiny_corpus), "--batch-size", "10000", "--checkpoint", str(tmp_path / "m.pt")])


def test_train_then_generate_then_resume(tiny_corpus, tmp_path, scripts_on_one_thread):
    ckpt = tmp_path / "model.pt"
    r = run_script("lstm", "train.py", "--data", tiny_corpus, "--epochs", 4, "--eval-every", 2,
                   "--checkpoint", ckpt, *TINY)
    assert r.returncode == 0, r.stderr
    assert "summary: val loss" in r.stdout
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("step,train_loss,val_loss")
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 4 and saved["model_type"] == "lstm" and saved["config"]["n_layers"] == 2
    r = run_script("lstm", "generate.py", "--checkpoint", ckpt, "--prompt", "the", "--length", 20,
                   "--seed", 1, "--num-samples", 2)
    assert r.returncode == 0, r.stderr
    samples = r.stdout.split("-" * 40)
    assert len(samples) == 2 and all(s.strip().startswith("the") for s in samples)

    # resume continues the step count, with either backward (it does not change the weights)
    r = run_script("lstm", "train.py", "--data", tiny_corpus, "--epochs", 6, "--eval-every", 2,
                   "--checkpoint", ckpt, "--resume", "--backward", "autograd", *TINY)
    assert r.returncode == 0, r.stderr
    assert "resuming from step 4" in r.stdout and torch.load(ckpt, weights_only=True)["step"] == 6

    # bad input: one line, non-zero exit
    assert "--bptt" in assert_one_line_error(run_script("lstm", "train.py", "--bptt", 0))
    assert_one_line_error(run_script("lstm", "generate.py", "--checkpoint", ckpt, "--prompt", ""))
    assert "'~'" in assert_one_line_error(run_script("lstm", "generate.py", "--checkpoint", ckpt, "--prompt", "th~e"))
    other = torch.load(ckpt, weights_only=True)
    other["model_type"] = "rnn"
    save_checkpoint(tmp_path / "rnn.pt", **other)
    assert "'rnn' model" in assert_one_line_error(
        run_script("lstm", "generate.py", "--checkpoint", tmp_path / "rnn.pt"))


def test_ctrl_c_saves_a_loadable_checkpoint_and_exits_cleanly(tiny_corpus, tmp_path, scripts_on_one_thread):
    code, out, err = interrupt_training("lstm", tmp_path, "--data", tiny_corpus, *TINY)
    assert code == 130, err  # 128 + SIGINT: interrupted, not finished
    assert "Traceback" not in err and "interrupted" in out
    assert load_checkpoint(tmp_path / "model.pt", "lstm")["step"] > 0
    assert "summary: val loss" in out


def test_sample_stats_counts_known_words_clean_stretches_and_speaker_turns(tiny_corpus, tmp_path, capsys):
    stats = load_experiment("sample_stats")
    vocabulary = {"speak", "hear", "me", "first", "citizen"}
    # "Speak, hear me speak" is the longest stretch of known words (punctuation does not break it)
    assert stats.known_words("Speak, hear me speak. Xyzzy hear.", vocabulary) == (6, 5 / 6, len("Speak, hear me speak"))
    assert stats.known_words("... ---", vocabulary) == (0, 0.0, 0)
    text = "First Citizen:\nSpeak.\n\nAll:\n\nnot a name:\nhear me\n\nROMEO:\nMe.\nMe.\n"
    assert stats.turns(text) == (4, 2 / 4)                     # "All:" alone and a lower-case name are not
    sample = tmp_path / "sample.txt"
    sample.write_text("First Citizen:\nSpeak, speak.\n\nAll:\nWe are resolved.\n", encoding="utf-8")
    stats.main([str(sample), "--data", str(tiny_corpus)])
    out = capsys.readouterr().out
    assert "sample.txt" in out and "validation text" in out and "100%" in out
