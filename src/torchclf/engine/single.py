"""A network or an ensemble on the engine's loops: ``fit``'s fast path, and its limits."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor, nn

from torchclf.config import ModelConfig, TrainConfig
from torchclf.data.batches import IndexBatches
from torchclf.data.labelled import Labelled
from torchclf.distributed import Group
from torchclf.engine.loops import Split, train_stacked
from torchclf.engine.optimizer import STACKED_OPTIMIZERS, Hyper
from torchclf.engine.rows import Folds
from torchclf.engine.stacked import StackedMLP
from torchclf.nn.models import members_of
from torchclf.tasks import Task
from torchclf.training.checkpoints import Checkpoints
from torchclf.training.history import EpochRecorder, History


def refusal(model: nn.Module, train: Labelled, config: TrainConfig) -> str | None:
    """Why the hand-written engine cannot train this run, or None.

    It covers the common case exactly: a torchclf MLP with torch's activations, full or
    mini-batches, adam/adamw/sgd with a constant learning rate and unweighted losses. Dropout is
    left to the autograd loop, whose masks come from torch's global generator.
    """
    model_config = getattr(model, "config", None)
    if not isinstance(model_config, ModelConfig):
        return "the model is not a torchclf MLP"
    settings = {**dataclasses.asdict(model_config), **dataclasses.asdict(config)}
    return refusal_of({**settings, "weighted": train.weight is not None})


def refusal_of(settings: Mapping[str, Any]) -> str | None:
    """:func:`refusal` from ``fit``'s own values, before any model is built.

    ``settings`` maps ``batch_norm``, ``dropout``, ``activation_impl``, ``optimizer``,
    ``lr_schedule``, ``grad_clip``, ``class_weight``, ``label_smoothing`` to their values (a
    missing one has its declared default) and ``weighted`` to whether rows have sample weights.
    """
    values = {
        **{f.name: f.default for f in dataclasses.fields(ModelConfig) if f.name != "hidden"},
        **{f.name: f.default for f in dataclasses.fields(TrainConfig)},
        "weighted": False,
        **settings,
    }
    reasons = {
        "batch norm": bool(values["batch_norm"]),
        "dropout": values["dropout"] > 0,
        "from-scratch activations": values["activation_impl"] != "torch",
        f"the {values['optimizer']} optimizer": values["optimizer"] not in STACKED_OPTIMIZERS,
        "a learning-rate schedule": values["lr_schedule"] != "none",
        "gradient clipping": values["grad_clip"] is not None,
        "sample weights": bool(values["weighted"]),
        "class weights": values["class_weight"] is not None,
        "label smoothing": values["label_smoothing"] > 0,
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
    folds: Tensor | None = None,
    checkpoints: Checkpoints | None = None,
    optimizer: LazyOptimizer | None = None,
    group: Group | None = None,
) -> History:
    """:func:`torchclf.training.loop.train_model` on these loops: the same epochs, rows and weights.

    ``model`` is a torchclf MLP that :func:`refusal` accepts, or an ensemble of them, whose
    members train side by side as the engine's members and stop together; it is trained in
    place. An ensemble's history is the ensemble's: its probabilities' losses and accuracies.

    With ``folds`` ``(M, n)`` (True where member ``m`` trains on row ``n``) the ensemble is
    cross-fitted: each member trains on its rows, is validated and stopped on the others
    (``validation`` is then None), and keeps its own best epoch. The history's "train" and "val"
    columns are then the members' means (of those still training), "test" the ensemble's;
    ``history.member_best_epochs`` holds each member's best epoch.

    ``checkpoints``: as :func:`~torchclf.engine.loops.train_stacked` takes them; the history
    so far is saved with each one and taken up on resuming.

    ``optimizer``: ``model``'s ``torch.optim`` optimizer, to be made (when asked for) with the
    engine's last moments and step count, so that the autograd loop can go on from it (a warm
    start); left fresh when cross-fitted.

    ``group``: the processes training ``model`` together; ``batches`` hold this one's share.
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
    if checkpoints is not None:
        history = History.from_dict(checkpoints.history)  # {} unless resumed: an empty one
        checkpoints.track(history)
    recorder = EpochRecorder(history, on_epoch)  # a row's time: when it was read

    def on_flush(columns: dict[str, list[list[float]]], last_epochs: list[int]) -> None:
        """Complete the rows read so far; stop on a diverged loss as the autograd loop does."""
        done = min(max(last_epochs), *(len(values[0]) for values in columns.values()))
        if folds is None:  # one network, or an ensemble scored as one: member 0 says it all
            for index in range(len(history.rows), done):
                values = {name: per_member[0][index] for name, per_member in columns.items()}
                recorder.record(index + 1, values, config.lr)
            return
        # cross-fitted: each epoch's train and val are the members' mean, a member that has
        # stopped counted at its kept (best validation) epoch, so the row is the ensemble as it
        # would be kept; test is the ensemble's own score (the same for every member)
        kept = [
            min(range(last), key=columns["val_loss"][m].__getitem__) if last <= done else None
            for m, last in enumerate(last_epochs)
        ]
        for index in range(len(history.rows), done):
            at = [
                index if k is None or last > index else k
                for k, last in zip(kept, last_epochs, strict=True)
            ]
            values = {
                name: sum(per_member[m][e] for m, e in enumerate(at)) / len(at)
                if name.startswith(("train_", "val_"))
                else per_member[0][index]
                for name, per_member in columns.items()
            }
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
        folds=None if folds is None else Folds(folds.to(train.X.device), dtype),
        checkpoints=checkpoints,
        group=group,
    )
    history.best_epoch, history.stopped_early = result.best_epoch[0], result.stopped_early[0]
    if folds is not None:
        kept = [epoch for epoch in result.best_epoch if epoch is not None]
        history.best_epoch = max(kept) if kept else None
        history.stopped_early = all(result.stopped_early)
        history.member_best_epochs = result.best_epoch
    for index, member in enumerate(members):
        member.load_state_dict(net.member_state(result.flat[index], names))
    if optimizer is not None and result.optimizer is not None:
        optimizer.moments, optimizer.steps = result.optimizer.state(), result.steps
    return history


class LazyOptimizer:
    """A network's ``torch.optim`` optimizer, made when first asked for (:meth:`get`).

    Making the first ``torch.optim`` optimizer of a process imports ``torch._dynamo``, about 1.2
    s on this machine: a run on the engine, which steps with its own, makes one only when a warm
    start asks for it, then with the engine's last ``moments`` ``(M, P)`` and ``steps``.
    """

    def __init__(self, model: nn.Module, make: Callable[[Any], torch.optim.Optimizer]) -> None:
        # make(parameters): a function of the module (not a lambda), so the optimizer to be
        # made pickles with the model that holds it (scikit-learn pickles estimators)
        self.model, self.make = model, make
        self.made: torch.optim.Optimizer | None = None
        self.moments: dict[str, Tensor] | None = None  # the engine's, to carry over
        self.steps = 0

    def get(self) -> torch.optim.Optimizer:
        if self.made is None:
            self.made = self.make(self.model.parameters())
            if self.moments is not None:
                _carry_moments(self.made, self.model, self.moments, self.steps)
        return self.made


def _carry_moments(
    optimizer: torch.optim.Optimizer, model: nn.Module, moments: dict[str, Tensor], steps: int
) -> None:
    """Give ``optimizer`` the engine's ``moments`` ``(M, P)``, parameter by parameter.

    Adam and AdamW keep ``exp_avg``, ``exp_avg_sq`` and ``step``; SGD its ``momentum_buffer``.
    """
    is_sgd = isinstance(optimizer, torch.optim.SGD)
    if is_sgd and not optimizer.param_groups[0]["momentum"]:
        return  # plain SGD keeps nothing
    members = members_of(model)
    names = list(members[0].state_dict())
    layout = StackedMLP.from_config(model.config, [m.state_dict() for m in members])  # type: ignore[arg-type]
    for index, member in enumerate(members):
        moment = layout.member_state(moments["moment"][index], names)
        stacked_square = moments.get("square")
        square = (
            None if stacked_square is None else layout.member_state(stacked_square[index], names)
        )
        for name, parameter in member.named_parameters():
            if is_sgd:
                optimizer.state[parameter] = {"momentum_buffer": moment[name].clone()}
                continue
            assert square is not None  # adam and adamw keep both moments
            optimizer.state[parameter] = {
                "step": torch.tensor(float(steps)),
                "exp_avg": moment[name].clone(),
                "exp_avg_sq": square[name].clone(),
            }


__all__ = ["LazyOptimizer", "refusal", "refusal_of", "train_single"]
