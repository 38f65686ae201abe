"""Rows ready for a loop: features, encoded targets and sample weights, as tensors on the device.

Every loop (the autograd loop, the hand-written engine, the sweep, the stream) takes its rows in
this one form, made once before the loop by :func:`to_labelled`.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch
from torch import Tensor


class Labelled(NamedTuple):
    """Features ``(n, d)``, encoded targets and optional sample weights ``(n,)``, on the device."""

    X: Tensor
    y: Tensor
    weight: Tensor | None = None


def to_labelled(
    features: np.ndarray,
    targets: Tensor,
    device: torch.device,
    dtype: torch.dtype,
    weight: np.ndarray | None = None,
) -> Labelled:
    """Encoded features ``(n, d)``, targets and optional weights as tensors on ``device``.

    Float targets (BCE's 0/1) and weights take the model's precision ``dtype``; class indices stay
    integers.
    """
    targets = targets.to(device)
    if targets.is_floating_point():
        targets = targets.to(dtype)
    weights = None if weight is None else torch.from_numpy(weight).to(device=device, dtype=dtype)
    return Labelled(torch.from_numpy(features).to(device), targets, weights)


__all__ = ["Labelled", "to_labelled"]
