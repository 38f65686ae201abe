"""From arrays to tensors: feature validation, stratified splits and index batches.

Data becomes tensors once, before the loop. Batches are cut by indexing those tensors with
shuffled index batches (or plain slices for full batches), never by a per-sample ``Dataset`` and a
collate function: on tabular rows that path is 20-35x slower (``../shared/PERF_NOTES.md``).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf.errors import ConfigError, DataError


def as_features(
    X: Any, *, n_features: int | None = None, name: str = "X", dtype: Any = np.float32
) -> tuple[np.ndarray, list[str] | None]:
    """Validate features and return them as a C-contiguous ``(n, d)`` array of ``dtype``.

    Accepts NumPy arrays, nested lists, torch tensors and pandas DataFrames (whose column names are
    returned as feature names). Rejects non-numeric, NaN and infinite values and, when
    ``n_features`` is given, the wrong number of columns, each with a message that says where.
    """
    feature_names = None
    if hasattr(X, "columns") and hasattr(X, "to_numpy"):  # a pandas DataFrame
        feature_names = [str(c) for c in X.columns]
        non_numeric = [
            str(c)
            for c, kind in zip(X.columns, X.dtypes, strict=True)
            if not _is_numeric_dtype(kind)
        ]
        if non_numeric:
            raise DataError(
                f"{name} has non-numeric columns {non_numeric}; encode them as numbers first"
            )
        X = X.to_numpy(dtype=np.float64)
    elif isinstance(X, Tensor):
        X = X.detach().cpu().numpy()
    try:
        array = np.asarray(X)
        if array.dtype.kind not in "biuf":
            array = array.astype(np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name} must be numeric, got values that are not numbers: {exc}") from exc
    if array.ndim == 1:
        raise DataError(
            f"{name} must be 2-D (n_samples, n_features); got a 1-D array of {array.shape[0]} "
            "values. Reshape it with X.reshape(-1, 1) for one feature or X.reshape(1, -1) for "
            "one row"
        )
    if array.ndim != 2:
        raise DataError(f"{name} must be 2-D (n_samples, n_features); got shape {array.shape}")
    if array.shape[0] == 0:
        raise DataError(f"{name} has no rows")
    if n_features is not None and array.shape[1] != n_features:
        raise DataError(
            f"{name} has {array.shape[1]} features, but the classifier was trained on {n_features}"
        )
    given = array
    with np.errstate(over="ignore"):  # a value beyond float32's range becomes inf: named below
        array = np.ascontiguousarray(array, dtype=dtype)
    # a float64 sum is finite exactly when every value is (but for an overflow, which the
    # elementwise mask then settles), and reads the array once without writing a mask
    with np.errstate(over="ignore", invalid="ignore"):  # an overflow is settled below
        total = array.sum(dtype=np.float64)
    if np.isfinite(total):
        return array, feature_names
    finite = np.isfinite(array)
    if not finite.all():
        bad = np.argwhere(~finite)
        row, column = map(int, bad[0])
        where = f"row {row}, column {feature_names[column] if feature_names else column}"
        value = given[row, column]
        if np.isfinite(value):  # finite as given, too large for dtype
            limit = float(np.finfo(dtype).max)
            raise DataError(
                f"{name} holds {len(bad)} values too large for {np.dtype(dtype).name} (beyond "
                f"±{limit:.3g}); the first is {float(value):g} at {where}: rescale or clip them"
            )
        raise DataError(
            f"{name} holds NaN or infinite values ({len(bad)} in all; the first, {value}, at "
            f"{where}): impute or drop them"
        )
    return array, feature_names


def _is_numeric_dtype(dtype: Any) -> bool:
    try:
        return np.dtype(dtype).kind in "biuf"
    except TypeError:  # pandas extension dtypes
        return getattr(dtype, "kind", "O") in "biuf"


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


def take_rows(values: Any, rows: np.ndarray) -> Any:
    """``values[rows]`` for arrays and tensors, DataFrames (by position) and lists."""
    if hasattr(values, "iloc"):
        return values.iloc[rows]
    if isinstance(values, list):
        return [values[i] for i in rows]
    return values[rows]


class IndexBatches:
    """The batches of one epoch: row indices to cut from the data tensors.

    A full batch is the slice ``0:n`` (a view, no copy). Mini-batches are shuffled with a
    generator seeded from ``(seed, epoch)``, so any epoch's order can be recreated on its own (a
    resumed run gets the same batches). With ``world_size > 1`` each rank takes every
    ``world_size``-th row of the shared permutation, truncated to equal length, the way
    ``DistributedSampler`` shards data.
    """

    def __init__(
        self,
        n_rows: int,
        batch_size: int,
        *,
        shuffle: bool = True,
        seed: int = 0,
        drop_last: bool = False,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | None = None,
    ) -> None:
        self.n_rows = n_rows
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.rank = rank
        self.world_size = world_size
        self.device = device

    @property
    def full_batch(self) -> bool:
        """True when one batch holds every row of this rank."""
        return self.world_size == 1 and self.batch_size >= self.n_rows

    def epoch(self, epoch: int) -> Iterator[slice | Tensor]:
        """Yield the batches of ``epoch`` as slices (in order) or index tensors (shuffled)."""
        if self.full_batch:
            yield slice(0, self.n_rows)
            return
        if not self.shuffle and self.world_size == 1:
            for start in range(0, self.n_rows, self.batch_size):
                stop = min(start + self.batch_size, self.n_rows)
                if self.drop_last and stop - start < self.batch_size:
                    return
                yield slice(start, stop)
            return
        order = self._order(epoch)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            if self.drop_last and len(batch) < self.batch_size:
                return
            yield batch

    def _order(self, epoch: int) -> Tensor:
        if self.shuffle:
            state = np.random.SeedSequence([self.seed, epoch]).generate_state(1, dtype=np.uint64)
            generator = torch.Generator().manual_seed(int(state[0]) & (2**63 - 1))
            order = torch.randperm(self.n_rows, generator=generator)
        else:
            order = torch.arange(self.n_rows)
        per_rank = self.n_rows // self.world_size
        order = order[self.rank :: self.world_size][:per_rank]
        return order.to(self.device) if self.device is not None else order

    def __len__(self) -> int:
        rows = self.n_rows // self.world_size
        full, rest = divmod(rows, self.batch_size)
        return full + (1 if rest and not self.drop_last else 0)


def default_batch_size(n_rows: int, requested: int | None, full_batch_max: int) -> int:
    """``requested``, or the whole data when it has at most ``full_batch_max`` rows, else 256."""
    if requested is not None:
        return min(requested, n_rows)
    return n_rows if n_rows <= full_batch_max else 256


__all__ = [
    "IndexBatches",
    "Split",
    "as_features",
    "default_batch_size",
    "split_indices",
    "take_rows",
    "train_test_split",
]
