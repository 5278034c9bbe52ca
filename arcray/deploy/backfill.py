"""Backfill: run ``arcray night --mjd N`` for every night of an MJD range, oldest first.

The chart's backfill job (RayCronJob or CronJob -> RayJob) runs::

    python -m arcray.deploy.backfill --root /data/arcray --months 1 -- --base-url https://...

Why a loop over ``arcray night --mjd N`` rather than one ``--mjd-min/--mjd-max`` run: the night is
the unit that ``arcray night`` judges (one exit code, one verdict per camera per night), reruns reuse
what a night already wrote, and a failed night is named in the log by its MJD. Each night runs as
``python -m arcray night`` in a fresh process on the job's Ray cluster (``RAY_ADDRESS`` is set by
the submitter).

The range is either fixed (``--mjd-min A --mjd-max B``, both inclusive) or the ``--months`` whole
calendar months before the current one (UTC), computed at run time, so one static schedule always
covers the right nights (``arcray.deploy.recurring.context``). Options after ``--`` go to every
``arcray night`` (base URLs, ``--skip-ingest``, ``--workers``...). Credentials come from the
environment (``ARCRAY_*_USER``, ``ARCRAY_*_PASSWORD_FILE``), never from the command line.

Exit code: a night that ends with 1 (a red camera) does not stop the next night; any other failure
(2 bad options or credentials, 3 a remote service kept failing, 4 the Ray cluster) stops the loop,
since it would fail every later night too. The exit code is the worst one seen.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shlex
import sys

from arcray.deploy import recurring
from arcray.errors import ConfigError

MAX_NIGHTS = 1100  # three years: a typo in --mjd-max should not queue decades of nights


def night_range(now: dt.datetime, *, mjd_min: int | None, mjd_max: int | None,
                months: int) -> tuple[int, int]:
    """Inclusive MJD range: the fixed one if both ends are given, else the ``months`` before now."""
    if (mjd_min is None) != (mjd_max is None):
        raise ConfigError("give both --mjd-min and --mjd-max, or neither (then --months)")
    if mjd_min is None:
        ctx = recurring.context("backfill", now, backfill_months=months)
        mjd_min, mjd_max = int(ctx["mjd_min"]), int(ctx["mjd_max"])
    if mjd_max < mjd_min:
        raise ConfigError(f"--mjd-max {mjd_max} is before --mjd-min {mjd_min}")
    if mjd_max - mjd_min + 1 > MAX_NIGHTS:
        raise ConfigError(f"{mjd_max - mjd_min + 1} nights is more than {MAX_NIGHTS}; split the backfill")
    return mjd_min, mjd_max


def night_commands(root: str, lo: int, hi: int, extra: list[str]) -> list[list[str]]:
    """One ``arcray night`` argument list per night, oldest first."""
    return [["night", "--root", root, "--mjd", str(n), *extra] for n in range(lo, hi + 1)]


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    extra: list[str] = []
    if "--" in argv:
        i = argv.index("--")
        argv, extra = argv[:i], argv[i + 1:]
    p = argparse.ArgumentParser(prog="python -m arcray.deploy.backfill", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", required=True, help="artefact root given to every night")
    p.add_argument("--mjd-min", type=int, help="first night (SDSS MJD, inclusive)")
    p.add_argument("--mjd-max", type=int, help="last night (SDSS MJD, inclusive)")
    p.add_argument("--months", type=int, default=1,
                   help="without --mjd-min/--mjd-max: the whole months before the current one")
    p.add_argument("--dry-run", action="store_true", help="print the commands only")
    a = p.parse_args(argv)
    try:
        lo, hi = night_range(dt.datetime.now(dt.timezone.utc), mjd_min=a.mjd_min,
                             mjd_max=a.mjd_max, months=a.months)
    except ConfigError as exc:
        print(f"arcray: error: {exc}", file=sys.stderr)
        return exc.exit_code
    commands = night_commands(a.root, lo, hi, extra)
    if a.dry_run:
        for args in commands:
            print(shlex.join(["arcray", *args]))
        return 0
    print(f"[backfill] nights {lo}..{hi} ({len(commands)})", file=sys.stderr, flush=True)
    return recurring.run_steps(commands)


if __name__ == "__main__":
    sys.exit(main())
