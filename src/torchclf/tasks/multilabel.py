"""Multilabel: one logit per label, a sigmoid and a threshold each; BCE per label."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.data.labels import (
    indicator_matrix,
)
from torchclf.evaluation.metrics import Evaluation, multilabel_metrics, score_multilabel
from torchclf.nn.losses import SigmoidTargets, StackedTargets
from torchclf.tasks.base import Task, _bce_loss, _check_threshold, _row_weights


class MultilabelTask(Task):
    """One logit per label, each an independent sigmoid with its own threshold.

    ``classes`` are the label names. Targets are a 0/1 indicator matrix ``(n, L)``, or a sequence
    of label collections such as ``[["a", "b"], [], ["c"]]``.
    """

    name = "multilabel"
    link = "sigmoid"
    loss_name = "binary cross-entropy, mean over labels"

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

    def score(self, metric: str, probs: Tensor, targets: Tensor) -> float:
        return score_multilabel(metric, probs, targets, self.decide(probs))

    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        return multilabel_metrics(
            probs,
            targets,
            self.decide(probs),
            self.class_names,
            reliability=self.reliability_pairs(probs, targets),
        )

    def reliability_pairs(self, probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        # every label of every row, pooled: its probability against whether the row has it
        return probs.reshape(-1), targets.reshape(-1).float()

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


__all__ = ["MultilabelTask"]
