"""The trained classifier and the two ways to get one: :func:`fit` and :func:`load`.

A :class:`Classifier` bundles everything needed to predict: the model, the task (classes,
thresholds), the preprocessing state, the feature names and the configs it was trained with.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from torch import Tensor

from torchclf.checkpoint import read_model_file, write_model_file
from torchclf.config import ModelConfig, TrainConfig
from torchclf.data.frames import as_pandas
from torchclf.devices import resolve_device
from torchclf.encoders import ArrayEncoder, Encoder, encoder_from_state
from torchclf.errors import DataError, ModelFileError
from torchclf.evaluation.metrics import Evaluation
from torchclf.nn.models import (
    MLP,
    Ensemble,
    architecture,
    count_parameters,
    empty_model,
    predict_batch_rows,
    predict_logits,
)
from torchclf.tasks import Task, task_from_dict
from torchclf.training.history import History
from torchclf.version import __version__

if TYPE_CHECKING:
    from torchclf.evaluation.inspection import Dependence, Explanation, Importance


class Classifier:
    """A trained classifier: ``predict``, ``predict_proba``, ``evaluate``, ``save``.

    Get one from :func:`torchclf.fit` or :func:`torchclf.load`.

    Attributes:
        model: the ``nn.Module`` mapping standardized features to logits: an :class:`MLP`,
            or an :class:`Ensemble` of them (``model_config.ensemble`` members).
        task: what the logits mean (see :mod:`torchclf.tasks`).
        encoder: turns raw inputs into the model's features (fitted on the training rows).
        train_config: how the model was trained (None if unknown).
        history: per-epoch losses and accuracies (empty for a loaded model).
        training_summary: epochs trained, best epoch and the last history row (kept when saved).
        data_source: where the training data came from and how it was split, when known
            (see :class:`torchclf.data.sources.DataSource`); saved with the model.
    """

    def __init__(
        self,
        model: MLP | Ensemble,
        task: Task,
        encoder: Encoder,
        *,
        train_config: TrainConfig | None = None,
        history: History | None = None,
        training_summary: dict[str, Any] | None = None,
        data_source: dict[str, Any] | None = None,
    ) -> None:
        self.model = model
        self.task = task
        self.encoder = encoder
        self.train_config = train_config
        # the optimizer as training left it, for a warm start (train_more); never saved. Fit
        # hands over an engine.LazyOptimizer, made when first asked for
        self._optimizer: Any = None
        self.history = history if history is not None else History()
        self.training_summary = training_summary or (self.history.to_dict() if history else {})
        self.data_source = data_source

    @property
    def model_config(self) -> ModelConfig:
        """The architecture."""
        return self.model.config

    @property
    def architecture(self) -> str:
        """The network's layers (``repr`` of its ``nn.Sequential``), with "K x " for K members."""
        return architecture(self.model)

    @property
    def classes(self) -> np.ndarray:
        """The class labels (or label names, for multilabel) in output order."""
        return self.task.classes

    @property
    def n_features(self) -> int:
        """The number of raw input columns."""
        return self.encoder.n_inputs

    @property
    def feature_names(self) -> list[str] | None:
        """The raw input columns' names, when the training data had them."""
        return self.encoder.input_names

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
        return self._logits(X, finish=self.task.probabilities).cpu().numpy()

    @torch.inference_mode()
    def predict(self, X: Any, *, threshold: float | Sequence[float] | None = None) -> np.ndarray:
        """Labels ``(n,)`` in the classes' own type, or a ``(n, n_labels)`` 0/1 matrix.

        ``threshold`` overrides the saved decision threshold (binary: one value; multilabel: one
        or one per label).
        """
        task = self.task if threshold is None else self.task.with_threshold(threshold)
        probs = self._logits(X, finish=task.probabilities)
        return task.decode(task.decide(probs))

    def permutation_importance(
        self,
        X: Any,
        y: Any,
        *,
        metric: str = "log_loss",
        n_repeats: int = 5,
        random_state: int | np.random.RandomState | None = 0,
    ) -> Importance:
        """Each original column's permutation importance on ``X``, ``y`` (rows not trained on).

        See :func:`torchclf.evaluation.inspection.permutation_importance`: the worsening of
        ``metric`` ("log_loss", "accuracy", "roc_auc" or "f1") when the column is shuffled,
        ``n_repeats`` times, as scikit-learn shuffles for ``random_state``.
        """
        from torchclf.evaluation.inspection import permutation_importance

        return permutation_importance(
            self, X, y, metric=metric, n_repeats=n_repeats, random_state=random_state
        )

    def explain(
        self,
        X: Any,
        y: Any,
        *,
        background: Any = None,
        metric: str = "log_loss",
        n_repeats: int = 5,
        top: int = 4,
    ) -> Explanation:
        """What drives the predictions: importance, and the top columns' dependence.

        Every column's permutation importance on ``X``, ``y`` (rows not trained on), and the
        ``top`` columns' partial dependence over ``background`` (the training rows; default
        ``X``). See :func:`torchclf.evaluation.inspection.explain`.
        """
        from torchclf.evaluation.inspection import explain

        return explain(
            self, X, y, background=background, metric=metric, n_repeats=n_repeats, top=top
        )

    def partial_dependence(
        self,
        X: Any,
        column: str | int,
        *,
        values: Sequence[Any] | None = None,
        grid_points: int = 20,
    ) -> Dependence:
        """The probabilities with ``column`` set to each of its ``values``, row by row.

        See :func:`torchclf.evaluation.inspection.partial_dependence`: each row's curve (ICE)
        and their mean over ``X``'s rows (the partial dependence), per class or label.
        """
        from torchclf.evaluation.inspection import partial_dependence

        return partial_dependence(self, X, column, values=values, grid_points=grid_points)

    @torch.inference_mode()
    def evaluate(self, X: Any, y: Any) -> Evaluation:
        """Accuracy, precision, recall, F1, ROC AUC, log loss, per class, confusion matrix."""
        probs = self._logits(X, finish=self.task.probabilities)
        targets = self.task.encode(y)
        if len(targets) != len(probs):
            raise DataError(f"X has {len(probs)} rows but y has {len(targets)}; they must match")
        # in float64: a float32 mean of 200 ones is 0.99999994, and metrics.json would say so
        return self.task.evaluate(probs.cpu().double(), targets)

    def _logits(self, X: Any, finish: Callable[[Tensor], Tensor] | None = None) -> Tensor:
        """The logits of ``X``, or ``finish`` of them (probabilities), computed batch by batch."""
        X = as_pandas(X)  # polars and pyarrow tables as pandas ones
        standardize = None
        if isinstance(self.encoder, ArrayEncoder) and not self.encoder.transforms_whole:
            # standardized a batch at a time, in cache (a clipped encoding is transformed whole)
            features = self.encoder.validate(X)
            standardize = (self.encoder.mean, self.encoder.scale)
        else:
            features = self.encoder.transform(X)  # (n, model inputs), validated
        weight = next(self.model.parameters())
        return predict_logits(
            self.model,
            features,
            weight.device,
            predict_batch_rows(self.model_config, weight.device, weight.dtype),
            standardize=standardize,
            finish=finish,
        )

    @property
    def optimizer(self) -> torch.optim.Optimizer | None:
        """The optimizer as training left it, for a warm start (:func:`train_more`); not saved."""
        from torchclf.engine import LazyOptimizer

        if isinstance(self._optimizer, LazyOptimizer):
            self._optimizer = self._optimizer.get()
        return self._optimizer

    @optimizer.setter
    def optimizer(self, optimizer: Any) -> None:
        self._optimizer = optimizer

    def to_onnx(self, path: str | os.PathLike[str]) -> Path:
        """Export to an ONNX file: raw columns in, probabilities and labels out.

        The graph holds the preprocessing, the network, the link and the decision
        (:mod:`torchclf.serving.export`); it is checked against :meth:`predict_proba` before it
        is written, atomically. Needs ``pip install 'torchclf[onnx]'``.

        Raises:
            ExportError: for a model the exporter cannot express yet (the reason is given).
        """
        import copy

        from torchclf.serving.export import export_onnx

        on_cpu = self if self.device.type == "cpu" else copy.deepcopy(self).to("cpu")
        metadata = {
            "task": self.task.to_dict(),
            "classes": [str(name) for name in self.task.class_names],
        }
        return export_onnx(
            on_cpu.model, on_cpu.task, on_cpu.encoder, path, on_cpu.predict_proba, metadata
        )

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the classifier to a ``.safetensors`` file (atomically) and return its path."""
        tensors = {f"model.{k}": v for k, v in self.model.state_dict().items()}
        encoder_meta, encoder_tensors = self.encoder.to_state()
        tensors.update({f"preprocessing.{k}": v for k, v in encoder_tensors.items()})
        metadata = {
            "torchclf_version": __version__,
            "task": self.task.to_dict(),
            "model_config": self.model_config.to_dict(),
            "train_config": self.train_config.to_dict() if self.train_config else None,
            "feature_names": self.feature_names,
            "encoder": encoder_meta,
            "training": self.training_summary,
            "data_source": self.data_source,
        }
        return write_model_file(path, tensors, metadata)

    def __repr__(self) -> str:
        hidden = "-".join(str(h) for h in self.model_config.hidden) or "linear"
        members = self.model_config.ensemble
        return (
            f"Classifier(task={self.task.name!r}, classes={list(self.task.class_names)}, "
            f"features={self.n_features}, hidden={hidden}, "
            + (f"ensemble={members}, " if members > 1 else "")
            + f"activation={self.model_config.activation!r}, "
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
        classifier = _built(path, tensors, document)
        # the preprocessing and the network on a few rows of the encoder's own: metadata that
        # parses but cannot encode (a list where a number belongs...) fails here, not later
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            classifier.predict_proba(classifier.encoder.probe())
    except ModelFileError:
        raise
    except Exception as exc:  # any other failure is the file's: torchclf wrote none of them
        raise ModelFileError(
            f"'{path}' has incomplete or invalid torchclf metadata: {exc!r}"
        ) from exc
    return classifier.to(device)


def _built(path: Any, tensors: dict[str, Tensor], document: dict[str, Any]) -> Classifier:
    """The classifier a model file describes, its tensors checked against its config."""
    if not isinstance(document.get("model_config"), dict):
        raise ModelFileError(f"'{path}' has no model_config in its torchclf metadata")
    task = task_from_dict(document["task"])
    model_config = ModelConfig.from_dict(document["model_config"])
    train_values = document.get("train_config")
    train_config = TrainConfig.from_dict(train_values) if train_values else None
    weights = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    # the architecture's shapes first, on the meta device: a config that declares a huge network
    # allocates nothing before the file's own tensors are found to disagree with it
    with torch.device("meta"):
        shapes = {
            k: tuple(v.shape) for k, v in empty_model(model_config, task.link).state_dict().items()
        }
    missing, unexpected = sorted(set(shapes) - set(weights)), sorted(set(weights) - set(shapes))
    if missing or unexpected:
        raise ModelFileError(
            f"'{path}' does not match its own architecture: missing tensors {missing}, "
            f"unexpected tensors {unexpected}"
        )
    wrong = [
        f"{k} {tuple(weights[k].shape)}, not {shapes[k]}"
        for k in shapes
        if tuple(weights[k].shape) != shapes[k]
    ]
    if wrong:
        raise ModelFileError(
            f"'{path}' holds tensors whose shapes its own config does not give: "
            + "; ".join(wrong[:3])
        )
    model = empty_model(model_config, task.link)
    if train_config is not None:  # float64 models come back as float64
        model.to(dtype=getattr(torch, train_config.dtype))
    try:
        model.load_state_dict(weights, strict=True)
    except RuntimeError as exc:
        raise ModelFileError(
            f"'{path}' holds tensors that do not fit its architecture: {exc}"
        ) from exc
    encoder_tensors = {
        k.removeprefix("preprocessing."): v
        for k, v in tensors.items()
        if k.startswith("preprocessing.")
    }
    encoder = encoder_from_state(document.get("encoder", {"kind": "array"}), encoder_tensors)
    if (encoder.n_outputs, task.n_outputs) != (model_config.in_features, model_config.out_features):
        raise ModelFileError(
            f"'{path}' is inconsistent: its preprocessing gives {encoder.n_outputs} features and "
            f"its task {task.n_outputs} outputs, its network takes {model_config.in_features} "
            f"and gives {model_config.out_features}"
        )
    return Classifier(
        model,
        task,
        encoder,
        train_config=train_config,
        training_summary=document.get("training") or {},
        data_source=document.get("data_source"),
    )


__all__ = ["Classifier", "load"]
