"""The commands on saved models and built-ins: evaluate, predict, info, datasets, activations."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from torchclf.cli import app
from torchclf.cli.inputs import (
    EncodingOption,
    OverwriteOption,
    SepOption,
    check_data,
    check_folder_option,
    id_column_values,
    onnx_path,
    parse_numbers,
    parse_separator,
    resolve_model_path,
    rows_to_score,
    run_folder,
)
from torchclf.cli.output import Column, examples, make_console, metrics_tables, narrow_table

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


@app.command(
    epilog=examples(
        "torchclf evaluate runs/circles                    # its own test split again",
        "torchclf evaluate runs/circles --split all --name eval-all",
        "torchclf evaluate model.safetensors --data moons",
    )
)
def evaluate(
    model: ModelArgument,
    data: SavedModelDataOption = None,
    split: SplitOption = None,
    sep: SepOption = None,
    encoding: EncodingOption = None,
    out: Annotated[
        Path | None,
        typer.Option(help="Folder that holds the results folder (default: MODEL's folder)."),
    ] = None,
    name: Annotated[
        str | None,
        typer.Option(help="Results folder name (default: evaluation, numbered if taken)."),
    ] = None,
    overwrite: OverwriteOption = False,
) -> None:
    """Print a saved model's metrics on a dataset (overall and per class) and plot them.

    Writes metrics.json and the plots into a new folder: evaluation, evaluation-2, ... beside
    the model, as 'torchclf train' numbers its runs.
    """
    if data is not None:
        check_data(data)  # a typo answers before torch loads
    import json

    import torchclf
    from torchclf import atomic_directory, plots
    from torchclf.report import save_pictures, test_scores

    model_path = resolve_model_path(model)
    folder = run_folder(
        out if out is not None else model_path.parent, name, "evaluation", overwrite
    )
    classifier = torchclf.load(model_path)
    description, X, y, _, _ = rows_to_score(
        classifier, data, split, sep=parse_separator(sep), encoding=encoding
    )
    evaluation = classifier.evaluate(X, y)
    figures = {
        "confusion_matrix.png": lambda: plots.plot_confusion_matrix(evaluation),
        "roc_pr.png": lambda: plots.plot_roc_pr(classifier, X, y),
        "reliability.png": lambda: plots.plot_reliability(classifier, X, y),
    }
    if plots.can_plot_decision_boundary(classifier):
        figures["decision_boundary.png"] = lambda: plots.plot_decision_boundary(
            classifier, [(description, X, y)]
        )
    with atomic_directory(folder, overwrite=overwrite) as staging:
        (staging / "metrics.json").write_text(json.dumps(evaluation.to_dict(), indent=2) + "\n")
        scores = test_scores(evaluation, ("accuracy", "log_loss"))
        save_pictures(staging, figures, f"{description}: {scores}")
    console = make_console()
    metrics_tables(console, evaluation, f"metrics on {description}")
    console.print(f"plots and metrics.json: {folder}")


@app.command(
    epilog=examples(
        "torchclf predict runs/circles                     # the test rows, as CSV on stdout",
        "torchclf predict runs/circles --split all --output preds.parquet",
        "torchclf predict runs/circles --threshold 0.8 --output strict.csv",
        "torchclf predict runs/patients --data new.csv --id-column patient_id",
        "torchclf predict runs/circles --engine onnx       # through its exported model.onnx",
        "torchclf predict runs/patients --explain 3        # and each row's 3 strongest columns",
    )
)
def predict(
    model: ModelArgument,
    data: SavedModelDataOption = None,
    split: SplitOption = None,
    sep: SepOption = None,
    encoding: EncodingOption = None,
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
    id_column: Annotated[
        str | None,
        typer.Option(
            help="A column of the file to write first, to join the predictions to its rows "
            "(default: the CSV line, or the row's position)."
        ),
    ] = None,
    by_position: Annotated[
        bool,
        typer.Option(
            "--by-position",
            help="For a model fitted on unnamed features: take the file's columns in order, as "
            "they are.",
        ),
    ] = False,
    runtime: Annotated[  # not fit's engine (which trains): what computes the probabilities
        str,
        typer.Option(
            "--engine",
            help="torch, or onnx: the probabilities from the model's ONNX export under ONNX "
            "Runtime ('torchclf export' writes it).",
        ),
    ] = "torch",
    onnx: Annotated[
        Path | None,
        typer.Option(
            help="With --engine onnx: the ONNX file (default: model.onnx beside the model).",
            show_default=False,
        ),
    ] = None,
    explain: Annotated[
        int,
        typer.Option(
            min=0,
            help="Add each row's this many columns of the largest contribution to its "
            "prediction, signed (integrated gradients from the training medians and most "
            "frequent categories; pip install captum).",
        ),
    ] = 0,
) -> None:
    """Predict labels and per-class probabilities with a saved model.

    Each row starts with its id (the CSV line, the row's position, or --id-column), then its true
    label where the data has one, then the prediction and each class's probability: on the
    model's own test rows, the run's test_predictions.csv again.
    """
    if data is not None:
        check_data(data)  # a typo answers before torch loads
    if runtime not in ("torch", "onnx"):
        raise typer.BadParameter(
            f"expected torch or onnx, got {runtime!r}", param_hint="'--engine'"
        )
    import warnings

    import torchclf
    from torchclf import TorchclfWarning, prediction_frame, write_table

    thresholds = None
    if threshold is not None:
        values = parse_numbers(threshold, "'--threshold'", float, "0.5 or 0.3,0.6")
        thresholds = values[0] if len(values) == 1 else list(values)
    classifier = torchclf.load(resolve_model_path(model))
    separator = parse_separator(sep)
    rows = rows_to_score(
        classifier, data, split, need_target=False, sep=separator, encoding=encoding
    )
    X, ids = rows.X, rows.ids
    if id_column is not None:
        ids = id_column_values(classifier, rows, id_column, separator, encoding)
    if classifier.feature_names is None and hasattr(X, "columns") and not by_position:
        raise typer.BadParameter(
            f"the model was fitted on {classifier.n_features} unnamed features, so it cannot "
            f"tell whether the columns of '{data}' are those it learned from, in that order and "
            "preprocessed alike (a model saved from the end of a scikit-learn pipeline lacks the "
            "pipeline's earlier steps); save a model fitted on the raw table instead, or pass "
            "--by-position to take the file's columns in order, as they are",
            param_hint="'--data'",
        )
    with warnings.catch_warnings():
        if by_position:  # asked for: no warning that columns are taken by position
            warnings.simplefilter("ignore", TorchclfWarning)
        probabilities = None
        if runtime == "onnx":
            runner = torchclf.OnnxModel(onnx or onnx_path(model), classifier.encoder)
            probabilities = runner.predict_proba(X)
        frame = prediction_frame(
            classifier, X, threshold=thresholds, ids=ids, y=rows.y, probabilities=probabilities
        )
    if explain:
        frame = _with_explanations(frame, torchclf.integrated_gradients(classifier, X), explain)
    if output is None:
        frame.to_csv(sys.stdout, index=False)
    else:
        write_table(frame, output)
        make_console().print(f"{len(frame)} predictions: {output}")


def _with_explanations(frame: Any, attributions: Any, k: int) -> Any:
    """``frame`` and, per row, the explained output and its ``k`` strongest columns, signed."""
    frame = frame.copy()
    frame["explained"] = attributions.explained
    strongest = attributions.strongest(k)
    for rank in range(min(k, len(attributions.columns))):
        frame[f"column_{rank + 1}"] = [row[rank][0] for row in strongest]
        frame[f"contribution_{rank + 1}"] = [row[rank][1] for row in strongest]
    return frame


@app.command(
    epilog=examples(
        "torchclf export runs/circles                      # runs/circles/model.onnx",
        "torchclf export model.safetensors --output deploy/classifier.onnx",
    )
)
def export(
    model: ModelArgument,
    format: Annotated[str, typer.Option("--format", help="onnx (the one format yet).")] = "onnx",
    output: Annotated[
        Path | None,
        typer.Option(
            "--output",
            "-o",
            help="The file to write (default: model.onnx beside the model).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Export a model to ONNX: raw columns in, probabilities and labels out.

    One graph holds the model file's preprocessing (imputation, scaling, missing-value
    indicators, bins, one-hot and learned category vectors), the network, the link and the
    decision, with a dynamic batch dimension; ONNX Runtime runs it anywhere. A table's columns
    are its inputs, numbers as float32 (NaN where missing) and categories as strings; an array
    model takes 'features'. The graph is checked against torchclf's own predictions before it is
    written. Needs pip install 'torchclf[onnx]'.
    """
    if format != "onnx":
        raise typer.BadParameter(f"expected onnx, got {format!r}", param_hint="'--format'")
    import torchclf

    classifier = torchclf.load(resolve_model_path(model))
    path = classifier.to_onnx(output or onnx_path(model))
    names = classifier.encoder.input_names if hasattr(classifier.encoder, "columns") else None
    inputs = ", ".join(names) if names else f"features ({classifier.n_features} columns)"
    make_console().print(f"ONNX model: {path}\ninputs: {inputs}\noutputs: probabilities, label")


@app.command(epilog=examples("torchclf info runs/circles"))
def info(model: ModelArgument) -> None:
    """Show what a model file holds: task, classes, features, architecture, training."""
    from rich.table import Table

    import torchclf
    from torchclf import count_parameters, read_model_file

    path = resolve_model_path(model)
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
            f"{classifier.n_features}: " + ", ".join(classifier.feature_names)
            if classifier.feature_names
            else f"{classifier.n_features}, unnamed (fitted on an array: columns are taken by "
            "position, and any preprocessing done before the model is not in this file)",
        ),
        ("preprocessing", classifier.encoder.describe()),
        ("architecture", classifier.architecture),
        ("parameters", f"{count_parameters(classifier.model):,}"),
    ]
    if classifier.train_config is not None:
        config = classifier.train_config
        training = (
            f"{config.optimizer} lr {config.lr:g}, {config.epochs} epochs, seed {config.seed}"
        )
        if classifier.model_config.init != "torch":  # nn.Linear's own needs no mention
            training += f", init {classifier.model_config.init}"
        members = classifier.model_config.ensemble
        if members > 1:
            validated = "each on its own fold" if config.cross_fit else "on one holdout"
            training += f"; {members} networks averaged, validated {validated}"
        if classifier.model_config.linear_weight > 0:
            weight = classifier.model_config.linear_weight
            training += f"; logistic regression blended in at weight {weight:.2f}"
        if classifier.model_config.temperature != 1.0:
            training += f"; temperature {classifier.model_config.temperature:.3f}"
        rows.append(("training", training))
    summary = classifier.training_summary
    if summary:
        last = summary.get("last", {})
        scores = ", ".join(
            f"{k} {v:.4f}" for k, v in last.items() if k.endswith(("loss", "accuracy"))
        )
        best, each = summary.get("best_epoch"), summary.get("member_best_epochs")
        kept = f", weights of epoch {best} kept" if best else ""
        epochs = [e for e in each or [] if e is not None]
        if epochs:  # cross-fitted: each network kept its own best epoch
            kept = f", each network's best epoch kept ({min(epochs)} to {max(epochs)})"
        rows.append(("trained", f"{summary.get('epochs')} epochs{kept}; last epoch: {scores}"))
    if classifier.data_source:
        source = classifier.data_source
        rows.append(
            ("data", f"{source['name']}, test size {source['test_size']}, seed {source['seed']}")
        )
    for key, value in rows:
        table.add_row(key, value)
    make_console().print(table)


@app.command(epilog=examples("torchclf datasets"))
def datasets() -> None:
    """List the built-in datasets with their shapes and tasks."""
    from torchclf import datasets as builtin

    rows = []
    for name in builtin.list_datasets():
        data = builtin.load(name)
        classes = data.class_names
        rows.append(
            [
                name,
                data.task,
                str(len(data)),
                str(data.X.shape[1]),
                ", ".join(classes) if len(classes) <= 4 else f"{len(classes)} classes",
                data.description,
            ]
        )
    columns = [
        Column("name", figures=False),
        Column("task", figures=False),
        Column("rows"),
        Column("features"),
        Column("classes", figures=False, priority=1, wrap_at=16),  # "different_sign," whole
        Column("description", figures=False, priority=2),
    ]
    console = make_console()
    console.print(narrow_table(console, "built-in datasets", columns, rows), soft_wrap=False)


@app.command(epilog=examples("torchclf activations", "torchclf activations --out pictures"))
def activations(
    out: Annotated[Path, typer.Option(help="Folder for activations.png.")] = Path("runs"),
) -> None:
    """Plot each from-scratch activation over torch's own and print the largest difference.

    The differences are measured over 2 million points from -1e4 to 1e4.
    """
    from rich.table import Table

    from torchclf import atomic_file, plots

    check_folder_option(out)
    table = Table(title="from scratch vs torch, x in [-1e4, 1e4]", title_justify="left")
    table.add_column("activation")
    table.add_column("largest |difference|", justify="right")
    for name, difference in plots.activation_differences().items():
        table.add_row(name, f"{difference:.3g}")
    path = out / "activations.png"
    with atomic_file(path) as temporary:
        plots.plot_activations().savefig(temporary, format="png")
    console = make_console()
    console.print(table)
    console.print(f"plot: {path}")
