"""A binary decision threshold chosen on validation rows: the rules "f1" and "recall:R"."""

from __future__ import annotations

import numpy as np
import torch

from torchclf.data.labelled import Labelled
from torchclf.errors import ConfigError
from torchclf.evaluation.metrics import choose_threshold
from torchclf.tasks import Task
from torchclf.training.calibration import held_out_logits


def check_threshold_rule(rule: str, task: Task, validation_fraction: float) -> None:
    """Refuse a malformed rule, a task without a binary threshold, or no validation rows."""
    ok = rule == "f1"
    if rule.startswith("recall:"):
        try:
            ok = 0.0 < float(rule.removeprefix("recall:")) <= 1.0
        except ValueError:
            ok = False
    if not ok:
        raise ConfigError(
            f"The 'threshold' parameter must be a number in (0, 1), 'f1' or 'recall:R' with R in "
            f"(0, 1]. Got {rule!r} instead."
        )
    if not task.tunes_threshold:
        raise ConfigError(f"threshold={rule!r} tunes a binary threshold; this task is {task.name}")
    if validation_fraction == 0.0:
        raise ConfigError(
            f"threshold={rule!r} is chosen on validation rows: set validation_fraction "
            "(for example 0.2)"
        )


@torch.inference_mode()
def tuned_threshold(
    model: torch.nn.Module,
    task: Task,
    validation: Labelled,
    rule: str,
    *,
    folds: torch.Tensor | None = None,
) -> float:
    """The threshold ``rule`` picks from the validation rows' positive-class probabilities.

    For a cross-fitted ensemble, ``validation`` holds the training rows and ``folds`` ``(K, n)``
    which member trained on which: each row's probability is then its out-of-fold member's,
    the one model that never trained on it.
    """
    positive = _held_out_positive(model, task, validation, folds)
    return choose_threshold(positive, validation.y[:, 0].cpu().numpy(), rule)


@torch.inference_mode()
def rare_class_threshold(
    model: torch.nn.Module,
    task: Task,
    validation: Labelled,
    *,
    folds: torch.Tensor | None = None,
) -> dict[str, str | float]:
    """A binary task's rarer class on the validation rows, and its F1 threshold there.

    ``{"rare_class": name, "rare_class_f1_threshold": t}``: predicting the rarer class where
    its probability is at least ``t`` gives it the highest F1 on the validation rows (read as
    :func:`tuned_threshold` reads them). On an imbalanced table that class is usually the one
    asked about, and 0.5 is rarely its best threshold; the run's report shows both.
    """
    positive = _held_out_positive(model, task, validation, folds)  # (n,) P(classes[1])
    truth = validation.y[:, 0].cpu().numpy()  # (n,) 1 for classes[1]
    rare = 1 if truth.mean() <= 0.5 else 0
    if rare == 0:
        positive, truth = 1 - positive, 1 - truth
    return {
        "rare_class": str(task.class_names[rare]),
        "rare_class_f1_threshold": choose_threshold(positive, truth, "f1"),
    }


def _held_out_positive(
    model: torch.nn.Module, task: Task, validation: Labelled, folds: torch.Tensor | None
) -> np.ndarray:
    """P(classes[1]) ``(n,)`` of each validation row, from a model that never trained on it."""
    if folds is None:
        model.eval()
        logits = model(validation.X)
    else:
        logits, _ = held_out_logits(model, validation, folds)
    return task.probabilities(logits)[:, 1].cpu().numpy()


__all__ = ["check_threshold_rule", "rare_class_threshold", "tuned_threshold"]
