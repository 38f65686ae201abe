"""Many same-architecture MLPs as one: stacked parameters, hand-written forward and backward.

``M`` members of one architecture keep their parameters in one flat matrix ``(M, P)``, laid out
per member as ``nn.Linear``'s state dict (``layers.0.weight``, ``layers.0.bias``, ...), so one
vectorised optimizer step (:mod:`torchclf.engine.optimizer`) updates them all and any member
comes out as an ordinary :class:`~torchclf.nn.models.MLP`. The loops that train them are in
:mod:`torchclf.engine.loops`.

Why it is written by hand: these problems are small (thousands of rows, widths up to a few
hundred), so much of the time goes to per-operation overhead (``docs/benchmarks.md``, the engine):

- activations are feature-major, ``(M, width, rows)``: ``W @ A`` is several times faster than
  ``A @ W.T`` for thin shapes;
- the gradients are written out (no autograd graph) with the backward kernels autograd itself
  uses; ``tests/test_stacked.py`` checks them against ``torch.autograd`` for every activation and
  task;
- outputs and gradients go into buffers reused from call to call, and so do the views of them
  that the backward takes (a view costs microseconds, as much as the arithmetic on a small batch).

Category codes (:class:`~torchclf.nn.models.CategoryEmbeddings`) are looked up per member before
the first layer, and their tables' gradients are the first layer's input gradients added into
the rows the batch's codes name.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from torch import Tensor

from torchclf.config import ModelConfig
from torchclf.nn.activations import LEAKY_SLOPE, in_place_activation


class StackedMLP:
    """``M`` MLPs of one architecture as a flat parameter matrix ``(M, P)``.

    ``weights[l]`` and ``biases[l]`` are views into ``flat``: ``(M, out, in)`` and ``(M, out, 1)``.
    With ``category_counts``, the last ``len(category_counts)`` features are category codes and
    ``tables[j]`` ``(M, count, embedding_dim)`` (first in ``flat``, as in the MLP's state dict)
    their learned vectors; ``sizes[0]`` counts the first layer's inputs, vectors included.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        activation: str,
        flat: Tensor,
        category_counts: Sequence[int] = (),
        embedding_dim: int = 0,
    ) -> None:
        self.sizes = tuple(sizes)  # (network inputs, *hidden, out_features)
        self.activation = activation
        self.flat = flat
        self.category_counts, self.embedding_dim = tuple(category_counts), embedding_dim
        self.tables: list[Tensor] = []
        self.weights: list[Tensor] = []
        self.biases: list[Tensor] = []
        self.shapes: list[tuple[int, ...]] = []  # per member, in state-dict order
        offset, members = 0, flat.shape[0]
        for count in self.category_counts:
            size = count * embedding_dim
            self.tables.append(flat[:, offset : offset + size].view(members, count, embedding_dim))
            self.shapes.append((count, embedding_dim))
            offset += size
        for fan_in, fan_out in itertools.pairwise(self.sizes):
            self.weights.append(
                flat[:, offset : offset + fan_out * fan_in].view(members, fan_out, fan_in)
            )
            offset += fan_out * fan_in
            self.biases.append(flat[:, offset : offset + fan_out].view(members, fan_out, 1))
            offset += fan_out
            self.shapes += [(fan_out, fan_in), (fan_out,)]
        self.weights_t = [weight.transpose(1, 2) for weight in self.weights]  # (M, in, out) views
        self._activate = in_place_activation(activation)
        self._keeps_pre = activation in KEEPS_PRE_ACTIVATION
        self._activation_backward = _ACTIVATION_BACKWARD[activation]
        self._buffers: dict[int, _Buffers] = {}  # columns -> outputs and views reused per call
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
        category_counts: Sequence[int] = (),
        embedding_dim: int = 0,
    ) -> StackedMLP:
        """Stack the state dicts of ``M`` :class:`~torchclf.nn.models.MLP` (Linear layers only).

        ``category_counts`` and ``embedding_dim``: their category tables, first in each state.
        """
        rows = [torch.cat([value.reshape(-1) for value in state.values()]) for state in states]
        flat = torch.stack(rows).to(device)
        return cls(sizes, activation, flat, category_counts, embedding_dim)

    @classmethod
    def from_config(
        cls,
        config: ModelConfig,
        states: Sequence[dict[str, Tensor]],
        device: torch.device | None = None,
    ) -> StackedMLP:
        """Stack the state dicts of ``M`` MLPs built from ``config`` (no batch norm)."""
        sizes = (config.network_inputs, *config.hidden, config.out_features)
        return cls.from_states(
            sizes, config.activation, states, device, config.category_counts, config.embedding_dim
        )

    def like(self, flat: Tensor) -> StackedMLP:
        """Members of this architecture with the parameters ``flat`` ``(A, P)``."""
        return StackedMLP(
            self.sizes, self.activation, flat, self.category_counts, self.embedding_dim
        )

    def subset(self, keep: Tensor) -> StackedMLP:
        """Members ``keep`` ``(A,)`` alone: a copy of their parameters, their dropout rates."""
        chosen = self.like(self.flat.index_select(0, keep))
        if self.keep is not None:
            chosen.keep, chosen.generator = self.keep.index_select(0, keep), self.generator
        return chosen

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
        is about twice as fast as a fresh tensor), so a :class:`Pass` is valid until then. A
        caller that passes the same ``X`` tensor again (a batch gathered into one buffer) also
        gets its views reused.
        """
        members, columns = self.flat.shape[0], X.shape[1]
        buffers = self._buffers.get(columns)
        if buffers is None:  # one set per column count: mini-batches, a last batch, evaluation
            buffers = _Buffers(X.new_empty(members, width, columns) for width in self.sizes[1:])
            self._buffers[columns] = buffers
        result = Pass(pre=[], activations=[], inputs=[X], masks=[], buffers=buffers)
        if self.tables:  # each member's own vectors: (M, sizes[0], N), made afresh
            h, result.codes = self._with_vectors(X.expand(members, *X.shape))
            result.inputs[0] = h
        else:
            h = buffers.expanded(X, members)  # (M, in, N), no copy
        dropping = self.keep is not None and train_rows > 0
        for weight, bias, output in zip(self.weights, self.biases, buffers.outputs, strict=True):
            z = torch.baddbmm(bias, weight, h, out=output)  # (M, out, N)
            if output is buffers.outputs[-1]:  # the logits
                result.pre.append(z)
                break
            result.pre.append(z if self._keeps_pre else None)
            h = self._activate(z)  # in place, except gelu
            result.activations.append(h)
            mask = None
            if dropping:
                shape = (members, h.shape[1], train_rows)
                draws = torch.rand(shape, generator=self.generator, dtype=h.dtype, device=h.device)
                assert self.keep is not None  # set with the generator by use_dropout
                mask = (draws < self.keep).to(h.dtype).div_(self.keep)  # 0 or 1 / keep
                h = h.clone()
                h[..., :train_rows].mul_(mask)
            result.masks.append(mask)
            result.inputs.append(h)
        return result

    def member_logits(self, X: Tensor) -> Tensor:
        """Each member's logits ``(M, out, N)`` on rows of its own, ``X`` ``(M, in, N)``.

        As in ``eval()`` mode (no dropout), in fresh tensors: for rows that differ by member,
        such as each one's validation fold.
        """
        h = self._with_vectors(X)[0] if self.tables else X
        last = len(self.weights) - 1
        for layer, (weight, bias) in enumerate(zip(self.weights, self.biases, strict=True)):
            h = torch.baddbmm(bias, weight, h)  # (M, out, N)
            if layer < last:
                h = self._activate(h)
        return h

    def backward(self, forward: Pass, dlogits: Tensor) -> Tensor:
        """Gradients ``(M, P)`` of the members' losses, given ``d loss / d logits``.

        The result is a buffer that the next call overwrites.

        ``dlogits`` is ``(M, outputs, n)`` for the first ``n`` columns of the forward (the
        training rows); the other columns (evaluation rows) take no part.
        """
        if self._grads is None:  # (M, P), laid out as flat; written in place by every backward
            self._grads = torch.empty_like(self.flat)
            self._grad_views = self.like(self._grads)
        grads = self._grad_views
        assert grads is not None  # made above on the first call
        layers = forward.buffers.backward_views(forward, dlogits.shape[2])
        dz = dlogits
        for layer in reversed(range(len(self.weights))):
            inputs_t, dh, z, h = layers[layer]
            torch.sum(dz, dim=2, keepdim=True, out=grads.biases[layer])  # (M, out, 1)
            torch.bmm(dz, inputs_t, out=grads.weights[layer])  # (M, out, in)
            if layer == 0:
                if self.tables:
                    assert forward.codes is not None  # kept by a forward with tables
                    self._tables_backward(forward.codes, dz, grads.tables)
                break
            assert dh is not None  # every layer but the first has a buffer for d loss / d input
            torch.bmm(self.weights_t[layer], dz, out=dh)  # (M, in, n)
            mask = forward.masks[layer - 1]
            if mask is not None:
                dh.mul_(mask)
            assert h is not None  # every layer but the first has the activation it took
            dz = self._activation_backward(dh, z, h)
        return self._grads

    def _with_vectors(self, X: Tensor) -> tuple[Tensor, Tensor]:
        """Features ``(M, in, N)`` whose last rows are codes -> ``(M, sizes[0], N)``.

        Each code row becomes its column's ``embedding_dim`` rows of learned vectors. Also
        returns the codes ``(M, codes, N)`` as integers, which the backward reads.
        """
        plain = X.shape[1] - len(self.tables)
        codes = X[:, plain:].long()
        dim = self.embedding_dim
        vectors = [
            # (M, count, dim) gathered at the codes (M, N, dim) -> (M, N, dim)
            torch.gather(table, 1, codes[:, index, :, None].expand(-1, -1, dim))
            for index, table in enumerate(self.tables)
        ]
        return torch.cat([X[:, :plain], *(v.transpose(1, 2) for v in vectors)], dim=1), codes

    def _tables_backward(self, codes: Tensor, dz: Tensor, tables: list[Tensor]) -> None:
        """The tables' gradients, into ``tables``, from the first layer's ``dz`` ``(M, out, n)``.

        ``codes`` ``(M, codes, N)``: the forward's; its first ``n`` columns were trained on.
        """
        plain, rows = self.sizes[0] - len(self.tables) * self.embedding_dim, dz.shape[2]
        codes = codes[..., :rows]
        # d loss / d vectors: (M, codes * dim, n), each column's rows in turn
        dvectors = torch.bmm(self.weights_t[0][:, plain:], dz)
        dim = self.embedding_dim
        for index, grad in enumerate(tables):
            rows_grad = dvectors[:, index * dim : (index + 1) * dim].transpose(1, 2)  # (M, n, dim)
            index_rows = codes[:, index, :, None].expand(-1, -1, dim)
            grad.zero_().scatter_add_(1, index_rows, rows_grad)


class _Buffers:
    """The outputs of a forward of one column count ``N``, and the views the backward takes.

    The views are kept while the forward meets the same features tensor and its layers' inputs
    are these outputs (no dropout copy, an in-place activation).
    """

    def __init__(self, outputs: Iterable[Tensor]) -> None:
        self.outputs = list(outputs)  # (M, width, N) per layer
        self._features: tuple[Tensor, Tensor] | None = None  # the last X (in, N), as (M, in, N)
        # rows -> per layer: input (M, rows, in), d loss / d input buffer, pre-activation, output
        self._views: dict[int, list[LayerViews]] = {}
        self._grad_buffers: dict[tuple[int, int], Tensor] = {}  # (layer, rows) -> (M, in, rows)

    def expanded(self, X: Tensor, members: int) -> Tensor:
        """``X`` ``(in, N)`` as every member's input ``(M, in, N)``: a view, kept for next time."""
        if self._features is None or self._features[0] is not X:
            self._features = (X, X.expand(members, *X.shape))
            self._views.clear()
        return self._features[1]

    def backward_views(self, forward: Pass, rows: int) -> list[LayerViews]:
        """Per layer, what the backward of ``forward``'s first ``rows`` columns reads and writes."""
        own = (
            forward.codes is None
            and all(  # vectors are made afresh by every forward
                h is output for h, output in zip(forward.inputs[1:], self.outputs, strict=False)
            )
        )
        views = self._views.get(rows) if own else None
        if views is None:
            views = [self._layer_views(forward, layer, rows) for layer in range(len(self.outputs))]
            if own:
                self._views[rows] = views
        return views

    def _layer_views(self, forward: Pass, layer: int, rows: int) -> LayerViews:
        def first_rows(tensor: Tensor) -> Tensor:  # the training columns, a view if not all
            return tensor if tensor.shape[-1] == rows else tensor[..., :rows]

        if layer > 0 or forward.codes is not None:  # the features with their codes' vectors
            inputs = forward.inputs[layer]
        else:
            assert self._features is not None  # set by the forward
            inputs = self._features[1]
        inputs_t = first_rows(inputs).transpose(1, 2)  # (M, rows, in)
        if layer == 0:
            return LayerViews(inputs_t, None, None, None)
        dh = self._grad_buffers.get((layer, rows))
        if dh is None:  # d loss / d inputs[layer], (M, in, rows)
            dh = inputs.new_empty(*inputs.shape[:2], rows)
            self._grad_buffers[layer, rows] = dh
        z = forward.pre[layer - 1]
        return LayerViews(
            inputs_t,
            dh,
            None if z is None else first_rows(z),
            first_rows(forward.activations[layer - 1]),
        )


class LayerViews(NamedTuple):
    """One layer's tensors in the backward; the first layer needs only ``inputs_t``."""

    inputs_t: Tensor  # the layer's input, transposed, training columns: (M, rows, in)
    grad_inputs: Tensor | None  # buffer for d loss / d input, (M, in, rows)
    pre: Tensor | None  # the previous layer's pre-activation where its backward needs it
    activation: Tensor | None  # the previous layer's activation (before dropout)


@dataclass
class Pass:
    """What a forward pass keeps for the backward, per layer."""

    pre: list[Tensor | None]  # pre-activations where the backward needs them; logits last
    activations: list[Tensor]  # hidden layers' activations, before dropout, (M, width, N)
    inputs: list[Tensor]  # each layer's input: X (in, N), then the (dropped) activations
    masks: list[Tensor | None]  # dropout masks scaled by 1 / keep, (M, width, train_rows)
    buffers: _Buffers  # where the outputs live, with the views of them the backward reuses
    codes: Tensor | None = None  # category codes, (M, codes, N); inputs[0] then has vectors

    @property
    def logits(self) -> Tensor:
        """``(M, outputs, N)``."""
        return self.pre[-1]  # type: ignore[return-value]


KEEPS_PRE_ACTIVATION = ("gelu", "identity")  # their backward needs z (or h is z itself)
_ATEN = torch.ops.aten  # the fused backward kernels autograd itself calls


# d loss / d z from d loss / d h, where h = activation(z) (all (M, w, n)): each the kernel
# torch's autograd runs for that activation, so the numbers are the same. Each writes into dh
# itself (memory already touched is faster than a fresh tensor). Arguments: (dh, z, h).
_ACTIVATION_BACKWARD: dict[str, Callable[[Tensor, Tensor | None, Tensor], Tensor]] = {
    "relu": lambda dh, z, h: _ATEN.threshold_backward.grad_input(dh, h, 0, grad_input=dh),
    "leaky_relu": lambda dh, z, h: _ATEN.leaky_relu_backward.grad_input(
        dh, h, LEAKY_SLOPE, True, grad_input=dh
    ),
    "sigmoid": lambda dh, z, h: _ATEN.sigmoid_backward.grad_input(dh, h, grad_input=dh),
    "tanh": lambda dh, z, h: _ATEN.tanh_backward.grad_input(dh, h, grad_input=dh),
    "gelu": lambda dh, z, h: _ATEN.gelu_backward.grad_input(dh, z, grad_input=dh),
    "identity": lambda dh, z, h: dh,
}


__all__ = ["KEEPS_PRE_ACTIVATION", "Pass", "StackedMLP"]
