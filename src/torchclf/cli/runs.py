"""Runs that survive a crash: ``--resume`` and ``--checkpoint-every``, Ctrl-C, a failed run.

``train``, ``sweep`` and ``stream`` make their folder once the data is read
(``torchclf.report.start_run``) and train with checkpoints in it. :func:`run_options` gives a
resumed run the options it began with; :func:`keeping_the_work` turns Ctrl-C into one line and
exit code 130, and removes the folder of a new run that failed.
"""

from __future__ import annotations

import contextlib
import json
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from torchclf.cli import EXIT_INTERRUPTED
from torchclf.cli.inputs import command_line, typed_arguments

CheckpointEveryOption = Annotated[
    str,
    typer.Option(
        help="How often the whole training state is saved into the folder: auto (every 60 s), "
        "a number of epochs, or a time (30s, 5m). Ctrl-C saves it too."
    ),
]
ResumeOption = Annotated[
    Path | None,
    typer.Option(
        help="Finish an interrupted run: its folder. It goes on from its last checkpoint with "
        "the options it began with.",
        show_default=False,
    ),
]

NprocOption = Annotated[
    int,
    typer.Option(
        min=1,
        help="Train data-parallel on this many processes of this machine (it runs torchrun; "
        "across machines run torchrun -m torchclf yourself). --batch-size is the batch of all "
        "of them.",
    ),
]

# options a resumed run may change: what it shows and how often it checkpoints
# and on how many processes (a checkpoint is the same for any number)
FREE_ON_RESUME = frozenset(
    {"quiet", "log_every", "checkpoint_every", "resume", "tensorboard", "mlflow", "nproc"}
)


def run_options(
    context: typer.Context, typed: dict[str, Any], resume: Path | None
) -> tuple[dict[str, Any], str]:
    """The run's options and its command line: as typed, or (resuming) as the run began.

    Raises:
        typer.BadParameter: as :func:`resumed_options`, or for a bad ``--checkpoint-every``.
    """
    if resume is not None:
        typed, command = resumed_options(context, resume, typed)
    else:
        command = command_line(context)
    from torchclf import CheckpointInterval, ConfigError

    try:
        CheckpointInterval.parse(typed["checkpoint_every"])
    except ConfigError as error:
        raise typer.BadParameter(str(error), param_hint="'--checkpoint-every'") from error
    return typed, command


@contextlib.contextmanager
def keeping_the_work(command: str, folder: Path, resuming: bool) -> Iterator[None]:
    """Ctrl-C: one line saying how to resume, exit 130. A new run that fails leaves no folder.

    A checkpoint that cannot be written (a full disk) keeps the folder and its last checkpoint,
    and says how to resume. ``command``: the command's name ("train"); ``folder``: the run's.
    """
    from torchclf import CheckpointError, TrainingInterrupted

    made = [p for p in (folder.parent, *folder.parent.parents) if not p.exists()]
    advice = f"resume with: torchclf {command} --resume {folder}"
    try:
        yield
    except KeyboardInterrupt as interrupt:
        where = f" at epoch {interrupt.epoch}" if isinstance(interrupt, TrainingInterrupted) else ""
        typer.echo(f"interrupted{where}; {advice}", err=True)
        raise typer.Exit(EXIT_INTERRUPTED) from None
    except CheckpointError as error:  # a full disk: the run so far is kept, to resume
        raise CheckpointError(f"{error}; make room, then {advice}") from error
    except BaseException:
        if not resuming:  # a run that failed (bad data, a diverged loss) leaves no folder,
            shutil.rmtree(folder, ignore_errors=True)
            for parent in made:  # nor the folders made for it
                with contextlib.suppress(OSError):
                    parent.rmdir()
        raise


@contextlib.contextmanager
def on_processes(
    context: typer.Context, command: str, option: Any, choose_folder: Callable[[], Path]
) -> Iterator[tuple[Path, bool, int]]:
    """Run ``command`` on ``option.nproc`` processes, or on the ones it was started among.

    Yields the run folder, whether this process writes it (one process, or rank 0 of several,
    which all train) and how many processes train. With ``--nproc`` > 1 in a process that
    torchrun did not start, the command runs again on that many processes
    (``torchclf.distributed.launch``, with the options as typed) and this one exits with their
    exit code. Started by torchrun, it joins the others (gloo, or NCCL on CUDA), and leaves them
    at the end. Rank 0 chooses the folder (``choose_folder``) and tells the others; the others
    print nothing (``option.quiet``) and leave the folder alone, even when the run fails
    (:func:`keeping_the_work`).
    """
    from torchclf import distributed

    if option.nproc > 1 and not distributed.launched():
        arguments = ["-m", "torchclf", command, *typed_arguments(context, {"nproc"})]
        raise typer.Exit(distributed.launch(option.nproc, arguments))
    group = distributed.init_from_environment(option.device)
    try:
        main = group is None or group.is_main
        option.quiet = option.quiet or not main
        folder = choose_folder() if main else None
        if group is not None:
            folder = group.share(folder)
        assert folder is not None  # rank 0's
        with keeping_the_work(command, folder, resuming=option.resume is not None or not main):
            yield folder, main, 1 if group is None else group.world_size
    finally:
        distributed.close()


def resumed_options(
    context: typer.Context, folder: Path, options: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """The options and command ``folder``'s unfinished run began with.

    Raises:
        typer.BadParameter: when ``folder`` is not a run to resume, or an option typed now
            differs from the run's (named, with both values).
    """
    from torchclf import ConfigError
    from torchclf.report import unfinished_run

    try:
        command, saved = unfinished_run(folder)
    except ConfigError as error:
        raise typer.BadParameter(str(error), param_hint="'--resume'") from error
    for parameter in context.command.params:
        name = parameter.name
        if name is None or name in FREE_ON_RESUME or name not in saved:
            continue
        typed_now = getattr(context.get_parameter_source(name), "name", None) in (
            "COMMANDLINE",
            "ENVIRONMENT",
        )
        value = json.loads(json.dumps(options[name], default=str))  # as the run saved it
        if typed_now and value != saved[name]:
            raise typer.BadParameter(
                f"{parameter.opts[0]} {value} differs from the run's {saved[name]}: a run "
                "resumes with the options it began with (leave it out, or start a new run)",
                param_hint="'--resume'",
            )
    resumed = {**saved, **{name: options[name] for name in FREE_ON_RESUME if name in options}}
    resumed["out"] = Path(resumed["out"])
    return resumed, command


__all__ = [
    "FREE_ON_RESUME",
    "CheckpointEveryOption",
    "NprocOption",
    "ResumeOption",
    "keeping_the_work",
    "on_processes",
    "resumed_options",
    "run_options",
]
