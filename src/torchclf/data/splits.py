"""Stratified splits: train and test, a validation holdout, and cross-fitting folds."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from torchclf.data.arrays import as_features
from torchclf.errors import ConfigError, DataError


@dataclass(frozen=True)
class Split:
    """Features and targets split into train, test and (optionally) validation parts.

    Features are float32 arrays (or DataFrames, for tables); targets are label arrays, label
    lists or indicator matrices, as given.
    """

    X_train: Any
    X_test: Any
    y_train: Any
    y_test: Any
    X_val: Any = None  # only when a validation_size was asked for
    y_val: Any = None
    test_rows: np.ndarray | None = None  # (n_test,) the test rows' positions in the data split


def split_indices(
    n_samples: int,
    test_size: float,
    *,
    stratify: np.ndarray | None,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Shuffled train and test row indices, stratified by ``stratify`` when it is given.

    ``stratify`` is ``(n,)`` labels, or an ``(n, L)`` multilabel indicator matrix, which is
    stratified by its rows' label combinations when every combination occurs at least twice
    (otherwise the split is plain random).
    """
    from sklearn.model_selection import train_test_split as sk_split

    if not 0.0 < test_size < 1.0:
        raise ConfigError(
            f"The 'test_size' parameter must be in (0, 1). Got {test_size!r} instead."
        )
    n_test = int(np.ceil(test_size * n_samples))
    if n_test < 1 or n_samples - n_test < 1:
        raise DataError(
            f"cannot split {n_samples} rows with test_size={test_size}: one side would be empty"
        )
    groups = stratify
    if groups is not None and groups.ndim == 2:
        _, groups = np.unique(groups, axis=0, return_inverse=True)
        groups = groups.reshape(-1)
        if np.bincount(groups).min() < 2:
            groups = None
    if groups is not None:
        values, counts = np.unique(groups, return_counts=True)
        if counts.min() < 2:
            raise DataError(
                f"cannot stratify the split: class {values[counts.argmin()].item()!r} has only "
                f"{counts.min()} sample; add samples or pass stratify=False"
            )
        if n_test < len(values) or n_samples - n_test < len(values):
            raise DataError(
                f"cannot stratify {n_samples} rows with test_size={test_size}: each side needs at "
                f"least one row of each of the {len(values)} classes; use a larger test_size or "
                "stratify=False"
            )
    train, test = sk_split(
        np.arange(n_samples), test_size=test_size, random_state=seed, stratify=groups
    )
    return train, test


def holdout_indices(
    targets: np.ndarray, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Kept and held-out row indices (validation rows), stratified by encoded ``targets``.

    ``targets`` are ``(n,)`` class codes or ``(n, K)`` 0/1 columns. When some class is too rare
    to stratify, the split is plain random rather than an error: validation rows are a
    convenience, not a promise of proportions.
    """
    strata = targets.reshape(len(targets), -1)
    try:
        return split_indices(len(targets), fraction, stratify=strata, seed=seed)
    except DataError:
        return split_indices(len(targets), fraction, stratify=None, seed=seed)


def fold_indices(targets: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each row's fold ``(n,)``, 0 to ``folds - 1``, stratified by encoded ``targets``.

    ``targets`` are ``(n,)`` class codes or ``(n, K)`` 0/1 columns: classes are stratified
    (scikit-learn's StratifiedKFold), label sets only shuffled. Where some class has fewer rows
    than folds, the folds are plain shuffled rather than an error, as in :func:`holdout_indices`.
    """
    from sklearn.model_selection import KFold, StratifiedKFold

    n_rows = len(targets)
    if n_rows < folds:
        raise DataError(f"{n_rows} training rows cannot be cut into {folds} folds")
    strata = targets.reshape(n_rows, -1)
    rows = np.zeros((n_rows, 1))
    splitter: Any = KFold(folds, shuffle=True, random_state=seed)
    single_label = strata.shape[1] == 1
    if single_label and np.unique(strata[:, 0], return_counts=True)[1].min() >= folds:
        splitter = StratifiedKFold(folds, shuffle=True, random_state=seed)
    fold_of_row = np.empty(n_rows, dtype=np.int64)
    for fold, (_, held_out) in enumerate(splitter.split(rows, strata[:, 0])):
        fold_of_row[held_out] = fold
    return fold_of_row


def train_test_split(
    X: Any,
    y: Any,
    test_size: float = 0.2,
    *,
    validation_size: float = 0.0,
    stratify: bool = True,
    seed: int = 42,
) -> Split:
    """Split features and targets into reproducible train, test and optional validation parts.

    Args:
        X: features, ``(n, d)``; returned as float32 arrays.
        y: targets: labels ``(n,)`` or a multilabel indicator matrix ``(n, L)``.
        test_size: share of all rows in the test part.
        validation_size: share of all rows in the validation part (0: none), taken from what the
            test part leaves.
        stratify: keep the class proportions equal in every part.
        seed: the same seed gives the same split.
    """
    features, _ = as_features(X)
    targets = np.asarray(y.to_numpy() if hasattr(y, "to_numpy") else y)
    if len(targets) != len(features):
        raise DataError(f"X has {len(features)} rows but y has {len(targets)}; they must match")
    rest, test = split_indices(
        len(features), test_size, stratify=targets if stratify else None, seed=seed
    )
    if not 0.0 <= validation_size < 1.0 - test_size:
        raise ConfigError(
            f"The 'validation_size' parameter must be in [0, 1 - test_size) = [0, "
            f"{1.0 - test_size:g}). Got {validation_size!r} instead."
        )
    if validation_size == 0.0:
        return Split(features[rest], features[test], targets[rest], targets[test])
    train, val = split_indices(
        len(rest),
        validation_size / (1.0 - test_size),
        stratify=targets[rest] if stratify else None,
        seed=seed,
    )
    train, val = rest[train], rest[val]
    return Split(
        features[train], features[test], targets[train], targets[test], features[val], targets[val]
    )


__all__ = ["Split", "fold_indices", "holdout_indices", "split_indices", "train_test_split"]
