"""Numeric arrays, scaled with the training rows' (weighted) mean and deviation, or robustly."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf.data.arrays import as_features
from torchclf.encoders.base import Encoder, select_columns
from torchclf.encoders.tables import (
    SMOOTH_CLIP,
    choose_edges,
    describe_numbers,
    piecewise_linear,
    piecewise_width,
    robust_statistics,
    smooth_clip,
)
from torchclf.errors import TorchclfWarning


class Moments:
    """Per-column count, mean and summed squared deviations, merged chunk by chunk in float64.

    Chan et al.'s parallel update: each chunk of rows is converted to float64 on its own (it
    stays in cache, and no float64 copy of the whole array is made), and its two-pass mean and
    squared deviations are merged into the running ones. As exact as NumPy's two-pass
    ``std(dtype=float64)``, at under half its time.
    """

    CHUNK_ROWS = 8192  # rows converted to float64 at once: 2 MiB for 32 columns

    def __init__(self, n_columns: int) -> None:
        self.count = 0
        self.mean = np.zeros(n_columns)  # (d,)
        self.squares = np.zeros(n_columns)  # (d,) summed squared deviations from the mean

    def update(self, X: np.ndarray) -> None:
        """Merge the rows of ``X`` ``(n, d)``."""
        for start in range(0, len(X), self.CHUNK_ROWS):
            part = X[start : start + self.CHUNK_ROWS].astype(np.float64)  # (c, d), a copy
            n = len(part)
            part_mean = part.mean(axis=0)
            part -= part_mean
            part_squares = np.einsum("ij,ij->j", part, part)
            delta = part_mean - self.mean
            total = self.count + n
            self.mean = self.mean + delta * n / total
            self.squares = self.squares + part_squares + delta**2 * self.count * n / total
            self.count = total

    @property
    def std(self) -> np.ndarray:
        """The population standard deviation ``(d,)`` (ddof 0, as StandardScaler)."""
        return np.sqrt(self.squares / self.count)


class ArrayEncoder(Encoder):
    """Numeric arrays, standardized with the training rows' mean and standard deviation.

    Or robustly (``scaling="robust"``): ``mean`` holds the medians and ``scale`` the
    interquartile ranges, and ``clip`` > 0 squashes each scaled value smoothly into
    ``(-clip, clip)`` (:func:`torchclf.encoders.tables.robust_statistics`).
    """

    kind = "array"

    def __init__(
        self,
        mean: np.ndarray,
        scale: np.ndarray,
        names: list[str] | None,
        dtype: Any = "float32",
        clip: float = 0.0,
        edges: Sequence[Sequence[float]] | None = None,
    ) -> None:
        self.dtype = np.dtype(dtype)  # float32, or float64 for exact arithmetic
        self.mean = mean.astype(self.dtype)  # (n_features,) the centres
        self.scale = scale.astype(self.dtype)  # (n_features,), never 0
        self.names = names
        self.clip = float(clip)  # bound of the smooth clip; 0: none
        # each feature's piecewise-linear bins' edges (torchclf.encoders.tables); [] for none
        self.edges = [list(e) for e in edges] if edges else [[] for _ in range(len(mean))]

    @property
    def transforms_whole(self) -> bool:
        """Features need :meth:`transform`, not just ``(x - mean) / scale`` batch by batch."""
        return self.clip > 0 or any(self.edges)

    @classmethod
    def fit(
        cls,
        X: np.ndarray,
        *,
        standardize: bool = True,
        names: Sequence[str] | None = None,
        sample_weight: np.ndarray | None = None,
        scaling: str = "standard",
        numeric_embedding: str = "none",
        dtype: Any = "float32",
    ) -> ArrayEncoder:
        """Learn the (weighted) statistics of ``X`` ``(n, d)`` in float64, or none at all.

        ``scaling`` and ``numeric_embedding`` as :meth:`TableEncoder.fit`'s, but "auto" embeds
        no array: arrays are the lesson's tensors (and scikit-learn's), trained as given;
        "piecewise_linear" embeds them too.
        """
        names = list(names) if names is not None else None
        edges: list[list[float]] | None = None
        if numeric_embedding == "piecewise_linear":  # "auto" embeds no array (see above)
            edges = choose_edges(list(X.T.astype(np.float64)), len(X), numeric_embedding)
        if not standardize:
            return cls(np.zeros(X.shape[1]), np.ones(X.shape[1]), names, dtype, edges=edges)
        if scaling == "robust":
            values = X.astype(np.float64)
            centres, spreads = zip(
                *(robust_statistics(column, sample_weight) for column in values.T), strict=True
            )
            return cls(np.array(centres), np.array(spreads), names, dtype, SMOOTH_CLIP, edges=edges)
        if sample_weight is None:  # float64 accumulation without a float64 copy of X
            moments = Moments(X.shape[1])
            moments.update(X)
            mean, std = moments.mean, moments.std
        else:
            values = X.astype(np.float64)
            mean = np.average(values, axis=0, weights=sample_weight)
            std = np.sqrt(np.average((values - mean) ** 2, axis=0, weights=sample_weight))
        encoder = cls.from_statistics(mean, std, names, dtype)
        if edges is not None:
            encoder.edges = edges
        return encoder

    @classmethod
    def from_statistics(
        cls, mean: np.ndarray, std: np.ndarray, names: list[str] | None, dtype: Any = "float32"
    ) -> ArrayEncoder:
        """The encoder for features with this mean and standard deviation ``(n_features,)``."""
        scale = np.where(std < 1e-12, 1.0, std)  # a constant column is only centred
        return cls(mean, scale, names, dtype)

    @property
    def input_names(self) -> list[str] | None:
        return self.names

    @property
    def n_inputs(self) -> int:
        return len(self.mean)

    @property
    def n_outputs(self) -> int:
        return len(self.mean) + sum(piecewise_width(e) for e in self.edges)

    def describe(self) -> str:
        return describe_numbers(self.edges, "robustly scaled" if self.clip else "standardized")

    def probe(self) -> np.ndarray:
        """One row at the centre and one far out: ``(2, n_inputs)``."""
        return np.stack([np.asarray(self.mean, dtype=np.float64), np.full(self.n_inputs, 1e3)])

    def baseline(self) -> np.ndarray:
        """One row ``(1, n_inputs)``: the training centres (means; medians if robust)."""
        return np.asarray(self.mean, dtype=np.float64)[None, :]

    def column_features(self) -> list[tuple[str, list[int]]]:
        names = self.names or [f"x{index}" for index in range(self.n_inputs)]
        start, features = self.n_inputs, []  # the bins follow the standardized columns
        for index, (name, edges) in enumerate(zip(names, self.edges, strict=True)):
            bins = piecewise_width(edges)
            features.append((name, [index, *range(start, start + bins)]))
            start += bins
        return features

    def embedded_columns(self) -> np.ndarray:
        added = self.n_outputs - len(self.mean)  # the bins follow the standardized columns
        return np.array([False] * len(self.mean) + [True] * added, dtype=bool)

    def transform(self, X: Any, *, warn: bool = True) -> np.ndarray:
        features = self.validate(X, warn=warn)
        standardized = features - self.mean  # (n, d), new: features may be the caller's array
        standardized /= self.scale  # in place: one temporary, not two
        if self.clip > 0:
            smooth_clip(standardized, self.clip)
        if not any(self.edges):
            return standardized

        blocks = [
            piecewise_linear(column, e)
            for column, e in zip(features.T, self.edges, strict=True)
            if e
        ]
        return np.ascontiguousarray(np.column_stack([standardized, *blocks]), dtype=self.dtype)

    def validate(self, X: Any, *, warn: bool = True) -> np.ndarray:
        """``X`` checked and as a ``(n, d)`` array of the encoder's dtype, not yet standardized.

        Prediction standardizes it batch by batch with :attr:`mean` and :attr:`scale` (see
        :func:`torchclf.nn.models.predict_logits`), rather than all of it at once.
        """
        if self.names is not None and hasattr(X, "columns"):
            X = select_columns(X, self.names, warn)
        elif hasattr(X, "columns") and warn:
            warnings.warn(
                f"X has column names, but this model was fitted on {self.n_inputs} unnamed "
                "features, so its columns are taken by position, as they are (a model saved "
                "from the end of a scikit-learn pipeline lacks the pipeline's earlier steps)",
                TorchclfWarning,
                stacklevel=4,
            )
        features, _ = as_features(X, n_features=self.n_inputs, dtype=self.dtype)
        return features

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        tensors = {"mean": torch.from_numpy(self.mean), "scale": torch.from_numpy(self.scale)}
        meta: dict[str, Any] = {"kind": self.kind, "names": self.names, "dtype": str(self.dtype)}
        if self.clip:
            meta["clip"] = self.clip
        if any(self.edges):
            meta["edges"] = self.edges
        return meta, tensors


__all__ = ["ArrayEncoder", "Moments"]
