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


@pytest.mark.parametrize("optimizer", ["adam", "adamw"])
def test_a_warm_start_keeps_the_optimizer_state_so_10_plus_10_epochs_are_20(iris, optimizer):
    X, y = iris
    settings = dict(dtype="float64", optimizer=optimizer, early_stopping=False)
    once = small(max_epochs=20, **settings).fit(X, y)
    twice = small(max_epochs=10, warm_start=True, **settings).fit(X, y)
    assert twice.classifier_.optimizer is not None  # fit's optimizer, as the engine left it
    twice.fit(X, y)  # ten more, on the autograd loop, from Adam's moments and step count
    np.testing.assert_allclose(twice.predict_proba(X), once.predict_proba(X), atol=1e-9)
    assert twice.n_iter_ == 20
    fresh = small(max_epochs=10, warm_start=True, **settings).fit(X, y)
    fresh.classifier_.optimizer = None  # what a warm start was before: a new optimizer
    fresh.fit(X, y)
    assert np.abs(fresh.predict_proba(X) - once.predict_proba(X)).max() > 1e-4


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


def _raw_table(n=240, seed=0):
    """Text, boolean, category and numeric columns, with gaps, and a target they explain."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 12, n)
    city = rng.choice(["Oslo", "Lima", "Pune"], n).astype(object)
    smoker = rng.choice([True, False], n)
    stage = pd.Categorical(rng.choice([1, 2, 3], n))  # numbers, declared categorical
    risk = 0.1 * (age - 50) + 2 * smoker + 1.5 * (city == "Lima") + (np.asarray(stage) == 3)
    frame = pd.DataFrame({"age": age, "city": city, "smoker": smoker, "stage": stage})
    frame.loc[rng.choice(n, 20, replace=False), "age"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "city"] = None
    return frame, np.where(risk + rng.normal(0, 0.2, n) > 1, "sick", "well")


def test_a_raw_table_is_preprocessed_saved_and_served_as_it_is(tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    frame, y = _raw_table()
    clf = small(max_epochs=200).fit(frame[:180], y[:180])
    assert list(clf.feature_names_in_) == ["age", "city", "smoker", "stage"]
    assert clf.n_features_in_ == 4
    assert clf.classifier_.encoder.kinds() == {
        "numeric": ["age"],
        "categorical": ["city", "smoker", "stage"],
    }
    predicted = clf.predict(frame[180:])
    assert (predicted == y[180:]).mean() > 0.8
    np.testing.assert_allclose(clf.predict_proba(frame[180:]).sum(axis=1), 1.0)
    clf.save(tmp_path / "model.safetensors")
    loaded = torchclf.load(tmp_path / "model.safetensors")
    assert loaded.predict(frame[180:]).tolist() == predicted.tolist()
    assert pickle.loads(pickle.dumps(clf)).predict(frame[180:]).tolist() == predicted.tolist()
    frame[180:].to_csv(tmp_path / "rows.csv", index=False)
    result = CliRunner().invoke(
        app, ["predict", str(tmp_path / "model.safetensors"), "--data", str(tmp_path / "rows.csv")]
    )
    assert result.exit_code == 0, result.output
    served = pd.read_csv(__import__("io").StringIO(result.stdout))
    assert served["prediction"].tolist() == predicted.tolist()


def test_a_raw_table_refuses_other_columns_as_scikit_learn_does():
    frame, y = _raw_table()
    clf = small(max_epochs=5).fit(frame, y)
    with pytest.raises(ValueError, match="Feature names unseen at fit time"):
        clf.predict(frame.rename(columns={"city": "town"}))


def test_numeric_columns_named_categorical_are_one_hot_encoded():
    frame, y = _raw_table()
    frame = frame.assign(stage=np.asarray(frame["stage"]).astype(int))
    clf = small(max_epochs=5, categorical_features=["stage"]).fit(frame, y)
    assert clf.classifier_.encoder.kinds()["categorical"] == ["city", "smoker", "stage"]


def test_a_diverged_fit_is_advised_in_the_estimators_names():
    X = np.random.default_rng(0).normal(size=(100, 3)) * 100
    y = (X[:, 0] > 0).astype(int)
    message = (
        "with learning_rate=1e+06: training diverged. Lower the learning rate (for example "
        "learning_rate=0.003)"
    )
    with pytest.raises(torchclf.TrainingError, match=re.escape(message) + "$"):
        small(optimizer="sgd", learning_rate=1e6, hidden_layer_sizes=(8,)).fit(X, y)


def test_a_pipelines_last_step_is_not_served_silently_from_named_columns(tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    frame, y = datasets.load("breast_cancer").X, datasets.load("breast_cancer").labels
    X = pd.DataFrame(frame, columns=[f"f{i}" for i in range(frame.shape[1])])
    pipeline = make_pipeline(StandardScaler(), small(max_epochs=20)).fit(X, y)
    pipeline[-1].save(tmp_path / "last.safetensors")  # the scaler is not in this file
    X.to_csv(tmp_path / "raw.csv", index=False)
    runner = CliRunner()
    model = str(tmp_path / "last.safetensors")
    refused = runner.invoke(app, ["predict", model, "--data", str(tmp_path / "raw.csv")])
    assert refused.exit_code == 2 and refused.stdout == ""
    assert refused.stderr.startswith(
        "Error: Invalid value for '--data': the model was fitted on 30 unnamed features, so it "
        f"cannot tell whether the columns of '{tmp_path / 'raw.csv'}' are those it learned from"
    )
    assert refused.stderr.count("\n") == 1 and "--by-position" in refused.stderr
    info = runner.invoke(app, ["info", model])
    cells = " ".join(re.sub("[│]", " ", info.stdout).split())  # the table's wrapped cells
    assert "features 30, unnamed (fitted on an array: columns are taken by position" in cells
    scaled = pd.DataFrame(pipeline[0].transform(X), columns=X.columns)
    scaled.to_csv(tmp_path / "scaled.csv", index=False)
    served = runner.invoke(
        app, ["predict", model, "--data", str(tmp_path / "scaled.csv"), "--by-position"]
    )
    assert served.exit_code == 0 and served.stderr == ""
    labels = pd.read_csv(__import__("io").StringIO(served.stdout))["prediction"]
    assert labels.tolist() == pipeline.predict(X).tolist()
    with pytest.warns(torchclf.TorchclfWarning, match="fitted on 30 unnamed features"):
        torchclf.load(model).predict(X)


@pytest.mark.parametrize(
    ("early_stopping", "rows", "expected"),
    [
        pytest.param("auto", 10_000, False, id="auto-10000-rows"),
        pytest.param("auto", 10_001, True, id="auto-10001-rows"),
        pytest.param(True, 200, True, id="on-small"),
        pytest.param(False, 10_001, False, id="off-large"),
    ],
)
def test_early_stopping_auto_is_on_above_10000_rows_as_in_scikit_learn(
    early_stopping, rows, expected
):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(rows, 3))
    y = (X[:, 0] + rng.normal(0, 0.5, rows) > 0).astype(int)
    clf = small(early_stopping=early_stopping, max_epochs=2, batch_size=4096).fit(X, y)
    assert clf.do_early_stopping_ is expected
    assert (clf.validation_loss_curve_ is not None) is expected
    assert clf.classifier_.train_config.validation_fraction == (0.1 if expected else 0.0)


def test_early_stopping_keeps_the_best_validation_epoch():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 5))
    y = (X[:, 0] + rng.normal(0, 1, 300) > 0).astype(int)  # noisy: a wide net overfits it
    clf = small(hidden_layer_sizes=(64, 64), learning_rate=0.03, max_epochs=300,
                early_stopping=True, n_iter_no_change=20).fit(X, y)  # fmt: skip
    assert clf.best_epoch_ == 1 + int(np.argmin(clf.validation_loss_curve_))
    assert clf.best_epoch_ < clf.n_iter_ < 300


def test_early_stopping_must_be_auto_or_a_bool(iris):
    X, y = iris
    with pytest.raises(torchclf.ConfigError, match=re.escape(
        "The 'early_stopping' parameter must be one of ['auto', True, False]. Got 'yes' instead."
    )):  # fmt: skip
        small(early_stopping="yes").fit(X, y)
