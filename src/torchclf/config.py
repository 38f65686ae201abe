"""Frozen configuration: what to build (ModelConfig) and how to train it (TrainConfig).

They hold plain values only, so that they travel as JSON inside a model file. Each is validated
once, when it is created; the code that consumes them trusts them.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from torchclf.constraints import Constraint, Interval, NoneOr, Options, check_all, problem
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
# standard: mean and standard deviation; robust: median and interquartile range, smoothly
# clipped (RealMLP's), which heavy tails and outliers do not stretch
SCALINGS = ("standard", "robust")
# piecewise_linear: each numeric column also as its position among the training quantiles
# (torchclf.encoders.tables.piecewise_linear); auto: where the training rows allow it
NUMERIC_EMBEDDINGS = ("auto", "none", "piecewise_linear")
# learned: each category of a column looks up a learned vector (torchclf.nn.models
# .CategoryEmbeddings) instead of a one-hot slot; auto: for the columns with more frequent
# categories than one-hot keeps (torchclf.encoders.tables.MAX_CATEGORIES)
CATEGORICAL_EMBEDDINGS = ("auto", "none", "learned")


def check_choice(parameter: str, value: object, choices: Iterable[str]) -> None:
    """Raise the one :class:`ConfigError` template (with "Did you mean") unless allowed."""
    check_all([(parameter, value, Options(tuple(choices)))])


# Each parameter's constraint, declared once. The configs validate against these tables, the
# estimator maps its scikit-learn names onto them (torchclf.estimator), and a parametrized test
# checks that every face reports a bad value with the same message. Numbers are listed before
# choices: a call with several bad values reports them in this order.
MODEL_CONSTRAINTS: dict[str, Constraint] = {
    "in_features": Interval(int, 1),
    "out_features": Interval(int, 1),
    "dropout": Interval(float, 0.0, 1.0, closed="left"),  # 1.0 would drop every unit
    "activation": Options(ACTIVATIONS),
    "activation_impl": Options(ACTIVATION_IMPLS),
    "init": Options(INITS),
    "ensemble": Interval(int, 1, 64),
    "temperature": Interval(float, 0.0, closed="right"),
    "linear_weight": Interval(float, 0.0, 1.0, closed="left"),
}
TRAIN_CONSTRAINTS: dict[str, Constraint] = {
    "lr": Interval(float, 0.0, closed="right"),
    "momentum": Interval(float, 0.0, 1.0),
    "weight_decay": Interval(float, 0.0),
    "epochs": Interval(int, 1),
    "batch_size": NoneOr(Interval(int, 1)),
    "grad_clip": NoneOr(Interval(float, 0.0, closed="right")),
    "validation_fraction": Interval(float, 0.0, 0.9),
    "patience": Interval(int, 1),
    "min_delta": Interval(float, 0.0),
    "label_smoothing": Interval(float, 0.0, 1.0),
    "seed": Interval(int, 0, 2**63 - 1),
    "log_every": NoneOr(Interval(int, 1)),
    "optimizer": Options(OPTIMIZERS),
    "lr_schedule": Options(LR_SCHEDULES),
    "dtype": Options(("float32", "float64")),
    "engine": Options(ENGINES),
    "scaling": Options(SCALINGS),
    "numeric_embedding": Options(NUMERIC_EMBEDDINGS),
    "categorical_embedding": Options(CATEGORICAL_EMBEDDINGS),
    "cross_fit": Options((False, True)),
    "calibrate": Options((False, True)),
    "blend_linear": Options((False, True)),
}
# Each declared parameter's one line of help: the command line's options show it.
PARAMETER_HELP: dict[str, str] = {
    "in_features": "Input features of the network (set from the data).",
    "out_features": "Output units: 1 (binary), one per class or per label (set from the data).",
    "dropout": "Dropout probability after each hidden activation.",
    "activation": "Non-linearity between layers: relu, leaky_relu, sigmoid, tanh, gelu, identity.",
    "activation_impl": "torch (torch.nn's activations) or scratch (torchclf.activations').",
    "init": "Initial weights: torch (nn.Linear's), xavier (Glorot, scikit-learn's), kaiming (He).",
    "ensemble": "Networks trained at once, their probabilities averaged; 1 trains one network.",
    "temperature": "The logits are divided by it: fitted on held-out rows when calibrating.",
    "linear_weight": "Share of a linear model in the blended probabilities (0: networks only).",
    "lr": "Learning rate.",
    "momentum": "Momentum, for sgd and rmsprop.",
    "weight_decay": "L2 penalty (decoupled for adamw); tempers over-confident probabilities.",
    "epochs": "The most passes over the training rows.",
    "batch_size": "Rows per step (default: full batch up to 4096 rows, else 256).",
    "grad_clip": "Clip the gradients' global norm to this value (default: no clipping).",
    "validation_fraction": "Share of the training rows held out for validation.",
    "cross_fit": "Train each member of the ensemble on all folds but its own, which validates it.",
    "calibrate": "Fit a temperature on the held-out rows, so probabilities match frequencies.",
    "blend_linear": "Blend in a linear model where the held-out rows say it helps.",
    "patience": "Epochs without a better validation loss before stopping.",
    "min_delta": "Smallest decrease of the validation loss that counts as better.",
    "label_smoothing": "Label smoothing of the multiclass cross-entropy.",
    "seed": "Seed of the split, initialisation, shuffling and dropout.",
    "log_every": "A progress line every this many epochs (default: ten per run).",
    "optimizer": "adam, adamw, sgd or rmsprop.",
    "lr_schedule": "Learning-rate schedule: none, cosine, step or plateau.",
    "dtype": "float32, or float64 for exact arithmetic (slower).",
    "engine": "auto (the hand-written engine where it applies), autograd or stacked.",
    "scaling": "Numeric columns: standard (mean, deviation) or robust (median, IQR, soft clip).",
    "numeric_embedding": "Numeric columns also as piecewise-linear bins: auto, none, "
    "piecewise_linear.",
    "categorical_embedding": "Categories as learned vectors instead of one-hot: auto (columns "
    "with more than 50 frequent categories), none, learned (every categorical column).",
}

# a task's decision threshold (binary, multilabel): a probability strictly between 0 and 1
THRESHOLD = Interval(float, 0.0, 1.0, closed="neither")


def _check_declared(config: Any, table: Mapping[str, Constraint], extra: list[str]) -> None:
    """Every field of ``config`` in ``table`` checked; all problems (and ``extra``) at once."""
    problems = [
        message
        for name, constraint in table.items()
        if (message := problem(name, getattr(config, name), constraint)) is not None
    ]
    problems += extra
    if problems:
        raise ConfigError("; ".join(problems))


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
    ensemble: int = 1  # members of this architecture whose probabilities are averaged
    temperature: float = 1.0  # the logits are divided by it (calibration.fit_temperature)
    # share of `ensemble` linear models in the averaged probabilities (torchclf.training.blend)
    linear_weight: float = 0.0
    # the last len(category_counts) input features are category codes, each column's looked up
    # in a learned (count, embedding_dim) table before the first layer (nn.models.MLP)
    category_counts: tuple[int, ...] = ()
    embedding_dim: int = 8  # RealMLP's (pytabkit's embedding_size)

    def __post_init__(self) -> None:
        if isinstance(self.hidden, (int, str)) or not hasattr(self.hidden, "__iter__"):
            raise ConfigError(
                f"The 'hidden' parameter must be a sequence of layer sizes such as (64, 64), or () "
                f"for the linear model. Got {self.hidden!r} instead; for one layer write "
                f"({self.hidden!r},)."
            )
        object.__setattr__(self, "hidden", tuple(self.hidden))
        object.__setattr__(self, "category_counts", tuple(self.category_counts))
        sizes = [
            message
            for size in self.hidden
            if (message := problem("hidden", size, Interval(int, 1))) is not None
        ]
        sizes += [
            message
            for name, value in (
                *(("category_counts", count) for count in self.category_counts),
                ("embedding_dim", self.embedding_dim),
            )
            if (message := problem(name, value, Interval(int, 1))) is not None
        ]
        if len(self.category_counts) > self.in_features:
            sizes.append(
                f"category_counts names {len(self.category_counts)} code columns, more than "
                f"in_features={self.in_features}"
            )
        _check_declared(self, MODEL_CONSTRAINTS, sizes)

    @property
    def network_inputs(self) -> int:
        """The first Linear layer's inputs: the plain features, then each code's vector."""
        codes = len(self.category_counts)
        return self.in_features - codes + codes * self.embedding_dim

    def to_dict(self) -> dict[str, Any]:
        """Plain values for JSON."""
        return {
            **dataclasses.asdict(self),
            "hidden": list(self.hidden),
            "category_counts": list(self.category_counts),
        }

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
    cross_fit: bool = False  # an ensemble's members validated on their own folds (1/K each)
    calibrate: bool = True  # fit a temperature on the held-out rows after training
    blend_linear: bool = False  # blend in linear models, weighted on the held-out rows
    patience: int = 20  # epochs without improvement before early stopping
    min_delta: float = 0.0  # smallest decrease of the validation loss that counts
    class_weight: str | dict[str, float] | None = None  # None, "balanced" or {label: weight}
    label_smoothing: float = 0.0  # multiclass only
    seed: int = 42  # initialisation, splits, shuffling and dropout
    device: str = "auto"  # "auto", "cpu", "cuda", "cuda:1", "mps"
    log_every: int | None = None  # print a progress line every N epochs (None: 10 lines per run)
    standardize: bool = True  # scale features to zero mean, unit variance (fitted on train rows)
    scaling: str = "standard"  # one of SCALINGS: how standardize scales a numeric column
    numeric_embedding: str = "auto"  # one of NUMERIC_EMBEDDINGS (fit_parquet's streams: none)
    categorical_embedding: str = "auto"  # one of CATEGORICAL_EMBEDDINGS
    dtype: str = "float32"  # "float32", or "float64" for exact arithmetic (slower)
    engine: str = "auto"  # one of ENGINES
    compile: bool = False  # torch.compile the model for the autograd loop (long runs)

    FULL_BATCH_MAX = 4096  # ClassVar: data at most this large trains full batch by default

    def __post_init__(self) -> None:
        extra = []
        if self.early_stopping and self.validation_fraction == 0.0:
            extra.append(
                "early_stopping=True needs a validation split: set validation_fraction "
                "(for example 0.1)."
            )
        if isinstance(self.class_weight, str) and self.class_weight != "balanced":
            extra.append(
                f"The 'class_weight' parameter must be None, 'balanced' or a dict of "
                f"{{label: weight}}. Got {self.class_weight!r} instead."
            )
        _check_declared(self, TRAIN_CONSTRAINTS, extra)
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


_Config = TypeVar("_Config", ModelConfig, TrainConfig)


def config_from(cls: type[_Config], given: Mapping[str, Any], **resolved: Any) -> _Config:
    """``cls`` from a face's own keywords: each field's value as ``given``, or as ``resolved``.

    ``given`` maps a face's keyword names (``fit``'s, ``fit_parquet``'s) to the values it was
    called with, and may hold names that are no field; ``resolved`` are the fields the face
    worked out itself (an "auto" resolved for the data, a size read from it). So a field is
    copied from a face by its name, without a line of its own; one missing from both keeps its
    declared default.
    """
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{**{k: v for k, v in given.items() if k in names}, **resolved})


def _from_dict(cls: Any, values: Mapping[str, Any]) -> Any:
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - names)
    if unknown:
        raise ConfigError(
            f"Unknown {cls.__name__} keys {unknown}; expected some of {sorted(names)}"
        )
    return cls(**values)


@dataclass(frozen=True)
class CheckpointInterval:
    """How often a checkpoint is due: every ``epochs`` epochs, or every ``seconds`` seconds."""

    epochs: int | None = None
    seconds: float | None = None

    @classmethod
    def parse(cls, text: str | int | float) -> CheckpointInterval:
        """``"auto"`` (60 s), ``"20"`` (epochs) or ``"30s"`` / ``"5m"`` (time).

        Raises:
            ConfigError: for anything else.
        """
        value = str(text).strip().lower()
        if value == "auto":
            value = "60s"  # at most a minute of work lost, at a cost too small to measure
        units = {"s": 1.0, "m": 60.0, "h": 3600.0}
        try:
            if value[-1:] in units:
                seconds = float(value[:-1]) * units[value[-1]]
                if math.isfinite(seconds) and seconds >= 0:
                    return cls(seconds=seconds)
            elif int(value) >= 1:
                return cls(epochs=int(value))
        except ValueError:
            pass
        raise ConfigError(
            f"checkpoint_every must be auto, a number of epochs (20) or a time (30s, 5m), got "
            f"{text!r}"
        )


__all__ = [
    "MODEL_CONSTRAINTS",
    "PARAMETER_HELP",
    "THRESHOLD",
    "TRAIN_CONSTRAINTS",
    "CheckpointInterval",
    "ModelConfig",
    "TrainConfig",
    "check_choice",
    "config_from",
]
