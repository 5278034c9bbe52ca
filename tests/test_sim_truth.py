"""The truth table and the pure scoring API of the simulated world (no frames)."""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import pandas as pd
import pytest

from arcray import optics
from arcray.errors import InputError
from arcray.optics import FIELD_TERMS, Field
from arcray.sim import truth as T
from arcray.sim.world import SimWorld, WorldSpec


@lru_cache(maxsize=None)
def world(scale=1.0, rate=0.1, nights=3):
    return SimWorld(WorldSpec(start="2023-12-01", nights=nights, seed=3, fault_rate=rate, hidden_scale=scale))


@lru_cache(maxsize=None)
def table(scale=1.0, rate=0.1, nights=3) -> pd.DataFrame:
    return world(scale, rate, nights).truth_table().to_pandas()


def test_truth_rows_split_every_term_and_keep_the_first_version_columns():
    t, w = table(), world()
    assert len(t) == len(w.frames()) and list(t.columns) == T.TRUTH_SCHEMA.names
    for term in FIELD_TERMS:
        np.testing.assert_allclose(t[term], t[term + "_header"] + t[term + "_hidden"], atol=1e-12)
    for old, new in (("dx", "a0"), ("dy", "b0"), ("sigma", "s0"), ("dx_hidden", "a0_hidden"),
                     ("dy_hidden", "b0_hidden"), ("sigma_hidden", "s0_hidden")):
        np.testing.assert_allclose(t[old], t[new])
    arcs, flats = t[t.flavor == "arc"], t[t.flavor == "flat"]
    assert t["lamp_HeAr"].isna().all()  # APO: no HeAr lamp
    clean_arcs = arcs[arcs.fault.isna()]
    np.testing.assert_allclose(clean_arcs["A"], (clean_arcs["lamp_Ne"] + clean_arcs["lamp_HgCd"]) / 2)
    assert (flats["lamp_Ne"] == 0).all() and (flats[flats.fault.isna()]["lamp_FF"] > 0.8).all()
    for lp in ("Ne", "HgCd", "FF"):
        np.testing.assert_allclose(t[f"lamp_{lp}"], t[f"lamp_{lp}_header"] + t[f"lamp_{lp}_hidden"], atol=1e-12)
    assert set(t[t.fault.isna()]["fault_detail"].isna()) == {True}
    row = t.iloc[5]
    assert T.field_of(row) == w.states[(int(row.expnum), row.camera)].field


def test_faults_live_in_the_hidden_part_and_the_label():
    t = table(rate=1.0)
    jumps = t[t.fault == "focus_jump"]
    assert len(jumps) and (jumps["s0_hidden"] > 0.15).all()
    out = t[t.fault == "no_light"]
    assert len(out) and (out["A"] == 0).all() and (out[["lamp_Ne", "lamp_HgCd", "lamp_FF"]] == 0).all().all()
    lamp_out = t[t.fault == "lamp_out"]
    assert len(lamp_out) and ((lamp_out["lamp_Ne"] == 0) ^ (lamp_out["lamp_HgCd"] == 0)).all()
    assert lamp_out["fault_detail"].str.match(r"^lamp=(Ne|HgCd)$").all()


def test_true_lines_and_line_error_go_through_optics():
    t = table()
    row = t[(t.flavor == "arc")].iloc[3]
    f = T.field_of(row)
    x, y, s = T.true_lines(row)
    ox, oy, os_ = optics.line_positions(row.camera, f)
    np.testing.assert_array_equal(x, ox)
    np.testing.assert_array_equal(y, oy)
    np.testing.assert_array_equal(s, os_)
    assert T.line_error(f, row)["xy"] == 0.0
    e = T.line_error(Field.from_array(f.as_array() + np.r_[0.1, np.zeros(11)]), row)
    assert e["x"] == pytest.approx(0.1) and e["y"] == 0.0
    many = T.line_errors(t.iloc[:6], T.coeffs_of(t.iloc[:6], "header"))
    for i in range(6):
        one = T.line_error(T.field_of(t.iloc[i], "header"), t.iloc[i])
        assert many.iloc[i]["xy"] == pytest.approx(one["xy"]) and many.iloc[i]["sigma"] == pytest.approx(one["sigma"])


def test_floors_use_the_latest_clean_arc_of_the_night():
    t = table(rate=0.1, nights=4)
    fl = T.floors(t)
    assert list(fl.index) == list(t.index)
    usable = T.usable_arcs(t)
    for i in t.index[::23]:
        r = t.loc[i]
        earlier = t[(t.camera == r.camera) & (t.mjd == r.mjd) & (t.expnum < r.expnum) & usable]
        want = earlier.expnum.max() if len(earlier) else None
        got = fl.loc[i, "ref_expnum"]
        assert (pd.isna(got) and want is None) or got == want
        if want is not None:
            ref = earlier[earlier.expnum == want].iloc[0]
            pred = Field.from_array(T.coeffs_of(t.loc[[i]], "header")[0] + T.coeffs_of(ref.to_frame().T, "hidden")[0])
            assert fl.loc[i, "floor_ref_xy"] == pytest.approx(T.line_error(pred, r)["xy"])
        assert fl.loc[i, "floor_meta_xy"] == pytest.approx(T.line_error(T.field_of(r, "header"), r)["xy"])
    with_ref = fl.dropna(subset=["floor_ref_xy"])
    # an earlier arc of the night helps: the walks moved less since then than they are large
    assert with_ref["floor_ref_xy"].median() < with_ref["floor_meta_xy"].median()
    assert 0.05 < fl["floor_meta_xy"].median() < 0.6
    whole = T.floors(t, same_night=False)
    assert whole["ref_expnum"].notna().sum() > fl["ref_expnum"].notna().sum()


def test_floors_vanish_without_hidden_walks_and_need_the_columns():
    t = table(scale=0.0, rate=0.0)
    fl = T.floors(t)
    assert fl["floor_meta_xy"].max() < 1e-12 and fl["floor_ref_xy"].max() < 1e-12
    with pytest.raises(InputError):
        T.floors(t.drop(columns=["a1_hidden"]))
