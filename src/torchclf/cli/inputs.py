"""Turning command-line options into values: number lists, run folders, the rows to score."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, NamedTuple

import typer

TestSizeOption = Annotated[float, typer.Option(help="Share of the rows held out for testing.")]
OutOption = Annotated[Path, typer.Option(help="Folder that holds the run and results folders.")]
OverwriteOption = Annotated[
    bool, typer.Option("--overwrite", help="Replace an existing folder of the same name.")
]
QuietOption = Annotated[
    bool, typer.Option("--quiet", "-q", help="Print only the folder written (and any warning).")
]


def declared(name: str) -> Any:
    """An option whose help is parameter ``name``'s one declared line (torchclf.config)."""
    from torchclf import PARAMETER_HELP

    return typer.Option(help=PARAMETER_HELP[name])


# What fit's "auto" schedule means is said once, here, for every command that trains one model.
EpochsOption = Annotated[
    str,
    typer.Option(
        help="The most passes over the training rows; auto: 1000 for data that trains full "
        "batch, about 30,000 steps (at most 200 epochs) in mini-batches."
    ),
]
ValidationSizeOption = Annotated[
    str,
    typer.Option(
        help="Share of the training rows held out to choose the epoch (and a threshold rule); "
        "auto: 20%, at most 10,000 rows; 0: none, train the whole budget."
    ),
]
PatienceOption = Annotated[
    str,
    typer.Option(
        help="Epochs without a better validation loss before stopping; auto: a tenth of a "
        "full-batch budget, 10 in mini-batches."
    ),
]
SepOption = Annotated[
    str | None,
    typer.Option(
        help="CSV files: the column separator, such as ';' or tab (default: sniffed among , ; "
        "tab |)."
    ),
]
EncodingOption = Annotated[
    str | None,
    typer.Option(help="CSV files: the text encoding, such as latin-1 (default: utf-8)."),
]
DataOption = Annotated[
    str,
    typer.Option(
        "--data", "-d", help="A built-in dataset (see 'torchclf datasets') or a .csv/.parquet file."
    ),
]


def keywords_for(
    face: Callable[..., Any], options: Mapping[str, Any], **parsed: Any
) -> dict[str, Any]:
    """The keywords a command passes to ``face`` (``torchclf.fit``, ``fit_parquet``).

    ``options`` are the command's values as typed (its ``locals()``): each one named as one of
    ``face``'s keywords passes as it is, so an option has no line of its own here. ``parsed``
    are the values the command has turned from text (sizes, "auto" or a number) or renamed, and
    win. None (an option left unset, a --flag/--no-flag left alone) is left out, so ``face``
    keeps its default: wherever ``fit`` and ``fit_parquet`` take None, None is their default.
    """
    names = inspect.signature(face).parameters
    given = {k: v for k, v in options.items() if k in names} | parsed
    return {k: v for k, v in given.items() if v is not None}


def parse_numbers(text: str, option: str, kind: type, example: str) -> tuple[Any, ...]:
    """Comma-separated numbers of ``kind``; anything else is a BadParameter naming ``option``.

    An empty item (``10,,10`` or a trailing comma) is refused rather than skipped: it is more
    likely a typo for a missing number than a wish for fewer.
    """
    parts = [part.strip() for part in text.split(",")]
    if "" in parts:
        raise typer.BadParameter(
            f"expected comma-separated numbers such as {example}, got {text!r}, which has an "
            "empty item; remove the extra comma or fill in the number",
            param_hint=option,
        )
    try:
        return tuple(kind(part) for part in parts)
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated numbers such as {example}, got {text!r}", param_hint=option
        ) from None


def parse_auto(text: str, option: str, kind: type, example: str) -> Any:
    """``auto``, or one number of ``kind``; else a BadParameter.

    Its range is the parameter's declaration's to check (torchclf.config), not the option's.
    """
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return kind(text)
    except ValueError:
        raise typer.BadParameter(
            f"expected auto or a number such as {example}, got {text!r}", param_hint=option
        ) from None


def split_names(text: str | None) -> tuple[str, ...]:
    """Comma-separated column names (none for None or empty text)."""
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def parse_threshold(text: str | None) -> float | str | list[float] | None:
    """A number, one number per label, or a rule for train: "f1" or "recall:R"."""
    if text is None or text.strip() in ("f1",) or text.strip().startswith("recall:"):
        return text.strip() if text else None
    values = parse_numbers(text, "'--threshold'", float, "0.5, 0.3,0.6, f1 or recall:0.9")
    return values[0] if len(values) == 1 else list(values)


def check_data(data: str) -> None:
    """Refuse a ``--data`` that is neither a built-in dataset nor an existing table file.

    Before torch, pandas or scikit-learn are imported: a typo answers at once.
    """
    import difflib

    from torchclf import is_table_path
    from torchclf.datasets import list_datasets

    if is_table_path(data):
        if not Path(data).is_file():
            raise typer.BadParameter(
                f"data file '{data}' does not exist (or is not a file)", param_hint="'--data'"
            )
        return
    names = list_datasets()
    if data not in names:
        close = difflib.get_close_matches(data, names, n=1)
        raise typer.BadParameter(
            f"expected a built-in dataset ({', '.join(names)}) or a .csv/.parquet file, got "
            f"{data!r}" + (f"; did you mean {close[0]!r}?" if close else ""),
            param_hint="'--data'",
        )


def parse_separator(text: str | None) -> str | None:
    """``--sep``: one character; ``tab`` (or a backslash and a t) names the tab."""
    if text is None:
        return None
    sep = "\t" if text.lower() in ("tab", "\\t") else text
    if len(sep) != 1:
        raise typer.BadParameter(
            f"expected one character, such as ';' or tab, got {text!r}", param_hint="'--sep'"
        )
    return sep


def parse_hidden(text: str) -> tuple[int, ...] | str:
    """``--hidden``: "auto", "none" (the linear model) or comma-separated layer sizes."""
    if text.strip().lower() == "auto":
        return "auto"
    if text.strip().lower() in ("none", "linear", ""):
        return ()
    sizes = parse_numbers(text, "'--hidden'", int, "10,10 (or 'none' for the linear model)")
    if any(size < 1 for size in sizes):
        raise typer.BadParameter(
            f"layer sizes must be at least 1, got {text!r}", param_hint="'--hidden'"
        )
    return sizes


@contextmanager
def advice_in_options(*, grad_clip: bool) -> Iterator[None]:
    """Word a diverged run's advice in the command's options (``--lr``), not Python's ``lr=``.

    ``grad_clip`` says whether the command has ``--grad-clip`` to suggest.
    """
    from torchclf import TrainingDiverged, TrainingError

    try:
        yield
    except TrainingDiverged as error:
        advice = error.advice(lr="--lr {}", grad_clip="--grad-clip {}" if grad_clip else None)
        raise TrainingError(advice) from None


def resolve_model_path(model: Path) -> Path:
    """A model file, or a run folder holding ``model.safetensors``."""
    return model / "model.safetensors" if model.is_dir() else model


def onnx_path(model: Path) -> Path:
    """Where a model's ONNX export goes by default: beside it, ``model.onnx``."""
    return resolve_model_path(model).with_suffix(".onnx")


def check_folder_option(folder: Path, option: str = "'--out'") -> None:
    """Refuse a folder option naming a file, or inside one, before any work is done."""
    for path in (folder, *folder.parents):
        if path.exists():
            if not path.is_dir():
                inside = "" if path == folder else f" (inside '{path}')"
                raise typer.BadParameter(
                    f"expected a folder, got '{folder}'{inside}, which is a file; name a folder, "
                    "new or existing",
                    param_hint=option,
                )
            return


def run_folder(out: Path, name: str | None, data: str, overwrite: bool) -> Path:
    """``out/name``, refusing a taken name unless overwriting; by default ``out/data[-N]``."""
    check_folder_option(out)
    if name is not None:
        folder = out / name
        if folder.exists() and not overwrite:
            raise typer.BadParameter(
                f"run folder '{folder}' already exists; choose another --name or pass --overwrite",
                param_hint="'--name'",
            )
        return folder
    folder, number = out / data, 1
    while folder.exists():  # runs/circles, runs/circles-2, runs/circles-3, ...
        number += 1
        folder = out / f"{data}-{number}"
    return folder


def typed_arguments(context: typer.Context, leave_out: Collection[str] = ()) -> list[str]:
    """The options typed on the command line (or set in the environment), as arguments again.

    For the same command run anew (``train --nproc`` starts itself under torchrun): options
    left at their defaults stay out, as a resumed run requires.
    """
    arguments: list[str] = []
    for parameter in context.command.params:
        name = parameter.name
        if name is None or name in leave_out or name == "help":
            continue
        source = getattr(context.get_parameter_source(name), "name", None)
        if source not in ("COMMANDLINE", "ENVIRONMENT"):
            continue
        value = context.params.get(name)
        if getattr(parameter, "is_flag", False):
            negative = getattr(parameter, "secondary_opts", [])
            arguments += [parameter.opts[0]] if value else negative[:1]
        elif value is not None:
            arguments += [parameter.opts[0], str(value)]
    return arguments


def command_line(context: typer.Context) -> str:
    """The effective command, every option spelled out, for the run report."""
    parts = ["torchclf", context.info_name or ""]
    for parameter in context.command.params:
        value = context.params.get(parameter.name)
        if parameter.name is None or value is None or parameter.name == "help":
            continue
        flag = parameter.opts[0]
        if getattr(parameter, "is_flag", False):
            if value:
                parts.append(flag)
        else:
            parts.extend([flag, str(value)])
    return " ".join(parts)


class Rows(NamedTuple):
    """Rows to evaluate or predict, and where they come from."""

    description: str  # for titles: the data and which of its rows
    X: Any
    y: Any  # their true labels; None for a file's raw rows, whose target is not needed
    ids: tuple[str, Any] | None  # how to find each row again (row_ids): a name and the values
    source: str  # the data's name: a built-in dataset or a file


def rows_to_score(
    classifier: Any,
    data: str | None,
    split: str | None,
    *,
    need_target: bool = True,
    sep: str | None = None,
    encoding: str | None = None,
) -> Rows:
    """The rows to evaluate or predict; their ``y`` is None when not needed.

    ``sep`` and ``encoding`` read a CSV file other than the model's own training data.
    """
    import numpy as np

    from torchclf import DataSource, is_table_path, read_table, row_ids

    trained_on = DataSource.from_dict(classifier.data_source) if classifier.data_source else None
    if data is None:
        if trained_on is None:
            raise typer.BadParameter(
                "this model does not record its training data; name the data with --data",
                param_hint="'--data'",
            )
        data = trained_on.name
    own_data = trained_on is not None and trained_on.name == data
    split = split or ("test" if own_data else "all")
    if split not in ("test", "all"):
        raise typer.BadParameter(f"expected 'test' or 'all', got {split!r}", param_hint="'--split'")
    if split == "test":
        if not own_data:
            trained = trained_on.name if trained_on else "unknown"
            raise typer.BadParameter(
                f"--split test needs the model's own training data ({trained!r}); for {data!r} "
                "use --split all",
                param_hint="'--split'",
            )
        rows = trained_on.split()  # type: ignore[union-attr]
        description = f"{data}, test split ({len(rows.X_test)} rows)"
        ids = row_ids(rows.X_test, rows.test_rows)
        return Rows(description, rows.X_test, rows.y_test, ids, data)
    if is_table_path(data) and not own_data and not need_target:
        # raw rows: the model picks its columns and reports the rest
        frame = read_table(data, sep=sep, encoding=encoding)
        ids = row_ids(frame, np.arange(len(frame)))
        return Rows(f"{data}, all {len(frame)} rows", frame, None, ids, data)
    if own_data:
        source = trained_on
    elif is_table_path(data):
        if trained_on is None or not trained_on.target:
            raise typer.BadParameter(
                "this model does not record its target column, so it cannot score a file",
                param_hint="'--data'",
            )
        source = DataSource(name=data, target=trained_on.target, sep=sep, encoding=encoding)
    else:
        source = DataSource(name=data, sep=sep, encoding=encoding)
    loaded = source.load()  # type: ignore[union-attr]
    ids = row_ids(loaded.X, np.arange(len(loaded)))
    return Rows(f"{data}, all {len(loaded)} rows", loaded.X, loaded.y, ids, data)


def id_column_values(
    classifier: Any, rows: Rows, column: str, sep: str | None, encoding: str | None
) -> tuple[str, Any]:
    """``--id-column``: that column's values for ``rows``, from their file as it was read.

    The column need not be a feature (ids are left out of them): the file is read again, and
    its rows taken by the labels they kept (a CSV file's lines, a Parquet file's positions).
    """
    from torchclf import DataSource, is_table_path, read_table

    if hasattr(rows.X, "columns") and column in rows.X.columns:
        return column, rows.X[column].to_numpy()
    if not is_table_path(rows.source):
        raise typer.BadParameter(
            f"the built-in dataset {rows.source!r} has no columns to name; --id-column names a "
            "column of a CSV or Parquet file",
            param_hint="'--id-column'",
        )
    own = DataSource.from_dict(classifier.data_source) if classifier.data_source else None
    if own is not None and own.name == rows.source:  # read as the run read it
        raw = read_table(rows.source, sep=own.sep, encoding=own.encoding)
    else:
        raw = read_table(rows.source, sep=sep, encoding=encoding)
    if column not in raw.columns:
        raise typer.BadParameter(
            f"'{rows.source}' has no column {column!r}; its columns are "
            f"{[str(c) for c in raw.columns]}",
            param_hint="'--id-column'",
        )
    return column, raw.loc[rows.X.index, column].to_numpy()


__all__ = [
    "Rows",
    "advice_in_options",
    "check_data",
    "check_folder_option",
    "command_line",
    "declared",
    "id_column_values",
    "onnx_path",
    "parse_auto",
    "parse_hidden",
    "parse_numbers",
    "parse_separator",
    "parse_threshold",
    "resolve_model_path",
    "rows_to_score",
    "run_folder",
    "split_names",
]
