"""Features as arrays: numeric input checked once, rows taken by position.

Data becomes tensors once, before the loop; these are the checks and the row selection that
every way of training shares.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

from torchclf.data.frames import as_pandas
from torchclf.errors import DataError


def as_features(
    X: Any, *, n_features: int | None = None, name: str = "X", dtype: Any = np.float32
) -> tuple[np.ndarray, list[str] | None]:
    """Validate features and return them as a C-contiguous ``(n, d)`` array of ``dtype``.

    Accepts NumPy arrays, nested lists, torch tensors and pandas DataFrames (whose column names are
    returned as feature names). Rejects non-numeric, NaN and infinite values and, when
    ``n_features`` is given, the wrong number of columns, each with a message that says where.
    """
    feature_names = None
    X = as_pandas(X)
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


def take_rows(values: Any, rows: np.ndarray) -> Any:
    """``values[rows]`` for arrays and tensors, DataFrames (by position) and lists."""
    if hasattr(values, "iloc"):
        return values.iloc[rows]
    if isinstance(values, list):
        return [values[i] for i in rows]
    return values[rows]


def check_sample_weight(sample_weight: Any, n_rows: int) -> np.ndarray | None:
    """``(n,)`` float64 weights, or None; negative, non-finite or all-zero weights are an error."""
    if sample_weight is None:
        return None
    weights = np.asarray(sample_weight, dtype=np.float64).reshape(-1)
    if len(weights) != n_rows:
        raise DataError(f"sample_weight has {len(weights)} values but X has {n_rows} rows")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise DataError("sample_weight must hold finite, non-negative numbers")
    if weights.sum() == 0:
        raise DataError("sample_weight is zero for every row: nothing to learn from")
    return weights


def check_feature_names(names: Sequence[str] | None, n_columns: int) -> list[str] | None:
    """The names as strings, one per column of ``X``, or None."""
    if names is None:
        return None
    names = [str(name) for name in names]
    if len(names) != n_columns:
        raise DataError(
            f"feature_names has {len(names)} names but X has {n_columns} columns; give one name "
            "per column"
        )
    return names


__all__ = ["as_features", "check_feature_names", "check_sample_weight", "take_rows"]
