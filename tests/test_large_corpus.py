"""experiments/large_corpus.py at tiny size: its probes (peak RSS of one child, the encoding line,
the synthetic text) and the structure of its report."""
import sys

import pytest

from conftest import load_experiment

lc = load_experiment("large_corpus")


def test_peak_rss_is_that_of_the_child():
    """A child that allocates more than this process ever held reports at least that; a trivial one
    reports no more than this process's own peak (which a fork, before exec, may pass on to it)."""
    import resource
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    alloc = own + (200 << 20)
    big = lc.peak_rss([sys.executable, "-c", f"x = bytearray({alloc}); x[::4096] = b'1' * len(x[::4096])"])
    small = lc.peak_rss([sys.executable, "-c", "print('hi')"])
    assert big[0] == 0 and small[0] == 0 and small[1].strip() == "hi"
    assert big[4] >= alloc and 1 << 20 < small[4] <= own + (64 << 20)


def test_the_encoding_line_is_parsed():
    line = "encoded 1,234.5 MB in 10.2 s (121.0 MB/s): 1,200,000 characters, 88 distinct, into data/x.u16"
    assert lc.parse_encoding("noise\n" + line + "\n") == (1234.5, 10.2, 121.0, 1_200_000)
    assert lc.parse_encoding("no such line") is None


def test_the_synthetic_text_is_utf8_of_the_size_asked(tmp_path):
    path = tmp_path / "t.txt"
    n = lc.write_synthetic(path, 300_001, block_words=1000)
    raw = path.read_bytes()
    text = raw.decode("utf-8")                                    # whole characters only
    assert n == len(raw) and 300_001 - 4 < n <= 300_001
    assert len(text) < len(raw) and "\n" in text                  # multi-byte characters, line ends


@pytest.mark.slow
def test_a_tiny_benchmark_writes_its_report(tmp_path, monkeypatch, scripts_on_one_thread):
    monkeypatch.setenv("NN_MEMMAP_BYTES", "0")                    # the children take the memory map
    monkeypatch.setattr(lc, "RUNS", {
        "transformer": ["--layers", "1", "--heads", "2", "--d-model", "16", "--block-size", "16", "--batch-size", "4"],
        "lstm": ["--n-hidden", "16", "--layers", "1", "--batch-size", "4", "--bptt", "16"]})
    out = tmp_path / "large_corpus.md"
    lc.main(["--megabytes", "0.05", "--steps", "2", "--compare-megabytes", "0.02", "--work", str(tmp_path / "w"),
             "--out", str(out)])
    report = out.read_text()
    assert "MB/s" in report and report.count("| memory map") == 2 and "| in memory" in report
    assert "encoding the text first" in report and "the cache read back" in report
    assert not (tmp_path / "w").exists()                          # the text is deleted
    assert not list(lc.DATA_DIR.glob("large_corpus.txt.*"))       # and its cache
