"""``torchclf train --resume``: the options a run began with, against those typed now."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

# options a resumed run may change: what it shows and how often it checkpoints
FREE_ON_RESUME = frozenset({"quiet", "log_every", "checkpoint_every", "resume"})


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


__all__ = ["FREE_ON_RESUME", "resumed_options"]
