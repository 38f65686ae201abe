"""The README's Python tour is real: each python block prints the output block after it.

Numbers are compared as printed, up to round-off in their last digits (see ``golden.py``).
"""

import contextlib
import io
import itertools
import re
from pathlib import Path

import pytest

from golden import assert_same_output

README = Path(__file__).parents[1] / "README.md"


def _tour_pairs():
    text = README.read_text()
    start = text.index("## A tour of the Python API")
    tour = text[start : text.index("\n## ", start + 1)]  # this section only
    blocks = re.findall(r"```(\w*)\n(.*?)```", tour, flags=re.S)
    pairs = []
    for (language, code), (next_language, output) in itertools.pairwise(blocks):
        if language == "python" and next_language == "":
            pairs.append((code, output))
    return pairs


def test_readme_tour_output_is_what_the_code_prints(tmp_path, monkeypatch):
    pairs = _tour_pairs()
    assert len(pairs) == 2
    monkeypatch.chdir(tmp_path)  # the tour saves a model file
    namespace: dict = {}
    for code, expected in pairs:
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            exec(compile(code, str(README), "exec"), namespace)
        assert_same_output(printed.getvalue(), expected)
    assert (tmp_path / "circles.safetensors").is_file()


@pytest.mark.parametrize(
    "command",
    [
        "pip install -e . && OMP_NUM_THREADS=1 torchclf train",
        "python -m pytest -q",
        "python examples/classification_workflow.py",
    ],
)
def test_readme_names_the_two_commands(command):
    assert command in README.read_text()


def _section(title):
    text = README.read_text()
    start = text.index(f"\n## {title}\n")
    return text[start : text.index("\n## ", start + 1)]


def test_readme_scikit_learn_recipe_is_served_row_for_row(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from torchclf.cli import app

    section = _section("scikit-learn")
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, flags=re.S)
    code = next(body for language, body in blocks if language == "python")
    printed_block = blocks[blocks.index(("python", code)) + 1][1]
    command = next(body for _, body in blocks if body.startswith("$ torchclf predict"))
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code, str(README), "exec"), namespace)
    assert_same_output(printed.getvalue(), printed_block)
    arguments = command.splitlines()[0].split()[2:]  # after "$ torchclf"
    result = CliRunner().invoke(app, arguments, prog_name="torchclf")
    assert result.exit_code == 0, result.output
    assert result.stdout == command.splitlines()[1] + "\n"
    import pandas as pd

    served = pd.read_csv(tmp_path / "predictions.csv")["prediction"].to_numpy()
    model, X_test = namespace["model"], namespace["X_test"]
    assert served.tolist() == model.predict(X_test).tolist()
    assert (served == namespace["y_test"].to_numpy()).mean() > 0.95
