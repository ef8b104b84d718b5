import math

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from conftest import ROOT, interrupt_training, load_experiment, run_script, sources, targets, toy_translation_corpus
from transformer.generate import generate
from transformer.generate import main as generate_main
from transformer.model import (Block, FeedForward, KVCache, LayerNorm, MultiHeadAttention, TransformerConfig,
                               TransformerLM, TransformerTranslator, TranslatorConfig, attention, rotary, rotate,
                               sinusoids)
from transformer.train import learning_rate, noam_lr, parse_args, translation_loss
from utils.evaluation import fast_estimate
from transformer.train import main as train_main
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.errors import run_main
from utils.tokenizers import BOS, EOS, PAD
from utils.training import scheduled_lr
from utils.translation import TranslationData, beam_search, collate, greedy_decode

TINY = ["--layers", 2, "--heads", 2, "--d-model", 16, "--block-size", 16, "--batch-size", 4]
POSITIONS = ["sinusoidal", "learned", "rope"]

pytestmark = pytest.mark.usefixtures("one_thread")


def randomise(module, scale=0.3):
    """Gains start at 1 and biases at 0; make every parameter matter."""
    with torch.no_grad():
        for p in module.parameters():
            p.add_(scale * torch.randn_like(p))
    return module


def tiny_model(pos="rope", norm="pre", block_size=16, scale=0.3, **kwargs):
    config = TransformerConfig(vocab_size=13, block_size=block_size, n_layers=2, n_heads=2, d_model=16, d_ff=32,
                               pos=pos, norm=norm, **kwargs)
    return randomise(TransformerLM(config), scale).eval()


# ---------------------------------------------------------------- the pieces against torch.nn

@pytest.mark.parametrize("mask_kind", ["none", "causal", "random", "additive"])
def test_attention_matches_scaled_dot_product_attention(mask_kind):
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 3, 5, 8), torch.randn(2, 3, 7, 8), torch.randn(2, 3, 7, 8)
    mask = {"none": None,
            "causal": torch.ones(5, 7, dtype=torch.bool).tril(2),
            "random": (torch.rand(2, 3, 5, 7) < 0.6) | (torch.arange(7) == 0),   # every row keeps a key
            "additive": torch.randn(5, 7)}[mask_kind]
    ours, alpha = attention(q, k, v, mask)
    assert torch.allclose(ours, F.scaled_dot_product_attention(q, k, v, attn_mask=mask), atol=1e-5)
    assert torch.allclose(alpha.sum(-1), torch.ones(2, 3, 5), atol=1e-6)
    if mask_kind == "causal":
        assert torch.all(alpha[..., ~mask] == 0)


def test_multi_head_attention_matches_nn_multihead_attention():
    torch.manual_seed(0)
    d, h = 12, 3
    ours = MultiHeadAttention(d, h)
    ref = nn.MultiheadAttention(d, h, bias=False, batch_first=True)
    with torch.no_grad():
        ref.in_proj_weight.copy_(ours.W_QKV.T)          # rows [W^Q; W^K; W^V] of torch = our columns
        ref.out_proj.weight.copy_(ours.W_O.T)
    x, memory = torch.randn(2, 6, d), torch.randn(2, 9, d)
    # self-attention with the causal mask (torch's boolean masks mark the *forbidden* pairs)
    allowed = torch.ones(6, 6, dtype=torch.bool).tril()
    out, _ = ours(x, mask=allowed)
    ref_out, _ = ref(x, x, x, attn_mask=~allowed, need_weights=False)
    assert torch.allclose(out, ref_out, atol=1e-5)
    out.square().sum().backward()
    ref_out.square().sum().backward()
    assert torch.allclose(ours.W_QKV.grad, ref.in_proj_weight.grad.T, atol=1e-5)
    assert torch.allclose(ours.W_O.grad, ref.out_proj.weight.grad.T, atol=1e-5)
    # encoder-decoder attention: queries from x, keys and values from memory
    out, (K, V) = ours(x, memory)
    assert K.shape == V.shape == (2, h, 9, d // h)
    assert torch.allclose(out, ref(x, memory, memory, need_weights=False)[0], atol=1e-5)


def test_layer_norm_matches_f_layer_norm():
    torch.manual_seed(0)
    ours = randomise(LayerNorm(10), scale=1.0)
    x = (torch.randn(3, 4, 10) * 5 + 2).requires_grad_()
    x_ref = x.detach().clone().requires_grad_()
    y, y_ref = ours(x), F.layer_norm(x_ref, (10,), ours.gamma, ours.beta, eps=1e-5)
    assert torch.allclose(y, y_ref, atol=1e-5)
    weights = torch.randn(3, 4, 10)
    (y * weights).sum().backward()
    (y_ref * weights).sum().backward()
    assert torch.allclose(x.grad, x_ref.grad, atol=1e-5)


def test_feed_forward_matches_linear_relu_linear():
    torch.manual_seed(0)
    ours = randomise(FeedForward(8, 20))
    ref = nn.Sequential(nn.Linear(8, 20), nn.ReLU(), nn.Linear(20, 8))
    with torch.no_grad():
        ref[0].weight.copy_(ours.W_1.T), ref[0].bias.copy_(ours.b_1)
        ref[2].weight.copy_(ours.W_2.T), ref[2].bias.copy_(ours.b_2)
    x = torch.randn(2, 5, 8)
    assert torch.allclose(ours(x), ref(x), atol=1e-5)


@pytest.mark.parametrize("norm", ["post", "pre"])
def test_block_matches_nn_transformer_encoder_layer_with_a_causal_mask(norm):
    """Our layer is torch's encoder layer (attention without biases: torch's are set to zero)."""
    torch.manual_seed(0)
    config = TransformerConfig(d_model=16, n_heads=4, d_ff=24, norm=norm, dropout=0.0)
    ours = randomise(Block(config))
    ref = nn.TransformerEncoderLayer(16, 4, 24, dropout=0.0, batch_first=True, norm_first=norm == "pre")
    with torch.no_grad():
        ref.self_attn.in_proj_weight.copy_(ours.attn.W_QKV.T), ref.self_attn.in_proj_bias.zero_()
        ref.self_attn.out_proj.weight.copy_(ours.attn.W_O.T), ref.self_attn.out_proj.bias.zero_()
        ref.linear1.weight.copy_(ours.ffn.W_1.T), ref.linear1.bias.copy_(ours.ffn.b_1)
        ref.linear2.weight.copy_(ours.ffn.W_2.T), ref.linear2.bias.copy_(ours.ffn.b_2)
        for mine, theirs in ((ours.norm_1, ref.norm1), (ours.norm_2, ref.norm2)):
            theirs.weight.copy_(mine.gamma), theirs.bias.copy_(mine.beta)
    x = torch.randn(3, 7, 16)
    allowed = torch.ones(7, 7, dtype=torch.bool).tril()
    out, _ = ours(x, mask=allowed)
    assert torch.allclose(out, ref(x, src_mask=~allowed), atol=1e-5)


# ---------------------------------------------------------------- positions

def test_sinusoids_follow_the_formula_of_section_3_5():
    positions = torch.tensor([0, 1, 7, 300])                # 300: beyond any block, the table has no end
    pe = sinusoids(positions, 10)
    for row, pos in enumerate(positions.tolist()):
        for i in range(5):
            assert pe[row, 2 * i].item() == pytest.approx(math.sin(pos / 10000 ** (2 * i / 10)), abs=1e-5)
            assert pe[row, 2 * i + 1].item() == pytest.approx(math.cos(pos / 10000 ** (2 * i / 10)), abs=1e-5)


def test_rope_scores_depend_only_on_the_offset():
    torch.manual_seed(0)
    q, k = torch.randn(8), torch.randn(8)

    def score(m, n):
        qm = rotate(q.view(1, 8), *rotary(torch.tensor([m]), 8))
        kn = rotate(k.view(1, 8), *rotary(torch.tensor([n]), 8))
        return (qm @ kn.T).item()

    for m, n in [(5, 2), (9, 9), (3, 7)]:
        for shift in (1, 13, 200):
            assert score(m + shift, n + shift) == pytest.approx(score(m, n), abs=1e-4)
    assert score(5, 2) != pytest.approx(score(5, 3), abs=1e-3)   # and they do depend on it
    rotated = rotate(q.view(1, 8), *rotary(torch.tensor([11]), 8))
    assert torch.linalg.vector_norm(rotated).item() == pytest.approx(torch.linalg.vector_norm(q).item(), rel=1e-5)


# ---------------------------------------------------------------- the language model

@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_no_look_ahead(pos, norm):
    """Changing the tokens after t never changes the logits at positions <= t."""
    torch.manual_seed(0)
    model = tiny_model(pos, norm)
    idx = torch.randint(13, (2, 16))
    logits, _ = model(idx)
    for t in (0, 5, 14):
        changed = idx.clone()
        changed[:, t + 1:] = torch.randint(13, (2, 15 - t))
        changed[:, t + 1] = (idx[:, t + 1] + 1) % 13                  # at least one token differs
        new_logits, _ = model(changed)
        assert torch.allclose(new_logits[:, :t + 1], logits[:, :t + 1], atol=1e-6)
        assert not torch.allclose(new_logits[:, t + 1], logits[:, t + 1], atol=1e-4)


def test_tied_embeddings_are_one_matrix_and_untied_are_two():
    tied, untied = tiny_model(tie=True), tiny_model(tie=False)
    assert tied.W_out is None and untied.W_out is not None
    assert sum(p.numel() for p in untied.parameters()) - sum(p.numel() for p in tied.parameters()) == 16 * 13
    _, loss = tied(torch.randint(13, (1, 5)), torch.randint(13, (1, 5)))
    loss.backward()
    assert tied.E.grad is not None and tied.E.grad.abs().sum() > 0


def generate_and_record(model, prompt, length, **kwargs):
    """generate(), and the logits of the last position of every forward pass it made: (length, |V|)."""
    rows = []

    def recording(idx, targets=None, cache=None):
        logits, loss = TransformerLM.forward(model, idx, targets, cache)
        rows.append(logits[0, -1])
        return logits, loss

    model.forward = recording
    try:
        return generate(model, prompt, length, **kwargs), torch.stack(rows)
    finally:
        del model.forward


@pytest.mark.parametrize("pos", POSITIONS)
def test_generation_with_the_cache_gives_the_tokens_of_generation_without_it(pos):
    torch.manual_seed(0)
    model = tiny_model(pos, tie=False, scale=1.0)
    prompt = [3, 1, 4, 1, 5]
    # within the block: all three position kinds; learned positions also far past it (the cache is rebuilt)
    length = 40 if pos == "learned" else 16 - len(prompt)
    greedy = [generate(model, prompt, length, use_cache=c, greedy=True) for c in (True, False)]
    assert greedy[0] == greedy[1] and len(greedy[0]) == len(prompt) + length
    # sampled from the same seed: the same tokens, from the same logits at every step
    (ids, logits), (ids_ref, logits_ref) = [
        generate_and_record(model, prompt, length, use_cache=c, generator=torch.Generator().manual_seed(1))
        for c in (True, False)]
    assert ids == ids_ref and len(set(ids[len(prompt):])) > 2
    assert torch.allclose(logits, logits_ref, atol=1e-5)


@pytest.mark.parametrize("pos", ["sinusoidal", "rope"])
def test_past_the_block_the_cropped_cache_is_a_sliding_window_of_attention(pos):
    """Past the block, generation crops the cache to the last block_size - 1 positions and positions
    keep counting: exactly a model whose every position attends to itself and the block_size - 1
    before it, run over the whole text at once."""
    torch.manual_seed(0)
    model, block, prompt = tiny_model(pos, tie=False, scale=1.0), 16, [2, 7]
    ids, logits = generate_and_record(model, prompt, 3 * block, generator=torch.Generator().manual_seed(1))
    L = len(ids) - 1
    whole = tiny_model(pos, block_size=L, tie=False)
    whole.load_state_dict(model.state_dict())
    t, s = torch.arange(L)[:, None], torch.arange(L)[None, :]
    whole.causal = torch.zeros(L, L).masked_fill(~((s <= t) & (s > t - block)), float("-inf"))
    whole_logits, _ = whole(torch.tensor([ids[:-1]]))                 # (1, L, |V|)
    assert torch.allclose(logits, whole_logits[0, len(prompt) - 1:], atol=1e-4)
    # and not what a model that sees the whole past would say
    full = tiny_model(pos, block_size=L, tie=False)
    full.load_state_dict(model.state_dict())
    assert not torch.allclose(logits, full(torch.tensor([ids[:-1]]))[0][0, len(prompt) - 1:], atol=1e-2)


def test_each_new_token_costs_one_position_with_the_cache():
    torch.manual_seed(0)
    model = tiny_model("rope")
    seen, forward = [], model.forward
    model.forward = lambda idx, targets=None, cache=None: seen.append((idx.shape[1], cache.length)) or forward(
        idx, targets, cache)
    generate(model, [1] * 20, 30, greedy=True)
    assert seen[0] == (16, 0)                                         # the prompt's last block, once
    assert all(n == 1 for n, _ in seen[1:])                           # then one token per step
    assert max(length for _, length in seen) == 15                     # cropped to block_size - 1


def test_forward_refuses_more_positions_than_the_block():
    model = tiny_model("learned")
    with pytest.raises(ValueError, match="block size"):
        model(torch.zeros(1, 17, dtype=torch.long))
    cache = KVCache(2)
    model(torch.zeros(1, 16, dtype=torch.long), cache=cache)
    with pytest.raises(ValueError, match="block size"):
        model(torch.zeros(1, 1, dtype=torch.long), cache=cache)


@pytest.mark.parametrize("pos,norm", [("rope", "pre"), ("sinusoidal", "post")])
def test_overfits_a_tiny_text(pos, norm):
    torch.manual_seed(0)
    text = "hello world, hello transformer. " * 4
    chars = sorted(set(text))
    data = torch.tensor([chars.index(c) for c in text])
    x, y = data[:-1].view(1, -1)[:, :96].reshape(3, 32), data[1:].view(1, -1)[:, :96].reshape(3, 32)
    model = TransformerLM(TransformerConfig(vocab_size=len(chars), block_size=32, n_layers=2, n_heads=2,
                                            d_model=32, d_ff=64, pos=pos, norm=norm))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(150):
        _, loss = model(x, y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.3, loss.item()            # from ln(17) = 2.8; the first characters are guesses


# ---------------------------------------------------------------- training

def test_noam_schedule_rises_linearly_then_decays_as_one_over_the_root_of_the_step():
    d, w = 128, 400
    eq3 = lambda step: d ** -0.5 * min(step ** -0.5, step * w ** -1.5)     # the paper's Eq. 3, as printed
    peak = (d * w) ** -0.5
    for step in (1, 17, w // 4, w, w + 1, 4 * w, 10_000):
        assert noam_lr(step, w, peak) == pytest.approx(eq3(step))         # Eq. 3 when --lr is its peak
    assert noam_lr(w // 4, w, 1e-3) == pytest.approx(1e-3 / 4)
    assert noam_lr(4 * w, w, 1e-3) == pytest.approx(1e-3 / 2)
    assert max(range(1, 2000), key=lambda s: noam_lr(s, w, 1e-3)) == w


@pytest.mark.parametrize("task", ["lm", "translate"])
@pytest.mark.parametrize("schedule", ["constant", "cosine", "noam"])
def test_lr_is_the_peak_learning_rate_under_every_schedule(task, schedule):
    """The habit `--lr 1e-3` means a rate of 1e-3 (issue 18: under noam it was a factor, 5e-8 .. 5e-7)."""
    args = parse_args(["--task", task, "--schedule", schedule, "--lr", "1e-3", "--epochs", "3000",
                       "--warmup", "100"])
    rates = [learning_rate(args, step) for step in range(3000)]
    assert max(rates) == pytest.approx(1e-3)
    assert rates[-1] >= 1e-4                                    # and it does not vanish


def test_warm_up_of_the_common_schedules():
    assert scheduled_lr("constant", 0, 100, 1.0, warmup=10) == pytest.approx(0.1)
    assert scheduled_lr("constant", 50, 100, 1.0, warmup=10) == 1.0
    assert scheduled_lr("constant", 0, 100, 1.0) == 1.0
    assert scheduled_lr("cosine", 4, 100, 1.0, warmup=10) == pytest.approx(0.5)
    assert scheduled_lr("cosine", 100, 100, 1.0, warmup=10) == pytest.approx(0.1)


def test_lr_default_is_a_rate_under_every_schedule():
    assert parse_args([]).lr == 1e-3
    assert parse_args(["--schedule", "noam"]).lr == 1e-3
    assert parse_args(["--schedule", "noam", "--lr", "2e-3"]).lr == 2e-3
    # the translator's default peak is the measured run's: half Eq. 3's at d_model 256, warm-up 800
    args = parse_args(["--task", "translate"])
    assert (args.schedule, args.warmup) == ("noam", 800)
    assert max(learning_rate(args, s) for s in range(2000)) == pytest.approx(0.5 * (256 * 800) ** -0.5)
    args = parse_args(["--norm", "post", "--pos", "sinusoidal", "--no-tie", "--d-model", "64"])
    assert (args.norm, args.pos, args.tie, args.d_ff) == ("post", "sinusoidal", False, None)


def test_fast_estimate_scores_every_position_once_in_blocks_of_the_block_size():
    class Recorder(nn.Module):
        """Its 'loss' is the mean target id, so mean_loss returns the mean over the targets it saw."""
        config = TransformerConfig(block_size=16)

        def forward(self, x, y):
            assert x.shape == y.shape and x.shape[1] <= 16
            assert torch.equal(x[:, 1:], y[:, :-1])                    # contiguous blocks
            return None, y.float().mean()

    data = torch.randint(50, (1000,))
    streams = (1000 - 1) // 16
    scored = data[1:(999 // streams) * streams + 1].float()           # all but the last (999 % streams)
    assert fast_estimate(Recorder(), data, "cpu") == pytest.approx(scored.mean().item(), rel=1e-6)


def one_line_error(capsys, main, *argv):
    """main(argv) run as a script would be (utils.errors.run_main), in this process: bad input is
    exit status 2 and one `error: ...` line on stderr."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_:
        run_main(lambda: main([str(a) for a in argv]))
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert exit_.value.code == 2 and len(lines) == 1 and lines[0].startswith("error: "), err
    return lines[0]


def test_train_then_generate_with_and_without_the_cache_then_resume(tiny_corpus, tmp_path, capsys,
                                                                   scripts_on_one_thread):
    ckpt = tmp_path / "model.pt"
    r = run_script("transformer", "train.py", "--data", tiny_corpus, "--epochs", 4, "--eval-every", 2,
                   "--checkpoint", ckpt, "--label-smoothing", 0.1, "--dropout", 0.1, *TINY)
    assert r.returncode == 0, r.stderr
    assert "summary: val loss" in r.stdout and "tok/s" in r.stdout
    assert (tmp_path / "log.csv").read_text().splitlines()[0].startswith("step,train_loss,val_loss")
    saved = torch.load(ckpt, weights_only=True)
    assert saved["step"] == 4 and saved["model_type"] == "transformer" and saved["config"]["n_layers"] == 2
    # 13 new characters: within the block of 16, where the cache changes nothing
    r = run_script("transformer", "generate.py", "--checkpoint", ckpt, "--prompt", "the", "--length", 13, "--greedy")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("the")
    # the rest in this process (a script's start-up costs seconds): the same text without the cache
    capsys.readouterr()
    generate_main(["--checkpoint", str(ckpt), "--prompt", "the", "--length", "13", "--greedy", "--no-cache"])
    assert capsys.readouterr().out == r.stdout

    # resume continues the step count (another dropout is allowed: the weights are the same)
    train_main(["--data", str(tiny_corpus), "--epochs", "6", "--eval-every", "2", "--checkpoint", str(ckpt),
                "--resume", "--schedule", "noam", "--warmup", "2", *map(str, TINY)])
    assert "resuming from step 4" in capsys.readouterr().out
    assert torch.load(ckpt, weights_only=True)["step"] == 6

    # bad input: one line, exit status 2
    assert "multiple" in one_line_error(capsys, train_main, "--data", tiny_corpus, "--heads", 3,
                                        "--checkpoint", tmp_path / "x.pt")
    assert "--dropout" in one_line_error(capsys, train_main, "--dropout", 1.5)
    assert "--warmup" in one_line_error(capsys, train_main, "--schedule", "noam", "--warmup", 0)
    one_line_error(capsys, generate_main, "--checkpoint", ckpt, "--prompt", "")
    other = torch.load(ckpt, weights_only=True)
    other["model_type"] = "lstm"
    save_checkpoint(tmp_path / "lstm.pt", **other)
    assert "'lstm' model" in one_line_error(capsys, generate_main, "--checkpoint", tmp_path / "lstm.pt")
    assert not (tmp_path / "x.pt").exists()


def test_ctrl_c_saves_a_loadable_checkpoint_and_exits_cleanly(tiny_corpus, tmp_path, scripts_on_one_thread):
    code, out, err = interrupt_training("transformer", tmp_path, "--data", tiny_corpus, *TINY)
    assert code == 130, err  # 128 + SIGINT: interrupted, not finished
    assert "Traceback" not in err and "interrupted" in out
    assert load_checkpoint(tmp_path / "model.pt", "transformer")["step"] > 0
    assert "summary: val loss" in out


def test_kv_cache_benchmark_runs(capsys):
    kv_cache = load_experiment("kv_cache")
    kv_cache.main(["--tokens", "40", "--block-size", "16", "--layers", "1", "--d-model", "16", "--heads", "2"])
    out = capsys.readouterr().out
    assert "with cache" in out and "without cache" in out and "agree" in out and "DIFFER" not in out


@pytest.mark.slow
def test_defaults_reach_the_target_on_tiny_shakespeare():
    """The issue's target: the defaults (the minimal character GPT) reach <= 1.88 nats/char."""
    r = run_script("transformer", "train.py",
                   "--checkpoint", ROOT / "checkpoints" / "slow-test-transformer" / "model.pt", timeout=1800)
    assert r.returncode == 0, r.stderr
    summary = next(line for line in r.stdout.splitlines() if line.startswith("summary:"))
    assert float(summary.split("val loss ")[1].split()[0]) <= 1.88, summary


# ---------------------------------------------------------------- the encoder-decoder (--task translate)

MT_SIZES = dict(src_vocab=11, tgt_vocab=13, n_layers=2, n_heads=2, d_model=16, d_ff=32, dropout=0.0, block_size=12)
MT_TINY = ["--layers", 2, "--heads", 2, "--d-model", 16, "--d-ff", 32, "--batch-size", 4]


def tiny_translator(pos="sinusoidal", norm="post", seed=0, scale=0.3, **kwargs):
    torch.manual_seed(seed)
    model = TransformerTranslator(TranslatorConfig(**{**MT_SIZES, "pos": pos, "norm": norm, **kwargs}))
    return randomise(model, scale).eval()


def step_by_step(model, src, src_len, tgt_in):
    """decode_step over tgt_in, one position at a time through the cache: logits (B, T, V)."""
    memory = model.encode(src, src_len)
    state, logits = model.init_decoder(memory), []
    for t in range(tgt_in.size(1)):
        out, state = model.decode_step(memory, state, tgt_in[:, t])
        logits.append(out)
    return torch.stack(logits, 1)


@pytest.mark.filterwarnings("ignore:enable_nested_tensor")
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_encoder_decoder_matches_nn_transformer(norm):
    """Our stacks are torch's (attention without biases: torch's set to zero), padding masks on the
    source keys and the causal mask on the decoder's self-attention; the embeddings scaled by
    √d_model plus the sinusoids go in, the tied pre-softmax projection comes out."""
    model = tiny_translator(norm=norm)
    ref = nn.Transformer(16, 2, 2, 2, 32, dropout=0.0, batch_first=True, norm_first=norm == "pre")

    def copy_attention(theirs, mine):
        theirs.in_proj_weight.copy_(mine.W_QKV.T), theirs.in_proj_bias.zero_()
        theirs.out_proj.weight.copy_(mine.W_O.T), theirs.out_proj.bias.zero_()

    def copy_norm(theirs, mine):
        theirs.weight.copy_(mine.gamma), theirs.bias.copy_(mine.beta)

    with torch.no_grad():
        pairs = zip([*model.encoder, *model.decoder], [*ref.encoder.layers, *ref.decoder.layers])
        for mine, theirs in pairs:
            copy_attention(theirs.self_attn, mine.attn)
            theirs.linear1.weight.copy_(mine.ffn.W_1.T), theirs.linear1.bias.copy_(mine.ffn.b_1)
            theirs.linear2.weight.copy_(mine.ffn.W_2.T), theirs.linear2.bias.copy_(mine.ffn.b_2)
            copy_norm(theirs.norm1, mine.norm_1)
            if hasattr(theirs, "multihead_attn"):                   # torch's norm2 is the cross-attention's
                copy_attention(theirs.multihead_attn, mine.cross)
                copy_norm(theirs.norm2, mine.norm_cross), copy_norm(theirs.norm3, mine.norm_2)
            else:
                copy_norm(theirs.norm2, mine.norm_2)
        if norm == "pre":
            copy_norm(ref.encoder.norm, model.norm_enc), copy_norm(ref.decoder.norm, model.norm_dec)
        else:                                                       # torch always ends each stack with a norm
            ref.encoder.norm, ref.decoder.norm = nn.Identity(), nn.Identity()
    src, src_len = sources([5, 2, 7])
    tgt_in = targets(3, 6)
    embed = lambda E, ids: E[ids] * 4.0 + sinusoids(torch.arange(ids.size(1)), 16)   # √16 = 4
    pad = torch.arange(7) >= src_len[:, None]
    out = ref(embed(model.E_src, src), embed(model.E_tgt, tgt_in), tgt_mask=torch.ones(6, 6).triu(1).bool(),
              src_key_padding_mask=pad, memory_key_padding_mask=pad)
    assert torch.allclose(model(src, src_len, tgt_in), out @ model.E_tgt.T, atol=1e-5)


@pytest.mark.parametrize("pos", POSITIONS)
@pytest.mark.parametrize("norm", ["post", "pre"])
def test_teacher_forced_forward_is_decode_step_run_through_the_cache(pos, norm):
    model = tiny_translator(pos, norm, tie=pos != "rope")
    src, src_len = sources([5, 2, 7, 1])
    tgt_in = targets(4, 8)
    logits = model(src, src_len, tgt_in)                                  # (B, T, V)
    assert logits.shape == (4, 8, 13)
    assert torch.allclose(step_by_step(model, src, src_len, tgt_in), logits, atol=1e-5)
    # training mode without dropout is the same function
    assert torch.allclose(model.train()(src, src_len, tgt_in), logits, atol=1e-6)


def test_a_decoding_step_reads_one_position_and_the_memory_is_projected_once():
    model = tiny_translator()
    src, src_len = sources([5, 2])
    calls = []
    for block in model.decoder:
        original = block.cross.keys_values
        block.cross.keys_values = lambda memory, f=original: calls.append(memory.shape) or f(memory)
    memory = model.encode(src, src_len)
    state = model.init_decoder(memory)
    positions = []
    embed = model.embed
    model.embed = lambda E, ids, start=0: positions.append((ids.shape[1], start)) or embed(E, ids, start)
    for t, prev in enumerate([BOS, 5, 6, 7]):
        _, state = model.decode_step(memory, state, torch.tensor([prev, prev]))
        assert all(K.shape == V.shape == (2, 2, t + 1, 8) for K, V in state)       # (B, h, t + 1, d_k)
    assert positions == [(1, t) for t in range(4)]                                 # one new position a step
    assert calls == [(2, 5, 16)] * 2                                               # once per layer, in encode


@pytest.mark.parametrize("pos", POSITIONS)
def test_the_contents_of_padded_source_positions_never_change_the_output(pos):
    model = tiny_translator(pos)
    src, src_len = sources([5, 2, 7, 1])
    tgt_in = targets(4, 5)
    logits = model(src, src_len, tgt_in)
    changed = src.clone()
    pad = torch.arange(7) >= src_len[:, None]
    changed[pad] = torch.randint(4, 11, (int(pad.sum()),))
    assert torch.allclose(model(changed, src_len, tgt_in), logits, atol=1e-6)
    assert torch.allclose(step_by_step(model, changed, src_len, tgt_in), logits, atol=1e-5)
    # a real source word does change it
    changed[1, 1] = 4 + (src[1, 1] - 3) % 7
    assert not torch.allclose(model(changed, src_len, tgt_in)[1], logits[1], atol=1e-4)


@pytest.mark.parametrize("pos", POSITIONS)
def test_no_look_ahead_in_the_decoder(pos):
    """Changing the target words after t never changes the logits at positions <= t."""
    model = tiny_translator(pos)
    src, src_len = sources([5, 3])
    tgt_in = targets(2, 8)
    logits = model(src, src_len, tgt_in)
    for t in (0, 3, 6):
        changed = tgt_in.clone()
        changed[:, t + 1:] = torch.randint(4, 13, (2, 7 - t))
        changed[:, t + 1] = 4 + (tgt_in[:, t + 1] - 3) % 9                # at least one word differs
        new = model(src, src_len, changed)
        assert torch.allclose(new[:, :t + 1], logits[:, :t + 1], atol=1e-6)
        assert not torch.allclose(new[:, t + 1], logits[:, t + 1], atol=1e-4)


@pytest.mark.parametrize("beam", [1, 3])
def test_batched_decoding_equals_decoding_each_sentence_alone(beam):
    model = tiny_translator(norm="pre", tie=False)                   # (picked for its varied translations)
    with torch.no_grad():
        model.W_out[:, [PAD, BOS]] = 0.0                                  # as if trained: rarely chosen
    src, src_len = sources([5, 2, 7, 1, 3])
    if beam == 1:
        decode = lambda src, src_len: greedy_decode(model, src, src_len, max_len=9)
    else:
        decode = lambda src, src_len: beam_search(model, src, src_len, beam, max_len=9)
    batched = decode(src, src_len)
    alone = [decode(src[b:b + 1, :n], src_len[b:b + 1])[0] for b, n in enumerate(src_len.tolist())]
    assert batched == alone
    assert len({tuple(ids) for ids in batched}) > 2 and len({len(ids) for ids in batched}) > 1


def test_learned_positions_stop_at_the_block_size():
    model = tiny_translator("learned")
    with pytest.raises(ValueError, match="learned positions"):
        model(*sources([3]), targets(1, 13))
    assert model(*sources([3]), targets(1, 12)).shape == (1, 12, 13)


def test_overfits_one_tiny_batch_with_label_smoothing():
    """Eight sentences to write backwards, learnt by heart; label smoothing leaves the argmax alone."""
    torch.manual_seed(0)
    model = TransformerTranslator(TranslatorConfig(src_vocab=10, tgt_vocab=10, n_layers=2, n_heads=2, d_model=32,
                                                   d_ff=64, dropout=0.0))
    src, src_len = sources([5, 4, 6, 3, 5, 6, 4, 5], vocab=10, seed=5)
    rows = [s[:n].flip(0).tolist() for s, n in zip(src, src_len.tolist())]
    batch = collate([(s[:n].tolist(), r) for s, n, r in zip(src, src_len.tolist(), rows)], list(range(8)))
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    for _ in range(100):
        loss = translation_loss(model, batch, label_smoothing=0.1)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    smoothed_floor = -(0.9 + 0.1 / 10) * math.log(0.9 + 0.1 / 10) - 9 * (0.1 / 10) * math.log(0.1 / 10)
    assert loss.item() < smoothed_floor + 0.1, loss.item()             # from ln(10) = 2.3
    assert greedy_decode(model.eval(), batch.src, batch.src_len, max_len=10) == rows


def test_label_smoothing_puts_mass_on_pad_and_bos_too():
    """README, Label smoothing: F.cross_entropy spreads epsilon_ls over all |V_y| classes, <pad> and
    <bos> included (tokens the decoder is never asked to emit); ignore_index only drops PAD targets."""
    V, eps = 7, 0.1
    logits = torch.randn(2, 4, V)

    class Fixed(nn.Module):
        def forward(self, src, src_len, tgt_in):
            return logits

    batch = collate([([4, 5], [4, 5, 6]), ([6], [5])], [0, 1])     # the second target padded after <eos>
    loss = translation_loss(Fixed(), batch, label_smoothing=eps)
    logp = logits.log_softmax(-1)
    scored = batch.tgt_out != PAD                                     # 4 + 2 targets; the PAD ones drop out
    nll = -logp.gather(-1, batch.tgt_out[..., None])[..., 0]
    uniform_all = -logp.mean(-1)                                      # over all V classes, PAD and BOS too
    expected = ((1 - eps) * nll + eps * uniform_all)[scored].mean()
    assert torch.allclose(loss, expected, atol=1e-6)
    others = [c for c in range(V) if c not in (PAD, BOS)]
    uniform_words = -logp[..., others].mean(-1)                       # a smoothing that skipped them
    assert not torch.allclose(loss, ((1 - eps) * nll + eps * uniform_words)[scored].mean(), atol=1e-4)


def test_sources_carry_no_eos():
    """README, Departures: the encoder reads x_1 .. x_n and padding, no <eos>; the target side has its
    <bos> (decoder input) and <eos> (scored)."""
    batch = collate([([4, 5, 6], [7, 8]), ([9], [7])], [0, 1])
    assert batch.src.tolist() == [[4, 5, 6], [9, PAD, PAD]]
    assert batch.src_len.tolist() == [3, 1]
    assert batch.tgt_in[:, 0].tolist() == [BOS, BOS]
    assert batch.tgt_out.tolist() == [[7, 8, EOS], [7, EOS, PAD]]


def test_translate_flags():
    args = parse_args(["--task", "translate"])
    d = TranslatorConfig()
    assert (args.data, args.src, args.tgt, args.schedule, args.lr, args.label_smoothing, args.beta2,
            args.weight_decay) == ("multi30k", "de", "en", "noam", 0.5 * (256 * 800) ** -0.5, 0.1, 0.98, 0.0)
    assert (args.layers, args.heads, args.d_model, args.d_ff, args.dropout, args.norm, args.pos, args.tie) == \
        (d.n_layers, d.n_heads, d.d_model, d.d_ff, d.dropout, d.norm, d.pos, d.tie)
    assert parse_args(["--task", "translate", "--schedule", "cosine"]).lr == args.lr     # one peak, any schedule
    assert parse_args([]).label_smoothing == 0.0                          # the language model's defaults stay


def test_translate_train_then_generate_and_wrong_kinds_of_checkpoint(tmp_path, capsys, scripts_on_one_thread):
    corpus, ckpt = toy_translation_corpus(tmp_path / "corpus"), tmp_path / "mt" / "model.pt"
    r = run_script("transformer", "train.py", "--task", "translate", "--data", corpus, "--epochs", 3,
                   "--eval-every", 2, "--checkpoint", ckpt, "--beam", 2, "--warmup", 2, *MT_TINY)
    assert r.returncode == 0, r.stderr
    assert "BLEU greedy" in r.stdout and "BLEU beam 2" in r.stdout and "summary: val loss" in r.stdout
    saved = torch.load(ckpt, weights_only=True)
    assert (saved["model_type"], saved["step"], saved["config"]["d_model"], saved["config"]["block_size"]) == \
        ("transformer_mt", 3, 16, 51)
    # generate.py, in this process (a script's start-up costs seconds): one line, the translation;
    # greedy gives what greedy_decode of the checkpoint's model gives
    capsys.readouterr()
    generate_main(["--task", "translate", "--checkpoint", str(ckpt), "--prompt", "Ein alter Mann sieht den Hund.", "--beam", "2"])
    translation = capsys.readouterr().out
    assert translation.strip() and translation.count("\n") == 1
    generate_main(["--task", "translate", "--checkpoint", str(ckpt), "--prompt", "Ein alter Mann sieht den Hund.", "--beam", "1"])
    greedy = capsys.readouterr().out.strip()
    model = TransformerTranslator(TranslatorConfig(**saved["config"]))
    model.load_state_dict(saved["model"])
    data = TranslationData.from_dict(saved["tokenizer"])
    ids = data.src_tokenizer.encode("Ein alter Mann sieht den Hund.")
    expected = greedy_decode(model.eval(), torch.tensor([ids]), torch.tensor([len(ids)]), data.max_len)[0]
    assert greedy == data.tgt_tokenizer.decode(expected)
    # --eval-only: the test report of the checkpoint
    train_main(["--task", "translate", "--eval-only", "--data", str(corpus), "--checkpoint", str(ckpt),
                "--beam", "1"])
    assert "BLEU greedy" in capsys.readouterr().out
    # wrong kinds of checkpoint: one line, exit status 2
    lm = tmp_path / "lm.pt"
    save_checkpoint(lm, **{**saved, "model_type": "transformer", "tokenizer": {"kind": "char", "chars": list("ab")}})
    assert "--task translate" in one_line_error(capsys, generate_main, "--checkpoint", ckpt, "--task", "lm")
    assert "--task lm" in one_line_error(capsys, generate_main, "--checkpoint", lm, "--task", "translate")
    assert "'attention' model" in one_line_error(capsys, generate_main, "--checkpoint",
                                                 save_other(tmp_path, saved, "attention"), "--task", "translate")
    assert "multiple" in one_line_error(capsys, train_main, "--task", "translate", "--data", corpus, "--heads", 3,
                                        "--checkpoint", tmp_path / "x.pt")


def save_other(tmp_path, saved, model_type):
    path = tmp_path / f"{model_type}.pt"
    save_checkpoint(path, **{**saved, "model_type": model_type})
    return path
