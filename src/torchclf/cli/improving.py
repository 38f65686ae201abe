"""``torchclf improve`` and ``torchclf sweep``: many configurations trained at once, compared."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated, Any

import typer

from torchclf.cli import app
from torchclf.cli.inputs import (
    DataOption,
    OutOption,
    OverwriteOption,
    QuietOption,
    TestSizeOption,
    check_data,
    parse_auto,
    parse_hidden,
    parse_numbers,
    run_folder,
    split_names,
)
from torchclf.cli.output import Column, examples, make_console, narrow_table
from torchclf.cli.runs import (
    CheckpointEveryOption,
    ResumeOption,
    keeping_the_work,
    run_options,
)


@app.command(
    epilog=examples(
        "torchclf improve    # circles, from the lesson's linear 2-10-10-1 model",
        "torchclf improve --data moons --hidden 4 --activation relu --epochs 300",
    )
)
def improve(
    data: DataOption = "circles",
    target: Annotated[
        str | None,
        typer.Option(help="Files: the target column (the features must be numeric)."),
    ] = None,
    hidden: Annotated[
        str, typer.Option(help="The baseline's hidden sizes; 'none' is the linear model.")
    ] = "10,10",
    activation: Annotated[
        str, typer.Option(help="The baseline's activation (identity: the lesson's linear model).")
    ] = "identity",
    optimizer: Annotated[
        str, typer.Option(help="The baseline's optimizer: adam, adamw or sgd.")
    ] = "adam",
    lr: Annotated[float, typer.Option(help="The baseline's learning rate.")] = 0.003,
    epochs: Annotated[int, typer.Option(help="The baseline's full-batch epochs.")] = 1000,
    seed: Annotated[int, typer.Option(help="Seed of the split and of every variant's init.")] = 42,
    test_size: TestSizeOption = 0.2,
    validation_size: Annotated[
        float,
        typer.Option(
            help="Share of the training rows held out to compare the variants (the test rows "
            "are only reported)."
        ),
    ] = 0.2,
    out: OutOption = Path("runs"),
    name: Annotated[
        str | None, typer.Option(help="Results folder name (default: improve-DATA, numbered).")
    ] = None,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
) -> None:
    """Try the lesson's improvements one at a time, then the best together, and compare them.

    From a baseline it trains: more layers, more hidden units, more epochs, other activations, a
    higher and a lower learning rate, another optimizer, and combinations of the changes that
    helped, all at once (stacked by architecture). A change helps when it raises the accuracy on
    validation rows held out from the training rows; the test rows are only reported. Prints a
    table with each variant's train, validation and test accuracy and its difference from the
    baseline on the validation rows, and writes improve.csv, improve.png and, for two-feature
    data, boundaries.png (one decision boundary per variant, over the test rows).
    """
    sizes = parse_hidden(hidden)
    if sizes == "auto":
        raise typer.BadParameter("give the baseline's sizes, e.g. 10,10", param_hint="'--hidden'")
    check_data(data)
    folder = run_folder(out, name, f"improve-{Path(data).stem}", overwrite)

    import pandas as pd

    from torchclf import DataSource, atomic_directory, plots
    from torchclf.improve import best_variant, variants_table
    from torchclf.improve import improve as try_improvements
    from torchclf.sweep import Member

    assert not isinstance(sizes, str)  # "auto" was refused above
    baseline = Member(
        hidden=sizes, activation=activation, optimizer=optimizer, lr=lr, epochs=epochs, seed=seed
    )
    source = DataSource(name=data, target=split_names(target), test_size=test_size, seed=seed)
    split = source.split()
    variants = try_improvements(
        split.X_train,
        split.y_train,
        baseline,
        eval_set=(split.X_test, split.y_test),
        validation_fraction=validation_size,
    )
    rows = variants_table(variants)
    with atomic_directory(folder, overwrite=overwrite) as staging:
        pd.DataFrame(rows).to_csv(staging / "improve.csv", index=False)
        changes = [r["change"] for r in rows]
        best = best_variant(variants)
        test = "" if best.test_accuracy is None else f", test acc {100 * best.test_accuracy:.2f}%"
        best_line = f"best on val: {best.change} (val acc {100 * best.val_accuracy:.2f}%{test})"
        heading = f"{data}, {best_line}"
        picture = plots.plot_variants(
            changes, [r["val_accuracy"] for r in rows], [r["test_accuracy"] for r in rows]
        )
        picture.suptitle(heading, fontsize="medium")
        picture.savefig(staging / "improve.png")
        if plots.can_plot_decision_boundary(variants[0].classifier):
            import textwrap

            # each panel says what changed and how it scored: compared on val, test reported
            scores = [
                f"val {100 * v.val_accuracy:.1f}%, test {100 * (v.test_accuracy or 0):.1f}%"
                for v in variants
            ]
            panels = [
                (
                    f"{textwrap.fill(v.change, 40)}\n{score}",
                    v.classifier,
                    split.X_test,
                    split.y_test,
                )
                for v, score in zip(variants, scores, strict=True)
            ]
            picture = plots.plot_decision_boundaries(panels)
            picture.suptitle(heading, fontsize="medium")
            picture.savefig(staging / "boundaries.png")

    columns = [
        Column("change", figures=False),
        Column("train acc", priority=2),
        Column("val acc"),
        Column("vs base"),
        Column("test acc", priority=1),
        Column("seconds", priority=3),
    ]
    cells = [
        [
            r["change"],
            f"{100 * r['train_accuracy']:.2f}%",
            f"{100 * r['val_accuracy']:.2f}%",
            f"{100 * r['vs_baseline']:+.2f}",
            f"{100 * r['test_accuracy']:.2f}%",
            f"{r['seconds']:.2f}",
        ]
        for r in rows
    ]
    console = make_console()
    title = f"improving a model on {data}: compared on val acc, test only reported"
    if not quiet:
        console.print(narrow_table(console, title, columns, cells), soft_wrap=False)
        console.print(best_line, soft_wrap=False)
    console.print(f"results: {folder}")


@app.command(
    epilog=examples(
        "torchclf sweep --data moons --hidden 8,32,64 --layers 1,2,3 --lr 0.01,0.1 "
        "--activation relu,tanh",
        "torchclf sweep --data blobs --hidden 16 --layers 1 --seeds 0,1,2,3 --epochs 300",
        "torchclf sweep --resume runs/sweep-moons   # finish a sweep that was interrupted",
    )
)
def sweep(
    context: typer.Context,
    data: DataOption = "circles",
    target: Annotated[
        str | None,
        typer.Option(help="Files: the target column (the features must be numeric)."),
    ] = None,
    hidden: Annotated[str, typer.Option(help="Layer widths to try, comma-separated.")] = "8,32",
    layers: Annotated[str, typer.Option(help="Numbers of hidden layers to try.")] = "1,2",
    activation: Annotated[str, typer.Option(help="Activations to try.")] = "relu",
    lr: Annotated[str, typer.Option(help="Learning rates to try.")] = "0.003,0.03",
    optimizer: Annotated[str, typer.Option(help="Optimizers to try: adam, adamw, sgd.")] = "adam",
    weight_decay: Annotated[str, typer.Option(help="Weight decays to try.")] = "0.003",
    dropout: Annotated[str, typer.Option(help="Dropout rates to try.")] = "0",
    seeds: Annotated[str, typer.Option(help="Initialisation seeds to try.")] = "0",
    epochs: Annotated[str, typer.Option(help="Epoch counts to try.")] = "1000",
    batch_size: Annotated[
        int | None,
        typer.Option(
            help="Rows per step, the same batches for every member (default: full batch up to "
            "4096 rows, else 256)."
        ),
    ] = None,
    test_size: TestSizeOption = 0.2,
    validation_size: Annotated[
        float,
        typer.Option(
            help="Share of the training rows held out to rank the members (and stop them "
            "early); the test rows are only reported."
        ),
    ] = 0.2,
    early_stopping: Annotated[
        bool,
        typer.Option(
            "--early-stopping/--no-early-stopping",
            help="Keep each member's epoch with the lowest validation loss, and stop it when "
            "that has not improved for --patience epochs.",
        ),
    ] = True,
    patience: Annotated[
        str,
        typer.Option(
            help="Epochs without improvement to stop; auto: a tenth of a full-batch budget, 10 "
            "in mini-batches."
        ),
    ] = "auto",
    split_seed: Annotated[
        int, typer.Option(help="Seed of the train/test split and of the shared batch order.")
    ] = 42,
    out: OutOption = Path("runs"),
    name: Annotated[
        str | None, typer.Option(help="Results folder name (default: sweep-DATA, numbered).")
    ] = None,
    overwrite: OverwriteOption = False,
    quiet: QuietOption = False,
    checkpoint_every: CheckpointEveryOption = "auto",
    resume: ResumeOption = None,
) -> None:
    """Train every combination of the given values at once and rank them.

    Members sharing an architecture train stacked, in one batched forward and backward. They are
    ranked by their accuracy on validation rows held out from the training rows (then by their
    validation loss); the test rows are only reported. Writes
    sweep.csv (one row per member, sorted), histories.csv (every member's epochs) and the best
    member's model.safetensors, which 'torchclf predict' serves. While it trains, the folder
    holds checkpoints instead, and Ctrl-C leaves it ready for --resume.
    """
    typed = {name: value for name, value in locals().items() if name != "context"}
    typed, command = run_options(context, typed, resume)
    option = SimpleNamespace(**typed)
    widths = [int(v) for v in parse_numbers(option.hidden, "'--hidden'", int, "8,32,64")]
    depths = [int(v) for v in parse_numbers(option.layers, "'--layers'", int, "1,2,3")]
    rates = parse_numbers(option.lr, "'--lr'", float, "0.01,0.1")
    decays = parse_numbers(option.weight_decay, "'--weight-decay'", float, "0,0.001")
    dropouts = parse_numbers(option.dropout, "'--dropout'", float, "0,0.2")
    seed_values = [int(v) for v in parse_numbers(option.seeds, "'--seeds'", int, "0,1,2")]
    epoch_counts = [int(v) for v in parse_numbers(option.epochs, "'--epochs'", int, "300,1000")]
    if any(w < 1 for w in widths) or any(d < 0 for d in depths):
        raise typer.BadParameter("widths must be at least 1 and depths at least 0")
    if not 0.0 < option.validation_size <= 0.9:  # refused before any data is read (hold_out)
        raise typer.BadParameter(
            f"expected a share in (0, 0.9], got {option.validation_size!r}: members are ranked "
            "on validation rows, never on the test rows",
            param_hint="'--validation-size'",
        )
    patience_value = parse_auto(option.patience, "'--patience'", int, "20")
    data = option.data
    check_data(data)
    stem = f"sweep-{Path(data).stem}"
    folder = resume or run_folder(option.out, option.name, stem, option.overwrite)

    import pandas as pd

    from torchclf import DataSource, atomic_directory, resolve_schedule
    from torchclf.report import CHECKPOINT_FOLDER, resume_point, start_run
    from torchclf.sweep import grid, hold_out, ranking, train_members

    members = grid(
        widths,
        depths,
        activations=split_names(option.activation),
        optimizers=split_names(option.optimizer),
        lrs=rates,
        weight_decays=decays,
        dropouts=dropouts,
        epochs=epoch_counts,
        seeds=seed_values,
    )
    with keeping_the_work("sweep", folder, resuming=resume is not None):
        source = DataSource(
            name=data,
            target=split_names(option.target),
            test_size=option.test_size,
            seed=option.split_seed,
        )
        split = source.split()
        X_train, y_train, validation = hold_out(
            split.X_train, split.y_train, option.validation_size, option.split_seed
        )
        if patience_value == "auto":
            patience_value = resolve_schedule(
                len(y_train),
                epochs=max(epoch_counts),
                validation_fraction=0.0,
                batch_size=option.batch_size,
            ).patience
        if resume is None:  # the data read: the folder holds the sweep from now on
            start_run(folder, command, typed, overwrite=option.overwrite)
        classifiers = train_members(
            X_train,
            y_train,
            members,
            eval_set=(split.X_test, split.y_test),
            validation=validation,
            early_stopping=option.early_stopping,
            patience=patience_value,
            batch_size=option.batch_size,
            shuffle_seed=option.split_seed,
            checkpoint_dir=folder / CHECKPOINT_FOLDER,
            checkpoint_every=option.checkpoint_every,
            resume_from=resume_point(folder),
        )
        rows = ranking(members, classifiers)
        histories = pd.concat(
            [pd.DataFrame(c.history.rows).assign(member=i) for i, c in enumerate(classifiers)]
        )
        best = classifiers[rows[0]["member"]]
        best.data_source = source.to_dict()
        # the sweep in progress, which the finished one replaces
        with atomic_directory(folder, overwrite=True) as staging:
            pd.DataFrame(rows).to_csv(staging / "sweep.csv", index=False)
            histories.to_csv(staging / "histories.csv", index=False)
            best.save(staging / "model.safetensors")

    # the settings (key, header, how shown, priority), then the scores; a setting every member
    # shares goes into the title instead
    settings: list[tuple[str, str, Callable[[Any], str], int]] = [
        ("hidden", "hidden", str, 0),
        ("activation", "act", str, 3),
        ("optimizer", "opt", str, 3),
        ("lr", "lr", "{:g}".format, 2),
        ("weight_decay", "wd", "{:g}".format, 3),
        ("dropout", "drop", "{:g}".format, 3),
        ("seed", "seed", str, 4),
        ("epochs", "epochs", str, 2),
    ]
    varying = [s for s in settings if s[0] == "hidden" or len({r[s[0]] for r in rows}) > 1]
    shown = {key for key, *_ in varying}
    shared = [
        f"{label} {show(rows[0][key])}" for key, label, show, _ in settings if key not in shown
    ]
    columns = [
        *(Column(label, figures=key != "hidden", priority=p) for key, label, _, p in varying),
        Column("train acc", priority=5),
        Column("val acc ▼"),
        Column("test acc", priority=1),
        Column("test loss", priority=2),
    ]
    cells = [
        [
            *(show(r[key]) for key, _, show, _ in varying),
            *(f"{100 * r[f'{part}_accuracy']:.2f}%" for part in ("train", "val", "test")),
            f"{r['test_loss']:.4f}",
        ]
        for r in rows[:10]
    ]
    title = f"{len(members)} members on {data}, ranked by val acc (then val loss), top 10"
    if shared:
        title += f"\nevery member: {', '.join(shared)}"
    console = make_console()
    if not option.quiet:
        console.print(narrow_table(console, title, columns, cells), soft_wrap=False)
    console.print(f"results and the best model: {folder}")
