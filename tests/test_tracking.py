"""Experiment tracking: TensorBoard event files, read back with tensorboard's own reader."""

import json

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


def test_train_logs_the_finished_run_to_a_local_mlflow_folder(tmp_path):
    mlflow = pytest.importorskip("mlflow")
    result = CliRunner().invoke(
        app, ["train", "--epochs", "15", "--quiet", "--out", str(tmp_path / "runs"),
              "--mlflow", str(tmp_path / "mlruns")],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    client = mlflow.tracking.MlflowClient(f"sqlite:///{tmp_path / 'mlruns' / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("torchclf")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "circles" and run.info.status == "FINISHED"
    assert run.data.params["lr"] == "0.003" and run.data.params["data"] == '"circles"'
    losses = client.get_metric_history(run.info.run_id, "train_loss")
    assert [m.step for m in sorted(losses, key=lambda m: m.step)] == list(range(1, 16))
    metrics = json.loads((tmp_path / "runs" / "circles" / "metrics.json").read_text())
    assert run.data.metrics["test_accuracy"] == pytest.approx(metrics["scores"]["accuracy"])
    files = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/model.safetensors", "run/history.csv", "run/report.html"} <= files
