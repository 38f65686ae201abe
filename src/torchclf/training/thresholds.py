"""A binary decision threshold chosen on validation rows: the rules "f1" and "recall:R"."""

from __future__ import annotations

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
    if folds is None:
        model.eval()
        logits = model(validation.X)
    else:
        logits, _ = held_out_logits(model, validation, folds)
    positive = task.probabilities(logits)[:, 1].cpu().numpy()  # (n,) P(classes[1])
    return choose_threshold(positive, validation.y[:, 0].cpu().numpy(), rule)


__all__ = ["check_threshold_rule", "tuned_threshold"]
