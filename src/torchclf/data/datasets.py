"""Built-in datasets: the tutorial's toy problems and scikit-learn's bundled real tables.

Every generator is reproducible from ``seed`` and returns a :class:`ClassificationDataset`. The
real datasets (iris, wine, breast_cancer, digits) ship inside scikit-learn, so nothing is
downloaded at run time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from torchclf.config import check_choice
from torchclf.errors import ConfigError


@dataclass(frozen=True)
class ClassificationDataset:
    """Features and targets of one dataset.

    Attributes:
        name: the registry name, e.g. "circles".
        X: ``(n, d)`` float32 features.
        y: ``(n,)`` integer class codes, or an ``(n, L)`` 0/1 matrix for multilabel.
        feature_names: d column names.
        class_names: the name of each class code (or of each label column).
        task: "binary", "multiclass" or "multilabel".
        description: one line on where the data comes from.
    """

    name: str
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    class_names: tuple[str, ...]
    task: str
    description: str = ""

    @property
    def labels(self) -> np.ndarray:
        """Targets in named form: class names ``(n,)``, or the 0/1 matrix for multilabel."""
        if self.y.ndim == 2:
            return self.y
        return np.asarray(self.class_names)[self.y]

    def __len__(self) -> int:
        return len(self.X)

    def __repr__(self) -> str:
        return (
            f"ClassificationDataset(name={self.name!r}, task={self.task!r}, "
            f"n_samples={len(self.X)}, "
            f"n_features={self.X.shape[1]}, classes={list(self.class_names)})"
        )


def _dataset(
    name: str,
    X: np.ndarray,
    y: np.ndarray,
    class_names: tuple[str, ...],
    description: str,
    feature_names: tuple[str, ...] | None = None,
    task: str | None = None,
) -> ClassificationDataset:
    if task is None:
        task = "binary" if len(class_names) == 2 else "multiclass"
    return ClassificationDataset(
        name=name,
        X=np.ascontiguousarray(X, dtype=np.float32),
        y=np.asarray(y, dtype=np.int64),
        feature_names=feature_names or tuple(f"x{i}" for i in range(X.shape[1])),
        class_names=class_names,
        task=task,
        description=description,
    )


def make_circles(
    n_samples: int = 1000, noise: float = 0.03, factor: float = 0.8, seed: int = 42
) -> ClassificationDataset:
    """A small circle inside a large one (sklearn's ``make_circles``); class 1 is the inner one.

    The defaults are the tutorial's: 1000 samples, noise 0.03, seed 42.
    """
    from sklearn.datasets import make_circles as sk_make_circles

    X, y = sk_make_circles(n_samples=n_samples, noise=noise, factor=factor, random_state=seed)
    return _dataset("circles", X, y, ("outer", "inner"), "two concentric circles (sklearn)")


def make_moons(n_samples: int = 1000, noise: float = 0.03, seed: int = 42) -> ClassificationDataset:
    """Two interleaving half circles (sklearn's ``make_moons``)."""
    from sklearn.datasets import make_moons as sk_make_moons

    X, y = sk_make_moons(n_samples=n_samples, noise=noise, random_state=seed)
    return _dataset("moons", X, y, ("upper", "lower"), "two interleaving half circles (sklearn)")


def make_blobs(
    n_samples: int = 1000,
    n_classes: int = 4,
    n_features: int = 2,
    cluster_std: float = 1.5,
    seed: int = 42,
) -> ClassificationDataset:
    """Gaussian clusters, one per class (sklearn's ``make_blobs``): the tutorial's 4 blobs."""
    from sklearn.datasets import make_blobs as sk_make_blobs

    X, y = sk_make_blobs(
        n_samples=n_samples,
        n_features=n_features,
        centers=n_classes,
        cluster_std=cluster_std,
        random_state=seed,
    )
    names = tuple(f"blob_{i}" for i in range(n_classes))
    return _dataset("blobs", X, y, names, f"{n_classes} Gaussian blobs (sklearn)")


def make_spirals(
    n_per_class: int = 100, n_classes: int = 3, noise: float = 0.2, seed: int = 42
) -> ClassificationDataset:
    """The CS231n spirals: ``n_classes`` arms of ``n_per_class`` points each.

    Arm ``j`` has radius ``r = linspace(0, 1)`` and angle ``t = linspace(4j, 4(j + 1)) +
    noise * N(0, 1)``, drawn as ``(r sin t, r cos t)``.
    """
    rng = np.random.default_rng(seed)
    X = np.zeros((n_per_class * n_classes, 2))
    y = np.repeat(np.arange(n_classes), n_per_class)
    for arm in range(n_classes):
        rows = slice(arm * n_per_class, (arm + 1) * n_per_class)
        radius = np.linspace(0.0, 1.0, n_per_class)
        angle = (
            np.linspace(arm * 4, (arm + 1) * 4, n_per_class) + rng.normal(size=n_per_class) * noise
        )
        X[rows] = np.c_[radius * np.sin(angle), radius * np.cos(angle)]
    names = tuple(f"arm_{i}" for i in range(n_classes))
    return _dataset("spirals", X, y, names, f"{n_classes} interleaved spirals (CS231n)")


def make_xor(n_samples: int = 1000, noise: float = 0.05, seed: int = 42) -> ClassificationDataset:
    """Points in the square [-1, 1]^2, class 1 where both coordinates have the same sign.

    No linear model can beat chance on it. ``noise`` is the standard deviation of Gaussian jitter
    added to the points after labelling, which blurs the axes.
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.0, 1.0, size=(n_samples, 2))
    y = (X[:, 0] * X[:, 1] > 0).astype(np.int64)
    X = X + rng.normal(scale=noise, size=X.shape)
    return _dataset("xor", X, y, ("different_sign", "same_sign"), "the XOR quadrants")


def make_multilabel(
    n_samples: int = 1000, noise: float = 0.05, seed: int = 42
) -> ClassificationDataset:
    """A two-feature multi-label set whose four labels need non-linear boundaries but one.

    Points are uniform in [-1.5, 1.5]^2; the labels are ``inner`` (inside the unit circle),
    ``wave`` (above ``y = 0.6 sin(2x)``), ``same_sign`` (the XOR quadrants) and ``right`` (``x >
    0.3``, the one a linear model can learn). ``noise`` jitters the points after labelling.
    """
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1.5, 1.5, size=(n_samples, 2))
    x0, x1 = X[:, 0], X[:, 1]
    y = np.stack(
        [x0**2 + x1**2 < 1.0, x1 > 0.6 * np.sin(2 * x0), x0 * x1 > 0, x0 > 0.3], axis=1
    ).astype(np.int64)
    X = X + rng.normal(scale=noise, size=X.shape)
    return _dataset(
        "multilabel",
        X,
        y,
        ("inner", "wave", "same_sign", "right"),
        "four overlapping labels on a 2-D square",
        task="multilabel",
    )


def _sklearn_real(name: str) -> Callable[[], ClassificationDataset]:
    def loader() -> ClassificationDataset:
        import sklearn.datasets

        bunch = getattr(sklearn.datasets, f"load_{name}")()
        return _dataset(
            name,
            bunch.data,
            bunch.target,
            tuple(str(c) for c in bunch.target_names),
            f"scikit-learn's bundled {name.replace('_', ' ')} data",
            feature_names=tuple(str(f) for f in getattr(bunch, "feature_names", [])) or None,
        )

    loader.__name__ = f"load_{name}"
    loader.__doc__ = f"scikit-learn's bundled ``{name}`` dataset (no download)."
    return loader


load_iris = _sklearn_real("iris")
load_wine = _sklearn_real("wine")
load_breast_cancer = _sklearn_real("breast_cancer")
load_digits = _sklearn_real("digits")

DATASETS: dict[str, Callable[..., ClassificationDataset]] = {
    "circles": make_circles,
    "moons": make_moons,
    "blobs": make_blobs,
    "spirals": make_spirals,
    "xor": make_xor,
    "multilabel": make_multilabel,
    "iris": load_iris,
    "wine": load_wine,
    "breast_cancer": load_breast_cancer,
    "digits": load_digits,
}


def list_datasets() -> list[str]:
    """The names accepted by :func:`load`."""
    return list(DATASETS)


def load(name: str, **params: Any) -> ClassificationDataset:
    """A built-in dataset by name, e.g. ``load("blobs", n_classes=3, seed=0)``.

    Raises:
        ConfigError: for an unknown name (listing the choices) or a parameter the generator does
            not take.
    """
    check_choice("dataset", name, DATASETS)
    generator = DATASETS[name]
    import inspect

    accepted = set(inspect.signature(generator).parameters)
    unknown = sorted(set(params) - accepted)
    if unknown:
        raise ConfigError(
            f"dataset {name!r} takes no parameters {unknown}; it takes {sorted(accepted) or 'none'}"
        )
    return generator(**params)


# fit's keywords for the lesson's own settings (its numbers: README, "The tutorial, reproduced"):
# plain SGD on raw features, every training row trained for a fixed budget, one network
TUTORIAL: dict[str, Any] = {
    "optimizer": "sgd",
    "lr": 0.1,
    "standardize": False,
    "validation_fraction": 0.0,
    "weight_decay": 0.0,
    "prior_bias": False,  # nn.Linear's own initial bias, as the lesson's models
    "ensemble": 1,  # one network, as the lesson's
}


__all__ = [
    "DATASETS",
    "TUTORIAL",
    "ClassificationDataset",
    "list_datasets",
    "load",
    "load_breast_cancer",
    "load_digits",
    "load_iris",
    "load_wine",
    "make_blobs",
    "make_circles",
    "make_moons",
    "make_multilabel",
    "make_spirals",
    "make_xor",
]
