"""Where a run's data came from, recorded so that its exact split can be rebuilt later.

A :class:`DataSource` names a built-in dataset or a CSV/Parquet file (with its target and column
choices) and how it was split. ``torchclf train`` stores it in the model file; ``torchclf
evaluate`` and ``torchclf predict`` rebuild the same test rows from it, so they reproduce the
training run's metrics and probabilities exactly.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from torchclf.data.arrays import take_rows
from torchclf.data.frames import is_table_path
from torchclf.data.splits import Split, split_indices
from torchclf.data.tabular import (
    class_balance,
    missing_counts,
    prepare_table,
    read_table,
)
from torchclf.errors import ConfigError, DataError


@dataclass
class LoadedData:
    """Features and targets of a data source, and what loading them did."""

    X: Any  # (n, d) float32 array (built-in data) or a DataFrame of raw columns (files)
    y: Any  # labels (n,), label lists, or a 0/1 indicator matrix (n, L)
    feature_names: list[str]
    label_names: list[str] | None  # multilabel label names, in column order
    report: dict[str, Any] = field(default_factory=dict)  # rows, dropped rows, missing values...

    def __len__(self) -> int:
        return len(self.X)

    def summary(self, split: Split) -> dict[str, Any]:
        """The data at a glance, for the CLI and the run report."""
        missing = missing_counts(self.X) if hasattr(self.X, "isna") else {}
        return {
            **self.report,
            "features": len(self.feature_names),
            "feature names": ", ".join(self.feature_names[:12])
            + (" ..." if len(self.feature_names) > 12 else ""),
            "missing values": ", ".join(f"{k} {v}" for k, v in missing.items()) or "none",
            "class balance": ", ".join(
                f"{k} {v}" for k, v in class_balance(self.y, self.label_names).items()
            ),
            "train rows": len(split.X_train),
            "test rows": len(split.X_test),
        }


@dataclass(frozen=True)
class DataSource:
    """A built-in dataset or a CSV/Parquet file, its column choices, and how it was split."""

    name: str  # a built-in dataset (torchclf.datasets.list_datasets()) or a .csv/.parquet path
    params: dict[str, Any] = field(default_factory=dict)  # a built-in generator's arguments
    target: tuple[str, ...] = ()  # files: the target column, or several 0/1 label columns
    features: tuple[str, ...] | None = None  # files: the feature columns (default: all others)
    drop: tuple[str, ...] = ()  # files: columns to leave out
    test_size: float = 0.2  # share of the rows in the test split
    seed: int = 42  # the split's seed
    stratify: bool = True  # keep class proportions in both parts
    sep: str | None = None  # CSV files: the column separator (default: sniffed, read_table)
    encoding: str | None = None  # CSV files: the text encoding (default: UTF-8)

    def __post_init__(self) -> None:
        if not is_table_path(self.name) and (self.target or self.features or self.drop):
            raise ConfigError(
                f"--target, --features and --drop apply to CSV and Parquet files; the built-in "
                f"dataset {self.name!r} has its own target and features"
            )
        if not is_table_path(self.name) and (self.sep or self.encoding):
            raise ConfigError(
                f"--sep and --encoding apply to CSV files; the built-in dataset {self.name!r} "
                "is not read from one"
            )

    @property
    def is_file(self) -> bool:
        """True for a CSV or Parquet file."""
        return is_table_path(self.name)

    def load(self) -> LoadedData:
        """Read the data (a built-in dataset's named labels, or a file's chosen columns)."""
        if not self.is_file:
            from torchclf.data.datasets import load

            dataset = load(self.name, **self.params)
            return LoadedData(
                dataset.X,
                dataset.labels,
                list(dataset.feature_names),
                list(dataset.class_names) if dataset.y.ndim == 2 else None,  # label columns
                {"dataset": self.name, "description": dataset.description, "rows": len(dataset)},
            )
        table = prepare_table(
            read_table(self.name, sep=self.sep, encoding=self.encoding),
            self.target,
            features=self.features,
            drop=self.drop,
            source=f"'{self.name}'",
        )
        report = {"file": self.name, "target": ", ".join(table.target), **table.report}
        return LoadedData(
            table.features, table.y, list(table.features.columns), table.label_names, report
        )

    def split(self, data: LoadedData | None = None) -> Split:
        """The train/test split, exactly as the run made it."""
        data = data if data is not None else self.load()
        strata = None
        if self.stratify:
            strata = (
                np.array(["|".join(sorted(map(str, labels))) for labels in data.y])
                if isinstance(data.y, list)
                else np.asarray(data.y)
            )
        try:
            train, test = split_indices(len(data), self.test_size, stratify=strata, seed=self.seed)
        except DataError:
            if strata is None or (strata.ndim == 1 and not isinstance(data.y, list)):
                raise
            # label combinations too rare to stratify multilabel targets: a plain random split
            train, test = split_indices(len(data), self.test_size, stratify=None, seed=self.seed)
        return Split(
            take_rows(data.X, train),
            take_rows(data.X, test),
            take_rows(data.y, train),
            take_rows(data.y, test),
            test_rows=test,
        )

    def to_dict(self) -> dict[str, Any]:
        """Plain values for the model file's metadata."""
        values = dataclasses.asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> DataSource:
        """Inverse of :meth:`to_dict`."""
        values = dict(values)
        for key in ("target", "drop"):
            values[key] = tuple(values.get(key) or ())
        if values.get("features") is not None:
            values["features"] = tuple(values["features"])
        return cls(**values)


__all__ = ["DataSource", "LoadedData"]
