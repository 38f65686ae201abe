"""The loops that train stacked members (:mod:`torchclf.engine.stacked`): full batch or batches.

Full batch, one forward pass per epoch covers the training rows and the evaluation rows
together: the evaluation columns of epoch ``e``'s forward are exactly the after-step metrics of
epoch ``e - 1``, so a separate evaluation pass is not needed. With mini-batches the rows are
gathered a chunk at a time in the epoch's order and each batch is copied into a buffer reused from
batch to batch. Both run under ``torch.inference_mode``.
Metrics and early-stopping state stay on the device and are read every :data:`SYNC_EVERY` epochs
(after every mini-batch epoch).

:func:`torchclf.engine.single.train_single` runs one ordinary model (``fit``'s fast path) on
these loops.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from torchclf.data.batches import IndexBatches
from torchclf.distributed import Group
from torchclf.engine.optimizer import Hyper, StackedOptimizer
from torchclf.engine.rows import BatchFeatures, Folds
from torchclf.engine.stacked import StackedMLP
from torchclf.nn.losses import StackedTargets
from torchclf.training.checkpoints import Checkpoints, LoopState
from torchclf.training.history import BestEpochs

SYNC_EVERY = 50  # full-batch epochs between reads of the device: progress, NaN check, all stopped
RESTACK_EVERY = 10  # full-batch epochs between re-stacks of a cross-fit without its stopped members


@dataclass
class Split:
    """Rows evaluated every epoch: feature-major features ``(in, n)`` and their targets."""

    name: str  # "val" or "test"
    X: Tensor
    targets: StackedTargets


@dataclass
class StackedResult:
    """What training left: final parameters and per-epoch metrics for each member."""

    flat: Tensor  # (M, P): each member's kept weights (the best epoch's, with early stopping)
    columns: dict[str, list[list[float]]]  # name -> per member, one value per epoch it trained
    best_epoch: list[int | None]
    stopped_early: list[bool]
    # the optimizer as the last step left it, and its steps: for a warm start (not cross-fitted)
    optimizer: StackedOptimizer | None = None
    steps: int = 0


def train_stacked(
    net: StackedMLP,
    hypers: Sequence[Hyper],
    X_train: Tensor,
    train_targets: StackedTargets,
    splits: Sequence[Split] = (),
    *,
    early_stopping: bool = False,
    patience: int = 20,
    min_delta: float = 0.0,
    on_flush: Callable[[dict[str, list[list[float]]], list[int]], None] | None = None,
    batches: IndexBatches | None = None,
    ensemble: bool = False,
    folds: Folds | None = None,
    checkpoints: Checkpoints | None = None,
    group: Group | None = None,
) -> StackedResult:
    """Train every member of ``net`` for its own number of epochs.

    Full batch when ``batches`` is None or holds every row in one batch; otherwise each epoch's
    mini-batches are ``batches.epoch(epoch)``, one optimizer step each, as the autograd loop
    takes them.

    ``X_train`` is ``(in, n)``. After every epoch each member is evaluated on ``splits``; with
    ``early_stopping`` a member stops when the first split's loss ("val") has not improved by
    ``min_delta`` for ``patience`` epochs and keeps its best epoch's weights, as
    :func:`torchclf.training.loop.train_model` does.

    The metrics stay on the device and are read every :data:`SYNC_EVERY` epochs; ``on_flush``
    then gets every column read so far (name -> per member, one value per epoch; the evaluation
    columns lag the training ones by an epoch) and each member's last epoch (its own number of
    epochs, or the one it stopped early at), so a caller can show progress or stop on NaN.

    With ``ensemble`` the members are one model: every metric is the ensemble's (the members'
    probabilities averaged, :meth:`StackedTargets.ensemble_logits`), repeated for each member,
    so they stop at one epoch and keep one best epoch, chosen on the ensemble's validation loss.
    Each member still takes its own loss's gradient, as if trained alone.

    With ``folds`` (cross-fitting) each member trains on its own share of the training rows and
    is validated, and stopped, on the rest: its "val" columns are those rows' loss and
    accuracy, and ``splits`` hold only rows that are reported ("test"), scored as ``ensemble``
    says.

    ``checkpoints`` write the loop's state when they say it is due (after an epoch; with
    mini-batches, between batches too), and the loop goes on from their ``resumed`` state.

    With a ``group`` of processes (:mod:`torchclf.distributed`), ``batches`` hold this one's
    share of each batch (a full batch too: the mini-batch loop then takes it); each step's
    gradient is the members' mean over every process's rows, each epoch's metrics are read from
    every process's logits, and rank 0's validation losses decide early stopping for all.
    """
    assert group is None or batches is not None, "processes share batches"
    flat, device = net.flat, net.flat.device
    members, n_train = flat.shape[0], X_train.shape[1]
    optimizer = StackedOptimizer(hypers, flat)
    epochs = torch.tensor([h.epochs for h in hypers], device=device)
    evaluates = bool(splits) or folds is not None  # something is scored after each epoch
    stopping = _EarlyStopping(flat, patience, min_delta) if early_stopping and evaluates else None
    validation_rows = {"val": 1} if folds is not None else {}  # folds record fractions
    records = _Records(
        members,
        {"train": n_train, **validation_rows, **{s.name: s.targets.rows for s in splits}},
    )
    score = _ensemble_scores if ensemble else _member_scores
    # members that may stop before the others take their steps with a 0/1 mask on the rate. One
    # member alone needs none (and so keeps the fused optimizer step): once it stops, the loop
    # ends at the next read of the device, and the steps it took past its stop are discarded,
    # as its best epoch's weights are kept and its history ends where it stopped.
    # An ensemble's members stop together, and need none either; nor do cross-fitted ones,
    # which leave the stack as they stop (_Stack) and step on unused until they do.
    masked = (
        members > 1
        and folds is None
        and not ensemble
        and (stopping is not None or len({h.epochs for h in hypers}) > 1)
    )
    if batches is not None and not batches.full_batch:
        return _train_in_batches(
            net,
            optimizer,
            epochs,
            X_train,
            train_targets,
            splits,
            batches,
            stopping,
            records,
            masked,
            on_flush,
            score,
            folds,
            checkpoints,
            group,
        )
    X_all = torch.cat([X_train, *(s.X for s in splits)], dim=1)  # (in, N): one forward for all
    bounds = list(itertools.accumulate([n_train, *(s.X.shape[1] for s in splits)]))
    live = torch.ones(members, dtype=torch.bool, device=device)
    stack = _Stack(net, optimizer, folds, X_train, train_targets)
    first = 1
    if checkpoints is not None and checkpoints.resumed is not None:
        live = _resume(checkpoints.resumed, stack, stopping, records)
        first = checkpoints.resumed.values["epoch"]

    def last_epochs() -> list[int]:
        return _last_epochs(epochs, stopping)

    def evaluate(logits: Tensor, epoch: int, rows: tuple[Tensor, Tensor] | None = None) -> None:
        """Record the metrics for params after ``epoch`` steps; decide early stopping.

        ``rows`` are the training rows' :meth:`StackedTargets.row_scores` of ``logits``, when
        already computed (the folds' validation rows are among them).
        """
        nonlocal live
        stack.write_back()  # early stopping keeps weights from the master copy
        if stack.folds is not None:
            losses, correct = stack.folds.validation(
                *(rows or train_targets.row_scores(logits[..., :n_train]))
            )
            losses, correct = stack.full(losses), stack.full(correct)
            records.add("val", losses, correct)
            if stopping is not None:
                _, live = stopping.update(losses, live, epoch)
        for split, start, stop in zip(splits, bounds, bounds[1:], strict=False):
            losses, correct = stack.split_scores(split, score, logits[..., start:stop])
            records.add(split.name, losses, correct)
            if stopping is not None and folds is None and split is splits[0]:
                _, live = stopping.update(losses, live, epoch)
        live = live & (epochs > epoch)

    epoch = first - 1
    # inference mode, not no_grad: no autograd or version-counter bookkeeping on each of the
    # many small operations (a fifth of a tiny step's time)
    with torch.inference_mode():
        for epoch in range(first, max(h.epochs for h in hypers) + 1):
            net, folds = stack.net, stack.folds
            forward = net.forward(X_all, train_rows=n_train)
            logits = forward.logits  # (M, outputs, N); columns past n_train are the splits' rows
            rows = None
            if folds is not None:  # each row's scores: the folds' training and validation rows
                rows = train_targets.row_scores(logits[..., :n_train])
            if epoch > 1 and evaluates:
                evaluate(logits, epoch - 1, rows)
            dlogits: Tensor | None
            if folds is not None:  # each member's mean over its own training rows
                dlogits = train_targets.gradient(logits[..., :n_train], folds.train_weights)
                losses, correct = map(stack.full, folds.training(*rows))  # type: ignore[misc]
            elif ensemble:  # each member's own gradient; the ensemble's loss and hits
                dlogits = train_targets.gradient(logits[..., :n_train])
                losses, correct = score(train_targets, logits[..., :n_train])
            else:
                losses, correct, dlogits = train_targets.loss_and_correct(logits[..., :n_train])
            assert dlogits is not None  # training rows: the gradient was asked for
            records.add("train", losses, correct)
            grads = net.backward(forward, dlogits)
            mask = live[:, None].to(flat.dtype) if masked else None
            stack.optimizer.step(net.flat, grads, epoch, mask)
            if not evaluates:
                live = live & (epochs > epoch)
            if epoch % SYNC_EVERY == 0:
                records.flush(on_flush, last_epochs)
                if not bool(live.any()):
                    break
            if stopping is not None and folds is not None and epoch % RESTACK_EVERY == 0:
                if not bool(live.any()):
                    break
                stack.keep(live, splits, stopping.best_flat)  # the members stopped by now leave
            if checkpoints is not None and checkpoints.due(epoch):
                records.flush(on_flush, last_epochs)  # (the state holds no pending metrics)
                checkpoints.save(_snapshot(stack, stopping, live, records, epoch), epoch + 1)
        if evaluates:  # the stack as the last epoch left it (re-stacked, maybe)
            evaluate(stack.net.forward(X_all).logits, epoch)
        records.flush(on_flush, last_epochs)

    result = _result(stack.master, records, last_epochs(), stopping)
    if stack.folds is None:
        result.optimizer, result.steps = stack.optimizer, epoch  # one step an epoch
    return result


def _train_in_batches(
    net: StackedMLP,
    optimizer: StackedOptimizer,
    epochs: Tensor,
    X_train: Tensor,
    train_targets: StackedTargets,
    splits: Sequence[Split],
    batches: IndexBatches,
    stopping: _EarlyStopping | None,
    records: _Records,
    masked: bool,
    on_flush: Callable[[dict[str, list[list[float]]], list[int]], None] | None,
    score: Callable[[StackedTargets, Tensor], tuple[Tensor, Tensor]],
    folds: Folds | None,
    checkpoints: Checkpoints | None,
    group: Group | None = None,
) -> StackedResult:
    """:func:`train_stacked` with mini-batches: one step per batch, the splits after each epoch.

    Each batch's features are copied into a buffer reused from batch to batch
    (:class:`BatchFeatures`): the step then meets the same tensor every time, and keeps its
    views of it. With ``folds``, each member's share of a batch is its own training rows, after
    each epoch each member is scored on its own validation rows, and a member that stops leaves
    the stack (:class:`_Stack`).
    """
    members = net.flat.shape[0]
    live = torch.ones(members, dtype=torch.bool, device=net.flat.device)
    if group is not None:  # one starting point (the same seed made it; rank 0's, to be sure)
        group.from_main_(net.flat)
    agreed = (lambda losses: losses) if group is None else group.from_main_
    stack = _Stack(net, optimizer, folds, X_train, train_targets)
    step, first, done_batches = 0, 1, 0
    resumed = checkpoints.resumed if checkpoints is not None else None
    if resumed is not None:
        live = _resume(resumed, stack, stopping, records)
        step, first, done_batches = (resumed.values[k] for k in ("step", "epoch", "batch"))
    features, X_rows = BatchFeatures(), X_train.T

    def last_epochs() -> list[int]:
        return _last_epochs(epochs, stopping)

    with torch.inference_mode():  # as train_stacked's full-batch loop
        for epoch in range(first, int(epochs.max()) + 1):
            net, folds = stack.net, stack.folds
            chosen = [
                rows
                if isinstance(rows, Tensor)
                else torch.arange(rows.start, rows.stop, device=X_train.device)
                for rows in batches.epoch(epoch)
            ]
            order = torch.cat(chosen).to(X_train.device)
            # the epoch's targets in batch order (each batch's are a slice), and each batch's
            # logits as it met them, read once for the epoch's metrics: (A, outputs, rows)
            targets_epoch = train_targets.subset(order)
            logits = net.flat.new_empty(len(stack.active), net.sizes[-1], len(order))
            mask = live[:, None].to(net.flat.dtype) if masked else None
            sizes = [rows.shape[0] for rows in chosen]
            start = sum(sizes[:done_batches])
            if done_batches:  # resumed inside this epoch: the logits of the batches it took
                logits[..., :start] = resumed.tensors["logits"]  # type: ignore[union-attr]
            for index, X_batch in enumerate(
                features.batches(X_rows, sizes[done_batches:], order[start:]), done_batches
            ):
                if index > 0 and checkpoints is not None and checkpoints.due():
                    state = _snapshot(stack, stopping, live, records, step)
                    state.tensors["logits"] = logits[..., :start]
                    checkpoints.save(state, epoch, index)
                stop = start + X_batch.shape[1]
                step += 1  # the optimizer counts steps, not epochs, as torch.optim does
                batch_targets = targets_epoch.subset(slice(start, stop))
                weights = None if folds is None else folds.batch_weights(order[start:stop])
                reduce = None
                if group is not None:  # each member's mean weighs the rows behind it
                    rows_behind = (
                        X_batch.shape[1] if folds is None else folds.batch_rows(order[start:stop])
                    )
                    reduce = functools.partial(group.weighted_mean_, mass=rows_behind)
                step_batch(
                    net,
                    stack.optimizer,
                    X_batch,
                    batch_targets,
                    step,
                    logits[..., start:stop],
                    mask,
                    weights,
                    reduce,
                )
                start = stop
            stack.write_back()
            if group is not None:  # the epoch's rows from every process, for its metrics
                logits, order = group.gather(logits), group.gather(order)
                targets_epoch = train_targets.subset(order)
            if folds is None:
                losses, correct = score(targets_epoch, logits)
                records.add("train", losses, correct)
            else:
                losses, correct = folds.training(*targets_epoch.row_scores(logits), order)
                records.add("train", stack.full(losses), stack.full(correct))
                losses, correct = stack.validation()
                records.add("val", losses, correct)
                if stopping is not None:
                    _, live = stopping.update(agreed(losses), live, epoch)
            for index, split in enumerate(splits):
                split_logits = net.forward(split.X).logits
                losses, correct = stack.split_scores(split, score, split_logits)
                records.add(split.name, losses, correct)
                if stopping is not None and folds is None and index == 0:
                    _, live = stopping.update(agreed(losses), live, epoch)
            live = live & (epochs > epoch)
            # a mini-batch epoch is long next to one read: report progress after every epoch
            records.flush(on_flush, last_epochs)
            if not bool(live.any()):
                break
            if stopping is not None and folds is not None:
                stack.keep(live, splits, stopping.best_flat)
            done_batches = 0
            if checkpoints is not None and checkpoints.due(epoch):
                stack.write_back()
                checkpoints.save(_snapshot(stack, stopping, live, records, step), epoch + 1)
    result = _result(stack.master, records, last_epochs(), stopping)
    if stack.folds is None:
        result.optimizer, result.steps = stack.optimizer, step
    return result


def _snapshot(
    stack: _Stack, stopping: _EarlyStopping | None, live: Tensor, records: _Records, step: int
) -> LoopState:
    """The engine loop's state between steps: every member's weights, moments and stopping.

    ``records`` must hold no pending metrics (flushed). ``step``: optimizer steps taken.
    """
    state = LoopState(values={"step": step, "columns": records.columns})
    state.tensors |= {"master": stack.master, "active": stack.active, "live": live}
    if stack.net.flat is not stack.master:  # re-stacked: the members training, in their stack
        state.tensors["flat"] = stack.net.flat
    if stack.net.generator is not None:  # dropout's masks: the stream goes on where it was
        state.tensors["dropout_generator"] = stack.net.generator.get_state()
    state.put("optimizer", stack.optimizer.state())
    if stopping is not None:
        state.put("stopping", stopping.state() | {"best_flat": stopping.best_flat})
    for split, logits in stack.frozen.items():
        state.put(f"frozen.{split}", {str(i): t for i, t in enumerate(logits)})
    return state


def _resume(
    state: LoopState, stack: _Stack, stopping: _EarlyStopping | None, records: _Records
) -> Tensor:
    """Set ``stack``, ``stopping`` and ``records`` as :func:`_snapshot` saw them; return live."""
    device = stack.master.device
    stack.master.copy_(state.tensors["master"])
    active = state.tensors["active"].to(device)
    if len(active) < len(stack.master):  # re-stacked as the members that had left, left
        assert stack.folds is not None  # members leave only a cross-fitted stack
        stack.net, stack.optimizer = stack.net.subset(active), stack.optimizer.subset(active)
        stack.folds, stack.active = stack.folds.subset(active), active
        stack.net.flat.copy_(state.tensors["flat"])
    stack.optimizer.load(state.sub("optimizer"))
    if stack.net.generator is not None:
        stack.net.generator.set_state(state.tensors["dropout_generator"])
    if stopping is not None:
        saved = state.sub("stopping")
        stopping.load(saved)
        stopping.best_flat = saved["best_flat"].to(stopping.best_flat)
    for split in {name.split(".")[1] for name in state.tensors if name.startswith("frozen.")}:
        frozen = state.sub(f"frozen.{split}")
        stack.frozen[split] = [frozen[str(i)].to(device) for i in range(len(frozen))]
    records.columns = state.values["columns"]
    return state.tensors["live"].to(device)


class _Stack:
    """The members that train on, stacked: cross-fitted ones leave the stack as they stop.

    A member that has stopped takes no more part: its kept weights are its best epoch's and its
    history ends where it stopped, so the steps it would go on taking are thrown away (on the
    real-table suite, a third of a cross-fitted run's). :meth:`keep` re-stacks the members that
    train on, with their optimizer state and folds. ``master`` ``(M, P)`` holds every member's
    latest weights (:meth:`write_back` after each epoch), which early stopping and the result
    read; ``frozen`` holds each split's logits of the members that have left, which an
    ensemble's score still averages in.
    """

    def __init__(
        self,
        net: StackedMLP,
        optimizer: StackedOptimizer,
        folds: Folds | None,
        X_train: Tensor,
        train_targets: StackedTargets,
    ) -> None:
        self.net, self.optimizer, self.folds = net, optimizer, folds
        self.master = net.flat  # (M, P)
        self.active = torch.arange(len(net.flat), device=net.flat.device)  # (A,) member ids
        self.frozen: dict[str, list[Tensor]] = {}  # split -> (left, outputs, rows) logits
        self.X_train, self.train_targets = X_train, train_targets
        self._held: tuple[Tensor, StackedTargets, Tensor] | None = None

    def _held_out(self) -> tuple[Tensor, StackedTargets, Tensor]:
        """The stacked members' validation rows: features, targets and weights.

        Each member's own rows ``(A, in, m)``, their targets as one member's ``(A * m)`` and
        their weights ``(A, m)``; made when first asked for.
        """
        if self._held is None:
            assert self.folds is not None  # only a cross-fitted stack is validated on folds
            rows, weights = self.folds.held_out()  # (A, m) each
            X_held = self.X_train[:, rows].permute(1, 0, 2).contiguous()
            self._held = (X_held, self.train_targets.subset(rows.reshape(-1)), weights)
        return self._held

    def full(self, values: Tensor) -> Tensor:
        """The stacked members' values ``(A,)`` at their places among all ``(M,)``; NaN else."""
        if len(self.active) == len(self.master):
            return values
        spread = values.new_full((len(self.master),), float("nan"))
        return spread.index_copy_(0, self.active, values)

    def write_back(self) -> None:
        if self.net.flat is not self.master:
            self.master.index_copy_(0, self.active, self.net.flat)

    def validation(self) -> tuple[Tensor, Tensor]:
        """Each member's loss and accuracy ``(M,)`` on its own validation fold."""
        X_held, targets, weights = self._held_out()
        logits = self.net.member_logits(X_held)  # (A, outputs, m)
        as_one = logits.transpose(0, 1).reshape(1, logits.shape[1], -1)
        row_losses, row_correct = targets.row_scores(as_one)  # (1, A * m)
        assert self.folds is not None  # made by _held_out
        means = self.folds.validation(
            row_losses.view_as(weights), row_correct.view_as(weights), weights
        )
        return self.full(means[0]), self.full(means[1])

    def split_scores(
        self,
        split: Split,
        score: Callable[[StackedTargets, Tensor], tuple[Tensor, Tensor]],
        logits: Tensor,
    ) -> tuple[Tensor, Tensor]:
        """``score`` ``(M,)`` of the stacked members' ``logits`` on ``split``.

        An ensemble's score averages in the members that have left, at their kept weights.
        """
        if score is _ensemble_scores:
            logits = torch.cat([*self.frozen.get(split.name, []), logits])
            losses, correct = score(split.targets, logits)
            return losses[:1].expand(len(self.master)), correct[:1].expand(len(self.master))
        return tuple(map(self.full, score(split.targets, logits)))  # type: ignore[return-value]

    def keep(self, live: Tensor, splits: Sequence[Split], kept_flat: Tensor) -> None:
        """Re-stack the members still ``live`` ``(M,)``, if any has stopped.

        ``kept_flat`` ``(M, P)``: every member's kept weights (early stopping's best), at which
        the leaving ones count in an ensemble's score from now on.
        """
        staying = live.index_select(0, self.active)
        if bool(staying.all()):
            return
        leaving = self.active[~staying]
        left = self.net.like(kept_flat.index_select(0, leaving))
        for split in splits:
            logits = left.member_logits(_stacked(split.X, left))  # (leaving, outputs, rows)
            self.frozen.setdefault(split.name, []).append(logits)
        kept = staying.nonzero().flatten()
        self.net, self.optimizer = self.net.subset(kept), self.optimizer.subset(kept)
        assert self.folds is not None  # members leave only a cross-fitted stack
        self.folds = self.folds.subset(kept)
        self.active = self.active[kept]
        self._held = None


def _stacked(X: Tensor, net: StackedMLP) -> Tensor:
    """Features ``(in, N)`` as every member of ``net``'s input ``(A, in, N)``, no copy."""
    return X.expand(len(net.flat), *X.shape)


def step_batch(
    net: StackedMLP,
    optimizer: StackedOptimizer,
    X: Tensor,
    targets: StackedTargets,
    step: int,
    logits_out: Tensor,
    mask: Tensor | None = None,
    row_weights: Tensor | None = None,
    reduce: Callable[[Tensor], object] | None = None,
) -> None:
    """One optimizer step on the batch ``X`` ``(in, b)``, its logits copied to ``logits_out``.

    ``step`` counts optimizer steps from 1; ``mask`` ``(M, 1)`` freezes members at 0. The caller
    reads the loss and accuracy from many batches' logits at once (``logits_out`` is a view of
    an epoch's or a block's ``(M, outputs, rows)``): computed batch by batch, those few small
    operations cost about a tenth of the step. ``row_weights`` ``(M, b)``: each member's
    weights of the batch's rows (see :meth:`StackedTargets.gradient`). ``reduce`` turns the
    gradient ``(M, P)`` of this process's share into that of every process's rows, in place.
    """
    forward = net.forward(X, train_rows=X.shape[1])
    logits_out.copy_(forward.logits)
    gradient = targets.gradient(forward.logits, row_weights)
    grads = net.backward(forward, gradient)
    if reduce is not None:
        reduce(grads)
    optimizer.step(net.flat, grads, step, mask)


def _member_scores(targets: StackedTargets, logits: Tensor) -> tuple[Tensor, Tensor]:
    """Each member's loss and correct count ``(M,)`` on ``targets``' rows."""
    losses, correct, _ = targets.loss_and_correct(logits, gradient=False)
    return losses, correct


def _ensemble_scores(targets: StackedTargets, logits: Tensor) -> tuple[Tensor, Tensor]:
    """The ensemble's loss and correct count, repeated for each of the ``M`` members."""
    losses, correct, _ = targets.loss_and_correct(targets.ensemble_logits(logits), gradient=False)
    members = logits.shape[0]
    return losses.expand(members), correct.expand(members)


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


class _EarlyStopping(BestEpochs):
    """The early-stopping rule for every member, on the device, keeping each one's best weights."""

    def __init__(self, flat: Tensor, patience: int, min_delta: float) -> None:
        super().__init__(flat.new_zeros(flat.shape[0]), patience, min_delta)
        self.flat = flat  # (M, P): the members' parameters, updated in place by the optimizer
        self.best_flat = flat.clone()

    def update(self, losses: Tensor, live: Tensor, epoch: int) -> tuple[Tensor, Tensor]:
        """Fold in the losses ``(M,)`` after ``epoch``; keep the improved members' weights."""
        improved, live = super().update(losses, live, epoch)
        self.best_flat = torch.where(improved[:, None], self.flat, self.best_flat)
        return improved, live


__all__ = [
    "SYNC_EVERY",
    "BatchFeatures",
    "Folds",
    "Split",
    "StackedResult",
    "step_batch",
    "train_stacked",
]
