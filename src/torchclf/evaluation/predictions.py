"""Predictions as a table, and tables written atomically as CSV or Parquet."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from torchclf.errors import ConfigError
from torchclf.files import atomic_file

if TYPE_CHECKING:
    import pandas as pd

    from torchclf.classifier import Classifier

TABLE_SUFFIXES = (".csv", ".parquet")


def prediction_frame(
    classifier: Classifier, X: Any, *, threshold: float | Sequence[float] | None = None
) -> pd.DataFrame:
    """One row per input row: ``prediction``, then ``proba_<class>`` for every class.

    For multilabel models ``prediction`` joins the predicted labels with ``|`` (empty when none).
    """
    import pandas as pd
    import torch

    probs = classifier.predict_proba(X)  # (n, K); the rows are encoded (and checked) once
    task = classifier.task if threshold is None else classifier.task.with_threshold(threshold)
    predictions = task.decode(task.decide(torch.from_numpy(probs)))
    names = classifier.task.class_names
    if predictions.ndim == 2:  # multilabel indicators (n, L)
        predictions = np.array(
            ["|".join(n for n, on in zip(names, row, strict=True) if on) for row in predictions]
        )
    frame = pd.DataFrame({"prediction": predictions})
    for j, name in enumerate(names):
        frame[f"proba_{name}"] = probs[:, j]
    return frame


def write_table(frame: pd.DataFrame, path: str | os.PathLike[str]) -> Path:
    """Write ``frame`` to ``path`` (``.csv`` or ``.parquet``) atomically; folders are created."""
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


__all__ = ["prediction_frame", "write_table"]
