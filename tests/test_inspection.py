"""Permutation importance per original column (``torchclf.evaluation.inspection``).

Oracles: scikit-learn's ``permutation_importance`` on the estimator (same scorer, repeats and
seed), and a brute-force shuffle of each raw column through ``predict_proba``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.inspection import permutation_importance as sklearn_importance
from sklearn.metrics import f1_score, make_scorer

import torchclf
from torchclf import ConfigError, DataError, NeuralNetClassifier

SCORERS = {  # torchclf's metric -> scikit-learn's scorer, per task
    "binary": {"log_loss": "neg_log_loss", "accuracy": "accuracy", "roc_auc": "roc_auc",
               "f1": make_scorer(f1_score, pos_label="yes")},  # the positive class, as fit's
    "multiclass": {"log_loss": "neg_log_loss", "accuracy": "accuracy",
                   "roc_auc": "roc_auc_ovr", "f1": "f1_macro"},
}  # fmt: skip


def table(n: int, task: str, seed: int = 0) -> tuple[pd.DataFrame, Any]:
    """Ten columns: ``signal`` (numeric, with gaps) and ``kind`` (categorical) carry the target,
    the other eight (six numeric, two categorical) are noise."""
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({f"noise{i}": rng.normal(size=n) for i in range(6)})
    X["signal"] = rng.normal(size=n)
    X["kind"] = rng.choice(["a", "b", "c", "d"], n)
    X["noise_cat0"] = rng.choice(["u", "v", "w"], n)
    X["noise_cat1"] = rng.choice(["p", "q"], n)
    kind_effect = X["kind"].map({"a": 2.0, "b": -2.0, "c": 0.5, "d": -0.5}).to_numpy()
    score = 2.5 * X["signal"].to_numpy() + kind_effect
    X.loc[rng.random(n) < 0.05, "signal"] = np.nan
    noisy = score + rng.logistic(size=n) * 0.5
    if task == "binary":
        y: Any = np.where(noisy > 0, "yes", "no")
    elif task == "multiclass":
        y = np.digitize(noisy, [-1.5, 1.5])
    else:  # two labels, each driven by one of the two columns
        y = np.stack([score - kind_effect > 0, kind_effect > 0], axis=1).astype(int)
    return X, y


@pytest.mark.parametrize("task", ["binary", "multiclass"])
@pytest.mark.parametrize("metric", ["log_loss", "accuracy", "roc_auc", "f1"])
def test_equals_scikit_learn_permutation_importance_on_the_estimator(task, metric):
    X, y = table(600, task)
    estimator = NeuralNetClassifier(max_epochs=15, random_state=0).fit(X, y)
    ours = torchclf.permutation_importance(
        estimator.classifier_, X, y, metric=metric, n_repeats=3, random_state=7
    )
    theirs = sklearn_importance(
        estimator, X, y, scoring=SCORERS[task][metric], n_repeats=3, random_state=7
    )
    assert ours.columns == list(X.columns)
    np.testing.assert_allclose(ours.importances, theirs.importances, rtol=0, atol=1e-9)
    assert ours.importances.std() > 0  # the shuffles did something


def brute_force(classifier, X, y, n_repeats: int, seed: int) -> np.ndarray:
    """Each raw column shuffled (scikit-learn's orders) and the whole model run again."""
    from sklearn.utils import check_random_state

    seed = check_random_state(seed).randint(np.iinfo(np.int32).max + 1)
    frame = X if isinstance(X, pd.DataFrame) else pd.DataFrame(X)
    task = classifier.task
    targets = task.encode(y)

    def score(rows: Any) -> float:
        probabilities = classifier.predict_proba(rows)
        import torch

        return task.score("log_loss", torch.from_numpy(probabilities), targets)

    baseline = score(X)
    result = np.empty((frame.shape[1], n_repeats))
    for column in range(frame.shape[1]):
        generator, order = np.random.RandomState(seed), np.arange(len(frame))
        shuffled = frame.copy()
        for repeat in range(n_repeats):
            generator.shuffle(order)
            values = shuffled.iloc[order, column].to_numpy()
            shuffled[shuffled.columns[column]] = values
            rows = shuffled if isinstance(X, pd.DataFrame) else shuffled.to_numpy()
            result[column, repeat] = baseline - score(rows)
    return result


@pytest.mark.parametrize(
    "keywords",
    [
        # an array with piecewise-linear bins: each column is its value and its eight bins
        dict(numeric_embedding="piecewise_linear", ensemble=1),
        # learned category vectors, robust scaling, an ensemble of 3 with batch norm
        dict(categorical_embedding="learned", scaling="robust", ensemble=3, batch_norm=True),
        # fit's defaults: 8 cross-fitted networks, the logistic blend, the temperature
        dict(),
    ],
)
def test_equals_shuffling_each_raw_column_through_predict_proba(keywords):
    X, y = table(500, "binary", seed=1)
    if keywords.get("numeric_embedding"):
        X = X[[c for c in X.columns if "cat" not in c and c != "kind"]].fillna(0).to_numpy()
    classifier = torchclf.fit(X, y, epochs=10, dtype="float64", seed=0, **keywords)
    ours = classifier.permutation_importance(X, y, n_repeats=2, random_state=3)
    np.testing.assert_allclose(
        ours.importances, brute_force(classifier, X, y, 2, 3), rtol=0, atol=1e-10
    )


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_the_two_columns_that_carry_the_signal_rank_above_every_noise_column(task):
    X, y = table(1500, task, seed=2)
    X_train, X_test, y_train, y_test = X[:1000], X[1000:], y[:1000], y[1000:]
    classifier = torchclf.fit(X_train, y_train, epochs=60, seed=0)
    importance = classifier.permutation_importance(X_test, y_test, n_repeats=3)
    ranked = [importance.columns[i] for i in importance.ranking()]
    assert set(ranked[:2]) == {"signal", "kind"}, importance.to_frame()
    frame = importance.to_frame()
    assert list(frame.columns[:3]) == ["column", "importance", "std"]
    assert frame["importance"].is_monotonic_decreasing
    assert importance.baseline > 0  # the log loss itself


def test_bad_arguments_are_named():
    X, y = table(200, "binary")
    classifier = torchclf.fit(X, y, epochs=2, ensemble=1)
    with pytest.raises(ConfigError, match="'metric' parameter"):
        classifier.permutation_importance(X, y, metric="auc")
    with pytest.raises(ConfigError, match="n_repeats"):
        classifier.permutation_importance(X, y, n_repeats=0)
    with pytest.raises(DataError, match="rows"):
        classifier.permutation_importance(X, y[:10])


def test_blocks_of_rows_and_chunks_of_repeats_give_the_same_importances(monkeypatch):
    from torchclf.evaluation import inspection

    X, y = table(300, "multiclass", seed=3)
    classifier = torchclf.fit(X, y, epochs=5, dtype="float64", ensemble=2, seed=0)
    whole = classifier.permutation_importance(X, y, n_repeats=4, random_state=1)
    monkeypatch.setattr(inspection, "predict_batch_rows", lambda *args: 50)  # blocks of rows
    monkeypatch.setattr(inspection, "CHUNK_ROWS", 700)  # two repeats at a time
    pieces = classifier.permutation_importance(X, y, n_repeats=4, random_state=1)
    np.testing.assert_allclose(pieces.importances, whole.importances, rtol=0, atol=1e-12)


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_partial_dependence_equals_scikit_learn_on_a_numeric_table(task):
    from sklearn.inspection import partial_dependence as sklearn_dependence

    X, y = table(400, task, seed=4)
    X = X[[c for c in X.columns if "cat" not in c and c != "kind"]].fillna(0.0)
    estimator = NeuralNetClassifier(max_epochs=10, random_state=0).fit(X, y)
    ours = torchclf.partial_dependence(estimator.classifier_, X, "signal", grid_points=7)
    assert not ours.categorical and len(ours.values) == 7
    assert np.all(np.diff(ours.values) > 0)  # quantiles of the column, increasing
    theirs = sklearn_dependence(
        estimator, X, ["signal"], custom_values={"signal": ours.values}, kind="both",
        method="brute", response_method="predict_proba",
    )  # fmt: skip
    # scikit-learn keeps the positive class's alone for binary: (outputs, values) and ICE
    outputs = [1] if task == "binary" else list(range(len(ours.outputs)))
    np.testing.assert_allclose(theirs["average"], ours.average[:, outputs].T, atol=1e-6)
    np.testing.assert_allclose(
        theirs["individual"], ours.individual[:, :, outputs].transpose(2, 0, 1), atol=1e-6
    )


@pytest.mark.parametrize("task", ["binary", "multiclass", "multilabel"])
def test_partial_dependence_of_a_categorical_column_is_per_category(task):
    X, y = table(600, task, seed=5)
    classifier = torchclf.fit(X, y, epochs=30, seed=0, dtype="float64")
    dependence = classifier.partial_dependence(X, "kind")
    assert dependence.categorical and dependence.values == ["a", "b", "c", "d"]
    assert dependence.outputs == list(classifier.task.class_names)
    # brute force: every row with the column set to the category, through predict_proba
    for index, category in enumerate(dependence.values):
        rows = X.assign(kind=category)
        np.testing.assert_allclose(
            dependence.individual[:, index], classifier.predict_proba(rows), atol=1e-10
        )
    # the category the target favours most moves the first output's probability most
    spread = dependence.average.max(axis=0) - dependence.average.min(axis=0)
    assert spread.max() > 0.2
    with pytest.raises(DataError, match="not one of the model's columns"):
        classifier.partial_dependence(X, "nope")


def test_held_out_rows_are_the_rows_fit_validated_on():
    X, y = table(500, "multiclass", seed=6)
    classifier = torchclf.fit(
        X, y, ensemble=1, calibrate=False, blend_linear=False, epochs=40, patience=5, seed=3
    )
    held_out = torchclf.held_out_rows(classifier, y)
    assert held_out is not None and len(held_out) == 100  # fit's 20%
    best = classifier.history.rows[classifier.history.best_epoch - 1]
    scored = classifier.evaluate(X.iloc[held_out], y[held_out]).scores["log_loss"]
    assert scored == pytest.approx(best["val_loss"], abs=1e-5)
    cross_fitted = torchclf.fit(X, y, epochs=2, seed=3)  # fit's defaults: 8 folds
    assert torchclf.held_out_rows(cross_fitted, y) is None


def test_explain_returns_importance_and_the_top_columns_dependence():
    X, y = table(400, "binary", seed=7)
    classifier = torchclf.fit(X[:300], y[:300], epochs=30, seed=0)
    explanation = torchclf.explain(
        classifier, X[300:], y[300:], background=X[:300], rows="the last 100", top=2
    )
    same = classifier.explain(X[300:], y[300:], background=X[:300], top=2)  # the method
    np.testing.assert_array_equal(same.importance.importances, explanation.importance.importances)
    ranked = explanation.importance.ranking()
    assert [d.column for d in explanation.dependences] == [
        explanation.importance.columns[i] for i in ranked[:2]
    ]
    assert explanation.rows == "the last 100"


@pytest.mark.parametrize(
    ("task", "keywords"),
    [
        ("binary", {}),  # fit's defaults: 8 cross-fitted networks, blend, temperature
        ("multiclass", dict(categorical_embedding="learned", ensemble=3)),
        ("multilabel", dict(ensemble=1)),
    ],
)
def test_integrated_gradients_are_complete(task, keywords):
    X, y = table(300, task, seed=8)
    classifier = torchclf.fit(X, y, epochs=15, seed=0, dtype="float64", **keywords)
    rows = X.iloc[:40]
    attributions = torchclf.integrated_gradients(classifier, rows)
    gap = attributions.output - attributions.baseline_output
    # completeness: a row's attributions sum to its logit less the baseline's, up to the
    # integral's error, which captum reports and which is small against the move
    np.testing.assert_allclose(attributions.values.sum(axis=1) - gap, attributions.delta, atol=1e-9)
    assert np.all(np.abs(attributions.delta) <= 0.02 * (1 + np.abs(gap)))
    finer = torchclf.integrated_gradients(classifier, rows, n_steps=256)
    assert np.abs(finer.delta).max() < np.abs(attributions.delta).max()
    # the explained logit is the model's own, at the row and at the training medians and modes
    logits = classifier.decision_function(rows)
    chosen = [list(classifier.task.class_names).index(name) for name in attributions.explained]
    if logits.shape[1] == 1:  # binary: its one logit, the positive class's
        chosen = [0] * len(rows)
    np.testing.assert_allclose(attributions.output, logits[np.arange(len(rows)), chosen], atol=1e-9)
    at_baseline = classifier.decision_function(classifier.encoder.baseline())[0]
    np.testing.assert_allclose(attributions.baseline_output, at_baseline[chosen], atol=1e-9)
    # the columns that carry the signal carry the attributions
    size = np.abs(attributions.values).mean(axis=0)
    ranked = [attributions.columns[i] for i in np.argsort(-size)]
    assert "signal" in ranked[:2] and ("kind" in ranked[:3] or task == "multilabel")


def test_integrated_gradients_say_how_to_get_captum(monkeypatch):
    import sys

    X, y = table(100, "binary")
    classifier = torchclf.fit(X, y, epochs=2, ensemble=1)
    monkeypatch.setitem(sys.modules, "captum.attr", None)  # as if not installed
    with pytest.raises(ConfigError, match="pip install 'torchclf\\[explain\\]'"):
        torchclf.integrated_gradients(classifier, X)


def test_the_estimator_works_with_scikit_learns_partial_dependence_display():
    import matplotlib

    matplotlib.use("Agg")
    from sklearn.inspection import PartialDependenceDisplay

    X, y = table(300, "multiclass", seed=9)
    estimator = NeuralNetClassifier(max_epochs=5, random_state=0).fit(X, y)
    display = PartialDependenceDisplay.from_estimator(
        estimator, X, ["signal", "kind"], categorical_features=["kind"], target=2,
        grid_resolution=10, kind="average",
    )  # fmt: skip
    assert len(display.pd_results) == 2
    ours = torchclf.partial_dependence(estimator.classifier_, X, "kind")
    # its partial dependence (every class's) is torchclf's
    np.testing.assert_allclose(display.pd_results[1]["average"], ours.average.T, atol=1e-6)
