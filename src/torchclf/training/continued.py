"""Training a fitted classifier further: warm starts, and data that comes in chunks."""

from __future__ import annotations

import dataclasses
from typing import Any

import torch

from torchclf.classifier import Classifier
from torchclf.config import TrainConfig
from torchclf.data.arrays import check_sample_weight
from torchclf.data.labelled import to_labelled
from torchclf.devices import rng_devices
from torchclf.errors import DataError
from torchclf.training.loop import make_optimizer, train_model


def train_more(
    classifier: Classifier,
    X: Any,
    y: Any,
    *,
    epochs: int = 1,
    sample_weight: Any = None,
    optimizer: torch.optim.Optimizer | None = None,
) -> torch.optim.Optimizer:
    """Continue training ``classifier`` in place on more rows (warm start, chunked data).

    The classifier keeps its task (classes), its encoder (feature scaling from its first fit)
    and its training settings; the new rows' history rows are appended, numbered on. The
    optimizer goes on as training left it (Adam's moments and step count: ``classifier.optimizer``,
    which ``fit`` sets for a network it did not blend or cross-fit), unless ``optimizer`` is
    given; a classifier loaded from a file starts a fresh one. The optimizer used is returned
    and kept as ``classifier.optimizer``.

    Raises:
        DataError: for labels outside the classifier's classes or the wrong features.
    """
    config = classifier.train_config or TrainConfig()
    config = dataclasses.replace(config, epochs=epochs, early_stopping=False, lr_schedule="none")
    targets = classifier.task.encode(y)
    weights = check_sample_weight(sample_weight, len(targets))
    device, dtype = classifier.device, next(classifier.model.parameters()).dtype
    features = classifier.encoder.transform(X)
    if len(features) != len(targets):
        raise DataError(f"X has {len(features)} rows but y has {len(targets)}; they must match")
    train = to_labelled(features, targets, device, dtype, weights)
    loss_fn = classifier.task.loss_fn(targets, config.class_weight, config.label_smoothing)
    loss_fn = loss_fn.to(device=device, dtype=dtype)
    if optimizer is None:
        optimizer = classifier.optimizer or make_optimizer(config, classifier.model.parameters())
    classifier.optimizer = optimizer
    start = len(classifier.history) + 1
    with torch.random.fork_rng(devices=rng_devices(device)):
        torch.manual_seed(config.seed + start)
        history = train_model(
            classifier.model,
            classifier.task,
            loss_fn,
            train,
            config,
            optimizer=optimizer,
            start_epoch=start,
        )
    classifier.history.rows.extend(history.rows)
    classifier.training_summary = classifier.history.to_dict()
    return optimizer


__all__ = ["train_more"]
