import re

import numpy as np
import pytest
import sklearn.datasets

from torchclf import ConfigError, datasets

EXPECTED = {
    # name: (n_samples, n_features, task, n_classes or labels)
    "circles": (1000, 2, "binary", 2),
    "moons": (1000, 2, "binary", 2),
    "blobs": (1000, 2, "multiclass", 4),
    "spirals": (300, 2, "multiclass", 3),
    "xor": (1000, 2, "binary", 2),
    "multilabel": (1000, 2, "multilabel", 4),
    "iris": (150, 4, "multiclass", 3),
    "wine": (178, 13, "multiclass", 3),
    "breast_cancer": (569, 30, "binary", 2),
    "digits": (1797, 64, "multiclass", 10),
}


@pytest.mark.parametrize("name", list(EXPECTED))
def test_each_dataset_has_its_shape_task_and_names(name):
    n, d, task, k = EXPECTED[name]
    data = datasets.load(name)
    assert data.X.shape == (n, d)
    assert data.X.dtype == np.float32
    assert data.task == task
    assert len(data.feature_names) == d
    assert len(data.class_names) == k
    if task == "multilabel":
        assert data.y.shape == (n, k)
        assert set(np.unique(data.y)) == {0, 1}
    else:
        assert data.y.shape == (n,)
        assert set(np.unique(data.y)) == set(range(k))
        assert list(np.unique(data.labels)) == sorted(data.class_names)


@pytest.mark.parametrize("name", ["circles", "moons", "blobs", "spirals", "xor", "multilabel"])
def test_generators_are_reproducible_from_a_seed(name):
    a, b, c = datasets.load(name, seed=1), datasets.load(name, seed=1), datasets.load(name, seed=2)
    assert np.array_equal(a.X, b.X) and np.array_equal(a.y, b.y)
    assert not np.array_equal(a.X, c.X)


def test_circles_blobs_are_the_tutorials_data():
    X, y = sklearn.datasets.make_circles(n_samples=1000, noise=0.03, random_state=42)
    circles = datasets.load("circles")
    assert np.array_equal(circles.X, X.astype(np.float32)) and np.array_equal(circles.y, y)
    X, y = sklearn.datasets.make_blobs(
        n_samples=1000, n_features=2, centers=4, cluster_std=1.5, random_state=42
    )
    blobs = datasets.load("blobs")
    assert np.array_equal(blobs.X, X.astype(np.float32)) and np.array_equal(blobs.y, y)


def test_spirals_follow_the_cs231n_recipe():
    data = datasets.make_spirals(n_per_class=50, n_classes=5, noise=0.0)
    radius = np.hypot(data.X[:, 0], data.X[:, 1])
    # Each arm runs from the centre (r = 0) out to r = 1, with angles 4j .. 4(j + 1).
    for arm in range(5):
        r = radius[data.y == arm]
        assert r[0] == pytest.approx(0.0, abs=1e-6) and r[-1] == pytest.approx(1.0, abs=1e-6)
    assert data.X.shape == (250, 2)


def test_xor_labels_are_the_quadrants():
    data = datasets.make_xor(n_samples=500, noise=0.0)
    assert np.array_equal(data.y, (data.X[:, 0] * data.X[:, 1] > 0).astype(int))


def test_blobs_parameters():
    data = datasets.load("blobs", n_classes=3, n_features=5, n_samples=90)
    assert data.X.shape == (90, 5) and data.class_names == ("blob_0", "blob_1", "blob_2")


def test_unknown_dataset_names_the_choices_and_the_closest():
    message = (
        "The 'dataset' parameter must be one of ['circles', 'moons', 'blobs', 'spirals', 'xor', "
        "'multilabel', 'iris', 'wine', 'breast_cancer', 'digits']. Got 'circle' instead. "
        "Did you mean 'circles'?"
    )
    with pytest.raises(ConfigError, match=re.escape(message)):
        datasets.load("circle")


def test_unknown_parameter_is_named():
    message = "dataset 'iris' takes no parameters ['noise']; it takes none"
    with pytest.raises(ConfigError, match=re.escape(message)):
        datasets.load("iris", noise=0.1)
    assert datasets.list_datasets() == list(EXPECTED)
