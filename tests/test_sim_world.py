"""The simulated world: schedule cadence, true state, rendered tree, truth table, CLI."""

from __future__ import annotations

import json
import os
from collections import Counter
from datetime import date

import numpy as np
import pyarrow.parquet as pq
import pytest

from arcray.errors import ConfigError, InputError
from arcray.sim.schedule import ScheduleOptions, build_schedule
from arcray.optics import SIGMA_CLIP
from arcray.sim.state import header_part, simulate_states
from arcray.sim.world import TRUTH_SCHEMA, SimWorld, WorldSpec


@pytest.fixture(scope="module")
def month():
    exps = build_schedule(date(2023, 12, 1), 10, 5)
    return exps, simulate_states(exps, 5, fault_rate=0.0)


def test_real_cadence_per_night(month):
    exps, _ = month
    nights = Counter((e.mjd, e.flavor, e.is_hartmann) for e in exps)
    mjds = sorted({e.mjd for e in exps})
    assert len(mjds) == 10 and mjds[0] == 60280  # evening of 2023-12-01 at APO
    arcs = [nights[(m, "arc", False)] for m in mjds]
    flats = [nights[(m, "flat", False)] for m in mjds]
    assert np.median(arcs) == 15 and np.median(flats) == 15
    assert all(nights[(m, "arc", True)] >= 2 for m in mjds)  # a Hartmann pair every night
    assert all(nights[(m, "bias", False)] >= 1 and nights[(m, "science", False)] >= 1 for m in mjds)
    expnums = [e.expnum for e in exps]
    assert expnums == sorted(expnums) and len(set(expnums)) == len(expnums)
    assert 3.6e5 <= expnums[0] and expnums[-1] <= 3.8e5
    assert all(e.cameras == ("b1", "r1") for e in exps)


def test_collimator_steps_only_after_hartmann_tests(month):
    exps, _ = month
    moves = [(a, b) for a, b in zip(exps, exps[1:]) if (a.colla, a.collb, a.collc) != (b.colla, b.collb, b.collc)]
    assert moves, "the collimator never moved in 10 nights"
    assert all(a.hartmann == "Right" for a, _ in moves)


def test_hartmann_pairs_are_left_then_right(month):
    exps, _ = month
    for a, b in zip(exps, exps[1:]):
        if a.hartmann == "Left":
            assert b.hartmann == "Right" and b.expnum == a.expnum + 1


def test_state_is_header_part_plus_hidden_walk(month):
    exps, states = month
    for e in exps[::7]:
        for cam in e.cameras:
            s = states[(e.expnum, cam)]
            hx, hy, _, ha = header_part(cam, e)
            assert s.dx == pytest.approx(hx + s.dx_hidden) and s.dy == pytest.approx(hy + s.dy_hidden)
            assert s.A == pytest.approx(ha + s.A_hidden)
            assert 0.9 <= s.sigma <= 1.45 and SIGMA_CLIP[0] <= s.field.sigma(1.0, 1.0) <= SIGMA_CLIP[1]
    for cam in ("b1", "r1"):
        arcs = [states[(e.expnum, cam)] for e in exps if e.flavor == "arc"]
        dyh = np.array([s.dy_hidden for s in arcs])
        dy = np.array([s.dy for s in arcs])
        assert 0.05 < dyh.std() < 0.6  # a non-zero walk ...
        assert np.corrcoef(dyh[:-1], dyh[1:])[0, 1] > 0.5  # ... that is a walk, not white noise
        assert np.abs(dy).max() < 3.0 and dy.std() > 0.1
        assert np.std([s.dx_hidden for s in arcs]) > 0.03 and np.std([s.A_hidden for s in arcs]) > 0.005
    # dy's header part is linear in MC1TEMDN, the collimator tilt and flexure terms, and explains
    # most of dy; the hidden walk is the rest
    arcs = [e for e in exps if e.flavor == "arc"]
    env = [e.extra["env"] for e in arcs]
    X = np.column_stack([np.ones(len(arcs)), [v["MC1TEMDN"] for v in env], [e.colla - e.collb for e in arcs],
                         np.sin(np.radians([v["ALT"] for v in env])), np.sin(np.radians([v["ROTPOS"] for v in env]))])
    dy = np.array([states[(e.expnum, "b1")].dy for e in arcs])
    hy = dy - np.array([states[(e.expnum, "b1")].dy_hidden for e in arcs])
    resid = hy - X @ np.linalg.lstsq(X, hy, rcond=None)[0]
    assert resid.std() < 0.02  # only the MC1 sensor noise/rounding is left
    assert hy.var() > 0.5 * dy.var()


def test_bad_options_raise_config_errors():
    with pytest.raises(ConfigError):
        build_schedule(date(2023, 12, 1), 1, 0, "xyz")
    with pytest.raises(ConfigError):
        build_schedule(date(2023, 12, 1), 1, 0, "apo", ScheduleOptions(cameras=("b2",)))
    with pytest.raises(ConfigError):
        build_schedule(date(2023, 12, 1), 1, 0, "apo", ScheduleOptions(flavors=("zero",)))
    with pytest.raises(ConfigError):
        SimWorld(WorldSpec(start="2023-13-45", nights=1, seed=0))


def test_lco_schedule_has_lco_counters_and_cameras():
    exps = build_schedule(date(2025, 6, 1), 1, 0, "lco")
    assert all(e.cameras == ("b2", "r2") for e in exps)
    assert 4.0e4 < exps[0].expnum < 6.0e4
    assert {e.exptime for e in exps if e.flavor == "arc"} == {45.09}


@pytest.mark.slow  # renders full-size frames (the session's sim_world: 16 frames)
def test_rendered_world_tree_truth_and_json(sim_world, sim_world_model):
    world = sim_world_model
    truth = pq.read_table(sim_world.truth)
    assert truth.schema.remove_metadata().equals(TRUTH_SCHEMA)
    assert truth.num_rows == len(world.frames()) == 16
    for row in truth.to_pylist():
        assert os.path.exists(sim_world.raw_frame(row["camera"], row["mjd"], row["expnum"]))
    meta = json.load(open(sim_world.world_json))
    assert meta["spec"]["seed"] == 11 and meta["n_frames"] == 16
    flavors = Counter(truth.column("flavor").to_pylist())
    assert flavors == {"arc": 8, "flat": 4, "bias": 2, "science": 2}
    hart = Counter(truth.column("hartmann").to_pylist())
    assert hart["Left"] == 2 and hart["Right"] == 2


@pytest.mark.slow  # renders full-size frames (the session's sim_world: 16 frames)
def test_rerendered_frame_is_byte_identical_to_the_file(sim_world, sim_world_model):
    exp = next(e for e in sim_world_model.exposures if e.is_hartmann)
    path = sim_world.raw_frame("r1", exp.mjd, exp.expnum)
    assert SimWorld.load(sim_world.root).frame_bytes("r1", exp.expnum) == open(path, "rb").read()
    with pytest.raises(InputError):
        sim_world_model.frame_bytes("b1", 1)


@pytest.mark.slow  # renders full-size frames (the session's sim_world: 16 frames)
def test_world_mail_archive_lists_the_rendered_exposures(sim_world, sim_world_model):
    mailman = pytest.importorskip("arcray.sim.mailman")
    if not hasattr(mailman, "write_month_archives"):
        pytest.skip("mailman renderer not available")
    import gzip

    path = sim_world.month_archive(2023, "December")
    text = gzip.decompress(open(path, "rb").read()).decode()
    for e in sim_world_model.exposures:
        assert f"{e.expnum:08d}" in text


@pytest.mark.slow  # renders full-size frames (the session's sim_world: 16 frames)
def test_cli_render_selection_with_two_workers(tmp_path):
    from typer.testing import CliRunner

    from arcray.cli.main import _register
    from arcray.cli.apps import app

    _register()
    out = tmp_path / "w"
    res = CliRunner().invoke(app, ["sim", "render", "--out", str(out), "--smoke", "--seed", "4",
                                   "--cameras", "b1", "--flavors", "bias,science", "--workers", "2"])
    assert res.exit_code == 0, res.output
    truth = pq.read_table(out / "truth.parquet").to_pylist()
    assert [(r["camera"], r["flavor"]) for r in truth] == [("b1", "bias"), ("b1", "science")]
    world = SimWorld.load(str(out))
    full = SimWorld(WorldSpec(start="2023-12-01", nights=1, seed=4, reduced=True))
    for r in truth:  # a selection renders the same physics as the full world
        assert world.states[(r["expnum"], "b1")] == full.states[(r["expnum"], "b1")]
        path = out / "sas/sdsswork/data/boss/spectro/apo" / str(r["mjd"]) / f"sdR-b1-{r['expnum']:08d}.fit.gz"
        assert path.read_bytes() == world.frame_bytes("b1", r["expnum"])
    bad = CliRunner().invoke(app, ["sim", "render", "--out", str(out), "--start", "2023-02-30"])
    assert bad.exit_code != 0


def test_lco_world_without_frames_writes_truth_and_spec(tmp_path):
    from arcray.sim.world import render_world

    world = render_world(str(tmp_path), date(2025, 6, 1), 1, 9, "lco", reduced=True, write_frames=False)
    truth = pq.read_table(tmp_path / "truth.parquet").to_pylist()
    assert {r["camera"] for r in truth} == {"b2", "r2"} and len(truth) == 2 * len(world.exposures)
    assert not (tmp_path / "sas").exists()
    meta = json.load(open(tmp_path / "world.json"))
    assert meta["spec"]["observatory"] == "lco" and meta["frames_written"] is False
    assert meta["frames"][0].startswith("sas/sdsswork/data/boss/spectro/lco/")


def test_cli_fault_rate_option_labels_the_truth(tmp_path):
    from typer.testing import CliRunner

    from arcray.cli.apps import app
    from arcray.cli.main import _register

    _register()
    for rate, out in (("1.0", tmp_path / "all"), ("0", tmp_path / "none")):
        res = CliRunner().invoke(app, ["sim", "render", "--out", str(out), "--smoke", "--no-frames",
                                       "--fault-rate", rate])
        assert res.exit_code == 0, res.output
    every = pq.read_table(tmp_path / "all" / "truth.parquet").to_pandas()
    cal = every[every["flavor"].isin(["arc", "flat"])]
    assert cal.groupby("expnum")["fault"].apply(lambda f: f.notna().any()).all()
    assert pq.read_table(tmp_path / "none" / "truth.parquet").to_pandas()["fault"].isna().all()
    assert json.load(open(tmp_path / "all" / "world.json"))["spec"]["fault_rate"] == 1.0
    bad = CliRunner().invoke(app, ["sim", "render", "--out", str(tmp_path / "x"), "--fault-rate", "1.5"])
    assert bad.exit_code != 0
