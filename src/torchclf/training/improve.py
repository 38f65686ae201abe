"""The tutorial's "improving a model" step, automated: one change at a time, then combined.

Starting from a baseline :class:`~torchclf.training.sweep.Member`, :func:`improve` trains the
baseline and one variant per technique of the lesson: more layers, more hidden units, more epochs,
another activation, a higher and a lower learning rate, another optimizer. Then it stacks them,
greedily: on top of the best variant so far it tries each other change, and keeps the best of
those if it beats it, up to ``combine`` changes (a forward selection). Each round's variants
train at once on the stacked engine of :mod:`torchclf.sweep`.

What helped is judged on validation rows held out from the training rows, never on the test rows
(``eval_set``), which are only reported.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from torchclf.classifier import Classifier
from torchclf.training.sweep import Member, hold_out, train_members


@dataclass
class Variant:
    """One tried configuration and how it did."""

    change: str  # "baseline", "more layers", "activation relu", ...
    member: Member
    classifier: Classifier
    seconds: float  # its share of its architecture group's training time

    @property
    def val_accuracy(self) -> float:
        """Accuracy on the validation rows at the last epoch: what variants are compared on."""
        return self.classifier.history.last["val_accuracy"]

    @property
    def val_loss(self) -> float:
        """Loss on the validation rows at the last epoch: the tie-breaker."""
        return self.classifier.history.last["val_loss"]

    @property
    def train_accuracy(self) -> float:
        """Accuracy on the training rows at the last epoch."""
        return self.classifier.history.last["train_accuracy"]

    @property
    def test_accuracy(self) -> float | None:
        """Accuracy on the test rows at the last epoch (None without an ``eval_set``)."""
        return self.classifier.history.last.get("test_accuracy")

    @property
    def test_loss(self) -> float | None:
        """Loss on the test rows at the last epoch (None without an ``eval_set``)."""
        return self.classifier.history.last.get("test_loss")


def single_changes(baseline: Member) -> list[tuple[str, Member]]:
    """The lesson's techniques, each applied alone to ``baseline``."""
    replace = dataclasses.replace
    width = baseline.hidden[-1] if baseline.hidden else 10
    changes = [
        ("more layers", replace(baseline, hidden=(*baseline.hidden, width))),
        (
            "more hidden units",
            replace(baseline, hidden=tuple(4 * h for h in baseline.hidden) or (40,)),
        ),
        ("more epochs", replace(baseline, epochs=2 * baseline.epochs)),
        ("higher learning rate", replace(baseline, lr=baseline.lr * 10)),
        ("lower learning rate", replace(baseline, lr=baseline.lr / 10)),
    ]
    for activation in ("relu", "tanh", "identity"):
        if activation != baseline.activation:
            changes.append((f"activation {activation}", replace(baseline, activation=activation)))
    other = "sgd" if baseline.optimizer != "sgd" else "adam"
    changes.append((f"optimizer {other}", replace(baseline, optimizer=other)))
    return changes


def _changed_fields(baseline: Member, variant: Member) -> set[str]:
    """The Member fields in which ``variant`` differs from ``baseline``."""
    return {
        f.name
        for f in dataclasses.fields(Member)
        if getattr(variant, f.name) != getattr(baseline, f.name)
    }


def _train(X: Any, y: Any, tried: Sequence[tuple[str, Member]], **options: Any) -> list[Variant]:
    """Train ``tried`` stacked by architecture; time each group and share it among its members."""
    variants: list[Variant] = []
    groups: dict[tuple[Any, ...], list[tuple[str, Member]]] = {}
    for change, member in tried:
        groups.setdefault((member.hidden, member.activation), []).append((change, member))
    for group in groups.values():
        start = time.perf_counter()
        classifiers = train_members(X, y, [m for _, m in group], **options)
        share = (time.perf_counter() - start) / len(group)
        variants += [
            Variant(change, member, classifier, share)
            for (change, member), classifier in zip(group, classifiers, strict=True)
        ]
    order = {change: i for i, (change, _) in enumerate(tried)}
    return sorted(variants, key=lambda v: order[v.change])


def improve(
    X: Any,
    y: Any,
    baseline: Member,
    *,
    eval_set: tuple[Any, Any] | None = None,
    validation_fraction: float = 0.2,
    combine: int = 3,
    **options: Any,
) -> list[Variant]:
    """Try each technique alone, then the best ones together; return every variant tried.

    Args:
        X: training features.
        y: training targets.
        baseline: the starting configuration.
        eval_set: ``(X_test, y_test)``, reported for every variant, never used to compare them.
        validation_fraction: share of ``X``'s rows held out (stratified, seeded by the baseline's
            seed) on which variants are compared: a change helps when it raises the validation
            accuracy.
        combine: the most changes stacked together (a round of combinations for each beyond
            the first; a round that beats the best variant so far on no row ends it).
        **options: passed to :func:`torchclf.sweep.train_members` (dtype, device, standardize).

    Raises:
        ConfigError: for a ``validation_fraction`` outside (0, 0.9].
    """
    X, y, validation = hold_out(X, y, validation_fraction, baseline.seed)
    options = {**options, "eval_set": eval_set, "validation": validation}
    tried = [("baseline", baseline), *single_changes(baseline)]
    variants = _train(X, y, tried, **options)
    singles = variants[1:]
    best = max(variants, key=_on_validation)
    # Forward selection: stack each other change onto the best variant so far, never two
    # changes of one field (relu and tanh both change the activation)
    for _ in range(combine - 1):
        if best is variants[0]:
            break  # no change helped: nothing to stack
        touched = _changed_fields(baseline, best.member)
        candidates = []
        for single in singles:
            fields = _changed_fields(baseline, single.member)
            if not fields & touched:
                changed = {f: getattr(single.member, f) for f in fields}
                member = dataclasses.replace(best.member, **changed)
                candidates.append((f"{best.change} + {single.change}", member))
        if not candidates:
            break
        tried_now = _train(X, y, candidates, **options)
        variants += tried_now
        better = max(tried_now, key=_on_validation)
        if _on_validation(better) <= _on_validation(best):
            break
        best = better
    return variants


def best_variant(variants: Sequence[Variant]) -> Variant:
    """The variant :func:`improve` ends on: the highest validation accuracy, then lowest loss."""
    return max(variants, key=_on_validation)


def _on_validation(variant: Variant) -> tuple[float, float]:
    """How variants are ranked: validation accuracy, then (lower) validation loss."""
    return variant.val_accuracy, -variant.val_loss


def variants_table(variants: Sequence[Variant]) -> list[dict[str, Any]]:
    """Rows for printing or CSV: change, accuracies, difference from the baseline, seconds.

    The difference from the baseline is on the validation rows, where variants are compared.
    """
    base = variants[0].val_accuracy
    return [
        {
            "change": v.change,
            "hidden": "-".join(map(str, v.member.hidden)) or "linear",
            "activation": v.member.activation,
            "optimizer": v.member.optimizer,
            "lr": v.member.lr,
            "epochs": v.member.epochs,
            "train_accuracy": v.train_accuracy,
            "val_accuracy": v.val_accuracy,
            "vs_baseline": v.val_accuracy - base,
            "test_accuracy": v.test_accuracy,
            "test_loss": v.test_loss,
            "seconds": v.seconds,
        }
        for v in variants
    ]


__all__ = ["Variant", "best_variant", "improve", "single_changes", "variants_table"]
