import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.compose import ColumnTransformer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import torchclf
from torchclf import datasets
from torchclf.estimator import NeuralNetClassifier


def small(**params):
    """Tiny settings that keep scikit-learn's checks fast (and logits moderate)."""
    settings = {
        "hidden_layer_sizes": (16,),
        "max_epochs": 60,
        "learning_rate": 0.02,
        "random_state": 0,
    }
    return NeuralNetClassifier(**{**settings, **params})


@parametrize_with_checks([small()])
def test_passes_scikit_learns_estimator_checks(estimator, check):
    check(estimator)


@pytest.fixture(scope="module")
def iris():
    data = datasets.load("iris")
    return data.X, data.labels


def test_inside_a_pipeline_with_a_column_transformer():
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=200), "color": rng.choice(["red", "blue"], 200)})
    y = np.where((frame["size"] > 0) ^ (frame["color"] == "red"), "yes", "no")
    pipeline = make_pipeline(
        ColumnTransformer(
            [("num", StandardScaler(), ["size"]), ("cat", OneHotEncoder(), ["color"])]
        ),
        small(max_epochs=200),
    )
    pipeline.fit(frame, y)
    assert pipeline.score(frame, y) > 0.9
    assert set(pipeline.predict(frame)) == {"yes", "no"}


def test_grid_search_and_cross_validation(iris):
    X, y = iris
    search = GridSearchCV(
        small(), {"hidden_layer_sizes": [(4,), (16,)], "learning_rate": [0.01, 0.05]}, cv=3
    )
    search.fit(X, y)
    assert set(search.best_params_) == {"hidden_layer_sizes", "learning_rate"}
    assert search.best_score_ > 0.8
    assert cross_val_score(small(), X, y, cv=3).mean() > 0.8


def test_calibrated_classifier(iris):
    X, y = iris
    calibrated = CalibratedClassifierCV(small(), cv=3).fit(X, y)
    probs = calibrated.predict_proba(X)
    assert probs.shape == (150, 3) and np.allclose(probs.sum(1), 1)


def test_probabilities_predictions_and_labels_agree(iris):
    X, y = iris
    clf = small().fit(X, y)
    probs = clf.predict_proba(X)
    assert np.array_equal(clf.classes_[probs.argmax(1)], clf.predict(X))
    assert np.allclose(np.exp(clf.predict_log_proba(X)), probs)
    assert clf.decision_function(X).shape == (150, 3) and clf.n_features_in_ == 4
    binary = small().fit(X[:100], y[:100])
    assert binary.predict_proba(X[:100]).shape == (100, 2)
    assert binary.decision_function(X[:100]).shape == (100,)


def test_multilabel_shapes_and_values():
    data = datasets.load("multilabel", n_samples=300)
    clf = small(max_epochs=150).fit(data.X, data.y)
    probs = clf.predict_proba(data.X)
    assert probs.shape == (300, 4) and not np.allclose(probs.sum(1), 1)  # labels are independent
    assert np.array_equal(clf.predict(data.X), (probs >= 0.5).astype(int))
    assert np.array_equal(clf.classes_, np.arange(4))


def test_pickle_and_torchclf_model_file_round_trips(iris, tmp_path):
    X, y = iris
    clf = small().fit(X, y)
    restored = pickle.loads(pickle.dumps(clf))
    assert np.array_equal(restored.predict_proba(X), clf.predict_proba(X))
    loaded = torchclf.load(clf.save(tmp_path / "iris.safetensors"))
    assert np.array_equal(loaded.predict(X), clf.predict(X))


def test_same_random_state_same_predictions(iris):
    X, y = iris
    a, b = small().fit(X, y), small().fit(X, y)
    assert np.array_equal(a.predict_proba(X), b.predict_proba(X))
    c = NeuralNetClassifier(hidden_layer_sizes=(16,), max_epochs=60, random_state=1).fit(X, y)
    assert not np.array_equal(a.predict_proba(X), c.predict_proba(X))


def test_tuned_threshold_classifier(iris):
    from sklearn.model_selection import TunedThresholdClassifierCV

    X, y = iris
    binary_y = (y == "virginica").astype(int)
    tuned = TunedThresholdClassifierCV(small(), scoring="f1", cv=3).fit(X, binary_y)
    assert 0 < tuned.best_threshold_ < 1
    assert tuned.score(X, binary_y) > 0.9


def test_feature_names_in_from_data_frames(iris):
    X, y = iris
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = small().fit(frame, y)
    assert list(clf.feature_names_in_) == ["a", "b", "c", "d"]


def test_partial_fit_learns_from_chunks_with_all_classes_given_first(iris):
    X, y = iris
    order = np.random.default_rng(0).permutation(150)
    X, y = X[order], y[order]
    clf = small(learning_rate=0.05)
    with pytest.raises(ValueError, match="classes must be passed on the first call to partial_fit"):
        clf.partial_fit(X[:30], y[:30])
    first_chunk = np.array(["setosa"] * 10)
    clf.partial_fit(X[y == "setosa"][:10], first_chunk, classes=np.unique(y))
    assert list(clf.classes_) == ["setosa", "versicolor", "virginica"]
    for _ in range(40):
        for start in range(0, 150, 50):
            clf.partial_fit(X[start : start + 50], y[start : start + 50])
    assert clf.n_iter_ == 1 + 40 * 3
    assert clf.score(X, y) > 0.9
    with pytest.raises(
        ValueError, match=r"y holds labels \['rose'\] that the classifier does not know"
    ):
        clf.partial_fit(X[:2], ["rose", "setosa"])


def test_warm_start_continues_from_the_last_weights(iris):
    X, y = iris
    clf = small(warm_start=True, max_epochs=20)
    clf.fit(X, y)
    last_loss = clf.loss_curve_[-1]
    clf.fit(X, y)
    assert clf.n_iter_ == 40
    assert abs(clf.loss_curve_[20] - last_loss) < 0.05 * last_loss  # picks up where it stopped
    cold = small(max_epochs=20).fit(X, y)
    assert cold.n_iter_ == 20 and cold.loss_curve_[0] > 2 * clf.loss_curve_[20]


def test_parameters_are_checked_in_fit_and_reported_together(iris):
    X, y = iris
    bad = NeuralNetClassifier(learning_rate=-1, max_epochs=0, optimizer="adm")
    message = (
        "The 'learning_rate' parameter must be a float in the range (0.0, inf). Got -1 instead.; "
        "The 'max_epochs' parameter must be an int in the range [1, inf). Got 0 instead.; "
        "The 'optimizer' parameter must be one of ['sgd', 'adam', 'adamw', 'rmsprop']. Got 'adm' instead."
    )
    with pytest.raises(torchclf.ConfigError, match=re.escape(message)):
        bad.fit(X, y)
    assert bad.get_params()["learning_rate"] == -1  # __init__ only stored it


def test_a_fitted_estimator_is_served_by_torchclf_predict(iris, tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    X, y = iris
    frame = pd.DataFrame(X, columns=["sepal_l", "sepal_w", "petal_l", "petal_w"])
    clf = small().fit(frame, y)
    clf.save(tmp_path / "iris.safetensors")
    frame.assign(species=y).head(5).to_csv(tmp_path / "rows.csv", index=False)
    result = CliRunner().invoke(
        app, ["predict", str(tmp_path / "iris.safetensors"), "--data", str(tmp_path / "rows.csv")]
    )
    assert result.exit_code == 0, result.output
    served = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert served["prediction"].tolist() == clf.predict(frame.head(5)).tolist()
