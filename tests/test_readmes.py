"""The READMEs point at code by function and class names, never by line numbers (which rot with
every edit), and every name they point at in a folder's model.py or train.py exists there."""
import re

import pytest

from conftest import ROOT

FOLDERS = ["mlp", "rnn", "lstm", "gru", "attention", "transformer"]


@pytest.mark.parametrize("folder", FOLDERS)
def test_no_readme_points_at_code_by_line_number(folder):
    text = (ROOT / folder / "README.md").read_text(encoding="utf-8")
    found = re.findall(r"\blines? \d+", text)
    assert not found, f"{folder}/README.md: {found[:5]}"


@pytest.mark.parametrize("folder", FOLDERS)
def test_code_names_in_the_readme_tables_exist(folder):
    """Names in backticks that look like Class.method or a function of the folder's code are defined
    in the folder's .py files (or utils/): a renamed function makes its README row fail here."""
    text = (ROOT / folder / "README.md").read_text(encoding="utf-8")
    code = "\n".join(p.read_text(encoding="utf-8") for p in [*(ROOT / folder).glob("*.py"),
                                                             *(ROOT / "utils").glob("*.py"),
                                                             *(ROOT / "gru").glob("*.py")])
    defined = set(re.findall(r"^\s*(?:def|class) (\w+)", code, re.M))
    for name in re.findall(r"`([A-Z]\w+)\.(\w+)`", text):             # `Class.method`
        assert name[0] in defined and name[1] in defined, f"{folder}/README.md names {'.'.join(name)}"
