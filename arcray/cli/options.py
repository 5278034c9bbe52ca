"""The one CLI vocabulary: every stage command takes its common options from here.

- ``--root ROOT``: the pipeline root (``arcray.paths.Layout``), for every stage. ``--out`` appears
  only where a command writes to a *different* destination (``demo``, ``sim render``, and
  ``train``/``tune`` writing models into another root).
- ``--cameras b1,r1``: validated against ``arcray.instrument.CAMERAS`` when parsed (one line listing
  the valid ones); ``None`` = every camera that has the stage's input.
- ``--workers N``: the one word for a stage's parallelism (Ray actors, Ray Train workers or
  processes; each help says which).
- ``--address``: what Ray's own tools mean in that place: for a stage, the ``ray.init`` address
  (``RayAddress``); for ``submit``/``jobs``, the dashboard URL, as ``ray job submit --address``
  (``DashboardAddress``).
- ``--max-failures``: the per-item failure policy (``arcray.stages.MaxFailures``), on every stage
  that can fail per item.
- ``--smoke``: a few items, one epoch, for CI (each help says what it keeps).
- ``--progress/--no-progress``: progress bars (default: on a terminal only), where a stage draws one.

``tests/test_cli_vocabulary.py`` walks every command and enforces this.
"""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from arcray.errors import ConfigError
from arcray.stages import MaxFailures


def csv(text: str | None) -> tuple[str, ...]:
    """``"a, b,,c"`` -> ``("a", "b", "c")``; empty for None or ``""``."""
    return tuple(v.strip() for v in (text or "").split(",") if v.strip())


def ints(text: str, option: str) -> list[int]:
    """Comma-separated integers of ``option`` (``ConfigError`` otherwise)."""
    try:
        return [int(v) for v in csv(text)]
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated integers, got {text!r}") from None


def floats(text: str, option: str) -> list[float]:
    try:
        return [float(v) for v in csv(text)]
    except ValueError:
        raise ConfigError(f"{option} must be comma-separated numbers, got {text!r}") from None


def choices(text: str, option: str, valid) -> tuple[str, ...]:
    """Comma-separated names of ``option``, each one of ``valid`` (``ConfigError`` listing them)."""
    names = csv(text)
    bad = [n for n in names if n not in valid]
    if bad or not names:
        raise ConfigError(f"{option}: unknown {', '.join(bad) or '(none given)'}; "
                          f"valid: {', '.join(valid)}")
    return names


def parse_cameras(text: str | None) -> tuple[str, ...] | None:
    """``--cameras`` -> validated cameras, or None (every camera with input) for None/""/"all"."""
    from arcray.instrument import CAMERAS

    if text is None or text.strip() in ("", "all"):
        return None
    return choices(text, "--cameras", CAMERAS)


def parse_max_failures(text: str | None) -> MaxFailures:
    return MaxFailures.parse(text)


def _cameras_cb(value: str | None):
    return parse_cameras(value)


def _max_failures_cb(value: str | None):
    return parse_max_failures(value)


Root = Annotated[str, typer.Option(
    "--root", help="Pipeline root: a directory or a pyarrow/fsspec URI (s3://bucket/arcray).")]
Cameras = Annotated[Optional[str], typer.Option(
    "--cameras", callback=_cameras_cb, metavar="b1,r1",
    help="Comma-separated cameras (b1, r1, b2, r2; default: every camera with input).")]
MaxFailuresOpt = Annotated[Optional[str], typer.Option(
    "--max-failures", callback=_max_failures_cb, metavar="N|FRACTION",
    help="Failed items allowed before the exit code is 1 (after everything else was written): "
         "a count (3) or a fraction of the items (0.05 or 5%). Default 0.")]
RayAddress = Annotated[Optional[str], typer.Option(
    "--address", help="Ray cluster to run on, as ray.init(address=...) takes it: auto, HOST:6379 or "
                      "ray://HOST:10001 (default: RAY_ADDRESS, else a new local instance).")]
DashboardAddress = Annotated[str, typer.Option(
    "--address", envvar="RAY_API_SERVER_ADDRESS",
    help="Ray dashboard URL of the cluster, as `ray job submit --address` takes it: http://HEAD:8265.")]
Progress = Annotated[Optional[bool], typer.Option(
    "--progress/--no-progress", help="Progress bars (default: only on a terminal).")]
Flavor = Annotated[str, typer.Option("--flavor", help="Calibration flavor: arc or flat.")]
Latent = Annotated[int, typer.Option("--latent", help="Latent size of the registered models to use.")]


def workers_option(what: str) -> typer.models.OptionInfo:
    """``--workers``: the stage's parallelism; ``what`` says what runs in parallel."""
    return typer.Option("--workers", min=1, help=f"Parallel {what}.")


def smoke_option(what: str) -> typer.models.OptionInfo:
    """``--smoke``: the CI-sized run; ``what`` says what it keeps."""
    return typer.Option("--smoke", help=f"CI-sized run: {what}.")


def check_flavor(flavor: str) -> str:
    from arcray.instrument import STUDY_FLAVORS

    if flavor not in STUDY_FLAVORS:
        raise ConfigError(f"--flavor must be one of {', '.join(STUDY_FLAVORS)}, got {flavor!r}")
    return flavor


def check_latent(latent: int) -> int:
    if latent < 1:
        raise ConfigError(f"--latent must be >= 1, got {latent}")
    return latent
