import re
import warnings

import numpy as np
import pandas as pd
import pytest

import torchclf
from torchclf import DataError
from torchclf.data.sources import DataSource
from torchclf.data.tabular import prepare_table, read_table
from torchclf.encoders import OTHER, TableEncoder
from torchclf.errors import TorchclfWarning


def patients(n=300, seed=0):
    """Mixed columns with gaps: numbers, text, booleans, an id, and a learnable target."""
    rng = np.random.default_rng(seed)
    age = rng.normal(50, 12, n).round()
    chol = rng.normal(220, 40, n)
    sex = rng.choice(["female", "male"], n)
    smoker = rng.choice([True, False], n)
    city = rng.choice(["Oslo", "Lima", "Pune", "Kyiv"], n)
    risk = 0.08 * (age - 50) + 0.03 * (chol - 220) + 1.5 * (sex == "male") + 2 * smoker - 1.5
    frame = pd.DataFrame(
        {
            "patient_id": np.arange(1000, 1000 + n),
            "age": age,
            "cholesterol": chol,
            "sex": sex,
            "smoker": smoker,
            "city": city,
            "disease": np.where(risk + rng.normal(0, 0.5, n) > 0, "yes", "no"),
            "stage": np.select([risk < -1, risk < 1], ["low", "mid"], "high"),
            "tags": [
                "|".join(t for t, on in (("heart", r > 0), ("lung", s)) if on) or "none"
                for r, s in zip(risk, smoker, strict=True)
            ],
        }
    )
    frame.loc[rng.choice(n, 20, replace=False), "cholesterol"] = np.nan
    frame.loc[rng.choice(n, 15, replace=False), "city"] = None
    frame.loc[rng.choice(n, 4, replace=False), "disease"] = None
    return frame


@pytest.fixture
def csv_path(tmp_path):
    path = tmp_path / "patients.csv"
    patients().to_csv(path, index=False)
    return path


def test_table_encoder_handles_mixed_columns_with_gaps():
    frame = patients()[["age", "cholesterol", "sex", "smoker", "city"]]
    encoder = TableEncoder.fit(frame)
    assert encoder.kinds() == {
        "numeric": ["age", "cholesterol"],
        "categorical": ["sex", "smoker", "city"],
    }
    by_name = {c.name: c for c in encoder.columns}
    assert not by_name["age"].indicator and by_name["cholesterol"].indicator  # only gaps get one
    assert by_name["city"].categories == ["Kyiv", "Lima", "Oslo", "Pune", "__missing__"]
    assert by_name["smoker"].categories == ["False", "True"]
    encoded = encoder.transform(frame)
    # age 1 + cholesterol 2 + sex 3 + smoker 3 + city 6 (4 cities, missing, other)
    assert encoded.shape == (300, 15) and encoded.dtype == np.float32
    assert np.isfinite(encoded).all()
    assert abs(encoded[:, 0].mean()) < 1e-5 and abs(encoded[:, 0].std() - 1) < 1e-4
    assert encoded[:, 2].sum() == 20  # the cholesterol-was-missing indicator


def test_unseen_categories_go_to_the_other_slot_with_a_warning():
    frame = patients()[["age", "city"]]
    encoder = TableEncoder.fit(frame)
    new = pd.DataFrame({"age": [40.0, np.nan], "city": ["Atlantis", "Oslo"]})
    with pytest.warns(
        TorchclfWarning,
        match=re.escape(
            "column 'city': 1 values outside its training categories (e.g. ['Atlantis']) went to its 'other' slot"
        ),
    ):
        encoded = encoder.transform(new)
    city = next(c for c in encoder.columns if c.name == "city")
    assert encoded[0, 1 + len(city.categories)] == 1.0  # the OTHER slot
    assert encoded[1, 1 + city.categories.index("Oslo")] == 1.0
    assert encoded[1, 0] == pytest.approx(
        (frame["age"].median() - frame["age"].mean()) / frame["age"].std(ddof=0), rel=1e-4
    )


def test_rare_values_share_the_other_slot_and_numbers_can_be_categories():
    frame = pd.DataFrame({"grade": [1, 1, 2, 2, 3, 9], "x": [0.0, 1, 2, 3, 4, 5]})
    encoder = TableEncoder.fit(frame, categorical=["grade"])
    grade = encoder.columns[0]
    assert grade.categories == ["1", "2"] and encoder.kinds()["categorical"] == ["grade"]
    encoded = encoder.transform(frame.assign(grade=[1.0, 2.0, 3.0, 9.0, 1.0, 2.0]), warn=False)
    assert encoded[:, :3].tolist()[:4] == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [0, 0, 1]]
    assert OTHER == "__other__"


def test_numeric_column_with_text_names_the_row_and_value(tmp_path):
    path = tmp_path / "typo.csv"
    rows = ["age,label"] + [f"{20 + i},{i % 2}" for i in range(30)]
    rows[5] = "abc,0"
    path.write_text("\n".join(rows) + "\n")
    table = prepare_table(read_table(path), ["label"], source=f"'{path}'")
    message = "column 'age' looks numeric but holds 'abc' at line 6; fix that value, or list the column as categorical"
    with pytest.raises(DataError, match=re.escape(message)):
        TableEncoder.fit(table.features)


def test_prediction_time_column_problems():
    encoder = TableEncoder.fit(patients()[["age", "city"]])
    with pytest.raises(
        DataError,
        match=re.escape(
            "the data lacks the feature columns ['city'] that the model was trained on (it has ['age'])"
        ),
    ):
        encoder.transform(pd.DataFrame({"age": [1.0]}))
    with pytest.raises(
        DataError,
        match=re.escape(
            "column 'age' was numeric in training but holds 'old' at row 1; fix that value, or list the column as categorical"
        ),
    ):
        encoder.transform(pd.DataFrame({"age": ["30", "old"], "city": ["Oslo", "Lima"]}))
    with pytest.warns(
        TorchclfWarning, match=re.escape("ignoring 1 columns the model does not use: ['zip']")
    ):
        encoder.transform(pd.DataFrame({"age": [1.0], "city": ["Oslo"], "zip": [123]}))


def test_prepare_table_drops_rows_without_target_and_ids(csv_path):
    table = prepare_table(read_table(csv_path), ["disease"], drop=["stage", "tags"])
    assert table.report == {
        "rows": 300,
        "dropped (missing target)": 4,
        "id-like columns left out": ["patient_id"],
    }
    assert list(table.features.columns) == ["age", "cholesterol", "sex", "smoker", "city"]
    assert len(table.y) == 296
    kept = prepare_table(read_table(csv_path), ["disease"], features=["patient_id", "age"])
    assert list(kept.features.columns) == ["patient_id", "age"]


def test_multilabel_targets_from_label_columns_and_delimited_labels(csv_path):
    frame = read_table(csv_path).assign(
        heart=lambda f: (f.stage == "high").astype(int), lung=lambda f: f.smoker.astype(int)
    )
    table = prepare_table(frame, ["heart", "lung"], drop=["disease", "stage", "tags"])
    assert table.label_names == ["heart", "lung"] and table.y.shape == (300, 2)
    delimited = prepare_table(read_table(csv_path), ["tags"], drop=["disease", "stage"])
    assert isinstance(delimited.y, list) and {"heart", "lung"} <= {
        t for row in delimited.y for t in row
    }


@pytest.mark.parametrize(
    ("target", "drop", "task"),
    [
        pytest.param(["disease"], ["stage", "tags"], "binary", id="binary"),
        pytest.param(["stage"], ["disease", "tags"], "multiclass", id="multiclass"),
        pytest.param(["tags"], ["disease", "stage"], "multilabel", id="multilabel"),
    ],
)
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_every_task_from_csv_and_parquet_round_trips_on_raw_rows(
    tmp_path, target, drop, task, suffix
):
    path = tmp_path / f"patients{suffix}"
    frame = patients()
    frame.to_csv(path, index=False) if suffix == ".csv" else frame.to_parquet(path, index=False)
    source = DataSource(
        name=str(path), target=tuple(target), drop=tuple(drop), test_size=0.25, seed=1
    )
    data = source.load()
    split = source.split(data)
    clf = torchclf.fit(split.X_train, split.y_train, hidden=(16,), epochs=150)
    assert clf.task.name == task
    assert clf.evaluate(split.X_test, split.y_test)["accuracy"] > (
        0.75 if task != "multilabel" else 0.5
    )
    loaded = torchclf.load(clf.save(tmp_path / "m.safetensors"))
    raw = split.X_test.head(6).copy()
    raw.iloc[0, raw.columns.get_loc("city")] = "Atlantis"  # unseen category
    raw.iloc[1, raw.columns.get_loc("age")] = np.nan  # a gap where training had none
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", TorchclfWarning)
        assert np.array_equal(loaded.predict_proba(raw), clf.predict_proba(raw))
        assert np.array_equal(loaded.predict(raw), clf.predict(raw))


def test_class_weight_and_a_threshold_chosen_for_recall():
    frame = patients(600)
    y = (frame["disease"] == "yes") & (frame["stage"] == "high")  # a rarer positive class
    X = frame[["age", "cholesterol", "sex", "smoker", "city"]]
    plain = torchclf.fit(X, y, hidden=(16,), epochs=100)
    balanced = torchclf.fit(X, y, hidden=(16,), epochs=100, class_weight="balanced")
    assert balanced.predict(X).mean() > plain.predict(X).mean()  # weighting finds more positives
    tuned = torchclf.fit(
        X, y, hidden=(16,), epochs=100, validation_fraction=0.3, threshold="recall:0.95"
    )
    threshold = tuned.task.threshold
    assert 0 < threshold < 0.5
    assert torchclf.load  # the threshold travels with the model
    assert tuned.predict(X).mean() >= plain.predict(X).mean()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            {"threshold": "f2"},
            "The 'threshold' parameter must be a number in (0, 1), 'f1' or 'recall:R' with R in (0, 1]. Got 'f2' instead.",
        ),
        (
            {"threshold": "f1", "validation_fraction": 0.0},
            "threshold='f1' is chosen on validation rows: set validation_fraction (for example 0.2)",
        ),
    ],
)
def test_threshold_rules_are_validated(kwargs, message):
    X, y = np.random.default_rng(0).normal(size=(40, 2)), np.arange(40) % 2
    with pytest.raises(torchclf.ConfigError, match=re.escape(message)):
        torchclf.fit(X, y, epochs=1, **kwargs)


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("make", "message"),
    [
        pytest.param(
            lambda t: t / "absent.csv",
            "data file '{path}' does not exist (or is not a file)",
            id="missing",
        ),
        pytest.param(
            lambda t: _write(t, "empty.csv", ""),
            "data file '{path}' is empty: it has no header and no rows",
            id="empty",
        ),
        pytest.param(
            lambda t: _write(t, "header.csv", "a,b,target\n"),
            "data file '{path}' has a header but no rows",
            id="no-rows",
        ),
        pytest.param(
            lambda t: _write(t, "dup.csv", "a,a,target\n1,2,0\n"),
            "data file '{path}' has duplicated column names ['a']; rename them so that every column is unique",
            id="duplicated",
        ),
        pytest.param(
            lambda t: _write(t, "data.txt", "a\n1\n"),
            "'{path}': expected a .csv or .parquet file, got '.txt'",
            id="suffix",
        ),
        pytest.param(
            lambda t: _write(t, "bad.parquet", "not parquet"),
            "data file '{path}' could not be read as Parquet",
            id="bad-parquet",
        ),
    ],
)
def test_unreadable_files_are_named(tmp_path, make, message):
    path = make(tmp_path)
    with pytest.raises(DataError, match=re.escape(message.format(path=path))):
        read_table(path)


def test_duplicated_parquet_columns(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "dup.parquet"
    pq.write_table(pa.table([[1, 2], [3, 4]], names=["a", "a"]), path)
    with pytest.raises(DataError, match=re.escape("has duplicated column names ['a']")):
        read_table(path)


@pytest.mark.parametrize(
    ("target", "frame", "message"),
    [
        pytest.param(
            ["diseas"],
            None,
            "column 'diseas' is not in 'p.csv'; its columns are ['patient_id', 'age', 'cholesterol', 'sex', 'smoker', 'city', 'disease', 'stage', 'tags']. Did you mean 'disease'?",
            id="target-absent",
        ),
        pytest.param(
            ["label"],
            pd.DataFrame({"x": [1.0, 2.0], "label": ["a", "a"]}),
            "target column 'label' of 'p.csv' has only one class ('a'); a classifier needs at least two classes",
            id="one-class",
        ),
        pytest.param(
            ["label"],
            pd.DataFrame({"x": [1.0, 2.0], "label": [None, None]}),
            "'p.csv' has no rows left: all 2 rows miss the target ['label']",
            id="no-target-rows",
        ),
    ],
)
def test_target_problems_are_named(target, frame, message):
    frame = patients() if frame is None else frame
    with pytest.raises(DataError, match=re.escape(message)):
        prepare_table(frame, target, source="'p.csv'")


def test_an_empty_label_set_is_a_row_to_which_no_label_applies(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(1000, 2))
    tags = [
        "|".join(t for t, on in (("a", u > 0), ("b", v > 0.3)) if on) for u, v in x
    ]  # "" where neither label applies
    frame = pd.DataFrame({"u": x[:, 0], "v": x[:, 1], "tags": tags})
    frame.loc[:2, "tags"] = None  # also missing: in a column of label sets, the same as empty
    path = tmp_path / "tags.csv"
    frame.to_csv(path, index=False)
    empty = sum(not t for t in tags) + sum(bool(t) for t in tags[:3])
    table = prepare_table(read_table(path), ["tags"])
    assert table.report["rows"] == 1000 and table.report["dropped (missing target)"] == 0
    assert len(table.y) == 1000 and table.report["rows with no label"] == empty > 100
    assert [labels for labels in table.y[:3]] == [[], [], []]
    clf = torchclf.fit(table.features, table.y, epochs=300, seed=0)
    assert clf.task.name == "multilabel" and list(clf.classes) == ["a", "b"]
    predicted = clf.predict(table.features)  # (1000, 2) 0/1
    none_apply = np.array([not labels for labels in table.y])
    assert (predicted[none_apply].sum(axis=1) == 0).mean() > 0.9


def test_robust_statistics_are_the_median_and_interquartile_range_with_fallbacks():
    from torchclf.encoders.tables import robust_statistics

    values = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 1000.0])
    assert robust_statistics(values) == (3.5, np.quantile(values, 0.75) - np.quantile(values, 0.25))
    mostly_zero = np.array([0.0] * 9 + [8.0])  # the middle half is one value: half the range
    assert robust_statistics(mostly_zero) == (0.0, 4.0)
    assert robust_statistics(np.full(5, 7.0)) == (7.0, 1.0)  # constant: only centred
    weights = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 100.0])  # the outlier weighs most
    assert robust_statistics(values, weights)[0] == 1000.0


@pytest.mark.parametrize("as_frame", [True, False], ids=["table", "array"])
def test_robust_scaling_squashes_heavy_tails_and_survives_the_model_file(tmp_path, as_frame):
    rng = np.random.default_rng(0)
    X = np.column_stack([rng.standard_cauchy(300), rng.normal(size=300)])  # (300, 2) heavy tail
    y = (X[:, 1] + 0.1 * np.clip(X[:, 0], -5, 5) > 0).astype(int)
    data = pd.DataFrame(X, columns=["tail", "normal"]) if as_frame else X
    robust = torchclf.fit(data, y, scaling="robust", epochs=30, seed=0)
    standard = torchclf.fit(data, y, epochs=30, seed=0)
    encoded = robust.encoder.transform(data)
    assert np.abs(encoded).max() < 3.0  # squashed smoothly into (-3, 3)
    assert np.abs(standard.encoder.transform(data)[:, 0]).max() > 10  # the tail stretches it
    centre, spread = np.median(X[:, 0]), np.subtract(*np.quantile(X[:, 0], [0.75, 0.25]))
    z = (X[:, 0] - centre) / spread
    np.testing.assert_allclose(encoded[:, 0], z / np.sqrt(1 + (z / 3) ** 2), rtol=1e-5)
    assert robust.train_config.scaling == "robust"
    loaded = torchclf.load(robust.save(tmp_path / "robust.safetensors"))
    np.testing.assert_array_equal(loaded.predict_proba(data), robust.predict_proba(data))


def test_piecewise_linear_bins_read_where_a_value_sits_among_the_training_quantiles():
    from torchclf.encoders.tables import piecewise_edges, piecewise_linear

    edges = [0.0, 1.0, 2.0, 4.0]  # three bins
    values = np.array([-1.0, 0.0, 0.5, 1.0, 3.0, 4.0, 6.0])
    expected = [
        [-1.0, 0.0, 0.0],  # the first bin is open to the left
        [0.0, 0.0, 0.0],
        [0.5, 0.0, 0.0],
        [1.0, 0.0, 0.0],
        [1.0, 1.0, 0.5],
        [1.0, 1.0, 1.0],
        [1.0, 1.0, 2.0],  # and the last to the right
    ]
    np.testing.assert_array_equal(piecewise_linear(values, edges), expected)
    spread = np.arange(100.0)
    assert piecewise_edges(spread, bins=4) == [0.0, 24.75, 49.5, 74.25, 99.0]
    assert piecewise_edges(np.arange(8.0) % 3, bins=4) == []  # few distinct values: none


def test_auto_embeds_a_tables_numbers_where_the_rows_allow_and_never_an_array(tmp_path):
    rng = np.random.default_rng(0)

    def table(rows):
        X = pd.DataFrame({"a": rng.normal(size=rows), "b": rng.exponential(size=rows)})
        return X.assign(kind=rng.choice(["x", "y"], size=rows)), (X["a"] > 0).astype(int)

    many, y_many = table(400)  # 25 rows for each of 16 added features
    few, y_few = table(300)  # under 20 rows a feature
    embedded = torchclf.fit(many, y_many, epochs=20, seed=0)
    widths = [c.width for c in embedded.encoder.columns]
    assert widths == [9, 9, 3] and embedded.model_config.in_features == 21
    plain = torchclf.fit(few, y_few, epochs=20, seed=0)
    assert [c.width for c in plain.encoder.columns] == [1, 1, 3]
    array = many[["a", "b"]].to_numpy()
    assert torchclf.fit(array, y_many, epochs=20, seed=0).encoder.n_outputs == 2
    forced = torchclf.fit(array, y_many, epochs=20, seed=0, numeric_embedding="piecewise_linear")
    assert forced.encoder.n_outputs == 18
    for classifier, X in ((embedded, many), (forced, array)):
        loaded = torchclf.load(classifier.save(tmp_path / "m.safetensors"))
        np.testing.assert_array_equal(loaded.predict_proba(X), classifier.predict_proba(X))
    off = torchclf.fit(many, y_many, epochs=20, seed=0, numeric_embedding="none")
    assert off.model_config.in_features == 5


def _shops(rows, seed=0, shops=120):
    """A number, a 3-category column, and a shop column of ``shops`` categories that drives y."""
    rng = np.random.default_rng(seed)
    shop = rng.integers(0, shops, rows)
    effect = np.random.default_rng(99).normal(0, 1.5, shops)  # the same shops in every call
    a = rng.normal(size=rows)
    y = (rng.random(rows) < 1 / (1 + np.exp(-(effect[shop] + a)))).astype(int)
    kind = rng.choice(list("xyz"), rows)
    X = pd.DataFrame({"shop": [f"s{s:03d}" for s in shop], "a": a, "kind": kind})
    return X, y


def test_high_cardinality_columns_enter_as_codes_last_and_survive_the_model_file(tmp_path):
    X, _ = _shops(1000)
    auto = TableEncoder.fit(X, categorical_embedding="auto")
    shop, kind = auto.columns[0], auto.columns[2]
    assert shop.embedded and len(shop.categories) == 120 and not kind.embedded
    assert auto.category_counts() == (121,) and auto.n_outputs == 1 + 4 + 1
    assert auto.embedded_columns().tolist() == [False] * 5 + [True]  # the code, after the rest
    assert (
        "1 categorical column one-hot; 1 categorical column as learned vectors" in auto.describe()
    )
    new = pd.DataFrame({"shop": ["s005", "nowhere"], "a": [0.0, 0.0], "kind": ["x", "x"]})
    with pytest.warns(TorchclfWarning, match="'shop': 1 values outside"):
        codes = auto.transform(new)[:, -1]
    assert codes.tolist() == [shop.categories.index("s005"), 120]  # unseen: the OTHER slot
    # one-hot keeps the 50 most frequent shops; "learned" makes every categorical column codes
    assert TableEncoder.fit(X, categorical_embedding="none").columns[0].width == 51
    assert TableEncoder.fit(X, categorical_embedding="learned").category_counts() == (121, 4)
    clf = torchclf.fit(X, _shops(1000)[1], epochs=20, seed=0)
    assert clf.model_config.category_counts == (121,)
    loaded = torchclf.load(clf.save(tmp_path / "m.safetensors"))
    np.testing.assert_array_equal(loaded.predict_proba(X), clf.predict_proba(X))


@pytest.mark.filterwarnings("ignore::torchclf.errors.TorchclfWarning")  # shops unseen in training
def test_learned_vectors_carry_the_signal_one_hot_lumps_together():
    # 120 shops: one-hot keeps 50 and lumps 70 into its OTHER slot; their vectors tell them apart
    X, y = _shops(2000)
    X_test, y_test = _shops(1000, seed=1)
    from sklearn.metrics import log_loss

    losses = {
        mode: log_loss(
            y_test,
            torchclf.fit(X, y, seed=0, hidden=(32, 32), categorical_embedding=mode).predict_proba(
                X_test
            ),
        )
        for mode in ("none", "auto")
    }
    assert losses["auto"] < losses["none"] - 0.02, losses


def test_polars_and_pyarrow_tables_train_the_model_a_pandas_frame_does():
    pl = pytest.importorskip("polars")
    import pyarrow as pa

    frame = patients(120)[["age", "cholesterol", "sex", "city", "disease"]].dropna(
        subset=["disease"]
    )
    X, y = frame.drop(columns="disease"), frame["disease"].to_numpy()
    expected = torchclf.fit(X, y, epochs=20, seed=0).predict_proba(X)
    tables = {
        "polars": (pl.from_pandas(X), pl.Series(y)),
        "polars lazy": (pl.from_pandas(X).lazy(), y),
        "pyarrow": (pa.Table.from_pandas(X, preserve_index=False), pa.array(y)),
    }
    for kind, (table, labels) in tables.items():
        classifier = torchclf.fit(table, labels, epochs=20, seed=0)
        assert classifier.feature_names == list(X.columns), kind
        np.testing.assert_array_equal(classifier.predict_proba(table), expected, err_msg=kind)
        evaluation = classifier.evaluate(table, labels)
        assert evaluation.scores["accuracy"] == pytest.approx((classifier.predict(X) == y).mean())
    estimator = torchclf.NeuralNetClassifier(max_epochs=5).fit(pl.from_pandas(X), pl.Series(y))
    assert list(estimator.feature_names_in_) == list(X.columns)
    np.testing.assert_array_equal(
        estimator.predict_proba(pl.from_pandas(X)), estimator.predict_proba(X)
    )


def _german_csv(path, rows=120):
    """A semicolon, Latin-1 CSV with decimal commas, as a German spreadsheet writes one."""
    rng = np.random.default_rng(0)
    value = rng.normal(size=rows)
    city = rng.choice(["Köln", "Zürich", "Malmö"], rows)
    label = np.where(value + (city == "Köln") > 0.3, "ja", "nein")
    lines = ["wert;stadt;label"] + [
        f"{v:.3f}".replace(".", ",") + f";{c};{t}"
        for v, c, t in zip(value, city, label, strict=True)
    ]
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return value, city


def test_a_semicolon_latin_1_csv_with_decimal_commas_is_read_as_written(tmp_path):
    path = tmp_path / "de.csv"
    value, city = _german_csv(path)
    with pytest.raises(DataError, match=r"is not UTF-8: byte b'\\xf6' on line 2 .* latin-1"):
        read_table(path)
    frame = read_table(path, encoding="latin-1")
    assert list(frame.columns) == ["wert", "stadt", "label"]  # ";" sniffed
    np.testing.assert_allclose(frame["wert"].to_numpy(), value, atol=5e-4)  # numbers, not text
    assert frame["stadt"].tolist() == city.tolist()
    with pytest.raises(DataError, match="unknown encoding 'latin-9x'"):
        read_table(path, encoding="latin-9x")
    # a given separator wins over the sniffed one: one column of "a;b;c" text
    assert list(read_table(path, sep=",", encoding="latin-1").columns) == ["wert;stadt;label"]
    (tmp_path / "tabs.csv").write_text("a\tb\tc\n1\t2\tx\n3\t4\ty\n")
    assert list(read_table(tmp_path / "tabs.csv").columns) == ["a", "b", "c"]
    # "1,5" stays text where the comma could separate fields, and in a column that is not numbers
    (tmp_path / "mixed.csv").write_text("a;b\n1,5;x,1\n2;y\n")
    mixed = read_table(tmp_path / "mixed.csv")
    assert mixed["a"].tolist() == [1.5, 2.0] and mixed["b"].tolist() == ["x,1", "y"]


def test_the_command_line_trains_and_predicts_on_a_latin_1_semicolon_csv(tmp_path):
    from typer.testing import CliRunner

    from torchclf.cli import app

    path = tmp_path / "de.csv"
    _german_csv(path)
    runner = CliRunner()
    common = ["--data", str(path), "--target", "label", "--epochs", "30", "-q"]
    refused = runner.invoke(app, ["train", *common, "--out", str(tmp_path / "runs")])
    assert refused.exit_code == 2 and "--encoding" in refused.stderr
    trained = runner.invoke(
        app, ["train", *common, "--encoding", "latin-1", "--out", str(tmp_path / "runs")]
    )
    assert trained.exit_code == 0, trained.output
    run = tmp_path / "runs" / "de"
    assert torchclf.load(run).encoder.kinds() == {"numeric": ["wert"], "categorical": ["stadt"]}
    # the run remembers how its data was read: evaluate and predict read it again so
    evaluated = runner.invoke(app, ["evaluate", str(run)])
    assert evaluated.exit_code == 0, evaluated.output
    predicted = runner.invoke(app, ["predict", str(run), "--data", str(path), "--split", "all"])
    assert predicted.exit_code == 0 and len(predicted.stdout.splitlines()) == 121
    bad = runner.invoke(app, ["train", "--sep", "ab"])
    assert bad.exit_code == 2 and "expected one character" in bad.stderr
