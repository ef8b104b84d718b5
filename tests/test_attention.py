import pytest
import torch
import torch.nn as nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from attention.generate import alignment
from attention.generate import main as generate_main
from attention.model import AttentionConfig, RNNsearch
from attention.train import parse_args
from conftest import assert_one_line_error, run_script, sources, targets, toy_translation_corpus
from test_gru import copy_from_torch_gru, randomise
from utils.errors import UserError
from utils.tokenizers import BOS, EOS, PAD
from utils.translation import beam_search, greedy_decode, index_batch

pytestmark = pytest.mark.usefixtures("one_thread")

SIZES = dict(src_vocab=11, tgt_vocab=13, n_embd=6, n_hidden=5, n_align=7, n_maxout=4, dropout=0.0)
TINY = ["--n-embd", 8, "--n-hidden", 8, "--n-align", 8, "--n-maxout", 4, "--batch-size", 4]


def tiny_model(seed=0, **kw):
    """Random weights everywhere (biases too), in eval mode."""
    torch.manual_seed(seed)
    return randomise(RNNsearch(AttentionConfig(**{**SIZES, **kw}))).eval()


def step_by_step(model, src, src_len, tgt_in):
    """decode_step over tgt_in: (logits (B, T, V), alphas (B, T, S))."""
    memory = model.encode(src, src_len)
    state, logits, alphas = model.init_decoder(memory), [], []
    for t in range(tgt_in.size(1)):
        out, state = model.decode_step(memory, state, tgt_in[:, t])
        logits.append(out)
        alphas.append(state["alpha"])
    return torch.stack(logits, 1), torch.stack(alphas, 1)


# ---------------------------------------------------------------- the alignment model

def test_alpha_sums_to_one_over_the_real_source_words_and_is_exactly_zero_on_padding():
    model = tiny_model()
    src, src_len = sources([5, 2, 7, 1])
    _, alphas = step_by_step(model, src, src_len, targets(4, 6))           # (B, T, S)
    real = torch.arange(7) < src_len[:, None, None]                         # (B, 1, S)
    assert torch.allclose(alphas.sum(-1), torch.ones(4, 6), atol=1e-6)
    assert torch.all(alphas.masked_select(~real.expand_as(alphas)) == 0)    # exactly, not nearly
    assert torch.all(alphas.masked_select(real.expand_as(alphas)) > 0)
    assert not torch.allclose(alphas[0, 0], alphas[0, 1])                   # it moves from step to step


def test_the_contents_of_padded_source_positions_never_change_the_output():
    model = tiny_model()
    src, src_len = sources([5, 2, 7, 1])
    tgt_in = targets(4, 6)
    other = src.clone()
    padding = torch.arange(7) >= src_len[:, None]
    other[padding] = torch.randint(4, 11, (int(padding.sum()),))            # real words where PAD was
    assert torch.equal(model(src, src_len, tgt_in), model(other, src_len, tgt_in))
    assert torch.equal(step_by_step(model, src, src_len, tgt_in)[1], step_by_step(model, other, src_len, tgt_in)[1])
    # yet the annotations there did change: they are computed, and masked out
    assert not torch.equal(model.encode(src, src_len)["h"][padding], model.encode(other, src_len)["h"][padding])
    # and extra padding columns change nothing either
    wider = torch.cat([src, torch.full((4, 3), PAD)], 1)
    assert torch.allclose(model(wider, src_len, tgt_in), model(src, src_len, tgt_in), atol=1e-6)


def test_one_decoder_step_is_the_appendix_equations_written_out():
    """§A.2.2 for one sentence, with explicit sums over j and over the maxout pairs."""
    model = tiny_model(dropout=0.5)                                          # eval mode: no dropout
    src, src_len = sources([4])
    memory = model.encode(src, src_len)
    state = model.init_decoder(memory)
    s0, y0 = state["s"][0], torch.tensor([BOS])
    logits, state = model.decode_step(memory, state, y0)
    h, n, m, l = memory["h"][0], 5, 6, 4                                      # (S, 2n)
    assert torch.allclose(s0, torch.tanh(h[0, n:] @ model.W_s + model.b_s))  # s_0 = tanh(W_s ←h_1)
    e = torch.stack([model.v_a @ torch.tanh(s0 @ model.W_a + h[j] @ model.U_a) for j in range(4)])
    alpha = torch.exp(e) / torch.exp(e).sum()
    c = sum(alpha[j] * h[j] for j in range(4))
    Ey = model.E_y[BOS]
    W, C, U, b = model.dec.W[:m], model.dec.W[m:], model.dec.U, model.dec.b
    pre = Ey @ W + c @ C + b                                                  # [r|z|s~] input side
    r = torch.sigmoid(pre[:n] + s0 @ U[:, :n])
    z = torch.sigmoid(pre[n:2 * n] + s0 @ U[:, n:2 * n])                     # the paper's 1 - z_i
    s_tilde = torch.tanh(pre[2 * n:] + (r * s0) @ U[:, 2 * n:])
    s1 = z * s0 + (1 - z) * s_tilde
    t_tilde = s0 @ model.W_t[:n] + Ey @ model.W_t[n:n + m] + c @ model.W_t[n + m:] + model.b_t
    t = torch.stack([torch.max(t_tilde[2 * j], t_tilde[2 * j + 1]) for j in range(l)])
    assert torch.allclose(state["alpha"][0], alpha, atol=1e-6)
    assert torch.allclose(state["s"][0], s1, atol=1e-6)
    assert torch.allclose(logits[0], t @ model.W_o + model.b_o, atol=1e-5)


def test_the_source_carries_no_end_symbol_only_the_target_does():
    """A documented departure (README): the paper's sources end in <end> (its Fig. 3); the shared
    batches give the encoder x_1 .. x_{T_x} and padding, and put <eos> on the target side only."""
    from utils.translation import collate
    pairs = [([5, 6, 7], [8, 9]), ([5], [8, 9, 10])]
    batch = collate(pairs, [0, 1])
    assert batch.src.tolist() == [[5, 6, 7], [5, PAD, PAD]]
    assert batch.src_len.tolist() == [3, 1]
    assert EOS not in batch.src.tolist()[0] + batch.src.tolist()[1]
    assert batch.tgt_in.tolist() == [[BOS, 8, 9, PAD], [BOS, 8, 9, 10]]
    assert batch.tgt_out.tolist() == [[8, 9, EOS, PAD], [8, 9, 10, EOS]]


# ---------------------------------------------------------------- the encoder

@pytest.mark.parametrize("backward", ["manual", "autograd"])
def test_annotations_are_torch_bidirectional_gru_over_packed_sentences(backward):
    """The cudnn variant is torch.nn.GRU's unit: a bidirectional nn.GRU on packed sequences reads
    each sentence backwards within its own length; the annotations must match it wherever a word is."""
    model = tiny_model(variant="cudnn", backward=backward)
    rnn = nn.GRU(6, 5, batch_first=True, bidirectional=True)
    copy_from_torch_gru(rnn, [model.fwd])
    reverse = nn.GRU(6, 5, batch_first=True)                                 # the reverse weights, renamed
    for name in ("weight_ih", "weight_hh", "bias_ih", "bias_hh"):
        setattr(reverse, f"{name}_l0", getattr(rnn, f"{name}_l0_reverse"))
    copy_from_torch_gru(reverse, [model.bwd])
    src, src_len = sources([5, 2, 7, 1])
    x = model.E_x[src]                                                       # (B, S, m)
    packed = pack_padded_sequence(x, src_len, batch_first=True, enforce_sorted=False)
    expected, _ = pad_packed_sequence(rnn(packed)[0], batch_first=True)      # (B, S, 2n), zeros after len
    h = model.encode(src, src_len)["h"]
    real = torch.arange(7) < src_len[:, None]
    assert torch.allclose(h[real], expected[real], atol=1e-5)


def test_the_backward_direction_reads_each_sentence_reversed_within_its_length():
    """←h_j of a padded batch = the backward GRU run alone on the sentence's words, last word first."""
    model = tiny_model()
    src, src_len = sources([5, 2, 7, 1])
    h = model.encode(src, src_len)["h"]
    for b, n in enumerate(src_len.tolist()):
        x = model.E_x[src[b, :n]].flip(0)[None]                               # (1, n, m), reversed
        alone, last = model.bwd(x)
        assert torch.allclose(h[b, :n, 5:], alone[0].flip(0), atol=1e-6)    # back in word order
        assert torch.allclose(h[b, 0, 5:], last[0], atol=1e-6)              # ←h_1 read every word
        assert torch.allclose(h[b, :n, :5], model.fwd(model.E_x[src[b, :n]][None])[0][0], atol=1e-6)


def test_manual_and_autograd_bptt_give_the_same_gradients():
    src, src_len = sources([5, 2, 7, 1])
    tgt_in = targets(4, 6)
    grads = []
    for backward in ("manual", "autograd"):
        model = tiny_model(backward=backward)
        model(src, src_len, tgt_in).logsumexp(-1).sum().backward()
        grads.append([p.grad for p in model.parameters()])
    assert all(torch.allclose(a, b, atol=1e-5) for a, b in zip(*grads))
    assert all(g.abs().sum() > 0 for g in grads[0])                          # every parameter is used


# ---------------------------------------------------------------- teacher forcing and decoding

@pytest.mark.parametrize("variant", ["cho", "cudnn"])
def test_the_teacher_forced_forward_is_decode_step_run_step_by_step(variant):
    model = tiny_model(variant=variant).double()
    src, src_len = sources([5, 2, 7, 1])
    tgt_in = targets(4, 6)
    logits = model(src, src_len, tgt_in)                                    # (B, T, V)
    assert logits.shape == (4, 6, 13)
    assert torch.allclose(logits, step_by_step(model, src, src_len, tgt_in)[0], atol=1e-10)
    # training mode without dropout is the same function
    assert torch.allclose(model.train()(src, src_len, tgt_in), logits, atol=1e-10)


def test_dropout_acts_in_training_only():
    model = tiny_model(dropout=0.5).train()
    src, src_len = sources([5, 2])
    tgt_in = targets(2, 4)
    assert not torch.allclose(model(src, src_len, tgt_in), model(src, src_len, tgt_in))
    model.eval()
    assert torch.equal(model(src, src_len, tgt_in), model(src, src_len, tgt_in))


def test_beam_search_reorders_the_whole_state():
    model = tiny_model()
    memory = model.encode(*sources([5, 2]))
    state = model.init_decoder(memory)
    idx = torch.tensor([1, 1, 0])
    moved = index_batch(state, idx)
    assert torch.equal(moved["s"], state["s"][idx]) and torch.equal(moved["alpha"], state["alpha"][idx])


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_decoding_equals_decoding_each_sentence_alone(beam):
    model = tiny_model(seed=3)
    with torch.no_grad():
        model.b_o[EOS] -= 2.0                                                # longer translations
    src, src_len = sources([5, 2, 7, 1, 3])
    if beam == 1:
        decode = lambda src, src_len: greedy_decode(model, src, src_len, max_len=9)
    else:
        decode = lambda src, src_len: beam_search(model, src, src_len, beam, max_len=9)
    batched = decode(src, src_len)
    alone = [decode(src[b:b + 1, :n], src_len[b:b + 1])[0] for b, n in enumerate(src_len.tolist())]
    assert batched == alone
    assert len({tuple(ids) for ids in batched}) > 1 and max(map(len, batched)) > 1
    # and the numbers of every step agree too, not just the argmax
    tgt_in = targets(5, 6)
    logits, alphas = step_by_step(model, src, src_len, tgt_in)
    for b, n in enumerate(src_len.tolist()):
        l1, a1 = step_by_step(model, src[b:b + 1, :n], src_len[b:b + 1], tgt_in[b:b + 1])
        assert torch.allclose(logits[b], l1[0], atol=1e-5) and torch.allclose(alphas[b, :, :n], a1[0], atol=1e-6)


def test_overfits_one_tiny_batch():
    """Eight sentences to write backwards, learnt by heart."""
    torch.manual_seed(0)
    model = RNNsearch(AttentionConfig(src_vocab=10, tgt_vocab=10, n_embd=16, n_hidden=24, n_align=16,
                                      n_maxout=16, dropout=0.0))
    src, src_len = sources([5, 4, 6, 3, 5, 6, 4, 5], vocab=10, seed=5)
    rows = [s[:n].flip(0).tolist() for s, n in zip(src, src_len.tolist())]
    T = max(map(len, rows)) + 1
    tgt_in = torch.tensor([[BOS] + r + [PAD] * (T - 1 - len(r)) for r in rows])
    tgt_out = torch.tensor([r + [EOS] + [PAD] * (T - 1 - len(r)) for r in rows])
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(80):
        logits = model(src, src_len, tgt_in)
        loss = nn.functional.cross_entropy(logits.reshape(-1, 10), tgt_out.reshape(-1), ignore_index=PAD)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.01, loss.item()                 # from ln(10) = 2.3 nats
    assert greedy_decode(model.eval(), src, src_len, max_len=10) == rows


# ---------------------------------------------------------------- train.py and generate.py

def test_flags(capsys):
    args = parse_args([])
    assert (args.data, args.src, args.tgt, args.clip, args.variant, args.backward) == \
        ("multi30k", "de", "en", 1.0, "cho", "manual")
    d = AttentionConfig()
    assert (args.n_embd, args.n_hidden, args.n_align, args.n_maxout, args.dropout) == \
        (d.n_embd, d.n_hidden, d.n_align, d.n_maxout, d.dropout)
    with pytest.raises(SystemExit):
        parse_args(["--dropout", "1"])
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "--dropout" in err


def test_train_then_generate_with_an_alignment_plot(tmp_path, scripts_on_one_thread):
    corpus, ckpt = toy_translation_corpus(tmp_path / "corpus"), tmp_path / "model.pt"
    r = run_script("attention", "train.py", "--data", corpus, "--epochs", 2, "--eval-every", 1,
                   "--checkpoint", ckpt, "--beam", 2, *TINY)
    assert r.returncode == 0, r.stderr
    assert "BLEU greedy" in r.stdout and "summary: val loss" in r.stdout
    saved = torch.load(ckpt, weights_only=True)
    assert (saved["model_type"], saved["step"], saved["config"]["n_hidden"]) == ("attention", 2, 8)
    plot = tmp_path / "alignment.png"
    r = run_script("attention", "generate.py", "--checkpoint", ckpt, "--prompt", "Ein alter Mann sieht den Hund.",
                   "--beam", 2, "--plot", plot)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].strip() and f"alignment: {plot}" in r.stdout
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # bad input: one line, non-zero exit
    assert ".png" in assert_one_line_error(run_script("attention", "generate.py", "--checkpoint", ckpt,
                                                      "--plot", tmp_path / "alignment.txt"))


def test_generate_errors_and_the_alignment_of_a_translation(tmp_path, capsys):
    model = tiny_model()
    src_ids, tgt_ids = [4, 5, 6], [7, 8]
    alpha = alignment(model, src_ids, tgt_ids)
    assert alpha.shape == (3, 3) and torch.allclose(alpha.sum(1), torch.ones(3))
    _, expected = step_by_step(model, torch.tensor([src_ids]), torch.tensor([3]), torch.tensor([[BOS, 7, 8]]))
    assert torch.allclose(alpha, expected[0])
    with pytest.raises(UserError, match="no folder"):
        generate_main(["--plot", str(tmp_path / "nowhere" / "a.png")])
    with pytest.raises(UserError, match="no checkpoint"):
        generate_main(["--checkpoint", str(tmp_path / "none.pt")])
