"""Training on Parquet data larger than memory: ``fit_parquet``.

The data never sits in memory whole. One streaming pass over the row groups learns what the
in-memory path learns from the training rows (each feature's mean and standard deviation, in
float64 with Chan's parallel merge, and the classes). Every epoch then reads the row groups in a
shuffled order on a background thread, standardizes them, and feeds a shuffle buffer of
``shuffle_buffer_rows`` rows from which mini-batches are drawn in random order: row-group order
shuffling plus a shuffle buffer, the usual approximation of a full shuffle when a full one does
not fit. The batches train the hand-written engine (:mod:`torchclf.engine`), one step each.

Peak memory is bounded by the settings, not by the file: the shuffle buffer's three reused
arrays (the rows waiting, their permuted copy, the block leaving) of ``shuffle_buffer_rows`` rows
plus a row group each, and ``READ_AHEAD + 1`` row groups being read, as float32, on top of the
model and torch itself.

Launched as several processes (:mod:`torchclf.distributed`), each reads its share of every
epoch's shuffled row groups (every ``world_size``-th) through its own shuffle buffer; each step's
gradient is the mean over every process's batch, and a process whose share has run out steps on
with the others (adding no rows) until theirs have too, so every row trains every epoch. Rank 0's
validation loss decides early stopping; checkpoints come between epochs, written by rank 0.

Scope: numeric feature columns without missing values and one label column (binary or
multiclass). Anything else is a clear :class:`~torchclf.errors.DataError`; such tables train in
memory with :func:`torchclf.fit`.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Sequence
from contextlib import nullcontext
from pathlib import Path

import torch
from torch import Tensor

from torchclf import distributed
from torchclf.classifier import Classifier
from torchclf.config import ModelConfig, TrainConfig, check_choice, config_from
from torchclf.data.labelled import to_labelled
from torchclf.data.parquet import Holdout, ParquetSource, StreamPosition, scan, shuffled_blocks
from torchclf.devices import resolve_device
from torchclf.encoders import ArrayEncoder
from torchclf.engine import (
    STACKED_OPTIMIZERS,
    BatchFeatures,
    Hyper,
    StackedMLP,
    StackedOptimizer,
    step_batch,
)
from torchclf.errors import ConfigError
from torchclf.nn.models import build_model
from torchclf.nn.starting_point import auto_hidden
from torchclf.tasks import infer_task
from torchclf.training.checkpoints import LoopState, open_checkpoints
from torchclf.training.history import BestEpochs, EpochRecorder, History
from torchclf.training.loop import ProgressPrinter, evaluate_loss
from torchclf.training.schedule import resolve_schedule

_NOT_SETTINGS = frozenset({"verbose", "checkpoint_dir", "checkpoint_every", "resume_from"})


def fit_parquet(
    path: str | Path,
    target: str,
    *,
    features: Sequence[str] | None = None,
    hidden: Sequence[int] | str = "auto",
    activation: str = "relu",
    optimizer: str = "adam",
    lr: float = 0.003,
    weight_decay: float = 0.003,
    momentum: float = 0.0,
    epochs: int | str = "auto",
    early_stopping: bool | str = "auto",
    validation_fraction: float | str = "auto",
    patience: int | str = "auto",
    min_delta: float = 0.0,
    batch_size: int = 256,
    shuffle_buffer_rows: int = 262_144,
    dtype: str = "float32",
    seed: int = 42,
    device: str = "auto",
    verbose: bool = False,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | str = "auto",
    resume_from: str | os.PathLike[str] | None = None,
) -> Classifier:
    """Train a classifier on a Parquet file (or a folder of them) without loading it.

    Args:
        path: a ``.parquet`` file or a folder of them with the same columns.
        target: the label column; rows without a label are skipped (and counted).
        features: the feature columns (default: every other column); numeric, complete.
        hidden: hidden layer sizes, or "auto" as in :func:`torchclf.fit`.
        activation: the hidden layers' activation.
        optimizer: "adam", "adamw" or "sgd".
        lr: learning rate.
        weight_decay: L2 (decoupled for adamw).
        momentum: sgd momentum.
        epochs: the most passes over the data; "auto" as in :func:`torchclf.fit` (about 30,000
            steps, at most 200 epochs).
        early_stopping: keep the epoch with the lowest validation loss and stop when it has not
            improved for ``patience`` epochs; "auto": whenever there are validation rows.
        validation_fraction: share of the rows held out for validation, drawn row by row (seeded)
            from every row group and kept in memory; "auto": 20%, at most about 10,000 rows.
        patience: epochs without a better validation loss before stopping; "auto": 10.
        min_delta: smallest decrease of the validation loss that counts as an improvement.
        batch_size: rows per optimizer step.
        shuffle_buffer_rows: rows held for shuffling; with the row groups read ahead, this
            bounds the memory the data takes.
        dtype: "float32" or "float64".
        seed: initialisation and shuffling.
        device: "auto", "cpu", "cuda" or "mps".
        verbose: print one progress line per epoch.
        checkpoint_dir: write the whole training state into this folder as it trains, as
            :func:`torchclf.fit` does, inside an epoch too: the row groups read, the rows in the
            shuffle buffer and its generator with the weights and the optimizer.
        checkpoint_every: how often ("auto": every 60 seconds, epochs, or "30s").
        resume_from: go on from the newest checkpoint of this folder (the same data, whose
            statistics it compares, and settings); the model comes out bit for bit as an
            uninterrupted run's. Ctrl-C while it trains writes a checkpoint and raises
            :class:`~torchclf.TrainingInterrupted`.

    Returns:
        An ordinary :class:`~torchclf.Classifier`: its encoder takes DataFrames with the feature
        columns, or arrays in their order.
    """
    given = dict(locals())  # the keywords as called: the configs copy theirs by name
    settings = {k: v for k, v in given.items() if k not in _NOT_SETTINGS}
    settings["path"] = str(path)
    source = ParquetSource.open(path, target, features)
    schedule = resolve_schedule(
        source.n_rows,
        epochs=epochs,
        early_stopping=early_stopping,
        validation_fraction=validation_fraction,
        patience=patience,
        batch_size=batch_size,
    )
    config = config_from(
        TrainConfig,
        given,
        epochs=schedule.epochs,
        early_stopping=schedule.early_stopping,
        validation_fraction=schedule.validation_fraction,
        patience=schedule.patience,
        numeric_embedding="none",  # a stream's features are standardized, nothing more
    )
    check_choice("optimizer", optimizer, STACKED_OPTIMIZERS)
    if shuffle_buffer_rows < batch_size:
        raise ConfigError(
            f"The 'shuffle_buffer_rows' parameter must hold at least one batch ({batch_size} "
            f"rows). Got {shuffle_buffer_rows!r} instead."
        )
    holdout = Holdout(config.validation_fraction, seed) if config.validation_fraction else None
    statistics = scan(source, holdout)
    task = infer_task(statistics.classes)
    encoder = ArrayEncoder.from_statistics(
        statistics.mean, statistics.std, list(source.features), dtype
    )
    if isinstance(hidden, str) and hidden == "auto":
        hidden = auto_hidden(len(source.features), task.n_outputs)
    model_config = config_from(
        ModelConfig,
        given,
        in_features=len(source.features),
        out_features=task.n_outputs,
        hidden=hidden,
    )
    torch_device = distributed.local_device(resolve_device(device))
    torch_dtype = getattr(torch, dtype)
    group = distributed.current(torch_device)  # several processes: each streams its share
    rank, world_size = (0, 1) if group is None else (group.rank, group.world_size)
    model = build_model(model_config, seed).to(device=torch_device, dtype=torch_dtype)
    names = list(model.state_dict())
    net = StackedMLP.from_config(model_config, [model.state_dict()])
    epochs = config.epochs
    stepper = StackedOptimizer([Hyper(optimizer, lr, weight_decay, momentum, epochs)], net.flat)
    validation = None
    if statistics.X_val is not None:
        val_targets = task.encode(statistics.y_val)
        validation = to_labelled(
            encoder.transform(statistics.X_val, warn=False), val_targets, torch_device, torch_dtype
        )
        val_loss_fn = task.loss_fn(val_targets, None, 0.0).to(torch_device, torch_dtype)
    rule = BestEpochs(torch.zeros(1, dtype=torch.float64), config.patience, config.min_delta)
    one = torch.ones(1, dtype=torch.bool)  # (1,): the one model always trains on
    best_weights: Tensor | None = None  # (parameters,) the best validation epoch's, when kept
    # the data's fingerprint: what the statistics pass read of every training row
    data = [torch.as_tensor(statistics.mean), torch.as_tensor(statistics.std)]
    checkpoints = open_checkpoints(
        checkpoint_dir, resume_from, settings, data, checkpoint_every, group=group
    )
    history = History()
    step, first_epoch = 0, 1
    position = StreamPosition()
    sums: dict[str, Tensor] = {}
    resumed = checkpoints.resumed if checkpoints is not None else None
    if resumed is not None:  # go on where the checkpoint was written
        net.flat.copy_(resumed.tensors["flat"])
        stepper.load(resumed.sub("optimizer"))
        rule.load(resumed.sub("rule"))
        best_weights = resumed.tensors.get("best_weights")
        history = History.from_dict(checkpoints.history)  # type: ignore[union-attr]
        step, first_epoch = resumed.values["step"], resumed.values["epoch"]
        if resumed.values["batch"]:  # inside an epoch: the stream's place, the epoch's sums
            stream = resumed.values["stream"]
            waiting = (resumed.tensors["kept_X"], resumed.tensors["kept_y"])
            position = StreamPosition((stream["groups_read"], *waiting, stream["generator"]))
            sums = resumed.sub("sums")
    if checkpoints is not None:
        checkpoints.track(history)
    if group is not None:  # one starting point (the same seed made it; rank 0's, to be sure)
        group.from_main_(net.flat)

    def step_on_the_others() -> bool:
        """With this process's share done: a step on the others' batches, if any had one."""
        nonlocal step
        assert group is not None
        grads = torch.zeros_like(net.flat)
        if not bool(group.weighted_mean_(grads, 0.0).gt(0).any()):
            return False
        step += 1
        stepper.step(net.flat, grads, step, None)
        return True

    def snapshot(inside_epoch: bool) -> LoopState:
        state = LoopState(values={"step": step})
        state.tensors["flat"] = net.flat
        state.put("optimizer", stepper.state())
        state.put("rule", rule.state())
        if best_weights is not None:
            state.tensors["best_weights"] = best_weights
        if inside_epoch:
            groups_read, kept_X, kept_y, generator = position.state()
            state.values["stream"] = {"groups_read": groups_read, "generator": generator}
            state.tensors |= {"kept_X": kept_X, "kept_y": kept_y}
            state.put("sums", {"loss": loss_sum, "correct": correct})
        return state

    printer = ProgressPrinter(epochs, write=print) if verbose and rank == 0 else None
    recorder = EpochRecorder(history, printer)
    batch_features = BatchFeatures()  # each batch copied into a buffer the step keeps its views of
    with (
        torch.inference_mode(),  # no autograd bookkeeping on the engine's small operations
        checkpoints.catching_interrupts() if checkpoints is not None else nullcontext(),
    ):
        for epoch in range(first_epoch, epochs + 1):
            loss_sum = torch.zeros((), dtype=torch_dtype, device=torch_device)
            correct = torch.zeros((), dtype=torch.long, device=torch_device)
            if sums:  # resumed inside this epoch
                loss_sum, correct = sums["loss"].to(loss_sum), sums["correct"].to(correct)
                sums = {}
            blocks = shuffled_blocks(
                source,
                encoder,
                task,
                batch_size=batch_size,
                shuffle_buffer_rows=shuffle_buffer_rows,
                seed=seed,
                epoch=epoch,
                holdout=holdout,
                position=position,
                rank=rank,
                world_size=world_size,
            )
            for block, (X_block, y_block) in enumerate(blocks, 1):
                rows = len(X_block)
                targets = task.stacked_targets(y_block.to(torch_device), torch_dtype)
                logits = net.flat.new_empty(1, model_config.out_features, rows)  # (1, out, m)
                sizes = [min(batch_size, rows - start) for start in range(0, rows, batch_size)]
                start = 0
                for X_batch in batch_features.batches(X_block.to(torch_device), sizes):
                    columns = slice(start, start + X_batch.shape[1])
                    step += 1
                    reduce = None
                    if group is not None:  # the mean over every process's batch
                        reduce = functools.partial(group.weighted_mean_, mass=X_batch.shape[1])
                    step_batch(
                        net, stepper, X_batch, targets.subset(columns), step,
                        logits[..., columns], reduce=reduce,
                    )  # fmt: skip
                    start = columns.stop
                losses, right, _ = targets.loss_and_correct(logits, gradient=False)
                loss_sum += losses[0] * rows
                correct += right[0]
                if checkpoints is not None and checkpoints.due():
                    checkpoints.save(snapshot(inside_epoch=True), epoch, block)
            if group is not None:
                while step_on_the_others():  # until every process's share is done
                    pass
                sums_here = torch.stack([loss_sum.double(), correct.double()])
                loss_sum, correct = group.sum_(sums_here.to(group.device))
            values = {
                "train_loss": float(loss_sum) / statistics.rows,
                "train_accuracy": float(correct) / statistics.rows,
            }
            if validation is not None:
                model.load_state_dict(net.member_state(net.flat[0], names))
                values["val_loss"], values["val_accuracy"] = evaluate_loss(
                    model, task, val_loss_fn, validation
                )
            row = recorder.record(epoch, values, lr)
            if config.early_stopping and validation is not None:
                monitored = row["val_loss"] if group is None else group.main_value(row["val_loss"])
                loss = torch.tensor([monitored], dtype=torch.float64)
                improved, live = rule.update(loss, one, epoch)
                if improved.item():
                    best_weights, history.best_epoch = net.flat[0].clone(), epoch
                elif not live.item():
                    history.stopped_early = True
                    break
            if checkpoints is not None and checkpoints.due(epoch):
                checkpoints.save(snapshot(inside_epoch=False), epoch + 1)
    final = best_weights if best_weights is not None else net.flat[0]
    model.load_state_dict(net.member_state(final, names))
    return Classifier(model, task, encoder, train_config=config, history=history)


__all__ = ["fit_parquet"]
