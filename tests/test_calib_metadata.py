"""Header -> typed metadata: the real APO header, an LCO header, Hartmann, nulls, robustness."""

from __future__ import annotations

from datetime import datetime

import pyarrow as pa
import pytest

from arcray.calib.metadata import (FLOAT_COLUMNS, KEYWORDS, extract_metadata, lamp_count, metadata_schema,
                                   parse_frame_name)
from arcray.calib.reader import header_from_text, parse_card_value
from arcray.testing.frames import make_header
from arcray.errors import InputError
from arcray.instrument import example_header_text


def test_real_apo_header():
    hdr = header_from_text(example_header_text())
    m = extract_metadata(hdr)
    assert (m["camera"], m["expnum"], m["mjd"], m["flavor"], m["observatory"]) == ("b1", 380717, 60708, "arc", "apo")
    assert m["hartmann"] == "Out" and m["is_hartmann"] is False and m["is_subframe"] is False
    assert m["date_obs"] == datetime(2025, 2, 2, 12, 58, 40)
    assert m["MC1TEMDN"] == 3.9 and m["ALT"] == 37.661503 and m["ROTPOS"] == 47.6814
    assert m["COLLA"] == -58.0 and m["COLLB"] == 78.0 and m["EXPTIME"] == 4.09
    assert m["TAI-BEG"] == 5245217920.0 and m["PRESSURE"] == 21.507
    assert m["AIRTEMP"] == 0.0  # a stuck sensor is a value, not a null
    assert m["CONFID"] == 19024 and m["DESIGNID"] == 671546
    assert (m["NE"], m["HGCD"], m["FF"], m["FFS"]) == (4, 4, 0, 8)
    assert m["HEAR"] is None and m["T_OUT"] is None  # LCO keywords are null at APO
    n_apo = sum(m[k] is not None for k in FLOAT_COLUMNS)
    assert n_apo >= 35
    pa.Table.from_pylist([m], schema=metadata_schema())  # types fit the schema


def test_lco_header_uses_lco_keywords():
    hdr = make_header("r2", expnum=47123, mjd=60800, flavor="flat")
    m = extract_metadata(hdr)
    assert (m["camera"], m["observatory"], m["flavor"], m["expnum"]) == ("r2", "lco", "flat", 47123)
    assert m["R2CAMT"] == 11.0 and m["T_OUT"] == 14.2 and m["AIRMASS"] == 1.23 and m["HA"] == -0.4
    assert m["HEAR"] == 4 and m["HGCD"] is None
    assert m["MC1TEMDN"] is None and m["PRESSURE"] is None
    assert "GAIN" not in m and "RDNOISE" not in m  # static values, not measurements
    pa.Table.from_pylist([m], schema=metadata_schema())


def test_stow_position_nan_strings_and_minus999_become_null():
    hdr = make_header("b1", expnum=5, RA="NaN", DEC="NaN", SPA="NaN", DESIGNID=-999, FIELDID=-999,
                      ALT=-999.0, ROTPOS="garbage", UNKNOWNK=3.0)
    m = extract_metadata(hdr)
    assert m["RA"] is None and m["DEC"] is None and m["SPA"] is None and m["ROTPOS"] is None
    assert m["DESIGNID"] is None and m["FIELDID"] is None and m["ALT"] is None
    assert "UNKNOWNK" not in m


def test_missing_optional_keywords_never_crash():
    hdr = {"CAMERAS": "b1", "FLAVOR": "flat", "MJD": 60000, "EXPOSURE": 1}
    m = extract_metadata(hdr)
    assert m["flavor"] == "flat" and m["hartmann"] is None and m["date_obs"] is None
    assert all(m[k] is None for k in FLOAT_COLUMNS)


@pytest.mark.parametrize("drop", ["FLAVOR", "MJD", "CAMERAS"])
def test_missing_required_keywords_raise(drop):
    hdr = make_header("b1", expnum=7)
    del hdr[drop]
    with pytest.raises(InputError, match="missing keywords"):
        extract_metadata(hdr)


def test_file_name_wins_and_legacy_flavor():
    hdr = make_header("b1", expnum=7, flavor="TARGET", HARTMANN="right")
    m = extract_metadata(hdr, camera="b1", expnum=8)
    assert m["expnum"] == 8 and m["flavor"] == "science" and m["hartmann"] == "Right" and m["is_hartmann"]
    assert parse_frame_name("/x/60708/sdR-r1-00380718.fit.gz") == ("r1", 380718)
    assert parse_frame_name("/x/other.fits") is None


def test_card_values_and_lamps():
    assert parse_card_value("'It''s ok'   / c") == "It's ok"
    assert parse_card_value("                   T / x") is True
    assert parse_card_value("  -1.5D2 / x") == -150.0
    assert lamp_count("1 0 1 1") == 3 and lamp_count("1 1 1 1 1 1 1 1") == 8
    assert lamp_count("on") is None and lamp_count(None) is None
    assert set(KEYWORDS) == {"apo", "lco"}
