"""The ``torchclf`` command line: a thin typer shell over the public API.

Every command is one function that calls the library; no training or model logic lives here.
Errors the user can fix (bad options, unknown datasets, missing or foreign model files, anything
raised as a ``TorchclfError``) print one line and exit with code 2, never a traceback.

Only typer and click are imported at start-up: torch and the rest of torchclf load inside the
commands, so ``torchclf --help`` and argument errors return at once.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from torchclf.errors import TorchclfError, TorchclfWarning

EXIT_USAGE = 2


def _base_named(name: str) -> type[Exception]:
    # typer >= 0.20 vendors click: find its ClickException / UsageError through a public class.
    return next(c for c in typer.BadParameter.__mro__ if c.__name__ == name)


_ClickException = _base_named("ClickException")
_UsageError = _base_named("UsageError")


class _OneLineErrors(TyperGroup):
    """Run the app, turning user errors into one ``Error: ...`` line and exit code 2."""

    def main(self, *args: Any, standalone_mode: bool = True, **kwargs: Any) -> Any:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("always", TorchclfWarning)
                warnings.showwarning = _show_warning
                code = super().main(*args, standalone_mode=False, **kwargs)
        except _ClickException as error:
            message = error.format_message()  # type: ignore[attr-defined]
            context = getattr(error, "ctx", None)
            if isinstance(error, _UsageError) and context is not None:
                message += f" (see '{context.command_path} --help')"
            _fail(message)
        except typer.Abort:
            _fail("aborted")
        except TorchclfError as error:
            _fail(str(error))
        if standalone_mode:
            sys.exit(code if isinstance(code, int) else 0)
        return code


def _show_warning(message: Any, category: type, *args: Any, **kwargs: Any) -> None:
    typer.echo(f"Warning: {message}", err=True)


def _fail(message: str) -> None:
    typer.echo(f"Error: {message}", err=True)
    sys.exit(EXIT_USAGE)


app = typer.Typer(
    cls=_OneLineErrors,
    help="Neural-network classification with PyTorch: train, evaluate, predict, inspect.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _console() -> Any:
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def _parse_numbers(text: str, option: str, kind: type, example: str) -> tuple[Any, ...]:
    try:
        return tuple(kind(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise typer.BadParameter(
            f"expected comma-separated numbers such as {example}, got {text!r}", param_hint=option
        ) from None


def _names(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def _parse_threshold(text: str | None) -> float | str | list[float] | None:
    """A number, one number per label, or a rule for train: "f1" or "recall:R"."""
    if text is None or text.strip() in ("f1",) or text.strip().startswith("recall:"):
        return text.strip() if text else None
    values = _parse_numbers(text, "'--threshold'", float, "0.5, 0.3,0.6, f1 or recall:0.9")
    return values[0] if len(values) == 1 else list(values)


def _parse_hidden(text: str) -> tuple[int, ...] | str:
    if text.strip().lower() == "auto":
        return "auto"
    if text.strip().lower() in ("none", "linear", ""):
        return ()
    sizes = _parse_numbers(text, "'--hidden'", int, "10,10 (or 'none' for the linear model)")
    if any(size < 1 for size in sizes):
        raise typer.BadParameter(
            f"layer sizes must be at least 1, got {text!r}", param_hint="'--hidden'"
        )
    return sizes


def _resolve_model_path(model: Path) -> Path:
    """A model file, or a run folder holding ``model.safetensors``."""
    return model / "model.safetensors" if model.is_dir() else model


def _run_folder(out: Path, name: str | None, data: str, overwrite: bool) -> Path:
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


def _command_line(context: typer.Context) -> str:
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


def _metrics_tables(console: Any, evaluation: Any, title: str) -> None:
    from rich.table import Table

    overall = Table(title=title, title_justify="left")
    overall.add_column("metric")
    overall.add_column("value", justify="right")
    for name, value in evaluation.scores.items():
        overall.add_row(name, f"{value:.4f}")
    console.print(overall)
    per_class = Table(title="per class", title_justify="left")
    for column in ("class", "precision", "recall", "f1", "support"):
        per_class.add_column(column, justify="left" if column == "class" else "right")
    for name, row in evaluation.per_class.items():
        per_class.add_row(
            name,
            f"{row['precision']:.4f}",
            f"{row['recall']:.4f}",
            f"{row['f1']:.4f}",
            str(int(row["support"])),
        )
    console.print(per_class)


class _EpochTable:
    """Progress bar plus a row of the tutorial's table every ``every`` epochs.

    Nothing is printed before the first epoch ends, so a parameter that ``fit`` rejects leaves
    only its one-line error on the screen.
    """

    def __init__(self, console: Any, epochs: int, every: int, heading: str) -> None:
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

        self.console, self.epochs, self.every, self.heading = console, epochs, every, heading
        self.progress = Progress(
            "[progress.description]{task.description}",
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
            transient=True,
        )
        self.task = self.progress.add_task("training", total=epochs)
        self.started = False

    def close(self) -> None:
        """Remove the progress bar (stopping one that never started would print a blank line)."""
        if self.started:
            self.progress.stop()

    def __call__(self, row: dict[str, float]) -> None:
        epoch = int(row["epoch"])
        splits = [s for s in ("train", "val", "test") if f"{s}_loss" in row]
        if epoch == 1:
            self.console.print(self.heading)
            header = "".join(f"{s + ' loss':>12}{s + ' acc':>11}" for s in splits)
            self.console.print(f"{'epoch':>6}{header}")
            self.progress.start()
            self.started = True
        if epoch == 1 or epoch % self.every == 0 or epoch == self.epochs:
            cells = "".join(
                f"{row[f'{s}_loss']:>12.5f}{100 * row[f'{s}_accuracy']:>10.2f}%" for s in splits
            )
            self.console.print(f"{epoch:>6}{cells}")
        self.progress.update(self.task, completed=epoch)


DataOption = Annotated[
    str,
    typer.Option(
        "--data", "-d", help="A built-in dataset (see 'torchclf datasets') or a .csv/.parquet file."
    ),
]


@app.command(
    epilog=(
        "Examples:\n\n"
        "  torchclf train    # the tutorial's ReLU model on circles\n\n"
        "  torchclf train --data moons --hidden 32,32 --epochs 500\n\n"
        "  torchclf train --data blobs --hidden none --name linear-blobs\n\n"
        "  torchclf train --data digits --hidden 64,64 --early-stopping --quiet"
    )
)
def train(
    context: typer.Context,
    data: DataOption = "circles",
    target: Annotated[
        str | None,
        typer.Option(help="Files: the target column, or several 0/1 label columns: a,b,c."),
    ] = None,
    features: Annotated[
        str | None, typer.Option(help="Files: the feature columns (default: all but the target).")
    ] = None,
    drop: Annotated[str | None, typer.Option(help="Files: columns to leave out.")] = None,
    categorical: Annotated[
        str | None, typer.Option(help="Files: numeric columns to one-hot encode as categories.")
    ] = None,
    task: Annotated[
        str, typer.Option(help="auto, binary, multiclass or multilabel (auto reads the targets).")
    ] = "auto",
    hidden: Annotated[
        str,
        typer.Option(
            help="Hidden layer sizes, comma-separated; 'none' is the linear model; 'auto' is two "
            "layers of width 2 x (inputs + outputs), between 10 and 128 (10,10 on circles)."
        ),
    ] = "auto",
    activation: Annotated[
        str, typer.Option(help="relu, leaky_relu, sigmoid, tanh, gelu or identity.")
    ] = "relu",
    dropout: Annotated[float, typer.Option(help="Dropout after each hidden layer.")] = 0.0,
    epochs: Annotated[int, typer.Option(help="Passes over the training rows.")] = 1000,
    lr: Annotated[float, typer.Option(help="Learning rate.")] = 0.003,
    optimizer: Annotated[str, typer.Option(help="adam, adamw, sgd or rmsprop.")] = "adam",
    batch_size: Annotated[
        int | None,
        typer.Option(help="Rows per step (default: full batch up to 4096 rows, else 256)."),
    ] = None,
    class_weight: Annotated[
        str, typer.Option(help="none, or balanced: weigh classes by their inverse frequency.")
    ] = "none",
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Binary: a decision threshold, or f1 / recall:0.9 to choose it on validation rows."
        ),
    ] = None,
    test_size: Annotated[float, typer.Option(help="Share of the rows held out for testing.")] = 0.2,
    seed: Annotated[
        int, typer.Option(help="Seed of the split, initialisation and shuffling.")
    ] = 42,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    early_stopping: Annotated[
        bool,
        typer.Option(
            "--early-stopping",
            help="Hold out 10% of the training rows; stop when their loss stalls.",
        ),
    ] = False,
    out: Annotated[Path, typer.Option(help="Folder that holds the run folders.")] = Path("runs"),
    name: Annotated[
        str | None,
        typer.Option(help="Run folder name (default: the dataset's name, numbered if taken)."),
    ] = None,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Replace an existing run folder.")
    ] = False,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", help="Print only the run folder.")
    ] = False,
) -> None:
    """Train a classifier, print its metrics and write a run folder with plots and a report.

    With no options it trains the tutorial's non-linear model (2-10-10-1, ReLU) on the circles
    data. The run folder holds model.safetensors, history.csv, metrics.json, test_predictions.csv,
    the pictures and report.html.
    """
    sizes = _parse_hidden(hidden)
    threshold_value = _parse_threshold(threshold)
    folder = _run_folder(out, name, Path(data).stem, overwrite)

    import torchclf
    from torchclf.report import write_run
    from torchclf.sources import DataSource

    console = _console()
    source = DataSource(
        name=data,
        target=_names(target),
        features=_names(features) or None,
        drop=_names(drop),
        test_size=test_size,
        seed=seed,
    )
    loaded = source.load()
    split = source.split(loaded)
    summary = loaded.summary(split)
    epoch_table = None
    if not quiet:
        epoch_table = _EpochTable(console, epochs, max(1, epochs // 10), _heading(data, summary))
    tunes_threshold = isinstance(threshold_value, str)
    try:
        classifier = torchclf.fit(
            split.X_train,
            split.y_train,
            task=task,
            hidden=sizes,
            activation=activation,
            dropout=dropout,
            epochs=epochs,
            lr=lr,
            optimizer=optimizer,
            batch_size=batch_size,
            early_stopping=early_stopping,
            validation_fraction=0.2 if early_stopping or tunes_threshold else 0.0,
            class_weight=None if class_weight == "none" else class_weight,
            threshold=0.5 if threshold_value is None else threshold_value,
            categorical=_names(categorical),
            label_names=loaded.label_names,
            feature_names=loaded.feature_names,
            seed=seed,
            device=device,
            eval_set=(split.X_test, split.y_test),
            on_epoch=epoch_table,
        )
    finally:
        if epoch_table is not None:
            epoch_table.close()
    classifier.data_source = source.to_dict()
    if hasattr(classifier.encoder, "kinds"):
        for kind, names in classifier.encoder.kinds().items():
            summary[f"{kind} columns"] = ", ".join(names) or "none"
    evaluation = classifier.evaluate(split.X_test, split.y_test)
    write_run(
        folder,
        classifier,
        split,
        evaluation,
        command=_command_line(context),
        data_summary=summary,
        overwrite=overwrite,
    )
    if not quiet:
        if hasattr(classifier.encoder, "kinds"):
            kinds = classifier.encoder.kinds()
            console.print(
                f"columns: numeric {', '.join(kinds['numeric']) or 'none'}; "
                f"categorical {', '.join(kinds['categorical']) or 'none'}"
            )
        if tunes_threshold:
            console.print(
                f"threshold chosen on the validation rows ({threshold}): "
                f"{classifier.task.to_dict()['threshold']:.4f}"
            )
        _metrics_tables(console, evaluation, "test metrics")
    console.print(f"run folder: {folder}")


def _heading(data: str, summary: dict[str, Any]) -> str:
    """The data in one or two lines, printed above the epoch table."""
    dropped = summary.get("dropped (missing target)", 0)
    lines = [
        f"[bold]{data}[/]: {summary['rows']} rows"
        + (f" ({dropped} without a target, dropped)" if dropped else "")
        + f", {summary['features']} features; classes: {summary['class balance']}; "
        f"train {summary['train rows']}, test {summary['test rows']}"
    ]
    if summary.get("id-like columns left out"):
        lines.append(f"left out as id-like: {', '.join(summary['id-like columns left out'])}")
    if summary["missing values"] != "none":
        lines.append(f"missing values: {summary['missing values']}")
    return "\n".join(lines)


ModelArgument = Annotated[
    Path, typer.Argument(help="A model file, or a run folder holding model.safetensors.")
]
SavedModelDataOption = Annotated[
    str | None,
    typer.Option(
        "--data",
        "-d",
        help="A built-in dataset or a .csv/.parquet file (default: the training data).",
    ),
]
SplitOption = Annotated[
    str | None,
    typer.Option(
        help="test: the model's own test rows (needs its training data); all: every row "
        "(default: test on the training data, all on other data)."
    ),
]


def _rows(
    classifier: Any, data: str | None, split: str | None, *, need_target: bool = True
) -> tuple[str, Any, Any]:
    """The rows to evaluate or predict: (description, X, y); y is None when not needed."""
    from torchclf.sources import DataSource
    from torchclf.tabular import is_table_path, read_table

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
        return f"{data}, test split ({len(rows.X_test)} rows)", rows.X_test, rows.y_test
    if is_table_path(data) and not own_data and not need_target:
        frame = read_table(data)  # raw rows: the model picks its columns and reports the rest
        return f"{data}, all {len(frame)} rows", frame, None
    if own_data:
        source = trained_on
    elif is_table_path(data):
        if trained_on is None or not trained_on.target:
            raise typer.BadParameter(
                "this model does not record its target column, so it cannot score a file",
                param_hint="'--data'",
            )
        source = DataSource(name=data, target=trained_on.target)
    else:
        source = DataSource(name=data)
    loaded = source.load()  # type: ignore[union-attr]
    return f"{data}, all {len(loaded)} rows", loaded.X, loaded.y


@app.command(
    epilog=(
        "Examples:\n\n"
        "  torchclf evaluate runs/circles                    # its own test split again\n\n"
        "  torchclf evaluate runs/circles --split all --out eval-all\n\n"
        "  torchclf evaluate model.safetensors --data moons"
    )
)
def evaluate(
    model: ModelArgument,
    data: SavedModelDataOption = None,
    split: SplitOption = None,
    out: Annotated[
        Path | None,
        typer.Option(
            help="Folder for metrics.json and the plots (default: MODEL's folder/evaluation)."
        ),
    ] = None,
) -> None:
    """Print a saved model's metrics on a dataset (overall and per class) and plot them."""
    import json

    import torchclf
    from torchclf import plots
    from torchclf.files import atomic_directory

    model_path = _resolve_model_path(model)
    classifier = torchclf.load(model_path)
    description, X, y = _rows(classifier, data, split)
    evaluation = classifier.evaluate(X, y)
    folder = out if out is not None else model_path.parent / "evaluation"
    with atomic_directory(folder, overwrite=True) as staging:
        (staging / "metrics.json").write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        plots.plot_confusion_matrix(evaluation).savefig(staging / "confusion_matrix.png")
        plots.plot_roc_pr(classifier, X, y).savefig(staging / "roc_pr.png")
        if plots.can_plot_decision_boundary(classifier):
            figure = plots.plot_decision_boundary(classifier, [(description, X, y)])
            figure.savefig(staging / "decision_boundary.png")
    console = _console()
    _metrics_tables(console, evaluation, f"metrics on {description}")
    console.print(f"plots and metrics.json: {folder}")


@app.command(
    epilog=(
        "Examples:\n\n"
        "  torchclf predict runs/circles                     # the test rows, as CSV on stdout\n\n"
        "  torchclf predict runs/circles --split all --output preds.parquet\n\n"
        "  torchclf predict runs/circles --threshold 0.8 --output strict.csv"
    )
)
def predict(
    model: ModelArgument,
    data: SavedModelDataOption = None,
    split: SplitOption = None,
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", help="Write a .csv or .parquet file (default: CSV on stdout)."
        ),
    ] = None,
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Decision threshold for binary and multilabel models (one, or one per label)."
        ),
    ] = None,
) -> None:
    """Predict labels and per-class probabilities with a saved model."""
    import torchclf
    from torchclf.predictions import prediction_frame, write_table

    thresholds = None
    if threshold is not None:
        values = _parse_numbers(threshold, "'--threshold'", float, "0.5 or 0.3,0.6")
        thresholds = values[0] if len(values) == 1 else list(values)
    classifier = torchclf.load(_resolve_model_path(model))
    _, X, _ = _rows(classifier, data, split, need_target=False)
    frame = prediction_frame(classifier, X, threshold=thresholds)
    if output is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        write_table(frame, output)
        _console().print(f"{len(frame)} predictions: {output}")


@app.command(epilog="Example:\n\n  torchclf info runs/circles")
def info(model: ModelArgument) -> None:
    """Show what a model file holds: task, classes, features, architecture, training."""
    from rich.table import Table

    import torchclf
    from torchclf.checkpoint import read_model_file
    from torchclf.models import count_parameters

    path = _resolve_model_path(model)
    classifier = torchclf.load(path)
    _, document = read_model_file(path)
    table = Table(show_header=False, title=str(path), title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    rows = [
        (
            "format",
            f"torchclf model, format version {document['format_version']}, "
            f"written by torchclf {document.get('torchclf_version', '?')}",
        ),
        ("task", classifier.task.name),
        ("classes", ", ".join(classifier.task.class_names)),
        (
            "features",
            f"{classifier.n_features}: " + ", ".join(classifier.feature_names or ["unnamed"]),
        ),
        ("architecture", repr(classifier.model.layers)),
        ("parameters", f"{count_parameters(classifier.model):,}"),
    ]
    if classifier.train_config is not None:
        config = classifier.train_config
        rows.append(
            (
                "training",
                f"{config.optimizer} lr {config.lr:g}, {config.epochs} epochs, seed {config.seed}",
            )
        )
    summary = classifier.training_summary
    if summary:
        last = summary.get("last", {})
        scores = ", ".join(
            f"{k} {v:.4f}" for k, v in last.items() if k.endswith(("loss", "accuracy"))
        )
        best = summary.get("best_epoch")
        kept = f", weights of epoch {best} kept" if best else ""
        rows.append(("trained", f"{summary.get('epochs')} epochs{kept}; last epoch: {scores}"))
    if classifier.data_source:
        source = classifier.data_source
        rows.append(
            ("data", f"{source['name']}, test size {source['test_size']}, seed {source['seed']}")
        )
    for key, value in rows:
        table.add_row(key, value)
    _console().print(table)


@app.command(epilog="Example:\n\n  torchclf datasets")
def datasets() -> None:
    """List the built-in datasets with their shapes and tasks."""
    from rich.table import Table

    from torchclf import datasets as builtin

    table = Table()
    for column in ("name", "task", "rows", "features", "classes", "description"):
        table.add_column(column, justify="right" if column in ("rows", "features") else "left")
    for name in builtin.list_datasets():
        data = builtin.load(name)
        table.add_row(
            name,
            data.task,
            str(len(data)),
            str(data.X.shape[1]),
            ", ".join(data.class_names)
            if len(data.class_names) <= 4
            else f"{len(data.class_names)} classes",
            data.description,
        )
    _console().print(table)


@app.command(epilog="Examples:\n\n  torchclf activations\n\n  torchclf activations --out pictures")
def activations(
    out: Annotated[Path, typer.Option(help="Folder for activations.png.")] = Path("runs"),
) -> None:
    """Plot each from-scratch activation over torch's own and print the largest difference.

    The differences are measured over 2 million points from -1e4 to 1e4.
    """
    from rich.table import Table

    from torchclf import plots
    from torchclf.files import atomic_file

    table = Table(title="from scratch vs torch, x in [-1e4, 1e4]", title_justify="left")
    table.add_column("activation")
    table.add_column("largest |difference|", justify="right")
    for name, difference in plots.activation_differences().items():
        table.add_row(name, f"{difference:.3g}")
    path = out / "activations.png"
    with atomic_file(path) as temporary:
        plots.plot_activations().savefig(temporary, format="png")
    console = _console()
    console.print(table)
    console.print(f"plot: {path}")


def main() -> None:
    """Entry point of the ``torchclf`` command."""
    app()


__all__ = ["app", "main"]
