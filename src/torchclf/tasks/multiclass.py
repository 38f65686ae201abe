"""Multiclass: one logit per class, softmax, argmax; cross-entropy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.data.labels import (
    as_label_array,
)
from torchclf.evaluation.metrics import Evaluation, score_single_label, single_label_metrics
from torchclf.nn.losses import SoftmaxTargets, StackedTargets
from torchclf.tasks.base import Task, _row_weights, _weights_by_name


class MulticlassTask(Task):
    """One logit per class: softmax, then argmax."""

    name = "multiclass"
    link = "softmax"
    loss_name = "cross-entropy"

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
            assert not isinstance(class_weight, str)  # TrainConfig allows "balanced" alone
            weight = torch.tensor(_weights_by_name(class_weight, self.class_names))
        return nn.CrossEntropyLoss(weight=weight, label_smoothing=label_smoothing)

    def probabilities(self, logits: Tensor) -> Tensor:
        return torch.softmax(logits, dim=1)

    def decide(self, probs: Tensor) -> Tensor:
        return probs.argmax(dim=1)

    def n_correct(self, logits: Tensor, targets: Tensor) -> Tensor:
        return (logits.argmax(dim=1) == targets).sum()

    def score(self, metric: str, probs: Tensor, targets: Tensor) -> float:
        return score_single_label(metric, probs, targets, self.decide(probs), binary=False)

    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        preds = self.decide(probs)
        return single_label_metrics(
            "multiclass",
            probs,
            targets,
            preds,
            self.class_names,
            reliability=self.reliability_pairs(probs, targets),
        )

    def reliability_pairs(self, probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        # top-label: the most probable class's probability, against whether it was the class
        confidence, chosen = probs.max(dim=1)
        return confidence, (chosen == targets.to(chosen.device)).float()

    def stacked_targets(self, targets: Tensor, dtype: torch.dtype) -> StackedTargets:
        return SoftmaxTargets(targets, self.n_outputs, dtype)

    def one_vs_rest(
        self, targets: np.ndarray, probs: np.ndarray
    ) -> list[tuple[str, np.ndarray, np.ndarray]]:
        return [
            (name, (targets == j).astype(int), probs[:, j])
            for j, name in enumerate(self.class_names)
        ]


__all__ = ["MulticlassTask"]
