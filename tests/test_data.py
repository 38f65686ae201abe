import re
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

import torchclf
from torchclf import ConfigError, DataError
from torchclf.data.arrays import as_features
from torchclf.data.batches import IndexBatches, default_batch_size
from torchclf.devices import resolve_device
from torchclf.encoders import Moments


def test_split_is_stratified_and_reproducible():
    y = np.array([0] * 90 + [1] * 10)
    X = np.arange(200, dtype=float).reshape(100, 2)
    a = torchclf.train_test_split(X, y, test_size=0.2, seed=3)
    b = torchclf.train_test_split(X, y, test_size=0.2, seed=3)
    c = torchclf.train_test_split(X, y, test_size=0.2, seed=4)
    assert np.array_equal(a.X_train, b.X_train) and np.array_equal(a.y_test, b.y_test)
    assert not np.array_equal(a.X_test, c.X_test)
    assert len(a.X_train) == 80 and len(a.X_test) == 20
    assert np.bincount(a.y_test).tolist() == [18, 2]  # the 90/10 balance kept on both sides
    assert np.bincount(a.y_train).tolist() == [72, 8]
    rows = np.concatenate([a.X_train[:, 0], a.X_test[:, 0]])
    assert sorted(rows.tolist()) == X[:, 0].tolist()  # every row exactly once
    assert a.X_train.dtype == np.float32


def test_unstratified_split_equals_sklearns():
    from sklearn.model_selection import train_test_split as sk_split

    X = np.random.default_rng(0).normal(size=(50, 3)).astype(np.float32)
    y = np.arange(50) % 3
    ours = torchclf.train_test_split(X, y, test_size=0.2, stratify=False, seed=42)
    X_train, X_test, y_train, y_test = sk_split(X, y, test_size=0.2, random_state=42)
    parts = (ours.X_train, ours.X_test, ours.y_train, ours.y_test)
    for mine, theirs in zip(parts, (X_train, X_test, y_train, y_test), strict=True):
        assert np.array_equal(mine, theirs)


def test_optional_validation_part_is_stratified_and_disjoint():
    y = np.array([0] * 60 + [1] * 40)
    X = np.arange(100, dtype=float)[:, None]
    split = torchclf.train_test_split(X, y, test_size=0.2, validation_size=0.2, seed=1)
    assert (len(split.X_train), len(split.X_val), len(split.X_test)) == (60, 20, 20)
    assert np.bincount(split.y_val).tolist() == [12, 8]
    rows = np.concatenate([split.X_train, split.X_val, split.X_test])[:, 0]
    assert sorted(rows.tolist()) == X[:, 0].tolist()
    assert torchclf.train_test_split(X, y).X_val is None
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "The 'validation_size' parameter must be in [0, 1 - test_size) = [0, 0.8). Got 0.9 instead."
        ),
    ):
        torchclf.train_test_split(X, y, validation_size=0.9)


def test_multilabel_split_stratifies_label_combinations():
    y = np.array([[1, 0], [0, 1], [1, 1], [0, 0]] * 25)
    split = torchclf.train_test_split(np.zeros((100, 1)), y, test_size=0.2, seed=0)
    combos, counts = np.unique(split.y_test, axis=0, return_counts=True)
    assert len(combos) == 4 and counts.tolist() == [5, 5, 5, 5]


def test_split_errors_are_clear():
    X, y = np.zeros((10, 2)), np.array([0] * 9 + [1])
    with pytest.raises(
        DataError,
        match=re.escape(
            "cannot stratify the split: class 1 has only 1 sample; add samples or pass stratify=False"
        ),
    ):
        torchclf.train_test_split(X, y)
    with pytest.raises(
        ConfigError,
        match=re.escape("The 'test_size' parameter must be in (0, 1). Got 1.5 instead."),
    ):
        torchclf.train_test_split(X, y, test_size=1.5)
    with pytest.raises(DataError, match=re.escape("X has 10 rows but y has 3; they must match")):
        torchclf.train_test_split(X, [0, 1, 0])


def test_auto_device_is_cpu_without_accelerators():
    expected = (
        "cuda"
        if torch.cuda.is_available()
        else "mps"
        if torch.backends.mps.is_available()
        else "cpu"
    )
    assert resolve_device("auto").type == expected
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_unavailable_cuda_is_a_clear_error():
    message = "device 'cuda' was requested but CUDA is not available on this machine; use device='auto' or 'cpu'"
    with pytest.raises(ConfigError, match=re.escape(message)):
        resolve_device("cuda")


def test_invalid_device_name():
    with pytest.raises(
        ConfigError,
        match=re.escape(
            "The 'device' parameter must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'. Got 'gpu0' "
            "instead."
        ),
    ):
        resolve_device("gpu0")


def test_full_batch_is_a_view_slice():
    batches = list(IndexBatches(10, 64).epoch(1))
    assert batches == [slice(0, 10)]


def test_shuffled_batches_cover_each_row_once_and_depend_on_seed_and_epoch():
    batches = IndexBatches(103, 10, seed=7)
    epoch1 = list(batches.epoch(1))
    assert len(epoch1) == len(batches) == 11 and len(epoch1[-1]) == 3
    assert sorted(torch.cat(epoch1).tolist()) == list(range(103))
    again = torch.cat(list(IndexBatches(103, 10, seed=7).epoch(1)))
    assert torch.equal(torch.cat(epoch1), again)
    assert not torch.equal(torch.cat(epoch1), torch.cat(list(batches.epoch(2))))
    assert not torch.equal(
        torch.cat(epoch1), torch.cat(list(IndexBatches(103, 10, seed=8).epoch(1)))
    )


def test_drop_last_and_unshuffled_batches():
    assert [len(b) for b in IndexBatches(25, 10, seed=0, drop_last=True).epoch(1)] == [10, 10]
    unshuffled = list(IndexBatches(25, 10, shuffle=False).epoch(1))
    assert unshuffled == [slice(0, 10), slice(10, 20), slice(20, 25)]


def test_ranks_get_disjoint_equal_shards():
    shards = [
        torch.cat(list(IndexBatches(101, 8, seed=1, rank=r, world_size=4).epoch(3)))
        for r in range(4)
    ]
    assert all(len(s) == 25 for s in shards)
    together = torch.cat(shards).tolist()
    assert len(set(together)) == 100


def test_default_batch_size():
    assert default_batch_size(800, None, 4096) == 800
    assert default_batch_size(10_000, None, 4096) == 256
    assert default_batch_size(100, 512, 4096) == 100


def test_as_features_accepts_lists_tensors_and_frames():
    array, names = as_features([[1, 2], [3, 4]])
    assert array.dtype == np.float32 and names is None
    array, names = as_features(torch.ones(3, 2, dtype=torch.float64))
    assert array.shape == (3, 2)
    frame = pd.DataFrame({"age": [30, 40], "bmi": [22.5, 30.1]})
    array, names = as_features(frame)
    assert names == ["age", "bmi"] and array[1, 1] == np.float32(30.1)


@pytest.mark.parametrize(
    ("X", "message"),
    [
        pytest.param(
            np.zeros(5),
            "X must be 2-D (n_samples, n_features); got a 1-D array of 5 values. Reshape it with "
            "X.reshape(-1, 1) for one feature or X.reshape(1, -1) for one row",
            id="1d",
        ),
        pytest.param(
            np.array([[1.0, np.nan], [np.inf, 2.0]]),
            "X holds NaN or infinite values (2 in all; the first, nan, at row 0, column 1): impute or drop them",
            id="nan",
        ),
        pytest.param(
            np.array([[1.0, 2.0], [1e308, -1e300]]),
            "X holds 2 values too large for float32 (beyond ±3.4e+38); the first is 1e+308 at "
            "row 1, column 0: rescale or clip them",
            id="float32-overflow",
        ),
        pytest.param(
            pd.DataFrame({"a": [1.0], "city": ["Oslo"]}),
            "X has non-numeric columns ['city']; encode them as numbers first",
            id="strings",
        ),
        pytest.param(np.zeros((0, 3)), "X has no rows", id="empty"),
    ],
)
def test_bad_features_name_the_problem(X, message):
    with pytest.raises(DataError, match=re.escape(message)):
        as_features(X)


def test_wrong_number_of_features():
    with pytest.raises(
        DataError, match=re.escape("X has 3 features, but the classifier was trained on 2")
    ):
        as_features(np.zeros((4, 3)), n_features=2)


@pytest.mark.parametrize("chunk_rows", [7, 8192])
def test_chunked_moments_equal_numpys_float64_statistics(monkeypatch, chunk_rows):
    # a large offset is where a one-pass sum of squares would lose digits; 1000 rows are not a
    # multiple of 7, so the last chunk is short
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(1000, 3)) * [1.0, 0.01, 100.0] + [1e6, -3.0, 0.0]).astype(np.float32)
    monkeypatch.setattr(Moments, "CHUNK_ROWS", chunk_rows)
    moments = Moments(3)
    moments.update(X[:400])
    moments.update(X[400:])
    assert moments.count == 1000
    np.testing.assert_allclose(moments.mean, X.mean(axis=0, dtype=np.float64), rtol=1e-14)
    np.testing.assert_allclose(moments.std, X.std(axis=0, dtype=np.float64), rtol=1e-10)


def test_huge_finite_values_pass_even_where_their_sum_overflows():
    X = np.full((4, 2), 1e308)  # the float64 sum is inf; every value is finite
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and the overflow is not reported to the user
        features, _ = as_features(X, dtype=np.float64)
    assert features is X or np.array_equal(features, X)
    X[2, 1] = np.inf
    with pytest.raises(DataError, match=r"row 2, column 1"):
        as_features(X, dtype=np.float64)
