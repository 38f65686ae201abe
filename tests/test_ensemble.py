"""Ensembles: members trained at once, probabilities averaged, judged and stopped as a whole."""

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import torchclf
from torchclf import datasets
from torchclf.cli import app
from torchclf.losses import mean_probability_logits
from torchclf.models import Ensemble


def _split(task):
    data = {
        "binary": lambda: datasets.load("moons", n_samples=200, noise=0.3),
        "multiclass": lambda: datasets.load("blobs", n_samples=200, n_classes=3),
        "multilabel": lambda: datasets.load("multilabel", n_samples=200),
    }[task]()
    return torchclf.train_test_split(data.X, data.labels, test_size=0.25, seed=0)


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_the_ensemble_predicts_the_mean_of_its_members_probabilities(task):
    split = _split(task)
    classifier = torchclf.fit(split.X_train, split.y_train, ensemble=3, epochs=40, lr=0.02)
    assert isinstance(classifier.model, Ensemble) and len(classifier.model.members) == 3
    features = torch.from_numpy(classifier.encoder.transform(split.X_test))
    with torch.no_grad():
        each = [
            classifier.task.probabilities(member(features)) for member in classifier.model.members
        ]
    expected = torch.stack(each).mean(dim=0).numpy()
    np.testing.assert_allclose(classifier.predict_proba(split.X_test), expected, atol=1e-6)
    # the members differ: each started from its own weights
    first, second = (
        torch.cat([p.reshape(-1) for p in member.parameters()])
        for member in classifier.model.members[:2]
    )
    assert not torch.equal(first, second)


@pytest.mark.parametrize("link", ["sigmoid", "softmax"])
def test_averaged_logits_stay_finite_and_exact_for_confident_members(link):
    # (K=2, n=1, outputs=3): members certain of opposite answers
    logits = torch.tensor([[[80.0, -80.0, 0.0]], [[-80.0, 80.0, 0.0]]], dtype=torch.float64)
    combined = mean_probability_logits(logits, link, class_dim=-1)
    assert torch.isfinite(combined).all()
    if link == "softmax":
        probs = torch.softmax(combined, dim=-1)
        expected = torch.softmax(logits, dim=-1).mean(dim=0)
    else:
        probs, expected = torch.sigmoid(combined), torch.sigmoid(logits).mean(dim=0)
    torch.testing.assert_close(probs, expected, rtol=1e-12, atol=1e-12)
    if link == "sigmoid":  # sure of 1 and sure of 0: one half, not a logit of +-80
        assert combined[0, 0].item() == pytest.approx(0.0, abs=1e-12)


def test_the_ensemble_stops_as_a_whole_at_its_best_validation_epoch():
    split = _split("binary")
    classifier = torchclf.fit(
        split.X_train, split.y_train, ensemble=4, lr=0.1, epochs=400, patience=15
    )
    history = classifier.history
    val_loss = history.column("val_loss")
    assert history.stopped_early and len(history) == history.best_epoch + 15
    assert history.best_epoch == int(np.argmin(val_loss)) + 1
    # the recorded validation loss is the ensemble's, not a member's
    single = torchclf.fit(split.X_train, split.y_train, ensemble=1, lr=0.1, epochs=400, patience=15)
    assert val_loss[:5] != single.history.column("val_loss")[:5]


def test_an_ensemble_of_one_is_the_single_network():
    split = _split("multiclass")
    one = torchclf.fit(split.X_train, split.y_train, ensemble=1, epochs=30)
    default = torchclf.fit(split.X_train, split.y_train, epochs=30)
    assert not isinstance(one.model, Ensemble)
    np.testing.assert_array_equal(
        one.predict_proba(split.X_test), default.predict_proba(split.X_test)
    )


def test_an_ensemble_saves_and_loads_bit_identically(tmp_path):
    split = _split("multiclass")
    classifier = torchclf.fit(split.X_train, split.y_train, ensemble=3, epochs=30)
    path = classifier.save(tmp_path / "model.safetensors")
    loaded = torchclf.load(path)
    assert isinstance(loaded.model, Ensemble) and loaded.model_config.ensemble == 3
    np.testing.assert_array_equal(
        loaded.predict_proba(split.X_test), classifier.predict_proba(split.X_test)
    )
    assert "ensemble=3" in repr(loaded) and loaded.architecture.startswith("3 x Sequential")


def test_the_autograd_loop_trains_an_ensemble_with_dropout():
    split = _split("binary")
    classifier = torchclf.fit(split.X_train, split.y_train, ensemble=2, dropout=0.1, epochs=30)
    assert classifier.history.best_epoch is not None
    proba = classifier.predict_proba(split.X_test)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)


def test_the_estimator_and_the_command_line_take_an_ensemble(tmp_path):
    split = _split("binary")
    estimator = torchclf.NeuralNetClassifier(ensemble=3, max_epochs=20, random_state=0)
    estimator.fit(split.X_train, split.y_train)
    assert estimator.classifier_.model_config.ensemble == 3
    with pytest.raises(torchclf.ConfigError, match="'ensemble' parameter"):
        torchclf.NeuralNetClassifier(ensemble=0).fit(split.X_train, split.y_train)

    args = ["train", "--ensemble", "2", "--epochs", "20", "--out", str(tmp_path), "--quiet"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    info = CliRunner().invoke(app, ["info", str(tmp_path / "circles")])
    assert "2 x Sequential" in info.output
