"""Binary: one logit, sigmoid, a threshold on the positive class' probability."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.data.labels import (
    as_label_array,
)
from torchclf.evaluation.metrics import Evaluation, score_single_label, single_label_metrics
from torchclf.nn.losses import SigmoidTargets, StackedTargets
from torchclf.tasks.base import Task, _bce_loss, _check_threshold, _row_weights


class BinaryTask(Task):
    """Two classes, one logit: ``P(classes[1]) = sigmoid(logit)``, predicted if ``>= threshold``."""

    name = "binary"
    link = "sigmoid"
    loss_name = "binary cross-entropy"

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

    def score(self, metric: str, probs: Tensor, targets: Tensor) -> float:
        codes = targets[:, 0].long()  # (n,): 0 / 1
        return score_single_label(metric, probs, codes, self.decide(probs), binary=True)

    def evaluate(self, probs: Tensor, targets: Tensor) -> Evaluation:
        codes = targets[:, 0].long()
        return single_label_metrics(
            "binary",
            probs,
            codes,
            self.decide(probs),
            self.class_names,
            positive=True,
            reliability=self.reliability_pairs(probs, targets),
        )

    def reliability_pairs(self, probs: Tensor, targets: Tensor) -> tuple[Tensor, Tensor]:
        # the positive class's probability, against whether the row is positive
        return probs[:, 1], targets[:, 0].float()

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


__all__ = ["BinaryTask"]
