"""Many configurations trained at once: ``train_members``, the engine of ``improve`` and ``sweep``.

Members that share an architecture (hidden sizes and activation) form a group trained as one
:class:`~torchclf.engine.StackedMLP`: stacked weights, a hand-written batched forward and
backward, and one vectorised optimizer step that applies each member's own optimizer (adam, adamw
or sgd), learning rate, weight decay, momentum and number of epochs. Every member is evaluated on
the validation and test rows after every epoch, exactly as :func:`torchclf.fit` would, may stop
early on its own, and comes out as an ordinary :class:`torchclf.Classifier`.

Data of up to 4096 rows trains full batch, as in ``fit``; larger data (or ``batch_size``) in
mini-batches that every member shares, shuffled from ``shuffle_seed``. There is no batch norm;
dropout is per member, its masks drawn from the sweep's own generator. ``tests/test_sweep.py``
checks members against the same configurations trained alone by ``fit``.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from torchclf.classifier import Classifier
from torchclf.config import ModelConfig, TrainConfig, check_choice
from torchclf.data.arrays import as_features, take_rows
from torchclf.data.batches import IndexBatches, default_batch_size
from torchclf.data.labelled import to_labelled
from torchclf.data.splits import holdout_indices
from torchclf.devices import intra_op_threads, resolve_device, training_threads
from torchclf.encoders import ArrayEncoder
from torchclf.engine import STACKED_OPTIMIZERS, Hyper, Split, StackedMLP, train_stacked
from torchclf.engine.loops import StackedResult
from torchclf.errors import ConfigError, TrainingInterrupted
from torchclf.nn.models import MLP, build_model
from torchclf.nn.starting_point import set_output_bias
from torchclf.tasks import Task, infer_task
from torchclf.training.checkpoints import Checkpoints, LoopState, open_checkpoints
from torchclf.training.history import EpochRecorder, History


@dataclass(frozen=True)
class Member:
    """One configuration of a sweep."""

    hidden: tuple[int, ...] = (10, 10)  # hidden layer sizes; () is the linear model
    activation: str = "relu"  # one of torchclf.config.ACTIVATIONS
    optimizer: str = "adam"  # adam, adamw or sgd
    lr: float = 0.003  # learning rate
    weight_decay: float = 0.003  # L2 (adam, sgd) or decoupled (adamw) weight decay
    momentum: float = 0.0  # sgd momentum
    dropout: float = 0.0  # share of hidden activations dropped while training
    epochs: int = 1000  # passes over the training rows
    seed: int = 42  # initialisation

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        check_choice("optimizer", self.optimizer, STACKED_OPTIMIZERS)
        ModelConfig(
            in_features=1,
            out_features=1,
            hidden=self.hidden,
            activation=self.activation,
            dropout=self.dropout,
        )  # validates the architecture
        TrainConfig(
            lr=self.lr,
            weight_decay=self.weight_decay,
            momentum=self.momentum,
            epochs=self.epochs,
            seed=self.seed,
        )  # validates the numbers


def train_members(
    X: Any,
    y: Any,
    members: Sequence[Member],
    *,
    eval_set: tuple[Any, Any] | None = None,
    validation: tuple[Any, Any] | None = None,
    early_stopping: bool = False,
    patience: int = 20,
    min_delta: float = 0.0,
    standardize: bool = True,
    dtype: str = "float32",
    device: str = "cpu",
    chunk_size: int = 64,
    batch_size: int | None = None,
    shuffle_seed: int = 42,
    prior_bias: bool = True,
    checkpoint_dir: str | os.PathLike[str] | None = None,
    checkpoint_every: int | str = "auto",
    resume_from: str | os.PathLike[str] | None = None,
) -> list[Classifier]:
    """Train every member, a group of same-architecture members at a time.

    Args:
        X: training features, as :func:`torchclf.fit` takes them.
        y: training targets.
        members: the configurations.
        eval_set: ``(X_test, y_test)``, reported every epoch as the ``test_*`` columns.
        validation: ``(X_val, y_val)``, reported as ``val_*``; early stopping watches its loss.
        early_stopping: stop each member when its validation loss has not improved by
            ``min_delta`` for ``patience`` epochs, keeping its best epoch's weights.
        patience: epochs without improvement before a member stops.
        min_delta: smallest validation-loss decrease that counts as an improvement.
        standardize: scale features to zero mean and unit variance (fitted on ``X``).
        dtype: "float32" or "float64".
        device: "cpu", "cuda", "mps" or "auto".
        chunk_size: a group larger than this trains in chunks of this many members, which bounds
            the memory of the stacked activations ``(members, width, rows)``.
        batch_size: rows per step, the same batches for every member; None: full batch up to
            4096 rows, else 256 (``fit``'s default).
        shuffle_seed: seeds the shared batch order. A member whose ``seed`` is this one trains
            exactly as ``fit(..., seed=member.seed, batch_size=batch_size)`` would.
        prior_bias: start every member's output bias at the training rows' class log-odds, as
            ``fit`` does by default.
        checkpoint_dir: write the sweep's whole state into this folder as it trains, as
            :func:`torchclf.fit` does: the groups trained so far and the one in progress.
        checkpoint_every: how often ("auto": every 60 seconds, epochs, or "30s"); and after
            each group.
        resume_from: go on from the newest checkpoint of this folder (the same data and
            settings, or refused by name): the members come out bit for bit as an
            uninterrupted sweep's. Ctrl-C while it trains writes a checkpoint and raises
            :class:`~torchclf.TrainingInterrupted`.

    Returns:
        One classifier per member, in order; each ``classifier.history`` holds its epochs.
    """
    if chunk_size < 1:
        raise ConfigError(
            f"The 'chunk_size' parameter must be at least 1. Got {chunk_size!r} instead."
        )
    if not members:
        raise ConfigError("a sweep needs at least one member")
    if early_stopping and validation is None:
        raise ConfigError(
            "early_stopping watches the validation loss: pass validation=(X_val, y_val)"
        )
    TrainConfig(
        patience=patience, min_delta=min_delta, batch_size=batch_size, seed=shuffle_seed
    )  # validates the numbers
    torch_device, torch_dtype = resolve_device(device), getattr(torch, dtype)
    features, names = as_features(X, dtype=np.float64 if dtype == "float64" else np.float32)
    task = infer_task(y)
    encoder = ArrayEncoder.fit(features, standardize=standardize, names=names, dtype=dtype)

    def rows(name: str, rows_X: Any, rows_y: Any) -> Split:
        """Encoded, feature-major features ``(in, n)`` and targets on the device.

        The training rows stay a view of the row-major features: mini-batches gather rows.
        """
        labelled = to_labelled(
            encoder.transform(rows_X), task.encode(rows_y), torch_device, torch_dtype
        )
        X = labelled.X.T if name == "train" else labelled.X.T.contiguous()
        return Split(name, X, task.stacked_targets(labelled.y, torch_dtype))

    train = rows("train", features, y)
    prior = task.prior_logits(task.encode(y)) if prior_bias else None  # (outputs,)
    splits = [
        rows(name, *pair)
        for name, pair in (("val", validation), ("test", eval_set))
        if pair is not None
    ]
    results: list[Classifier | None] = [None] * len(members)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, member in enumerate(members):
        groups.setdefault((member.hidden, member.activation), []).append(index)
    chunks = [
        indices[start : start + chunk_size]
        for indices in groups.values()
        for start in range(0, len(indices), chunk_size)
    ]
    stopping = {"early_stopping": early_stopping, "patience": patience, "min_delta": min_delta}
    n_rows = train.targets.rows
    size = default_batch_size(n_rows, batch_size, TrainConfig.FULL_BATCH_MAX)
    batches = IndexBatches(n_rows, size, seed=shuffle_seed, device=torch_device)
    settings = {
        "members": [dataclasses.asdict(m) for m in members],
        **stopping,
        **dict(standardize=standardize, dtype=dtype, device=device, chunk_size=chunk_size),
        **dict(batch_size=batch_size, shuffle_seed=shuffle_seed, prior_bias=prior_bias),
    }
    labels = [task.encode(pair[1]) for pair in ((X, y), validation, eval_set) if pair is not None]
    data = [train.X, *(split.X for split in splits), *labels]
    checkpoints = open_checkpoints(checkpoint_dir, resume_from, settings, data, checkpoint_every)
    # each group trained so far: (its members' kept weights, their columns, best epochs, stops)
    done = _SweepProgress(checkpoints)
    with (
        intra_op_threads(training_threads("auto", len(features))),
        checkpoints.catching_interrupts() if checkpoints is not None else nullcontext(),
    ):
        for chunk, indices in enumerate(chunks):
            group = [members[i] for i in indices]
            if chunk not in done.results:
                done.results[chunk] = _train_group(
                    group, task, encoder, train, splits, torch_device, torch_dtype, stopping,
                    batches, prior, done.checkpoints_for(chunk),
                )  # fmt: skip
                done.save(chunk + 1)
            trained = _group_classifiers(
                group, done.results[chunk], task, encoder, train, splits, torch_device,
                torch_dtype, stopping, batches,
            )  # fmt: skip
            for i, classifier in zip(indices, trained, strict=True):
                results[i] = classifier
    return results  # type: ignore[return-value]


class _SweepProgress:
    """The groups a sweep has trained, kept in each of its checkpoints (:attr:`results`).

    A checkpoint written while group ``c`` trains holds the groups before it and ``c``'s loop
    state; one written after it, the groups up to ``c`` and no loop state.
    """

    def __init__(self, checkpoints: Checkpoints | None) -> None:
        self.checkpoints = checkpoints
        self.results: dict[int, StackedResult] = {}
        self.resumed_chunk: int | None = None  # the group whose loop state was saved
        context = None if checkpoints is None else checkpoints.resumed_context
        if context is not None:
            for key, saved in context.values["done"].items():
                self.results[int(key)] = StackedResult(
                    context.tensors[f"{key}.flat"], saved["columns"], saved["best_epoch"],
                    saved["stopped_early"],
                )  # fmt: skip
            self.resumed_chunk = context.values["training"]
        self._update_context(self.resumed_chunk)

    def checkpoints_for(self, chunk: int) -> Checkpoints | None:
        """The checkpoints group ``chunk`` trains with: resumed only if it was in progress."""
        if self.checkpoints is not None:
            if chunk != self.resumed_chunk:
                self.checkpoints.resumed = None
            self._update_context(chunk)
        return self.checkpoints

    def save(self, next_chunk: int) -> None:
        """A checkpoint between groups: the trained ones, and no loop in progress."""
        if self.checkpoints is not None:
            self._update_context(None)
            self.checkpoints.save(LoopState(), epoch=0, stage="between groups")
            if self.checkpoints.interrupt_requested:
                raise TrainingInterrupted(0, self.checkpoints.folder)

    def _update_context(self, training: int | None) -> None:
        if self.checkpoints is None:
            return
        tensors = {f"{key}.flat": result.flat for key, result in self.results.items()}
        done = {
            str(key): {
                "columns": result.columns,
                "best_epoch": result.best_epoch,
                "stopped_early": result.stopped_early,
            }
            for key, result in self.results.items()
        }
        self.checkpoints.context = LoopState(tensors, {"done": done, "training": training})


def _train_group(
    members: list[Member],
    task: Task,
    encoder: ArrayEncoder,
    train: Split,
    splits: list[Split],
    device: torch.device,
    dtype: torch.dtype,
    stopping: dict[str, Any],
    batches: IndexBatches,
    prior: torch.Tensor | None,
    checkpoints: Checkpoints | None,
) -> StackedResult:
    """Train one group of members of one architecture, stacked."""
    config = _group_config(members, task, encoder)
    # each member's own initial weights, exactly those fit would start from (dropout has none)
    models = [build_model(config, m.seed) for m in members]
    if prior is not None:
        for model in models:
            set_output_bias(model, prior)
    states = [model.to(dtype=dtype).state_dict() for model in models]
    net = StackedMLP.from_config(config, states, device)
    if any(m.dropout > 0 for m in members):
        # one mask stream per chunk, seeded by its members: the same sweep drops the same units
        seed = int(np.random.SeedSequence([m.seed for m in members]).generate_state(1)[0])
        net.use_dropout([m.dropout for m in members], seed)
    hypers = [Hyper(m.optimizer, m.lr, m.weight_decay, m.momentum, m.epochs) for m in members]
    return train_stacked(
        net, hypers, train.X, train.targets, splits, **stopping, batches=batches,
        checkpoints=checkpoints,
    )  # fmt: skip


def _group_config(members: list[Member], task: Task, encoder: ArrayEncoder) -> ModelConfig:
    """The architecture a group's members share."""
    return ModelConfig(
        in_features=encoder.n_outputs,
        out_features=task.n_outputs,
        hidden=members[0].hidden,
        activation=members[0].activation,
    )


def _group_classifiers(
    members: list[Member],
    result: StackedResult,
    task: Task,
    encoder: ArrayEncoder,
    train: Split,
    splits: list[Split],
    device: torch.device,
    dtype: torch.dtype,
    stopping: dict[str, Any],
    batches: IndexBatches,
) -> list[Classifier]:
    """A trained group's members as classifiers, each with its history and settings."""
    config = _group_config(members, task, encoder)
    n_validation = splits[0].targets.rows if splits and splits[0].name == "val" else 0
    validation_share = n_validation / (n_validation + train.targets.rows)  # for the record
    layout = StackedMLP.from_config(config, [MLP(config).state_dict()])  # the members' shapes
    classifiers = []
    for i, member in enumerate(members):
        member_config = dataclasses.replace(config, dropout=member.dropout)
        model = MLP(member_config).to(device=device, dtype=dtype)
        names = list(model.state_dict())  # Dropout layers shift the indices
        model.load_state_dict(layout.member_state(result.flat[i], names))
        history = History(best_epoch=result.best_epoch[i], stopped_early=result.stopped_early[i])
        recorder = EpochRecorder(history, timed=False, stop_on_divergence=False)
        columns = {name: values[i] for name, values in result.columns.items()}
        for epoch in range(len(columns["train_loss"])):
            recorder.record(epoch + 1, {k: v[epoch] for k, v in columns.items()}, member.lr)
        train_config = TrainConfig(
            optimizer=member.optimizer,
            lr=member.lr,
            weight_decay=member.weight_decay,
            momentum=member.momentum,
            epochs=member.epochs,
            batch_size=None if batches.full_batch else batches.batch_size,
            **stopping,
            validation_fraction=validation_share,
            seed=member.seed,
            dtype=str(dtype).removeprefix("torch."),
        )
        classifiers.append(
            Classifier(model, task, encoder, train_config=train_config, history=history)
        )
    return classifiers


def grid(
    widths: Sequence[int],
    depths: Sequence[int],
    *,
    activations: Sequence[str] = ("relu",),
    optimizers: Sequence[str] = ("adam",),
    lrs: Sequence[float] = (0.003,),
    weight_decays: Sequence[float] = (0.003,),
    dropouts: Sequence[float] = (0.0,),
    epochs: Sequence[int] = (1000,),
    seeds: Sequence[int] = (42,),
) -> list[Member]:
    """Every combination as a :class:`Member`, each once (depth 0 is one linear model).

    ``widths`` and ``depths`` make the hidden layers: depth ``d`` is ``(width,) * d``.
    """
    members = [
        Member(
            hidden=(w,) * d,
            activation=a,
            optimizer=o,
            lr=r,
            weight_decay=wd,
            dropout=p if d else 0.0,  # the linear model has no hidden units to drop
            epochs=e,
            seed=s,
        )
        for w, d, a, o, r, wd, p, e, s in itertools.product(
            widths, depths, activations, optimizers, lrs, weight_decays, dropouts, epochs, seeds
        )
    ]
    return list(dict.fromkeys(members))  # depth 0 makes every width the same linear model


def hold_out(X: Any, y: Any, fraction: float, seed: int) -> tuple[Any, Any, tuple[Any, Any]]:
    """Training rows, and ``(X_val, y_val)``: a stratified ``fraction`` to compare them on.

    The sweep ranks its members and ``improve`` its variants on these rows.

    Raises:
        ConfigError: for a ``fraction`` outside (0, 0.9]: configurations are compared on
            validation rows, never on test rows.
    """
    if not 0.0 < fraction <= 0.9:
        raise ConfigError(
            "The 'validation_fraction' parameter must be in (0, 0.9]: configurations are "
            "compared on validation rows, never on the test rows. "
            f"Got {fraction!r} instead."
        )
    encoded = infer_task(y).encode(y).numpy()
    kept, held_out = holdout_indices(encoded, fraction, seed)
    return take_rows(X, kept), take_rows(y, kept), (take_rows(X, held_out), take_rows(y, held_out))


def ranking(members: Sequence[Member], classifiers: Sequence[Classifier]) -> list[dict[str, Any]]:
    """One row per member, best first: by validation accuracy, then validation loss.

    Each row holds the member's settings, its epochs and the scores of the epoch whose weights
    it kept (its best one when it stopped early).
    """
    rows = []
    for index, (member, classifier) in enumerate(zip(members, classifiers, strict=True)):
        history = classifier.history
        kept = history.rows[history.best_epoch - 1] if history.best_epoch else history.last
        rows.append(
            {
                "member": index,
                "hidden": "-".join(map(str, member.hidden)) or "linear",
                "activation": member.activation,
                "optimizer": member.optimizer,
                "lr": member.lr,
                "weight_decay": member.weight_decay,
                "dropout": member.dropout,
                "seed": member.seed,
                "max_epochs": member.epochs,
                "epochs": len(history),  # trained: fewer when it stopped early
                **{k: v for k, v in kept.items() if k.endswith(("_accuracy", "_loss"))},
            }
        )
    return sorted(rows, key=lambda r: (-r["val_accuracy"], r["val_loss"]))


__all__ = ["Member", "grid", "hold_out", "ranking", "train_members"]
