"""A logistic regression blended in: fitted as scikit-learn's, weighted on held-out rows."""

import re

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from typer.testing import CliRunner

import torchclf
from torchclf import datasets
from torchclf.cli import app
from torchclf.data.labelled import Labelled
from torchclf.data.splits import fold_indices
from torchclf.nn.losses import mean_probability_logits
from torchclf.nn.models import Ensemble, ModelConfig, build_model, linear_config
from torchclf.tasks import infer_task
from torchclf.training.blend import fit_logistic
from torchclf.training.calibration import held_out_logits


def _logistic_table(n=600, seed=0):
    """Rows whose log-odds are linear in the features: a logistic regression is the right model."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    p = 1 / (1 + np.exp(-(X @ np.array([2.0, -1.0, 0.5, 0.0]) - 0.5)))
    return X, (rng.random(n) < p).astype(int)


@pytest.mark.parametrize("classes", [2, 3])
def test_the_linear_members_are_scikit_learns_logistic_regression(classes):
    data = datasets.load("blobs", n_samples=300, n_classes=classes, seed=3)
    X = ((data.X - data.X.mean(0)) / data.X.std(0)).astype(np.float64)  # scikit-learn keeps float32
    task = infer_task(data.y)
    targets = task.encode(data.y)
    config = linear_config(ModelConfig(in_features=2, out_features=task.n_outputs))
    linear = build_model(config, seed=0).double()
    fit_logistic(linear, task.loss_fn(targets, None, 0.0), Labelled(torch.tensor(X), targets))
    reference = LogisticRegression(C=1.0, tol=1e-10, max_iter=10_000).fit(X, data.y)
    with torch.no_grad():
        ours = task.probabilities(linear(torch.tensor(X))).numpy()
    np.testing.assert_allclose(ours, reference.predict_proba(X), atol=1e-5)


def test_each_linear_member_fits_the_rows_of_its_own_folds():
    X, y = _logistic_table(200)
    task = infer_task(y)
    targets = task.encode(y)
    fold_of_row = torch.from_numpy(fold_indices(targets.numpy(), 3, seed=0))
    folds = fold_of_row[None, :] != torch.arange(3)[:, None]  # (3, n): True where k trains
    config = linear_config(ModelConfig(in_features=4, out_features=1))
    linear = build_model(ModelConfig(**{**config.__dict__, "ensemble": 3}), seed=0, link="sigmoid")
    rows = Labelled(torch.tensor(X), targets)
    fit_logistic(linear, task.loss_fn(targets, None, 0.0), rows, folds)
    for k, member in enumerate(linear.members):
        trains = folds[k].numpy()
        reference = LogisticRegression(tol=1e-10, max_iter=10_000).fit(X[trains], y[trains])
        np.testing.assert_allclose(
            member.layers[0].weight.detach().numpy()[0], reference.coef_[0], atol=1e-5
        )


def test_a_linear_table_gets_a_large_linear_share_and_a_curved_one_none():
    X, y = _logistic_table()
    linear_table = torchclf.fit(X, y, ensemble=4, epochs=300)
    assert linear_table.model_config.linear_weight > 0.5
    circles = datasets.load("circles", n_samples=400, seed=0)
    curved = torchclf.fit(circles.X, circles.y, ensemble=4, epochs=300, lr=0.02)
    assert curved.model_config.linear_weight < 0.1


def test_a_blend_predicts_the_weighted_mean_and_survives_a_round_trip(tmp_path):
    X, y = _logistic_table(300)
    classifier = torchclf.fit(X, y, ensemble=3, epochs=200, calibrate=True)
    model, config = classifier.model, classifier.model_config
    assert isinstance(model, Ensemble) and len(model.members) == 6 and config.linear_weight > 0
    features = torch.from_numpy(classifier.encoder.transform(X))
    weight = config.linear_weight
    with torch.no_grad():
        each = torch.stack([torch.sigmoid(member(features))[:, 0] for member in model.members])
    shares = torch.tensor([(1 - weight) / 3] * 3 + [weight / 3] * 3, dtype=each.dtype)
    expected = (shares[:, None] * each).sum(0).numpy()
    np.testing.assert_allclose(classifier.predict_proba(X)[:, 1], expected, atol=1e-6)
    classifier.save(tmp_path / "model.safetensors")
    loaded = torchclf.load(tmp_path / "model.safetensors")
    np.testing.assert_array_equal(loaded.predict_proba(X), classifier.predict_proba(X))
    assert "weight" in loaded.architecture and loaded.model_config.linear_weight == weight


def test_out_of_fold_logits_of_a_blend_pair_each_network_with_its_linear_member():
    X, y = _logistic_table(200)
    classifier = torchclf.fit(X, y, ensemble=3, epochs=100, calibrate=False)
    model = classifier.model
    targets = classifier.task.encode(y)
    folds = torch.from_numpy(fold_indices(targets.numpy(), 3, seed=42))
    folds = folds[None, :] != torch.arange(3)[:, None]
    rows = Labelled(torch.from_numpy(classifier.encoder.transform(X)), targets)
    logits, per_member = held_out_logits(model, rows, folds)
    assert not per_member
    weight = model.config.linear_weight
    shares = torch.tensor([1 - weight, weight], dtype=torch.float64)
    with torch.no_grad():
        for k in range(3):
            held = ~folds[k]
            pair = torch.stack([model.members[k](rows.X[held]), model.members[3 + k](rows.X[held])])
            expected = mean_probability_logits(pair, "sigmoid", -1, shares)
            torch.testing.assert_close(logits[held], expected)


def test_blend_linear_needs_held_out_rows_and_false_keeps_the_networks_alone():
    X, y = _logistic_table(100)
    with pytest.raises(torchclf.ConfigError, match="blend_linear=True weighs"):
        torchclf.fit(X, y, ensemble=1, early_stopping=False, epochs=5, blend_linear=True)
    alone = torchclf.fit(X, y, ensemble=3, epochs=50, blend_linear=False)
    assert len(alone.model.members) == 3 and alone.model_config.linear_weight == 0
    held_out = torchclf.fit(X, y, ensemble=1, validation_fraction=0.3, epochs=50, blend_linear=True)
    assert held_out.train_config.blend_linear and held_out.model_config.ensemble == 1


def test_the_command_line_blends_and_info_says_so(tmp_path):
    X, y = _logistic_table(300)
    table = tmp_path / "rows.csv"
    lines = ["a,b,c,d,y"] + [
        ",".join(f"{v:.4f}" for v in row) + f",{t}" for row, t in zip(X, y, strict=True)
    ]
    table.write_text("\n".join(lines) + "\n")
    runner = CliRunner()
    said, reports = {}, {}
    for blend in ("--blend-linear", "--no-blend-linear"):
        out = tmp_path / blend
        train = ["train", "--data", str(table), "--target", "y", "--ensemble", "3", blend]
        result = runner.invoke(app, [*train, "--out", str(out), "--quiet"])
        assert result.exit_code == 0, result.output
        model_file = str(next(out.rglob("model.safetensors")))
        said[blend] = runner.invoke(app, ["info", model_file], env={"COLUMNS": "200"})
        reports[blend] = next(out.rglob("report.html")).read_text()
    assert "logistic regression blended in at weight" in said["--blend-linear"].output
    assert "blended" not in said["--no-blend-linear"].output
    share = re.compile(r"<td>logistic regression share</td><td>([0-9.]+)</td>")
    assert float(share.search(reports["--blend-linear"]).group(1)) > 0
    assert float(share.search(reports["--no-blend-linear"]).group(1)) == 0


def test_the_blends_logistic_regressions_use_the_plain_columns_not_their_bins():
    import pandas as pd

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"a": rng.normal(size=800), "b": rng.normal(size=800)})
    y = (X["a"] + 0.5 * X["b"] + rng.logistic(size=800) * 0.5 > 0).astype(int)  # linear log-odds
    classifier = torchclf.fit(X, y, blend_linear=True, seed=0)
    embedded = classifier.encoder.embedded_columns()
    assert embedded.sum() == 16 and classifier.model_config.linear_weight > 0
    networks = classifier.model_config.ensemble
    for member in classifier.model.members[networks:]:  # the logistic regressions
        weight = member.layers[-1].weight  # (1, in_features)
        assert torch.all(weight[:, torch.from_numpy(embedded)] == 0)
        assert torch.all(weight[:, ~torch.from_numpy(embedded)] != 0)
