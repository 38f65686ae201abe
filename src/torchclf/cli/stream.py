"""``torchclf stream``: train from Parquet data larger than memory (``fit_parquet``)."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from torchclf import ModelConfig, TrainConfig
from torchclf.cli import app
from torchclf.cli.inputs import (
    EpochsOption,
    OutOption,
    OverwriteOption,
    PatienceOption,
    QuietOption,
    ValidationSizeOption,
    advice_in_options,
    declared,
    keywords_for,
    parse_auto,
    parse_hidden,
    run_folder,
    split_names,
)
from torchclf.cli.output import examples, make_console, metrics_tables
from torchclf.cli.runs import (
    CheckpointEveryOption,
    NprocOption,
    ResumeOption,
    on_processes,
    run_options,
)


@app.command(
    epilog=examples(
        "torchclf stream --data big.parquet --target label --epochs 2",
        "torchclf stream --data shards/ --target label --test-data test.parquet --hidden 64,64",
        "torchclf stream --resume runs/big   # finish a run that was interrupted",
        "torchclf stream --data shards/ --target label --nproc 2   # 2 processes",
    )
)
def stream(
    context: typer.Context,
    data: Annotated[
        Path | None,
        typer.Option(help="A Parquet file, or a folder of them.", show_default=False),
    ] = None,
    target: Annotated[str | None, typer.Option(help="The label column.")] = None,
    features: Annotated[
        str | None, typer.Option(help="Feature columns (default: all but the target).")
    ] = None,
    hidden: Annotated[
        str, typer.Option(help="Hidden layer sizes, comma-separated, 'none' or 'auto'.")
    ] = "auto",
    activation: Annotated[str, declared("activation")] = ModelConfig.activation,
    epochs: EpochsOption = "auto",
    validation_size: ValidationSizeOption = "auto",
    patience: PatienceOption = "auto",
    lr: Annotated[float, declared("lr")] = TrainConfig.lr,
    # the stream trains on the engine, which has three of the declared four optimizers
    optimizer: Annotated[str, typer.Option(help="adam, adamw or sgd.")] = TrainConfig.optimizer,
    batch_size: Annotated[int, typer.Option(help="Rows per step.")] = 256,
    shuffle_buffer_rows: Annotated[
        int, typer.Option(help="Rows held for shuffling: with the read-ahead, the memory bound.")
    ] = 262_144,
    test_data: Annotated[
        Path | None,
        typer.Option(help="A table that fits in memory, evaluated after training."),
    ] = None,
    seed: Annotated[int, declared("seed")] = TrainConfig.seed,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")] = "auto",
    out: OutOption = Path("runs"),
    name: Annotated[str | None, typer.Option(help="Run folder name.")] = None,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
    checkpoint_every: CheckpointEveryOption = "auto",
    resume: ResumeOption = None,
    nproc: NprocOption = 1,
) -> None:
    """Train on Parquet data without loading it: the memory is bounded, not the file's size.

    One pass learns the feature statistics and the classes, then every epoch streams the row
    groups in a shuffled order through a shuffle buffer. Numeric, complete feature columns only.
    The run folder holds model.safetensors and history.csv, plus metrics.json with --test-data.
    While it trains, the folder holds checkpoints instead, and Ctrl-C leaves it ready for
    --resume. With --nproc, each process streams its share of every epoch's row groups.
    """
    # the options as typed (or, resuming, as the run began); fit_parquet's pass by name
    typed = {name: value for name, value in locals().items() if name != "context"}
    typed, command = run_options(context, typed, resume)
    option = SimpleNamespace(**typed)
    for given, flag in ((option.data, "'--data'"), (option.target, "'--target'")):
        if given is None:
            raise typer.BadParameter("needed (unless --resume names a run)", param_hint=flag)
    data = Path(option.data)
    test_data = None if option.test_data is None else Path(option.test_data)
    sizes = parse_hidden(option.hidden)
    epoch_budget = parse_auto(option.epochs, "'--epochs'", int, "3")
    validation = parse_auto(option.validation_size, "'--validation-size'", float, "0.01")
    patience_value = parse_auto(option.patience, "'--patience'", int, "3")
    with on_processes(
        context,
        "stream",
        option,
        lambda: resume or run_folder(option.out, option.name, data.stem, option.overwrite),
    ) as (folder, main, _):
        parsed = dict(
            hidden=sizes,
            epochs=epoch_budget,
            validation_fraction=validation,
            patience=patience_value,
            features=split_names(option.features) or None,
        )
        classifier, evaluation = _stream_into(folder, option, command, typed, parsed, main)
    if not main:  # rank 0 writes and prints the run
        return
    from torchclf import format_progress

    console = make_console()
    if not option.quiet:
        for row in classifier.history.rows:
            console.print(format_progress(row))
        if evaluation is not None:
            metrics_tables(console, evaluation, f"metrics on {test_data}")
    console.print(f"run folder: {folder}")


def _stream_into(
    folder: Path,
    option: SimpleNamespace,
    command: str,
    typed: dict[str, Any],
    parsed: dict[str, Any],
    main: bool,
) -> tuple[Any, Any]:
    """Train into the run folder ``folder`` (made, or being resumed) and complete it.

    ``parsed``: fit_parquet's keywords that needed parsing; ``main``: this process writes the
    folder (one process, or rank 0 of several, which all train). The classifier, and its
    evaluation on ``--test-data`` (None without).
    """
    import json

    import torchclf
    from torchclf import atomic_directory
    from torchclf.report import CHECKPOINT_FOLDER, resume_point, start_run, write_history

    data, target = Path(option.data), option.target
    test_data = None if option.test_data is None else Path(option.test_data)
    evaluation = None
    if option.resume is None and main:  # the folder holds the run from now on
        start_run(folder, command, typed, overwrite=option.overwrite)
    with advice_in_options(grad_clip=False):
        keywords = keywords_for(
            torchclf.fit_parquet,
            typed,
            **parsed,
            checkpoint_dir=folder / CHECKPOINT_FOLDER,
            resume_from=resume_point(folder),
        )
        classifier = torchclf.fit_parquet(data, **keywords)
    if not main:
        return classifier, None
    if test_data is not None:
        from torchclf import read_table

        table = read_table(test_data)
        if target not in table.columns:
            raise typer.BadParameter(
                f"'{test_data}' has no target column '{target}'", param_hint="'--test-data'"
            )
        table = table[table[target].notna()]
        # the encoder picks the feature columns, naming any that are missing
        evaluation = classifier.evaluate(table.drop(columns=target), table[target])
    with atomic_directory(folder, overwrite=True) as staging:  # replaces the run in progress
        classifier.save(staging / "model.safetensors")
        write_history(staging / "history.csv", classifier)
        if evaluation is not None:
            text = json.dumps(evaluation.to_dict(), indent=2) + "\n"
            (staging / "metrics.json").write_text(text)
    return classifier, evaluation
