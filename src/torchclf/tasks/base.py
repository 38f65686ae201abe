"""The task interface: what every task answers about its outputs."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.data.labels import (
    plain,
)
from torchclf.errors import ConfigError, DataError
from torchclf.evaluation.metrics import Evaluation
from torchclf.nn.losses import StackedTargets

TASKS = ("binary", "multiclass", "multilabel")


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ConfigError(
            f"The 'threshold' parameter must be in (0, 1). Got {threshold!r} instead."
        )


def _row_weights(targets: Tensor, weights: Tensor | None) -> Tensor:
    """Each row's weight as a float64 column ``(n, 1)``: 1 without sample weights."""
    if weights is None:
        return torch.ones(len(targets), 1, dtype=torch.float64)
    return weights.detach().cpu().double().reshape(-1, 1)


def _bce_loss(
    task: Task,
    targets: Tensor,
    class_weight: str | Mapping[Any, float] | None,
    label_smoothing: float,
    pos_weight_from_names: Callable[[list[float]], list[float]],
) -> nn.Module:
    """``BCEWithLogitsLoss`` over one target column per label (binary: one column).

    "balanced" weighs each column's positives by ``n_negative / n_positive``; a ``{label: weight}``
    dict goes through ``pos_weight_from_names`` (weights in class order -> one per column).
    """
    if label_smoothing:
        raise ConfigError(
            f"label_smoothing applies to multiclass tasks only; this one is {task.name}"
        )
    if class_weight is None:
        return nn.BCEWithLogitsLoss()
    if class_weight == "balanced":
        positives = targets.sum(dim=0)  # (columns,)
        pos_weight = (len(targets) - positives) / positives.clamp(min=1)
    else:
        assert not isinstance(class_weight, str)  # TrainConfig allows "balanced" alone
        weights = _weights_by_name(class_weight, task.class_names)
        pos_weight = torch.tensor(pos_weight_from_names(weights))
    return nn.BCEWithLogitsLoss(pos_weight=pos_weight.float())


def _weights_by_name(
    class_weight: Mapping[Any, float], class_names: tuple[str, ...]
) -> list[float]:
    """``{label: weight}`` (labels as given or as strings) -> weights in class order, default 1."""
    by_name = {str(k): float(v) for k, v in class_weight.items()}
    unknown = sorted(set(by_name) - set(class_names))
    if unknown:
        raise ConfigError(
            f"class_weight names labels {unknown} that are not among the classes "
            f"{list(class_names)}"
        )
    return [by_name.get(name, 1.0) for name in class_names]


class Task(ABC):
    """Base class of the three tasks. ``classes`` are labels in output order."""

    name: ClassVar[str]
    # logits -> probabilities: "sigmoid" (each output alone) or "softmax" (across the outputs);
    # an ensemble averages its members' probabilities through it (losses.LINKS)
    link: ClassVar[str]
    loss_name: ClassVar[str]  # the training loss, as plots and reports name it

    def __init__(self, classes: Sequence[Any] | np.ndarray) -> None:
        self.classes = np.asarray(classes)

    @property
    def class_names(self) -> tuple[str, ...]:
        """The classes (or labels) as strings, for tables and file metadata."""
        return tuple(str(c) for c in self.classes)

    @property
    @abstractmethod
    def n_outputs(self) -> int:
        """How many logits the model must produce."""

    @abstractmethod
    def encode(self, y: Any) -> Tensor:
        """Targets in the user's labels -> the tensor the loss expects (on the CPU)."""

    def decode(self, codes: Tensor) -> np.ndarray:
        """Predicted codes from :meth:`decide` -> labels in the user's terms."""
        return self.classes[codes.cpu().numpy()]

    @abstractmethod
    def loss_fn(
        self,
        targets: Tensor,
        class_weight: str | Mapping[Any, float] | None,
        label_smoothing: float,
    ) -> nn.Module:
        """The training loss; ``targets`` (encoded) are used to compute "balanced" weights."""

    @abstractmethod
    def probabilities(self, logits: Tensor) -> Tensor:
        """Logits ``(n, n_outputs)`` -> probabilities ``(n, K)`` (K = 2 for binary)."""

    @abstractmethod
    def prior_logits(self, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        """The logits ``(n_outputs,)`` that predict the classes' frequencies in ``targets``.

        What a model knows before it sees any feature: an output layer whose bias starts here
        need not spend its first steps learning the base rates (imbalanced tables most of all).
        A class's frequency is counted with one pseudo-row per outcome, so none is 0 or 1;
        ``weights`` ``(n,)`` count rows as the loss does (a weight of 2 is a repeated row).
        """

    @abstractmethod
    def decide(self, probs: Tensor) -> Tensor:
        """Probabilities -> predicted codes: ``(n,)`` class indices or ``(n, L)`` indicators."""

    @abstractmethod
    def n_correct(self, logits: Tensor, targets: Tensor) -> Tensor:
        """How many rows are predicted exactly right (a 0-d tensor, left on the device)."""

    @abstractmethod
    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        """All metrics for probabilities ``(n, K)`` against encoded targets."""

    @abstractmethod
    def score(self, metric: str, probs: Tensor, targets: Tensor) -> float:
        """One of ``evaluation.metrics.SCORES``, higher is better (the log loss negated)."""

    @abstractmethod
    def reliability_pairs(self, probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        """Each prediction's stated probability and whether it came true, ``(m,)`` each.

        What a reliability diagram bins; ``ece`` in :meth:`evaluate` bins the same pairs.
        """

    @abstractmethod
    def stacked_targets(self, targets: Tensor, dtype: torch.dtype) -> StackedTargets:
        """Encoded targets as the hand-written engine trains on them (loss, gradient, hits)."""

    @abstractmethod
    def one_vs_rest(
        self, targets: np.ndarray, probs: np.ndarray
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """``(name, truth (n,), score (n,))`` per yes/no question the outputs answer.

        Binary: the positive class; multiclass: each class against the rest; multilabel: each
        label. Encoded ``targets``, probabilities ``(n, K)``: what ROC and PR curves plot.
        """

    @property
    def single_label(self) -> bool:
        """One class per row (binary, multiclass), rather than a set of labels."""
        return True

    @property
    def tunes_threshold(self) -> bool:
        """A threshold rule ("f1", "recall:R") can choose this task's decision threshold."""
        return False

    def decision_values(self, logits: np.ndarray) -> np.ndarray:
        """Logits in scikit-learn's ``decision_function`` shape: ``(n, outputs)``."""
        return logits

    def with_threshold(self, threshold: float | Sequence[float]) -> Task:
        """A copy deciding with another threshold (binary and multilabel tasks only)."""
        raise ConfigError(
            f"a threshold applies to binary and multilabel models; this one is {self.name} "
            "and predicts the most probable class"
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description from which :func:`task_from_dict` rebuilds the task."""
        return {"name": self.name, "classes": plain(self.classes)}

    def __repr__(self) -> str:
        return f"{type(self).__name__}(classes={plain(self.classes)!r})"

    def _codes_of(self, y: np.ndarray) -> np.ndarray:
        """Indices of the labels in ``self.classes``; unknown labels are a :class:`DataError`."""
        # classes are sorted but for a binary task's chosen positive class, which comes last
        order = np.argsort(self.classes, kind="stable")
        try:
            positions = np.searchsorted(self.classes, y, sorter=order)
        except TypeError as exc:
            raise DataError(
                f"y holds labels of type {type(y.flat[0]).__name__}, but the classifier was "
                f"trained on {list(self.class_names)}"
            ) from exc
        codes = order[np.clip(positions, 0, len(self.classes) - 1)]
        unknown = self.classes[codes] != y
        if np.any(unknown):
            bad = sorted({str(v) for v in y[unknown]})[:5]
            raise DataError(
                f"y holds labels {bad} that the classifier does not know; "
                f"its classes are {list(self.class_names)}"
            )
        return codes


def stacked_targets(task: Task, targets: Tensor, dtype: torch.dtype) -> StackedTargets:
    """``task.stacked_targets(targets, dtype)``: what the task hands the hand-written engine."""
    return task.stacked_targets(targets, dtype)


__all__ = ["TASKS", "Task", "stacked_targets"]
