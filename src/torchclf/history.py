"""The record of a training run: :class:`History`, one row per epoch."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from torchclf.config import TrainConfig
from torchclf.errors import TrainingDiverged


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
        """JSON-ready summary: the last row, the best epoch, whether training stopped early.

        It travels in the model file, which holds what the model is: the same for the same data
        and seed. So the last row leaves out the clock (``time``) and the test rows' scores,
        which are reported elsewhere (history.csv, metrics.json) and never shape the model.
        """
        last = {
            k: v for k, v in (self.last if self.rows else {}).items()
            if k != "time" and not k.startswith("test_")
        }  # fmt: skip
        return {
            "epochs": len(self.rows),
            "best_epoch": self.best_epoch,
            "stopped_early": self.stopped_early,
            "compile_seconds": self.compile_seconds,
            "last": last,
        }


class BestEpoch:
    """Early stopping's bookkeeping: is this epoch's validation loss the best yet?

    It also counts the epochs since the last better one: ``exhausted`` once they reach
    ``patience``.
    """

    def __init__(self, patience: int, min_delta: float = 0.0) -> None:
        self.patience, self.min_delta = patience, min_delta
        self.best_loss, self.epochs_without_improvement = math.inf, 0

    def better(self, loss: float) -> bool:
        """Record an epoch's validation loss; True when it improves on the best by min_delta."""
        if loss < self.best_loss - self.min_delta:
            self.best_loss, self.epochs_without_improvement = loss, 0
            return True
        self.epochs_without_improvement += 1
        return False

    @property
    def exhausted(self) -> bool:
        """``patience`` epochs in a row without a better validation loss."""
        return self.epochs_without_improvement >= self.patience


def check_finite_loss(row: dict[str, float], lr: float) -> None:
    """Raise :class:`TrainingDiverged` when an epoch's training loss is NaN or infinite.

    It suggests a tenth of ``lr``, but never more than the default learning rate: after lr=1e6
    diverged, 1e5 would too.
    """
    if not math.isfinite(row["train_loss"]):
        default_lr = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "lr")
        suggested = min(lr / 10, float(default_lr))  # type: ignore[arg-type]
        raise TrainingDiverged(row["train_loss"], int(row["epoch"]), lr, suggested)


__all__ = ["BestEpoch", "History", "check_finite_loss"]
