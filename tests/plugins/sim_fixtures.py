"""Fixtures of the simulated world (``arcray.sim``).

- ``sim_world``: a SMALL rendered world (one reduced APO night, 8 exposures x b1/r1 = 16 full-size
  frames, truth.parquet, world.json, mail archive), rendered once per test session; the fixture
  value is its ``arcray.paths.SimLayout``.
- ``sim_world_model``: the ``arcray.sim.world.SimWorld`` of that world (exposures, true states).
- ``sim_frame``: a function rendering one frame in memory from an explicit state, e.g.
  ``data, header = sim_frame("b1", "arc", dy=1.0)`` (see ``render_sim_frame``).
"""

from __future__ import annotations

from datetime import date

import pytest

SIM_WORLD_SEED = 11
SIM_WORLD_START = date(2023, 12, 1)


def render_sim_frame(camera: str = "b1", flavor: str = "arc", *, hartmann: str = "Out", dx: float = 0.0,
                     dy: float = 0.0, sigma: float = 1.0, A: float = 1.0, seed: int = 0, stow: bool | None = None):
    """``(uint16[4224, 4352], astropy Header)`` of one frame with an explicit calibration state."""
    from arcray.instrument import OBSERVATORY
    from arcray.sim.frames import render_frame
    from arcray.sim.schedule import sample_exposure
    from arcray.sim.state import CalibState

    exp = sample_exposure(flavor, hartmann, OBSERVATORY[camera], seed=seed, stow=stow)
    return render_frame(camera, exp, CalibState.nominal(dx=dx, dy=dy, sigma=sigma, A=A), seed)


@pytest.fixture(scope="session")
def sim_world(tmp_path_factory):
    from arcray.paths import SimLayout
    from arcray.sim.world import render_world

    root = tmp_path_factory.mktemp("sim_world")
    render_world(str(root), SIM_WORLD_START, 1, SIM_WORLD_SEED, "apo", reduced=True, workers=1)
    return SimLayout(str(root))


@pytest.fixture(scope="session")
def sim_world_model(sim_world):
    from arcray.sim.world import SimWorld

    return SimWorld.load(sim_world.root)


@pytest.fixture
def sim_frame():
    return render_sim_frame
