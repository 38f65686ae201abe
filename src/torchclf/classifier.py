"""The trained classifier and the two ways to get one: :func:`fit` and :func:`load`.

A :class:`Classifier` bundles everything needed to predict: the model, the task (classes,
thresholds), the preprocessing state, the feature names and the configs it was trained with.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from torchclf.checkpoint import read_model_file, write_model_file
from torchclf.config import ModelConfig, TrainConfig
from torchclf.data import as_features, resolve_device, split_indices
from torchclf.errors import DataError, ModelFileError
from torchclf.metrics import Evaluation
from torchclf.models import MLP, build_model, count_parameters
from torchclf.preprocessing import Standardizer
from torchclf.tasks import Task, infer_task, task_from_dict
from torchclf.training import History, Labelled, train_model

PREDICT_BATCH_ROWS = 4096  # rows per forward pass at prediction time: activations stay in cache


class Classifier:
    """A trained classifier: ``predict``, ``predict_proba``, ``evaluate``, ``save``.

    Get one from :func:`torchclf.fit` or :func:`torchclf.load`.

    Attributes:
        model: the ``nn.Module`` mapping standardized features to logits.
        task: what the logits mean (see :mod:`torchclf.tasks`).
        standardizer: the feature scaling learned on the training rows.
        feature_names: column names, when the training data had them.
        train_config: how the model was trained (None if unknown).
        history: per-epoch losses and accuracies (empty for a loaded model).
    """

    def __init__(
        self,
        model: MLP,
        task: Task,
        standardizer: Standardizer,
        *,
        feature_names: Sequence[str] | None = None,
        train_config: TrainConfig | None = None,
        history: History | None = None,
        training_summary: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.standardizer = standardizer
        self.feature_names = list(feature_names) if feature_names is not None else None
        self.train_config = train_config
        self.history = history if history is not None else History()
        self.training_summary = training_summary or (self.history.to_dict() if history else {})

    @property
    def model_config(self) -> ModelConfig:
        """The architecture."""
        return self.model.config

    @property
    def classes(self) -> np.ndarray:
        """The class labels (or label names, for multilabel) in output order."""
        return self.task.classes

    @property
    def n_features(self) -> int:
        """The number of input features."""
        return self.model_config.in_features

    @property
    def device(self) -> torch.device:
        """Where the model's weights live."""
        return next(self.model.parameters()).device

    def to(self, device: str | torch.device) -> Classifier:
        """Move the model to ``device`` ("auto", "cpu", "cuda", ...) and return self."""
        self.model.to(resolve_device(device))
        return self

    @torch.inference_mode()
    def decision_function(self, X: Any) -> np.ndarray:
        """Raw logits ``(n, n_outputs)`` for features ``X`` ``(n, n_features)``."""
        return self._logits(X).cpu().numpy()

    @torch.inference_mode()
    def predict_proba(self, X: Any) -> np.ndarray:
        """Class probabilities for features ``X``.

        Returns ``(n, n_classes)`` rows that sum to 1 (two columns for binary) or, for multilabel,
        ``(n, n_labels)`` independent per-label probabilities.
        """
        return self.task.probabilities(self._logits(X)).cpu().numpy()

    @torch.inference_mode()
    def predict(self, X: Any) -> np.ndarray:
        """Labels ``(n,)`` in the classes' own type, or a ``(n, n_labels)`` 0/1 matrix."""
        probs = self.task.probabilities(self._logits(X))
        return self.task.decode(self.task.decide(probs))

    @torch.inference_mode()
    def evaluate(self, X: Any, y: Any) -> Evaluation:
        """Accuracy, precision, recall, F1, ROC AUC, log loss, per class, confusion matrix."""
        probs = self.task.probabilities(self._logits(X))
        targets = self.task.encode(y)
        if len(targets) != len(probs):
            raise DataError(f"X has {len(probs)} rows but y has {len(targets)}; they must match")
        return self.task.evaluate(probs.cpu(), targets)

    def _logits(self, X: Any) -> Tensor:
        if self.feature_names is not None and hasattr(X, "columns"):
            # A DataFrame: pick the training columns by name, in training order; ignore the rest.
            by_name = {str(c): c for c in X.columns}
            missing = [n for n in self.feature_names if n not in by_name]
            if missing:
                raise DataError(
                    f"X lacks the feature columns {missing} the classifier was trained on"
                )
            X = X[[by_name[n] for n in self.feature_names]]
        features, _ = as_features(X, n_features=self.n_features)
        self.model.eval()
        device = self.device
        outputs = []
        for start in range(0, len(features), PREDICT_BATCH_ROWS):
            batch = torch.from_numpy(features[start : start + PREDICT_BATCH_ROWS]).to(device)
            outputs.append(self.model(self.standardizer.transform(batch)))
        return torch.cat(outputs)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the classifier to a ``.safetensors`` file (atomically) and return its path."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        tensors.update({f"preprocessing.{k}": v for k, v in self.standardizer.state_dict().items()})
        from torchclf import __version__

        metadata = {
            "torchclf_version": __version__,
            "task": self.task.to_dict(),
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config.to_dict() if self.train_config else None,
            "feature_names": self.feature_names,
            "training": self.training_summary,
        }
        return write_model_file(path, tensors, metadata)

    def __repr__(self) -> str:
        hidden = "-".join(str(h) for h in self.model_config.hidden) or "linear"
        return (
            f"Classifier(task={self.task.name!r}, classes={list(self.task.class_names)}, "
            f"features={self.n_features}, hidden={hidden}, "
            f"activation={self.model_config.activation!r}, "
            f"parameters={count_parameters(self.model)})"
        )


def load(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> Classifier:
    """Load a classifier saved by :meth:`Classifier.save`.

    Only tensors and JSON are read; nothing in the file is executed. The model is rebuilt from its
    config and its weights are loaded strictly.

    Raises:
        ModelFileError: if the file is missing, corrupt, not a torchclf model, from a newer
            torchclf, or its tensors do not match its architecture.
    """
    tensors, document = read_model_file(path)
    try:
        task = task_from_dict(document["task"])
        model_config = ModelConfig.from_dict(document["model_config"])
        train_values = document.get("train_config")
        train_config = TrainConfig.from_dict(train_values) if train_values else None
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelFileError(
            f"'{path}' has incomplete or invalid torchclf metadata: {exc!r}"
        ) from exc
    model = MLP(model_config)
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    expected = set(model.state_dict())
    missing, unexpected = sorted(expected - set(weights)), sorted(set(weights) - expected)
    if missing or unexpected:
        raise ModelFileError(
            f"'{path}' does not match its own architecture: missing tensors {missing}, "
            f"unexpected tensors {unexpected}"
        )
    try:
        model.load_state_dict(weights, strict=True)
        standardizer = Standardizer.from_state_dict(
            {
                k.removeprefix("preprocessing."): v
                for k, v in tensors.items()
                if k.startswith("preprocessing.")
            }
        )
    except (RuntimeError, KeyError) as exc:
        raise ModelFileError(
            f"'{path}' holds tensors that do not fit its architecture: {exc}"
        ) from exc
    classifier = Classifier(
        model,
        task,
        standardizer,
        feature_names=document.get("feature_names"),
        train_config=train_config,
        training_summary=document.get("training") or {},
    )
    return classifier.to(device)


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
    standardize: bool = True,
    eval_set: tuple[Any, Any] | None = None,
    seed: int = 42,
    device: str = "auto",
    verbose: bool = False,
    log_every: int | None = None,
    log: Callable[[str], None] | None = None,
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
        standardize: scale features with mean and standard deviation of the training rows.
        eval_set: ``(X_test, y_test)`` evaluated after every epoch and recorded in the history as
            ``test_loss``/``test_accuracy``; never used to choose anything.
        seed: seeds initialisation, validation split, shuffling and dropout.
        device: "auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps".
        verbose: print a progress line every ``log_every`` epochs.
        log_every: progress interval in epochs (default: ten lines per run).
        log: receives the progress lines instead of ``print``.

    Returns:
        The trained :class:`Classifier`; ``classifier.history`` holds the per-epoch record.
    """
    features, feature_names = as_features(X)
    fitted_task = infer_task(y, task, threshold=threshold, label_names=label_names)
    targets = fitted_task.encode(y)
    if len(targets) != len(features):
        raise DataError(f"X has {len(features)} rows but y has {len(targets)}; they must match")
    model_config = ModelConfig(
        in_features=features.shape[1],
        out_features=fitted_task.n_outputs,
        hidden=tuple(hidden),
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
    if verbose and log is None:
        log = print
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
            log=log,
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


__all__ = ["Classifier", "fit", "load"]
