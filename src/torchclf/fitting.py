"""``fit``: from features and targets to a trained :class:`~torchclf.Classifier`.

It validates the inputs once, infers the task, builds the configs, splits off the validation
rows, fits the preprocessing on the training rows only, moves everything to the device as tensors
and hands them to the training loop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf.classifier import Classifier
from torchclf.config import ModelConfig, TrainConfig
from torchclf.data import as_features, resolve_device, split_indices
from torchclf.errors import DataError
from torchclf.models import build_model
from torchclf.preprocessing import Standardizer
from torchclf.tasks import infer_task
from torchclf.training import Labelled, ProgressPrinter, train_model


def fit(
    X: Any,
    y: Any,
    *,
    task: str = "auto",
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    activation_impl: str = "torch",
    dropout: float = 0.0,
    batch_norm: bool = False,
    optimizer: str = "adam",
    lr: float = 0.01,
    momentum: float = 0.0,
    weight_decay: float = 0.0,
    epochs: int = 500,
    batch_size: int | None = None,
    lr_schedule: str = "none",
    grad_clip: float | None = None,
    early_stopping: bool = False,
    validation_fraction: float = 0.0,
    patience: int = 20,
    min_delta: float = 0.0,
    class_weight: str | dict[str, float] | None = None,
    label_smoothing: float = 0.0,
    threshold: float | Sequence[float] = 0.5,
    label_names: Sequence[str] | None = None,
    feature_names: Sequence[str] | None = None,
    standardize: bool = True,
    eval_set: tuple[Any, Any] | None = None,
    seed: int = 42,
    device: str = "auto",
    verbose: bool = False,
    log_every: int | None = None,
    log: Callable[[str], None] | None = None,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
) -> Classifier:
    """Train a classifier on features ``X`` and targets ``y``.

    The task comes from ``y`` unless given: two classes -> binary, more -> multiclass, a 2-D 0/1
    matrix or a sequence of label lists -> multilabel. Labels may be ints, strings or booleans.

    Args:
        X: features ``(n, d)``: NumPy array, list, tensor or numeric pandas DataFrame.
        y: targets: labels ``(n,)``, an indicator matrix ``(n, L)`` or label lists.
        task: "auto", "binary", "multiclass" or "multilabel".
        hidden: hidden layer sizes; ``()`` is the linear baseline.
        activation: "relu", "leaky_relu", "sigmoid", "tanh", "gelu" or "identity".
        activation_impl: "torch" (torch.nn's) or "scratch" (torchclf.activations').
        dropout: dropout probability after each hidden activation.
        batch_norm: BatchNorm1d after each hidden linear layer.
        optimizer: "adam", "adamw", "sgd" or "rmsprop".
        lr: learning rate.
        momentum: momentum for sgd and rmsprop.
        weight_decay: L2 penalty.
        epochs: passes over the training rows (fewer if early stopping ends training).
        batch_size: rows per step; None trains full batch up to 4096 rows, else 256 rows.
        lr_schedule: "none", "cosine", "step" or "plateau".
        grad_clip: maximum global gradient norm, or None.
        early_stopping: stop when the validation loss has not improved for ``patience`` epochs and
            keep the best epoch's weights; needs ``validation_fraction``.
        validation_fraction: share of the training rows held out (stratified) for validation.
        patience: epochs without improvement before early stopping.
        min_delta: smallest validation-loss decrease that counts as an improvement.
        class_weight: None, "balanced" or ``{label: weight}``.
        label_smoothing: label smoothing for multiclass cross-entropy.
        threshold: decision threshold for binary (one value) or multilabel (one or one per label).
        label_names: multilabel label names for an indicator-matrix ``y``.
        feature_names: names of the columns of ``X`` (a DataFrame's column names are used when
            this is not given); saved with the model and checked against DataFrames at predict.
        standardize: scale features with mean and standard deviation of the training rows.
        eval_set: ``(X_test, y_test)`` evaluated after every epoch and recorded in the history as
            ``test_loss``/``test_accuracy``; never used to choose anything.
        seed: seeds initialisation, validation split, shuffling and dropout.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        verbose: print a progress line every ``log_every`` epochs.
        log_every: progress interval in epochs (default: ten lines per run).
        log: receives the progress lines instead of ``print`` (implies ``verbose``).
        on_epoch: called with each epoch's history row, e.g. to drive a progress bar.

    Returns:
        The trained :class:`Classifier`; ``classifier.history`` holds the per-epoch record.
    """
    features, frame_names = as_features(X)
    if feature_names is not None:
        feature_names = [str(name) for name in feature_names]
        if len(feature_names) != features.shape[1]:
            raise DataError(
                f"feature_names has {len(feature_names)} names but X has {features.shape[1]} "
                "columns; give one name per column"
            )
    else:
        feature_names = frame_names
    fitted_task = infer_task(y, task, threshold=threshold, label_names=label_names)
    targets = fitted_task.encode(y)
    if len(targets) != len(features):
        raise DataError(f"X has {len(features)} rows but y has {len(targets)}; they must match")
    model_config = ModelConfig(
        in_features=features.shape[1],
        out_features=fitted_task.n_outputs,
        hidden=hidden,  # type: ignore[arg-type]  # ModelConfig checks and converts it
        activation=activation,
        activation_impl=activation_impl,
        dropout=dropout,
        batch_norm=batch_norm,
    )
    train_config = TrainConfig(
        optimizer=optimizer,
        lr=lr,
        momentum=momentum,
        weight_decay=weight_decay,
        epochs=epochs,
        batch_size=batch_size,
        lr_schedule=lr_schedule,
        grad_clip=grad_clip,
        early_stopping=early_stopping,
        validation_fraction=validation_fraction,
        patience=patience,
        min_delta=min_delta,
        class_weight=class_weight,
        label_smoothing=label_smoothing,
        seed=seed,
        device=device,
        log_every=log_every,
        standardize=standardize,
    )
    torch_device = resolve_device(device)

    train_rows = np.arange(len(features))
    validation_rows = None
    if validation_fraction > 0:
        strata = targets.numpy().reshape(len(targets), -1)
        try:
            train_rows, validation_rows = split_indices(
                len(features), validation_fraction, stratify=strata, seed=seed
            )
        except DataError:  # too few rows of some class to stratify: a plain random split
            train_rows, validation_rows = split_indices(
                len(features), validation_fraction, stratify=None, seed=seed
            )

    standardizer = (
        Standardizer.fit(features[train_rows])
        if standardize
        else Standardizer.identity(features.shape[1])
    )

    def prepare(rows_X: np.ndarray, rows_y: Tensor) -> Labelled:
        X_tensor = standardizer.transform(torch.from_numpy(rows_X)).to(torch_device)
        return Labelled(X_tensor, rows_y.to(torch_device))

    train = prepare(features[train_rows], targets[train_rows])
    validation = (
        prepare(features[validation_rows], targets[validation_rows])
        if validation_rows is not None
        else None
    )
    test = None
    if eval_set is not None:
        X_test, _ = as_features(eval_set[0], n_features=features.shape[1], name="eval_set X")
        test = prepare(X_test, fitted_task.encode(eval_set[1]))

    model = build_model(model_config, seed).to(torch_device)
    loss_fn = fitted_task.loss_fn(targets[train_rows], class_weight, label_smoothing).to(
        torch_device
    )
    callbacks = [c for c in (on_epoch,) if c is not None]
    if verbose or log is not None:
        callbacks.append(ProgressPrinter(epochs, log_every, log or print))

    def on_epoch_end(row: dict[str, float]) -> None:
        for callback in callbacks:
            callback(row)

    with torch.random.fork_rng(devices=_rng_devices(torch_device)):
        torch.manual_seed(seed)  # dropout draws from the global generator
        history = train_model(
            model,
            fitted_task,
            loss_fn,
            train,
            train_config,
            validation=validation,
            test=test,
            on_epoch=on_epoch_end,
        )
    return Classifier(
        model,
        fitted_task,
        standardizer,
        feature_names=feature_names,
        train_config=train_config,
        history=history,
    )


def _rng_devices(device: torch.device) -> list[int]:
    """CUDA devices whose RNG state ``fork_rng`` must save and restore."""
    return [device.index or 0] if device.type == "cuda" else []


__all__ = ["fit"]
