"""Temperature scaling: fitted on held-out rows, kept in the model file, applied everywhere."""

import math

import numpy as np
import pytest
import torch

import torchclf
from torchclf import datasets
from torchclf.data.labelled import to_labelled
from torchclf.training.calibration import fit_temperature, held_out_logits, set_temperature


def _split():
    data = datasets.load("blobs", n_samples=300, n_classes=3, cluster_std=2.5)
    return torchclf.train_test_split(data.X, data.labels, test_size=0.3, seed=0)


def _held_out_loss(classifier, rows, temperature):
    logits, _ = held_out_logits(classifier.model, rows)  # (1, n, out): one network
    loss_fn = classifier.task.loss_fn(rows.y, None, 0.0)
    return float(loss_fn(logits[0].double() / temperature, rows.y))


def test_temperature_scaling_lowers_the_held_out_loss_of_an_overconfident_model():
    split = _split()
    classifier = torchclf.fit(
        split.X_train, split.y_train, ensemble=1, calibrate=False, epochs=200, dtype="float64"
    )
    with torch.no_grad():  # five times the logits: the same decisions, far too sure of them
        last = classifier.model.layers[-1]
        last.weight.mul_(5.0)
        last.bias.mul_(5.0)
    rows = to_labelled(
        classifier.encoder.transform(split.X_test),
        classifier.task.encode(split.y_test),
        torch.device("cpu"),
        torch.float64,
    )
    temperature = fit_temperature(classifier.model, classifier.task, rows)
    assert 2.0 < temperature < 8.0  # it undoes most of the factor of five
    assert _held_out_loss(classifier, rows, temperature) < 0.8 * _held_out_loss(classifier, rows, 1)
    before = classifier.predict(split.X_test)
    set_temperature(classifier.model, temperature)
    np.testing.assert_array_equal(classifier.predict(split.X_test), before)  # same decisions


@pytest.mark.parametrize("ensemble", [1, 4])
def test_the_fitted_temperature_is_in_the_model_file_and_every_path(tmp_path, ensemble):
    split = _split()
    classifier = torchclf.fit(split.X_train, split.y_train, ensemble=ensemble, epochs=80)
    temperature = classifier.model_config.temperature
    assert temperature != 1.0 and 0.25 <= temperature <= 4.0
    features = torch.from_numpy(classifier.encoder.transform(split.X_test))
    with torch.no_grad():  # the module's forward and the batched prediction path agree
        expected = classifier.task.probabilities(classifier.model(features)).numpy()
    np.testing.assert_allclose(classifier.predict_proba(split.X_test), expected, atol=1e-6)
    loaded = torchclf.load(classifier.save(tmp_path / "model.safetensors"))
    assert loaded.model_config.temperature == temperature
    np.testing.assert_array_equal(
        loaded.predict_proba(split.X_test), classifier.predict_proba(split.X_test)
    )


def test_without_held_out_rows_or_when_asked_not_to_nothing_is_fitted():
    split = _split()
    kept = dict(ensemble=1, epochs=20)
    assert (
        torchclf.fit(split.X_train, split.y_train, calibrate=False, **kept).model_config.temperature
        == 1.0
    )
    alone = torchclf.fit(split.X_train, split.y_train, validation_fraction=0.0, **kept)
    assert alone.model_config.temperature == 1.0
    assert not math.isnan(alone.predict_proba(split.X_test).sum())


def test_the_train_command_calibrates_unless_told_not_to(tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    temperatures = []
    for flag in ("--calibrate", "--no-calibrate"):
        out = tmp_path / flag.strip("-")
        result = CliRunner().invoke(app, ["train", flag, "--epochs", "30", "--out", str(out), "-q"])
        assert result.exit_code == 0, result.output
        temperatures.append(torchclf.load(out / "circles").model_config.temperature)
    assert temperatures[0] != 1.0 and temperatures[1] == 1.0
