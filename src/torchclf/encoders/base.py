"""The encoder interface: raw inputs in, the model's features out, state saved as JSON + tensors."""

from __future__ import annotations

import warnings
from abc import ABC, abstractmethod
from typing import Any, ClassVar

import numpy as np
from torch import Tensor

from torchclf.errors import DataError, TorchclfWarning


class Encoder(ABC):
    """Raw inputs -> ``(n, n_outputs)`` features (float32, or float64 on request)."""

    kind: ClassVar[str]

    @property
    @abstractmethod
    def input_names(self) -> list[str] | None:
        """Names of the raw input columns, when known."""

    @property
    @abstractmethod
    def n_inputs(self) -> int:
        """How many raw input columns."""

    @property
    @abstractmethod
    def n_outputs(self) -> int:
        """How many features the model receives."""

    @abstractmethod
    def describe(self) -> str:
        """One line on what the encoding does, for ``torchclf info``."""

    @abstractmethod
    def embedded_columns(self) -> np.ndarray:
        """``(n_outputs,)`` bool: True where a plain logistic regression would see nothing.

        That is a numeric column's piecewise-linear bins, and a categorical column's code.
        """

    def category_counts(self) -> tuple[int, ...]:
        """Each code feature's number of categories: the last ``len(...)`` of the outputs."""
        return ()

    @abstractmethod
    def baseline(self) -> Any:
        """One typical row, as :meth:`transform` takes it: what an attribution starts from."""

    @abstractmethod
    def column_features(self) -> list[tuple[str, list[int]]]:
        """Each input column's name and the outputs it becomes, in the inputs' order.

        A numeric column is its scaled value, its missing-value indicator and its
        piecewise-linear bins; a categorical one, its one-hot slots or its code: what
        explaining a prediction takes as one column.
        """

    @abstractmethod
    def probe(self) -> Any:
        """A few rows this encoder must encode: checks a loaded model file (``load``)."""

    @abstractmethod
    def transform(self, X: Any, *, warn: bool = True) -> np.ndarray:
        """Validate and encode ``X``; ``warn`` reports unseen categories and ignored columns."""

    @abstractmethod
    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        """JSON metadata and tensors to save with the model."""


def select_columns(X: Any, names: list[str], warn: bool) -> Any:
    """The training columns of a frame, in training order; missing ones are an error."""
    by_name = {str(c): c for c in X.columns}
    missing = [n for n in names if n not in by_name]
    if missing:
        raise DataError(
            f"the data lacks the feature columns {missing} that the model was trained on "
            f"(it has {list(by_name)})"
        )
    extra = [n for n in by_name if n not in names]
    if extra and warn:
        warnings.warn(
            f"ignoring {len(extra)} columns the model does not use: {extra}",
            TorchclfWarning,
            stacklevel=4,
        )
    return X[[by_name[n] for n in names]].set_axis(names, axis=1)


__all__ = ["Encoder", "select_columns"]
