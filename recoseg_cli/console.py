"""Shared terminal output: a stderr console, progress bars and warnings that respect --quiet."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

console = Console(stderr=True, highlight=False)


def warn(message: str) -> None:
    """A warning line on stderr; shown even with --quiet."""
    console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def error(message: str) -> None:
    """An error line on stderr (one line, however long)."""
    console.print(f"[red]error:[/red] {escape(message)}", soft_wrap=True)


@contextmanager
def progress_bar(quiet: bool):
    """A rich progress display on stderr, disabled with --quiet; it disappears when done (or on an error), so
    that only the summary line or the error line stays."""
    progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                        TimeElapsedColumn(), TimeRemainingColumn(), TextColumn("{task.fields[info]}"),
                        console=console, disable=quiet or not console.is_terminal, transient=True)
    with progress:
        yield progress
