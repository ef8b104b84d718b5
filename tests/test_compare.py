"""experiments/compare.py: a tiny study end to end (every model trained for seconds, the report)."""
import json
import subprocess
import sys

from conftest import ROOT

MODELS = ("mlp", "rnn", "lstm", "gru", "transformer")


def test_help_documents_every_flag():
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare.py"), "--help"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0
    for flag in ("--data", "--minutes", "--seeds", "--parts", "--scaling-minutes", "--bn-minutes", "--bn-seeds",
                 "--jobs", "--threads", "--quick", "--out", "--work", "--report-only"):
        assert flag in r.stdout


def test_bad_flag_is_one_line():
    r = subprocess.run([sys.executable, str(ROOT / "experiments" / "compare.py"), "--parts", "nonsense"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "unknown nonsense" in r.stderr


def test_tiny_study_has_a_row_per_model_and_kneser_ney_all_scored_alike(tmp_path, tiny_corpus, scripts_on_one_thread):
    out, work = tmp_path / "results", tmp_path / "runs"
    cmd = [sys.executable, str(ROOT / "experiments" / "compare.py"), "--data", str(tiny_corpus), "--minutes", "0.05",
           "--seeds", "1", "--parts", "defaults", "--out", str(out), "--work", str(work)]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    report = (out / "compare.md").read_text()
    table = report.split("## Each folder's defaults")[1].split("\n## ")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and not line.startswith("| model")]
    assert [row.split(" | ")[0].strip("| ") for row in rows] == [*MODELS, "Kneser-Ney " + rows[-1].split("Kneser-Ney ")[1].split(" |")[0]]
    records = [json.loads(line) for line in (out / "compare_runs.jsonl").read_text().splitlines()]
    assert sorted(r["model"] for r in records) == sorted(MODELS)
    # every model scored the same characters: all of the validation split but its first
    text = tiny_corpus.read_text()
    n_val = len(text) - int(len(text) * 0.9)
    assert {r["scored"] for r in records} == {n_val - 1}
    for r in records:
        assert 0.05 * 60 <= r["cpu_s"] < 0.05 * 60 + 2 and r["steps"] > 0 and r["curve"]
    assert (out / "compare_curves.png").stat().st_size > 0
    # started again, it has nothing left to run and only rewrites the report
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0 and "every run of the study is in the records already" in r.stdout


def test_train_commands_use_absolute_paths_whatever_the_working_directory(tmp_path, monkeypatch):
    # train.py runs inside its model's folder: a --work or a --data FILE given relative to where the
    # script was started must reach it as an absolute path (a relative --work once broke context.py)
    import argparse
    sys.path.insert(0, str(ROOT))
    from experiments.compare import Run, run_command, run_folder
    monkeypatch.chdir(tmp_path)
    (tmp_path / "corpus.txt").write_text("hello world\n")
    run = Run("probe", "mlp", "defaults", [], 1337, 1.0)
    for data in ("tinyshakespeare", "corpus.txt"):
        args = argparse.Namespace(work="some/work", data=data)
        folder, cmd = run_folder(run, args), run_command(run, args)
        assert folder.is_absolute() and folder.is_relative_to(tmp_path / "some" / "work")
        assert cmd[cmd.index("--checkpoint") + 1] == str(folder / "model.pt")
        given = cmd[cmd.index("--data") + 1]
        assert given == ("tinyshakespeare" if data == "tinyshakespeare" else str(tmp_path / "corpus.txt"))
