"""The training loop: one readable function, :func:`train_model`.

It trains a model on tensors that are already on the device and already preprocessed, evaluates
it on the validation and test splits after every epoch, and records everything in a
:class:`History`. Early stopping is a flag checked at the end of an epoch, not an exception.

Per epoch the loop synchronises with the device once (to read the epoch's losses); the running
sums stay on the device in between.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from torchclf.config import TrainConfig
from torchclf.data.batches import IndexBatches, default_batch_size
from torchclf.data.labelled import Labelled, to_labelled
from torchclf.distributed import Group
from torchclf.nn.models import Ensemble
from torchclf.tasks import Task
from torchclf.training.checkpoints import (
    Checkpoints,
    LoopState,
    load_optimizer_state,
    optimizer_state,
)
from torchclf.training.history import BestEpochs, EpochRecorder, History, check_finite_loss

EVAL_BATCH_ROWS = 8192  # rows per forward pass when evaluating without gradients


def make_optimizer(config: TrainConfig, parameters: Any) -> torch.optim.Optimizer:
    """The optimizer named by ``config.optimizer`` (a plain dict of ``torch.optim`` classes)."""
    if config.optimizer == "sgd":
        return torch.optim.SGD(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    if config.optimizer == "rmsprop":
        return torch.optim.RMSprop(
            parameters, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
        )
    optimizer_class = {"adam": torch.optim.Adam, "adamw": torch.optim.AdamW}[config.optimizer]
    return optimizer_class(parameters, lr=config.lr, weight_decay=config.weight_decay)


def make_scheduler(config: TrainConfig, optimizer: torch.optim.Optimizer) -> Any:
    """The per-epoch learning-rate schedule, or None.

    cosine: anneal to 0 over ``epochs``; step: divide by 10 after each third of the epochs;
    plateau: halve the rate when the monitored loss has not improved for 10 epochs.
    """
    schedules = torch.optim.lr_scheduler
    if config.lr_schedule == "cosine":
        return schedules.CosineAnnealingLR(optimizer, T_max=config.epochs)
    if config.lr_schedule == "step":
        return schedules.StepLR(optimizer, step_size=max(1, config.epochs // 3), gamma=0.1)
    if config.lr_schedule == "plateau":
        return schedules.ReduceLROnPlateau(optimizer, factor=0.5, patience=10)
    return None


def training_batches(
    model: nn.Module,
    n_rows: int,
    config: TrainConfig,
    device: torch.device,
    group: Group | None = None,
) -> IndexBatches:
    """The run's shuffled index batches (every loop of a run cuts the same ones).

    Full batch up to ``TrainConfig.FULL_BATCH_MAX`` rows unless ``config.batch_size`` says
    otherwise; a last batch of one row is dropped when the model has batch norm, which fails on
    a single row in training mode. With a ``group`` of processes, this process's share: the
    batch size is the global one, each process taking ``batch_size // world_size`` rows of it
    (rounded down: the global batch is a multiple of the processes), and the
    ``n_rows % world_size`` rows an epoch's order puts last sit that epoch out, as with
    ``DistributedSampler(drop_last=True)``.
    """
    batch_size = default_batch_size(n_rows, config.batch_size, TrainConfig.FULL_BATCH_MAX)
    rank, world_size = (0, 1) if group is None else (group.rank, group.world_size)
    batch_size = max(1, batch_size // world_size)
    drop_last = (n_rows // world_size) % batch_size == 1 and any(
        isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()
    )
    return IndexBatches(
        n_rows,
        batch_size,
        shuffle=True,
        seed=config.seed,
        drop_last=drop_last,
        rank=rank,
        world_size=world_size,
        device=device,
    )


@torch.inference_mode()
def evaluate_loss(
    model: nn.Module, task: Task, loss_fn: nn.Module, data: Labelled
) -> tuple[float, float]:
    """Mean loss and accuracy of ``model`` on ``data``, without autograd, in large batches."""
    was_training = model.training
    model.eval()
    loss_sum = torch.zeros((), dtype=data.X.dtype, device=data.X.device)  # the model's precision
    correct = torch.zeros((), device=data.X.device)
    n_rows = len(data.X)
    for start in range(0, n_rows, EVAL_BATCH_ROWS):
        rows = slice(start, start + EVAL_BATCH_ROWS)
        logits = model(data.X[rows])
        loss_sum += loss_fn(logits, data.y[rows]) * len(logits)
        correct += task.n_correct(logits, data.y[rows])
    model.train(was_training)
    return float(loss_sum) / n_rows, float(correct) / n_rows


def train_model(
    model: nn.Module,
    task: Task,
    loss_fn: nn.Module,
    train: Labelled,
    config: TrainConfig,
    *,
    validation: Labelled | None = None,
    test: Labelled | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    optimizer: torch.optim.Optimizer | None = None,
    start_epoch: int = 1,
    batches: IndexBatches | None = None,
    checkpoints: Checkpoints | None = None,
    group: Group | None = None,
) -> History:
    """Train ``model`` in place and return its history.

    Args:
        model: maps features to logits; already on the data's device.
        task: turns logits into correct-prediction counts for the accuracy columns.
        loss_fn: the task's loss, on the data's device.
        train: training rows (with sample weights, the loss is their weighted mean).
        config: optimizer, schedule, epochs, batch size, clipping, early stopping, seed.
        validation: rows for early stopping (and the plateau schedule); never trained on.
        test: rows only reported, never used for any decision.
        on_epoch: called with each epoch's history row once it is complete (progress display).
        optimizer: continue with this optimizer (and its state) instead of a new one.
        start_epoch: the first epoch's number, when continuing earlier training; it also
            seeds that epoch's shuffling.
        batches: the run's index batches (default: :func:`training_batches`).
        checkpoints: write the loop's state when they say it is due (between batches and after
            each epoch), and go on from :attr:`Checkpoints.resumed` when it is set.
        group: the processes training ``model`` together (:mod:`torchclf.distributed`):
            ``batches`` hold this one's share, each step's gradients are their mean over the
            processes' rows, the epoch's training metrics are summed over them, and rank 0's
            validation loss decides (early stopping, the plateau schedule) for all.

    Raises:
        TrainingError: when the training loss becomes NaN or infinite.
    """
    if batches is None:
        batches = training_batches(model, len(train.X), config, train.X.device, group)
    per_sample_loss = copy.copy(loss_fn)
    per_sample_loss.reduction = "none"  # type: ignore[assignment]  # nn.Module attrs are Tensor|Module  # (batch, outputs) or (batch,): weighted below
    optimizer = optimizer if optimizer is not None else make_optimizer(config, model.parameters())
    scheduler = make_scheduler(config, optimizer)
    history = History()
    recorder = EpochRecorder(history, on_epoch)
    one = torch.ones(1, dtype=torch.bool)  # (1,): a single model always trains on
    rule = BestEpochs(torch.zeros(1, dtype=torch.float64), config.patience, config.min_delta)
    best_state, stop = None, False
    first_epoch, skip_batches = start_epoch, 0
    resumed = checkpoints.resumed if checkpoints is not None else None
    if resumed is not None:  # go on where the checkpoint was written
        model.load_state_dict(resumed.sub("model"))
        load_optimizer_state(optimizer, resumed, "optimizer")
        if scheduler is not None:
            scheduler.load_state_dict(resumed.values["scheduler"])
        rule.load(resumed.sub("rule"))
        best = resumed.sub("best")
        best_state = best or None
        history = History.from_dict(checkpoints.history)  # type: ignore[union-attr]
        recorder = EpochRecorder(history, on_epoch)
        first_epoch, skip_batches = resumed.values["epoch"], resumed.values["batch"]
    if checkpoints is not None:
        checkpoints.track(history)
    if group is not None:  # one starting point (the same seed made it; rank 0's, to be sure)
        group.broadcast_module(model)

    def snapshot(sums: tuple[Tensor, Tensor, int] | None = None) -> LoopState:
        """The loop's state; ``sums``: the epoch's running loss, correct count and rows."""
        state = LoopState()
        state.put("model", model.state_dict())
        optimizer_state(optimizer, state, "optimizer")
        state.values["scheduler"] = None if scheduler is None else scheduler.state_dict()
        state.put("rule", rule.state())
        state.put("best", best_state or {})
        if sums is not None:
            state.put("sums", {"loss": sums[0], "correct": sums[1]})
            state.values["rows_seen"] = sums[2]
        return state

    # torch.compile compiles on the first call: that step's time is reported as the compile time
    forward = torch.compile(model) if config.compile else model

    def batch_loss(logits: Tensor, targets: Tensor, weight: Tensor | None) -> Tensor:
        if weight is None:
            return loss_fn(logits, targets)
        return _weighted_loss(per_sample_loss, logits, targets, weight)

    for epoch in range(first_epoch, start_epoch + config.epochs):
        model.train()
        loss_sum = torch.zeros((), dtype=train.X.dtype, device=train.X.device)
        correct = torch.zeros((), device=train.X.device)
        rows_seen = 0
        shares: list[Tensor] = []  # several processes: each batch's (loss x mass, mass, rows)
        epoch_batches = list(batches.epoch(epoch))
        if skip_batches:  # resumed inside this epoch: its first batches are done
            sums = resumed.sub("sums")  # type: ignore[union-attr]
            loss_sum, correct = sums["loss"].to(loss_sum), sums["correct"].to(correct)
            rows_seen = resumed.values["rows_seen"]  # type: ignore[union-attr]
        for index, rows in enumerate(epoch_batches):
            if index < skip_batches:
                continue
            if 0 < index and checkpoints is not None and checkpoints.due():
                checkpoints.save(snapshot((loss_sum, correct, rows_seen)), epoch, index)
            X_batch, y_batch = train.X[rows], train.y[rows]
            step_start = time.perf_counter()
            weight = None if train.weight is None else train.weight[rows]
            if isinstance(model, Ensemble):
                # each member learns from its own logits (K, b, out): the sum of the members'
                # losses gives each member its own loss's gradient; the ensemble's loss is
                # recorded
                member_logits = model.member_logits(X_batch)
                members = len(member_logits)
                every_y = y_batch.repeat(members, *[1] * (y_batch.dim() - 1))  # (K * b, ...)
                every_weight = None if weight is None else weight.repeat(members)
                objective = members * batch_loss(member_logits.flatten(0, 1), every_y, every_weight)
                logits = model.combine(member_logits.detach())
                loss = batch_loss(logits, y_batch, weight)
            else:
                logits = forward(X_batch)
                objective = loss = batch_loss(logits, y_batch, weight)
            optimizer.zero_grad(set_to_none=True)
            objective.backward()
            if group is not None:  # the step one process would take on the whole batch
                mass = torch.as_tensor(
                    _mass(loss_fn, y_batch, weight), dtype=torch.float64, device=loss.device
                )
                group.reduce_gradients(list(model.parameters()), mass)
                rows_here = torch.full_like(mass, len(X_batch))
                shares.append(torch.stack([loss.detach().double() * mass, mass, rows_here]))
            if config.grad_clip is not None:
                nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
            optimizer.step()
            if config.compile and history.compile_seconds is None:
                history.compile_seconds = time.perf_counter() - step_start
            loss_sum += loss.detach() * len(X_batch)
            correct += task.n_correct(logits.detach(), y_batch)
            rows_seen += len(X_batch)

        if group is not None:  # every process's rows; batch norm's statistics as rank 0's
            loss_sum, correct, rows_seen = _epoch_sums(group, shares, correct)
            group.broadcast_module(model, buffers_only=True)
        values = {
            "train_loss": float(loss_sum) / rows_seen,
            "train_accuracy": float(correct) / rows_seen,
        }
        for prefix, split in (("val", validation), ("test", test)):
            if split is not None:
                values[f"{prefix}_loss"], values[f"{prefix}_accuracy"] = evaluate_loss(
                    model, task, loss_fn, split
                )
        row = recorder.record(epoch, values, optimizer.param_groups[0]["lr"])

        monitored = row.get("val_loss", row["train_loss"])
        if group is not None:  # the processes agree on what they act on: rank 0's
            monitored = group.main_value(monitored)
        if scheduler is not None:
            if config.lr_schedule == "plateau":
                scheduler.step(monitored)
            else:
                scheduler.step()
        if config.early_stopping:
            improved, live = rule.update(torch.tensor([monitored], dtype=torch.float64), one, epoch)
            if improved.item():
                best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                history.best_epoch = epoch
            stop = not live.item()
        if stop:
            history.stopped_early = True
            break
        skip_batches = 0
        if checkpoints is not None and checkpoints.due(epoch):
            checkpoints.save(snapshot(), epoch + 1)

    if best_state is not None:
        model.load_state_dict(best_state)  # early stopping keeps the best validation epoch
    return history


class ProgressPrinter:
    """An ``on_epoch`` callback that writes the tutorial's progress lines.

    It writes the first epoch, every ``every``-th and the last one; ``every`` defaults to a tenth
    of the epochs, as in the tutorial.
    """

    def __init__(
        self, epochs: int, every: int | None = None, write: Callable[[str], None] = print
    ) -> None:
        self.epochs = epochs
        self.every = every or max(1, epochs // 10)
        self.write = write

    def __call__(self, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        if epoch == 1 or epoch % self.every == 0 or epoch == self.epochs:
            self.write(format_progress(row))


def _epoch_sums(group: Group, shares: list[Tensor], correct: Tensor) -> tuple[Tensor, Tensor, int]:
    """The epoch's loss sum, correct count and rows over every process, as one process sums them.

    ``shares``: each batch's ``(loss x mass, mass, rows)`` on this process. One process adds each
    batch's (weighted) mean loss times its rows; so here, each batch's mean taken over every
    process's rows of it (one collective for the epoch).
    """
    packed = torch.cat([torch.stack(shares).flatten(), correct.double().reshape(1)])
    packed = group.sum_(packed.to(group.device)).cpu()  # (3 x batches + 1,)
    per_batch = packed[:-1].reshape(-1, 3)  # (batches, 3)
    loss_sum = (per_batch[:, 0] / per_batch[:, 1].clamp(min=1e-300) * per_batch[:, 2]).sum()
    return loss_sum, packed[-1], int(per_batch[:, 2].sum())


def _mass(loss_fn: nn.Module, targets: Tensor, weight: Tensor | None) -> Tensor | float:
    """What a batch's mean loss divides by: its rows, or the weights of its rows.

    ``targets`` ``(b,)`` or ``(b, outputs)``; ``weight`` ``(b,)``: the rows' sample weights. A
    class-weighted cross-entropy divides by its rows' class weights.
    """
    if weight is not None:
        return weight.sum()
    class_weight = getattr(loss_fn, "weight", None)
    if isinstance(loss_fn, nn.CrossEntropyLoss) and class_weight is not None:
        return class_weight[targets].sum()
    return float(len(targets))


def _weighted_loss(
    per_sample_loss: nn.Module, logits: Tensor, targets: Tensor, weight: Tensor
) -> Tensor:
    """``sum(w_i * loss_i) / sum(w_i)``: a weight of 2 counts a row twice, 0 drops it."""
    losses = per_sample_loss(logits, targets).reshape(len(targets), -1).mean(dim=1)  # (batch,)
    return (losses * weight).sum() / weight.sum().clamp(min=1e-12)


def format_progress(row: dict[str, float]) -> str:
    """One progress line in the tutorial's style."""
    parts = [f"Epoch: {int(row['epoch']):>4}"]
    for prefix, label in (("train", "Loss"), ("val", "Val loss"), ("test", "Test loss")):
        if f"{prefix}_loss" in row:
            parts.append(
                f"{label}: {row[f'{prefix}_loss']:.5f}, Acc: {100 * row[f'{prefix}_accuracy']:.2f}%"
            )
    return " | ".join(parts)


__all__ = [
    "History",
    "Labelled",
    "ProgressPrinter",
    "check_finite_loss",
    "evaluate_loss",
    "format_progress",
    "to_labelled",
    "train_model",
    "training_batches",
]
