"""Experiment tracking: TensorBoard event files, read back with tensorboard's own reader."""

import numpy as np
import pytest
from typer.testing import CliRunner

import torchclf
from torchclf.cli import app

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


def _events(folder):
    events = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    events.Reload()
    return events


def test_fit_writes_epochs_settings_metrics_and_pr_curves(tmp_path):
    data = torchclf.datasets.load("iris")
    X, y = data.X, data.labels
    classifier = torchclf.fit(
        X[::2], y[::2], epochs=30, ensemble=1, eval_set=(X[1::2], y[1::2]), tensorboard=tmp_path
    )
    events = _events(tmp_path)
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/accuracy", "val/loss", "test/accuracy", "lr"} <= scalars
    losses = events.Scalars("train/loss")
    assert [e.step for e in losses] == [int(r["epoch"]) for r in classifier.history]
    np.testing.assert_allclose(
        [e.value for e in losses], classifier.history.column("train_loss"), rtol=1e-6
    )
    accuracy = events.Scalars("test_metrics/accuracy")[0].value
    expected = classifier.evaluate(X[1::2], y[1::2]).to_dict()["scores"]["accuracy"]
    assert accuracy == pytest.approx(expected, rel=1e-6)
    tensors = set(events.Tags()["tensors"])
    assert {f"pr/{name}" for name in classifier.task.class_names} <= tensors
    assert "config/text_summary" in tensors


def test_train_tensorboard_from_the_command_line(tmp_path):
    result = CliRunner().invoke(
        app, ["train", "--epochs", "20", "--quiet", "--out", str(tmp_path / "runs"),
              "--tensorboard", str(tmp_path / "tb")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    events = _events(tmp_path / "tb")
    assert len(events.Scalars("test/loss")) == 20
    assert "pr/outer" in events.Tags()["tensors"]
