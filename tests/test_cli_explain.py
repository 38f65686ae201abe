"""``torchclf explain``: importance and dependence of a run, into its folder and report."""

from __future__ import annotations

import numpy as np
import pandas as pd
from typer.testing import CliRunner

from torchclf.cli import app

runner = CliRunner()


def _table(path, n=300, seed=0):
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    frame["colour"] = rng.choice(["red", "green"], n)
    frame["label"] = np.where(frame["a"] + (frame["colour"] == "red") > 0.5, "yes", "no")
    frame.to_csv(path, index=False)


def _trained_run(tmp_path, seed, *options):
    """``torchclf train`` on a 300-row table into ``tmp_path / "run"``, with ``options``."""
    _table(tmp_path / "t.csv", seed=seed)
    trained = runner.invoke(
        app,
        ["train", "--data", str(tmp_path / "t.csv"), "--target", "label", "--out",
         str(tmp_path), "--name", "run", "-q", *options],
    )  # fmt: skip
    assert trained.exit_code == 0, trained.output
    return tmp_path / "run"


def test_explain_writes_its_files_and_one_report_section(tmp_path):
    run = _trained_run(tmp_path, 0, "--ensemble", "1", "--epochs", "20")
    for _ in range(2):  # a second explanation replaces the first
        result = runner.invoke(app, ["explain", str(run), "--repeats", "2", "--top", "2"])
        assert result.exit_code == 0, result.output
    # the rows training held out: a fifth of the 240 training rows
    assert "the 48 validation rows" in " ".join(result.output.split())
    importance = pd.read_csv(run / "importance.csv")
    assert set(importance["column"]) == {"a", "b", "colour"}
    assert importance["column"].iloc[0] == "a"
    assert list(importance.columns) == ["column", "importance", "std", "repeat_1", "repeat_2"]
    assert (run / "importance.png").stat().st_size > 0
    assert (run / "dependence.png").stat().st_size > 0
    page = (run / "report.html").read_text()
    assert page.count("<h2>What drives the predictions</h2>") == 1
    assert page.index("What drives the predictions") < page.index("<h2>Pictures</h2>")


def test_a_cross_fitted_run_is_explained_on_its_test_rows(tmp_path):
    run = _trained_run(tmp_path, 1, "--epochs", "5")
    result = runner.invoke(app, ["explain", str(run), "--repeats", "1"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())  # as one line, however the terminal wrapped it
    assert "test split (60 rows)" in said and "cross-fitted networks" in said


def test_a_run_that_held_out_no_rows_is_explained_on_its_test_rows(tmp_path):
    run = _trained_run(tmp_path, 3, "--ensemble", "1", "--epochs", "5", "--validation-size", "0")
    result = runner.invoke(app, ["explain", str(run), "--repeats", "1"])
    assert result.exit_code == 0, result.output
    said = " ".join(result.output.split())
    assert "test split (60 rows) (training held out no validation rows)" in said


def test_a_bad_metric_is_one_line(tmp_path):
    result = runner.invoke(app, ["explain", str(tmp_path), "--metric", "auc"])
    assert result.exit_code == 2
    assert "expected one of log_loss, accuracy, roc_auc, f1" in result.output


def test_predict_explain_adds_each_rows_strongest_columns(tmp_path):
    run = _trained_run(tmp_path, 2, "--epochs", "10")
    out = tmp_path / "predictions.csv"
    result = runner.invoke(app, ["predict", str(run), "--explain", "2", "--output", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns[-5:]) == [
        "explained", "column_1", "contribution_1", "column_2", "contribution_2"
    ]  # fmt: skip
    assert set(frame["explained"]) == {"yes"}  # binary: the positive class's logit
    assert set(frame["column_1"]) <= {"a", "b", "colour"}
    first, second = frame["contribution_1"].abs(), frame["contribution_2"].abs()
    assert (first >= second).all()
