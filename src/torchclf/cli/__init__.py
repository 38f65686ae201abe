"""The ``torchclf`` command line: a thin typer shell over the public API.

Every command is one function that calls the library; no training or model logic lives here.
Errors the user can fix (bad options, unknown datasets, missing or foreign model files, anything
raised as a ``TorchclfError``) print one line and exit with code 2, never a traceback; warnings
print one ``Warning:`` line each.

Only typer and click are imported at start-up: torch and the rest of torchclf load inside the
commands, so ``torchclf --help`` and argument errors return at once.

- ``__init__``: the app and its one-line error handling.
- ``train``: the train command; ``commands``: evaluate, predict, info, datasets, activations;
  ``improving``: improve and sweep; ``stream``: training on Parquet larger than memory.
- ``explaining``: explain, what drives a saved model's predictions.
- ``inputs``: turning options into values: number lists, run folders, the rows to score.
- ``output``: what the terminal shows: the epoch table, progress bar and metrics tables.
"""

from __future__ import annotations

import os
import sys
import warnings
from typing import Annotated, Any

import typer
from typer.core import TyperGroup

from torchclf import TorchclfError, TorchclfWarning

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a Ctrl-C
DATA_PARALLEL = ("train", "stream")  # the commands that run on several processes (--nproc)


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
                code = super().main(*args, standalone_mode=False, **kwargs)  # type: ignore[misc]
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
        except OSError as error:  # a file or folder the system refused: permissions, full disk
            where = f" '{error.filename}'" if error.filename else ""
            _fail(f"{error.strerror or error}:{where}")
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
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


@app.callback(invoke_without_command=True)
def _root(
    context: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", is_eager=True, help="Print torchclf's version and exit.")
    ] = False,
) -> None:
    """``torchclf`` alone prints its help and exits 0; ``--version``, the version."""
    if version:
        from torchclf import __version__

        typer.echo(f"torchclf {__version__}")
        raise typer.Exit()
    if context.invoked_subcommand is None:
        typer.echo(context.get_help())
        raise typer.Exit()
    # started by torchrun as one of several processes (its WORLD_SIZE), a command that does
    # not share its work would run as many times, each writing the same files
    launched = int(os.environ.get("WORLD_SIZE", "1")) > 1
    if launched and context.invoked_subcommand not in DATA_PARALLEL:
        raise typer.BadParameter(
            f"'torchclf {context.invoked_subcommand}' runs as one process; only "
            f"{' and '.join(DATA_PARALLEL)} run on several (torchrun, or --nproc): run it "
            "without torchrun"
        )


def main() -> None:
    """Entry point of the ``torchclf`` command."""
    app()


from torchclf.cli import train, commands, improving, stream, serve, explaining  # noqa: E402, F401, I001  (registers the commands on ``app``, in this order)

__all__ = ["app", "main"]
