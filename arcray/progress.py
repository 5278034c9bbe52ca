"""Progress reporting: a rich progress bar on a terminal, plain log lines elsewhere."""

from __future__ import annotations

import sys
from contextlib import contextmanager
from typing import Iterator


@contextmanager
def progress_bar(description: str, total: int | None, *, unit: str = "items", transfer: bool = False,
                 enabled: bool | None = None) -> Iterator:
    """Yield ``advance(n=1, **fields)``; shows files/bytes, rate and ETA (``transfer`` = bytes)."""
    from rich.progress import (BarColumn, DownloadColumn, MofNCompleteColumn, Progress, TextColumn,
                               TimeElapsedColumn, TimeRemainingColumn, TransferSpeedColumn)

    enabled = sys.stderr.isatty() if enabled is None else enabled
    columns = [TextColumn("[bold]{task.description}"), BarColumn()]
    columns += [DownloadColumn(), TransferSpeedColumn()] if transfer else [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TimeRemainingColumn()]
    with Progress(*columns, disable=not enabled, transient=False) as prog:
        task = prog.add_task(description, total=total)

        def advance(n: float = 1, **fields) -> None:
            prog.update(task, advance=n, **fields)

        yield advance
