"""What every stage returns, and the one policy that turns per-item failures into an exit code.

A stage function (``scrape``, ``run_download``, ``run_calibrate``, ``tune_cameras``, ``embed``,
``run_analyze``, ``run_regress``, ``build_report``, ...) never raises for a bad item: it writes
everything it can, lists what failed (a failures table, named by ``Layout``), and returns a
``StageSummary`` (or a subclass carrying stage-specific counts). The caller, the CLI command or the
demo, then asks ``MaxFailures.check(summary)``: more failed items than allowed raise
``PartialFailure`` (exit code 1) after everything else was written.

``--max-failures`` is a count (``3``) or a fraction of the stage's items (``0.05`` or ``5%``);
the default 0 allows none.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Mapping

from arcray.errors import ConfigError, PartialFailure


@dataclass(frozen=True)
class StageSummary:
    """The outcome of one stage run.

    ``n_ok``: items done by this run; ``n_skipped``: items already done by an earlier run and
    reused; ``n_failed``: items that failed (listed in ``failures``, a Layout path, when the stage
    keeps such a table). ``outputs``: name -> Layout path of what the run wrote. ``notes``: extra
    facts for the summary line (e.g. ``"1831.1 MB"``).
    """

    stage: str
    n_ok: int = 0
    n_failed: int = 0
    n_skipped: int = 0
    seconds: float = 0.0
    unit: str = "items"
    failures: str | None = None
    outputs: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    @property
    def n_total(self) -> int:
        return self.n_ok + self.n_skipped + self.n_failed

    def counts(self) -> str:
        """``140 ok, 0 failed``: items done now or before, and items that failed."""
        return f"{self.n_ok + self.n_skipped} ok, {self.n_failed} failed"

    def line(self) -> str:
        """The stage's one output line, e.g. ``calibrate: 140 ok, 0 failed (16.2 s)``."""
        extra = ", ".join([*self.notes, f"{self.seconds:.1f} s"])
        where = f"; failures in {self.failures}" if self.n_failed and self.failures else ""
        return f"{self.stage}: {self.counts()} {self.unit} ({extra}){where}"


@dataclass(frozen=True)
class MaxFailures:
    """How many failed items a stage may have and still succeed: a count, or a fraction of its
    items (``fraction=True``, ``0 < limit < 1``)."""

    limit: float = 0
    fraction: bool = False

    @classmethod
    def parse(cls, text: str | int | float | None) -> "MaxFailures":
        """``"0"``, ``"3"`` (count), ``"0.05"`` or ``"5%"`` (fraction). ``ConfigError`` otherwise."""
        if text is None:
            return cls()
        raw = str(text).strip()
        try:
            if raw.endswith("%"):
                value, frac = float(raw[:-1]) / 100.0, True
            elif any(c in raw for c in ".eE"):
                value, frac = float(raw), True
            else:
                value, frac = int(raw), False
        except ValueError:
            value, frac = math.nan, False
        if not math.isfinite(value) or value < 0 or (frac and value >= 1):
            raise ConfigError(f"--max-failures {raw!r}: give a count (0, 3) or a fraction of the "
                              "items below 1 (0.05 or 5%)")
        return cls(value, frac and value > 0)

    def allowed(self, n_total: int) -> int:
        """Failed items allowed among ``n_total``."""
        return int(math.floor(self.limit * n_total)) if self.fraction else int(self.limit)

    def exceeded(self, summary: StageSummary) -> bool:
        return summary.n_failed > self.allowed(summary.n_total)

    def check(self, *summaries: StageSummary) -> None:
        """Raise ``PartialFailure`` (exit code 1) when any summary has more failures than allowed."""
        over = [s for s in summaries if self.exceeded(s)]
        if not over:
            return
        detail = "; ".join(f"{s.stage} {s.n_failed} of {s.n_total} {s.unit} failed"
                           + (f" (listed in {s.failures})" if s.failures else "") for s in over)
        raise PartialFailure(f"{detail}; --max-failures allows {self.describe()}",
                             n_ok=sum(s.n_ok + s.n_skipped for s in over),
                             n_failed=sum(s.n_failed for s in over))

    def describe(self) -> str:
        return f"{self.limit * 100:g}% of the items" if self.fraction else f"{int(self.limit)}"
