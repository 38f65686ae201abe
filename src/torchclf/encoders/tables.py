"""Mixed tables: numbers imputed and standardized, categories one-hot; fitted on training rows.

Missing values get an indicator (numbers) or a category of their own; rare and unseen values
share an "other" slot. Numbers may instead be scaled robustly (:func:`robust_statistics`), and
also enter as piecewise-linear bins at the training quantiles (:func:`piecewise_linear`).
Categorical columns may instead enter as one code each, after every other feature, which the
network looks up in a learned table (``categorical_embedding``).
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from torch import Tensor

from torchclf.data.frames import as_pandas
from torchclf.encoders.base import Encoder, select_columns
from torchclf.errors import DataError, TorchclfWarning

MISSING = "__missing__"  # the category of missing values in a categorical column
OTHER = "__other__"  # the slot of rare training values and of values never seen in training
MAX_CATEGORIES = 50  # most frequent categories kept per column; the rest share the OTHER slot
MIN_FREQUENCY = 2  # a value seen fewer times in training goes to the OTHER slot
# a column with more frequent categories than MAX_CATEGORIES may instead enter as codes, each
# looking up a learned vector (categorical_embedding, nn.models.CategoryEmbeddings): its
# categories cost the network a table row each, not a one-hot input each, so more are kept
MAX_EMBEDDED_CATEGORIES = 10_000
MOSTLY_NUMBERS = 0.9  # a text column this share numbers is a numeric column with a typo
# Piecewise-linear encoding (Gorishniy et al., "On embeddings for numerical features", 2022):
# each numeric column with more distinct values than bins also gets this many features
PIECEWISE_BINS = 8
# ... and "auto" adds them where the training rows are at least this many per added feature:
# on the real-table suite they halve credit_card's log loss (22 rows a feature) and lower
# the larger tables' (diamonds 0.607 -> 0.589), and raise those of the tables with fewer rows
# a feature (digits 6, penguins 9, biopsy 15: docs/benchmarks.md)
MIN_ROWS_PER_PIECEWISE_FEATURE = 20


@dataclass
class NumericColumn:
    """A numeric column: median imputation, scaling, optional missing indicator.

    Encoded as ``z = (x - mean) / scale``, then, with ``clip`` > 0, smoothly squashed into
    ``(-clip, clip)``: ``z / sqrt(1 + (z / clip)^2)`` (see :func:`robust_statistics`).
    """

    name: str
    median: float
    mean: float  # the centre: the mean, or with robust scaling the median
    scale: float
    indicator: bool  # training had missing values: add a 0/1 "was missing" feature
    clip: float = 0.0  # bound of the smooth clip; 0: none
    # piecewise-linear bins' edges (b + 1,) at training quantiles; empty: no such features
    edges: list[float] = field(default_factory=list)

    @property
    def width(self) -> int:
        return 1 + self.indicator + piecewise_width(self.edges)


@dataclass
class CategoricalColumn:
    """A categorical column: one-hot over ``categories`` plus the OTHER slot.

    ``embedded``: instead one feature, the slot's index (the OTHER slot last), which the network
    looks up in a learned table of ``len(categories) + 1`` rows.
    """

    name: str
    categories: list[str]
    embedded: bool = False
    mode: str | None = None  # the most frequent category in training (None: older files)

    @property
    def slots(self) -> int:
        return len(self.categories) + 1

    @property
    def width(self) -> int:
        return 1 if self.embedded else self.slots


class TableEncoder(Encoder):
    """Mixed pandas columns -> numbers; see the module docstring."""

    kind = "table"

    def __init__(
        self, columns: list[NumericColumn | CategoricalColumn], dtype: Any = "float32"
    ) -> None:
        self.columns = columns
        self.dtype = np.dtype(dtype)

    @classmethod
    def fit(
        cls,
        frame: Any,
        *,
        categorical: Sequence[str] = (),
        standardize: bool = True,
        scaling: str = "standard",
        numeric_embedding: str = "none",
        categorical_embedding: str = "none",
        dtype: Any = "float32",
    ) -> TableEncoder:
        """Infer each column's kind and learn its statistics from the training rows ``frame``.

        ``scaling``: "standard" (mean and standard deviation) or "robust" (median and
        interquartile range, then a smooth clip; :func:`robust_statistics`).
        ``numeric_embedding``: "piecewise_linear" adds :func:`piecewise_linear` features to
        each numeric column with enough distinct values, "auto" where the rows allow it
        (:func:`choose_edges`), "none" never.
        ``categorical_embedding``: "learned" codes every categorical column for a learned
        embedding, "auto" those with more than :data:`MAX_CATEGORIES` frequent categories (which
        one-hot would lump into the OTHER slot), "none" none.

        Raises:
            DataError: for a mostly-numeric text column holding a non-number (the first is
                named), or a ``categorical`` name that is not a column.
        """
        unknown = sorted(set(categorical) - {str(c) for c in frame.columns})
        if unknown:
            raise DataError(
                f"categorical names columns {unknown} that are not among the features "
                f"{[str(c) for c in frame.columns]}"
            )
        columns: list[NumericColumn | CategoricalColumn] = []
        numeric: list[tuple[NumericColumn, Any]] = []  # with their numbers
        for name in frame.columns:
            series = frame[name]
            if str(name) in categorical or _is_categorical(series, str(name)):
                columns.append(_fit_categorical(str(name), series, categorical_embedding))
            else:
                numbers = _as_numbers(series, str(name))
                _check_range(str(name), numbers, np.dtype(dtype))
                columns.append(_fit_numeric(str(name), numbers, standardize, scaling))
                numeric.append((columns[-1], numbers))  # type: ignore[arg-type]
        if numeric_embedding != "none":
            observed = [numbers.dropna().to_numpy() for _, numbers in numeric]
            edges = choose_edges(observed, len(frame), numeric_embedding)
            for (column, _), column_edges in zip(numeric, edges, strict=True):
                column.edges = column_edges
        return cls(columns, dtype)

    @property
    def input_names(self) -> list[str]:
        return [c.name for c in self.columns]

    @property
    def n_inputs(self) -> int:
        return len(self.columns)

    @property
    def n_outputs(self) -> int:
        return sum(c.width for c in self.columns)

    def probe(self) -> Any:
        """Two rows: each column's median or first category, then every value missing."""
        import pandas as pd

        first = {
            c.name: c.median if isinstance(c, NumericColumn) else next(iter(c.categories), "")
            for c in self.columns
        }
        return pd.DataFrame([first, dict.fromkeys(first)])

    def baseline(self) -> Any:
        """One row: each numeric column's training median, each categorical one's mode."""
        import pandas as pd

        row = {
            c.name: c.median
            if isinstance(c, NumericColumn)
            else (c.mode if c.mode is not None else next(iter(c.categories), ""))
            for c in self.columns
        }
        return pd.DataFrame([row])

    def describe(self) -> str:
        numeric = [c for c in self.columns if isinstance(c, NumericColumn)]
        categorical = len(self.columns) - len(numeric)
        scaled = "robustly scaled" if any(c.clip for c in numeric) else "standardized"
        text = describe_numbers([c.edges for c in numeric], scaled)
        embedded = len(self._embedded())
        one_hot = categorical - embedded
        if one_hot:
            text += f"; {_count(one_hot, 'categorical column')} one-hot"
        if embedded:
            text += f"; {_count(embedded, 'categorical column')} as learned vectors"
        return text

    def _embedded(self) -> list[CategoricalColumn]:
        """The columns that enter as codes, in the order of their features (the last ones)."""
        return [c for c in self.columns if isinstance(c, CategoricalColumn) and c.embedded]

    def embedded_columns(self) -> np.ndarray:
        flags = []
        for column in self.columns:
            if isinstance(column, CategoricalColumn):
                flags += [False] * (0 if column.embedded else column.width)
                continue
            bins = piecewise_width(column.edges)
            flags += [False] * (column.width - bins) + [True] * bins
        return np.array(flags + [True] * len(self._embedded()), dtype=bool)

    def category_counts(self) -> tuple[int, ...]:
        return tuple(column.slots for column in self._embedded())

    def column_features(self) -> list[tuple[str, list[int]]]:
        embedded = [isinstance(c, CategoricalColumn) and c.embedded for c in self.columns]
        blocks = sum(c.width for c, e in zip(self.columns, embedded, strict=True) if not e)
        start, codes, features = 0, 0, []
        for column, is_code in zip(self.columns, embedded, strict=True):
            if is_code:
                features.append((column.name, [blocks + codes]))  # the codes come last
                codes += 1
                continue
            features.append((column.name, list(range(start, start + column.width))))
            start += column.width
        return features

    def kinds(self) -> dict[str, list[str]]:
        """Column names by kind, for data summaries."""
        return {
            "numeric": [c.name for c in self.columns if isinstance(c, NumericColumn)],
            "categorical": [c.name for c in self.columns if isinstance(c, CategoricalColumn)],
        }

    def transform(self, X: Any, *, warn: bool = True) -> np.ndarray:
        import pandas as pd

        X = as_pandas(X)
        if not hasattr(X, "columns"):  # an array with the training columns in order
            array = np.asarray(X)
            if array.ndim != 2 or array.shape[1] != self.n_inputs:
                raise DataError(
                    f"X must be a DataFrame with the columns {self.input_names}, or an array "
                    f"of {self.n_inputs} columns in that order; got shape {array.shape}"
                )
            X = pd.DataFrame(array, columns=self.input_names)
        frame = select_columns(X, self.input_names, warn)
        # the codes of embedded columns go last, where the network reads them
        blocks: list[np.ndarray] = []
        codes: list[np.ndarray] = []
        for column in self.columns:
            series = frame[column.name]
            if isinstance(column, NumericColumn):
                blocks.extend(_encode_numeric(column, series, self.dtype))
            else:
                encoded = _encode_categorical(column, series, warn, self.dtype)
                (codes if column.embedded else blocks).append(encoded)
        blocks += codes
        return np.ascontiguousarray(np.column_stack(blocks), dtype=self.dtype)

    def to_state(self) -> tuple[dict[str, Any], dict[str, Tensor]]:
        described = [
            {"kind": "numeric" if isinstance(c, NumericColumn) else "categorical", **asdict(c)}
            for c in self.columns
        ]
        return {"kind": self.kind, "columns": described, "dtype": str(self.dtype)}, {}


def _is_categorical(series: Any, name: str) -> bool:
    import pandas as pd

    if isinstance(series.dtype, pd.CategoricalDtype):  # declared categorical, even of numbers
        return True
    kind = series.dtype.kind
    if kind == "b":
        return True
    if kind in "iuf":
        return False
    values = series.dropna()
    if len(values) == 0:
        return False
    if values.map(lambda v: isinstance(v, bool)).all():
        return True
    numbers = _to_numeric(values)
    share = float(numbers.notna().mean())
    if share == 1.0:
        return False
    if share >= MOSTLY_NUMBERS:
        _raise_not_a_number(name, values, numbers, "looks numeric")
    return True


def _to_numeric(values: Any) -> Any:
    import pandas as pd

    return pd.to_numeric(values, errors="coerce")


def _raise_not_a_number(name: str, values: Any, numbers: Any, reason: str) -> None:
    bad = values[numbers.isna()]
    raise DataError(
        f"column {name!r} {reason} but holds {bad.iloc[0]!r} at {row_label(bad.index, 0)}; "
        "fix that value, or list the column as categorical"
    )


def row_label(index: Any, position: int) -> str:
    """Where a row is, for messages: a file's line number, or a frame's index label."""
    if index.name == "line":
        return f"line {index[position]}"
    return f"row {index[position]!r}"


def _as_numbers(series: Any, name: str, reason: str = "looks numeric") -> Any:
    """A column as float64 values with NaN for missing; text that is not a number is an error."""
    numbers = _to_numeric(series)
    not_numbers = series.notna() & numbers.isna()
    if not_numbers.any():
        _raise_not_a_number(name, series[series.notna()], numbers[series.notna()], reason)
    return numbers.astype(np.float64)


def _check_range(name: str, numbers: Any, dtype: np.dtype) -> None:
    """Refuse infinite values, and values that ``dtype`` cannot hold; NaN (missing) is fine.

    Either would turn the column's statistics, and then the loss, into inf or NaN, and the error
    would surface far away, as a diverged loss blamed on the learning rate.
    """
    limit = float(np.finfo(dtype).max)
    values = numbers.to_numpy()
    with np.errstate(invalid="ignore"):
        bad = np.abs(values) > limit  # NaN compares False; inf is beyond any limit
    if bad.any():
        first, count = int(np.flatnonzero(bad)[0]), int(bad.sum())
        raise DataError(
            f"column {name!r} holds {values[first]:g} at {row_label(numbers.index, first)} "
            f"({count} of its values {'is' if count == 1 else 'are'} infinite or beyond "
            f"{dtype.name}'s ±{limit:.3g}): fix or remove such values, or empty those cells to "
            "have them imputed"
        )


# RealMLP's smooth clip (Holzmüller et al., "Better by default", 2024): robustly scaled values
# are squashed into (-3, 3), nearly unchanged within about one unit of the median
SMOOTH_CLIP = 3.0


def smooth_clip(values: np.ndarray, bound: float) -> np.ndarray:
    """``z / sqrt(1 + (z / bound)^2)``, in place: into ``(-bound, bound)``, smoothly."""
    values /= np.sqrt(1 + (values / values.dtype.type(bound)) ** 2)
    return values


def robust_statistics(values: np.ndarray, weights: np.ndarray | None = None) -> tuple[float, float]:
    """The centre and scale of robust scaling: the median, and the interquartile range.

    Heavy tails and outliers move neither. A column whose middle half is one value (mostly
    zeros, say) is scaled by half its range instead, and a constant one is only centred.
    ``weights`` (sample weights) weigh the quantiles.
    """
    if weights is None:
        low, median, high = np.quantile(values, [0.25, 0.5, 0.75])
    else:
        quantiles = np.quantile(values, [0.25, 0.5, 0.75], weights=weights, method="inverted_cdf")
        low, median, high = quantiles
    spread = high - low
    if spread <= 1e-12:
        spread = (values.max() - values.min()) / 2
    return float(median), float(spread) if spread > 1e-12 else 1.0


def _count(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def describe_numbers(edges: Sequence[Sequence[float]], scaled: str) -> str:
    """What happens to numeric columns with these bins' ``edges`` (for ``describe``)."""
    text = f"{_count(len(edges), 'numeric column')} {scaled}"
    binned = sum(bool(e) for e in edges)
    return text + (f", {binned} of them also as piecewise-linear bins" if binned else "")


def piecewise_width(edges: Sequence[float]) -> int:
    """How many piecewise-linear features a column's ``edges`` give: one per bin."""
    return max(len(edges) - 1, 0)


def piecewise_edges(values: np.ndarray, bins: int = PIECEWISE_BINS) -> list[float]:
    """Bin edges ``(<= bins + 1,)`` at the training values' quantiles; [] if too few values."""
    if len(np.unique(values)) <= bins:  # few distinct values: a number, or one-hot's business
        return []
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, bins + 1)))
    return edges.tolist() if len(edges) >= 3 else []


def piecewise_linear(values: np.ndarray, edges: Sequence[float]) -> np.ndarray:
    """Values ``(n,)`` as ``(n, len(edges) - 1)`` piecewise-linear features.

    Bin ``t`` reads 0 left of its interval, 1 right of it and rises linearly inside it, so the
    network sees where a value sits among the training quantiles as well as the value. The
    first bin is open to the left and the last to the right: values beyond the training range
    keep moving, as a standardized value does.
    """
    bounds = np.asarray(edges, dtype=values.dtype)
    low, high = bounds[:-1], bounds[1:]  # (b,)
    features = (values[:, None] - low) / (high - low)  # (n, b)
    features[:, 1:] = np.maximum(features[:, 1:], 0)
    features[:, :-1] = np.minimum(features[:, :-1], 1)
    return features


def choose_edges(columns: Sequence[np.ndarray], n_rows: int, mode: str) -> list[list[float]]:
    """Each numeric column's piecewise-linear edges, from its training values.

    ``mode`` is "piecewise_linear", "none" or "auto", which embeds where the ``n_rows``
    training rows are at least :data:`MIN_ROWS_PER_PIECEWISE_FEATURE` per added feature, and
    nowhere otherwise.
    """
    if mode == "none":
        return [[] for _ in columns]
    edges = [piecewise_edges(values) for values in columns]
    added = sum(piecewise_width(e) for e in edges)
    if mode == "auto" and added and n_rows / added < MIN_ROWS_PER_PIECEWISE_FEATURE:
        return [[] for _ in columns]
    return edges


def _fit_numeric(name: str, numbers: Any, standardize: bool, scaling: str) -> NumericColumn:
    observed = numbers.dropna()
    median = float(observed.median()) if len(observed) else 0.0
    filled = numbers.fillna(median).to_numpy()
    indicator = bool(numbers.isna().any())
    if not standardize:
        return NumericColumn(name, median, 0.0, 1.0, indicator)
    if scaling == "robust":
        centre, spread = robust_statistics(filled)
        return NumericColumn(name, median, centre, spread, indicator, clip=SMOOTH_CLIP)
    mean, std = float(filled.mean()), float(filled.std())
    return NumericColumn(name, median, mean, std if std > 1e-12 else 1.0, indicator)


def _encode_numeric(column: NumericColumn, series: Any, dtype: np.dtype) -> list[np.ndarray]:
    numbers = _as_numbers(series, column.name, reason="was numeric in training")
    _check_range(column.name, numbers, dtype)
    missing = numbers.isna().to_numpy()
    filled = numbers.fillna(column.median).to_numpy(dtype=dtype)
    scaled = (filled - dtype.type(column.mean)) / dtype.type(column.scale)
    if column.clip > 0:
        smooth_clip(scaled, column.clip)
    encoded = [scaled]
    if column.indicator:
        encoded.append(missing.astype(dtype))
    if column.edges:
        encoded.append(piecewise_linear(filled, column.edges))
    return encoded


def _category_strings(series: Any) -> np.ndarray:
    """Values as category names: 3, 3.0 and "3" are all "3"; missing values are MISSING."""

    def name(value: Any) -> str:
        if value is None or (isinstance(value, float) and np.isnan(value)):
            return MISSING
        if isinstance(value, (float, np.floating)) and float(value).is_integer():
            return str(int(value))
        return str(value)

    return np.array([name(v) for v in series.tolist()], dtype=object)


def _fit_categorical(name: str, series: Any, embedding: str) -> CategoricalColumn:
    """The column's most frequent categories, seen at least :data:`MIN_FREQUENCY` times."""
    values, counts = np.unique(_category_strings(series), return_counts=True)
    frequent = [(c, v) for v, c in zip(values, counts, strict=True) if c >= MIN_FREQUENCY]
    frequent.sort(key=lambda cv: (-cv[0], cv[1]))  # most frequent first; ties by name
    embedded = embedding == "learned" or (embedding == "auto" and len(frequent) > MAX_CATEGORIES)
    limit = MAX_EMBEDDED_CATEGORIES if embedded else MAX_CATEGORIES
    mode = frequent[0][1] if frequent else None
    return CategoricalColumn(name, sorted(v for _, v in frequent[:limit]), embedded, mode)


def _encode_categorical(
    column: CategoricalColumn, series: Any, warn: bool, dtype: np.dtype
) -> np.ndarray:
    strings = _category_strings(series)
    position = {category: i for i, category in enumerate(column.categories)}
    slots = np.array([position.get(s, len(column.categories)) for s in strings], dtype=np.int64)
    outside = slots == len(column.categories)
    if warn and outside.any():
        examples = sorted(set(strings[outside].tolist()))[:3]
        warnings.warn(
            f"column {column.name!r}: {int(outside.sum())} values outside its training "
            f"categories (e.g. {examples}) went to its 'other' slot",
            TorchclfWarning,
            stacklevel=4,
        )
    if column.embedded:  # the slot's index, exact in float32 below 2**24
        return slots.astype(dtype)
    one_hot = np.zeros((len(strings), column.width), dtype=dtype)
    one_hot[np.arange(len(strings)), slots] = 1.0
    return one_hot


__all__ = [
    "MAX_CATEGORIES",
    "MAX_EMBEDDED_CATEGORIES",
    "MIN_FREQUENCY",
    "MISSING",
    "OTHER",
    "CategoricalColumn",
    "NumericColumn",
    "TableEncoder",
    "row_label",
]
