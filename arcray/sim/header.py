"""Raw-frame headers of the simulated world, and their FITS encoding with valid checksums.

APO headers carry every keyword of the real example ``sdR-b1-00380717`` (``arcray.instrument.
example_header_text()``), in its order, with its comments and value types; values come from the
exposure's ``extra["env"]`` (schedule) and per-camera detector values. The real oddities are
kept: ``'NaN'`` strings for RA/DEC/RADEG/DECDEG/SPA at the stow position, ``-999`` for
DESIGNID/FIELDID there, AIRTEMP/DEWPOINT stuck at 0.0, WINDD25M/WINDS25M/M1YTRAN at -999.0.
Hartmann sub-frames add ``SUBFROW1=850``/``SUBFROWN=1400``.

LCO headers (b2/r2) swap the APO-only keywords (MC1*, HGCD, APO weather, V_APO) for the LCO ones
of ``boss-formats.md``: B2CAMT/B2CAMH/R2CAMT/R2CAMH, COLLT/COLLH (collimator temperature and
humidity: a simulator reading of the names), SPECMT, MECHORIX/Y/Z, T_OUT..T_TRUSS, AIRMASS, HA,
HEAR, and the static GAIN=1.0 / RDNOISE=2.7 that are not measurements.

``encode_header`` writes 2880-byte blocks with CHECKSUM/DATASUM computed as the FITS checksum
convention prescribes (ones' complement sums, ASCII encoding), so astropy/fitsio verify them.
"""

from __future__ import annotations

from datetime import datetime
from functools import lru_cache

import numpy as np
from astropy.io import fits

from arcray.instrument import CARTID, example_header_text
from arcray.sim.schedule import mjd_of
from arcray.sim.types import SimExposure

SUBFRAME_ROWS = (850, 1400)  # Hartmann sub-frame: numpy rows 850:1400 hold data, others are 0
BLOCK = 2880

_APO_ONLY = ("V_APO", "PRESSURE", "WINDD", "WINDS", "GUSTD", "GUSTS", "AIRTEMP", "DEWPOINT",
             "TRUSTEMP", "HUMIDITY", "DUSTA", "DUSTB", "WINDD25M", "WINDS25M", "HGCD", "MC1HUMHT",
             "MC1HUMCO", "MC1TEMDN", "MC1THT", "MC1TRCB", "MC1TRCT", "MC1TBCB", "MC1TBCT")
_LCO_CARDS = (
    ("HEAR", "HeAr Arc lamps 1:on 0:off", "NE"),
    ("B2CAMT", "sp2 b2 camera temperature, C", "HARTMANN"),
    ("B2CAMH", "sp2 b2 camera humidity, %", "B2CAMT"),
    ("R2CAMT", "sp2 r2 camera temperature, C", "B2CAMH"),
    ("R2CAMH", "sp2 r2 camera humidity, %", "R2CAMT"),
    ("COLLT", "sp2 collimator temperature, C", "R2CAMH"),
    ("COLLH", "sp2 collimator humidity, %", "COLLT"),
    ("SPECMT", "sp2 mech median temperature, C", "COLLH"),
    ("MECHORIX", "sp2 mech orientation X", "SPECMT"),
    ("MECHORIY", "sp2 mech orientation Y", "MECHORIX"),
    ("MECHORIZ", "sp2 mech orientation Z", "MECHORIY"),
    ("T_OUT", "Outside temperature, C", "SCALE"),
    ("T_IN", "Inside dome temperature, C", "T_OUT"),
    ("T_PRIM", "Primary mirror temperature, C", "T_IN"),
    ("T_CELL", "Mirror cell temperature, C", "T_PRIM"),
    ("T_FLOOR", "Dome floor temperature, C", "T_CELL"),
    ("T_TRUSS", "Truss temperature, C", "T_FLOOR"),
    ("AIRMASS", "Airmass at start of exposure", "ALT"),
    ("HA", "Hour angle (h)", "AIRMASS"),
    ("GAIN", "Nominal gain (not a measurement)", "CCDTEMP"),
    ("RDNOISE", "Nominal read noise (not a measurement)", "GAIN"),
)
_DETECTOR = {  # (LN2TEMP, CCDTEMP, IONPUMP) typical values per camera
    "b1": (94.9, -99.6, -6.38), "r1": (95.3, -119.8, -6.52),
    "b2": (93.1, -100.2, -6.71), "r2": (93.6, -120.1, -6.60),
}


@lru_cache(maxsize=None)
def template_cards() -> tuple[tuple[str, object, str], ...]:
    """``(keyword, value, comment)`` of the real example header, in order (comments cut at col 80)."""
    out = []
    for line in example_header_text().splitlines():
        if line.strip() and not line.startswith("END"):
            card = fits.Card.fromstring(line[:80].ljust(80))
            out.append((card.keyword, card.value, card.comment))
    return tuple(out)


def _coerce(template_value: object, value: object) -> object:
    """Give ``value`` the template's type (the 'NaN' string stays a string, as at the stow)."""
    if isinstance(value, str) or value is None:
        return value
    if isinstance(template_value, bool):
        return bool(value)
    if isinstance(template_value, int):
        return int(value)
    if isinstance(template_value, float):
        return float(value)
    return value


def _camera_values(camera: str, exp: SimExposure, rng: np.random.Generator) -> dict:
    ln2, ccd, ion = _DETECTOR[camera]
    date_obs: datetime = exp.date_obs
    vals = {
        "FILENAME": f"sdR-{camera}-{exp.expnum:08d}.fit", "CAMERAS": camera, "EXPOSURE": exp.expnum,
        "FLAVOR": exp.flavor, "MJD": exp.mjd, "TAI-BEG": round(mjd_of(date_obs) * 86400.0, 1),
        "DATE-OBS": date_obs.strftime("%Y-%m-%dT%H:%M:%S"), "CARTID": CARTID[exp.observatory],
        "CONFID": exp.config_id, "DESIGNID": exp.design_id, "FIELDID": exp.field_id,
        "HARTMANN": exp.hartmann, "COLLA": exp.colla, "COLLB": exp.collb, "COLLC": exp.collc,
        "LN2TEMP": round(ln2 + rng.normal(0, 0.2), 3), "CCDTEMP": round(ccd + rng.normal(0, 0.05), 3),
        "IONPUMP": round(ion + rng.normal(0, 0.02), 2),
        "SUBFRAME": "", "OFFPA": 0.0 if exp.config_id < 0 else -420.0,
    }
    if exp.observatory == "lco":
        vals |= {"TELESCOP": "du Pont 2.5m", "MECHORIX": round(rng.normal(0.0, 0.01), 4),
                 "MECHORIY": round(rng.normal(0.0, 0.01), 4), "MECHORIZ": round(rng.normal(1.0, 0.001), 4),
                 "GAIN": 1.0, "RDNOISE": 2.7}
    elif exp.is_hartmann:
        vals["SUBFRAME"] = f"{SUBFRAME_ROWS[0]} {SUBFRAME_ROWS[1]}"
    return vals


def build_header(camera: str, exp: SimExposure, seed: int) -> fits.Header:
    """The header of ``camera``'s file of exposure ``exp`` (CHECKSUM/DATASUM still zero)."""
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3, exp.expnum, ord(camera[0])]))
    values = dict(exp.extra.get("env", {})) | _camera_values(camera, exp, rng)
    lco = exp.observatory == "lco"
    cards = []
    for key, tval, comment in template_cards():
        if lco and key in _APO_ONLY:
            continue
        if key == "CHECKSUM":
            value = "0" * 16
        elif key == "DATASUM":
            value = "0"
        else:
            value = _coerce(tval, values.get(key, tval))
        cards.append(fits.Card(key, value, comment))
        if key == "SUBFRAME" and exp.is_hartmann and not lco:
            cards.append(fits.Card("SUBFROW1", SUBFRAME_ROWS[0], "first row of the subframe readout"))
            cards.append(fits.Card("SUBFROWN", SUBFRAME_ROWS[1], "last row of the subframe readout"))
    header = fits.Header(cards)
    if lco:
        for key, comment, after in _LCO_CARDS:
            v = values.get(key, 0.0)
            header.insert(after, fits.Card(key, float(v) if not isinstance(v, str) else v, comment), after=True)
    return header


def ones_complement_sum(data: bytes | np.ndarray, start: int = 0) -> int:
    """32-bit ones' complement sum of big-endian words (length a multiple of 4)."""
    words = np.frombuffer(data, dtype=">u4") if isinstance(data, (bytes, bytearray, memoryview)) else data
    total = int(words.sum(dtype=np.uint64)) + start
    while total >> 32:
        total = (total & 0xFFFFFFFF) + (total >> 32)
    return total


_EXCLUDE = frozenset(range(0x3A, 0x41)) | frozenset(range(0x5B, 0x61))


def encode_checksum(value: int) -> str:
    """FITS ASCII encoding of a 32-bit checksum (the complement is encoded by the caller)."""
    asc = [0] * 16
    for i in range(4):
        byte = (value >> (24 - 8 * i)) & 0xFF
        quotient, remainder = byte // 4 + 0x30, byte % 4
        ch = [quotient + remainder, quotient, quotient, quotient]
        changed = True
        while changed:
            changed = False
            for j in (0, 2):
                if ch[j] in _EXCLUDE or ch[j + 1] in _EXCLUDE:
                    ch[j] += 1
                    ch[j + 1] -= 1
                    changed = True
        for j in range(4):
            asc[4 * j + i] = ch[j]
    asc = asc[-1:] + asc[:-1]
    return bytes(asc).decode("ascii")


def encode_header(header: fits.Header, datasum: int) -> bytes:
    """Header bytes (2880-byte blocks) with DATASUM and a CHECKSUM valid for the whole HDU."""
    h = header.copy()
    h["DATASUM"] = str(datasum)
    h["CHECKSUM"] = "0" * 16
    raw = h.tostring(padding=True).encode("ascii")
    hsum = ones_complement_sum(raw, datasum)
    h["CHECKSUM"] = encode_checksum((~hsum) & 0xFFFFFFFF)
    header["DATASUM"], header["CHECKSUM"] = h["DATASUM"], h["CHECKSUM"]
    return h.tostring(padding=True).encode("ascii")
