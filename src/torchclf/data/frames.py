"""What a table is, cheaply: which paths are table files, and other libraries' tables as pandas.

It imports neither torch, pandas nor those libraries, so that the command line can check its
``--data`` before it loads them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")  # what read_table reads (".pq": Parquet too)


def is_table_path(source: str) -> bool:
    """True when ``source`` names a CSV or Parquet file (by its suffix)."""
    return Path(source).suffix.lower() in TABLE_SUFFIXES


# the table libraries whose frames, series and arrays torchclf reads as pandas ones: their
# to_pandas() keeps column names, missing values and categories (polars' needs pyarrow, which
# torchclf requires)
FOREIGN_TABLES = ("polars", "pyarrow")


def as_pandas(data: Any) -> Any:
    """A polars or pyarrow table, series or array as its pandas equivalent; else ``data`` as is.

    A polars LazyFrame is collected first. The columns keep their names, kinds (numbers, text,
    categories, booleans) and missing values, so a polars table trains the model a pandas one
    of the same values does.
    """
    if type(data).__module__.split(".")[0] not in FOREIGN_TABLES:
        return data
    if hasattr(data, "collect") and not hasattr(data, "to_pandas"):  # polars.LazyFrame
        data = data.collect()
    return data.to_pandas() if hasattr(data, "to_pandas") else data


__all__ = ["FOREIGN_TABLES", "TABLE_SUFFIXES", "as_pandas", "is_table_path"]
