"""Encoders: raw inputs in, the model's feature matrix out, fitted on training rows only.

- :class:`ArrayEncoder` takes numeric arrays (NumPy, lists, tensors) and standardizes them.
- :class:`TableEncoder` takes pandas frames of mixed columns: numeric columns are imputed with
  their median (plus a missing-indicator column where training had gaps) and standardized;
  categorical columns (text, booleans, or any column named in ``categorical``) are one-hot
  encoded, with a category for missing values and an "other" slot for rare and unseen values.

- ``base``: the :class:`Encoder` interface; ``arrays``: :class:`ArrayEncoder`; ``tables``:
  :class:`TableEncoder` and its columns.

Their fitted state travels in the model file as JSON and tensors, never as a pickle, and
``transform`` validates what it is given, so a loaded model takes raw rows.
"""

from __future__ import annotations

from typing import Any

from torch import Tensor

from torchclf.encoders.arrays import ArrayEncoder, Moments
from torchclf.encoders.base import Encoder
from torchclf.encoders.tables import (
    MISSING,
    OTHER,
    CategoricalColumn,
    NumericColumn,
    TableEncoder,
    row_label,
)
from torchclf.errors import ModelFileError


def encoder_from_state(meta: dict[str, Any], tensors: dict[str, Tensor]) -> Encoder:
    """Rebuild an encoder from :meth:`Encoder.to_state` (as read from a model file)."""
    try:
        if meta["kind"] == "array":
            names = meta.get("names")
            mean, scale = tensors["mean"].numpy(), tensors["scale"].numpy()
            dtype = meta.get("dtype", str(mean.dtype))
            clip, edges = meta.get("clip", 0.0), meta.get("edges")
            return ArrayEncoder(mean, scale, names, dtype, clip=clip, edges=edges)
        if meta["kind"] == "table":
            columns: list[NumericColumn | CategoricalColumn] = []
            for values in meta["columns"]:
                values = dict(values)
                kind = values.pop("kind")
                columns.append(
                    NumericColumn(**values) if kind == "numeric" else CategoricalColumn(**values)
                )
            return TableEncoder(columns, meta.get("dtype", "float32"))
    except (KeyError, TypeError) as exc:
        raise ModelFileError(
            f"the model file's preprocessing state is incomplete: {exc!r}"
        ) from exc
    raise ModelFileError(f"the model file has an unknown preprocessing kind {meta.get('kind')!r}")


__all__ = [
    "MISSING",
    "OTHER",
    "ArrayEncoder",
    "CategoricalColumn",
    "Encoder",
    "Moments",
    "NumericColumn",
    "TableEncoder",
    "encoder_from_state",
    "row_label",
]
