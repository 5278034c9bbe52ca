"""Raw frames of the simulated world: format, detector, physics, determinism (full-size frames)."""

from __future__ import annotations

import gzip
import io
import warnings
from functools import lru_cache

import numpy as np
import pytest
from astropy.io import fits

from arcray.instrument import GEOMETRY, READ_NOISE_E, SATURATION_ADU, gains
from arcray.sim.frames import frame_bytes
from arcray.sim.header import build_header, template_cards
from arcray.sim.schedule import sample_exposure
from arcray.sim.state import CalibState
from tests.plugins.sim_fixtures import render_sim_frame


@lru_cache(maxsize=None)
def frame(camera="b1", flavor="arc", hartmann="Out", dx=0.0, dy=0.0, sigma=1.0, A=1.0, stow=False):
    data, header = render_sim_frame(camera, flavor, hartmann=hartmann, dx=dx, dy=dy, sigma=sigma, A=A, stow=stow)
    data.setflags(write=False)
    return data, header


@lru_cache(maxsize=None)
def gz_bytes(camera="b1", flavor="arc", seed=0):
    exp = sample_exposure(flavor, "Out", "apo" if camera.endswith("1") else "lco", seed=seed, stow=False)
    return frame_bytes(camera, exp, CalibState.nominal(), seed)


def header_of(camera, flavor, *, stow, hartmann="Out"):
    """Header alone (no pixels): cheap."""
    exp = sample_exposure(flavor, hartmann, "apo" if camera.endswith("1") else "lco", stow=stow)
    return build_header(camera, exp, 0)


def trimmed(camera, data):
    a0 = GEOMETRY[camera].amps[0]
    nr, nc = GEOMETRY[camera].trimmed_shape
    return data[a0.rows.start:a0.rows.start + nr, a0.cols.start:a0.cols.start + nc].astype(np.float64)


def test_gzip_fits_reads_in_astropy_and_fitsio_with_real_format(tmp_path):
    import fitsio

    path = tmp_path / "sdR-b1-00000001.fit.gz"
    path.write_bytes(gz_bytes())
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a bad CHECKSUM/DATASUM would warn
        with fits.open(path, checksum=True) as hdul:
            assert len(hdul) == 1
            hdr, data = hdul[0].header, hdul[0].data
            assert data.shape == (4224, 4352) and data.dtype == np.uint16
            assert hdr["BITPIX"] == 16 and hdr["BZERO"] == 32768 and hdr["BSCALE"] == 1
            assert hdr["NAXIS1"] == 4352 and hdr["NAXIS2"] == 4224
            astro = data.copy()
    fdata, fhdr = fitsio.read(str(path), header=True)
    assert fdata.dtype == np.uint16 and fdata.shape == (4224, 4352)
    assert np.array_equal(fdata, astro)
    assert fhdr["CAMERAS"].strip() == "b1" and fhdr["FLAVOR"].strip() == "arc"


def test_header_has_every_real_keyword_with_its_type():
    data, hdr = frame()
    for key, tval, _ in template_cards():
        assert key in hdr, key
        assert type(hdr[key]) is type(tval), (key, hdr[key], tval)
    assert hdr["AIRTEMP"] == 0.0 and hdr["DEWPOINT"] == 0.0
    assert hdr["NE"] == "1 1 1 1" and hdr["HGCD"] == "1 1 1 1" and hdr["FF"] == "0 0 0 0"
    assert hdr["HARTMANN"] == "Out" and hdr["CARTID"] == "FPS-N"
    assert 3.6e5 <= hdr["EXPOSURE"] <= 3.8e5
    assert hdr["FILENAME"] == f"sdR-b1-{hdr['EXPOSURE']:08d}.fit"
    assert abs(hdr["TAI-BEG"] / 86400.0 - (hdr["MJD"] + 0.5)) < 0.75


def test_stow_position_oddities():
    hdr = header_of("b1", "arc", stow=True)
    for key in ("RA", "DEC", "RADEG", "DECDEG", "SPA"):
        assert hdr[key] == "NaN"
    assert hdr["DESIGNID"] == -999 and hdr["FIELDID"] == -999
    assert hdr["WINDD25M"] == -999.0


def test_lco_header_uses_lco_keywords():
    hdr = header_of("b2", "arc", stow=False)
    for key in ("B2CAMT", "B2CAMH", "R2CAMT", "R2CAMH", "COLLT", "COLLH", "SPECMT", "MECHORIX", "T_OUT",
                "T_TRUSS", "AIRMASS", "HA", "HEAR"):
        assert key in hdr, key
    assert hdr["GAIN"] == 1.0 and hdr["RDNOISE"] == 2.7 and hdr["CARTID"] == "FPS-S"
    assert "MC1TEMDN" not in hdr and "HGCD" not in hdr
    assert isinstance(hdr["B2CAMT"], float)


@pytest.mark.parametrize("camera", ["b1", "r1"])
def test_overscan_holds_bias_and_read_noise_only(camera):
    data, hdr = frame(camera, "arc")
    g = gains(camera, hdr["MJD"])
    for amp in GEOMETRY[camera].amps:
        over = data[amp.rows, amp.overscan_cols].astype(np.float64)
        expected = READ_NOISE_E[camera] / g[amp.amp]
        assert 500 < over.mean() < 1200
        assert over.std() == pytest.approx(expected, rel=0.12), amp.amp
        assert np.abs(over - over.mean()).max() < 7 * expected


def test_brightest_arc_lines_come_near_saturation():
    data, _ = frame("b1", "arc")
    top = trimmed("b1", data).max()
    assert 0.8 * SATURATION_ADU < top <= SATURATION_ADU


def test_hartmann_subframe_rows_only():
    data, hdr = frame("b1", "arc", hartmann="Left", stow=None)
    assert hdr["HARTMANN"] == "Left" and hdr["SUBFROW1"] == 850 and hdr["SUBFROWN"] == 1400
    assert not data[:850].any() and not data[1400:].any()
    assert (data[850:1400] > 0).all()
    assert data[850:1400, 128:4224].max() > 10000  # lines are there


def _sse(a, b):
    return float(((a - b) ** 2).sum())


def test_dy_shifts_lines_along_rows():
    base, moved = trimmed("b1", frame("b1", "arc")[0]), trimmed("b1", frame("b1", "arc", dy=1.0)[0])
    core = (slice(100, -100), slice(100, -100))
    shifted = np.roll(base, 1, axis=0)
    assert _sse(moved[core], shifted[core]) < 0.2 * _sse(moved[core], base[core])


def test_dx_shifts_traces_along_columns():
    base, moved = trimmed("b1", frame("b1", "flat")[0]), trimmed("b1", frame("b1", "flat", dx=1.0)[0])
    core = (slice(100, -100), slice(100, -100))
    shifted = np.roll(base, 1, axis=1)
    assert _sse(moved[core], shifted[core]) < 0.2 * _sse(moved[core], base[core])


def test_flats_show_dy_only_through_the_trace_slope_but_show_sigma():
    """A flat's continuum has no lines: a dy moves its tilted traces across columns by the slope
    only (<= 0.016 px per px), far less than a dx of the same size."""
    base = trimmed("b1", frame("b1", "flat")[0])
    core = (slice(100, -100), slice(100, -100))
    by_dy = _sse(trimmed("b1", frame("b1", "flat", dy=1.0)[0])[core], base[core])
    by_dx = _sse(trimmed("b1", frame("b1", "flat", dx=1.0)[0])[core], base[core])
    assert by_dy < 0.03 * by_dx
    wide = trimmed("b1", frame("b1", "flat", sigma=1.3)[0])
    assert wide.max() < 0.9 * base.max()  # wider profile, lower peak


def test_same_seed_same_bytes_other_seed_other_bytes():
    a = gz_bytes("b1", "arc", seed=0)
    exp = sample_exposure("arc", "Out", "apo", seed=0, stow=False)
    assert frame_bytes("b1", exp, CalibState.nominal(), 0) == a
    bias = sample_exposure("bias", "Out", "apo", seed=0)
    assert frame_bytes("b1", bias, CalibState.nominal(), 0) != frame_bytes("b1", bias, CalibState.nominal(), 1)
    with fits.open(io.BytesIO(gzip.decompress(a))) as hdul:
        assert hdul[0].header["FLAVOR"] == "arc"
