"""ONNX export: the graph predicts as torchclf does, from the raw columns, for every task."""

import io
import json

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import torchclf
from torchclf.cli import app

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
runner = CliRunner()
# fit's validation rows meet shops the training rows lack: said, and not the point here
pytestmark = pytest.mark.filterwarnings("ignore::torchclf.TorchclfWarning")


def _table(rows, seed):
    """Numbers with missing values, a few categories, and many (learned vectors)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(
        {
            "age": rng.normal(50, 10, rows),
            "dose": np.where(rng.random(rows) < 0.15, np.nan, rng.gamma(2, 2, rows)),
            "city": rng.choice(["north", "south", "east"], rows),
            "shop": [f"s{i}" for i in rng.integers(0, 80, rows)],
            "visits": rng.integers(0, 30, rows).astype(float),
        }
    )
    score = (frame.age - 50) / 10 + (frame.city == "north") - frame.dose.fillna(4) / 4
    return frame, score + rng.normal(0, 0.5, rows)


def _targets(task, score, frame):
    if task == "binary":
        return np.where(score > 0, "sick", "well")
    if task == "multiclass":
        return np.digitize(score, [-1, 0, 1]).astype(str)
    return np.stack([score > 0, frame.visits > 15, frame.city == "south"], axis=1).astype(int)


def _unseen(frame, seed):
    """Rows with categories never seen in training, and missing values everywhere."""
    rng = np.random.default_rng(seed)
    frame = frame.copy()
    frame.loc[rng.random(len(frame)) < 0.05, "city"] = "atlantis"
    frame.loc[rng.random(len(frame)) < 0.05, "shop"] = "s999"
    frame.loc[rng.random(len(frame)) < 0.05, "city"] = None
    frame.loc[rng.random(len(frame)) < 0.05, "age"] = np.nan
    return frame


CASES = {
    "binary, calibrated ensemble": ("binary", dict(epochs=40)),
    "multiclass, learned vectors": (
        "multiclass",
        dict(epochs=40, ensemble=3, categorical_embedding="learned", scaling="robust"),
    ),
    "multilabel, one network": ("multilabel", dict(epochs=40, ensemble=1)),
}


@pytest.mark.parametrize("task, settings", CASES.values(), ids=CASES.keys())
def test_the_graph_predicts_10000_raw_rows_as_torchclf(tmp_path, task, settings):
    frame, score = _table(800, seed=0)
    classifier = torchclf.fit(frame, _targets(task, score, frame), seed=0, **settings)
    path = classifier.to_onnx(tmp_path / "model.onnx")
    new, _ = _table(10_000, seed=1)
    new = _unseen(new, seed=2)
    onnx_model = torchclf.OnnxModel(path, classifier.encoder)
    with pytest.warns(torchclf.TorchclfWarning, match="outside its training categories"):
        expected = classifier.predict_proba(new)
    probabilities = onnx_model.predict_proba(new)
    assert probabilities.shape == expected.shape == (10_000, len(classifier.task.class_names))
    assert np.abs(probabilities - expected).max() <= 1e-5
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    from torchclf.serving.export import onnx_inputs

    _, labels = session.run(None, onnx_inputs(classifier.encoder, new))
    with pytest.warns(torchclf.TorchclfWarning):
        predicted = classifier.predict(new)
    if task == "multilabel":
        assert labels.shape == (10_000, 3) and np.array_equal(labels, predicted)
    else:
        assert np.array_equal(labels, np.asarray(predicted).astype(str))
    metadata = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    assert json.loads(metadata["classes"]) == [str(c) for c in classifier.task.class_names]
    assert {f["name"] for f in json.loads(metadata["features"])} == set(frame.columns)


def test_an_array_model_with_bins_and_clipping_takes_one_features_input(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 6)).astype(np.float32)
    y = (X[:, 0] * X[:, 1] + np.sin(X[:, 2]) > 0).astype(int)
    classifier = torchclf.fit(
        X, y, epochs=30, numeric_embedding="piecewise_linear", scaling="robust", seed=0
    )
    path = classifier.to_onnx(tmp_path / "array.onnx")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["features"]
    new = rng.normal(size=(10_000, 6)).astype(np.float32) * 3  # far out too
    probabilities, labels = session.run(None, {"features": new})
    assert np.abs(probabilities - classifier.predict_proba(new)).max() <= 1e-5
    assert np.array_equal(labels, classifier.predict(new).astype(str))


def test_a_graph_that_would_predict_otherwise_is_refused_and_not_written(tmp_path, monkeypatch):
    from torchclf.serving import export

    frame, score = _table(300, seed=0)
    classifier = torchclf.fit(frame, _targets("binary", score, frame), epochs=5, ensemble=1)
    forward = export.RawToDecision.forward

    def off(self, *inputs):
        probabilities, decisions = forward(self, *inputs)
        return probabilities * 0.999 + 0.0005, decisions  # a small error the check must see

    monkeypatch.setattr(export.RawToDecision, "forward", off)
    with pytest.raises(torchclf.ExportError, match="does not predict as torchclf does"):
        classifier.to_onnx(tmp_path / "wrong.onnx")
    assert list(tmp_path.iterdir()) == []


def test_export_and_predict_with_the_onnx_engine_from_the_command_line(tmp_path):
    frame, score = _table(600, seed=0)
    frame.assign(outcome=_targets("binary", score, frame)).to_csv(tmp_path / "p.csv", index=False)
    args = ["--data", tmp_path / "p.csv", "--target", "outcome", "--epochs", "30", "--quiet"]
    trained = runner.invoke(app, ["train", *map(str, args), "--out", str(tmp_path)])
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "p"
    missing = runner.invoke(app, ["predict", str(run), "--engine", "onnx"])
    assert missing.exit_code == 2 and "torchclf export" in missing.stderr
    exported = runner.invoke(app, ["export", str(run)])
    assert exported.exit_code == 0, exported.output
    assert f"ONNX model: {run / 'model.onnx'}" in exported.stdout
    assert "inputs: age, dose, city, shop, visits" in exported.stdout
    torch_rows = pd.read_csv(
        __import__("io").StringIO(runner.invoke(app, ["predict", str(run)]).stdout)
    )
    onnx_out = runner.invoke(app, ["predict", str(run), "--engine", "onnx"])
    assert onnx_out.exit_code == 0, onnx_out.output
    onnx_rows = pd.read_csv(io.StringIO(onnx_out.stdout))
    assert onnx_rows["prediction"].tolist() == torch_rows["prediction"].tolist()
    probabilities = [c for c in torch_rows if c.startswith("proba_")]
    assert np.abs(onnx_rows[probabilities] - torch_rows[probabilities]).to_numpy().max() <= 1e-5
    wrong = runner.invoke(app, ["export", str(run), "--format", "tflite"])
    assert wrong.exit_code == 2 and "expected onnx" in wrong.stderr


def test_a_model_onnx_runtime_cannot_run_is_refused_with_the_reason(tmp_path):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    # ONNX Runtime has no float64 LeakyRelu: the export says so rather than write the file
    classifier = torchclf.fit(X, y, epochs=5, activation="leaky_relu", dtype="float64")
    with pytest.raises(torchclf.ExportError, match=r"ONNX Runtime cannot run .*LeakyRelu"):
        classifier.to_onnx(tmp_path / "leaky.onnx")
    assert list(tmp_path.iterdir()) == []
