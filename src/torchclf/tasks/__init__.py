"""Tasks: what a classifier's outputs mean.

A task owns the meaning of the model's outputs (``docs/architecture.md``): how targets are
encoded, the loss, the link from logits to probabilities and the decision from probabilities to
labels. Nothing else in torchclf branches on the task type.

- ``base``: the :class:`Task` interface; ``binary``, ``multiclass``, ``multilabel``: the three
  tasks; this module: :func:`infer_task` (which task targets are) and :func:`task_from_dict`.

| task       | outputs   | link               | decision                | loss              |
|------------|-----------|--------------------|-------------------------|-------------------|
| binary     | 1         | sigmoid            | p >= threshold          | BCEWithLogitsLoss |
| multiclass | n_classes | softmax            | argmax                  | CrossEntropyLoss  |
| multilabel | n_labels  | sigmoid per label  | p >= threshold, per label | BCEWithLogitsLoss |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from torchclf.config import check_choice
from torchclf.data.labels import as_label_array, check_no_missing, is_label_sets, plain
from torchclf.errors import ConfigError, DataError
from torchclf.tasks.base import TASKS, Task, stacked_targets
from torchclf.tasks.binary import BinaryTask
from torchclf.tasks.multiclass import MulticlassTask
from torchclf.tasks.multilabel import MultilabelTask


def infer_task(
    y: Any,
    task: str = "auto",
    *,
    threshold: float | Sequence[float] = 0.5,
    label_names: Sequence[str] | None = None,
    positive_class: Any = None,
) -> Task:
    """Choose and fit the task for training targets ``y``.

    ``task="auto"``: a 2-D indicator matrix or a sequence of label collections is multilabel; a
    1-D target with two distinct labels is binary, with more it is multiclass. A binary task's
    positive class (``classes[1]``, whose probability the one logit gives) is the last label in
    sorted order, or ``positive_class`` (a label, or its text: ``"1"`` names the label 1).

    Raises:
        DataError: if ``y`` is empty, holds missing values, has a single class, or does not fit
            the requested task.
        torchclf.errors.ConfigError: if ``task`` is not one of ``TASKS``, or
            ``positive_class`` is given for a task that is not binary or is not one of the labels.
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
        _refuse_positive_class(positive_class, "a label set per row (multilabel)")
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
        _refuse_positive_class(positive_class, f"{len(classes)} classes")
        return MulticlassTask(classes)
    if positive_class is not None:
        classes = _with_positive_last(classes, positive_class)
    return BinaryTask(classes, float(threshold))  # type: ignore[arg-type]


def _with_positive_last(classes: np.ndarray, positive: Any) -> np.ndarray:
    """The two ``classes`` with ``positive`` (a label, or its text) second."""
    chosen = [i for i, c in enumerate(classes) if c == positive or str(c) == str(positive)]
    if not chosen:
        raise ConfigError(
            f"positive_class={positive!r} is not one of the two classes {plain(classes)}; "
            "name one of them"
        )
    return classes[[1 - chosen[0], chosen[0]]]


def _refuse_positive_class(positive: Any, found: str) -> None:
    if positive is not None:
        raise ConfigError(
            f"positive_class={positive!r} applies to a binary task, but y has {found}; "
            "leave it unset"
        )


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
    check_choice("task", name, TASKS)
    classes = np.asarray(values["classes"])
    if name == "multiclass":
        return MulticlassTask(classes)
    threshold = values.get("threshold", 0.5)
    return (
        BinaryTask(classes, threshold) if name == "binary" else MultilabelTask(classes, threshold)
    )


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
