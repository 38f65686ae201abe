"""Tasks: what a classifier's outputs mean.

A task owns the meaning of the model's outputs (``../shared/DESIGN.md``): how targets are encoded,
the loss, the link from logits to probabilities and the decision from probabilities to labels.
Nothing else in torchclf branches on the task type.

| task       | outputs   | link               | decision                | loss              |
|------------|-----------|--------------------|-------------------------|-------------------|
| binary     | 1         | sigmoid            | p >= threshold          | BCEWithLogitsLoss |
| multiclass | n_classes | softmax            | argmax                  | CrossEntropyLoss  |
| multilabel | n_labels  | sigmoid per label  | p >= threshold, per label | BCEWithLogitsLoss |
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.config import check_choice
from torchclf.errors import ConfigError, DataError
from torchclf.labels import (
    as_label_array,
    check_no_missing,
    indicator_matrix,
    is_label_sets,
    plain,
)
from torchclf.losses import SigmoidTargets, SoftmaxTargets, StackedTargets
from torchclf.metrics import Evaluation, multilabel_metrics, single_label_metrics

TASKS = ("binary", "multiclass", "multilabel")


def _check_threshold(threshold: float) -> None:
    if not 0.0 < threshold < 1.0:
        raise ConfigError(
            f"The 'threshold' parameter must be in (0, 1). Got {threshold!r} instead."
        )


class Task(ABC):
    """Base class of the three tasks. ``classes`` are labels in output order."""

    name: ClassVar[str]

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
        try:
            codes = np.searchsorted(self.classes, y)
        except TypeError as exc:
            raise DataError(
                f"y holds labels of type {type(y.flat[0]).__name__}, but the classifier was "
                f"trained on {list(self.class_names)}"
            ) from exc
        codes = np.clip(codes, 0, len(self.classes) - 1)
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


def _row_weights(targets: Tensor, weights: Tensor | None) -> Tensor:
    """Each row's weight as a float64 column ``(n, 1)``: 1 without sample weights."""
    if weights is None:
        return torch.ones(len(targets), 1, dtype=torch.float64)
    return weights.detach().cpu().double().reshape(-1, 1)


class BinaryTask(Task):
    """Two classes, one logit: ``P(classes[1]) = sigmoid(logit)``, predicted if ``>= threshold``."""

    name = "binary"

    def __init__(self, classes: Sequence[Any] | np.ndarray, threshold: float = 0.5) -> None:
        super().__init__(classes)
        _check_threshold(threshold)
        self.threshold = float(threshold)

    @property
    def n_outputs(self) -> int:
        return 1

    def encode(self, y: Any) -> Tensor:
        codes = self._codes_of(as_label_array(y).reshape(-1))
        return torch.from_numpy(codes.astype(np.float32)).unsqueeze(1)  # (n, 1) of 0.0 / 1.0

    def prior_logits(self, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        w = _row_weights(targets, weights)  # (n, 1)
        positive = ((targets.double() * w).sum(dim=0) + 1) / (w.sum() + 2)  # (1,)
        return torch.log(positive / (1 - positive))

    def loss_fn(
        self,
        targets: Tensor,
        class_weight: str | Mapping[Any, float] | None,
        label_smoothing: float,
    ) -> nn.Module:
        # BCE only scales the positive term: {label: weight} becomes w[positive] / w[negative].
        return _bce_loss(self, targets, class_weight, label_smoothing, lambda w: [w[1] / w[0]])

    def probabilities(self, logits: Tensor) -> Tensor:
        # sigmoid(-z) rather than 1 - sigmoid(z): no cancellation for confident positives.
        return torch.cat([torch.sigmoid(-logits), torch.sigmoid(logits)], dim=1)

    def decide(self, probs: Tensor) -> Tensor:
        return (probs[:, 1] >= self.threshold).long()

    def n_correct(self, logits: Tensor, targets: Tensor) -> Tensor:
        predicted = torch.sigmoid(logits[:, 0]) >= self.threshold
        return (predicted == targets[:, 0].bool()).sum()

    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        codes = targets[:, 0].long()
        return single_label_metrics(
            "binary", probs, codes, self.decide(probs), self.class_names, positive=True
        )

    def stacked_targets(self, targets: Tensor, dtype: torch.dtype) -> StackedTargets:
        return SigmoidTargets(targets, [self.threshold], dtype)

    def one_vs_rest(
        self, targets: np.ndarray, probs: np.ndarray
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [(self.class_names[1], targets[:, 0], probs[:, 1])]

    @property
    def tunes_threshold(self) -> bool:
        return True

    def decision_values(self, logits: np.ndarray) -> np.ndarray:
        return logits[:, 0]  # (n,): scikit-learn's binary decision_function

    def with_threshold(self, threshold: float | Sequence[float]) -> Task:
        return BinaryTask(self.classes, threshold)  # type: ignore[arg-type]

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "threshold": self.threshold}


class MulticlassTask(Task):
    """One logit per class: softmax, then argmax."""

    name = "multiclass"

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def encode(self, y: Any) -> Tensor:
        return torch.from_numpy(self._codes_of(as_label_array(y).reshape(-1)).astype(np.int64))

    def prior_logits(self, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        w = _row_weights(targets, weights)[:, 0]  # (n,)
        counts = torch.bincount(targets, weights=w, minlength=self.n_outputs) + 1  # (C,)
        return torch.log(counts / counts.sum())

    def loss_fn(
        self,
        targets: Tensor,
        class_weight: str | Mapping[Any, float] | None,
        label_smoothing: float,
    ) -> nn.Module:
        weight = None
        if class_weight == "balanced":
            counts = torch.bincount(targets, minlength=self.n_outputs).double()
            weight = (len(targets) / (self.n_outputs * counts.clamp(min=1))).float()
        elif class_weight is not None:
            weight = torch.tensor(_weights_by_name(class_weight, self.class_names))
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=1)

    def decide(self, probs: Tensor) -> Tensor:
        return probs.argmax(dim=1)

    def n_correct(self, logits: Tensor, targets: Tensor) -> Tensor:
        return (logits.argmax(dim=1) == targets).sum()

    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        preds = self.decide(probs)
        return single_label_metrics("multiclass", probs, targets, preds, self.class_names)

    def stacked_targets(self, targets: Tensor, dtype: torch.dtype) -> StackedTargets:
        return SoftmaxTargets(targets, self.n_outputs, dtype)

    def one_vs_rest(
        self, targets: np.ndarray, probs: np.ndarray
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [
            (name, (targets == j).astype(int), probs[:, j])
            for j, name in enumerate(self.class_names)
        ]


class MultilabelTask(Task):
    """One logit per label, each an independent sigmoid with its own threshold.

    ``classes`` are the label names. Targets are a 0/1 indicator matrix ``(n, L)``, or a sequence
    of label collections such as ``[["a", "b"], [], ["c"]]``.
    """

    name = "multilabel"

    def __init__(
        self, classes: Sequence[Any] | np.ndarray, threshold: float | Sequence[float] = 0.5
    ) -> None:
        super().__init__(classes)
        thresholds = np.broadcast_to(np.asarray(threshold, dtype=np.float64), (len(self.classes),))
        for value in thresholds:
            _check_threshold(float(value))
        self.thresholds = thresholds.copy()  # (L,)

    @property
    def n_outputs(self) -> int:
        return len(self.classes)

    def encode(self, y: Any) -> Tensor:
        indicator = indicator_matrix(y, self.classes)
        return torch.from_numpy(indicator.astype(np.float32))

    def prior_logits(self, targets: Tensor, weights: Tensor | None = None) -> Tensor:
        w = _row_weights(targets, weights)  # (n, 1)
        on = ((targets.double() * w).sum(dim=0) + 1) / (w.sum() + 2)  # (L,)
        return torch.log(on / (1 - on))

    def decode(self, codes: Tensor) -> np.ndarray:
        return codes.cpu().numpy().astype(np.int64)  # (n, L) indicators, as scikit-learn

    def loss_fn(
        self,
        targets: Tensor,
        class_weight: str | Mapping[Any, float] | None,
        label_smoothing: float,
    ) -> nn.Module:
        return _bce_loss(self, targets, class_weight, label_smoothing, lambda w: w)

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.sigmoid(logits)

    def decide(self, probs: Tensor) -> Tensor:
        thresholds = torch.as_tensor(self.thresholds, dtype=probs.dtype, device=probs.device)
        return (probs >= thresholds).long()

    def n_correct(self, logits: Tensor, targets: Tensor) -> Tensor:
        predicted = self.decide(torch.sigmoid(logits)).bool()
        return (predicted == targets.bool()).all(dim=1).sum()

    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        return multilabel_metrics(probs, targets, self.decide(probs), self.class_names)

    def stacked_targets(self, targets: Tensor, dtype: torch.dtype) -> StackedTargets:
        return SigmoidTargets(targets, list(self.thresholds), dtype)

    def one_vs_rest(
        self, targets: np.ndarray, probs: np.ndarray
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [(name, targets[:, j], probs[:, j]) for j, name in enumerate(self.class_names)]

    @property
    def single_label(self) -> bool:
        return False

    def with_threshold(self, threshold: float | Sequence[float]) -> Task:
        return MultilabelTask(self.classes, threshold)

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "threshold": [float(t) for t in self.thresholds]}


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


def infer_task(
    y: Any,
    task: str = "auto",
    *,
    threshold: float | Sequence[float] = 0.5,
    label_names: Sequence[str] | None = None,
) -> Task:
    """Choose and fit the task for training targets ``y``.

    ``task="auto"``: a 2-D indicator matrix or a sequence of label collections is multilabel; a
    1-D target with two distinct labels is binary, with more it is multiclass.

    Raises:
        DataError: if ``y`` is empty, holds missing values, has a single class, or does not fit
            the requested task.
        ConfigError: if ``task`` is not one of ``TASKS``.
    """
    check_choice("task", task, ("auto", *TASKS))
    y = as_label_array(y)
    if y.ndim == 2 and y.shape[1] == 1 and task != "multilabel":
        y = y[:, 0]
    if len(y) == 0:
        raise DataError("y is empty: at least two labelled rows are needed")
    multilabel_shaped = y.ndim == 2 or is_label_sets(y)
    if task == "auto" and multilabel_shaped:
        task = "multilabel"
    if task == "multilabel":
        return _fit_multilabel(y, threshold, label_names)
    if multilabel_shaped:
        raise DataError(
            f"y looks multilabel (shape {y.shape}), but task={task!r}; pass task='multilabel' "
            "or a 1-D y"
        )
    check_no_missing(y)
    try:
        classes = np.unique(y)
    except TypeError as exc:
        raise DataError(f"y mixes label types that cannot be ordered: {exc}") from exc
    if len(classes) < 2:
        raise DataError(
            f"y has only one class ({plain(classes)[0]!r}); a classifier needs at least two classes"
        )
    if task == "binary" and len(classes) > 2:
        raise DataError(
            f"task='binary' needs exactly two classes, but y has {len(classes)}: "
            f"{plain(classes[:10])}; use task='multiclass' (or 'auto')"
        )
    if task == "multiclass" or len(classes) > 2:
        return MulticlassTask(classes)
    return BinaryTask(classes, float(threshold))  # type: ignore[arg-type]


def _fit_multilabel(
    y: np.ndarray, threshold: float | Sequence[float], label_names: Sequence[str] | None
) -> MultilabelTask:
    if is_label_sets(y):
        names = sorted({str(label) for labels in y for label in labels})
        if label_names is not None:
            names = list(label_names)
    elif y.ndim == 2:
        names = (
            list(label_names) if label_names is not None else [str(i) for i in range(y.shape[1])]
        )
    else:
        raise DataError(
            f"task='multilabel' needs y as an (n_samples, n_labels) indicator matrix or a "
            f"sequence of label lists; got a 1-D y of dtype {y.dtype}"
        )
    if len(names) < 1:
        raise DataError("multilabel y names no label at all")
    task = MultilabelTask(np.asarray(names), threshold)
    task.encode(y)  # validates the values and the shape
    return task


def task_from_dict(values: Mapping[str, Any]) -> Task:
    """Rebuild a task from :meth:`Task.to_dict` (as stored in a model file)."""
    name = values["name"]
    classes = np.asarray(values["classes"])
    if name == "binary":
        return BinaryTask(classes, values.get("threshold", 0.5))
    if name == "multiclass":
        return MulticlassTask(classes)
    if name == "multilabel":
        return MultilabelTask(classes, values.get("threshold", 0.5))
    raise ConfigError(f"Invalid task: expected one of {list(TASKS)}, got {name!r}")


__all__ = [
    "TASKS",
    "BinaryTask",
    "MulticlassTask",
    "MultilabelTask",
    "Task",
    "infer_task",
    "stacked_targets",
    "task_from_dict",
]
