"""experiments/habit.py at a tiny size: it runs the real train.py, stops it with Ctrl-C, and writes
a results table whose numbers come from that run."""
import re

from experiments import habit


def test_habit_times_a_real_run_and_writes_its_row(tiny_corpus, tmp_path, scripts_on_one_thread):
    out = tmp_path / "habit.md"
    habit.main(["--only", "mlp", "--seconds", "2", "--epochs", "5000",
                "--extra", f"--data {tiny_corpus} --context 4 --n-embd 4 --n-hidden 16 --eval-every 1000",
                "--work", str(tmp_path / "work"), "--out", str(out)])
    text = out.read_text()
    row = next(line for line in text.splitlines() if line.startswith("| mlp |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells[1] == "`python train.py --epochs 5000 --lr 1e-3 --threads 1`"
    ms, steps = float(cells[2]), int(cells[6].replace(",", ""))
    assert 0 < ms < 1000 and 0 < steps < 5000                 # stopped by the Ctrl-C, not finished
    assert re.fullmatch(r"[\d.]+ s every 1000", cells[3])      # the validation after the Ctrl-C, timed
    first, last = re.findall(r"([\d.]+) \((\d+)\)", cells[7])
    assert int(last[1]) > int(first[1])
    assert "did not exit 130" not in text and "experiments/habit.py --seconds 2" in text


def test_a_train_py_that_refuses_its_flags_is_one_line_naming_why(tmp_path):
    import pytest
    from utils.errors import UserError
    with pytest.raises(UserError, match=r"mlp: train.py ended before training \(error: argument --lr"):
        habit.main(["--only", "mlp", "--seconds", "1", "--lr", "abc", "--work", str(tmp_path), "--out",
                    str(tmp_path / "habit.md")])
    assert not (tmp_path / "habit.md").exists()
