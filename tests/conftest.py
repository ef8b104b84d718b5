import gzip
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# a tiny corpus: enough distinct characters to be interesting, small enough to train in a second
TINY_TEXT = ("First Citizen:\nBefore we proceed any further, hear me speak.\n\n"
             "All:\nSpeak, speak.\n\nFirst Citizen:\nYou are all resolved rather to die than to famish?\n\n") * 20


@pytest.fixture(scope="module")
def one_thread():
    """Tiny recurrent steps are mostly thread hand-offs: one thread runs them many times faster
    (on a busy 2-core machine a small matmul on two threads can wait ~8 ms for the other core).
    For a whole test file: pytestmark = pytest.mark.usefixtures("one_thread")."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(autouse=True)
def sigint_left_as_found(request):
    """A test that leaves another SIGINT handler, or SIGINT blocked, behind is named in a warning
    (pytest's warnings summary) and the state put back: in the whole suite a later Ctrl-C test once
    found such a state (tests/test_resume.py's fixture), and this names the test that left it."""
    handler, mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    yield
    now_handler, now_mask = signal.getsignal(signal.SIGINT), signal.pthread_sigmask(signal.SIG_BLOCK, [])
    if now_handler is not handler or now_mask != mask:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        import warnings
        warnings.warn(f"{request.node.nodeid} left SIGINT changed: handler {handler!r} -> {now_handler!r}, "
                      f"blocked {sorted(mask)} -> {sorted(now_mask)}; put back")


@pytest.fixture
def scripts_on_one_thread(monkeypatch):
    """The same for the tiny train.py / generate.py runs of one test: they inherit OMP_NUM_THREADS=1."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")


@pytest.fixture
def tiny_corpus(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TINY_TEXT, encoding="utf-8")
    return path


@pytest.fixture
def multi30k_on_disk():
    """For a test of the real Multi30k: fetched into data/multi30k/ if need be, or, where it is not
    there and cannot be downloaded (offline, a fresh clone), the test is skipped with the reason.
    Only missing data skips; every other test reads tiny corpora written on the spot."""
    from utils.data import MULTI30K_LANGUAGES, fetch_multi30k
    from utils.errors import UserError
    try:
        fetch_multi30k(MULTI30K_LANGUAGES)
    except UserError as e:
        pytest.skip(f"needs Multi30k in data/multi30k/: {e}")


def write_parallel_corpus(folder, pairs_per_split, src="de", tgt="en"):
    """(source, target) sentence pairs per split under Multi30k's file names, <stem>.<lang>.gz:
    the layout that --data DIR reads."""
    from utils.data import MULTI30K_SPLITS
    folder.mkdir(parents=True, exist_ok=True)
    for split, pairs in pairs_per_split.items():
        for lang, side in ((src, 0), (tgt, 1)):
            with gzip.open(folder / f"{MULTI30K_SPLITS[split]}.{lang}.gz", "wt", encoding="utf-8") as f:
                f.write("".join(p[side] + "\n" for p in pairs))
    return folder


def toy_translation_corpus(folder):
    """A tiny German-English corpus that translates word for word: "ein alter mann sieht den hund ."."""
    words = [("alter", "old"), ("junger", "young"), ("großer", "tall")]
    things = [("keinen", "no"), ("den", "the"), ("einen kleinen", "a small")]
    pairs = [(f"ein {a} mann sieht {b} hund .", f"a {a2} man sees {b2} dog .")
             for (a, a2), (b, b2) in itertools.product(words, things)]
    return write_parallel_corpus(folder, {"train": pairs * 2, "val": pairs[:3], "test": pairs[3:]})


def sources(lengths, vocab=11, seed=1):
    """A padded batch of random source sentences (ids 4.. : no specials), PAD after each length:
    (src (B, S), src_len (B,)), for the translators' tests."""
    from utils.tokenizers import PAD
    g = torch.Generator().manual_seed(seed)
    src = torch.full((len(lengths), max(lengths)), PAD)
    for b, n in enumerate(lengths):
        src[b, :n] = torch.randint(4, vocab, (n,), generator=g)
    return src, torch.tensor(lengths)


def targets(batch, length, vocab=13, seed=2):
    """Random decoder inputs (B, length) that start with BOS."""
    from utils.tokenizers import BOS
    g = torch.Generator().manual_seed(seed)
    return torch.cat([torch.full((batch, 1), BOS), torch.randint(4, vocab, (batch, length - 1), generator=g)], 1)


def load_experiment(name):
    """experiments/<name>.py as a module (experiments/ is a folder of scripts, not a package)."""
    import importlib.util
    spec = importlib.util.spec_from_file_location(name, ROOT / "experiments" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# the scripts the tests run train tiny models: one thread each, so that on a shared 2-core machine
# they never wait on the other core (two threads per tiny op thrash there; see one_thread above)
SCRIPT_ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run_script(folder, script, *args, timeout=120):
    """Run <folder>/<script> as a user would (from inside the folder); returns CompletedProcess."""
    return subprocess.run([sys.executable, script, *map(str, args)], cwd=ROOT / folder,
                          capture_output=True, text=True, timeout=timeout, env=SCRIPT_ENV)


def assert_one_line_error(result):
    """Bad input: non-zero exit, no traceback, one `error: ...` line on stderr."""
    assert result.returncode != 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    return lines[0]


def _default_sigint():
    """In the child, before exec: SIGINT delivered and at its default, whatever the test process
    inherited or set (a blocked or ignored SIGINT would be inherited, and Ctrl-C never arrive)."""
    signal.pthread_sigmask(signal.SIG_UNBLOCK, [signal.SIGINT])
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def interrupt_training(folder, tmp_path, *args):
    """Start <folder>/train.py with a huge --epochs, press Ctrl-C once it is training, and return
    (exit status, stdout, stderr). The checkpoint goes to tmp_path / "model.pt"."""
    proc = subprocess.Popen([sys.executable, "train.py", "--epochs", "10000000", "--eval-every", "1000000",
                             "--checkpoint", str(tmp_path / "model.pt"), *map(str, args)],
                            cwd=ROOT / folder, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=SCRIPT_ENV, preexec_fn=_default_sigint)
    deadline = time.time() + 60
    while not (tmp_path / "log.csv").exists() and time.time() < deadline:   # the loop has started
        time.sleep(0.1)
    time.sleep(1.0)                                                            # let it take some steps
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    return proc.returncode, out, err
