"""How long to train and what to watch: ``fit``'s "auto" epochs, early stopping and validation.

:func:`resolve_schedule` turns the "auto" values of :func:`torchclf.fit`, :func:`torchclf.
fit_parquet` and the command line into numbers for the data at hand, in one place.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from torchclf.config import TrainConfig
from torchclf.data.batches import default_batch_size
from torchclf.engine import refusal_of
from torchclf.errors import ConfigError, DataError

AUTO_VALIDATION_FRACTION = 0.2  # share of the training rows held out for validation ...
MAX_VALIDATION_ROWS = 10_000  # ... but no more rows than this: enough to rank epochs
MIN_ROWS_FOR_VALIDATION = 20  # below this, no row can be spared: the whole budget trains
FULL_BATCH_EPOCHS = 1000  # the lesson's budget; full-batch steps are cheap and small
MINI_BATCH_STEPS = 30_000  # a mini-batch budget in optimizer steps, ...
MINI_BATCH_EPOCHS = (1, 200)  # ... as epochs within these bounds
MINI_BATCH_PATIENCE = 10  # epochs, as scikit-learn's n_iter_no_change
# members of the "auto" ensemble: TabArena's bags have 8 folds, and 8 cross-fitted members beat
# 5 on the real-table suite's small tables (benchmarks/real_tables.py, docs/benchmarks.md)
AUTO_ENSEMBLE = 8
# weight decay "auto": this L2 penalty tempers the probabilities of tables with few rows, and
# from LARGE_TABLE_ROWS training rows on a tenth of it does better: on the real-table suite all
# five 20,000-row tables gained (diamonds 0.595 -> 0.558), where those of 3,000-7,500 rows were
# mixed (docs/benchmarks.md)
AUTO_WEIGHT_DECAY = 0.003
LARGE_TABLE_WEIGHT_DECAY = 0.0003
LARGE_TABLE_ROWS = 10_000


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
        _check_auto(name, value, "a bool" if name == "early_stopping" else "a number")
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


def _check_auto(name: str, value: object, kind: str) -> None:
    """Refuse a string other than "auto" for a parameter that is "auto" or ``kind``."""
    if isinstance(value, str) and value != "auto":
        raise ConfigError(
            f"The '{name}' parameter must be 'auto' or {kind}. Got {value!r} instead."
        )


def resolve_weight_decay(weight_decay: float | str, n_rows: int) -> float | str:
    """``fit``'s "auto" weight decay for ``n_rows`` training rows; a number is kept as given."""
    _check_auto("weight_decay", weight_decay, "a float in the range [0, inf)")
    if weight_decay != "auto":
        return weight_decay  # checked by TrainConfig, with the declared message
    return LARGE_TABLE_WEIGHT_DECAY if n_rows >= LARGE_TABLE_ROWS else AUTO_WEIGHT_DECAY


def resolve_ensemble(
    ensemble: int | str,
    cross_fit: bool | str,
    n_rows: int,
    *,
    engine_trains: bool,
    autograd_asked: bool = False,
    validation_fraction: float | str,
    early_stopping: bool | str,
) -> tuple[int, bool]:
    """Resolve ``fit``'s "auto" ensemble size and cross-fitting: ``(members, cross_fit)``.

    "auto" is :data:`AUTO_ENSEMBLE` members where the hand-written engine can train the run
    (``engine_trains``: side by side, for about the time of a few networks), one network where
    only the autograd loop can (dropout, batch norm, schedules...), which would take eight times
    as long. "auto" cross-fitting is on for an ensemble that chooses its epochs (early stopping
    not switched off, no holdout share given) on data with rows to spare, unless the autograd
    loop is asked for (``autograd_asked``: it trains one holdout ensemble instead). Each member
    is then validated on its own fold, so every training row serves both to train and to
    choose, where a holdout would spend a fifth of them on validation alone.
    """
    members = (AUTO_ENSEMBLE if engine_trains else 1) if ensemble == "auto" else int(ensemble)
    if cross_fit == "auto":
        cross_fit = (
            members > 1
            and engine_trains
            and not autograd_asked
            and validation_fraction == "auto"
            and early_stopping in (True, "auto")
            and n_rows >= max(MIN_ROWS_FOR_VALIDATION, 2 * members)
        )
    return members, bool(cross_fit)


# fit's keywords that plan_training resolves, each "auto" by default
_PLANNED = (
    "ensemble",
    "cross_fit",
    "blend_linear",
    "epochs",
    "early_stopping",
    "validation_fraction",
    "patience",
)


@dataclass(frozen=True)
class Plan:
    """What ``fit`` will train: the schedule, the ensemble's size and how it is validated."""

    schedule: Schedule
    ensemble: int  # networks whose probabilities are averaged
    cross_fit: bool  # each member validated on its own fold (schedule.validation_fraction = 1/K)
    blend_linear: bool  # linear members blended in, weighted on the held-out rows


def plan_training(n_rows: int, given: Mapping[str, Any]) -> Plan:
    """Resolve every "auto" of a run at once: :func:`resolve_ensemble`, then the schedule.

    ``given`` maps :func:`torchclf.fit`'s keywords to a run's values: ``fit`` passes its own,
    and the command line the ones it is about to pass to ``fit``, so that both see the same
    plan. A keyword left out has ``fit``'s default: "auto" for the ensemble, cross-fitting,
    the blend, epochs, early stopping, validation share and patience, and otherwise the
    declared default (:func:`torchclf.engine.refusal_of` reads the values that decide whether
    the hand-written engine can train the run). A threshold rule such as "f1" is chosen on
    validation rows, so it asks for some. A cross-fitted ensemble's members each hold out 1/K
    of the rows, so its schedule is sized for that share.

    ``blend_linear`` "auto" blends linear members into a cross-fitted ensemble, whose every
    training row is held out once to weigh them (:mod:`torchclf.training.blend`); True blends
    wherever rows are held out (a validation share), and is refused where none are.
    """
    ensemble, cross_fit, blend_linear, epochs, early_stopping, validation_fraction, patience = (
        given.get(name, "auto") for name in _PLANNED
    )
    why_not = refusal_of({**given, "weighted": given.get("sample_weight") is not None})
    autograd_asked = given.get("engine") == "autograd" or bool(given.get("compile"))
    members, cross = resolve_ensemble(
        ensemble,
        cross_fit,
        n_rows,
        engine_trains=why_not is None,
        autograd_asked=autograd_asked,
        validation_fraction=validation_fraction,
        early_stopping=early_stopping,
    )
    if cross:
        if why_not is None and autograd_asked:
            why_not = "engine='autograd' or compile=True asks for the autograd loop"
        if why_not is not None:
            raise ConfigError(
                f"cross_fit=True trains on the hand-written engine, which cannot train this run: "
                f"{why_not}. Use cross_fit=False"
            )
        if members < 2:
            raise ConfigError(
                f"cross_fit=True trains one member per fold and needs ensemble >= 2; got "
                f"ensemble={members}. Set ensemble (for example 8)"
            )
        if validation_fraction != "auto":
            raise ConfigError(
                f"cross_fit=True validates each member on its own fold (1/ensemble of the rows); "
                f"validation_fraction={validation_fraction!r} asks for a holdout too. Leave it "
                "'auto'"
            )
        if n_rows < 2 * members:
            raise DataError(
                f"{n_rows} training rows are too few for {members} folds; use fewer members or "
                "cross_fit=False"
            )
        validation_fraction = 1.0 / members  # each member's own fold
    schedule = resolve_schedule(
        n_rows,
        epochs=epochs,
        early_stopping=early_stopping,
        validation_fraction=validation_fraction,
        patience=patience,
        batch_size=given.get("batch_size"),
        needs_validation=isinstance(given.get("threshold"), str),
    )
    held_out = cross or schedule.validation_fraction > 0
    if blend_linear == "auto":
        blend_linear = cross
    elif blend_linear and not held_out:
        raise ConfigError(
            "blend_linear=True weighs the linear model on held-out rows, and this run holds out "
            "none (validation_fraction=0 without cross-fitting). Set validation_fraction (for "
            "example 0.2) or blend_linear=False"
        )
    return Plan(schedule, members, cross, bool(blend_linear))


__all__ = [
    "AUTO_ENSEMBLE",
    "Plan",
    "Schedule",
    "plan_training",
    "resolve_ensemble",
    "resolve_schedule",
    "resolve_weight_decay",
]
