"""`arcray demo`: the whole pipeline on a small simulated world (the README's main command)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Optional

import typer

from arcray.cli.apps import app
from arcray.cli.options import MaxFailuresOpt, Progress, smoke_option


@app.command("demo")
def demo(
    out: Annotated[str, typer.Option("--out", help="Destination: a directory for the world (OUT/world) and "
                                                   "the pipeline root (OUT/pipeline, report included).")]
    = "demo-out",
    start: Annotated[Optional[datetime], typer.Option("--start", formats=["%Y-%m-%d"],
                                                      help="Local date of the first night.")] = None,
    nights: Annotated[Optional[int], typer.Option("--nights", min=3, help="Simulated nights (the MJD hash "
                                                  "must give train, val and test nights).")] = None,
    seed: Annotated[Optional[int], typer.Option("--seed", help="World seed.")] = None,
    fields: Annotated[Optional[int], typer.Option("--fields", min=1, help="Fields per night.")] = None,
    epochs: Annotated[Optional[int], typer.Option("--epochs", min=1, help="Maximum epochs per Tune trial.")] = None,
    grid: Annotated[bool, typer.Option("--grid", help="Also tune the detector-grid model (grid_res) at latent "
                                                      "4: about 3.5 more minutes on 2 cores.")] = False,
    smoke: Annotated[bool, smoke_option("5 nights of one field, 1 epoch, latent 2, tiny model "
                                        "(overrides the options above)")] = False,
    max_failures: MaxFailuresOpt = None,
    progress: Progress = None,
) -> None:
    """Render a simulated world, serve it, and run scrape -> download -> calibrate -> tune ->
    embed -> analyze -> regress -> decode -> report on a local Ray instance. Options left out take
    the defaults of ``arcray.pipeline.demo.DemoConfig``."""
    from arcray.pipeline.demo import SMOKE, DemoConfig, run_demo
    from arcray.progress import progress_bar

    given = {"start": start.date() if start else None, "nights": nights, "seed": seed,
             "fields_per_night": fields, "epochs": epochs, "grid_latents": (4,) if grid else None}
    cfg = DemoConfig(**{k: v for k, v in given.items() if v is not None})
    if smoke:
        cfg = cfg.model_copy(update=SMOKE)
    res = run_demo(out, cfg, echo=typer.echo,
                   progress_factory=lambda d, n, u: progress_bar(d, n, unit=u, enabled=progress))
    typer.echo("")
    typer.echo("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in res.seconds.items()))
    typer.echo(f"world:    {res.world}")
    typer.echo(f"pipeline: {res.root}")
    typer.echo(f"report:   {res.report}")
    max_failures.check(*res.summaries)
