"""Train/val/test split by night: a deterministic hash of the MJD.

The split of a frame depends on its MJD only, so no night is in two splits, both cameras (and
every frame) of an exposure land in the same split, and adding a new month never moves an old
night: there is no global shuffle, no dependence on how many nights exist.
"""

from __future__ import annotations

import hashlib

import numpy as np

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.8, 0.1, 0.1)
SALT = "arcray-split-v1"


def _unit(mjd: int, salt: str) -> float:
    h = hashlib.sha256(f"{salt}:{int(mjd)}".encode()).digest()
    return int.from_bytes(h[:8], "big") / 2.0**64


def split_of_mjd(mjd: int, *, fractions: tuple[float, float, float] = DEFAULT_FRACTIONS,
                 salt: str = SALT) -> str:
    """``"train"``, ``"val"`` or ``"test"`` for one night."""
    u = _unit(mjd, salt)
    if u < fractions[0]:
        return "train"
    return "val" if u < fractions[0] + fractions[1] else "test"


def split_codes(mjds, **kw) -> np.ndarray:
    """Vectorised over an array of MJDs: 0 = train, 1 = val, 2 = test (int8)."""
    mjds = np.asarray(mjds).astype(np.int64).ravel()
    nights, inverse = np.unique(mjds, return_inverse=True)
    codes = np.array([SPLITS.index(split_of_mjd(int(m), **kw)) for m in nights], np.int8)
    return codes[inverse.ravel()] if len(mjds) else np.empty(0, np.int8)


def split_labels(mjds, **kw) -> np.ndarray:
    """``"train"``/``"val"``/``"test"`` per frame (object array) from its night: the labels of
    ``split_codes``."""
    return np.asarray(SPLITS, dtype=object)[split_codes(mjds, **kw)]
