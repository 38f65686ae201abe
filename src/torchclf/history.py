"""The record of a training run: :class:`History`, one row per epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torchclf.errors import TrainingError


@dataclass
class History:
    """The per-epoch record of a training run.

    One row per epoch: ``epoch``, ``train_loss``, ``train_accuracy``, ``val_*`` and ``test_*`` when
    those splits exist, ``lr`` and ``time`` (seconds since the start).
    """

    rows: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None  # the epoch whose weights were kept by early stopping
    stopped_early: bool = False
    compile_seconds: float | None = None  # with compile=True: the first step's time, compiling

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self) -> Iterator[dict[str, float]]:
        return iter(self.rows)

    def column(self, name: str) -> list[float]:
        """Every epoch's value of one metric, e.g. ``history.column("test_accuracy")``."""
        return [row[name] for row in self.rows]

    @property
    def last(self) -> dict[str, float]:
        """The last epoch's row."""
        return self.rows[-1]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary: the last row, the best epoch, whether training stopped early."""
        return {
            "epochs": len(self.rows),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "compile_seconds": self.compile_seconds,
            "last": dict(self.last) if self.rows else {},
        }


def check_finite_loss(row: dict[str, float], lr: float) -> None:
    """Raise :class:`TrainingError` when an epoch's training loss is NaN or infinite."""
    if not math.isfinite(row["train_loss"]):
        raise TrainingError(
            f"the training loss became {row['train_loss']} at epoch {int(row['epoch'])} with "
            f"lr={lr:g}: training diverged. Lower the learning rate (for example lr={lr / 10:g}) "
            "or set grad_clip"
        )


__all__ = ["History", "check_finite_loss"]
