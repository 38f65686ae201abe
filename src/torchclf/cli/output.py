"""What the terminal shows: the epoch table with its progress bar, and metrics tables."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


def examples(*commands: str) -> str:
    """A command's help epilog: its example command lines, kept as written.

    The help is click's plain formatter (fast: no rich import), which rewraps paragraphs except
    those that start with a backspace line.
    """
    return "Examples:\n\n\b\n" + "\n".join(f"  {command}" for command in commands)


def make_console() -> Any:
    """A rich console that never wraps long lines (they stay greppable)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


def metrics_tables(console: Any, evaluation: Any, title: str) -> None:
    """Print the overall metrics and the per-class table of an Evaluation."""
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


class EpochTable:
    """Progress bar plus a row of the tutorial's table every ``every`` epochs.

    Nothing is printed before the first epoch ends (a resumed run's first: the heading comes
    then), so a parameter that ``fit`` rejects leaves only its one-line error on the screen.
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
        if not self.started:  # the first epoch, or a resumed run's first
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


def heading(data: str, summary: dict[str, Any]) -> str:
    """The data in one or two lines, printed above the epoch table."""
    dropped = summary.get("dropped (missing target)", 0)
    lines = [
        f"[bold]{data}[/]: {summary['rows']} rows"
        + (f" ({dropped} without a target, dropped)" if dropped else "")
        + f", {summary['features']} features; classes: {summary['class balance']}",
        f"train {summary['train rows']}"
        + (f" ({summary['validation']})" if summary.get("validation") else "")
        + f", test {summary['test rows']}",
    ]
    if summary.get("id-like columns left out"):
        lines.append(f"left out as id-like: {', '.join(summary['id-like columns left out'])}")
    if summary["missing values"] != "none":
        lines.append(f"missing values: {summary['missing values']}")
    if summary.get("processes"):
        lines.append(
            f"data-parallel on {summary['processes']} processes, each taking its share of "
            "every batch"
        )
    return "\n".join(lines)


__all__ = ["EpochTable", "heading", "make_console", "metrics_tables"]


@dataclass(frozen=True)
class Column:
    """A column of a :func:`narrow_table`: figures are never cut; text may wrap."""

    header: str
    figures: bool = True  # right-aligned, kept whole; else text, which wraps
    priority: int = 0  # 0: always shown; the highest leave first when the terminal is narrow
    wrap_at: int = 14  # text: the width it wraps down to before a column is left out


def narrow_table(
    console: Any, title: str, columns: Sequence[Column], rows: Sequence[Sequence[str]]
) -> Any:
    """A rich table that fits ``console.width`` with every figure whole.

    Columns leave, the highest priority number first, until the rest fit; the caption names
    those left out. Text columns wrap (down to their ``wrap_at``), sharing the width left over
    in proportion to their longest cell.
    """
    from rich import box
    from rich.table import Table

    widest = [max([len(c.header), *(len(row[i]) for row in rows)]) for i, c in enumerate(columns)]
    least = [w if c.figures else min(w, c.wrap_at) for w, c in zip(widest, columns, strict=True)]

    def spare(shown: list[int]) -> int:  # columns are 3 apart: a space of padding each side
        return console.width - sum(least[i] + 3 for i in shown) + 3

    shown = list(range(len(columns)))
    by_priority = sorted(shown, key=lambda i: (columns[i].priority, i))
    while spare(shown) < 0 and columns[by_priority[-1]].priority:
        shown.remove(by_priority.pop())
    widths = {i: least[i] for i in shown}
    wrapping = [i for i in shown if widest[i] > least[i]]
    extra, wanted = max(spare(shown), 0), sum(widest[i] - least[i] for i in wrapping)
    for i in wrapping:  # rich's own sharing may settle a few columns wider than the terminal
        widths[i] += min(widest[i] - least[i], extra * (widest[i] - least[i]) // wanted)
    left_out = [columns[i].header for i in range(len(columns)) if i not in shown]
    table = Table(
        title=title,
        title_justify="left",
        caption=f"left out at {console.width} columns: {', '.join(left_out)}" if left_out else None,
        caption_justify="left",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
    )
    for i in shown:
        if columns[i].figures:
            table.add_column(columns[i].header, justify="right", no_wrap=True, width=widths[i])
        else:
            table.add_column(columns[i].header, overflow="fold", width=widths[i])
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table
