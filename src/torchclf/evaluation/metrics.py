"""Classification metrics per task, a thin adapter over torchmetrics' functional API.

Every function takes the task's own outputs: probabilities ``(n, K)``, encoded targets and the
predicted codes that the task's decision rule (threshold or argmax) produced, so the metrics
score exactly the labels a user gets from ``predict``. Results are plain Python floats in an
:class:`Evaluation`. ``tests/test_metrics.py`` checks them against ``sklearn.metrics``.

torchmetrics is imported inside the functions: it costs seconds to import and only evaluation
needs it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

_EPS = 1e-15  # probabilities are clipped to [eps, 1 - eps] for the log loss, as in scikit-learn


@dataclass(frozen=True)
class Evaluation:
    """Metrics of one classifier on one dataset.

    Attributes:
        task: "binary", "multiclass" or "multilabel".
        class_names: the classes (or labels, for multilabel) in output order.
        scores: overall metrics, e.g. ``accuracy``, ``f1_macro``, ``roc_auc``, ``log_loss``.
        per_class: for each class name, its ``precision``, ``recall``, ``f1`` and ``support``.
        confusion_matrix: ``(K, K)`` counts, rows true and columns predicted; for multilabel one
            ``(2, 2)`` matrix per label, ``(L, 2, 2)``, as scikit-learn's
            ``multilabel_confusion_matrix``.
    """

    task: str
    class_names: tuple[str, ...]
    scores: dict[str, float]
    per_class: dict[str, dict[str, float]] = field(default_factory=dict)
    confusion_matrix: np.ndarray = field(default_factory=lambda: np.zeros((0, 0), dtype=np.int64))

    def __getitem__(self, name: str) -> float:
        return self.scores[name]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready values (NaN becomes None)."""

        def clean(value: float) -> float | None:
            return None if math.isnan(value) else value

        return {
            "task": self.task,
            "class_names": list(self.class_names),
            "scores": {k: clean(v) for k, v in self.scores.items()},
            "per_class": {
                name: {k: clean(v) for k, v in row.items()} for name, row in self.per_class.items()
            },
            "confusion_matrix": self.confusion_matrix.tolist(),
        }

    def __str__(self) -> str:
        lines = [f"{name:<16} {value:.4f}" for name, value in self.scores.items()]
        width = max([len(n) for n in self.per_class] + [5])
        lines.append("")
        lines.append(f"{'class':<{width}}  precision  recall      f1  support")
        for name, row in self.per_class.items():
            lines.append(
                f"{name:<{width}}  {row['precision']:9.4f}  {row['recall']:6.4f}  "
                f"{row['f1']:6.4f}  {int(row['support']):7d}"
            )
        return "\n".join(lines)


SCORES = ("log_loss", "accuracy", "roc_auc", "f1")  # what score_single_label and _multilabel give


def score_single_label(
    metric: str, probs: Tensor, codes: Tensor, preds: Tensor, *, binary: bool
) -> float:
    """One metric, higher is better: the log loss negated, as scikit-learn's scorers give it.

    ``probs`` ``(n, K)``, ``codes`` ``(n,)`` the true classes, ``preds`` ``(n,)`` the decided
    ones. "log_loss": scikit-learn's ``log_loss`` (clipped to the probabilities' own eps, rows
    renormalized); "roc_auc": the positive class's (binary) or one class against the rest,
    macro; "f1": the positive class's (binary) or macro.
    """
    if metric == "log_loss":
        eps = torch.finfo(probs.dtype).eps
        p = probs.double().clamp(eps, 1 - eps)
        p = p / p.sum(dim=1, keepdim=True)
        return float(p.gather(1, codes.long()[:, None]).log().mean())
    if metric == "accuracy":
        return float((preds == codes).double().mean())
    from sklearn.metrics import f1_score, roc_auc_score

    truth, scores = codes.numpy(), probs.double().numpy()
    if metric == "roc_auc":
        if binary:
            return float(roc_auc_score(truth, scores[:, 1]))
        classes = np.arange(scores.shape[1])
        return float(roc_auc_score(truth, scores, multi_class="ovr", labels=classes))
    average = "binary" if binary else "macro"
    return float(f1_score(truth, preds.numpy(), average=average, zero_division=0))


def score_multilabel(metric: str, probs: Tensor, targets: Tensor, preds: Tensor) -> float:
    """:func:`score_single_label` for labels ``(n, L)``.

    The labels' mean binary log loss, exact-match accuracy, macro ROC AUC and F1.
    """
    if metric == "log_loss":
        eps = torch.finfo(probs.dtype).eps
        p, y = probs.double().clamp(eps, 1 - eps), targets.double()
        return float((y * p.log() + (1 - y) * (1 - p).log()).mean())
    if metric == "accuracy":
        return float((preds == targets.to(preds.dtype)).all(dim=1).double().mean())
    from sklearn.metrics import f1_score, roc_auc_score

    truth = targets.numpy().astype(int)
    if metric == "roc_auc":
        return float(roc_auc_score(truth, probs.double().numpy(), average="macro"))
    return float(f1_score(truth, preds.numpy(), average="macro", zero_division=0))


def _floats(values: Tensor) -> list[float]:
    return [float(v) for v in values.double().cpu()]


def _log_loss(p_true: Tensor) -> float:
    """Mean negative log of the probability given to the true outcome, ``(n,)`` or ``(n, L)``."""
    return float(-torch.log(p_true.double().clamp(_EPS, 1 - _EPS)).mean())


def _per_class(
    class_names: tuple[str, ...], precision: Tensor, recall: Tensor, f1: Tensor, support: Tensor
) -> dict[str, dict[str, float]]:
    counts = [int(s) for s in support.tolist()]  # rows, whole numbers
    rows = zip(_floats(precision), _floats(recall), _floats(f1), counts, strict=True)
    return {
        name: {"precision": p, "recall": r, "f1": f, "support": s}
        for name, (p, r, f, s) in zip(class_names, rows, strict=True)
    }


def single_label_metrics(
    task: str,
    probs: Tensor,
    targets: Tensor,
    preds: Tensor,
    class_names: tuple[str, ...],
    *,
    positive: bool = False,
    reliability: tuple[Tensor, Tensor] | None = None,
) -> Evaluation:
    """Metrics for binary and multiclass tasks.

    Args:
        task: the task's name, recorded in the evaluation.
        probs: ``(n, K)`` class probabilities, rows summing to 1 (K = 2 for binary).
        targets: ``(n,)`` true class codes in ``[0, K)``.
        preds: ``(n,)`` predicted class codes (the task's decision, not necessarily the argmax).
        class_names: K names, in code order.
        positive: the last class is the positive one (binary): add its precision, recall and F1,
            and score ROC AUC on its probability.
        reliability: the task's (probability, came true) pairs, for the expected calibration
            error ``ece`` (see :func:`expected_calibration_error`).
    """
    import torchmetrics.functional.classification as tmf

    k = probs.shape[1]
    targets, preds = targets.long().cpu(), preds.long().cpu()
    probs = probs.float().cpu()
    common: dict[str, Any] = {"num_classes": k, "validate_args": False}
    per_precision = tmf.multiclass_precision(preds, targets, average="none", **common)
    per_recall = tmf.multiclass_recall(preds, targets, average="none", **common)
    per_f1 = tmf.multiclass_f1_score(preds, targets, average="none", **common)
    support = torch.bincount(targets, minlength=k)
    present = support > 0
    scores: dict[str, float] = {"accuracy": float((preds == targets).double().mean())}
    if positive:
        pos_p, pos_r, pos_f = (float(t[1]) for t in (per_precision, per_recall, per_f1))
        scores.update(precision=pos_p, recall=pos_r, f1=pos_f)
    # Macro averages over the classes present in the targets or the predictions, as scikit-learn.
    seen = present | (torch.bincount(preds, minlength=k) > 0)
    for name, values in (("precision", per_precision), ("recall", per_recall), ("f1", per_f1)):
        scores[f"{name}_macro"] = float(values[seen].double().mean())
    scores["f1_micro"] = scores["accuracy"]  # single-label: micro P = R = F1 = accuracy
    if bool(present.all()):
        if positive:
            auc = tmf.binary_auroc(probs[:, 1], targets, validate_args=False)
        else:
            auc = tmf.multiclass_auroc(probs, targets, average="macro", **common)
        scores["roc_auc"] = float(auc)
    else:
        scores["roc_auc"] = math.nan  # undefined without every class among the targets
    scores["log_loss"] = _log_loss(probs.gather(1, targets[:, None]))
    if reliability is not None:
        scores["ece"] = expected_calibration_error(*reliability)
    confusion = tmf.multiclass_confusion_matrix(preds, targets, **common)
    return Evaluation(
        task=task,
        class_names=class_names,
        scores=scores,
        per_class=_per_class(class_names, per_precision, per_recall, per_f1, support),
        confusion_matrix=confusion.numpy().astype(np.int64),
    )


def multilabel_metrics(
    probs: Tensor,
    targets: Tensor,
    preds: Tensor,
    label_names: tuple[str, ...],
    *,
    reliability: tuple[Tensor, Tensor] | None = None,
) -> Evaluation:
    """Metrics for a multilabel task.

    Args:
        probs: ``(n, L)`` independent per-label probabilities (rows need not sum to 1).
        targets: ``(n, L)`` true 0/1 indicators.
        preds: ``(n, L)`` predicted 0/1 indicators (per-label thresholds already applied).
        label_names: L names, in column order.
        reliability: the task's (probability, came true) pairs, for ``ece``.
    """
    import torchmetrics.functional.classification as tmf

    n_labels = probs.shape[1]
    targets, preds, probs = targets.long().cpu(), preds.long().cpu(), probs.float().cpu()
    common: dict[str, Any] = {"num_labels": n_labels, "validate_args": False}
    per_precision = tmf.multilabel_precision(preds, targets, average="none", **common)
    per_recall = tmf.multilabel_recall(preds, targets, average="none", **common)
    per_f1 = tmf.multilabel_f1_score(preds, targets, average="none", **common)
    exact_match = float(tmf.multilabel_exact_match(preds, targets, **common))
    scores: dict[str, float] = {
        # "accuracy" is subset accuracy, as sklearn.metrics.accuracy_score on indicator matrices
        "accuracy": exact_match,
        "exact_match": exact_match,
        "hamming_loss": float(tmf.multilabel_hamming_distance(preds, targets, **common)),
    }
    for name, values in (("precision", per_precision), ("recall", per_recall), ("f1", per_f1)):
        scores[f"{name}_macro"] = float(values.double().mean())
    for name, fn in (
        ("precision", tmf.multilabel_precision),
        ("recall", tmf.multilabel_recall),
        ("f1", tmf.multilabel_f1_score),
    ):
        scores[f"{name}_micro"] = float(fn(preds, targets, average="micro", **common))
    positives = targets.sum(dim=0)
    both_present = (positives > 0) & (positives < targets.shape[0])
    if bool(both_present.all()):
        scores["roc_auc"] = float(tmf.multilabel_auroc(probs, targets, average="macro", **common))
    else:
        scores["roc_auc"] = math.nan
    scores["log_loss"] = _log_loss(torch.where(targets.bool(), probs, 1 - probs))
    if reliability is not None:
        scores["ece"] = expected_calibration_error(*reliability)
    confusion = tmf.multilabel_confusion_matrix(preds, targets, **common)
    return Evaluation(
        task="multilabel",
        class_names=label_names,
        scores=scores,
        per_class=_per_class(label_names, per_precision, per_recall, per_f1, positives),
        confusion_matrix=confusion.numpy().astype(np.int64),
    )


RELIABILITY_BINS = 10  # equal-width bins of stated probability, as is usual for the ECE


def expected_calibration_error(stated: Tensor, came_true: Tensor) -> float:
    """The expected calibration error of (probability, came true) pairs, two ``(m,)`` tensors.

    The pairs are binned by stated probability (:data:`RELIABILITY_BINS` equal widths); each
    bin's gap between its mean stated probability and how often it came true, weighted by its
    share of the pairs (torchmetrics' binary calibration error, L1).
    """
    import torchmetrics.functional.classification as tmf

    error = tmf.binary_calibration_error(
        stated.float().cpu().contiguous(),
        came_true.long().cpu(),
        n_bins=RELIABILITY_BINS,
        norm="l1",
        validate_args=False,
    )
    return float(error)


def reliability_bins(stated: np.ndarray, came_true: np.ndarray) -> dict[str, np.ndarray]:
    """Per bin of :func:`expected_calibration_error`: mean stated, how often true, count."""
    edges = np.linspace(0.0, 1.0, RELIABILITY_BINS + 1)
    index = np.clip(np.digitize(stated, edges[1:-1], right=True), 0, RELIABILITY_BINS - 1)
    count = np.bincount(index, minlength=RELIABILITY_BINS)
    with np.errstate(invalid="ignore"):
        mean_stated = np.bincount(index, stated, RELIABILITY_BINS) / count
        frequency = np.bincount(index, came_true, RELIABILITY_BINS) / count
    return {"edges": edges, "stated": mean_stated, "frequency": frequency, "count": count}


def choose_threshold(p_positive: np.ndarray, positive: np.ndarray, rule: str) -> float:
    """A binary decision threshold chosen on held-out rows.

    Args:
        p_positive: ``(n,)`` predicted probabilities of the positive class.
        positive: ``(n,)`` true 0/1 labels.
        rule: "f1" for the threshold with the highest F1, or "recall:R" for the highest
            threshold whose recall is at least R (the most precise one that reaches R).
    """
    from sklearn.metrics import precision_recall_curve

    precision, recall, thresholds = precision_recall_curve(positive, p_positive)
    precision, recall = precision[:-1], recall[:-1]  # the last point has no threshold
    if rule == "f1":
        with np.errstate(invalid="ignore", divide="ignore"):
            f1 = np.nan_to_num(2 * precision * recall / (precision + recall))
        chosen = thresholds[int(np.argmax(f1))]
    else:
        target = float(rule.removeprefix("recall:"))
        chosen = thresholds[int(np.flatnonzero(recall >= target).max())]
    return float(np.clip(chosen, 1e-6, 1 - 1e-6))  # a threshold must lie inside (0, 1)


__all__ = [
    "Evaluation",
    "choose_threshold",
    "expected_calibration_error",
    "multilabel_metrics",
    "reliability_bins",
    "single_label_metrics",
]
