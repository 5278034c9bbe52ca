"""`arcray demo`: the whole pipeline on a small simulated world (the README's main command)."""

from __future__ import annotations

from typing import Annotated

import typer

from arcray.cli.apps import app


@app.command("demo")
def demo(
    out: Annotated[str, typer.Option("--out", help="Directory for the world, the pipeline and the report.")]
    = "demo-out",
    nights: Annotated[int, typer.Option("--nights", min=3, help="Simulated nights (>= 3: train/val/test).")] = 8,
    seed: Annotated[int, typer.Option("--seed", help="World seed.")] = 7,
    fields: Annotated[int, typer.Option("--fields", min=1, help="Fields per night (one arc each).")] = 8,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Maximum epochs per Tune trial.")] = 12,
    smoke: Annotated[bool, typer.Option("--smoke", help="Tiny run for CI: 2 fields a night, "
                                                        "1 epoch, latents 2 and 4, tiny model.")] = False,
) -> None:
    """Render a simulated world, serve it, and run scrape -> download -> calibrate -> tune ->
    embed -> analyze -> regress -> decode -> report on a local Ray instance."""
    from arcray.pipeline.demo import DemoConfig, run_demo

    cfg = DemoConfig(nights=nights, seed=seed, fields_per_night=fields, epochs=epochs)
    if smoke:
        cfg = cfg.model_copy(update={"fields_per_night": 2, "epochs": 1, "latents": (2, 4), "arch": "tiny",
                                     "analysis_latent": 2})
    res = run_demo(out, cfg, echo=typer.echo)
    typer.echo("")
    typer.echo("seconds per stage: " + ", ".join(f"{k} {v:.0f}" for k, v in res.seconds.items()))
    typer.echo(f"world:    {res.world}")
    typer.echo(f"pipeline: {res.root}")
    typer.echo(f"report:   {res.report}")
