"""`arcray sim render`: write a simulated SDSS world (SAS frames, mail archives, truth)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Optional

import typer

from arcray.cli.apps import sim_app
from arcray.cli.options import Cameras, Progress, csv, smoke_option, workers_option
from arcray.errors import ConfigError
from arcray.sim.instrument_faults import DEFAULT_FAULT_RATE


@sim_app.command("render")
def render(
    out: Annotated[str, typer.Option("--out", help="Destination: the directory to write the new world "
                                                   "into (served by `arcray sim serve --root`).")],
    start: Annotated[str, typer.Option("--start", help="Local date of the first night (YYYY-MM-DD).")] = "2023-12-01",
    nights: Annotated[int, typer.Option("--nights", min=1, help="Number of nights.")] = 1,
    seed: Annotated[int, typer.Option("--seed", help="World seed: same seed, same bytes.")] = 0,
    observatory: Annotated[str, typer.Option("--observatory", help="apo (b1, r1) or lco (b2, r2).")] = "apo",
    cameras: Cameras = None,
    flavors: Annotated[Optional[str], typer.Option(
        "--flavors", help="Comma list of arc,flat,science,bias,dark to keep (default: all).")] = None,
    fields: Annotated[int, typer.Option("--fields", min=1, help="Fields per clear night (each: flat, arc, "
                                                              "science).")] = 13,
    workers: Annotated[int, workers_option("processes rendering frames")] = 2,
    no_frames: Annotated[bool, typer.Option("--no-frames", help="Skip raw frames (a server can render "
                                                               "them on request).")] = False,
    smoke: Annotated[bool, smoke_option("a tiny night of 8 exposures")] = False,
    fault_rate: Annotated[float, typer.Option(
        "--fault-rate", min=0.0, max=1.0,
        help="Fraction of arcs and flats with an instrument fault (labelled in truth.parquet).")] = DEFAULT_FAULT_RATE,
    progress: Progress = None,
) -> None:
    """Render nights of raw frames, monthly night-log archives, truth.parquet and world.json."""
    from arcray.paths import SimLayout
    from arcray.progress import progress_bar
    from arcray.sim.world import SimWorld, WorldSpec, render_world

    try:
        start_date = date.fromisoformat(start)
    except ValueError:
        raise ConfigError(f"--start {start!r} is not a date (YYYY-MM-DD)") from None
    spec = WorldSpec(start=start, nights=nights, seed=seed, observatory=observatory, cameras=cameras,
                     flavors=csv(flavors) or None, reduced=smoke, fields_per_night=fields, fault_rate=fault_rate)
    n_frames = 0 if no_frames else len(SimWorld(spec).frames())
    with progress_bar("render", n_frames, unit="frames", enabled=progress) as advance:
        world = render_world(out, start_date, nights, seed, observatory, cameras=spec.cameras,
                             flavors=spec.flavors, reduced=smoke, fields_per_night=fields, workers=workers,
                             write_frames=not no_frames, progress=advance, fault_rate=fault_rate)
    layout = SimLayout(out)
    typer.echo(f"exposures: {len(world.exposures)}  frames: {n_frames}")
    typer.echo(f"sas:       {layout.sas_root}")
    typer.echo(f"mailman:   {layout.mailman}")
    typer.echo(f"truth:     {layout.truth}")
