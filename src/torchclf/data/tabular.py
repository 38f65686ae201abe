"""Reading tables: CSV and Parquet files and pandas frames into features and targets.

:func:`read_table` turns a file into a DataFrame with clear errors for missing, unreadable or
empty files and duplicated column names; a CSV file's separator is sniffed unless given, and
its encoding is UTF-8 unless given. :func:`prepare_table` picks the target column(s), drops
rows whose target is missing, selects the feature columns (leaving out id-like columns unless they
are asked for) and reports what it did. Turning the feature columns into numbers is the job of
:class:`torchclf.encoders.TableEncoder`, fitted later on the training rows only.
"""

from __future__ import annotations

import codecs
import csv
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pandas.api.types import (
    is_bool_dtype,
    is_integer_dtype,
    is_numeric_dtype,
    is_object_dtype,
    is_string_dtype,
)

from torchclf.constraints import did_you_mean
from torchclf.data.frames import TABLE_SUFFIXES
from torchclf.errors import DataError

LABEL_SEPARATOR = "|"  # one target column of "x|y" strings is multilabel
ID_MIN_ROWS = 20  # below this many rows, a column of unique values is not called an id
CSV_SEPARATORS = (",", ";", "\t", "|")  # what read_table's sniffing chooses among
SNIFF_LINES = 50  # the lines of a CSV file that decide its separator


def read_table(
    path: str | os.PathLike[str], *, sep: str | None = None, encoding: str | None = None
) -> pd.DataFrame:
    """Read a CSV or Parquet file into a DataFrame.

    A CSV file's separator ``sep`` is, unless given, the one of :data:`CSV_SEPARATORS` that
    splits its first lines into the most fields, as many on every line (comma when none does).
    Its ``encoding`` is UTF-8 (a byte-order mark allowed) unless given. With ";" as separator,
    a text column whose every value is a number written with a decimal comma ("1,5") is read
    as those numbers, as the spreadsheets that write such files mean it.

    Raises:
        DataError: if the file is missing, has another suffix, is not in its encoding, cannot
            be parsed, is empty, has no rows, or repeats a column name.
    """
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise DataError(
            f"'{path}': expected a .csv or .parquet file, got '{path.suffix or 'no suffix'}'"
        )
    if not path.is_file():
        raise DataError(f"data file '{path}' does not exist (or is not a file)")
    if path.stat().st_size == 0:
        raise DataError(f"data file '{path}' is empty: it has no header and no rows")
    if path.suffix.lower() == ".csv":
        encoding = _check_encoding(path, encoding or "utf-8-sig")
        sep = sep if sep is not None else _sniff_separator(path, encoding)
        names = _csv_header(path, sep, encoding)
        try:
            frame = pd.read_csv(path, sep=sep, encoding=encoding, skipinitialspace=True)
        except (pd.errors.ParserError, ValueError) as exc:
            raise DataError(f"data file '{path}' could not be read as CSV: {exc}") from exc
        if sep == ";":
            frame = _read_decimal_commas(frame)
    else:
        import pyarrow as pa
        import pyarrow.parquet as pq

        try:
            names = list(pq.read_schema(path).names)
            _check_unique(path, names)  # before reading: pyarrow cannot select repeated names
            frame = pq.read_table(path).to_pandas()
        except (pa.ArrowException, OSError) as exc:
            raise DataError(f"data file '{path}' could not be read as Parquet: {exc}") from exc
    _check_unique(path, names)
    if len(frame) == 0:
        raise DataError(f"data file '{path}' has a header but no rows")
    if path.suffix.lower() == ".csv":
        # Messages name rows by their line in the file: the header is line 1.
        frame.index = pd.RangeIndex(2, len(frame) + 2, name="line")
    return frame


def _csv_header(path: Path, sep: str, encoding: str) -> list[str]:
    # pandas renames a repeated column "a" to "a.1" silently: read the raw header to catch it.
    with open(path, newline="", encoding=encoding) as handle:
        return [name.strip() for name in next(csv.reader(handle, delimiter=sep), [])]


def _check_encoding(path: Path, encoding: str) -> str:
    """``encoding``, once the whole file decodes in it; else a DataError that says where."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(
            f"unknown encoding {encoding!r} for '{path}'; give one Python knows, such as "
            "utf-8, latin-1 or cp1252"
        ) from None
    data = path.read_bytes()
    try:
        data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        name = "UTF-8" if encoding == "utf-8-sig" else encoding
        raise DataError(
            f"data file '{path}' is not {name}: byte {data[exc.start : exc.start + 1]!r} on line "
            f"{line} is not a character in it; give the file's encoding, such as latin-1 or "
            "cp1252 (--encoding on the command line)"
        ) from None
    return encoding


def _sniff_separator(path: Path, encoding: str) -> str:
    """The separator that splits the first lines into the most fields, equally on each."""
    with open(path, newline="", encoding=encoding) as handle:
        lines = [line for _, line in zip(range(SNIFF_LINES), handle, strict=False) if line.strip()]
    best, most = ",", 1
    for candidate in CSV_SEPARATORS:
        counts = {len(row) for row in csv.reader(lines, delimiter=candidate)}
        if len(counts) == 1 and (fields := counts.pop()) > most:
            best, most = candidate, fields
    return best


def _read_decimal_commas(frame: pd.DataFrame) -> pd.DataFrame:
    """Text columns of numbers written with a decimal comma ("-1,5"), as those numbers."""
    for name in frame.columns:
        column = frame[name]
        if not (is_object_dtype(column) or is_string_dtype(column)) or is_numeric_dtype(column):
            continue
        values = column.dropna().astype(str).str.strip()
        written = values.str.fullmatch(r"[+-]?(\d+,\d*|\d*,\d+|\d+)")
        if len(values) and written.all() and values.str.contains(",").any():
            numbers = column.astype(str).str.strip().str.replace(",", ".", regex=False)
            frame[name] = pd.to_numeric(numbers.where(column.notna()), errors="raise")
    return frame


def _check_unique(path: Path, names: Sequence[str]) -> None:
    repeated = sorted({name for name in names if list(names).count(name) > 1})
    if repeated:
        raise DataError(
            f"data file '{path}' has duplicated column names {repeated}; rename them so that "
            "every column is unique"
        )


@dataclass
class Table:
    """Feature columns and targets taken from one frame, and what was done to get them."""

    features: pd.DataFrame  # the raw feature columns, rows with a target only
    y: Any  # labels (n,), label lists (n,), or a 0/1 indicator matrix (n, L)
    target: tuple[str, ...]  # the target column(s)
    label_names: list[str] | None = None  # multilabel indicator columns, in order
    report: dict[str, Any] = field(default_factory=dict)  # rows, dropped rows, id columns, ...


def prepare_table(
    frame: pd.DataFrame,
    target: Sequence[str],
    *,
    features: Sequence[str] | None = None,
    drop: Sequence[str] = (),
    source: str = "the data",
) -> Table:
    """Split ``frame`` into feature columns and targets.

    Args:
        frame: the raw table.
        target: one target column, or several 0/1 columns (multilabel).
        features: the feature columns to use (default: every other column but id-like ones).
        drop: columns to leave out.
        source: how to name the data in messages, e.g. the file path.

    Raises:
        DataError: for unknown column names, or when no row has a target.
    """
    columns = [str(c) for c in frame.columns]
    frame = frame.set_axis(columns, axis=1)
    target = list(target)
    if not target:
        raise DataError(f"name the target column of {source} (for example --target {columns[-1]})")
    for name in [*target, *(features or []), *drop]:
        if name not in columns:
            suggestion = did_you_mean(name, columns)
            hint = f".{suggestion}" if suggestion else ""
            raise DataError(f"column {name!r} is not in {source}; its columns are {columns}{hint}")

    delimited = len(target) == 1 and _is_delimited_labels(frame[target[0]])
    # In a column of delimited labels an empty cell is a row to which no label applies, a valid
    # target: only single-label and indicator targets can be missing.
    missing_target = (
        np.zeros(len(frame), dtype=bool) if delimited else frame[target].isna().any(axis=1)
    )
    missing_target = np.asarray(missing_target)
    kept = frame.loc[~missing_target]
    if len(kept) == 0:
        raise DataError(
            f"{source} has no rows left: all {len(frame)} rows miss the target {target}"
        )
    report: dict[str, Any] = {
        "rows": len(frame),
        "dropped (missing target)": int(missing_target.sum()),
    }

    if features is not None:
        chosen, id_like = list(features), []
    else:
        candidates = [c for c in columns if c not in target and c not in drop]
        id_like = [c for c in candidates if _looks_like_id(kept[c])]
        chosen = [c for c in candidates if c not in id_like]
    if not chosen:
        raise DataError(f"{source} has no feature columns besides the target {target}")
    report["id-like columns left out"] = id_like

    label_names = None
    if len(target) > 1:
        y = kept[target].to_numpy()
        label_names = target
    else:
        values = kept[target[0]]
        if delimited:
            y = [[] if pd.isna(v) else _split_labels(v) for v in values]
            report["rows with no label"] = sum(not labels for labels in y)
        else:
            y = values.to_numpy()
            classes = pd.unique(values)
            if len(classes) < 2:
                raise DataError(
                    f"target column {target[0]!r} of {source} has only one class "
                    f"({classes[0]!r}); a classifier needs at least two classes"
                )
    return Table(kept[chosen], y, tuple(target), label_names, report)


def _is_delimited_labels(values: pd.Series) -> bool:
    """A text column of ``"x|y"`` label sets: a multilabel target."""
    if is_numeric_dtype(values) or is_bool_dtype(values):
        return False
    present = values.dropna().astype(str)
    return bool(present.str.contains(LABEL_SEPARATOR, regex=False).any())


def _split_labels(value: Any) -> list[str]:
    return [part.strip() for part in str(value).split(LABEL_SEPARATOR) if part.strip()]


def _looks_like_id(column: pd.Series) -> bool:
    """A row number (dense distinct integers) or a text key: all values different.

    Checked only in tables of at least ``ID_MIN_ROWS`` rows; a numeric column that merely
    happens to have no repeats (ages in a small file) is not an id.
    """
    if len(column) < ID_MIN_ROWS or column.isna().any() or column.nunique() != len(column):
        return False
    if is_bool_dtype(column):
        return False
    if is_integer_dtype(column):
        # a row number or key, perhaps with gaps where rows were filtered out
        return bool(column.max() - column.min() + 1 <= 2 * len(column))
    if is_numeric_dtype(column):
        return False
    numbers = pd.to_numeric(column, errors="coerce")
    return bool(numbers.isna().mean() > 0.5)  # mostly text, not numbers with a typo


def missing_counts(frame: pd.DataFrame) -> dict[str, int]:
    """Missing values per column, only for columns that have some."""
    counts = frame.isna().sum()
    return {str(name): int(n) for name, n in counts.items() if n}


def class_balance(y: Any, label_names: Sequence[str] | None = None) -> dict[str, int]:
    """Rows per class (or per label, for multilabel targets)."""
    if isinstance(y, list):  # label lists
        counts: dict[str, int] = {}
        for labels in y:
            for label in labels:
                counts[str(label)] = counts.get(str(label), 0) + 1
        return dict(sorted(counts.items()))
    y = np.asarray(y)
    if y.ndim == 2:
        names = label_names or [str(i) for i in range(y.shape[1])]
        return {str(n): int(c) for n, c in zip(names, y.astype(float).sum(axis=0), strict=True)}
    values, tallies = np.unique(y.astype(str), return_counts=True)
    return {str(v): int(c) for v, c in zip(values, tallies, strict=True)}


__all__ = [
    "Table",
    "class_balance",
    "missing_counts",
    "prepare_table",
    "read_table",
]
