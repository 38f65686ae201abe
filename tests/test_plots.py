import re

import numpy as np
import pytest

import torchclf
from torchclf import ConfigError, DataError, datasets, plots, report
from torchclf.evaluation.predictions import prediction_frame, write_table
from torchclf.evaluation.report import write_run


@pytest.fixture(scope="module")
def blobs():
    data = datasets.load("blobs", n_samples=200)
    split = torchclf.train_test_split(data.X, data.labels, seed=0)
    clf = torchclf.fit(
        split.X_train,
        split.y_train,
        hidden=(8,),
        epochs=40,
        validation_fraction=0.2,
        early_stopping=True,
        patience=5,
    )
    return clf, split


@pytest.fixture(scope="module")
def multilabel():
    data = datasets.load("multilabel", n_samples=200)
    split = torchclf.train_test_split(data.X, data.y, seed=0)
    clf = torchclf.fit(
        split.X_train, split.y_train, hidden=(8,), epochs=20, label_names=data.class_names
    )
    return clf, split


def test_history_plot_marks_every_split_and_the_best_epoch(blobs):
    clf, _ = blobs
    figure = plots.plot_history(clf.history)
    loss_axes, accuracy_axes = figure.axes
    assert accuracy_axes.get_ylabel() == "accuracy (%)"
    labels = [line.get_label() for line in loss_axes.get_lines()]
    assert labels == ["train", "val", "best epoch"]
    assert len(loss_axes.get_lines()[0].get_xdata()) == len(clf.history)


def test_decision_boundary_has_one_panel_per_split_and_every_class(blobs):
    clf, split = blobs
    figure = plots.plot_decision_boundary(
        clf, [("Train", split.X_train, split.y_train), ("Test", split.X_test, split.y_test)]
    )
    assert [axes.get_title() for axes in figure.axes] == ["Train", "Test"]
    assert [t.get_text() for t in figure.legends[0].get_texts()] == list(clf.task.class_names)


def test_decision_boundary_refuses_multilabel(multilabel):
    clf, split = multilabel
    message = "no decision boundary can be drawn: it is drawn for one predicted class per point, and this classifier is multilabel"
    with pytest.raises(DataError, match=re.escape(message)):
        plots.plot_decision_boundary(clf, [("Test", split.X_test, split.y_test)])


def test_confusion_matrix_shows_the_counts(blobs):
    clf, split = blobs
    evaluation = clf.evaluate(split.X_test, split.y_test)
    figure = plots.plot_confusion_matrix(evaluation)
    numbers = sorted(int(t.get_text()) for t in figure.axes[0].texts)
    assert numbers == sorted(evaluation.confusion_matrix.ravel().tolist())


def test_multilabel_pictures(multilabel):
    clf, split = multilabel
    evaluation = clf.evaluate(split.X_test, split.y_test)
    assert len(plots.plot_confusion_matrix(evaluation).axes) == 4  # one 2 x 2 matrix per label
    roc_axes, _ = plots.plot_roc_pr(clf, split.X_test, split.y_test).axes
    assert len(roc_axes.get_lines()) == 4 + 1  # a curve per label and the chance diagonal


def test_prediction_frame_for_multilabel_joins_labels(multilabel):
    clf, split = multilabel
    frame = prediction_frame(clf, split.X_test[:20])
    assert list(frame.columns) == ["prediction"] + [f"proba_{n}" for n in clf.task.class_names]
    indicators = clf.predict(split.X_test[:20])
    expected = [
        "|".join(n for n, on in zip(clf.task.class_names, row, strict=True) if on)
        for row in indicators
    ]
    assert frame["prediction"].tolist() == expected


def test_multiclass_models_have_no_threshold(blobs, tmp_path):
    clf, split = blobs
    message = "a threshold applies to binary and multilabel models; this one is multiclass and predicts the most probable class"
    with pytest.raises(ConfigError, match=re.escape(message)):
        clf.predict(split.X_test, threshold=0.3)
    with pytest.raises(
        ConfigError, match=re.escape("expected a file name ending in .csv or .parquet")
    ):
        write_table(prediction_frame(clf, split.X_test), tmp_path / "x.json")


def test_failed_run_leaves_no_folder(blobs, tmp_path, monkeypatch):
    clf, split = blobs
    evaluation = clf.evaluate(split.X_test, split.y_test)

    def broken(*args, **kwargs):
        raise RuntimeError("disk exploded")

    monkeypatch.setattr(report, "write_history", broken)  # not a picture: those are left out
    with pytest.raises(RuntimeError, match="disk exploded"):
        write_run(
            tmp_path / "run", clf, split, evaluation, command="torchclf train", data_summary={}
        )
    assert list(tmp_path.iterdir()) == []


def test_activation_differences_are_float32_small():
    differences = plots.activation_differences(-50, 50)
    assert set(differences) == {"relu", "leaky_relu", "sigmoid", "tanh", "gelu", "softmax"}
    assert max(differences.values()) < 1e-5
    assert np.isfinite(list(differences.values())).all()


def test_pictures_name_the_loss_the_chance_levels_and_stay_in_view(blobs, tmp_path):
    clf, split = blobs
    # the loss axis names the task's loss; one that falls a hundredfold goes to a log scale
    loss_axes = plots.plot_history(clf.history, clf.task.loss_name).axes[0]
    assert loss_axes.get_ylabel().startswith("cross-entropy")
    rows = [
        {"epoch": epoch, "train_loss": loss, "train_accuracy": 0.5}
        for epoch, loss in enumerate([1.0, 0.1, 0.001], start=1)
    ]
    history = torchclf.History(rows=rows)
    steep = plots.plot_history(history, "binary cross-entropy").axes[0]
    assert steep.get_yscale() == "log" and steep.get_ylabel().endswith("(log scale)")
    # ROC and PR axes run past [0, 1]; each PR curve has its class's prevalence as chance
    roc_axes, pr_axes = plots.plot_roc_pr(clf, split.X_test, split.y_test).axes
    for axes in (roc_axes, pr_axes):
        assert axes.get_xlim()[0] < 0 < 1 < axes.get_xlim()[1]
        assert axes.get_ylim()[0] < 0 < 1 < axes.get_ylim()[1]
    codes = clf.task.encode(split.y_test).numpy()
    chance = sorted(
        line.get_ydata()[0] for line in pr_axes.get_lines() if len(set(line.get_ydata())) == 1
    )
    expected = sorted(float((codes == k).mean()) for k in range(len(clf.classes)))
    np.testing.assert_allclose(chance, expected)
    # every saved picture is headed by what it shows
    drawn = {}

    def draw():
        drawn["figure"] = plots.plot_confusion_matrix(clf.evaluate(split.X_test, split.y_test))
        return drawn["figure"]

    report.save_pictures(tmp_path, {"c.png": draw}, "blobs: test accuracy 0.9500")
    assert drawn["figure"].get_suptitle() == "blobs: test accuracy 0.9500"
