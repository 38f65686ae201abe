"""Many configurations trained at once: the engine of ``improve`` and ``sweep``.

Members that share an architecture (hidden sizes and activation) form a group whose weights are
stacked along a leading member axis, ``(M, out, in)``. One batched forward (``torch.baddbmm``)
and one backward serve the whole group, and one vectorised optimizer step applies each member's
own optimizer (adam, adamw or sgd), learning rate, weight decay and momentum. Every member is
evaluated on the test rows after every epoch, exactly as :func:`torchclf.fit` would, and comes
out as an ordinary :class:`torchclf.Classifier`.

This first version trains full batch (the small-data case sweeps are for), without dropout or
batch norm; ``tests/test_sweep.py`` checks each member against the same configuration trained
alone by ``fit``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from torchclf.activations import make_activation
from torchclf.classifier import Classifier
from torchclf.config import ModelConfig, TrainConfig, check_choice
from torchclf.data import as_features, resolve_device
from torchclf.encoders import ArrayEncoder
from torchclf.errors import ConfigError
from torchclf.models import MLP, build_model
from torchclf.tasks import Task, infer_task
from torchclf.training import History, Labelled, to_labelled

SWEEP_OPTIMIZERS = ("adam", "adamw", "sgd")
BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults


@dataclass(frozen=True)
class Member:
    """One configuration of a sweep."""

    hidden: tuple[int, ...] = (10, 10)  # hidden layer sizes; () is the linear model
    activation: str = "relu"  # one of torchclf.config.ACTIVATIONS
    optimizer: str = "adam"  # adam, adamw or sgd
    lr: float = 0.003  # learning rate
    weight_decay: float = 0.0  # L2 (adam, sgd) or decoupled (adamw) weight decay
    momentum: float = 0.0  # sgd momentum
    epochs: int = 1000  # full-batch epochs
    seed: int = 42  # initialisation

    def __post_init__(self) -> None:
        object.__setattr__(self, "hidden", tuple(self.hidden))
        check_choice("optimizer", self.optimizer, SWEEP_OPTIMIZERS)
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
    standardize: bool = True,
    dtype: str = "float32",
    device: str = "cpu",
    chunk_size: int = 64,
) -> list[Classifier]:
    """Train every member, a group of same-architecture members at a time.

    A group larger than ``chunk_size`` members trains in chunks of that many, which bounds the
    memory of the stacked activations ``(members, rows, width)``.

    Returns one classifier per member, in order; each ``classifier.history`` holds its epochs.
    """
    if chunk_size < 1:
        raise ConfigError(
            f"The 'chunk_size' parameter must be at least 1. Got {chunk_size!r} instead."
        )
    if not members:
        raise ConfigError("a sweep needs at least one member")
    torch_device, torch_dtype = resolve_device(device), getattr(torch, dtype)
    features, names = as_features(X, dtype=np.float64 if dtype == "float64" else np.float32)
    task = infer_task(y)
    encoder = ArrayEncoder.fit(features, standardize=standardize, names=names, dtype=dtype)

    def tensors(rows_X: Any, rows_y: Any) -> Labelled:
        encoded = encoder.transform(rows_X)
        return to_labelled(encoded, task.encode(rows_y), torch_device, torch_dtype)

    train = tensors(features, y)
    test = tensors(*eval_set) if eval_set is not None else None
    results: list[Classifier | None] = [None] * len(members)
    groups: dict[tuple[Any, ...], list[int]] = {}
    for index, member in enumerate(members):
        groups.setdefault((member.hidden, member.activation), []).append(index)
    chunks = [
        indices[start : start + chunk_size]
        for indices in groups.values()
        for start in range(0, len(indices), chunk_size)
    ]
    for indices in chunks:
        group = [members[i] for i in indices]
        trained = _train_group(group, task, encoder, train, test, torch_device, torch_dtype)
        for i, classifier in zip(indices, trained, strict=True):
            results[i] = classifier
    return results  # type: ignore[return-value]


def _train_group(
    members: list[Member],
    task: Task,
    encoder: ArrayEncoder,
    train: Labelled,
    test: Labelled | None,
    device: torch.device,
    dtype: torch.dtype,
) -> list[Classifier]:
    first = members[0]
    config = ModelConfig(
        in_features=encoder.n_outputs,
        out_features=task.n_outputs,
        hidden=first.hidden,
        activation=first.activation,
    )
    models = [build_model(config, m.seed).to(device=device, dtype=dtype) for m in members]
    linears = [
        [layer for layer in model.layers if isinstance(layer, nn.Linear)] for model in models
    ]
    # (M, out, in) weights and (M, out) biases per layer, the members' own initial values
    params = []
    for depth in range(len(linears[0])):
        params.append(torch.stack([ls[depth].weight.detach() for ls in linears]).requires_grad_())
        params.append(torch.stack([ls[depth].bias.detach() for ls in linears]).requires_grad_())
    activation = make_activation(first.activation)
    loss_fn = task.loss_fn(train.y.cpu(), None, 0.0).to(device=device, dtype=dtype)
    loss_fn.reduction = "none"
    hyper = _Hyper(members, device, dtype)
    moments = [torch.zeros_like(p) for p in params]  # adam: exp_avg / sgd: momentum buffer
    squares = [torch.zeros_like(p) for p in params]  # adam: exp_avg_sq
    histories = [History() for _ in members]

    def forward(X: Tensor) -> Tensor:
        h = X.expand(len(members), *X.shape)  # (M, n, in)
        for depth in range(0, len(params), 2):
            h = torch.baddbmm(params[depth + 1][:, None, :], h, params[depth].transpose(1, 2))
            if depth + 2 < len(params):
                h = activation(h)
        return h  # (M, n, outputs)

    for epoch in range(1, max(m.epochs for m in members) + 1):
        logits = forward(train.X)
        losses = _member_losses(loss_fn, logits, train.y)  # (M,)
        grads = torch.autograd.grad(losses.sum(), params)
        with torch.no_grad():
            active = hyper.epochs >= epoch  # (M,)
            for p, g, m, v in zip(params, grads, moments, squares, strict=True):
                hyper.step(p, g, m, v, epoch, active)
            row_train = _scores(task, logits.detach(), train.y, losses.detach())
            row_test = None
            if test is not None:
                test_logits = forward(test.X)
                row_test = _scores(
                    task, test_logits, test.y, _member_losses(loss_fn, test_logits, test.y)
                )
        for i in np.flatnonzero(active.cpu().numpy()):
            row = {
                "epoch": float(epoch),
                "train_loss": row_train[0][i],
                "train_accuracy": row_train[1][i],
            }
            if row_test is not None:
                row.update(test_loss=row_test[0][i], test_accuracy=row_test[1][i])
            row["lr"] = members[i].lr
            histories[i].rows.append(row)

    classifiers = []
    for i, member in enumerate(members):
        model = MLP(config).to(device=device, dtype=dtype)
        state = {}
        for depth, name in enumerate(k for k in model.state_dict() if k.endswith(".weight")):
            state[name] = params[2 * depth][i].detach().clone()
            state[name.replace(".weight", ".bias")] = params[2 * depth + 1][i].detach().clone()
        model.load_state_dict(state)
        train_config = TrainConfig(
            optimizer=member.optimizer,
            lr=member.lr,
            weight_decay=member.weight_decay,
            momentum=member.momentum,
            epochs=member.epochs,
            seed=member.seed,
            dtype=str(dtype).removeprefix("torch."),
        )
        classifiers.append(
            Classifier(model, task, encoder, train_config=train_config, history=histories[i])
        )
    return classifiers


def _member_losses(loss_fn: nn.Module, logits: Tensor, targets: Tensor) -> Tensor:
    """Each member's mean loss, ``(M,)``, as its own ``reduction="mean"`` loss would give."""
    members, rows = logits.shape[:2]
    if isinstance(loss_fn, nn.CrossEntropyLoss):
        flat = loss_fn(logits.reshape(members * rows, -1), targets.repeat(members))
        return flat.reshape(members, rows).mean(dim=1)
    expanded = targets.expand(members, *targets.shape)
    return loss_fn(logits, expanded).reshape(members, -1).mean(dim=1)


def _scores(
    task: Task, logits: Tensor, targets: Tensor, losses: Tensor
) -> tuple[list[float], list[float]]:
    """Per-member losses and accuracies as Python floats (one device sync per epoch)."""
    correct = torch.stack([task.n_correct(member_logits, targets) for member_logits in logits])
    return losses.tolist(), (correct.double() / len(targets)).tolist()


class _Hyper:
    """Per-member hyper-parameters as ``(M, 1, 1)`` tensors, and the vectorised update."""

    def __init__(self, members: list[Member], device: torch.device, dtype: torch.dtype) -> None:
        def column(values: list[float]) -> Tensor:
            return torch.tensor(values, device=device, dtype=dtype)[:, None, None]

        self.lr = column([m.lr for m in members])
        self.weight_decay = column([m.weight_decay for m in members])
        self.momentum = column([m.momentum for m in members])
        self.is_sgd = column([m.optimizer == "sgd" for m in members]).bool()
        self.is_adamw = column([m.optimizer == "adamw" for m in members]).bool()
        self.epochs = torch.tensor([m.epochs for m in members], device=device)
        # adamw decays the weights themselves: p * (1 - lr * wd), the others add wd * p to grads
        self.decay = torch.where(
            self.is_adamw, 1 - self.lr * self.weight_decay, torch.ones_like(self.lr)
        )
        self.l2 = torch.where(self.is_adamw, torch.zeros_like(self.lr), self.weight_decay)

    def step(
        self, p: Tensor, grad: Tensor, moment: Tensor, square: Tensor, step: int, active: Tensor
    ) -> None:
        shape = (-1,) + (1,) * (p.dim() - 1)  # (M, 1, 1) for weights, (M, 1) for biases
        lr, momentum = self.lr.reshape(shape), self.momentum.reshape(shape)
        is_sgd, keep = self.is_sgd.reshape(shape), active.reshape(shape)
        grad = grad + self.l2.reshape(shape) * p
        # sgd: buf = momentum * buf + grad (the first step's buf is grad itself)
        sgd_moment = momentum * moment + grad
        # adam: exp_avg.lerp_(grad, 1 - beta1); exp_avg_sq = beta2 * exp_avg_sq + (1 - beta2) g^2
        adam_moment = moment.lerp(grad, 1 - BETA1)
        square.copy_(torch.where(keep, square * BETA2 + (1 - BETA2) * grad * grad, square))
        bias1, bias2 = 1 - BETA1**step, 1 - BETA2**step
        denom = square.sqrt() / math.sqrt(bias2) + EPS
        adam_update = (-(lr / bias1) * adam_moment) / denom
        new_moment = torch.where(is_sgd, sgd_moment, adam_moment)
        update = torch.where(is_sgd, -lr * sgd_moment, adam_update)
        moment.copy_(torch.where(keep, new_moment, moment))
        decayed = p * self.decay.reshape(shape)
        p.copy_(torch.where(keep, decayed + update, p))


__all__ = ["Member", "train_members"]
