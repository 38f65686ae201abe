"""Feature preprocessing whose fitted state travels inside the model file.

The state is tensors (saved next to the weights in the ``.safetensors`` file), never a pickled
object, so loading a model executes nothing.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor


class Standardizer:
    """Scale each feature to zero mean and unit variance, with statistics from the training rows.

    A constant feature (standard deviation 0) is only centred, not divided by zero.
    """

    def __init__(self, mean: Tensor, scale: Tensor) -> None:
        self.mean = mean  # (n_features,) float32
        self.scale = scale  # (n_features,) float32, never 0

    @classmethod
    def fit(cls, X: np.ndarray) -> Standardizer:
        """Learn the statistics of ``X`` ``(n, d)``, accumulated in float64 for accuracy."""
        mean = X.mean(axis=0, dtype=np.float64)
        std = X.std(axis=0, dtype=np.float64)
        std[std < 1e-12] = 1.0
        return cls(
            torch.from_numpy(mean.astype(np.float32)), torch.from_numpy(std.astype(np.float32))
        )

    @classmethod
    def identity(cls, n_features: int) -> Standardizer:
        """A standardizer that changes nothing (``standardize=False``)."""
        return cls(torch.zeros(n_features), torch.ones(n_features))

    def transform(self, X: Tensor) -> Tensor:
        """Standardize ``X`` ``(n, d)`` on its own device."""
        return (X - self.mean.to(X.device)) / self.scale.to(X.device)

    def state_dict(self) -> dict[str, Tensor]:
        """Tensors to save with the model."""
        return {"mean": self.mean, "scale": self.scale}

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> Standardizer:
        """Inverse of :meth:`state_dict`."""
        return cls(state["mean"].float(), state["scale"].float())


__all__ = ["Standardizer"]
