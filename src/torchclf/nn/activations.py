"""Activation functions written from scratch, each as a function and as an ``nn.Module``.

They are the tutorial's section 7 ("replicating non-linear activation functions") done so that
they hold for every float32 input: each is built from ``exp``/``expm1``/``erfc`` evaluated only
where it cannot overflow, so inputs from -1e4 to 1e4 (and beyond) give no NaN or inf, and their
values and gradients match torch's own to float32 precision (``tests/test_activations.py``).

The numerically stable trick used throughout: for ``x >= 0`` evaluate the formula in ``exp(-x)``,
for ``x < 0`` in ``exp(x)``, and feed each branch an input clamped to its own half-line, so the
branch that ``torch.where`` discards never overflows and never sends NaN into the gradient.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

_SQRT_HALF = 1.0 / math.sqrt(2.0)
_SQRT_2_OVER_PI = math.sqrt(2.0 / math.pi)


def relu(x: Tensor) -> Tensor:
    """``max(0, x)``; the gradient at 0 is 0, as in torch."""
    return torch.where(x > 0, x, torch.zeros_like(x))


def leaky_relu(x: Tensor, negative_slope: float = 0.01) -> Tensor:
    """``x`` for ``x > 0``, ``negative_slope * x`` otherwise."""
    return torch.where(x > 0, x, x * negative_slope)


def sigmoid(x: Tensor) -> Tensor:
    """``1 / (1 + exp(-x))`` without overflow.

    For ``x >= 0`` that formula is safe; for ``x < 0`` the equal form ``exp(x) / (1 + exp(x))``
    keeps full relative precision for tiny probabilities instead of rounding them to 0 early.
    """
    e_pos = torch.exp(-x.clamp(min=0))  # in (0, 1]: exp(-x) on the positive half-line
    e_neg = torch.exp(x.clamp(max=0))  # in (0, 1]: exp(x) on the negative half-line
    return torch.where(x >= 0, 1.0 / (1.0 + e_pos), e_neg / (1.0 + e_neg))


def tanh(x: Tensor) -> Tensor:
    """``(exp(x) - exp(-x)) / (exp(x) + exp(-x))`` without overflow or cancellation.

    The textbook formula overflows to ``inf / inf = NaN`` once ``exp(x)`` exceeds float32's range
    (``x > 88``), which is the tutorial's NaN. Dividing through by ``exp(|x|)`` gives
    ``(1 - exp(-2|x|)) / (1 + exp(-2|x|))``; writing ``1 - exp(-2x)`` as ``-expm1(-2x)`` keeps
    the relative precision for small ``x`` too (``tanh(1e-8) == 1e-8``, not 0).
    """
    m_pos = torch.expm1(-2.0 * x.clamp(min=0))  # in (-1, 0]
    m_neg = torch.expm1(2.0 * x.clamp(max=0))  # in (-1, 0]
    return torch.where(x >= 0, -m_pos / (2.0 + m_pos), m_neg / (2.0 + m_neg))


def gelu(x: Tensor, approximate: str = "none") -> Tensor:
    """Gaussian error linear unit ``x * Phi(x)``.

    ``approximate="none"`` uses the exact normal CDF written as ``0.5 * erfc(-x / sqrt(2))``,
    which (unlike ``0.5 * (1 + erf(x / sqrt(2)))``) keeps precision in the far negative tail;
    ``approximate="tanh"`` is the tanh approximation, built on :func:`tanh` above.
    """
    if approximate == "tanh":
        inner = _SQRT_2_OVER_PI * (x + 0.044715 * x * x * x)
        return 0.5 * x * (1.0 + tanh(inner))
    if approximate != "none":
        raise ValueError(f"approximate must be 'none' or 'tanh', got {approximate!r}")
    return 0.5 * x * torch.erfc(-x * _SQRT_HALF)


def softmax(x: Tensor, dim: int = -1) -> Tensor:
    """``exp(x) / sum(exp(x))`` along ``dim``, shifted by the maximum so no ``exp`` overflows."""
    shifted = x - x.amax(dim=dim, keepdim=True).detach()  # largest entry becomes exp(0) = 1
    exps = torch.exp(shifted)
    return exps / exps.sum(dim=dim, keepdim=True)


def identity(x: Tensor) -> Tensor:
    """No activation: the layers stay linear (the tutorial's model_0 and model_1)."""
    return x


class ReLU(nn.Module):
    """Module form of :func:`relu`."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation elementwise."""
        return relu(x)


class LeakyReLU(nn.Module):
    """Module form of :func:`leaky_relu`."""

    def __init__(self, negative_slope: float = 0.01) -> None:
        super().__init__()
        self.negative_slope = negative_slope

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation elementwise."""
        return leaky_relu(x, self.negative_slope)

    def extra_repr(self) -> str:
        return f"negative_slope={self.negative_slope}"


class Sigmoid(nn.Module):
    """Module form of :func:`sigmoid`."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation elementwise."""
        return sigmoid(x)


class Tanh(nn.Module):
    """Module form of :func:`tanh`."""

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation elementwise."""
        return tanh(x)


class GELU(nn.Module):
    """Module form of :func:`gelu`."""

    def __init__(self, approximate: str = "none") -> None:
        super().__init__()
        self.approximate = approximate

    def forward(self, x: Tensor) -> Tensor:
        """Apply the activation elementwise."""
        return gelu(x, self.approximate)

    def extra_repr(self) -> str:
        return f"approximate={self.approximate!r}"


class Softmax(nn.Module):
    """Module form of :func:`softmax`."""

    def __init__(self, dim: int = -1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        """Normalise ``x`` into probabilities along ``self.dim``."""
        return softmax(x, self.dim)

    def extra_repr(self) -> str:
        return f"dim={self.dim}"


# name -> (torchclf's module, torch's module); both take no arguments at their defaults.
_MODULES: dict[str, tuple[type[nn.Module], type[nn.Module]]] = {
    "relu": (ReLU, nn.ReLU),
    "leaky_relu": (LeakyReLU, nn.LeakyReLU),
    "sigmoid": (Sigmoid, nn.Sigmoid),
    "tanh": (Tanh, nn.Tanh),
    "gelu": (GELU, nn.GELU),
    "identity": (nn.Identity, nn.Identity),
}


LEAKY_SLOPE = 0.01  # nn.LeakyReLU's default, the one torchclf's models use


def in_place_activation(name: str) -> Callable[[Tensor], Tensor]:
    """Activation ``name`` with torch's kernels, in place where torch has an in-place form.

    For the fast paths (stacked training, prediction) whose buffers are their own: in-place ops
    save a pass over memory. gelu returns a new tensor; identity returns its input. Looked up
    once by a caller that applies it many times (a call per layer per step).
    """
    return _IN_PLACE[name]


_IN_PLACE: dict[str, Callable[[Tensor], Tensor]] = {
    "relu": torch.relu_,
    "leaky_relu": lambda z: torch.nn.functional.leaky_relu_(z, LEAKY_SLOPE),
    "sigmoid": torch.sigmoid_,
    "tanh": torch.tanh_,
    "gelu": torch.nn.functional.gelu,
    "identity": lambda z: z,
}


def make_activation(name: str, impl: str = "torch") -> nn.Module:
    """A fresh activation module by name; ``impl`` is "torch" (torch.nn) or "scratch" (ours).

    Names and impls are validated by :class:`torchclf.ModelConfig`; this trusts them.
    """
    scratch_cls, torch_cls = _MODULES[name]
    return scratch_cls() if impl == "scratch" else torch_cls()


__all__ = [
    "GELU",
    "LEAKY_SLOPE",
    "LeakyReLU",
    "ReLU",
    "Sigmoid",
    "Softmax",
    "Tanh",
    "gelu",
    "identity",
    "in_place_activation",
    "leaky_relu",
    "make_activation",
    "relu",
    "sigmoid",
    "softmax",
    "tanh",
]
