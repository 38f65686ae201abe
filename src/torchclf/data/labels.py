"""Reading targets: label arrays, label collections and multilabel indicator matrices.

Pure NumPy helpers below the tasks: they turn whatever a user passes as ``y`` (a list, an array,
a pandas Series or DataFrame, a tensor, or rows of label lists) into arrays, and reject missing
values with a message that says where they are.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from torch import Tensor

from torchclf.data.frames import as_pandas
from torchclf.errors import DataError


def plain(values: np.ndarray) -> list[Any]:
    """Numpy labels as JSON-ready Python values (np.int64 -> int, np.str_ -> str, ...)."""
    return [v.item() if isinstance(v, np.generic) else v for v in values]


def is_label_sets(y: np.ndarray) -> bool:
    """True for a 1-D sequence whose items are label collections (lists, tuples, sets)."""
    return (
        y.ndim == 1
        and y.dtype == object
        and len(y) > 0
        and isinstance(y[0], (list, tuple, set, frozenset))
    )


def as_label_array(y: Any) -> np.ndarray:
    """Targets as an array; rows of label collections stay a 1-D object array."""
    y = as_pandas(y)  # a polars or pyarrow series
    if hasattr(y, "to_numpy"):  # pandas Series / DataFrame
        y = y.to_numpy()
    if isinstance(y, Tensor):
        y = y.detach().cpu().numpy()
    if isinstance(y, (list, tuple)) and y and isinstance(y[0], (list, tuple, set, frozenset)):
        # Ragged collections of labels: keep one Python object per row.
        as_objects = np.empty(len(y), dtype=object)
        as_objects[:] = [list(row) for row in y]
        if len({len(row) for row in as_objects}) == 1 and not any(
            isinstance(v, str) for row in as_objects for v in row
        ):
            return np.asarray(y)  # rectangular numbers: an indicator matrix
        return as_objects
    return np.asarray(y)


def indicator_matrix(y: Any, label_names: np.ndarray) -> np.ndarray:
    """Multilabel targets -> ``(n, L)`` 0/1 matrix in the order of ``label_names``."""
    y = as_label_array(y)
    if is_label_sets(y):
        position = {str(name): i for i, name in enumerate(label_names)}
        indicator = np.zeros((len(y), len(label_names)), dtype=np.int64)
        for row, labels in enumerate(y):
            for label in labels:
                if str(label) not in position:
                    raise DataError(
                        f"y row {row} holds the label {label!r}, which is not among the "
                        f"labels {[str(n) for n in label_names]}"
                    )
                indicator[row, position[str(label)]] = 1
        return indicator
    if y.ndim != 2 or y.shape[1] != len(label_names):
        raise DataError(
            f"multilabel y must be an indicator matrix of shape (n_samples, {len(label_names)}); "
            f"got shape {y.shape}"
        )
    values = np.unique(y)
    if not np.isin(values, [0, 1]).all():
        raise DataError(
            "a multilabel indicator y may hold only 0 and 1 (or booleans); found "
            f"{values[:5].tolist()}"
        )
    return y.astype(np.int64)


def check_no_missing(y: np.ndarray) -> None:
    """Raise a :class:`DataError` naming the rows if ``y`` holds NaN or None."""
    if y.dtype.kind == "f":
        missing = np.isnan(y)
    elif y.dtype == object:
        missing = np.array([v is None or (isinstance(v, float) and v != v) for v in y])
    else:
        return
    if missing.any():
        rows = np.flatnonzero(missing)[:5].tolist()
        raise DataError(
            f"y has {int(missing.sum())} missing values (rows {rows}...); drop those rows or fill "
            "them"
        )


__all__ = ["as_label_array", "check_no_missing", "indicator_matrix", "is_label_sets", "plain"]
