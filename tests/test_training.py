import itertools
import re

import numpy as np
import pytest
import torch

import torchclf
from torchclf import ConfigError, TrainingError, datasets


def _tutorial_split(name):
    data = datasets.load(name)
    return torchclf.train_test_split(data.X, data.y, test_size=0.2, stratify=False, seed=42)


def _stratified_split(name, **params):
    data = datasets.load(name, **params)
    return torchclf.train_test_split(data.X, data.y, test_size=0.2, seed=42)


@pytest.mark.parametrize(
    ("dataset", "hidden", "activation", "epochs", "published"),
    [
        pytest.param("circles", (10, 10), "identity", 1000, (0.51, 0.46, None, None), id="model_1"),
        pytest.param(
            "circles", (10, 10), "relu", 1000, (0.74, 0.79, 0.62362, 0.62145), id="model_3"
        ),
        pytest.param("blobs", (8, 8), "identity", 100, (0.99125, 0.995, None, None), id="model_4"),
    ],
)
def test_the_tutorials_published_lines_are_reproduced(
    dataset, hidden, activation, epochs, published
):
    split = _tutorial_split(dataset)
    clf = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=hidden,
        activation=activation,
        epochs=epochs,
        eval_set=(split.X_test, split.y_test),
        **datasets.TUTORIAL,
    )
    # The lesson prints every epochs // 10 epochs counting from 0; rows[k] is its epoch k.
    line = clf.history.rows[epochs - epochs // 10]
    train_acc, test_acc, train_loss, test_loss = published
    assert line["train_accuracy"] == pytest.approx(train_acc, abs=1e-9)
    assert line["test_accuracy"] == pytest.approx(test_acc, abs=1e-9)
    if train_loss is not None:
        assert round(line["train_loss"], 5) == train_loss
        assert round(line["test_loss"], 5) == test_loss


def test_linear_model_stays_near_chance_and_relu_mlp_learns_circles():
    split = _stratified_split("circles")
    linear = torchclf.fit(split.X_train, split.y_train, hidden=(), epochs=300)
    relu = torchclf.fit(split.X_train, split.y_train, hidden=(10, 10), epochs=1000)
    assert 0.45 <= linear.evaluate(split.X_test, split.y_test)["accuracy"] <= 0.55
    assert relu.evaluate(split.X_test, split.y_test)["accuracy"] >= 0.99


@pytest.mark.parametrize(
    ("name", "hidden", "target"),
    # the lesson's exercises: moons over 96%, spirals over 95%
    [("blobs", (10, 10), 0.99), ("moons", (10, 10), 0.99), ("spirals", (64, 64), 0.95)],
)
def test_toy_datasets_reach_their_targets(name, hidden, target):
    split = _stratified_split(name)
    clf = torchclf.fit(split.X_train, split.y_train, hidden=hidden, epochs=1000)
    assert clf.evaluate(split.X_test, split.y_test)["accuracy"] >= target


def test_multilabel_mlp_beats_independent_logistic_regressions():
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score, f1_score
    from sklearn.multioutput import MultiOutputClassifier

    split = _stratified_split("multilabel")
    clf = torchclf.fit(split.X_train, split.y_train, hidden=(64, 64), epochs=600)
    ours = clf.predict(split.X_test)
    baseline = MultiOutputClassifier(LogisticRegression()).fit(split.X_train, split.y_train)
    theirs = baseline.predict(split.X_test)
    ours_f1 = f1_score(split.y_test, ours, average=None)
    theirs_f1 = f1_score(split.y_test, theirs, average=None)
    assert np.all(ours_f1 >= theirs_f1 - 0.01)  # the linear label ("right") ties
    assert accuracy_score(split.y_test, ours) > accuracy_score(split.y_test, theirs) + 0.3


def test_history_records_train_validation_and_test_every_epoch():
    split = _stratified_split("moons", n_samples=200)
    clf = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=(8,),
        epochs=7,
        validation_fraction=0.25,
        eval_set=(split.X_test, split.y_test),
        calibrate=False,  # the history records training, before any temperature
    )
    assert len(clf.history) == 7
    assert set(clf.history.last) == {
        "epoch",
        "train_loss",
        "train_accuracy",
        "val_loss",
        "val_accuracy",
        "test_loss",
        "test_accuracy",
        "lr",
        "time",
    }
    assert clf.history.column("epoch") == [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0]
    # the recorded test metrics are those of the final weights
    evaluation = clf.evaluate(split.X_test, split.y_test)
    assert clf.history.last["test_accuracy"] == pytest.approx(evaluation["accuracy"])
    assert clf.history.last["test_loss"] == pytest.approx(evaluation["log_loss"], rel=1e-5)


def test_early_stopping_keeps_the_best_validation_epoch():
    split = _stratified_split("moons", n_samples=300, noise=0.35)
    clf = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=(128, 128),
        lr=0.03,
        epochs=2000,
        early_stopping=True,
        validation_fraction=0.3,
        patience=15,
        calibrate=False,  # the history records training, before any temperature
    )
    history = clf.history
    assert history.stopped_early and len(history) < 2000
    val_losses = history.column("val_loss")
    best = int(np.argmin(val_losses))
    assert history.best_epoch == best + 1
    assert len(history) == history.best_epoch + 15
    # The returned weights are the best epoch's: recompute its validation loss from scratch.
    features = split.X_train
    targets = clf.task.encode(split.y_train)
    from torchclf.data.splits import split_indices

    _, val_rows = split_indices(len(features), 0.3, stratify=targets.numpy(), seed=42)
    probs = clf.predict_proba(features[val_rows])
    y_val = split.y_train[val_rows]
    val_loss = -np.mean(np.log(probs[np.arange(len(y_val)), y_val]))
    assert val_loss == pytest.approx(val_losses[best], rel=1e-4)


@pytest.mark.parametrize("optimizer", ["sgd", "adam", "adamw", "rmsprop"])
def test_every_optimizer_learns_blobs(optimizer):
    split = _stratified_split("blobs", n_samples=300)
    lr = 0.1 if optimizer == "sgd" else 0.01
    clf = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=(16,),
        optimizer=optimizer,
        lr=lr,
        momentum=0.9 if optimizer == "sgd" else 0.0,
        weight_decay=1e-4,
        epochs=150,
    )
    assert clf.evaluate(split.X_test, split.y_test)["accuracy"] >= 0.95


def test_learning_rate_schedules():
    split = _stratified_split("moons", n_samples=100)
    cosine = torchclf.fit(
        split.X_train, split.y_train, hidden=(4,), lr=0.1, epochs=20, lr_schedule="cosine"
    )
    lrs = cosine.history.column("lr")
    assert lrs[0] == pytest.approx(0.1) and all(a > b for a, b in itertools.pairwise(lrs))
    step = torchclf.fit(
        split.X_train, split.y_train, hidden=(4,), lr=0.1, epochs=9, lr_schedule="step"
    )
    assert step.history.column("lr") == pytest.approx([0.1] * 3 + [0.01] * 3 + [0.001] * 3)


def test_mini_batches_and_gradient_clipping_train():
    split = _stratified_split("moons", n_samples=400)
    clf = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=(32, 32),
        batch_size=32,
        grad_clip=0.5,
        epochs=40,
        dropout=0.1,
        batch_norm=True,
    )
    assert clf.evaluate(split.X_test, split.y_test)["accuracy"] >= 0.95


@pytest.mark.parametrize("engine", ["autograd", "stacked"])
def test_diverging_loss_stops_with_a_clear_error(engine):
    X = np.random.default_rng(0).normal(size=(100, 3)) * 100
    y = (X[:, 0] > 0).astype(int)
    message = (
        "the training loss became nan at epoch 4 with lr=1e+06: training diverged. Lower the "
        "learning rate (for example lr=0.003) or clip the gradients (for example grad_clip=1)"
    )
    with pytest.raises(TrainingError, match=re.escape(message)):
        torchclf.fit(
            X, y, optimizer="sgd", lr=1e6, standardize=False, epochs=50, hidden=(8,), engine=engine
        )


def test_progress_is_printed_when_verbose_and_silent_otherwise(capsys):
    split = _stratified_split("moons", n_samples=100)
    torchclf.fit(
        split.X_train, split.y_train, hidden=(4,), epochs=20, eval_set=(split.X_test, split.y_test)
    )
    assert capsys.readouterr().out == ""
    torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=(4,),
        epochs=20,
        validation_fraction=0.0,
        verbose=True,
        log_every=5,
        eval_set=(split.X_test, split.y_test),
    )
    lines = capsys.readouterr().out.splitlines()
    assert [line.split("|")[0].strip() for line in lines] == [
        "Epoch:    1",
        "Epoch:    5",
        "Epoch:   10",
        "Epoch:   15",
        "Epoch:   20",
    ]
    assert re.fullmatch(
        r"Epoch:   20 \| Loss: \d\.\d{5}, Acc: \d+\.\d\d% \| Test loss: \d\.\d{5}, Acc: \d+\.\d\d%",
        lines[-1],
    )


def test_invalid_training_parameters_are_reported_together():
    X, y = np.zeros((10, 2)), np.arange(10) % 2
    message = (
        "The 'lr' parameter must be a float in the range (0.0, inf). Got -1 instead.; "
        "The 'epochs' parameter must be an int in the range [1, inf). Got 0 instead."
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        torchclf.fit(X, y, lr=-1, epochs=0)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "early_stopping=True needs a validation split: set validation_fraction (for example 0.1)."
        ),
    ):
        torchclf.fit(X, y, early_stopping=True)
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "The 'optimizer' parameter must be one of ['sgd', 'adam', 'adamw', 'rmsprop']. Got 'adm' instead. Did you mean 'adam'?"
        ),
    ):
        torchclf.fit(X, y, optimizer="adm")


def test_fit_defaults_are_the_config_defaults():
    import dataclasses
    import inspect

    defaults = {k: p.default for k, p in inspect.signature(torchclf.fit).parameters.items()}
    # resolved per dataset (resolve_schedule, auto_hidden); the configs hold resolved values
    per_dataset = {
        "hidden",
        "epochs",
        "early_stopping",
        "validation_fraction",
        "patience",
        "ensemble",
        "cross_fit",
        "blend_linear",
        "weight_decay",
    }
    assert {defaults[name] for name in per_dataset} == {"auto"}
    for config in (torchclf.ModelConfig, torchclf.TrainConfig):
        for f in dataclasses.fields(config):
            if f.name in defaults and f.name not in per_dataset:
                assert defaults[f.name] == f.default, f.name


def test_auto_hidden_width():
    from torchclf.nn.starting_point import auto_hidden

    assert auto_hidden(2, 1) == (10, 10)  # the tutorial's circles model
    assert auto_hidden(13, 3) == (32, 32)
    assert auto_hidden(64, 10) == (128, 128)
    data = datasets.load("wine")
    assert torchclf.fit(data.X, data.y, epochs=1).model_config.hidden == (32, 32)


def test_training_does_not_disturb_the_callers_random_state():
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    split = _stratified_split("moons", n_samples=100)
    torchclf.fit(split.X_train, split.y_train, hidden=(4,), epochs=3, dropout=0.5)
    assert torch.equal(torch.rand(3), expected)


def test_sample_weights_count_rows_in_float64():
    data = datasets.load("blobs", n_samples=60)
    weights = np.random.default_rng(0).integers(0, 4, size=60)
    # no validation rows: they would be drawn from 60 rows in one fit and from more in the other
    settings = dict(
        hidden=(8,), epochs=40, dtype="float64", seed=3, validation_fraction=0.0, ensemble=1
    )
    weighted = torchclf.fit(data.X, data.y, sample_weight=weights, **settings)
    repeated = torchclf.fit(
        np.repeat(data.X, weights, axis=0), np.repeat(data.y, weights), **settings
    )
    np.testing.assert_allclose(
        weighted.predict_proba(data.X), repeated.predict_proba(data.X), rtol=1e-9, atol=1e-12
    )
    assert next(weighted.model.parameters()).dtype == torch.float64


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        pytest.param([1.0] * 9, "sample_weight has 9 values but X has 10 rows", id="length"),
        pytest.param(
            [1.0] * 9 + [-1.0],
            "sample_weight must hold finite, non-negative numbers",
            id="negative",
        ),
        pytest.param(
            [0.0] * 10, "sample_weight is zero for every row: nothing to learn from", id="zero"
        ),
    ],
)
def test_bad_sample_weights(weights, message):
    with pytest.raises(torchclf.DataError, match=re.escape(message)):
        torchclf.fit(np.zeros((10, 2)), np.arange(10) % 2, sample_weight=weights, epochs=1)


def test_training_threads_are_chosen_and_then_restored():
    split = _stratified_split("moons", n_samples=100)
    before = torch.get_num_threads()
    seen = []
    record = lambda row: seen.append(torch.get_num_threads())  # noqa: E731
    torchclf.fit(split.X_train, split.y_train, hidden=(4,), epochs=3, on_epoch=record, threads=2)
    assert seen == [2, 2, 2] and torch.get_num_threads() == before
    seen.clear()
    torchclf.fit(split.X_train, split.y_train, hidden=(4,), epochs=2, on_epoch=record)
    assert seen == [1, 1]  # "auto": small data trains on one thread
    assert torch.get_num_threads() == before
    with pytest.raises(ConfigError, match=re.escape("The 'threads' parameter must be 'auto'")):
        torchclf.fit(split.X_train, split.y_train, epochs=1, threads=0)


def _model_file_bytes(classifier, path):
    classifier.save(path)
    return path.read_bytes()


def test_the_test_rows_never_influence_the_fitted_model(tmp_path):
    split = _stratified_split("moons", n_samples=300)
    rng = np.random.default_rng(0)
    other_X = rng.normal(size=split.X_test.shape).astype(np.float32) * 5
    other_y = 1 - split.y_test  # every test label flipped
    files = []
    for name, X_test, y_test in (("a", split.X_test, split.y_test), ("b", other_X, other_y)):
        clf = torchclf.fit(split.X_train, split.y_train, hidden=(8,), eval_set=(X_test, y_test))
        assert clf.train_config.early_stopping and clf.history.best_epoch is not None
        files.append(_model_file_bytes(clf, tmp_path / f"{name}.safetensors"))
    assert files[0] == files[1]


@pytest.mark.parametrize("engine", ["autograd", "stacked"])
def test_the_best_validation_epoch_is_the_one_restored(engine):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(200, 5))
    y = (X[:, 0] + rng.normal(0, 1, 200) > 0).astype(int)  # noisy: a wide net overfits it
    settings = dict(
        hidden=(32, 32), lr=0.03, seed=1, engine=engine, patience=30, dtype="float64", ensemble=1
    )
    best = torchclf.fit(X, y, epochs=300, **settings)
    history = best.history
    losses = history.column("val_loss")
    assert history.best_epoch == 1 + int(np.argmin(losses))
    assert history.best_epoch < len(history)  # it went on past the best epoch, then stopped
    # the same run stopped at the best epoch has the restored weights
    until_best = torchclf.fit(X, y, epochs=history.best_epoch, early_stopping=False,
                              validation_fraction=0.2, **settings)  # fmt: skip
    for restored, trained in zip(
        best.model.parameters(), until_best.model.parameters(), strict=True
    ):
        torch.testing.assert_close(restored, trained, rtol=0, atol=1e-12)
