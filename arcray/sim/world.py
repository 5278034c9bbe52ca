"""Render a whole simulated world: SAS tree of raw frames, truth table, world.json, mail archives.

``render_world(out_dir, start, nights, seed)`` writes, below ``SimLayout(out_dir)``:

- ``sas/sdsswork/data/boss/spectro/<obs>/<mjd>/sdR-<cam>-<expnum:08d>.fit.gz`` (one per camera file);
- ``truth.parquet``: one row per (expnum, camera), schema ``arcray.sim.truth.TRUTH_SCHEMA`` (the
  whole-detector state, header and hidden parts, fault label; docs/design.md);
- ``world.json``: the ``WorldSpec`` (seed and parameters) so a server can re-render any frame
  byte-identically with ``SimWorld.load(root).frame_bytes(camera, expnum)``;
- ``mailman/<YYYY>-<Month>.txt.gz`` via ``arcray.sim.mailman.write_month_archives``.

Frames are rendered in ``workers`` processes (spawned; each rebuilds the world from its spec,
which is cheap and deterministic). Every write is atomic; a rerun replaces files with the same bytes.
"""

from __future__ import annotations

import json
import logging
import os
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field, replace
from datetime import date
from functools import lru_cache
from multiprocessing import get_context
from typing import Callable

import pyarrow as pa

from arcray import __version__
from arcray.errors import ConfigError, InputError
from arcray.io import atomic_write_bytes, atomic_write_json, atomic_write_parquet, provenance
from arcray.paths import SimLayout
from arcray.sim.instrument_faults import DEFAULT_FAULT_RATE
from arcray.sim.schedule import ScheduleOptions, build_schedule
from arcray.sim.state import CalibState, simulate_states
from arcray.sim.truth import TRUTH_SCHEMA, truth_row, truth_table
from arcray.sim.types import SimExposure

log = logging.getLogger(__name__)
__all__ = ["TRUTH_SCHEMA", "SimWorld", "WorldSpec", "render_world"]


@dataclass(frozen=True)
class WorldSpec:
    """Everything a world is rendered from (stored as ``world.json``)."""

    start: str  # ISO date of the first night (local date of the evening)
    nights: int
    seed: int
    observatory: str = "apo"
    cameras: tuple[str, ...] | None = None
    flavors: tuple[str, ...] | None = None
    reduced: bool = False
    fields_per_night: int = 13
    science_per_field: int = 1
    fault_rate: float = DEFAULT_FAULT_RATE  # fraction of arcs and flats with an instrument fault
    hidden_scale: float = 1.0  # scales every hidden walk together (experiments; 1 = the spec's sizes)
    extra: dict = field(default_factory=dict, compare=False, hash=False)

    def options(self) -> ScheduleOptions:
        return ScheduleOptions(reduced=self.reduced, fields_per_night=self.fields_per_night,
                               science_per_field=self.science_per_field, cameras=self.cameras,
                               flavors=self.flavors)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("extra")
        return d

    @classmethod
    def from_json(cls, d: dict) -> "WorldSpec":
        keys = {k: d[k] for k in cls.__dataclass_fields__ if k in d and k != "extra"}
        for k in ("cameras", "flavors"):
            if keys.get(k) is not None:
                keys[k] = tuple(keys[k])
        return cls(**keys)


class SimWorld:
    """The exposures and true states of one world spec (pure; nothing is written)."""

    def __init__(self, spec: WorldSpec):
        try:
            start = date.fromisoformat(spec.start)
        except ValueError as exc:
            raise ConfigError(f"bad start date {spec.start!r} (want YYYY-MM-DD)") from exc
        if not 0.0 <= spec.fault_rate <= 1.0:
            raise ConfigError(f"fault rate must be within 0..1, got {spec.fault_rate}")
        if spec.hidden_scale < 0:
            raise ConfigError(f"hidden_scale must be >= 0, got {spec.hidden_scale}")
        self.spec = spec
        # The physics runs on the full schedule, so a selection (cameras/flavors) renders the very
        # same exposures and states as the full world, only fewer of them.
        opts = spec.options()
        full = build_schedule(start, spec.nights, spec.seed, spec.observatory, replace(opts, flavors=None))
        self.states: dict[tuple[int, str], CalibState] = simulate_states(
            full, spec.seed, fault_rate=spec.fault_rate, hidden_scale=spec.hidden_scale)
        self.exposures: list[SimExposure] = [e for e in full if opts.flavors is None or e.flavor in opts.flavors]
        self._by_expnum = {e.expnum: e for e in self.exposures}

    @classmethod
    def load(cls, root: str) -> "SimWorld":
        """The world whose ``world.json`` is in ``root``."""
        path = SimLayout(root).world_json
        if not os.path.exists(path):
            raise InputError(f"no simulated world at {root} (missing world.json)")
        with open(path) as f:
            return _cached_world(json.dumps(json.load(f)["spec"], sort_keys=True))

    def frames(self) -> list[tuple[str, SimExposure]]:
        """Every (camera, exposure) file of the world, in time order."""
        return [(cam, e) for e in self.exposures for cam in e.cameras]

    def exposure(self, expnum: int) -> SimExposure:
        try:
            return self._by_expnum[int(expnum)]
        except KeyError:
            raise InputError(f"exposure {expnum} is not in this simulated world") from None

    def frame_bytes(self, camera: str, expnum: int) -> bytes:
        """The gzip FITS bytes of ``sdR-<camera>-<expnum>.fit.gz`` (byte-identical to the written file)."""
        from arcray.sim.frames import frame_bytes

        exp = self.exposure(expnum)
        if camera not in exp.cameras:
            raise InputError(f"exposure {expnum} has no {camera} file")
        return frame_bytes(camera, exp, self.states[(exp.expnum, camera)], self.spec.seed)

    def truth_table(self) -> pa.Table:
        """``TRUTH_SCHEMA`` rows of every frame of the world, by (expnum, camera)."""
        frames = sorted(self.frames(), key=lambda ce: (ce[1].expnum, ce[0]))
        return truth_table([truth_row(cam, e, self.states[(e.expnum, cam)]) for cam, e in frames])


@lru_cache(maxsize=4)
def _cached_world(spec_json: str) -> SimWorld:
    return SimWorld(WorldSpec.from_json(json.loads(spec_json)))


def _render_one(spec_json: str, camera: str, expnum: int, path: str) -> tuple[str, int]:
    """Worker: render one camera file of the world and write it atomically."""
    data = _cached_world(spec_json).frame_bytes(camera, expnum)
    atomic_write_bytes(path, data)
    return path, len(data)


def render_world(out_dir: str, start: date, nights: int, seed: int, observatory: str = "apo", *,
                 cameras: tuple[str, ...] | None = None, flavors: tuple[str, ...] | None = None,
                 reduced: bool = False, fields_per_night: int = 13, science_per_field: int = 1,
                 workers: int = 1, write_frames: bool = True,
                 progress: Callable[[int], None] | None = None,
                 fault_rate: float = DEFAULT_FAULT_RATE, hidden_scale: float = 1.0) -> SimWorld:
    """Render the world into ``out_dir`` (see module doc); returns the ``SimWorld``.

    ``progress(n)`` is called once per frame written. ``write_frames=False`` skips the raw frames
    (a server can render them on request from ``world.json``). ``fault_rate``: fraction of arcs and
    flats with an instrument fault (labelled in the truth); ``hidden_scale``: multiplies every
    hidden walk (1 = calibration-state.md's sizes)."""
    spec = WorldSpec(start=start.isoformat(), nights=int(nights), seed=int(seed), observatory=observatory,
                     cameras=tuple(cameras) if cameras else None, flavors=tuple(flavors) if flavors else None,
                     reduced=reduced, fields_per_night=fields_per_night, science_per_field=science_per_field,
                     fault_rate=float(fault_rate), hidden_scale=float(hidden_scale))
    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    world = SimWorld(spec)
    if not world.exposures:
        raise ConfigError("the selection (cameras/flavors) leaves no exposure to render")
    layout = SimLayout(os.path.abspath(out_dir))
    jobs = [(cam, e.expnum, layout.raw_frame(cam, e.mjd, e.expnum)) for cam, e in world.frames()]
    if write_frames:
        _render_frames(spec, jobs, workers, progress)
    atomic_write_parquet(layout.truth, world.truth_table(),
                         provenance(None, ["sim.render"], seed=spec.seed, spec=spec.to_json()))
    archives = _write_mail(world, layout)
    atomic_write_json(layout.world_json, {
        "arcray_version": __version__, "spec": spec.to_json(), "n_exposures": len(world.exposures),
        "n_frames": len(jobs), "frames_written": write_frames,
        "frames": [os.path.relpath(p, layout.root) for _, _, p in jobs],
        "mailman": [os.path.relpath(p, layout.root) for p in archives]})
    return world


def _render_frames(spec: WorldSpec, jobs: list, workers: int, progress) -> None:
    spec_json = json.dumps(spec.to_json(), sort_keys=True)
    if workers == 1:
        for cam, expnum, path in jobs:
            _render_one(spec_json, cam, expnum, path)
            if progress:
                progress(1)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_render_one, spec_json, cam, expnum, path) for cam, expnum, path in jobs]
        for fut in as_completed(futures):
            fut.result()
            if progress:
                progress(1)


def _write_mail(world: SimWorld, layout: SimLayout) -> list[str]:
    """Monthly mail archives by ``arcray.sim.mailman`` (skipped, with a warning, if absent)."""
    try:
        from arcray.sim import mailman
    except ImportError:
        mailman = None
    writer = getattr(mailman, "write_month_archives", None)
    if writer is None:
        log.warning("arcray.sim.mailman.write_month_archives is not available: no mail archives written")
        return []
    return list(writer(world.exposures, layout.mailman, world.spec.seed, states=world.states))

