"""Recurring ingestion: run a list of arcray stage commands for "last night" or "last months".

The Helm chart's schedules now run ``arcray night`` (``jobs/night.py --yesterday``, and
``arcray.deploy.backfill`` per night of a range, which uses ``context`` and ``run_steps`` below).
This driver remains for custom step lists, e.g. a RayJob of your own running::

    python -m arcray.deploy.recurring nightly --root /data/arcray \\
        --step "scrape --root {root} --months {month}" \\
        --step "download --base-url https://data.sdss5.org/sas/ --root {root} --mjd-min {mjd} --mjd-max {mjd}" \\
        --step "calibrate --root {root}"

Placeholders are filled at run time, so one static schedule always processes the right night:

- ``{root}``: the artefact root given with ``--root``.
- ``{mjd}``: SDSS MJD of the last *finished* observing night (``nightly``; ``--mjd`` overrides).
  An SDSS MJD is the MJD of the UTC morning that ends the night; APO's night ends by ~13:00 UTC,
  so the night counts as finished from ``NIGHT_END_UTC_H`` UTC on.
- ``{month}``: ``YYYY-MM`` of that morning (the month whose mailing-list archive carries its log).
- ``{months}``: ``YYYY-MM..YYYY-MM``, the ``--backfill-months`` whole months before the current
  one (``backfill``); ``{mjd_min}`` / ``{mjd_max}``: the first and last SDSS MJD in them.

Each step runs as ``python -m arcray <step>`` in a fresh process. Exit code 1 (some items failed;
they are in the stage's failures table) does not stop the next step, any other failure does. The
exit code is the worst one seen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import string
import subprocess
import sys

from arcray.errors import ConfigError

MJD_EPOCH = dt.datetime(1858, 11, 17, tzinfo=dt.timezone.utc)
NIGHT_END_UTC_H = 14.4  # hours after 00:00 UTC on the MJD's morning when the night is done
PLACEHOLDERS = ("root", "mjd", "month", "months", "mjd_min", "mjd_max")


def mjd_of(when: dt.datetime) -> float:
    """Modified Julian Date of an aware datetime."""
    return (when - MJD_EPOCH).total_seconds() / 86400.0


def date_of_mjd(mjd: int) -> dt.date:
    """UTC calendar date on which MJD ``mjd`` starts (the morning that ends SDSS night ``mjd``)."""
    return (MJD_EPOCH + dt.timedelta(days=int(mjd))).date()


def last_finished_night(now: dt.datetime) -> int:
    """SDSS MJD of the most recent night that has ended by ``now`` (aware datetime)."""
    if now.tzinfo is None:
        raise ConfigError("last_finished_night needs a timezone-aware time")
    return int((mjd_of(now) - NIGHT_END_UTC_H / 24.0) // 1)


def previous_months(today: dt.date, n: int) -> tuple[str, str]:
    """First and last ``YYYY-MM`` of the ``n`` whole months before ``today``'s month."""
    if n < 1:
        raise ConfigError(f"--backfill-months must be >= 1, got {n}")
    index = today.year * 12 + (today.month - 1)  # months since year 0 of today's month
    first, last = index - n, index - 1
    return f"{first // 12:04d}-{first % 12 + 1:02d}", f"{last // 12:04d}-{last % 12 + 1:02d}"


def _month_mjd_range(first: str, last: str) -> tuple[int, int]:
    y0, m0 = (int(x) for x in first.split("-"))
    y1, m1 = (int(x) for x in last.split("-"))
    start = dt.datetime(y0, m0, 1, tzinfo=dt.timezone.utc)
    nxt = dt.datetime(y1 + (m1 == 12), m1 % 12 + 1, 1, tzinfo=dt.timezone.utc)
    return int(mjd_of(start)), int(mjd_of(nxt)) - 1


def context(window: str, now: dt.datetime, *, mjd: int | None = None,
            backfill_months: int = 1, root: str = "") -> dict[str, str]:
    """Placeholder values for ``window`` (``nightly`` | ``backfill``) at time ``now``."""
    if window not in ("nightly", "backfill"):
        raise ConfigError(f"unknown window {window!r}: nightly or backfill")
    night = int(mjd) if mjd is not None else last_finished_night(now)
    first, last = previous_months(now.date(), backfill_months)
    lo, hi = _month_mjd_range(first, last)
    return {"root": root, "mjd": str(night), "month": date_of_mjd(night).strftime("%Y-%m"),
            "months": f"{first}..{last}", "mjd_min": str(lo), "mjd_max": str(hi)}


def fill(step: str, ctx: dict[str, str]) -> list[str]:
    """Split ``step`` like a shell and substitute ``{placeholders}``; ConfigError on unknown ones."""
    names = {f[1] for f in string.Formatter().parse(step) if f[1] is not None}
    unknown = sorted(n for n in names if n not in ctx)
    if unknown:
        raise ConfigError(f"unknown placeholder {{{unknown[0]}}} in step {step!r}; "
                          f"known: {', '.join('{' + p + '}' for p in PLACEHOLDERS)}")
    return shlex.split(step.format(**ctx))


def run_steps(steps: list[list[str]], runner=None) -> int:
    """Run each ``arcray`` command; stop at an exit code other than 0 or 1. Worst code wins."""
    runner = runner or (lambda args: subprocess.run([sys.executable, "-m", "arcray", *args]).returncode)
    worst = 0
    for i, args in enumerate(steps, 1):
        print(f"[recurring] step {i}/{len(steps)}: arcray {shlex.join(args)}", file=sys.stderr,
              flush=True)
        code = runner(args)
        worst = max(worst, code)
        if code not in (0, 1):
            print(f"[recurring] step {i} failed with exit code {code}; stopping", file=sys.stderr)
            break
    return worst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m arcray.deploy.recurring", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("window", choices=("nightly", "backfill"))
    p.add_argument("--step", action="append", required=True,
                   help="an arcray command with {placeholders} (repeatable, run in order)")
    p.add_argument("--root", default="", help="artefact root, substituted for {root}")
    p.add_argument("--mjd", type=int, help="process this night instead of the last one")
    p.add_argument("--backfill-months", type=int, default=1)
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = p.parse_args(argv)
    try:
        ctx = context(a.window, dt.datetime.now(dt.timezone.utc), mjd=a.mjd,
                      backfill_months=a.backfill_months, root=a.root)
        steps = [fill(s, ctx) for s in a.step]
    except ConfigError as exc:
        print(f"arcray: error: {exc}", file=sys.stderr)
        return exc.exit_code
    if a.dry_run:
        for args in steps:
            print(shlex.join(["arcray", *args]))
        return 0
    return run_steps(steps)


if __name__ == "__main__":
    sys.exit(main())
