"""A network or an ensemble on the engine's loops: ``fit``'s fast path, and its limits."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from torchclf.config import ModelConfig, TrainConfig
from torchclf.data import IndexBatches
from torchclf.engine.loops import Split, train_stacked
from torchclf.engine.optimizer import STACKED_OPTIMIZERS, Hyper
from torchclf.engine.stacked import StackedMLP
from torchclf.history import EpochRecorder, History
from torchclf.labelled import Labelled
from torchclf.models import members_of
from torchclf.tasks import Task


def refusal(model: nn.Module, train: Labelled, config: TrainConfig) -> str | None:
    """Why the hand-written engine cannot train this run, or None.

    It covers the common case exactly: a torchclf MLP with torch's activations, full or
    mini-batches, adam/adamw/sgd with a constant learning rate and unweighted losses. Dropout is
    left to the autograd loop, whose masks come from torch's global generator.
    """
    model_config = getattr(model, "config", None)
    reasons = {
        "the model is not a torchclf MLP": not isinstance(model_config, ModelConfig),
        "batch norm": bool(model_config and model_config.batch_norm),
        "dropout": bool(model_config and model_config.dropout > 0),
        "from-scratch activations": bool(model_config and model_config.activation_impl != "torch"),
        f"the {config.optimizer} optimizer": config.optimizer not in STACKED_OPTIMIZERS,
        "a learning-rate schedule": config.lr_schedule != "none",
        "gradient clipping": config.grad_clip is not None,
        "sample weights": train.weight is not None,
        "class weights": config.class_weight is not None,
        "label smoothing": config.label_smoothing > 0,
    }
    return next((reason for reason, applies in reasons.items() if applies), None)


def train_single(
    model: nn.Module,
    task: Task,
    train: Labelled,
    config: TrainConfig,
    validation: Labelled | None,
    test: Labelled | None,
    on_epoch: Callable[[dict[str, float]], None] | None,
    batches: IndexBatches,
) -> History:
    """:func:`torchclf.training.train_model` on these loops: the same epochs, rows and weights.

    ``model`` is a torchclf MLP that :func:`refusal` accepts, or an ensemble of them, whose
    members train side by side as the engine's members and stop together; it is trained in
    place. An ensemble's history is the ensemble's: its probabilities' losses and accuracies.
    """
    model_config: ModelConfig = model.config  # type: ignore[assignment]
    dtype = train.X.dtype
    members = members_of(model)
    names = list(members[0].state_dict())
    net = StackedMLP.from_config(model_config, [member.state_dict() for member in members])
    hyper = Hyper(config.optimizer, config.lr, config.weight_decay, config.momentum, config.epochs)
    splits = [
        Split(name, rows.X.T.contiguous(), task.stacked_targets(rows.y, dtype))
        for name, rows in (("val", validation), ("test", test))
        if rows is not None
    ]
    history = History()
    recorder = EpochRecorder(history, on_epoch)  # a row's time: when it was read

    def on_flush(columns: dict[str, list[list[float]]], last_epochs: list[int]) -> None:
        """Complete the rows read so far; stop on a diverged loss as the autograd loop does."""
        done = min(last_epochs[0], *(len(values[0]) for values in columns.values()))
        for index in range(len(history.rows), done):
            values = {name: per_member[0][index] for name, per_member in columns.items()}
            recorder.record(index + 1, values, config.lr)

    result = train_stacked(
        net,
        [hyper] * len(members),
        train.X.T,  # a view: the full-batch loop copies it, mini-batches gather from its rows
        task.stacked_targets(train.y, dtype),
        splits,
        early_stopping=config.early_stopping,
        patience=config.patience,
        min_delta=config.min_delta,
        on_flush=on_flush,
        batches=batches,
        ensemble=len(members) > 1,
    )
    history.best_epoch, history.stopped_early = result.best_epoch[0], result.stopped_early[0]
    for index, member in enumerate(members):
        member.load_state_dict(net.member_state(result.flat[index], names))
    return history


__all__ = ["refusal", "train_single"]
