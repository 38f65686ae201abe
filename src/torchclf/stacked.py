"""Many same-architecture MLPs as one: stacked parameters, hand-written forward and backward.

``M`` members of one architecture keep their parameters in one flat matrix ``(M, P)``, laid out
per member as ``nn.Linear``'s state dict (``layers.0.weight``, ``layers.0.bias``, ...), so one
vectorised optimizer step (:mod:`torchclf.stacked_optimizer`) updates them all and any member
comes out as an ordinary :class:`~torchclf.models.MLP`. The loops that train them are in
:mod:`torchclf.stacked_training`.

Why it is written by hand: these problems are small (thousands of rows, widths up to a few
hundred), so much of the time goes to per-operation overhead (``../shared/PERF_NOTES.md``):

- activations are feature-major, ``(M, width, rows)``: ``W @ A`` is several times faster than
  ``A @ W.T`` for thin shapes;
- the gradients are written out (no autograd graph) with the backward kernels autograd itself
  uses; ``tests/test_stacked.py`` checks them against ``torch.autograd`` for every activation and
  task;
- outputs and gradients go into buffers reused from call to call.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.nn import functional as F

from torchclf.activations import LEAKY_SLOPE, activate_
from torchclf.config import ModelConfig
from torchclf.tasks import MulticlassTask, Task


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
        self.weights_t = [weight.transpose(1, 2) for weight in self.weights]  # (M, in, out) views
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

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        states: Sequence[dict[str, Tensor]],
        device: torch.device | None = None,
    ) -> StackedMLP:
        """Stack the state dicts of ``M`` MLPs built from ``config`` (no batch norm)."""
        sizes = (config.in_features, *config.hidden, config.out_features)
        return cls.from_states(sizes, config.activation, states, device)

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

        def first_rows(tensor: Tensor) -> Tensor:  # the training columns, a view if not all
            return tensor if tensor.shape[-1] == rows else tensor[..., :rows]

        for layer in reversed(range(len(self.weights))):
            # (in, n) for the first layer, else (M, in, n)
            inputs = first_rows(forward.inputs[layer])
            torch.sum(dz, dim=2, keepdim=True, out=views.biases[layer])  # (M, out, 1)
            if inputs.dim() == 2:  # the features, shared by every member
                inputs = inputs.expand(dz.shape[0], *inputs.shape)
            torch.bmm(dz, inputs.transpose(1, 2), out=views.weights[layer])  # (M, out, in)
            if layer == 0:
                break
            dh = self._grad_buffer(layer, rows)  # (M, in, n)
            torch.bmm(self.weights_t[layer], dz, out=dh)
            mask = forward.masks[layer - 1]
            if mask is not None:
                dh.mul_(mask)
            z = forward.pre[layer - 1]
            dz = _activation_backward(
                self.activation,
                dh,
                None if z is None else first_rows(z),
                first_rows(forward.activations[layer - 1]),
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

    def gradient(self, logits: Tensor) -> Tensor:
        """``d mean loss / d logits`` ``(M, outputs, n)`` alone: no loss, no correct counts.

        The same arithmetic as :meth:`loss_and_correct`'s gradient (``exp(log_softmax)`` for
        softmax, as autograd's cross-entropy backward computes it).
        """
        if self.multiclass:
            return self._gradient_from(torch.log_softmax(logits, dim=1).exp_())
        return self._gradient_from(torch.sigmoid(logits))

    def _gradient_from(self, probs: Tensor) -> Tensor:
        """The gradient from the predicted probabilities ``(M, outputs, n)``, in place."""
        if self.multiclass:  # softmax cross-entropy: (p - onehot) / n
            return probs.sub_(self.onehot).div_(float(self.rows))
        return probs.sub_(self.y).div_(float(self.y.numel()))  # sigmoid BCE: (p - y) / (K n)

    def loss_and_correct(
        self, logits: Tensor, *, gradient: bool = True
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """Per-member losses and correct counts ``(M,)``, and ``d mean loss / d logits``.

        With ``gradient=False`` (evaluation rows) the gradient is not computed and is None.
        """
        if self.multiclass:
            members, rows = logits.shape[0], self.rows
            log_probs = torch.log_softmax(logits, dim=1)  # (M, C, n)
            picked = log_probs.gather(1, self.codes.view(1, 1, rows).expand(members, 1, rows))
            losses = picked.sum(dim=(1, 2)).div_(-float(rows))  # (M,) mean negative log-likelihood
            # max's indices, not argmax: argmax over a strided dim is several times slower
            correct = (logits.max(dim=1).indices == self.codes).sum(dim=1)
            if not gradient:
                return losses, correct, None
            return losses, correct, self._gradient_from(log_probs.exp_())
        target = self.y.expand_as(logits)
        losses = F.binary_cross_entropy_with_logits(logits, target, reduction="none")
        probs = torch.sigmoid(logits)  # (M, K, n)
        right = (probs >= self.thresholds) == self.truth  # (M, K, n)
        correct = (right if len(self.y) == 1 else right.all(dim=1, keepdim=True)).sum(dim=(1, 2))
        if not gradient:
            return losses.mean(dim=(1, 2)), correct, None
        return losses.mean(dim=(1, 2)), correct, self._gradient_from(probs)


__all__ = ["KEEPS_PRE_ACTIVATION", "Pass", "StackedMLP", "Targets"]
