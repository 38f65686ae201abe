"""Frozen configuration: what to build (ModelConfig) and how to train it (TrainConfig).

They hold plain values only, so that they travel as JSON inside a model file. Each is validated
once, when it is created; the code that consumes them trusts them.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torchclf.errors import ConfigError

ACTIVATIONS = ("relu", "leaky_relu", "sigmoid", "tanh", "gelu", "identity")
ACTIVATION_IMPLS = ("torch", "scratch")
# torch: nn.Linear's own (the tutorial's numbers); xavier: Glorot uniform, scikit-learn's scheme;
# kaiming: He uniform for the activation. Both of the latter start the biases at zero.
INITS = ("torch", "xavier", "kaiming")
OPTIMIZERS = ("sgd", "adam", "adamw", "rmsprop")
LR_SCHEDULES = ("none", "cosine", "step", "plateau")
# auto: the hand-written engine (torchclf.engine) where it applies, else autograd
ENGINES = ("auto", "autograd", "stacked")


def check_choice(parameter: str, value: object, choices: Iterable[str]) -> None:
    """Raise a :class:`ConfigError` listing the choices unless ``value`` is one of them."""
    choices = list(choices)
    if value in choices:
        return
    message = f"Invalid {parameter}: expected one of {choices}, got {value!r}"
    close = difflib.get_close_matches(str(value), choices, n=1)
    if close:
        message += f". Did you mean {close[0]!r}?"
    raise ConfigError(message)


def _collect(problems: list[str]) -> None:
    if problems:
        raise ConfigError("; ".join(problems))


def check_number(
    problems: list[str],
    name: str,
    value: object,
    *,
    low: float,
    high: float = float("inf"),
    low_open: bool = False,
    integer: bool = False,
) -> None:
    """Append a message to ``problems`` unless ``value`` is a number in the interval."""
    kind = "an int" if integer else "a float"
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    ok = ok_type and not isinstance(value, bool)
    if ok:
        ok = (value > low if low_open else value >= low) and value <= high  # type: ignore[operator]
    if not ok:
        left = "(" if low_open else "["
        right = "]" if high != float("inf") else ")"
        problems.append(
            f"The '{name}' parameter must be {kind} in the range {left}{low}, {high}{right}. "
            f"Got {value!r} instead."
        )


@dataclass(frozen=True)
class ModelConfig:
    """The architecture of an MLP classifier.

    ``hidden=()`` is the linear baseline: one ``nn.Linear`` from features to outputs.
    """

    in_features: int  # number of input features
    out_features: int  # output units: 1 (binary), n_classes or n_labels
    hidden: tuple[int, ...] = (64, 64)  # sizes of the hidden layers, input side first
    activation: str = "relu"  # non-linearity between layers; "identity" keeps the model linear
    activation_impl: str = "torch"  # "torch" (torch.nn) or "scratch" (torchclf.activations)
    dropout: float = 0.0  # dropout probability after each hidden activation
    batch_norm: bool = False  # BatchNorm1d after each hidden linear layer
    init: str = "torch"  # initial weights of the Linear layers, one of INITS

    def __post_init__(self) -> None:
        if isinstance(self.hidden, (int, str)) or not hasattr(self.hidden, "__iter__"):
            raise ConfigError(
                f"The 'hidden' parameter must be a sequence of layer sizes such as (64, 64), or () "
                f"for the linear model. Got {self.hidden!r} instead; for one layer write "
                f"({self.hidden!r},)."
            )
        object.__setattr__(self, "hidden", tuple(self.hidden))
        problems: list[str] = []
        check_number(problems, "in_features", self.in_features, low=1, integer=True)
        check_number(problems, "out_features", self.out_features, low=1, integer=True)
        for size in self.hidden:
            check_number(problems, "hidden", size, low=1, integer=True)
        check_number(problems, "dropout", self.dropout, low=0.0, high=1.0)
        if self.dropout == 1.0:
            problems.append("The 'dropout' parameter must be below 1.0 (1.0 drops every unit).")
        _collect(problems)
        check_choice("activation", self.activation, ACTIVATIONS)
        check_choice("activation_impl", self.activation_impl, ACTIVATION_IMPLS)
        check_choice("init", self.init, INITS)

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {**dataclasses.asdict(self), "hidden": list(self.hidden)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return _from_dict(cls, values)


@dataclass(frozen=True)
class TrainConfig:
    """How to train: optimizer, schedule, batches, stopping, loss options and seed."""

    optimizer: str = "adam"  # one of OPTIMIZERS
    lr: float = 0.003  # learning rate
    momentum: float = 0.0  # for sgd and rmsprop
    weight_decay: float = 0.003  # L2 penalty (decoupled for adamw)
    epochs: int = 500  # passes over the training rows
    batch_size: int | None = None  # rows per step; None: full batch up to FULL_BATCH_MAX rows
    lr_schedule: str = "none"  # one of LR_SCHEDULES, stepped once per epoch
    grad_clip: float | None = None  # clip the gradients' global L2 norm to this value
    early_stopping: bool = False  # stop when the validation loss stops improving
    validation_fraction: float = 0.0  # share of the training rows held out for validation
    patience: int = 20  # epochs without improvement before early stopping
    min_delta: float = 0.0  # smallest decrease of the validation loss that counts
    class_weight: str | dict[str, float] | None = None  # None, "balanced" or {label: weight}
    label_smoothing: float = 0.0  # multiclass only
    seed: int = 42  # initialisation, splits, shuffling and dropout
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    log_every: int | None = None  # print a progress line every N epochs (None: 10 lines per run)
    standardize: bool = True  # scale features to zero mean, unit variance (fitted on train rows)
    dtype: str = "float32"  # "float32", or "float64" for exact arithmetic (slower)
    engine: str = "auto"  # one of ENGINES
    compile: bool = False  # torch.compile the model for the autograd loop (long runs)

    FULL_BATCH_MAX = 4096  # ClassVar: data at most this large trains full batch by default

    def __post_init__(self) -> None:
        problems: list[str] = []
        check_number(problems, "lr", self.lr, low=0.0, low_open=True)
        check_number(problems, "momentum", self.momentum, low=0.0, high=1.0)
        check_number(problems, "weight_decay", self.weight_decay, low=0.0)
        check_number(problems, "epochs", self.epochs, low=1, integer=True)
        if self.batch_size is not None:
            check_number(problems, "batch_size", self.batch_size, low=1, integer=True)
        if self.grad_clip is not None:
            check_number(problems, "grad_clip", self.grad_clip, low=0.0, low_open=True)
        check_number(problems, "validation_fraction", self.validation_fraction, low=0.0, high=0.9)
        check_number(problems, "patience", self.patience, low=1, integer=True)
        check_number(problems, "min_delta", self.min_delta, low=0.0)
        check_number(problems, "label_smoothing", self.label_smoothing, low=0.0, high=1.0)
        check_number(problems, "seed", self.seed, low=0, high=2**63 - 1, integer=True)
        if self.log_every is not None:
            check_number(problems, "log_every", self.log_every, low=1, integer=True)
        if self.early_stopping and self.validation_fraction == 0.0:
            problems.append(
                "early_stopping=True needs a validation split: set validation_fraction "
                "(for example 0.1)."
            )
        if isinstance(self.class_weight, str) and self.class_weight != "balanced":
            problems.append(
                f"The 'class_weight' parameter must be None, 'balanced' or a dict of "
                f"{{label: weight}}. Got {self.class_weight!r} instead."
            )
        _collect(problems)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("lr_schedule", self.lr_schedule, LR_SCHEDULES)
        check_choice("dtype", self.dtype, ("float32", "float64"))
        check_choice("engine", self.engine, ENGINES)
        if self.compile and self.engine == "stacked":
            raise ConfigError(
                "compile=True compiles the autograd loop's model; the stacked engine is "
                "written by hand. Use engine='auto' with compile=True"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """Inverse of :meth:`to_dict`; unknown keys are an error."""
        return _from_dict(cls, values)


def _from_dict(cls: Any, values: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"Unknown {cls.__name__} keys {unknown}; expected some of {sorted(names)}"
        )
    return cls(**values)


__all__ = ["ModelConfig", "TrainConfig"]
