"""arcray's own progress output: a rich bar per stage on a terminal, one line per stage everywhere.

The convention every stage command follows (``arcray.cli``; the demo does the same per stage)::

    with progress_bar("calibrate", total, unit="frames", enabled=progress) as advance:
        summary = run_calibrate(..., progress=advance)    # advance(n=1, **fields) per item
    echo(summary.line())                                  # "calibrate: 140 ok, 0 failed frames (16.2 s)"

The bar (on stderr) is drawn only on a terminal (or when ``enabled=True``); the stage's
``StageSummary.line()`` is the one line it prints when not on a terminal. Ray's own output is kept
off the terminal by ``arcray.raycluster`` (``terminal_session``).
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Callable, Iterator

Advance = Callable[..., None]


def on_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


@contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "items", transfer: bool = False,
                 enabled: bool | None = None) -> Iterator[Advance]:
    """Yield ``advance(n=1, **fields)``; shows files/bytes, rate and ETA (``transfer`` = bytes).

    ``advance(0, total=N)`` sets the total once known; ``description=...`` renames the bar."""
    from rich.console import Console
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

    enabled = on_terminal() if enabled is None else enabled
    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if transfer else [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, console=Console(stderr=True), disable=not enabled, transient=False) as prog:
        task = prog.add_task(description, total=total)

        def advance(n: float = 1, **fields) -> None:
            prog.update(task, advance=n, **fields)

        yield advance
