"""Predictions as a table, and tables written atomically as CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from torchclf.data.frames import TABLE_SUFFIXES
from torchclf.data.labels import as_label_array
from torchclf.errors import ConfigError
from torchclf.files import atomic_file

if TYPE_CHECKING:
    import pandas as pd

    from torchclf.classifier import Classifier


def prediction_frame(
    classifier: Classifier,
    X: Any,
    *,
    threshold: float | Sequence[float] | None = None,
    ids: tuple[str, Any] | None = None,
    y: Any = None,
    probabilities: np.ndarray | None = None,
) -> pd.DataFrame:
    """One row per input row: ``prediction``, then ``proba_<class>`` for every class.

    For multilabel models ``prediction`` joins the predicted labels with ``|`` (empty when none).
    ``ids`` ``(name, values)`` come first, to join the rows back to their source, then ``y``,
    the true labels where they are known, as ``true`` (written as ``prediction`` is).
    ``probabilities`` ``(n, K)`` of ``X``, when computed already (by an ONNX engine, say).
    """
    import pandas as pd
    import torch

    # (n, K); the rows are encoded (and checked) once
    probs = classifier.predict_proba(X) if probabilities is None else probabilities
    task = classifier.task if threshold is None else classifier.task.with_threshold(threshold)
    predictions = task.decode(task.decide(torch.from_numpy(probs)))
    names = classifier.task.class_names
    label_sets = predictions.ndim == 2  # multilabel indicators (n, L)
    if label_sets:
        predictions = _joined(names, predictions)
    columns: dict[str, Any] = {}
    if ids is not None:
        columns[ids[0]] = np.asarray(ids[1])
    if y is not None:  # the labels as given; a multilabel row's set as a prediction's
        columns["true"] = (
            _joined(names, task.encode(y).numpy() > 0.5) if label_sets else as_label_array(y)
        )
    frame = pd.DataFrame({**columns, "prediction": predictions})
    for j, name in enumerate(names):
        frame[f"proba_{name}"] = probs[:, j]
    return frame


def _joined(names: Sequence[str], indicators: np.ndarray) -> np.ndarray:
    """Each row's labels ``(n, L)`` 0/1 as one ``"a|b"`` string."""
    return np.array(
        ["|".join(n for n, on in zip(names, row, strict=True) if on) for row in indicators]
    )


def row_ids(X: Any, positions: np.ndarray | None) -> tuple[str, np.ndarray] | None:
    """How to find each row of ``X`` again: a CSV file's ``line``, else its ``row`` position.

    ``positions`` ``(n,)``: the rows' 0-based positions in their data (None: unknown).
    """
    index = getattr(X, "index", None)
    if index is not None and index.name == "line":  # read_table's numbering of a CSV file
        return "line", index.to_numpy()
    return None if positions is None else ("row", np.asarray(positions))


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to ``path`` (``.csv``, or Parquet: ``.parquet``, ``.pq``) atomically.

    Folders are created.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"cannot write '{path}': expected a file name ending in .csv or .parquet, "
            f"got '{path.suffix or 'no suffix'}'"
        )
    with atomic_file(path) as temporary:
        if path.suffix.lower() == ".csv":
            frame.to_csv(temporary, index=False)
        else:
            frame.to_parquet(temporary, index=False)
    return path


__all__ = ["prediction_frame", "row_ids", "write_table"]
