"""``torchclf train``: data to a trained, evaluated and plotted run folder."""

from __future__ import annotations

import math
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from torchclf import ModelConfig, TrainConfig
from torchclf.cli import app
from torchclf.cli.inputs import (
    DataOption,
    EncodingOption,
    EpochsOption,
    OutOption,
    OverwriteOption,
    PatienceOption,
    QuietOption,
    SepOption,
    TestSizeOption,
    ValidationSizeOption,
    advice_in_options,
    check_data,
    declared,
    keywords_for,
    parse_auto,
    parse_hidden,
    parse_separator,
    parse_threshold,
    run_folder,
    split_names,
)
from torchclf.cli.output import EpochTable, examples, heading, make_console, metrics_tables
from torchclf.cli.runs import (
    CheckpointEveryOption,
    NprocOption,
    ResumeOption,
    on_processes,
    run_options,
)


@app.command(
    epilog=examples(
        "torchclf train    # the tutorial's ReLU model on circles",
        "torchclf train --data moons --hidden 32,32 --epochs 500",
        "torchclf train --data blobs --hidden none --name linear-blobs",
        "torchclf train --data digits --hidden 64,64 --quiet",
        "torchclf train --data moons --validation-size 0 --epochs 300   # no validation rows",
        "torchclf train --data sales.csv --target churned --positive-class yes --encoding latin-1",
        "torchclf train --resume runs/digits   # finish a run that was interrupted",
        "torchclf train --data big.csv --target y --nproc 2   # on 2 processes",
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
    activation: Annotated[str, declared("activation")] = ModelConfig.activation,
    dropout: Annotated[float, declared("dropout")] = ModelConfig.dropout,
    batch_norm: Annotated[
        bool,
        typer.Option(
            "--batch-norm/--no-batch-norm", help="BatchNorm1d after each hidden linear layer."
        ),
    ] = ModelConfig.batch_norm,
    init: Annotated[str, declared("init")] = ModelConfig.init,
    ensemble: Annotated[
        str,
        typer.Option(
            help="Networks trained at once, their probabilities averaged; auto: 8 on a --data "
            "table (1 where dropout, a schedule or clipping needs the autograd loop), 1 on the "
            "built-in lesson datasets."
        ),
    ] = "auto",
    calibrate: Annotated[bool, declared("calibrate")] = TrainConfig.calibrate,
    cross_fit: Annotated[
        bool | None,
        typer.Option(
            "--cross-fit/--no-cross-fit",
            help="Validate each network of the ensemble on its own fold of the training rows "
            "(default: whenever the ensemble early-stops with auto validation).",
            show_default=False,
        ),
    ] = None,
    blend_linear: Annotated[
        bool | None,
        typer.Option(
            "--blend-linear/--no-blend-linear",
            help="Blend in logistic regressions at the share the held-out rows choose "
            "(default: with a cross-fitted ensemble).",
            show_default=False,
        ),
    ] = None,
    epochs: EpochsOption = "auto",
    lr: Annotated[float, declared("lr")] = TrainConfig.lr,
    optimizer: Annotated[str, declared("optimizer")] = TrainConfig.optimizer,
    weight_decay: Annotated[
        str,
        typer.Option(
            help="L2 penalty (decoupled for adamw); auto: 0.003, or 0.0003 from 10,000 "
            "training rows on."
        ),
    ] = "auto",
    momentum: Annotated[float, declared("momentum")] = TrainConfig.momentum,
    lr_schedule: Annotated[str, declared("lr_schedule")] = TrainConfig.lr_schedule,
    batch_size: Annotated[int | None, declared("batch_size")] = TrainConfig.batch_size,
    grad_clip: Annotated[float | None, declared("grad_clip")] = TrainConfig.grad_clip,
    scaling: Annotated[str, declared("scaling")] = TrainConfig.scaling,
    numeric_embedding: Annotated[
        str, declared("numeric_embedding")
    ] = TrainConfig.numeric_embedding,
    categorical_embedding: Annotated[
        str, declared("categorical_embedding")
    ] = TrainConfig.categorical_embedding,
    class_weight: Annotated[
        str, typer.Option(help="none, or balanced: weigh classes by their inverse frequency.")
    ] = "none",
    threshold: Annotated[
        str | None,
        typer.Option(
            help="Binary: a decision threshold, or f1 / recall:0.9 to choose it on validation rows."
        ),
    ] = None,
    positive_class: Annotated[
        str | None,
        typer.Option(
            help="Binary: the positive class (probabilities, threshold, ROC, F1 are about it; "
            "default: the last label in sorted order)."
        ),
    ] = None,
    test_size: TestSizeOption = 0.2,
    sep: SepOption = None,
    encoding: EncodingOption = None,
    seed: Annotated[int, declared("seed")] = TrainConfig.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    threads: Annotated[
        str,
        typer.Option(
            help="torch threads while training: auto (one for data that trains full batch, "
            "torch's choice above) or a number."
        ),
    ] = "auto",
    compile_model: Annotated[
        bool,
        typer.Option(
            "--compile",
            help="torch.compile the model (autograd loop) for long runs; prints the compile time.",
        ),
    ] = False,
    early_stopping: Annotated[
        bool | None,
        typer.Option(
            "--early-stopping/--no-early-stopping",
            help="Keep the epoch with the lowest validation loss and stop when it stalls "
            "(default: whenever there are validation rows).",
            show_default=False,
        ),
    ] = None,
    validation_size: ValidationSizeOption = "auto",
    patience: PatienceOption = "auto",
    log_every: Annotated[int | None, declared("log_every")] = TrainConfig.log_every,
    out: OutOption = Path("runs"),
    name: Annotated[
        str | None,
        typer.Option(help="Run folder name (default: the dataset's name, numbered if taken)."),
    ] = None,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
    checkpoint_every: CheckpointEveryOption = "auto",
    resume: ResumeOption = None,
    mlflow: Annotated[
        Path | None,
        typer.Option(
            help="Also log the finished run (settings, every epoch's metrics, test metrics, the "
            "run folder) into this local MLflow tracking folder (pip install mlflow).",
            show_default=False,
        ),
    ] = None,
    tensorboard: Annotated[
        Path | None,
        typer.Option(
            help="Also write the run into this folder as TensorBoard event files: losses, "
            "metrics, learning rate, PR curves, settings (pip install tensorboard).",
            show_default=False,
        ),
    ] = None,
    nproc: NprocOption = 1,
) -> None:
    """Train a classifier, print its metrics and write a run folder with plots and a report.

    With no options it trains the tutorial's non-linear model (2-10-10-1, ReLU) on the circles
    data. The run folder holds model.safetensors, history.csv, metrics.json, test_predictions.csv,
    the pictures and report.html. While it trains, the folder holds checkpoints instead, and
    Ctrl-C leaves it ready for --resume.
    """
    # the options as typed (or, resuming, as the run began); those named as fit's keywords pass
    typed = {name: value for name, value in locals().items() if name != "context"}
    typed, command = run_options(context, typed, resume)
    option = SimpleNamespace(**typed)
    sizes = parse_hidden(option.hidden)
    threshold_value = parse_threshold(option.threshold)
    epoch_budget = parse_auto(option.epochs, "'--epochs'", int, "300")
    validation = parse_auto(option.validation_size, "'--validation-size'", float, "0.2")
    patience_value = parse_auto(option.patience, "'--patience'", int, "20")
    members = parse_auto(option.ensemble, "'--ensemble'", int, "8")
    decay = parse_auto(option.weight_decay, "'--weight-decay'", float, "0.001")
    thread_count: int | str = option.threads
    if option.threads != "auto":
        if not option.threads.isdigit() or int(option.threads) < 1:
            raise typer.BadParameter(
                f"expected auto or a positive whole number, got {option.threads!r}",
                param_hint="'--threads'",
            )
        thread_count = int(option.threads)
    separator = parse_separator(option.sep)
    check_data(option.data)
    parsed = dict(
        hidden=sizes,
        ensemble=members,
        epochs=epoch_budget,
        validation_fraction=validation,
        patience=patience_value,
        weight_decay=decay,
        threshold=threshold_value,
        threads=thread_count,
        sep=separator,
    )
    # the options read: on nproc processes, every one trains; rank 0 alone names, writes and
    # prints the run
    with on_processes(
        context,
        "train",
        option,
        lambda: (
            resume or run_folder(option.out, option.name, Path(option.data).stem, option.overwrite)
        ),
    ) as (folder, main, count):
        _train_into(folder, option, command, typed, parsed, main, count)


def _train_into(
    folder: Path,
    option: SimpleNamespace,
    command: str,
    typed: dict[str, Any],
    parsed: dict[str, Any],
    main: bool = True,
    processes: int = 1,
) -> None:
    """Train into the run folder ``folder`` (made, or being resumed) and complete it.

    ``option``: the options; ``typed``: the same as a dict; ``parsed``: those that needed
    parsing, by fit's keyword (and ``sep``); ``main``: this process writes the folder (one
    process, or rank 0 of several, which all train); ``processes``: how many train.
    """
    import torchclf
    from torchclf import DataSource, plan_training
    from torchclf.report import (
        CHECKPOINT_FOLDER,
        resume_point,
        resumed_epoch,
        start_run,
        write_run,
    )

    console = make_console()
    source = DataSource(
        name=option.data,
        target=split_names(option.target),
        features=split_names(option.features) or None,
        drop=split_names(option.drop),
        test_size=option.test_size,
        seed=option.seed,
        sep=parsed.pop("sep"),
        encoding=option.encoding,
    )
    loaded = source.load()
    split = source.split(loaded)
    summary = loaded.summary(split)
    if processes > 1:
        summary["processes"] = processes
    if not option.resume and main:  # the data read: the folder holds the run from now on
        start_run(folder, command, typed, overwrite=option.overwrite)
    resume_from = resume_point(folder)
    tunes_threshold = isinstance(parsed["threshold"], str)
    if parsed["ensemble"] == "auto" and not source.is_file:
        parsed["ensemble"] = 1  # the lesson's own data: the lesson's one network
    keywords = keywords_for(
        torchclf.fit,
        typed,
        **parsed,
        class_weight=None if option.class_weight == "none" else option.class_weight,
        categorical=split_names(option.categorical),
        compile=option.compile_model,
        checkpoint_dir=folder / CHECKPOINT_FOLDER,
        resume_from=resume_from,
    )
    plan = plan_training(len(split.X_train), keywords)  # what fit will plan: for the heading
    schedule = plan.schedule
    if plan.cross_fit:
        summary["validation"] = f"{plan.ensemble} networks, each validated on its own fold"
    else:  # held out by fit's holdout_indices: the same count, ceil(fraction * rows)
        held_out = math.ceil(schedule.validation_fraction * len(split.X_train))
        summary["validation"] = f"{held_out} of them for validation" if held_out else None
    epoch_table = None
    if resume_from is not None and not option.quiet:
        console.print(
            f"resuming {folder} from its last checkpoint, at epoch {resumed_epoch(folder)}"
        )
    if not option.quiet:
        every = option.log_every or max(1, schedule.epochs // 10)
        epoch_table = EpochTable(console, schedule.epochs, every, heading(option.data, summary))
    try:
        with advice_in_options(grad_clip=True):
            classifier = torchclf.fit(
                split.X_train,
                split.y_train,
                **keywords,
                label_names=loaded.label_names,
                feature_names=loaded.feature_names,
                eval_set=(split.X_test, split.y_test),
                on_epoch=epoch_table,
            )
    finally:
        if epoch_table is not None:
            epoch_table.close()
    if not main:  # rank 0 holds the same model, and writes it
        return
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
        command=command,
        data_summary=summary,
        overwrite=True,  # the run in progress, which the finished run replaces
    )
    if option.mlflow is not None:
        shown = {"quiet", "log_every", "resume", "mlflow", "tensorboard"}
        settings = {k: v for k, v in typed.items() if k not in shown}
        run_id = torchclf.log_to_mlflow(
            option.mlflow,
            folder.name,
            settings,
            classifier.history.rows,
            evaluation.to_dict()["scores"],
            folder,
        )
        if not option.quiet:
            console.print(f"mlflow run {run_id} in {option.mlflow}")
    if not option.quiet:
        if hasattr(classifier.encoder, "kinds"):
            kinds = classifier.encoder.kinds()
            console.print(
                f"columns: numeric {', '.join(kinds['numeric']) or 'none'}; "
                f"categorical {', '.join(kinds['categorical']) or 'none'}"
            )
        if tunes_threshold:
            console.print(
                f"threshold chosen on the validation rows ({option.threshold}): "
                f"{classifier.task.to_dict()['threshold']:.4f}"
            )
        metrics_tables(console, evaluation, "test metrics")
    if option.compile_model and classifier.history.compile_seconds is not None:
        console.print(
            f"torch.compile: the first step took {classifier.history.compile_seconds:.1f} s "
            "(compiling included)"
        )
    console.print(f"run folder: {folder}")
