"""Many same-architecture MLPs trained as one, with a hand-written forward and backward.

This is the engine behind :mod:`torchclf.sweep`. ``M`` members of one architecture keep their
parameters in one flat matrix ``(M, P)``, laid out per member as ``nn.Linear``'s state dict
(``layers.0.weight``, ``layers.0.bias``, ...), so one vectorised optimizer step updates them all
and any member comes out as an ordinary :class:`~torchclf.models.MLP`.

Why it is written by hand: these problems are tiny (a few thousand rows, widths up to ~100), so
the time goes to per-operation overhead, not arithmetic (``../shared/PERF_NOTES.md``). So:

- activations are feature-major, ``(M, width, rows)``: ``W @ A`` is several times faster than
  ``A @ W.T`` for these thin shapes;
- the gradients are written out (no autograd graph); ``tests/test_stacked.py`` checks them
  against ``torch.autograd`` for every activation and task;
- one forward pass per epoch covers the training rows and the evaluation rows together: the
  evaluation columns of epoch ``e``'s forward are exactly the after-step metrics of epoch
  ``e - 1``, so a separate evaluation pass is not needed;
- metrics and early-stopping state stay on the device, read once at the end (and checked every
  :data:`SYNC_EVERY` epochs to finish early when every member has stopped).
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from torchclf.activations import LEAKY_SLOPE, activate_
from torchclf.tasks import MulticlassTask, Task

BETA1, BETA2, EPS = 0.9, 0.999, 1e-8  # torch.optim.Adam's defaults
SYNC_EVERY = 50  # full-batch epochs between reads of the device: progress, NaN check, all stopped
STACKED_OPTIMIZERS = ("adam", "adamw", "sgd")


class StackedMLP:
    """``M`` MLPs of one architecture as a flat parameter matrix ``(M, P)``.

    ``weights[l]`` and ``biases[l]`` are views into ``flat``: ``(M, out, in)`` and ``(M, out, 1)``.
    """

    def __init__(self, sizes: Sequence[int], activation: str, flat: Tensor) -> None:
        self.sizes = tuple(sizes)  # (in_features, *hidden, out_features)
        self.activation = activation
        self.flat = flat
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        self.shapes: list[tuple[int, ...]] = []  # per member, in state-dict order
        offset, members = 0, flat.shape[0]
        for fan_in, fan_out in itertools.pairwise(self.sizes):
            self.weights.append(
                flat[:, offset : offset + fan_out * fan_in].view(members, fan_out, fan_in)
            )
            offset += fan_out * fan_in
            self.biases.append(flat[:, offset : offset + fan_out].view(members, fan_out, 1))
            offset += fan_out
            self.shapes += [(fan_out, fan_in), (fan_out,)]
        self._buffers: dict[int, list[Tensor]] = {}  # columns -> one output per layer
        self._grad_buffers: dict[tuple[int, int], Tensor] = {}
        self._grads: Tensor | None = None
        self._grad_views: StackedMLP | None = None
        self.keep: Tensor | None = None  # dropout: each member's keep probability, (M, 1, 1)
        self.generator: torch.Generator | None = None
        if offset != flat.shape[1]:
            raise ValueError(
                f"sizes {self.sizes} need {offset} parameters, flat has {flat.shape[1]}"
            )

    @classmethod
    def from_states(
        cls,
        sizes: Sequence[int],
        activation: str,
        states: Sequence[dict[str, Tensor]],
        device: torch.device | None = None,
    ) -> StackedMLP:
        """Stack the state dicts of ``M`` :class:`~torchclf.models.MLP` (Linear layers only)."""
        rows = [torch.cat([value.reshape(-1) for value in state.values()]) for state in states]
        return cls(sizes, activation, torch.stack(rows).to(device))

    def member_state(self, flat_row: Tensor, names: Sequence[str]) -> dict[str, Tensor]:
        """One member's parameters ``(P,)`` as a state dict with the MLP's ``names``."""
        sizes = [math.prod(shape) for shape in self.shapes]
        values = torch.split(flat_row.detach().clone(), sizes)
        return {
            name: value.view(shape)
            for name, value, shape in zip(names, values, self.shapes, strict=True)
        }

    def use_dropout(self, rates: Sequence[float], seed: int) -> None:
        """Drop each member's hidden activations with its own rate (0 for none) while training.

        The masks come from one generator seeded with ``seed``, so a sweep is reproducible.
        """
        keep = torch.tensor([1.0 - rate for rate in rates], dtype=self.flat.dtype)
        self.keep = keep.to(self.flat.device)[:, None, None]  # (M, 1, 1)
        self.generator = torch.Generator(self.flat.device).manual_seed(seed)

    def forward(self, X: Tensor, train_rows: int = 0) -> Pass:
        """Every layer's output for features ``X`` ``(in, N)``; the logits are ``(M, out, N)``.

        With dropout, the activations of the first ``train_rows`` columns (the training rows)
        are dropped; the other columns are evaluated as in ``eval()`` mode. The outputs live in
        buffers reused by the next call with as many columns (writing into memory already touched
        is about twice as fast as a fresh tensor), so a :class:`Pass` is valid until then.
        """
        members = self.flat.shape[0]
        buffers = self._buffers.get(X.shape[1])
        if buffers is None:  # one set per column count: mini-batches, a last batch, evaluation
            buffers = [X.new_empty(members, width, X.shape[1]) for width in self.sizes[1:]]
            self._buffers[X.shape[1]] = buffers
        result = Pass(pre=[], activations=[], inputs=[X], masks=[])
        h = X.expand(members, *X.shape)  # (M, in, N), no copy
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            z = torch.baddbmm(bias, weight, h, out=buffers[layer])  # (M, out, N)
            if layer == last:
                result.pre.append(z)
                break
            result.pre.append(z if self.activation in KEEPS_PRE_ACTIVATION else None)
            h = activate_(self.activation, z)  # in place, except gelu
            result.activations.append(h)
            mask = None
            if self.keep is not None and train_rows > 0:
                shape = (members, h.shape[1], train_rows)
                draws = torch.rand(shape, generator=self.generator, dtype=h.dtype, device=h.device)
                mask = (draws < self.keep).to(h.dtype).div_(self.keep)  # 0 or 1 / keep
                h = h.clone()
                h[..., :train_rows].mul_(mask)
            result.masks.append(mask)
            result.inputs.append(h)
        return result

    def _grad_buffer(self, layer: int, rows: int) -> Tensor:
        """A reused ``(M, sizes[layer], rows)`` buffer for ``d loss / d inputs[layer]``."""
        buffer = self._grad_buffers.get((layer, rows))
        if buffer is None:
            buffer = self.flat.new_empty(self.flat.shape[0], self.sizes[layer], rows)
            self._grad_buffers[layer, rows] = buffer
        return buffer

    def backward(self, forward: Pass, dlogits: Tensor) -> Tensor:
        """Gradients ``(M, P)`` of the members' losses, given ``d loss / d logits``.

        The result is a buffer that the next call overwrites.

        ``dlogits`` is ``(M, outputs, n)`` for the first ``n`` columns of the forward (the
        training rows); the other columns (evaluation rows) take no part.
        """
        rows = dlogits.shape[2]
        if self._grads is None:  # (M, P), laid out as flat; written in place by every backward
            self._grads = torch.empty_like(self.flat)
            self._grad_views = StackedMLP(self.sizes, self.activation, self._grads)
        views = self._grad_views
        dz = dlogits
        for layer in reversed(range(len(self.weights))):
            # (in, n) for the first layer, else (M, in, n)
            inputs = forward.inputs[layer][..., :rows]
            torch.sum(dz, dim=2, keepdim=True, out=views.biases[layer])  # (M, out, 1)
            if inputs.dim() == 2:  # the features, shared by every member
                inputs = inputs.expand(len(dz), *inputs.shape)
            torch.bmm(dz, inputs.transpose(1, 2), out=views.weights[layer])  # (M, out, in)
            if layer == 0:
                break
            dh = torch.bmm(  # (M, in, n)
                self.weights[layer].transpose(1, 2), dz, out=self._grad_buffer(layer, rows)
            )
            mask = forward.masks[layer - 1]
            if mask is not None:
                dh.mul_(mask)
            z = forward.pre[layer - 1]
            dz = _activation_backward(
                self.activation,
                dh,
                None if z is None else z[..., :rows],
                forward.activations[layer - 1][..., :rows],
            )
        return self._grads


@dataclass
class Pass:
    """What a forward pass keeps for the backward, per layer."""

    pre: list[Tensor | None]  # pre-activations where the backward needs them; logits last
    activations: list[Tensor]  # hidden layers' activations, before dropout, (M, width, N)
    inputs: list[Tensor]  # each layer's input: X (in, N), then the (dropped) activations
    masks: list[Tensor | None]  # dropout masks scaled by 1 / keep, (M, width, train_rows)

    @property
    def logits(self) -> Tensor:
        """``(M, outputs, N)``."""
        return self.pre[-1]  # type: ignore[return-value]


KEEPS_PRE_ACTIVATION = ("gelu", "identity")  # their backward needs z (or h is z itself)
_ATEN = torch.ops.aten  # the fused backward kernels autograd itself calls


def _activation_backward(name: str, dh: Tensor, z: Tensor | None, h: Tensor) -> Tensor:
    """``d loss / d z`` from ``d loss / d h`` where ``h = activation(z)`` (all ``(M, w, n)``).

    Each is the kernel torch's autograd runs for that activation, so the numbers are the same.
    """
    # each writes into dh itself: memory already touched is faster than a fresh tensor
    if name == "relu":
        return _ATEN.threshold_backward.grad_input(dh, h, 0, grad_input=dh)
    if name == "leaky_relu":
        return _ATEN.leaky_relu_backward.grad_input(dh, h, LEAKY_SLOPE, True, grad_input=dh)
    if name == "sigmoid":
        return _ATEN.sigmoid_backward.grad_input(dh, h, grad_input=dh)
    if name == "tanh":
        return _ATEN.tanh_backward.grad_input(dh, h, grad_input=dh)
    if name == "gelu":
        return _ATEN.gelu_backward.grad_input(dh, z, grad_input=dh)
    return dh  # identity


class Targets:
    """One split's encoded targets, feature-major, with the task's loss, gradient and accuracy.

    Binary and multilabel tasks: ``(outputs, n)`` 0/1 floats and sigmoid BCE; multiclass: class
    indices ``(n,)`` and softmax cross-entropy. Losses are each member's mean over the split, as
    the task's ``reduction="mean"`` loss gives.
    """

    def __init__(self, task: Task, y: Tensor, dtype: torch.dtype) -> None:
        self.rows = len(y)
        self.multiclass = isinstance(task, MulticlassTask)
        if self.multiclass:
            self.codes = y  # (n,)
            self.onehot = F.one_hot(y, task.n_outputs).T.to(dtype)  # (C, n)
        else:
            self.y = y.T.to(dtype)  # (K, n)
            self.truth = self.y.bool()
            thresholds = getattr(task, "thresholds", None)
            if thresholds is None:
                thresholds = [task.threshold]  # type: ignore[attr-defined]
            self.thresholds = torch.tensor(thresholds, dtype=dtype, device=y.device)[:, None]

    def subset(self, columns: Tensor | slice) -> Targets:
        """The targets of some rows: an index tensor gathers them, a slice views them."""
        part = object.__new__(Targets)
        part.multiclass = self.multiclass
        if self.multiclass:
            part.codes, part.onehot = self.codes[columns], self.onehot[:, columns]
            part.rows = len(part.codes)
        else:
            part.y, part.truth = self.y[:, columns], self.truth[:, columns]
            part.thresholds, part.rows = self.thresholds, part.y.shape[1]
        return part

    def loss_and_correct(
        self, logits: Tensor, *, gradient: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-member losses and correct counts ``(M,)``, and ``d mean loss / d logits``.

        With ``gradient=False`` (evaluation rows) the gradient is not computed and is None.
        """
        if self.multiclass:
            log_probs = torch.log_softmax(logits, dim=1)  # (M, C, n)
            losses = -(log_probs * self.onehot).sum(dim=1).mean(dim=1)
            correct = (logits.argmax(dim=1) == self.codes).sum(dim=1)
            if not gradient:
                return losses, correct, None
            return losses, correct, log_probs.exp_().sub_(self.onehot).div_(self.rows)
        target = self.y.expand_as(logits)
        losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        probs = torch.sigmoid(logits)  # (M, K, n)
        right = (probs >= self.thresholds) == self.truth  # (M, K, n)
        correct = (right if len(self.y) == 1 else right.all(dim=1, keepdim=True)).sum(dim=(1, 2))
        if not gradient:
            return losses.mean(dim=(1, 2)), correct, None
        return losses.mean(dim=(1, 2)), correct, probs.sub_(target).div_(self.y.numel())


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
        if decay and hyper.optimizer != "adamw":
            grads.add_(params, alpha=decay)
        if hyper.optimizer == "sgd":
            if hyper.momentum:
                grads = self.moment.mul_(hyper.momentum).add_(grads)
            params.add_(grads, alpha=-lr)
            return
        if _fused_adam(hyper, params, grads, self.moment, self.square, step):
            return
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
    hyper: Hyper, params: Tensor, grads: Tensor, moment: Tensor, square: Tensor | None, step: int
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
            [torch.tensor(float(step), device=params.device)],
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


@dataclass
class Split:
    """Rows evaluated every epoch: feature-major features ``(in, n)`` and their targets."""

    name: str  # "val" or "test"
    X: Tensor
    targets: Targets


@dataclass
class StackedResult:
    """What training left: final parameters and per-epoch metrics for each member."""

    flat: Tensor  # (M, P): each member's kept weights (the best epoch's, with early stopping)
    columns: dict[str, list[list[float]]]  # name -> per member, one value per epoch it trained
    best_epoch: list[int | None]
    stopped_early: list[bool]


def train_stacked(
    net: StackedMLP,
    hypers: Sequence[Hyper],
    X_train: Tensor,
    train_targets: Targets,
    splits: Sequence[Split] = (),
    *,
    early_stopping: bool = False,
    patience: int = 20,
    min_delta: float = 0.0,
    on_flush: Callable[[dict[str, list[list[float]]], list[int]], None] | None = None,
    batches: Callable[[int], Iterable[Tensor | slice]] | None = None,
) -> StackedResult:
    """Train every member of ``net`` for its own number of epochs.

    Full batch by default; ``batches(epoch)`` instead gives each epoch's mini-batches as row
    indices (:meth:`torchclf.data.IndexBatches.epoch`), one optimizer step each, as the autograd
    loop takes them.

    ``X_train`` is ``(in, n)``. After every epoch each member is evaluated on ``splits``; with
    ``early_stopping`` a member stops when the first split's loss ("val") has not improved by
    ``min_delta`` for ``patience`` epochs and keeps its best epoch's weights, as
    :func:`torchclf.training.train_model` does.

    The metrics stay on the device and are read every :data:`SYNC_EVERY` epochs; ``on_flush``
    then gets every column read so far (name -> per member, one value per epoch; the evaluation
    columns lag the training ones by an epoch) and each member's last epoch (its own number of
    epochs, or the one it stopped early at), so a caller can show progress or stop on NaN.
    """
    flat, device = net.flat, net.flat.device
    members, n_train = flat.shape[0], X_train.shape[1]
    optimizer = StackedOptimizer(hypers, flat)
    epochs = torch.tensor([h.epochs for h in hypers], device=device)
    stopping = _EarlyStopping(flat, patience, min_delta) if early_stopping and splits else None
    max_epochs = max(h.epochs for h in hypers)
    if batches is not None:
        return _train_in_batches(
            net, optimizer, epochs, X_train, train_targets, splits, batches, stopping, on_flush
        )
    X_all = torch.cat([X_train, *(s.X for s in splits)], dim=1)  # (in, N): one forward for all
    bounds = list(itertools.accumulate([n_train, *(s.X.shape[1] for s in splits)]))
    records = _Records(members, {"train": n_train, **{s.name: s.targets.rows for s in splits}})
    live = torch.ones(members, dtype=torch.bool, device=device)
    uneven = len({h.epochs for h in hypers}) > 1

    def last_epochs() -> list[int]:
        return _last_epochs(epochs, stopping)

    def evaluate(logits: Tensor, epoch: int) -> None:
        """Record the splits' metrics for params after ``epoch`` steps; decide early stopping."""
        nonlocal live
        for split, start, stop in zip(splits, bounds, bounds[1:], strict=False):
            losses, correct, _ = split.targets.loss_and_correct(
                logits[..., start:stop], gradient=False
            )
            records.add(split.name, losses, correct)
            if stopping is not None and split is splits[0]:
                live = stopping.update(losses, live, epoch)
        live = live & (epochs > epoch)

    epoch = 0
    with torch.no_grad():
        for epoch in range(1, max_epochs + 1):
            forward = net.forward(X_all, train_rows=n_train)
            logits = forward.logits  # (M, outputs, N); columns past n_train are the splits' rows
            if epoch > 1 and splits:
                evaluate(logits, epoch - 1)
            losses, correct, dlogits = train_targets.loss_and_correct(logits[..., :n_train])
            records.add("train", losses, correct)
            grads = net.backward(forward, dlogits)
            mask = live[:, None].to(flat.dtype) if (uneven or stopping) else None
            optimizer.step(flat, grads, epoch, mask)
            if not splits:
                live = live & (epochs > epoch)
            if epoch % SYNC_EVERY == 0:
                records.flush(on_flush, last_epochs)
                if not bool(live.any()):
                    break
        if splits:
            evaluate(net.forward(X_all).logits, epoch)
        records.flush(on_flush, last_epochs)

    return _result(flat, records, last_epochs(), stopping)


def _train_in_batches(
    net: StackedMLP,
    optimizer: StackedOptimizer,
    epochs: Tensor,
    X_train: Tensor,
    train_targets: Targets,
    splits: Sequence[Split],
    batches: Callable[[int], Iterable[Tensor | slice]],
    stopping: _EarlyStopping | None,
    on_flush: Callable[[dict[str, list[list[float]]], list[int]], None] | None,
) -> StackedResult:
    """:func:`train_stacked` with mini-batches: one step per batch, the splits after each epoch.

    Each epoch gathers its rows once, in batch order, so that every batch is a slice.
    """
    flat = net.flat
    members, n_train = flat.shape[0], X_train.shape[1]
    records = _Records(members, {"train": n_train, **{s.name: s.targets.rows for s in splits}})
    live = torch.ones(members, dtype=torch.bool, device=flat.device)
    masked = stopping is not None or len(set(epochs.tolist())) > 1
    step, epoch = 0, 0

    def last_epochs() -> list[int]:
        return _last_epochs(epochs, stopping)

    with torch.no_grad():
        for epoch in range(1, int(epochs.max()) + 1):
            chosen = [
                rows
                if isinstance(rows, Tensor)
                else torch.arange(rows.start, rows.stop, device=X_train.device)
                for rows in batches(epoch)
            ]
            order = torch.cat(chosen).to(X_train.device)
            X_epoch = X_train.index_select(1, order)  # (in, n), batch after batch
            targets_epoch = train_targets.subset(order)
            loss_sum = flat.new_zeros(members)
            correct_sum = torch.zeros(members, dtype=torch.long, device=flat.device)
            mask = live[:, None].to(flat.dtype) if masked else None
            start = 0
            for rows in chosen:
                columns = slice(start, start + len(rows))
                start += len(rows)
                forward = net.forward(X_epoch[:, columns], train_rows=len(rows))
                losses, correct, dlogits = targets_epoch.subset(columns).loss_and_correct(
                    forward.logits
                )
                loss_sum += losses * len(rows)
                correct_sum += correct
                step += 1  # the optimizer counts steps, not epochs, as torch.optim does
                optimizer.step(flat, net.backward(forward, dlogits), step, mask)
            records.add("train", loss_sum / start, correct_sum)
            for index, split in enumerate(splits):
                losses, correct, _ = split.targets.loss_and_correct(
                    net.forward(split.X).logits, gradient=False
                )
                records.add(split.name, losses, correct)
                if stopping is not None and index == 0:
                    live = stopping.update(losses, live, epoch)
            live = live & (epochs > epoch)
            # a mini-batch epoch is long next to one read: report progress after every epoch
            records.flush(on_flush, last_epochs)
            if not bool(live.any()):
                break
    return _result(flat, records, last_epochs(), stopping)


def _last_epochs(epochs: Tensor, stopping: _EarlyStopping | None) -> list[int]:
    """Each member's last epoch: its own number, or the one it stopped early at."""
    last = epochs
    if stopping is not None:
        last = torch.where(stopping.stop_epoch > 0, stopping.stop_epoch, last)
    return last.tolist()


def _result(
    flat: Tensor, records: _Records, trained: list[int], stopping: _EarlyStopping | None
) -> StackedResult:
    """Each member's columns up to its last epoch, and its kept (best, when stopping) weights."""
    members = flat.shape[0]
    columns = {
        name: [values[:n] for values, n in zip(per_member, trained, strict=True)]
        for name, per_member in records.columns.items()
    }
    best_epoch: list[int | None] = [None] * members
    stopped = [False] * members
    if stopping is not None:
        improved = stopping.best_epoch > 0
        flat = torch.where(improved[:, None], stopping.best_flat, flat)
        best_epoch = [e if e > 0 else None for e in stopping.best_epoch.tolist()]
        stopped = (stopping.stop_epoch > 0).tolist()
    return StackedResult(flat, columns, best_epoch, stopped)


class _Records:
    """Per-epoch losses and correct counts, kept on the device until a flush reads them."""

    def __init__(self, members: int, rows: dict[str, int]) -> None:
        self.rows = rows  # split name -> its number of rows
        self.pending: dict[str, list[Tensor]] = {}
        self.columns: dict[str, list[list[float]]] = {}
        for split in rows:
            for column in (f"{split}_loss", f"{split}_accuracy"):
                self.pending[column] = []
                self.columns[column] = [[] for _ in range(members)]

    def add(self, split: str, losses: Tensor, correct: Tensor) -> None:
        self.pending[f"{split}_loss"].append(losses)
        self.pending[f"{split}_accuracy"].append(correct)

    def flush(
        self,
        on_flush: Callable[[dict[str, list[list[float]]], list[int]], None] | None,
        last_epochs: Callable[[], list[int]],
    ) -> None:
        for name, pending in self.pending.items():
            if not pending:
                continue
            table = torch.stack(pending, dim=1).tolist()  # (M, epochs since the last flush)
            pending.clear()
            if name.endswith("_accuracy"):  # counts, divided in double precision as fit does
                rows = self.rows[name.removesuffix("_accuracy")]
                table = [[count / rows for count in values] for values in table]
            for column, values in zip(self.columns[name], table, strict=True):
                column.extend(values)
        if on_flush is not None:
            on_flush(self.columns, last_epochs())


class _EarlyStopping:
    """Per-member early stopping on the device: best loss, its epoch and weights, patience."""

    def __init__(self, flat: Tensor, patience: int, min_delta: float) -> None:
        members, device = flat.shape[0], flat.device
        self.flat, self.patience, self.min_delta = flat, patience, min_delta
        self.best_loss = torch.full((members,), math.inf, dtype=flat.dtype, device=device)
        self.best_epoch = torch.zeros(members, dtype=torch.long, device=device)
        self.stop_epoch = torch.zeros(members, dtype=torch.long, device=device)
        self.waited = torch.zeros(members, dtype=torch.long, device=device)
        self.best_flat = flat.clone()

    def update(self, losses: Tensor, live: Tensor, epoch: int) -> Tensor:
        """Fold in the losses ``(M,)`` after ``epoch``; return who trains on."""
        improved = live & (losses < self.best_loss - self.min_delta)
        self.best_loss = torch.where(improved, losses, self.best_loss)
        self.best_epoch = torch.where(improved, epoch, self.best_epoch)
        self.best_flat = torch.where(improved[:, None], self.flat, self.best_flat)
        self.waited = torch.where(improved, 0, self.waited + live.long())
        stops = live & (self.waited >= self.patience)
        self.stop_epoch = torch.where(stops, epoch, self.stop_epoch)
        return live & ~stops


__all__ = [
    "STACKED_OPTIMIZERS",
    "Hyper",
    "Split",
    "StackedMLP",
    "StackedOptimizer",
    "StackedResult",
    "Targets",
    "train_stacked",
]
