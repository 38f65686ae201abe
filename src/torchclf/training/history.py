"""The record of a training run: :class:`History`, one row per epoch."""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

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
    # a cross-fitted ensemble's members each keep their own best epoch (best_epoch: the last)
    member_best_epochs: list[int | None] | None = None
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

    def to_json(self) -> dict[str, Any]:
        """Everything in the history, as JSON values (a checkpoint holds it)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> History:
        """The history :meth:`to_json` gave (an empty one from ``{}``)."""
        return cls(**values)

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
            **({"member_best_epochs": self.member_best_epochs} if self.member_best_epochs else {}),
            "stopped_early": self.stopped_early,
            "compile_seconds": self.compile_seconds,
            "last": last,
        }


class BestEpochs:
    """The early-stopping rule, for one model or ``M`` at once; every loop uses this one.

    After each epoch a member's validation loss is *better* when it is below its best so far by
    more than ``min_delta``; the loop then keeps that epoch's weights. A member stops once
    ``patience`` epochs in a row were not better. Everything is an ``(M,)`` tensor on the loss's
    device, so the hand-written engine folds in a whole stack of members without reading the
    device; a single model passes ``(1,)`` tensors.
    """

    _STATE = ("best_loss", "best_epoch", "stop_epoch", "waited")

    def __init__(self, losses: Tensor, patience: int, min_delta: float = 0.0) -> None:
        """Start from ``losses``' shape, dtype and device (their values are not used)."""
        self.patience, self.min_delta = patience, min_delta
        self.best_loss = torch.full_like(losses, math.inf)  # (M,)
        self.best_epoch = torch.zeros(losses.shape, dtype=torch.long, device=losses.device)
        self.stop_epoch = torch.zeros_like(self.best_epoch)  # 0 while a member trains on
        self.waited = torch.zeros_like(self.best_epoch)  # epochs since the last better one

    def state(self) -> dict[str, Tensor]:
        """The rule's tensors, for a checkpoint."""
        return {name: getattr(self, name) for name in self._STATE}

    def load(self, state: dict[str, Tensor]) -> None:
        """Take up :meth:`state`'s tensors, on this rule's device."""
        for name in self._STATE:
            setattr(self, name, state[name].to(getattr(self, name).device))

    def update(self, losses: Tensor, live: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        """Fold in the validation losses ``(M,)`` after ``epoch``.

        ``live`` ``(M,)`` says who trained this epoch. Returns who improved (keep their
        weights) and who trains on.
        """
        improved = live & (losses < self.best_loss - self.min_delta)
        self.best_loss = torch.where(improved, losses, self.best_loss)
        self.best_epoch = torch.where(improved, epoch, self.best_epoch)
        self.waited = torch.where(improved, 0, self.waited + live.long())
        stops = live & (self.waited >= self.patience)
        self.stop_epoch = torch.where(stops, epoch, self.stop_epoch)
        return improved, live & ~stops


class EpochRecorder:
    """Each loop's one way to record an epoch: the row, its checks, its time, the callback.

    ``record`` completes a row of ``History`` from the loop's numbers (losses and accuracies by
    split), stops a diverged run with :func:`check_finite_loss`, adds the learning rate and the
    seconds since the recorder was made, appends it and hands it to ``on_epoch``. A sweep, which
    records its members' epochs after training them and ranks a diverged member last rather than
    stopping, passes ``timed=False`` and ``stop_on_divergence=False``.
    """

    def __init__(
        self,
        history: History,
        on_epoch: Callable[[dict[str, float]], None] | None = None,
        *,
        timed: bool = True,
        stop_on_divergence: bool = True,
    ) -> None:
        self.history, self.on_epoch = history, on_epoch
        self.timed, self.stop_on_divergence = timed, stop_on_divergence
        # a resumed history's clock goes on from its last row
        self.start = time.perf_counter() - (history.rows[-1].get("time", 0.0) if history else 0.0)

    def record(self, epoch: int, values: dict[str, float], lr: float) -> dict[str, float]:
        """Append epoch ``epoch``'s row: ``{"epoch", **values, "lr", "time"}``."""
        row = {"epoch": float(epoch), **values}
        if self.stop_on_divergence:
            check_finite_loss(row, lr)
        row["lr"] = lr
        if self.timed:
            row["time"] = time.perf_counter() - self.start
        self.history.rows.append(row)
        if self.on_epoch is not None:
            self.on_epoch(row)
        return row


def check_finite_loss(row: dict[str, float], lr: float) -> None:
    """Raise :class:`TrainingDiverged` when an epoch's training loss is NaN or infinite.

    It suggests a tenth of ``lr``, but never more than the default learning rate: after lr=1e6
    diverged, 1e5 would too.
    """
    if not math.isfinite(row["train_loss"]):
        default_lr = next(f.default for f in dataclasses.fields(TrainConfig) if f.name == "lr")
        suggested = min(lr / 10, float(default_lr))  # type: ignore[arg-type]
        raise TrainingDiverged(row["train_loss"], int(row["epoch"]), lr, suggested)


__all__ = ["BestEpochs", "EpochRecorder", "History", "check_finite_loss"]
