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

Scope: numeric feature columns without missing values and one label column (binary or
multiclass). Anything else is a clear :class:`~torchclf.errors.DataError`; such tables train in
memory with :func:`torchclf.fit`.
"""

from __future__ import annotations

import difflib
import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from torchclf.classifier import Classifier
from torchclf.config import ModelConfig, TrainConfig, check_choice
from torchclf.data import resolve_device
from torchclf.encoders import ArrayEncoder, Moments
from torchclf.engine import (
    STACKED_OPTIMIZERS,
    BatchFeatures,
    Hyper,
    StackedMLP,
    StackedOptimizer,
    step_batch,
)
from torchclf.errors import ConfigError, DataError
from torchclf.fitting import auto_hidden, resolve_schedule
from torchclf.history import BestEpochs, EpochRecorder, History, check_finite_loss
from torchclf.labelled import to_labelled
from torchclf.models import build_model
from torchclf.tasks import Task, infer_task
from torchclf.training import ProgressPrinter, evaluate_loss

READ_AHEAD = 2  # row groups decoded ahead of the training loop
HOLDOUT_STREAM = 0x76616C  # mixed into the holdout's seed: its draws differ from the shuffling's
T, R = TypeVar("T"), TypeVar("R")
STACK_ROWS = 8192  # rows of a row group turned from columns to rows at once
MAX_CLASSES = 1000  # more distinct target values than this is not a classification target


@dataclass(frozen=True)
class ParquetSource:
    """A Parquet file, or a folder of them, read by row groups."""

    files: tuple[Path, ...]
    target: str
    features: tuple[str, ...]
    groups: tuple[tuple[int, int, int], ...]  # (file index, row group, rows)

    @classmethod
    def open(
        cls, path: str | Path, target: str, features: Sequence[str] | None = None
    ) -> ParquetSource:
        """Check the schema: the target exists, the features are numeric columns."""
        import pyarrow as pa
        import pyarrow.parquet as pq

        path = Path(path)
        if path.is_dir():
            files = tuple(sorted(path.glob("*.parquet")))
            if not files:
                raise DataError(f"'{path}' holds no .parquet files")
        elif path.is_file():
            files = (path,)
        else:
            raise DataError(f"'{path}' does not exist: give a Parquet file or a folder of them")
        schemas, groups = [], []
        for index, file in enumerate(files):
            try:
                metadata = pq.ParquetFile(file).metadata
            except (OSError, pa.ArrowInvalid) as error:
                raise DataError(f"'{file}' is not a readable Parquet file: {error}") from None
            schemas.append(metadata.schema.to_arrow_schema())
            groups += [
                (index, g, metadata.row_group(g).num_rows) for g in range(metadata.num_row_groups)
            ]
        schema = schemas[0]
        for file, other in zip(files[1:], schemas[1:], strict=True):
            if not other.equals(schema):
                raise DataError(f"'{file}' has other columns than '{files[0]}': {other.names}")
        if target not in schema.names:
            close = difflib.get_close_matches(target, schema.names, n=1)
            hint = f". Did you mean '{close[0]}'?" if close else ""
            raise DataError(
                f"target column '{target}' is not in '{path}'; columns: {schema.names}{hint}"
            )
        chosen = (
            list(features) if features is not None else [n for n in schema.names if n != target]
        )
        for name in chosen:
            if name not in schema.names:
                raise DataError(
                    f"feature column '{name}' is not in '{path}'; columns: {schema.names}"
                )
            kind = schema.field(name).type
            if not (
                pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
            ):
                raise DataError(
                    f"column '{name}' is {kind}: streaming training takes numeric columns only; "
                    "encode it first, or train in memory with torchclf.fit"
                )
        if not chosen:
            raise DataError(f"'{path}' has no feature columns besides the target '{target}'")
        return cls(files, target, tuple(chosen), tuple(groups))

    @property
    def n_rows(self) -> int:
        return sum(rows for _, _, rows in self.groups)

    def read(self, group: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray, int]:
        """One row group's labelled rows, and how many it skipped for lacking a target.

        Returns features ``(rows, d)`` float32, target values ``(rows,)`` and the skipped count.
        """
        import pyarrow.parquet as pq

        file, index, _ = group
        table = pq.ParquetFile(self.files[file]).read_row_group(
            index, columns=[*self.features, self.target]
        )
        columns = [table.column(name).to_numpy(zero_copy_only=False) for name in self.features]
        X = np.empty((table.num_rows, len(columns)), dtype=np.float32)
        # a block of rows at a time, in cache: column_stack's strided writes take 4x as long
        for start in range(0, len(X), STACK_ROWS):
            stop = start + STACK_ROWS
            block = [column[start:stop] for column in columns]
            np.stack(block, axis=1, out=X[start:stop], casting="unsafe")  # as astype does
        y = table.column(self.target).to_numpy(zero_copy_only=False)
        keep = ~pd.isna(y)  # the in-memory path's rule (tabular.prepare_table)
        return X[keep], y[keep], int((~keep).sum())


@dataclass(frozen=True)
class Holdout:
    """Which rows of each row group are validation rows: the same ones in every pass.

    Each row is held out with probability ``fraction``, drawn from a generator seeded by the
    run's seed and the row group's place, so the statistics pass (which keeps them aside) and
    every epoch (which skips them) agree without storing a mask.
    """

    fraction: float
    seed: int

    def mask(self, group: tuple[int, int, int], rows: int) -> np.ndarray:
        """``(rows,)`` True for the group's validation rows, among its rows with a target."""
        file, index, _ = group
        generator = np.random.default_rng([self.seed, HOLDOUT_STREAM, file, index])
        return generator.random(rows) < self.fraction


@dataclass
class Statistics:
    """What one streaming pass learns: row count, per-feature mean and std, the classes."""

    rows: int  # training rows: those with a target, validation rows excepted
    mean: np.ndarray
    std: np.ndarray
    classes: np.ndarray
    dropped: int  # rows without a target
    X_val: np.ndarray | None = None  # (v, d) float32: the validation rows, raw, in memory
    y_val: np.ndarray | None = None  # (v,) their target values


def scan(source: ParquetSource, holdout: Holdout | None = None) -> Statistics:
    """One pass over every row group: Chan's parallel merge of means and squared deviations.

    The row groups are read and decoded on a background thread while this one folds in the last.
    With a ``holdout``, its validation rows are kept aside in memory and left out of the
    statistics, as the in-memory path fits its scaling on the training rows only.
    """
    moments = Moments(len(source.features))
    classes: set[Any] = set()
    dropped = 0
    held_X: list[np.ndarray] = []
    held_y: list[np.ndarray] = []
    with closing(read_ahead(source.groups, source.read)) as groups_read:
        for group, (X, y, skipped) in zip(source.groups, groups_read, strict=True):
            dropped += skipped
            missing = np.isnan(X).sum(axis=0)
            if missing.any():
                column = source.features[int(np.argmax(missing))]
                raise DataError(
                    f"column '{column}' has missing values (row group {group[1]} of "
                    f"'{source.files[group[0]].name}'): streaming training needs complete numeric "
                    "columns; impute them first, or train in memory with torchclf.fit"
                )
            if len(y) == 0:
                continue
            classes.update(np.unique(y).tolist())
            if len(classes) > MAX_CLASSES:
                raise DataError(
                    f"target column '{source.target}' has more than {MAX_CLASSES} distinct values: "
                    "it does not look like class labels"
                )
            if holdout is not None:
                held = holdout.mask(group, len(y))
                held_X.append(X[held])
                held_y.append(y[held])
                X = X[~held]
            moments.update(X)
    if moments.count == 0:
        raise DataError(f"no rows with a target in '{source.files[0]}'")
    classes_found = np.array(sorted(classes))
    statistics = Statistics(moments.count, moments.mean, moments.std, classes_found, dropped)
    if holdout is not None and sum(len(y) for y in held_y) > 0:
        statistics.X_val, statistics.y_val = np.concatenate(held_X), np.concatenate(held_y)
    return statistics


def shuffled_blocks(
    source: ParquetSource,
    encoder: ArrayEncoder,
    task: Task,
    *,
    batch_size: int,
    shuffle_buffer_rows: int,
    seed: int,
    epoch: int,
    holdout: Holdout | None = None,
) -> Iterator[tuple[Tensor, Tensor]]:
    """One epoch of shuffled rows in blocks: encoded features ``(m, d)`` and encoded targets.

    Every block but the last is a whole number of ``batch_size`` batches, so the batches that
    follow from cutting the blocks in order are those of one shuffled stream.

    A background thread reads and encodes the row groups in a seeded, shuffled order. This side
    adds each group to a buffer; once the buffer holds more than ``shuffle_buffer_rows`` rows it
    is shuffled and everything beyond that many rows leaves as batches, so the rows kept back
    mix with the next group (a shuffle buffer, vectorised). The last fill empties the buffer.

    The blocks are CPU tensors, row-major ``(m, d)``, in buffers reused from block to block: each
    is valid until the next one is asked for (clone it to keep it). A ``holdout``'s validation
    rows are skipped.
    """
    rng = np.random.default_rng([seed, epoch])
    order = rng.permutation(len(source.groups))

    def prepare(group: tuple[int, int, int]) -> tuple[np.ndarray, Tensor] | None:
        X, y, _ = source.read(group)
        if holdout is not None:
            kept = ~holdout.mask(group, len(y))
            X, y = X[kept], y[kept]
        if len(y) == 0:  # no row of this group has a target (the statistics pass counted them)
            return None
        return encoder.transform(X, warn=False), task.encode(y)

    buffer = _ShuffleBuffer()
    groups = [source.groups[index] for index in order]
    with closing(read_ahead(groups, prepare)) as prepared:
        for item in prepared:
            if item is None:
                continue
            buffer.add(torch.from_numpy(item[0]), item[1])
            surplus = buffer.rows - shuffle_buffer_rows
            leaving = surplus - surplus % batch_size
            if leaving > 0:
                yield buffer.leave(torch.from_numpy(rng.permutation(buffer.rows)), leaving)
    if buffer.rows > 0:  # the last fill empties the buffer
        yield buffer.leave(torch.from_numpy(rng.permutation(buffer.rows)), buffer.rows)


def read_ahead(jobs: Sequence[T], load: Callable[[T], R]) -> Iterator[R]:
    """``load(job)`` for each job in turn, run up to :data:`READ_AHEAD` jobs ahead on a thread.

    Reading and decoding Parquet releases the GIL, so it runs on another core while the caller
    works on the last result. An exception in ``load`` is raised here; closing the generator
    stops the thread.
    """
    ready: queue.Queue[Any] = queue.Queue(maxsize=READ_AHEAD)
    cancelled = threading.Event()

    def reader() -> None:
        try:
            for job in jobs:
                if cancelled.is_set():
                    return
                ready.put(load(job))
            ready.put(_DONE)
        except BaseException as error:  # handed to the caller, raised there
            ready.put(_Failed(error))

    thread = threading.Thread(target=reader, name="torchclf-parquet-reader", daemon=True)
    thread.start()
    try:
        while (item := ready.get()) is not _DONE:
            if isinstance(item, _Failed):
                raise item.error
            yield item
    finally:
        cancelled.set()
        while thread.is_alive():  # unblock a reader waiting on a full queue
            try:
                ready.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.01)


_DONE = object()  # the reader's last item


@dataclass(frozen=True)
class _Failed:
    """The exception the reader thread met, to raise on the caller's side."""

    error: BaseException


class _ShuffleBuffer:
    """The rows waiting to leave, features ``(n, d)`` and targets, in buffers reused throughout.

    Concatenating the rows and permuting them with numpy's fancy indexing, into fresh memory for
    every row group, took about 0.35 s per 262,144-row group (measured in place, the reader
    thread running); ``index_select`` into these buffers takes about 0.07 s. The permutation is
    the same, and so is every block.
    """

    def __init__(self) -> None:
        self.rows = 0
        self._pool: list[Tensor] = []  # features, targets: the buffered rows, first self.rows
        self._spare: list[Tensor] = []  # the same shapes: the kept rows' next home
        self._out: list[Tensor] = []  # the leaving block

    def add(self, X: Tensor, y: Tensor) -> None:
        """Append a row group's features ``(g, d)`` and targets."""
        needed = self.rows + len(X)
        if not self._pool or len(self._pool[0]) < needed:  # grows with the first groups only
            old = self._pool
            self._pool, self._spare, self._out = (
                [value.new_empty(needed, *value.shape[1:]) for value in (X, y)] for _ in range(3)
            )
            for kept, new in zip(old, self._pool, strict=False):
                new[: self.rows].copy_(kept[: self.rows])
        for value, pool in zip((X, y), self._pool, strict=True):
            pool[self.rows : needed].copy_(value)
        self.rows = needed

    def leave(self, mix: Tensor, leaving: int) -> tuple[Tensor, Tensor]:
        """The first ``leaving`` rows of the buffer permuted by ``mix``; the rest stay, permuted.

        The returned views hold until the next call.
        """
        kept = self.rows - leaving
        for pool, out, spare in zip(self._pool, self._out, self._spare, strict=True):
            torch.index_select(pool[: self.rows], 0, mix[:leaving], out=out[:leaving])
            torch.index_select(pool[: self.rows], 0, mix[leaving:], out=spare[:kept])
        self._pool, self._spare = self._spare, self._pool
        self.rows = kept
        return self._out[0][:leaving], self._out[1][:leaving]


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

    Returns:
        An ordinary :class:`~torchclf.Classifier`: its encoder takes DataFrames with the feature
        columns, or arrays in their order.
    """
    source = ParquetSource.open(path, target, features)
    schedule = resolve_schedule(
        source.n_rows,
        epochs=epochs,
        early_stopping=early_stopping,
        validation_fraction=validation_fraction,
        patience=patience,
        batch_size=batch_size,
    )
    config = TrainConfig(
        optimizer=optimizer,
        lr=lr,
        weight_decay=weight_decay,
        momentum=momentum,
        epochs=schedule.epochs,
        batch_size=batch_size,
        early_stopping=schedule.early_stopping,
        validation_fraction=schedule.validation_fraction,
        patience=schedule.patience,
        min_delta=min_delta,
        seed=seed,
        device=device,
        dtype=dtype,
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
    model_config = ModelConfig(
        in_features=len(source.features),
        out_features=task.n_outputs,
        hidden=hidden,  # type: ignore[arg-type]
        activation=activation,
    )
    torch_device, torch_dtype = resolve_device(device), getattr(torch, dtype)
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
    history = History()
    recorder = EpochRecorder(history, ProgressPrinter(epochs, write=print) if verbose else None)
    step = 0
    features = BatchFeatures()  # each batch copied into a buffer the step keeps its views of
    with torch.inference_mode():  # no autograd bookkeeping on the engine's small operations
        for epoch in range(1, epochs + 1):
            loss_sum = torch.zeros((), dtype=torch_dtype, device=torch_device)
            correct = torch.zeros((), dtype=torch.long, device=torch_device)
            blocks = shuffled_blocks(
                source,
                encoder,
                task,
                batch_size=batch_size,
                shuffle_buffer_rows=shuffle_buffer_rows,
                seed=seed,
                epoch=epoch,
                holdout=holdout,
            )
            for X_block, y_block in blocks:
                rows = len(X_block)
                targets = task.stacked_targets(y_block.to(torch_device), torch_dtype)
                logits = net.flat.new_empty(1, model_config.out_features, rows)  # (1, out, m)
                sizes = [min(batch_size, rows - start) for start in range(0, rows, batch_size)]
                start = 0
                for X_batch in features.batches(X_block.to(torch_device), sizes):
                    columns = slice(start, start + X_batch.shape[1])
                    step += 1
                    step_batch(
                        net, stepper, X_batch, targets.subset(columns), step, logits[..., columns]
                    )
                    start = columns.stop
                losses, right, _ = targets.loss_and_correct(logits, gradient=False)
                loss_sum += losses[0] * rows
                correct += right[0]
            values = {
                "train_loss": float(loss_sum) / statistics.rows,
                "train_accuracy": float(correct) / statistics.rows,
            }
            check_finite_loss({"epoch": epoch, **values}, lr)
            if validation is not None:
                model.load_state_dict(net.member_state(net.flat[0], names))
                values["val_loss"], values["val_accuracy"] = evaluate_loss(
                    model, task, val_loss_fn, validation
                )
            row = recorder.record(epoch, values, lr)
            if config.early_stopping and validation is not None:
                loss = torch.tensor([row["val_loss"]], dtype=torch.float64)
                improved, live = rule.update(loss, one, epoch)
                if improved.item():
                    best_weights, history.best_epoch = net.flat[0].clone(), epoch
                elif not live.item():
                    history.stopped_early = True
                    break
    kept = best_weights if best_weights is not None else net.flat[0]
    model.load_state_dict(net.member_state(kept, names))
    return Classifier(model, task, encoder, train_config=config, history=history)


__all__ = ["Holdout", "ParquetSource", "Statistics", "fit_parquet", "scan", "shuffled_blocks"]
