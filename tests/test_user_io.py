"""What a user meets at the edges (issue 18): degenerate corpora, Windows line ends, a directory as
--data, missing Multi30k files, the task a two-task generate.py picks, leftovers of a killed save,
file modes, --device and the progress bar of long generations."""
import os
import stat
import subprocess
import sys
import time
import urllib.error

import pytest
import torch

from conftest import ROOT, SCRIPT_ENV, assert_one_line_error, run_script
from utils import data, sampling
from utils.checkpoint import save_checkpoint
from utils.errors import UserError
from utils.tokenizers import SPECIALS, CharTokenizer, WordTokenizer
from utils.translation import TranslationData, load_translator, translate

pytestmark = pytest.mark.usefixtures("one_thread")


def write(path, content):
    """A corpus file with exactly these bytes (write_text would turn \\n into the platform's)."""
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


# ---------------------------------------------------------------- degenerate corpora

def test_a_nul_corpus_is_refused_before_training(tmp_path, scripts_on_one_thread):
    nul = write(tmp_path / "nul.txt", b"\0" * 20_000)            # valid UTF-8, one symbol
    r = run_script("mlp", "train.py", "--data", nul, "--epochs", 2, "--checkpoint", tmp_path / "tmp" / "x.pt")
    assert r.returncode == 2
    assert "one distinct character" in assert_one_line_error(r)
    assert not (tmp_path / "tmp" / "x.pt").exists()


def test_mostly_control_characters_are_refused_but_line_ends_and_tabs_are_text(tmp_path):
    binary = write(tmp_path / "bin.txt", "\x01\x02ab\x03" * 100)            # 60% control characters
    with pytest.raises(UserError, match="control characters") as e:
        data.load_corpus(str(binary))
    assert "\n" not in str(e.value)
    # \n, \t, \r are the control characters of text: a file made mostly of them is still text
    layout = write(tmp_path / "layout.txt", "a\n\n\t\t\r\n\n" * 50 + "\x01" * 10)
    assert data.load_corpus(str(layout)).count("\x01") == 10
    # and a file just under half control characters passes the threshold
    half = write(tmp_path / "half.txt", "\x01\x02ab" * 100)
    assert len(data.load_corpus(str(half))) == 400


def test_windows_line_ends_are_read_as_newlines_with_a_note(tmp_path, capsys):
    path = write(tmp_path / "crlf.txt", "to be\r\nor not\r\n" * 30 + "a lone \r stays")
    text = data.load_corpus(str(path))
    assert "\r\n" not in text and text.count("\n") == 60 and text.count("\r") == 1
    notes = [line for line in capsys.readouterr().out.splitlines() if line.startswith("note:")]
    assert len(notes) == 1 and "60 Windows line ends" in notes[0]
    data.load_corpus(str(write(tmp_path / "lf.txt", "to be\nor not\n" * 30)))
    assert "note" not in capsys.readouterr().out                          # nothing to say for LF files


def test_characters_seen_only_in_validation_are_listed(tmp_path, capsys):
    path = write(tmp_path / "t.txt", "ab" * 45 + "é\x0ca" * 3 + "b")
    tok, _, val = data.char_lm_data(str(path))
    out = capsys.readouterr().out
    assert "2 characters occur only in the validation split" in out
    assert "'é'" in out and "'\\x0c'" in out
    assert {"é", "\x0c"} <= set(tok.chars)
    # a long list is cut, saying how many were left out
    many = "".join(chr(0x3b1 + i) for i in range(25))                     # 25 Greek letters
    data.char_lm_data(str(write(tmp_path / "many.txt", "ab" * 500 + many * 2)))
    out = capsys.readouterr().out
    assert "25 characters" in out and "and 5 more" in out and repr(many[19]) in out and repr(many[20]) not in out


# ---------------------------------------------------------------- --data mistakes

def test_a_directory_as_data_says_so(tmp_path):
    with pytest.raises(UserError) as e:
        data.load_corpus(str(tmp_path))
    assert "is a directory, not a text file" in str(e.value) and "no such file" not in str(e.value)


def test_known_corpora_offered_are_the_language_model_ones(tmp_path):
    with pytest.raises(UserError, match="no such file") as e:
        data.load_corpus(str(tmp_path / "missing.txt"))
    assert "tinyshakespeare" in str(e.value) and ".gz" not in str(e.value) and "multi30k" not in str(e.value)


def test_offline_every_missing_multi30k_file_is_named_at_once(monkeypatch, tmp_path):
    monkeypatch.setattr(data, "DATA_DIR", tmp_path / "data")
    (tmp_path / "data" / "multi30k").mkdir(parents=True)
    (tmp_path / "data" / "multi30k" / "train.de.gz").write_bytes(b"already here")
    tried = []

    def offline(url, timeout=None):
        tried.append(url)
        raise urllib.error.URLError("no network")

    monkeypatch.setattr(data.urllib.request, "urlopen", offline)
    with pytest.raises(UserError) as e:
        data.load_parallel("de", "en")
    message = str(e.value)
    missing = ["train.en.gz", "val.de.gz", "val.en.gz", "test_2016_flickr.de.gz", "test_2016_flickr.en.gz"]
    assert len(tried) == len(missing)                                     # the file present is not fetched
    assert all(name in message for name in missing) and "train.de.gz" not in message
    assert str(tmp_path / "data" / "multi30k") in message and "--data DIR" in message
    assert "no network" in message and "\n" not in message


# ---------------------------------------------------------------- gru/ and transformer/ generate.py: the task

def gru_checkpoints(folder):
    """An untrained GRU language model and encoder-decoder, saved as gru/train.py saves them."""
    from gru.model import GRUConfig, GRUEncoderDecoder, GRULanguageModel, Seq2SeqConfig
    lm = GRULanguageModel(GRUConfig(vocab_size=3, n_hidden=4))
    mt = GRUEncoderDecoder(Seq2SeqConfig(src_vocab=7, tgt_vocab=7, n_embd=4, n_hidden=4, dropout=0.0))
    return save(folder / "gru" / "model.pt", "gru", lm), save(folder / "gru_seq2seq" / "model.pt", "gru_seq2seq", mt)


def transformer_checkpoints(folder):
    from transformer.model import TransformerConfig, TransformerLM, TransformerTranslator, TranslatorConfig
    lm = TransformerLM(TransformerConfig(vocab_size=3, block_size=8, n_layers=1, n_heads=2, d_model=8, d_ff=16))
    mt = TransformerTranslator(TranslatorConfig(src_vocab=7, tgt_vocab=7, n_layers=1, n_heads=2, d_model=8,
                                                d_ff=16, dropout=0.0, block_size=12))
    return (save(folder / "transformer" / "model.pt", "transformer", lm),
            save(folder / "transformer_mt" / "model.pt", "transformer_mt", mt))


WORDS = WordTokenizer(list(SPECIALS) + ["ein", "mann", "."])           # 7 words, both sides


def save(path, model_type, model):
    """A checkpoint of `model`: a character tokenizer "ab " for a language model, WORDS for a translator."""
    translator = hasattr(model.config, "src_vocab")
    tokenizer = (TranslationData("de", "en", WORDS, WORDS, max_len=6).to_dict() if translator
                 else CharTokenizer("ab ").to_dict())
    save_checkpoint(path, model_type=model_type, model=model.state_dict(), optimizer={}, config=vars(model.config),
                    args={}, tokenizer=tokenizer, step=1, best_val_loss=1.0)
    return path


@pytest.mark.parametrize("folder, checkpoints", [("gru", gru_checkpoints), ("transformer", transformer_checkpoints)])
def test_without_task_generate_continues_text_even_when_the_translator_is_newer(
        folder, checkpoints, tmp_path, monkeypatch, capsys):
    import importlib
    generate = importlib.import_module(f"{folder}.generate")
    monkeypatch.setattr("utils.translation.default_path", lambda model_type: tmp_path / model_type / "model.pt")
    lm, mt = checkpoints(tmp_path)
    os.utime(lm, (1, 1))                                                  # the translator is the newer one
    generate.main(["--prompt", "ab", "--length", "50", "--seed", "1"])    # the command
    out = capsys.readouterr().out
    assert out.startswith("ab") and len(out.rstrip("\n")) == 52
    generate.main(["--task", "translate", "--prompt", "ein mann .", "--beam", "1"])
    model, data_ = load_translator(mt, generate.MODEL_TYPES["translate"], build_translator(generate))
    assert capsys.readouterr().out.strip() == translate(model, data_, "ein mann .", beam=1)
    # a --checkpoint of the other task: one line naming the --task to add
    with pytest.raises(UserError, match="add --task translate$"):
        generate.main(["--checkpoint", str(mt), "--prompt", "ab"])
    with pytest.raises(UserError, match="add --task lm$"):
        generate.main(["--checkpoint", str(lm), "--task", "translate"])
    # only the translator trained: the error says how to train a language model, and how to use it
    lm.unlink()
    with pytest.raises(UserError) as e:
        generate.main(["--prompt", "ab"])
    assert "(python train.py)" in str(e.value) and "add --task translate" in str(e.value)
    mt.unlink()
    with pytest.raises(UserError, match=r"python train\.py --task translate\)$"):
        generate.main(["--task", "translate"])
    # --help needs no checkpoint: each task's flags
    capsys.readouterr()
    for task, flag in (("lm", "--length"), ("translate", "--beam")):
        with pytest.raises(SystemExit) as e:
            generate.main(["--task", task, "--help"])
        assert e.value.code == 0 and flag in capsys.readouterr().out


def build_translator(generate):
    """The build function of a generate.py's translator, from its module (gru/ or transformer/)."""
    if hasattr(generate, "GRUEncoderDecoder"):
        return lambda c: generate.GRUEncoderDecoder(generate.Seq2SeqConfig(**c))
    return lambda c: generate.TransformerTranslator(generate.TranslatorConfig(**c))


def test_the_documented_hints_name_folders_and_commands_that_exist():
    """No hint in generate.py / utils points at a folder that does not exist, or tells a translator
    user to run plain `python train.py` (it trains a language model)."""
    for path in [*ROOT.glob("*/generate.py"), ROOT / "utils" / "translation.py", ROOT / "utils" / "data.py",
                 ROOT / "utils" / "sampling.py"]:
        text = path.read_text(encoding="utf-8")
        for name in ("transformer_mt/generate.py", "gru_seq2seq/generate.py", "the newer"):
            assert name not in text, (path, name)



@pytest.mark.parametrize("model_type, folder, flag", [("transformer_mt", "transformer", " --task translate"),
                                                       ("gru_seq2seq", "gru", " --task translate"),
                                                       ("lstm", "lstm", "")])
def test_checkpoint_hints_name_the_folder_and_task_of_the_model(model_type, folder, flag, tmp_path):
    """utils/checkpoint.py's messages: a checkpoint of another model names the script that reads
    it, a missing one the command that trains it (not folders named after a model type)."""
    from utils.checkpoint import load_checkpoint
    path = tmp_path / "model.pt"
    save_checkpoint(path, model_type=model_type, model={}, optimizer={}, config={}, args={}, tokenizer={},
                    step=1, best_val_loss=1.0)
    with pytest.raises(UserError, match=f"use {folder}/generate.py{flag}, or pass --checkpoint"):
        load_checkpoint(path, "mlp")
    with pytest.raises(UserError, match=f"train one first .cd {folder} && python train.py{flag}.$"):
        load_checkpoint(tmp_path / "missing.pt", model_type)


# ---------------------------------------------------------------- atomic_write: leftovers and modes

def test_a_killed_save_leaves_a_temporary_that_the_next_save_removes(tmp_path):
    target = tmp_path / "model.pt"
    # a writer killed with -9 in the middle of its write (the temporary is there, half written)
    code = ("import sys, time; sys.path.insert(0, sys.argv[1]); from utils.data import atomic_write; "
            "atomic_write(sys.argv[2], lambda f: (f.write(b'half'), f.flush(), time.sleep(60)))")
    writer = subprocess.Popen([sys.executable, "-c", code, str(ROOT), str(target)], env=SCRIPT_ENV)
    deadline = time.time() + 60
    while not list(tmp_path.glob(".model.pt.*.tmp")) and time.time() < deadline:
        time.sleep(0.05)
    writer.kill()
    writer.wait()
    dead, = tmp_path.glob(".model.pt.*.tmp")
    assert f".model.pt.{writer.pid}." in dead.name                        # the temporary names its writer
    # a writer that still runs, and a dead writer's temporary of another file: not ours to remove
    with subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"]) as live:
        running = write(tmp_path / f".model.pt.{live.pid}.abc_123.tmp", b"in progress")
        other = write(tmp_path / f".model.pt.1.{writer.pid}.abcdefgh.tmp", b"model.pt.1's")
        data.atomic_write(target, lambda f: f.write(b"whole"))
        live.kill()
    assert target.read_bytes() == b"whole"
    assert not dead.exists() and running.exists() and other.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["model.pt", running.name, other.name])


@pytest.mark.parametrize("umask, mode", [(0o027, 0o640), (0o002, 0o664)])
def test_a_checkpoint_gets_the_mode_the_umask_gives(umask, mode, tmp_path):
    old = os.umask(umask)
    data.default_file_mode.cache_clear()                                  # read once per process: again here
    try:
        save_checkpoint(tmp_path / "model.pt", model_type="mlp", model={}, optimizer={}, config={}, args={},
                        tokenizer={}, step=0, best_val_loss=1.0)
        assert stat.S_IMODE((tmp_path / "model.pt").stat().st_mode) == mode
    finally:
        os.umask(old)
        data.default_file_mode.cache_clear()


# ---------------------------------------------------------------- generate.py: --device, progress

def lm_checkpoint(folder, path):
    """An untrained tiny language model of one folder, saved as its train.py would."""
    from lstm.model import LSTM, LSTMConfig
    from mlp.model import NPLM, MLPConfig
    from rnn.model import ElmanRNN, RNNConfig
    build = {"mlp": lambda: NPLM(MLPConfig(vocab_size=3, context=2, n_embd=2, n_hidden=4)),
             "rnn": lambda: ElmanRNN(RNNConfig(vocab_size=3, n_hidden=4)),
             "lstm": lambda: LSTM(LSTMConfig(vocab_size=3, n_hidden=4, n_layers=1))}[folder]
    return save(path, folder, build())


def test_generate_takes_device_cpu(tmp_path, scripts_on_one_thread, capsys):
    import importlib
    mlp = lm_checkpoint("mlp", tmp_path / "mlp.pt")
    r = run_script("mlp", "generate.py", "--checkpoint", mlp, "--prompt", "ab", "--length", 5, "--device", "cpu")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith("ab") and len(r.stdout.rstrip("\n")) == 7
    assert_one_line_error(run_script("mlp", "generate.py", "--checkpoint", mlp, "--device", "tpu"))
    checkpoints = {"rnn": lm_checkpoint("rnn", tmp_path / "rnn.pt"), "lstm": lm_checkpoint("lstm", tmp_path / "lstm.pt")}
    (checkpoints["gru"], gru_mt), (checkpoints["transformer"], transformer_mt) = \
        gru_checkpoints(tmp_path), transformer_checkpoints(tmp_path)
    for folder, path in checkpoints.items():
        importlib.import_module(f"{folder}.generate").main(
            ["--checkpoint", str(path), "--prompt", "ab", "--length", "5", "--device", "cpu"])
        assert capsys.readouterr().out.startswith("ab"), folder
    for folder, path in (("gru", gru_mt), ("transformer", transformer_mt)):
        importlib.import_module(f"{folder}.generate").main(
            ["--task", "translate", "--checkpoint", str(path), "--prompt", "ein mann .", "--device", "cpu"])
        assert capsys.readouterr().out.count("\n") == 1, folder               # the translation, one line
    from attention.model import AttentionConfig, RNNsearch
    attention = save(tmp_path / "attention.pt", "attention",
                     RNNsearch(AttentionConfig(src_vocab=7, tgt_vocab=7, n_embd=4, n_hidden=4, n_align=4,
                                               n_maxout=2, dropout=0.0)))
    importlib.import_module("attention.generate").main(
        ["--checkpoint", str(attention), "--prompt", "ein mann .", "--device", "cpu", "--plot", str(tmp_path / "a.png")])
    assert (tmp_path / "a.png").stat().st_size > 0


def tiny_models():
    """One model per generation loop: (name, generate(length) -> ids)."""
    from mlp.generate import generate as mlp_generate
    from mlp.model import NPLM, MLPConfig
    from rnn.model import ElmanRNN, RNNConfig
    from transformer.generate import generate as transformer_generate
    from transformer.model import TransformerConfig, TransformerLM
    torch.manual_seed(0)
    mlp = NPLM(MLPConfig(vocab_size=3, context=2, n_embd=2, n_hidden=4))
    rnn = ElmanRNN(RNNConfig(vocab_size=3, n_hidden=4))
    gpt = TransformerLM(TransformerConfig(vocab_size=3, block_size=8, n_layers=1, n_heads=2, d_model=8, d_ff=16))
    return [("mlp", lambda n: mlp_generate(mlp, [0], n, 0)),
            ("recurrent", lambda n: sampling.generate_recurrent(rnn, [0], n)),
            ("transformer", lambda n: transformer_generate(gpt, [0], n))]


@pytest.mark.parametrize("name, generate", tiny_models())
def test_a_long_generation_shows_a_progress_bar_on_stderr(name, generate, monkeypatch, capsys):
    monkeypatch.setattr(sampling, "PROGRESS_FROM", 20)                    # "long", for a fast test
    assert len(generate(20)) == 21
    assert capsys.readouterr().err == ""                                   # short: no bar
    assert len(generate(30)) == 31
    out = capsys.readouterr()
    assert "generating" in out.err and "/30" in out.err and out.out == ""
