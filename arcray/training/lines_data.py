"""Training data of the line representation through Ray Data: per-arc line tables -> line vectors.

The file list of ``Layout.measured_lines_partition(camera)`` goes into a dataset of paths; a
``map_batches`` task reads each file (one arc) and turns it into its line vector
(``arcray.model.linevec``), so tables are read on the workers and never collected on the driver.
Columns match ``training.data._ToView``'s: ``x`` float32 ``[D]`` (``AEConfig.input_shape`` of a
``line_mlp`` model: ``width_px = D``, ``height = 1``), ``m`` uint8 ``[D]`` (1 = masked), ``split``
(the night's code, ``model.split``), ``expnum`` int64, ``mjd`` int32. The normaliser of line
vectors is ``fit_line_normaliser`` (a ``StandardNormaliser``, one scale per dx/dy/sigma_y block).

A file that cannot be read becomes a frame with every slot masked and is counted by
``read_line_dataset``'s caller through the mask, never a dead job.
"""

from __future__ import annotations

import re

import numpy as np

from arcray.errors import InputError
from arcray.io import list_files
from arcray.model.linevec import COMPONENTS, KEY_COLUMNS, LineIndex
from arcray.model.normalise import StandardNormaliser
from arcray.model.split import split_codes
from arcray.paths import Layout

_MJD_RE = re.compile(r"mjd=(\d+)")
_EXP_RE = re.compile(r"sdR-[br][12]-(\d+)\.parquet$")


def line_files(data_root: str, camera: str) -> list[str]:
    """The per-line tables of every measured arc of ``camera``."""
    path = Layout(data_root).measured_lines_partition(camera)
    files = sorted(list_files(path, ".parquet"))
    if not files:
        raise InputError(f"no measured line tables for camera={camera} in {path} (run arcray calibrate)")
    return files


def frame_key(path: str) -> tuple[int, int]:
    """``(mjd, expnum)`` from a line table's name."""
    m, e = _MJD_RE.search(path), _EXP_RE.search(path)
    if not (m and e):
        raise InputError(f"not a line table name: {path}")
    return int(m.group(1)), int(e.group(1))


def read_line_vector(index: LineIndex, path: str, filesystem=None) -> tuple[np.ndarray, np.ndarray]:
    """One arc's line vector ``(x [D], m [D])``; an unreadable file gives an all-masked vector."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path, columns=list(KEY_COLUMNS), filesystem=filesystem)
    except (OSError, ValueError, KeyError):
        return np.zeros(index.size, np.float32), np.ones(index.size, np.uint8)
    return index.to_vector(table)


class _ToLineVector:
    """map_batches callable: rows of ``path`` -> ``x``, ``m``, ``split``, ``expnum``, ``mjd``."""

    def __init__(self, data_root: str, index: dict):
        self.data_root, self.index = data_root, LineIndex.from_dict(index)

    def __call__(self, batch: dict) -> dict:
        paths = [str(p) for p in batch["path"]]
        layout = Layout(self.data_root)
        xs, ms = [], []
        for p in paths:
            fs, inner = layout.filesystem(p)
            x, m = read_line_vector(self.index, inner, fs)
            xs.append(x)
            ms.append(m)
        keys = np.array([frame_key(p) for p in paths], np.int64).reshape(-1, 2)
        mjd = keys[:, 0].astype(np.int32)
        return {"x": np.stack(xs), "m": np.stack(ms), "split": split_codes(mjd),
                "expnum": keys[:, 1], "mjd": mjd}


def read_line_dataset(data_root: str, camera: str, flavor: str = "arc", *, line_ids=None):
    """A Ray Dataset of the line vector of every measured arc of ``camera``, with its split code."""
    import ray

    if flavor != "arc":
        raise InputError(f"line vectors exist for arcs only, not {flavor!r}")
    index = LineIndex.for_camera(camera, line_ids)
    items = [{"path": p} for p in line_files(data_root, camera)]
    return ray.data.from_items(items).map_batches(_ToLineVector(data_root, index.to_dict()),
                                                  batch_format="numpy", batch_size=8)


def fit_line_normaliser(x: np.ndarray, m: np.ndarray | None = None) -> StandardNormaliser:
    """The line vectors' normaliser: one (mean, std) per ``COMPONENTS`` block, fitted on training
    vectors ``[N, D]``."""
    return StandardNormaliser.fit(x, m, groups=len(COMPONENTS))
