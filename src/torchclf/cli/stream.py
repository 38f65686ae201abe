"""``torchclf stream``: train from Parquet data larger than memory (``fit_parquet``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


@app.command(
    epilog=examples(
        "torchclf stream --data big.parquet --target label --epochs 2",
        "torchclf stream --data shards/ --target label --test-data test.parquet --hidden 64,64",
    )
)
def stream(
    data: Annotated[Path, typer.Option(help="A Parquet file, or a folder of them.")],
    target: Annotated[str, typer.Option(help="The label column.")],
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
) -> None:
    """Train on Parquet data without loading it: the memory is bounded, not the file's size.

    One pass learns the feature statistics and the classes, then every epoch streams the row
    groups in a shuffled order through a shuffle buffer. Numeric, complete feature columns only.
    The run folder holds model.safetensors and history.csv, plus metrics.json with --test-data.
    """
    typed = dict(locals())  # the options as typed; those named as fit_parquet's pass as they are
    sizes = parse_hidden(hidden)
    epoch_budget = parse_auto(epochs, "'--epochs'", int, "3")
    validation = parse_auto(validation_size, "'--validation-size'", float, "0.01")
    patience_value = parse_auto(patience, "'--patience'", int, "3")
    folder = run_folder(out, name, data.stem, overwrite)

    import json

    import torchclf
    from torchclf import atomic_directory, format_progress
    from torchclf.report import write_history

    console = make_console()
    with advice_in_options(grad_clip=False):
        keywords = keywords_for(
            torchclf.fit_parquet,
            typed,
            hidden=sizes,
            epochs=epoch_budget,
            validation_fraction=validation,
            patience=patience_value,
            features=split_names(features) or None,
        )
        classifier = torchclf.fit_parquet(data, **keywords)
    evaluation = None
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
    with atomic_directory(folder, overwrite=overwrite) as staging:
        classifier.save(staging / "model.safetensors")
        write_history(staging / "history.csv", classifier)
        if evaluation is not None:
            text = json.dumps(evaluation.to_dict(), indent=2) + "\n"
            (staging / "metrics.json").write_text(text)
    if not quiet:
        for row in classifier.history.rows:
            console.print(format_progress(row))
        if evaluation is not None:
            metrics_tables(console, evaluation, f"metrics on {test_data}")
    console.print(f"run folder: {folder}")
