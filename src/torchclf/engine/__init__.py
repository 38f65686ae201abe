"""The hand-written training engine: many same-architecture MLPs trained as one.

- :mod:`~torchclf.engine.stacked`: :class:`StackedMLP`, stacked weights with a hand-written
  forward and backward;
- :mod:`~torchclf.engine.optimizer`: one vectorised step of adam, adamw or sgd for every member;
- :mod:`~torchclf.engine.loops`: the full-batch and mini-batch loops, with per-member early
  stopping;
- :mod:`~torchclf.engine.rows`: the rows each step and each member sees (batch buffers,
  cross-fitting's folds);
- :mod:`~torchclf.engine.single`: one ordinary model on those loops (``fit``'s fast path), and
  :func:`refusal`, which says when a run needs the autograd loop instead.

This is its one door: the rest of torchclf imports from ``torchclf.engine``. It knows a task only
through the task's :meth:`~torchclf.tasks.Task.stacked_targets`, and imports nothing from the
autograd loop (:mod:`torchclf.training.loop`); ``fit`` chooses between the two.
"""

from torchclf.engine.loops import SYNC_EVERY, Split, StackedResult, step_batch, train_stacked
from torchclf.engine.optimizer import STACKED_OPTIMIZERS, Hyper, StackedOptimizer
from torchclf.engine.rows import BatchFeatures, Folds
from torchclf.engine.single import LazyOptimizer, refusal, refusal_of, train_single
from torchclf.engine.stacked import StackedMLP

__all__ = [
    "STACKED_OPTIMIZERS",
    "SYNC_EVERY",
    "BatchFeatures",
    "Folds",
    "Hyper",
    "LazyOptimizer",
    "Split",
    "StackedMLP",
    "StackedOptimizer",
    "StackedResult",
    "refusal",
    "refusal_of",
    "step_batch",
    "train_single",
    "train_stacked",
]
