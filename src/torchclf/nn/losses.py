"""The losses as the hand-written engine needs them: feature-major targets, loss, gradient, hits.

The engine (:mod:`torchclf.engine`) trains ``M`` members at once on feature-major logits
``(M, outputs, n)`` and computes each loss's gradient by hand. What it needs of a task is one of
these target objects, which the task hands out (:meth:`torchclf.tasks.Task.stacked_targets`):

- :class:`SoftmaxTargets`: class indices and softmax cross-entropy (multiclass);
- :class:`SigmoidTargets`: 0/1 outputs, sigmoid binary cross-entropy and thresholds (binary,
  multilabel).

So the engine never asks which task it trains. Losses are each member's mean over the rows, as
the task's ``reduction="mean"`` loss gives; ``tests/test_stacked.py`` checks loss and gradient
against ``torch.autograd``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Sequence

import torch
from torch import Tensor
from torch.nn import functional as F

LINKS = ("sigmoid", "softmax")  # from logits to probabilities: per output, or across outputs


def mean_probability_logits(
    logits: Tensor, link: str, class_dim: int, weights: Tensor | None = None
) -> Tensor:
    """Logits whose probabilities are the mean of the members' probabilities.

    ``logits`` holds the members along dimension 0, e.g. ``(K, n, outputs)``; the result drops
    that dimension. An ensemble averages probabilities, not logits (the mean of logits is a
    geometric mean, more confident than any member where they agree). Computed in log space, so
    confident members do not round to 0 or 1: softmax gives the log of the mean probabilities
    (``class_dim`` is the outputs' dimension), sigmoid ``log p - log(1 - p)`` of the mean ``p``.
    ``weights`` ``(K,)``, summing to 1, make it a weighted mean (a weight may be 0).
    """
    if weights is None:
        log_members = math.log(logits.shape[0])
        if link == "softmax":
            return torch.logsumexp(torch.log_softmax(logits, dim=class_dim), dim=0) - log_members
        log_p = torch.logsumexp(F.logsigmoid(logits), dim=0)
        log_not_p = torch.logsumexp(F.logsigmoid(-logits), dim=0)
        return log_p - log_not_p  # the two log K cancel
    # (K, 1, ..., 1): each member's log weight, broadcast over its logits
    log_weights = weights.to(logits).log().reshape(-1, *([1] * (logits.dim() - 1)))
    if link == "softmax":
        return torch.logsumexp(torch.log_softmax(logits, dim=class_dim) + log_weights, dim=0)
    log_p = torch.logsumexp(F.logsigmoid(logits) + log_weights, dim=0)
    return log_p - torch.logsumexp(F.logsigmoid(-logits) + log_weights, dim=0)


class StackedTargets(ABC):
    """One split's encoded targets, feature-major, with the loss's value, gradient and hits."""

    link: str  # one of LINKS
    rows: int
    _divisors: dict[int, Tensor]  # the gradient's divisors by count, shared with every subset

    @abstractmethod
    def _columns(self) -> tuple[str, ...]:
        """The per-row tensors, each with its rows along the last dimension."""

    @abstractmethod
    def _count(self) -> int:
        """What the mean loss divides by: rows (softmax) or rows times outputs (sigmoid)."""

    @abstractmethod
    def _truth(self) -> Tensor:
        """The targets the probabilities are compared with: ``(outputs, n)``."""

    @abstractmethod
    def probabilities(self, logits: Tensor) -> Tensor:
        """``(M, outputs, n)`` probabilities, computed as autograd's backward computes them."""

    @abstractmethod
    def loss_and_correct(
        self, logits: Tensor, *, gradient: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-member losses and correct counts ``(M,)``, and ``d mean loss / d logits``.

        With ``gradient=False`` (evaluation rows) the gradient is not computed and is None.
        """

    def subset(self, columns: Tensor | slice) -> StackedTargets:
        """The targets of some rows: an index tensor gathers them, a slice views them."""
        part = object.__new__(type(self))
        part.__dict__.update(self.__dict__)  # settings and the shared divisors
        for name in self._columns():
            values = getattr(self, name)
            if isinstance(columns, slice):
                setattr(part, name, values[..., columns])
            else:  # index_select: several times faster than indexing along a strided dimension
                setattr(part, name, values.index_select(values.dim() - 1, columns))
        part.rows = getattr(part, self._columns()[0]).shape[-1]
        return part

    @abstractmethod
    def row_scores(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Each member's loss and correctness (0/1) on each row, ``(M, n)`` each.

        A row's loss is its share of the mean loss: their mean over the rows is the loss.
        """

    def ensemble_logits(self, logits: Tensor) -> Tensor:
        """The ensemble of the members ``(M, outputs, n)`` as one member ``(1, outputs, n)``."""
        return mean_probability_logits(logits, self.link, class_dim=1).unsqueeze(0)

    def gradient(self, logits: Tensor, row_weights: Tensor | None = None) -> Tensor:
        """``d mean loss / d logits`` ``(M, outputs, n)`` alone: no loss, no correct counts.

        ``row_weights`` ``(M, n)``, each member's summing to 1, make each member's loss its own
        weighted mean over the rows (0 leaves a row out of a member's loss) instead of the mean.
        """
        probs = self.probabilities(logits)
        if row_weights is None:
            return self._gradient_from(probs)
        outputs_per_row = self._count() // self.rows  # 1 (softmax) or the outputs (sigmoid)
        gradient = probs.sub_(self._truth()).mul_(row_weights.unsqueeze(1))
        return gradient if outputs_per_row == 1 else gradient.div_(outputs_per_row)

    def _gradient_from(self, probs: Tensor) -> Tensor:
        """``(p - truth) / count`` from the probabilities ``(M, outputs, n)``, in place."""
        count = self._count()
        divisor = self._divisors.get(count)
        if divisor is None:  # a 0-dim tensor divides 2x faster than a float, same result
            divisor = torch.tensor(float(count), dtype=probs.dtype, device=probs.device)
            self._divisors[count] = divisor
        return probs.sub_(self._truth()).div_(divisor)


class SoftmaxTargets(StackedTargets):
    """Class indices ``(n,)`` and softmax cross-entropy over ``n_classes`` outputs."""

    link = "softmax"

    def __init__(self, codes: Tensor, n_classes: int, dtype: torch.dtype) -> None:
        self.rows = len(codes)
        self._divisors = {}
        self.codes = codes  # (n,)
        # contiguous: index_select copies a strided tensor whole before gathering from it
        self.onehot = F.one_hot(codes, n_classes).T.to(dtype).contiguous()  # (C, n)

    def _columns(self) -> tuple[str, ...]:
        return ("codes", "onehot")

    def _count(self) -> int:
        return self.rows

    def _truth(self) -> Tensor:
        return self.onehot

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.log_softmax(logits, dim=1).exp_()  # as autograd's cross-entropy backward

    def loss_and_correct(
        self, logits: Tensor, *, gradient: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        log_probs, picked = self._picked(logits)
        losses = picked.sum(dim=(1, 2)).div_(-float(self.rows))  # (M,) mean negative log-likelihood
        correct = self._hits(logits).sum(dim=1)
        if not gradient:
            return losses, correct, None
        return losses, correct, self._gradient_from(log_probs.exp_())

    def row_scores(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        _, picked = self._picked(logits)
        return picked.squeeze(1).neg_(), self._hits(logits).to(logits.dtype)

    def _picked(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        """Log-probabilities ``(M, C, n)``, and each row's of its own class ``(M, 1, n)``."""
        members, rows = logits.shape[0], self.rows
        log_probs = torch.log_softmax(logits, dim=1)
        return log_probs, log_probs.gather(1, self.codes.view(1, 1, rows).expand(members, 1, rows))

    def _hits(self, logits: Tensor) -> Tensor:
        """Whether each member's top class is the row's ``(M, n)``."""
        # max's indices, not argmax: argmax over a strided dim is several times slower
        return logits.max(dim=1).indices == self.codes


class SigmoidTargets(StackedTargets):
    """0/1 targets ``(K, n)``, sigmoid binary cross-entropy, and a threshold per output.

    A row is correct when every output's decision (probability >= its threshold) is right.
    """

    link = "sigmoid"

    def __init__(self, y: Tensor, thresholds: Sequence[float], dtype: torch.dtype) -> None:
        self.rows = len(y)
        self._divisors = {}
        self.y = y.T.to(dtype).contiguous()  # (K, n)
        self.truth = self.y.bool()
        self.thresholds = torch.tensor(list(thresholds), dtype=dtype, device=y.device)[:, None]

    def _columns(self) -> tuple[str, ...]:
        return ("y", "truth")

    def _count(self) -> int:
        return self.y.numel()

    def _truth(self) -> Tensor:
        return self.y

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)

    def loss_and_correct(
        self, logits: Tensor, *, gradient: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        losses, probs, right = self._scored(logits)
        correct = (right if len(self.y) == 1 else right.all(dim=1, keepdim=True)).sum(dim=(1, 2))
        if not gradient:
            return losses.mean(dim=(1, 2)), correct, None
        return losses.mean(dim=(1, 2)), correct, self._gradient_from(probs)

    def row_scores(self, logits: Tensor) -> tuple[Tensor, Tensor]:
        losses, _, right = self._scored(logits)
        return losses.mean(dim=1), right.all(dim=1).to(logits.dtype)

    def _scored(self, logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Each output's loss, probability and right decision, ``(M, K, n)`` each."""
        target = self.y.expand_as(logits)
        losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        probs = torch.sigmoid(logits)
        return losses, probs, (probs >= self.thresholds) == self.truth


__all__ = [
    "LINKS",
    "SigmoidTargets",
    "SoftmaxTargets",
    "StackedTargets",
    "mean_probability_logits",
]
