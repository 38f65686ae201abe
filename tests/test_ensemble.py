"""Ensembles: members trained at once, probabilities averaged, judged and stopped as a whole."""

import dataclasses
import re

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

import torchclf
from torchclf import datasets
from torchclf.cli import app
from torchclf.nn.losses import mean_probability_logits
from torchclf.nn.models import MLP, Ensemble, build_model


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
    classifier = torchclf.fit(
        split.X_train, split.y_train, ensemble=3, epochs=40, lr=0.02, blend_linear=False
    )
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


def test_an_ensemble_of_one_is_the_single_network_and_member_0_starts_as_it():
    config = torchclf.ModelConfig(in_features=3, out_features=2, hidden=(5,))
    single = build_model(config, seed=7)
    ensemble = build_model(dataclasses.replace(config, ensemble=3), seed=7, link="softmax")
    assert isinstance(single, MLP) and isinstance(ensemble, Ensemble)
    first, second = ensemble.members[0].state_dict(), ensemble.members[1].state_dict()
    for name, value in single.state_dict().items():
        assert torch.equal(first[name], value)
    assert not torch.equal(first["layers.0.weight"], second["layers.0.weight"])


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
    text = " ".join(info.output.replace("│", " ").split())
    assert "2 networks averaged, validated each on its own fold" in text
    assert "each network's best epoch kept" in text

    held_out = torchclf.fit(split.X_train, split.y_train, ensemble=3, cross_fit=False, epochs=40)
    saved = held_out.save(tmp_path / "held_out.safetensors")
    text = " ".join(CliRunner().invoke(app, ["info", str(saved)]).output.replace("│", " ").split())
    assert "3 networks averaged, validated on one holdout" in text


def _reference_member(X, y, trains, config, seed, lr, epochs, patience):
    """One member as plain torch trains it: Adam on its rows, the best epoch on the others."""
    model = build_model(config, seed).double()
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=0.003)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_state, waited = float("inf"), None, 0
    for _ in range(epochs):
        optimizer.zero_grad()
        loss_fn(model(X[trains]), y[trains]).backward()
        optimizer.step()
        with torch.no_grad():
            validation_loss = loss_fn(model(X[~trains]), y[~trains]).item()
        if validation_loss < best:
            best, waited = validation_loss, 0
            best_state = {k: v.clone() for k, v in model.state_dict().items()}
        else:
            waited += 1
            if waited >= patience:
                break
    model.load_state_dict(best_state)
    return model


def test_each_cross_fitted_member_is_a_network_trained_on_all_folds_but_its_own():
    from torchclf.data.splits import fold_indices

    data = datasets.load("moons", n_samples=160, noise=0.3)
    settings = dict(hidden=(8,), lr=0.02, epochs=150, patience=15, seed=5)
    classifier = torchclf.fit(
        data.X,
        data.y,
        ensemble=4,
        cross_fit=True,
        standardize=False,
        prior_bias=False,
        calibrate=False,  # the members as trained, before a temperature
        dtype="float64",
        **settings,
    )
    assert classifier.train_config.cross_fit and classifier.train_config.validation_fraction == 0.25
    targets = classifier.task.encode(data.y)
    fold_of_row = torch.from_numpy(fold_indices(targets.numpy(), 4, seed=5))
    assert sorted(torch.bincount(fold_of_row).tolist()) == [40, 40, 40, 40]
    X = torch.from_numpy(np.asarray(data.X, dtype=np.float64))
    config = dataclasses.replace(classifier.model_config, ensemble=1)
    best_epochs = classifier.history.member_best_epochs
    assert len(set(best_epochs)) > 1  # each member chose its own epoch
    for k, member in enumerate(classifier.model.members):
        reference = _reference_member(
            X, targets.double(), fold_of_row != k, config, 5 + k, 0.02, 150, 15
        )
        for ours, theirs in zip(member.parameters(), reference.parameters(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)
    assert classifier.history.best_epoch == max(best_epochs)


def test_a_threshold_rule_is_chosen_on_out_of_fold_probabilities():
    from torchclf.evaluation.metrics import choose_threshold

    split = _split("binary")
    classifier = torchclf.fit(
        split.X_train,
        split.y_train,
        ensemble=3,
        cross_fit=True,
        blend_linear=False,
        threshold="f1",
        epochs=60,
    )
    from torchclf.data.splits import fold_indices

    targets = classifier.task.encode(split.y_train)
    fold_of_row = fold_indices(targets.numpy(), 3, seed=42)
    features = torch.from_numpy(classifier.encoder.transform(split.X_train))
    positive = np.empty(len(features))
    with torch.no_grad():
        for k, member in enumerate(classifier.model.members):
            rows = fold_of_row == k  # the rows member k never trained on
            positive[rows] = torch.sigmoid(member(features[rows]))[:, 0].numpy()
    expected = choose_threshold(positive, targets[:, 0].numpy(), "f1")
    assert classifier.task.threshold == pytest.approx(expected)


def test_mini_batch_cross_fitting_trains_and_records_each_members_epoch():
    data = datasets.load("moons", n_samples=300, noise=0.3)
    classifier = torchclf.fit(data.X, data.y, ensemble=3, batch_size=32, epochs=30, patience=4)
    assert classifier.train_config.cross_fit
    assert len(classifier.history.member_best_epochs) == 3
    assert (
        classifier.training_summary["member_best_epochs"] == classifier.history.member_best_epochs
    )
    assert {"train_loss", "val_loss"} <= set(classifier.history.rows[0])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ensemble": 1, "cross_fit": True}, "needs ensemble >= 2; got ensemble=1"),
        (
            {"ensemble": 4, "cross_fit": True, "validation_fraction": 0.2},
            "validation_fraction=0.2 asks for a holdout too",
        ),
        ({"ensemble": 4, "cross_fit": True, "dropout": 0.2}, "cannot train this run: dropout"),
        ({"ensemble": 4, "cross_fit": True, "engine": "autograd"}, "engine='autograd'"),
    ],
)
def test_a_cross_fit_that_cannot_be_made_says_why(options, message):
    split = _split("binary")
    with pytest.raises(torchclf.ConfigError, match=re.escape(message)):
        torchclf.fit(split.X_train, split.y_train, epochs=5, **options)


def test_auto_picks_eight_cross_fitted_networks_where_the_engine_trains():
    split = _split("multiclass")
    default = torchclf.fit(split.X_train, split.y_train, epochs=20)
    assert default.model_config.ensemble == 8 and default.train_config.cross_fit
    with_dropout = torchclf.fit(split.X_train, split.y_train, epochs=5, dropout=0.1)
    assert with_dropout.model_config.ensemble == 1  # the autograd loop: one network
    no_stopping = torchclf.fit(split.X_train, split.y_train, epochs=5, early_stopping=False)
    assert no_stopping.model_config.ensemble == 8 and not no_stopping.train_config.cross_fit


def test_members_trained_at_once_equal_networks_trained_alone():
    split = _split("multiclass")
    settings = dict(epochs=30, early_stopping=False, calibrate=False, dtype="float64", lr=0.02)
    together = torchclf.fit(split.X_train, split.y_train, ensemble=3, seed=4, **settings)
    for k, member in enumerate(together.model.members):
        alone = torchclf.fit(split.X_train, split.y_train, ensemble=1, seed=4 + k, **settings)
        for ours, theirs in zip(member.parameters(), alone.model.parameters(), strict=True):
            torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-10)


def test_scoring_each_member_on_its_own_fold_alone_equals_scoring_every_row():
    from torchclf.engine.rows import Folds
    from torchclf.engine.stacked import StackedMLP
    from torchclf.nn.losses import SoftmaxTargets

    generator = torch.Generator().manual_seed(0)
    fold_of_row = torch.randint(0, 4, (103,), generator=generator)  # folds of uneven sizes
    folds = Folds(fold_of_row[None, :] != torch.arange(4)[:, None], torch.float64)
    sizes = (5, 7, 3)
    flat = torch.randn(4, 5 * 7 + 7 + 7 * 3 + 3, generator=generator, dtype=torch.float64)
    net = StackedMLP(sizes, "tanh", flat)
    X = torch.randn(5, 103, generator=generator, dtype=torch.float64)  # (in, rows)
    targets = SoftmaxTargets(torch.randint(0, 3, (103,), generator=generator), 3, torch.float64)
    expected = folds.validation(*targets.row_scores(net.forward(X).logits))

    rows, weights = folds.held_out()  # (M, m) each
    assert rows.shape == (4, int(torch.bincount(fold_of_row).max()))
    logits = net.member_logits(X[:, rows].permute(1, 0, 2))  # (M, 3, m)
    row_losses, row_correct = targets.subset(rows.reshape(-1)).row_scores(
        logits.transpose(0, 1).reshape(1, 3, -1)
    )
    ours = [(row.view_as(weights) * weights).sum(dim=1) for row in (row_losses, row_correct)]
    for mine, theirs in zip(ours, expected, strict=True):
        torch.testing.assert_close(mine, theirs, rtol=1e-12, atol=0)


@pytest.mark.parametrize(
    ("batch_size", "epochs", "patience"), [(32, 60, 3), (None, 400, 10)], ids=["mini", "full"]
)
def test_cross_fitted_members_leave_the_stack_as_they_stop_and_nothing_else_changes(
    monkeypatch, batch_size, epochs, patience
):
    from torchclf.engine import loops

    data = datasets.load("moons", n_samples=400, noise=0.35)
    settings = dict(
        ensemble=4, cross_fit=True, epochs=epochs, patience=patience, dtype="float64", seed=1
    )
    settings |= dict(batch_size=batch_size, hidden=(16,), lr=0.05)
    stacked_sizes = []
    real_keep = loops._Stack.keep

    def recording_keep(self, *args):
        real_keep(self, *args)
        stacked_sizes.append(len(self.active))

    monkeypatch.setattr(loops._Stack, "keep", recording_keep)
    shrinking = torchclf.fit(data.X, data.y, **settings)
    assert len(set(shrinking.history.member_best_epochs)) > 1  # members stop at their own epochs
    assert stacked_sizes[0] == 4 and stacked_sizes[-1] < 4  # and leave the stack

    monkeypatch.setattr(loops._Stack, "keep", lambda self, *args: None)
    whole = torchclf.fit(data.X, data.y, **settings)  # stopped members step on, unused
    assert shrinking.history.member_best_epochs == whole.history.member_best_epochs
    for ours, theirs in zip(shrinking.history.rows, whole.history.rows, strict=True):
        assert ours.keys() == theirs.keys()
        for name in ("train_loss", "val_loss", "val_accuracy"):
            assert ours[name] == pytest.approx(theirs[name], rel=1e-9)
    np.testing.assert_allclose(
        shrinking.predict_proba(data.X), whole.predict_proba(data.X), rtol=0, atol=1e-9
    )
