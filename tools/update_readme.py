"""Rewrite the README's golden outputs from real runs (the tests check they match).

It re-runs ``torchclf train`` with its defaults for the CLI transcript (and the predictions
shown after it), and executes each python block of "A tour of the Python API" and of
"scikit-learn" for the output block after it. Run it after a change that
moves a printed number, then read the diff before committing it.

Run: OMP_NUM_THREADS=1 python tools/update_readme.py
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import tempfile
from pathlib import Path

README = Path(__file__).parents[1] / "README.md"


def cli_transcript(text: str) -> str:
    """The blocks after ``$ torchclf train`` and ``head -3 preds.csv``, from a fresh run."""
    from typer.testing import CliRunner

    from torchclf.cli import app

    with tempfile.TemporaryDirectory() as out:
        result = CliRunner().invoke(app, ["train", "--out", out], prog_name="torchclf")
        if result.exit_code != 0:
            raise SystemExit(result.output)
        printed = result.stdout.replace(str(Path(out) / "circles"), "runs/circles")
        # `torchclf predict runs/circles` writes exactly the run's test predictions (tested)
        predictions = (Path(out) / "circles" / "test_predictions.csv").read_text()
    text = _replace_block(text, "$ torchclf train\n", printed)
    head = "".join(predictions.splitlines(keepends=True)[:3])
    return _replace_block(text, "$ head -3 preds.csv\n", head)


def _replace_block(text: str, after: str, printed: str) -> str:
    """``text`` with what follows ``after``, up to the end of its block, replaced."""
    start = text.index(after) + len(after)
    end = text.index("```", start)
    return text[:start] + printed + text[end:]


def python_tour(text: str, heading: str = "## A tour of the Python API") -> str:
    """Each python block of a section followed by exactly what it prints."""
    start = text.index(heading)
    end = text.index("\n## ", start + 1)
    tour = text[start:end]
    namespace: dict = {}
    pieces, position = [], 0
    pattern = re.compile(r"```python\n(.*?)```\n(.*?)```\n(.*?)```", flags=re.S)
    with tempfile.TemporaryDirectory() as folder, contextlib.chdir(folder):
        for match in pattern.finditer(tour):
            if match.group(2).strip():  # prose between the blocks: not a code/output pair
                continue
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(match.group(1), str(README), "exec"), namespace)
            pieces.append(tour[position : match.start(3)] + printed.getvalue())
            position = match.end(3)
    return text[:start] + "".join(pieces) + tour[position:] + text[end:]


def main() -> None:
    """Rewrite README.md in place."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    text = README.read_text()
    text = python_tour(cli_transcript(text))
    text = python_tour(text, "## scikit-learn")
    README.write_text(text)
    print(f"rewrote {README}")


if __name__ == "__main__":
    main()
