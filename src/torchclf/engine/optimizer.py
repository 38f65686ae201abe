"""One optimizer step for many members at once, each with its own settings.

Adam, AdamW and SGD (with momentum) on a flat ``(M, P)`` parameter matrix with ``(M, 1)``
hyper-parameters: the arithmetic of ``torch.optim``'s single-tensor implementations, vectorised
over the members. Members that share their settings take one fused kernel instead.
"""

from __future__ import annotations

import copy
import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults
STACKED_OPTIMIZERS = ("adam", "adamw", "sgd")


@dataclass(frozen=True)
class Hyper:
    """One member's optimizer settings."""

    optimizer: str = "adam"  # adam, adamw or sgd
    lr: float = 0.003
    weight_decay: float = 0.0  # L2 for adam and sgd, decoupled for adamw
    momentum: float = 0.0  # sgd only
    epochs: int = 1000


class StackedOptimizer:
    """Adam, AdamW and SGD (with momentum) for every member at once, each with its own settings.

    The arithmetic is torch.optim's single-tensor implementation, step for step, on ``(M, P)``
    with ``(M, 1)`` hyper-parameters. A member whose ``live`` flag is 0 gets a zero learning rate,
    which leaves its parameters exactly as they are.
    """

    def __init__(self, hypers: Sequence[Hyper], like: Tensor) -> None:
        def column(values: Sequence[float]) -> Tensor:
            return torch.tensor(values, dtype=like.dtype, device=like.device)[:, None]

        kinds = [h.optimizer for h in hypers]
        self.lr = column([h.lr for h in hypers])
        self.momentum = column([h.momentum for h in hypers])
        adamw = [k == "adamw" for k in kinds]
        self.adamw_decay = column([h.weight_decay * a for h, a in zip(hypers, adamw, strict=True)])
        self.l2 = column([h.weight_decay * (not a) for h, a in zip(hypers, adamw, strict=True)])
        self.is_sgd = column([k == "sgd" for k in kinds]).bool()
        self.any_sgd, self.all_sgd = "sgd" in kinds, set(kinds) == {"sgd"}
        self.any_l2 = bool(self.l2.any())
        self.any_adamw_decay = bool(self.adamw_decay.any())
        settings = {dataclasses.replace(h, epochs=1) for h in hypers}
        self.shared = next(iter(settings)) if len(settings) == 1 else None
        self.moment = torch.zeros_like(like)  # adam's exp_avg, sgd's momentum buffer
        self.square = torch.zeros_like(like) if not self.all_sgd else None  # adam's exp_avg_sq
        # the fused kernel reads the step count from a tensor; one reused, not one per step
        self.step_count = torch.zeros((), dtype=torch.float32, device=like.device)

    def state(self) -> dict[str, Tensor]:
        """The moments, for a checkpoint (the rest comes from the members' settings)."""
        return {"moment": self.moment} | ({} if self.square is None else {"square": self.square})

    def load(self, state: dict[str, Tensor]) -> None:
        """Take up :meth:`state`'s moments in place."""
        self.moment.copy_(state["moment"])
        if self.square is not None:
            self.square.copy_(state["square"])

    def subset(self, keep: Tensor) -> StackedOptimizer:
        """The optimizer of members ``keep`` ``(A,)`` alone, their state carried over."""
        chosen = copy.copy(self)
        for name in ("lr", "momentum", "adamw_decay", "l2", "is_sgd", "moment", "square"):
            value = getattr(self, name)
            if value is not None:
                setattr(chosen, name, value.index_select(0, keep))
        return chosen

    def step(self, params: Tensor, grads: Tensor, step: int, live: Tensor | None = None) -> None:
        """Update ``params`` ``(M, P)`` in place; ``step`` counts from 1, ``live`` is ``(M, 1)``.

        ``grads`` may be overwritten (weight decay is added to it in place).
        """
        if self.shared is not None and live is None:
            self._shared_step(params, grads, step)
            return
        lr = self.lr if live is None else self.lr * live
        if self.any_l2:
            grads = grads.add(params * self.l2)
        if self.all_sgd:
            self.moment.mul_(self.momentum).add_(grads)
            params.sub_(lr * self.moment)
            return
        if self.any_adamw_decay:
            params.mul_(1 - lr * self.adamw_decay)
        sgd_moment = self.moment * self.momentum + grads if self.any_sgd else None
        self.moment.lerp_(grads, 1 - BETA1)
        self.square.mul_(BETA2).addcmul_(grads, grads, value=1 - BETA2)  # type: ignore[union-attr]
        bias1, bias2 = 1 - BETA1**step, 1 - BETA2**step
        denom = (self.square.sqrt() / math.sqrt(bias2)).add_(EPS)  # type: ignore[union-attr]
        # torch computes param + (-step_size * exp_avg) / denom: the same order of operations
        update = (self.moment * (lr / bias1)).div_(denom)
        if sgd_moment is not None:
            self.moment.copy_(torch.where(self.is_sgd, sgd_moment, self.moment))
            update = torch.where(self.is_sgd, lr * sgd_moment, update)
        params.sub_(update)

    def _shared_step(self, params: Tensor, grads: Tensor, step: int) -> None:
        """The step when every member has the same settings: scalars and fused in-place ops.

        One member then steps exactly as ``torch.optim``'s single-tensor implementation would.
        """
        hyper = self.shared
        assert hyper is not None
        lr, decay = hyper.lr, hyper.weight_decay
        if hyper.optimizer == "sgd":
            if decay:
                grads.add_(params, alpha=decay)
            if hyper.momentum:
                grads = self.moment.mul_(hyper.momentum).add_(grads)
            params.add_(grads, alpha=-lr)
            return
        # the kernel applies the decay itself: adam's L2 to the gradient, adamw's to the weights
        if _fused_adam(hyper, params, grads, self.moment, self.square, self.step_count.fill_(step)):
            return
        if decay and hyper.optimizer == "adam":
            grads.add_(params, alpha=decay)
        if decay and hyper.optimizer == "adamw":
            params.mul_(1 - lr * decay)
        self.moment.lerp_(grads, 1 - BETA1)
        square = self.square
        assert square is not None
        square.mul_(BETA2).addcmul_(grads, grads, value=1 - BETA2)
        bias1, bias2 = 1 - BETA1**step, 1 - BETA2**step
        denom = square.sqrt().div_(math.sqrt(bias2)).add_(EPS)
        params.addcdiv_(self.moment, denom, value=-lr / bias1)


def _fused_adam(
    hyper: Hyper, params: Tensor, grads: Tensor, moment: Tensor, square: Tensor | None, step: Tensor
) -> bool:
    """Adam or AdamW in one kernel, ``torch._fused_adam_`` (what ``fused=True`` runs).

    One kernel instead of seven passes over the parameters: a quarter of the time. Returns
    False where this torch lacks the kernel or it refuses; the caller then runs the same step
    op by op (the public fallback).
    """
    kernel = getattr(torch, "_fused_adamw_" if hyper.optimizer == "adamw" else "_fused_adam_", None)
    if kernel is None or square is None or not _FUSED_OK.get(params.device.type, True):
        return False
    try:
        kernel(
            [params],
            [grads],
            [moment],
            [square],
            [],
            [step],
            lr=hyper.lr,
            beta1=BETA1,
            beta2=BETA2,
            weight_decay=hyper.weight_decay,
            eps=EPS,
            amsgrad=False,
            maximize=False,
        )
    except (RuntimeError, TypeError, NotImplementedError):
        _FUSED_OK[params.device.type] = False  # e.g. a device without the kernel: not again
        return False
    return True


_FUSED_OK: dict[str, bool] = {}  # device type -> whether the fused kernel ran there


__all__ = ["BETA1", "BETA2", "EPS", "STACKED_OPTIMIZERS", "Hyper", "StackedOptimizer"]
