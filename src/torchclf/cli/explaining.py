"""``torchclf explain``: which columns drive a saved model's predictions, into its run folder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from torchclf.cli import app
from torchclf.cli.commands import SavedModelDataOption
from torchclf.cli.inputs import (
    EncodingOption,
    SepOption,
    check_data,
    parse_separator,
    resolve_model_path,
    rows_to_score,
)
from torchclf.cli.output import Column, examples, make_console, narrow_table

METRICS = ("log_loss", "accuracy", "roc_auc", "f1")


@app.command(
    epilog=examples(
        "torchclf explain runs/penguins           # on the rows it held out for validation",
        "torchclf explain runs/penguins --split test --metric accuracy",
        "torchclf explain runs/sales --data new_sales.csv --repeats 10",
    )
)
def explain(
    model: Annotated[
        Path, typer.Argument(help="A run folder, or a model file (written beside it).")
    ],
    data: SavedModelDataOption = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="On the model's own data: validation (the rows training held out; the default), "
            "test, or all. On --data: all."
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option(help="log_loss, accuracy, roc_auc or f1: what shuffling worsens.")
    ] = "log_loss",
    repeats: Annotated[int, typer.Option(min=1, help="Shuffles of each column.")] = 5,
    top: Annotated[int, typer.Option(min=0, help="Columns whose partial dependence is drawn.")] = 4,
    random_state: Annotated[
        int, typer.Option(help="Seed of the shuffles, as scikit-learn's random_state.")
    ] = 0,
    sep: SepOption = None,
    encoding: EncodingOption = None,
) -> None:
    """Rank the columns by permutation importance and draw how the top ones move predictions.

    Writes importance.csv, importance.png and dependence.png into the run folder, and the
    section "What drives the predictions" into its report.html. Importance is taken on rows
    the model did not train on: by default the validation rows training held out (or, when
    its networks were cross-fitted and none was held out from all, the test rows); partial
    dependence over the training rows.
    """
    if metric not in METRICS:
        raise typer.BadParameter(
            f"expected one of {', '.join(METRICS)}, got {metric!r}", param_hint="'--metric'"
        )
    if split not in (None, "validation", "test", "all"):
        raise typer.BadParameter(
            f"expected validation, test or all, got {split!r}", param_hint="'--split'"
        )
    if data is not None:
        check_data(data)  # a typo answers before torch loads
    import torchclf
    from torchclf.report import write_explanation

    model_path = resolve_model_path(model)
    classifier = torchclf.load(model_path)
    rows, X, y, background = _rows(classifier, data, split, sep, encoding)
    explanation = torchclf.explain(
        classifier, X, y, background=background, rows=rows, metric=metric, n_repeats=repeats,
        top=top, random_state=random_state,
    )  # fmt: skip
    written = write_explanation(model_path.parent, explanation)
    console = make_console()
    importance = explanation.importance
    table_rows = [
        [importance.columns[i], f"{importance.mean[i]:.4f}", f"{importance.std[i]:.4f}"]
        for i in importance.ranking()
    ]
    columns = [Column("column", figures=False), Column("importance"), Column("std")]
    console.print(f"rows: {rows}", soft_wrap=False)
    title = f"importance: {metric}, {repeats} repeats"
    console.print(narrow_table(console, title, columns, table_rows), soft_wrap=False)
    console.print(f"written: {', '.join(p.name for p in written)}", soft_wrap=False)
    console.print(f"run folder: {model_path.parent}")


def _rows(
    classifier: Any, data: str | None, split: str | None, sep: str | None, encoding: str | None
) -> tuple[str, Any, Any, Any]:
    """The rows to explain, in words, with their labels, and the rows to draw dependence over.

    The model's own data is read once: its split gives the rows and the training rows.
    """
    from torchclf import DataSource, held_out_rows

    own = classifier.data_source and (data is None or data == classifier.data_source["name"])
    if not own:
        description, X, y, _, _ = rows_to_score(
            classifier, data, split, sep=parse_separator(sep), encoding=encoding
        )
        return description, X, y, X
    source = DataSource.from_dict(classifier.data_source)
    loaded = source.load()
    trained = source.split(loaded)
    if split == "all":
        return f"{source.name}, all {len(loaded)} rows", loaded.X, loaded.y, trained.X_train
    held_out = None if split == "test" else held_out_rows(classifier, trained.y_train)
    if held_out is None:  # asked for, or no row was held out from every network
        description = f"{source.name}, test split ({len(trained.X_test)} rows)"
        if split is None or split == "validation":
            config = classifier.train_config
            crossed = config is not None and config.cross_fit
            why = "cross-fitted networks: no training row was held out from all"
            description += f"\n({why if crossed else 'training held out no validation rows'})"
        return description, trained.X_test, trained.y_test, trained.X_train
    X_train, y_train = trained.X_train, trained.y_train
    X = X_train.iloc[held_out] if hasattr(X_train, "iloc") else X_train[held_out]
    y = y_train.iloc[held_out] if hasattr(y_train, "iloc") else y_train[held_out]
    return f"{source.name}, the {len(held_out)} validation rows", X, y, X_train
