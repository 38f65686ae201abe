"""Which rows each step and each member sees: batch buffers, and cross-fitting's folds.

:class:`BatchFeatures` copies each mini-batch's rows into a buffer reused from batch to batch;
:class:`Folds` weighs each member's loss to its own training rows and validates it on the rest.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor


class BatchFeatures:
    """Each batch's features, copied into a buffer reused by every batch of that size.

    The forward then meets the same tensor every batch and keeps its views of it. Rows are cut
    from ``X_rows`` ``(n, in)`` (row-major; one dtype, device and width per instance) in turn, or
    in a given order: those are gathered a chunk of about :data:`CHUNK_BYTES` at a time and each
    batch is copied out of the chunk. Gathered one batch at a time, between the products, the
    rows cost about 70 us a batch of 256 (their cache misses wait one after another), against
    under 20 in chunks.
    """

    CHUNK_BYTES = 1 << 20  # 8,192 rows of 32 float32 features

    def __init__(self) -> None:
        self._chunk: Tensor | None = None
        self._buffers: dict[int, tuple[Tensor, Tensor]] = {}  # rows -> (b, in) and its (in, b)

    def batches(
        self, X_rows: Tensor, sizes: Sequence[int], order: Tensor | None = None
    ) -> Iterator[Tensor]:
        """The features ``(in, b)`` of each batch, valid until the next batch of its size.

        The batches are ``X_rows`` (or ``order``'s rows of it) cut into ``sizes``.
        """
        chunk = self._chunk_for(X_rows, sizes) if order is not None else X_rows
        start = chunk_start = chunk_stop = 0
        for size in sizes:
            stop = start + size
            if order is not None and stop > chunk_stop:  # the next rows in order, a chunk at once
                chunk_start, chunk_stop = start, min(start + len(chunk), len(order))
                rows = order[chunk_start:chunk_stop]
                torch.index_select(X_rows, 0, rows, out=chunk[: len(rows)])
            buffers = self._buffers.get(size)
            if buffers is None:
                rows_buffer = X_rows.new_empty(size, X_rows.shape[1])  # (b, in)
                buffers = self._buffers[size] = (rows_buffer, rows_buffer.T)
            buffers[0].copy_(chunk[start - chunk_start : stop - chunk_start])
            yield buffers[1]
            start = stop

    def _chunk_for(self, X_rows: Tensor, sizes: Sequence[int]) -> Tensor:
        """The buffer that gathered rows go through: about CHUNK_BYTES, and at least a batch."""
        row_bytes = X_rows.shape[1] * X_rows.element_size()
        capacity = max(self.CHUNK_BYTES // row_bytes, *sizes)
        if self._chunk is None or len(self._chunk) < capacity:
            self._chunk = X_rows.new_empty(capacity, X_rows.shape[1])
        return self._chunk


class Folds:
    """Cross-fitting: the training rows each member trains on; the rest validate it.

    ``trains`` is ``(M, n)`` boolean. Each member's loss is its mean over its own rows, so a
    member trains as if alone on them; its validation loss is its mean over the rest.
    """

    def __init__(self, trains: Tensor, dtype: torch.dtype) -> None:
        self.trains = trains  # (M, n)
        train, held_out = trains.to(dtype), (~trains).to(dtype)
        self.train_weights = train / train.sum(dim=1, keepdim=True)  # (M, n), rows sum to 1
        self.validation_weights = held_out / held_out.sum(dim=1, keepdim=True).clamp(min=1)

    def subset(self, keep: Tensor) -> Folds:
        """The folds of members ``keep`` ``(A,)`` alone."""
        return Folds(self.trains.index_select(0, keep), self.train_weights.dtype)

    def batch_weights(self, rows: Tensor) -> Tensor:
        """Each member's weights ``(M, b)`` of the rows ``rows`` ``(b,)``: a mean over its own."""
        chosen = self.trains.index_select(1, rows).to(self.train_weights.dtype)
        return chosen / chosen.sum(dim=1, keepdim=True).clamp(min=1)

    def batch_rows(self, rows: Tensor) -> Tensor:
        """How many of the rows ``rows`` ``(b,)`` each member trains on ``(M,)``."""
        return self.trains.index_select(1, rows).sum(dim=1)

    def training(
        self, row_losses: Tensor, row_correct: Tensor, rows: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Each member's mean loss and correct count ``(M,)`` on its own training rows.

        From the scores ``(M, n)`` of every row (or of ``rows``, in order); the count is scaled
        to all ``n`` rows, as the records divide it by them.
        """
        weights = self.train_weights if rows is None else self.batch_weights(rows)
        correct = (row_correct * weights).sum(dim=1) * self.trains.shape[1]
        return (row_losses * weights).sum(dim=1), correct

    def validation(
        self, row_losses: Tensor, row_correct: Tensor, weights: Tensor | None = None
    ) -> tuple[Tensor, Tensor]:
        """Each member's mean loss and accuracy ``(M,)`` on its validation rows.

        From the scores ``(M, n)`` of every row, or with the ``weights`` of :meth:`held_out`
        from the scores ``(M, m)`` of each member's own validation rows.
        """
        weights = self.validation_weights if weights is None else weights
        return (row_losses * weights).sum(dim=1), (row_correct * weights).sum(dim=1)

    def held_out(self) -> tuple[Tensor, Tensor]:
        """Each member's validation rows alone, ``(M, m)``, and their weights ``(M, m)``.

        Folds differ in size by a row or so: a shorter one is padded with its own first row at
        weight 0. A member's mean over them is :meth:`validation`'s, for a K-th of the work of
        scoring every member on every row.
        """
        held = ~self.trains
        counts = held.sum(dim=1)  # (M,)
        width = int(counts.max())
        # stable sort puts each member's held-out rows first, in row order
        rows = torch.sort(held.to(torch.int8), dim=1, descending=True, stable=True).indices
        rows = rows[:, :width]
        real = torch.arange(width, device=rows.device)[None, :] < counts[:, None]
        rows = torch.where(real, rows, rows[:, :1])
        weights = real.to(self.validation_weights.dtype) / counts[:, None].clamp(min=1)
        return rows, weights


__all__ = ["BatchFeatures", "Folds"]
