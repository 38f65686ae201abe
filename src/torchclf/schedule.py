"""How long to train and what to watch: ``fit``'s "auto" epochs, early stopping and validation.

:func:`resolve_schedule` turns the "auto" values of :func:`torchclf.fit`, :func:`torchclf.
fit_parquet` and the command line into numbers for the data at hand, in one place.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torchclf.config import TrainConfig
from torchclf.data import default_batch_size
from torchclf.errors import ConfigError

AUTO_VALIDATION_FRACTION = 0.2  # share of the training rows held out for validation ...
MAX_VALIDATION_ROWS = 10_000  # ... but no more rows than this: enough to rank epochs
MIN_ROWS_FOR_VALIDATION = 20  # below this, no row can be spared: the whole budget trains
FULL_BATCH_EPOCHS = 1000  # the lesson's budget; full-batch steps are cheap and small
MINI_BATCH_STEPS = 30_000  # a mini-batch budget in optimizer steps, ...
MINI_BATCH_EPOCHS = (1, 200)  # ... as epochs within these bounds
MINI_BATCH_PATIENCE = 10  # epochs, as scikit-learn's n_iter_no_change


@dataclass(frozen=True)
class Schedule:
    """How long to train and what to watch: ``fit``'s "auto" values, resolved for the data."""

    epochs: int  # the most epochs to train
    early_stopping: bool  # keep the best validation epoch's weights, stop after patience
    validation_fraction: float  # share of the training rows held out for validation
    patience: int  # epochs without a better validation loss before stopping


def resolve_schedule(
    n_rows: int,
    *,
    epochs: int | str = "auto",
    early_stopping: bool | str = "auto",
    validation_fraction: float | str = "auto",
    patience: int | str = "auto",
    batch_size: int | None = None,
    needs_validation: bool = False,
) -> Schedule:
    """Resolve ``fit``'s "auto" epochs, early stopping, validation share and patience.

    The default is honest and safe: validation rows carved from the training rows, the weights
    of the epoch with the lowest validation loss kept, and an epoch budget sized to the data
    (one step per epoch in full batch, many in mini-batches) that early stopping ends sooner.
    Values given explicitly are kept as they are (and checked by :class:`TrainConfig`).

    Args:
        n_rows: training rows, before validation rows are held out.
        epochs: as given to ``fit``: a number, or "auto".
        early_stopping: as given to ``fit``: a bool, or "auto".
        validation_fraction: as given to ``fit``: a share, or "auto".
        patience: as given to ``fit``: a number of epochs, or "auto".
        batch_size: as given to ``fit`` (None: full batch up to 4096 rows).
        needs_validation: something else (a threshold rule) is chosen on validation rows.
    """
    for name, value in (
        ("epochs", epochs),
        ("early_stopping", early_stopping),
        ("validation_fraction", validation_fraction),
        ("patience", patience),
    ):
        if isinstance(value, str) and value != "auto":
            kind = "a bool" if name == "early_stopping" else "a number"
            raise ConfigError(
                f"The '{name}' parameter must be 'auto' or {kind}. Got {value!r} instead."
            )
    if validation_fraction == "auto":
        wanted = early_stopping in (True, "auto") or needs_validation
        spare = n_rows >= MIN_ROWS_FOR_VALIDATION
        validation_fraction = (
            min(AUTO_VALIDATION_FRACTION, MAX_VALIDATION_ROWS / n_rows) if wanted and spare else 0.0
        )
    if early_stopping == "auto":
        early_stopping = validation_fraction > 0  # type: ignore[operator]
    n_train = n_rows - math.ceil(float(validation_fraction) * n_rows)
    batch = default_batch_size(max(n_train, 1), batch_size, TrainConfig.FULL_BATCH_MAX)
    full_batch = batch >= n_train
    if epochs == "auto":
        if full_batch:
            epochs = FULL_BATCH_EPOCHS
        else:
            steps_per_epoch = math.ceil(n_train / batch)
            low, high = MINI_BATCH_EPOCHS
            epochs = min(high, max(low, math.ceil(MINI_BATCH_STEPS / steps_per_epoch)))
    if patience == "auto":
        patience = max(10, int(epochs) // 10) if full_batch else MINI_BATCH_PATIENCE
    return Schedule(
        int(epochs),
        bool(early_stopping),
        float(validation_fraction),
        int(patience),
    )


__all__ = ["Schedule", "resolve_schedule"]
