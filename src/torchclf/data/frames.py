"""Tables from other libraries, read as pandas ones; imports neither torch nor those libraries."""

from __future__ import annotations

from typing import Any

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


__all__ = ["FOREIGN_TABLES", "as_pandas"]
