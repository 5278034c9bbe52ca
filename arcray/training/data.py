"""Training data through Ray Data: calibrated frames of one (camera, flavor) -> view arrays, streamed.

Each split is its own lazy Ray Dataset: ``read_parquet`` on that split's files only (the split is
a function of the night, which the file's path names, so no frame is read to be thrown away), a
``map_batches`` that cuts the model's view out of each frame (``View.extract``, the same function
``arcray embed`` uses), then numeric columns only (``x`` float32 electrons, ``m`` uint8 mask,
``expnum``, ``mjd``) for the workers' ``get_dataset_shard(...).iter_torch_batches``. Nothing is
materialised: the workers stream the Parquet files every epoch (or keep their shard in memory
under a byte budget, ``loop.ShardBatches``), and the driver reads only bounded samples
(``PreparedData.arrays``: the normaliser fit, the PCA initialisation and the PCA/test scores).

Views by name (``TrainConfig.view``): ``window0`` and ``grid`` (``arcray.model.view``; the grid's
windows and their detector positions come from the calibrated files' metadata) and ``lines``
(line vectors, ``arcray.training.lines_data``).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

import numpy as np

from arcray.errors import InputError
from arcray.instrument import CAMERAS
from arcray.io import exists, list_files
from arcray.model.normalise import AsinhNormaliser
from arcray.model.split import SPLITS, split_codes
from arcray.model.view import View
from arcray.paths import Layout

_MJD_RE = re.compile(r"mjd=(\d+)")
KEEP = ["x", "m", "expnum", "mjd"]
DRIVER_SAMPLE = 512  # frames per split the driver reads at most (normaliser, PCA, scores)


def list_cameras(data_root: str, flavor: str) -> list[str]:
    """Cameras that have ``flavor`` frames in the calibrated dataset."""
    layout = Layout(data_root)
    found = sorted(c for c in CAMERAS if exists(layout.calibrated_partition(c, flavor)))
    if not found:
        raise InputError(f"no calibrated {flavor!r} frames under {layout.calibrated}")
    return found


def _mjd_of(path: str) -> int:
    m = _MJD_RE.search(str(path))
    if m is None:
        raise InputError(f"no mjd=<night> in the path {path}")
    return int(m.group(1))


class _ToView:
    """map_batches callable: calibrated rows -> ``x``, ``m``, ``split``, ``expnum``, ``mjd``."""

    def __init__(self, view: View):
        self.view = view

    def __call__(self, batch: dict) -> dict:
        x, m = self.view.extract(batch[self.view.column], batch.get(self.view.mask_column))
        mjd = np.array([_mjd_of(p) for p in batch["path"]], np.int32)
        return {"x": x, "m": m, "split": split_codes(mjd), "expnum": batch["expnum"].astype(np.int64),
                "mjd": mjd}


def calibrated_files(data_root: str, camera: str, flavor: str) -> list[str]:
    layout = Layout(data_root)
    path = layout.calibrated_partition(camera, flavor)
    files = sorted(list_files(path, ".parquet"))
    if not files:
        raise InputError(f"no calibrated frames for camera={camera} flavor={flavor} in {path}")
    return files


def files_by_split(files: list[str]) -> dict[str, list[str]]:
    """The files of each split (from the night in each path)."""
    codes = split_codes([_mjd_of(f) for f in files])
    return {name: [f for f, c in zip(files, codes) if c == i] for i, name in enumerate(SPLITS)}


def window_layout(data_root: str, first_file: str) -> dict:
    """The calibrated files' column ``names``, ``n_windows`` and window metadata (``views`` of the
    arcray schema metadata: window names, origins, size, trimmed shape; absent in test fixtures)."""
    import pyarrow.parquet as pq

    from arcray.tensors import tensor_shape

    fs, inner = Layout(data_root).filesystem(first_file)
    schema = pq.read_schema(inner, filesystem=fs)
    meta = (schema.metadata or {}).get(b"arcray")
    views = json.loads(meta).get("views", {}) if meta else {}
    n_win = tensor_shape(schema, "windows")[0] if "windows" in schema.names else 0
    return {"names": schema.names, "n_windows": int(n_win), **views}


def resolve_view(name: str, layout_meta: dict, *, size: int = 64) -> View:
    """The named image view on these files. Files without window names (test fixtures) count
    every window as a grid window."""
    names = layout_meta.get("window_names")
    if name == "grid" and names is None:
        names = [f"grid_{i}" for i in range(int(layout_meta.get("n_windows", 0)))]
    return View.named(name, names, size=size)


def window_positions(view: View, layout_meta: dict) -> list[tuple[float, float]] | None:
    """``(u, v)`` of each of the view's windows: centre column and row mapped to -1..1 over the
    trimmed frame; evenly spread along u when the files carry no origins (test fixtures)."""
    if not view.multi:
        return None
    origins, size = layout_meta.get("window_origins"), layout_meta.get("window_size")
    shape = layout_meta.get("trimmed_shape")
    if origins and size and shape:
        out = []
        for i in view.windows:
            r0, c0 = origins[i]
            out.append((2 * (c0 + size / 2) / shape[1] - 1, 2 * (r0 + size / 2) / shape[0] - 1))
        return out
    k = len(view.windows)
    return [(float(u), 0.0) for u in np.linspace(-1, 1, k)]


def read_split_dataset(files: list[str], view: View, *, with_mask: bool = True):
    """A lazy Ray Dataset of the view of ``files`` (one split): columns ``KEEP``."""
    import ray

    cols = ["expnum", view.column] + ([view.mask_column] if with_mask else [])
    ds = ray.data.read_parquet(files, columns=cols, include_paths=True, partitioning=None)
    return ds.map_batches(_ToView(view), batch_format="numpy", batch_size=8).select_columns(KEEP)


@dataclass
class PreparedData:
    """Lazy (streamed) view datasets per split + the normaliser fitted on training frames.

    ``view`` (None for line vectors), ``positions`` (grid windows' (u, v)), ``counts`` (frames
    per split, from the file names), ``sample_limit`` (frames the driver reads per split)."""

    train: object  # ray.data.Dataset, columns x, m, expnum, mjd (None when the split is empty)
    val: object
    test: object
    normaliser: object
    counts: dict
    view: View | None = None
    view_name: str = "window0"
    positions: list | None = None
    sample_limit: int = DRIVER_SAMPLE
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def ray_datasets(self) -> dict:
        return {"train": self.train, "val": self.val}

    def arrays(self, split: str, limit: int | None = None) -> dict:
        """numpy ``x``, ``m``, ``expnum``, ``mjd`` of at most ``min(limit, sample_limit)`` frames
        of a split, read on the driver once per (split, n): a bounded sample, never the dataset."""
        cap = self.sample_limit if limit is None else min(limit, self.sample_limit)
        n = min(cap, self.counts[split])
        if (split, n) not in self._cache:
            ds = getattr(self, split)
            if n == 0 or ds is None:
                out = {"x": np.zeros((0, 1, 1), np.float32), "m": np.zeros((0, 1, 1), np.uint8),
                       "expnum": np.zeros(0, np.int64), "mjd": np.zeros(0, np.int32)}
            else:
                out = ds.take_batch(n, batch_format="numpy")
            self._cache[(split, n)] = out
        return self._cache[(split, n)]

    def view_shape(self) -> tuple[int, ...]:
        """One sample's shape: ``(h, w)``, ``(n_win, h, w)`` (grid) or ``(D,)`` (line vectors)."""
        return tuple(np.asarray(self.arrays("train", 2)["x"]).shape[1:])


def prepare_data(data_root: str, camera: str, flavor: str, view: View | str, *,
                 max_frames: int | None = None, normaliser_sample: int = DRIVER_SAMPLE,
                 sample_limit: int = DRIVER_SAMPLE, size: int = 64) -> PreparedData:
    """Lazy per-split datasets of ``view`` (a ``View`` or a name: ``window0``, ``grid``, ``lines``)
    and the normaliser fitted on (a sample of) training frames.

    ``max_frames`` (smoke runs) keeps at most that many frames of each split; ``size``: side of
    a named image view's central crops, px."""
    if isinstance(view, str) and view == "lines":
        return _prepare_lines(data_root, camera, flavor, max_frames=max_frames,
                              sample_limit=sample_limit)
    files = calibrated_files(data_root, camera, flavor)
    meta = window_layout(data_root, files[0])
    name = view if isinstance(view, str) else ("grid" if view.multi else "window0")
    if isinstance(view, str):
        view = resolve_view(view, meta, size=size)
    if view.column not in meta["names"]:
        raise InputError(f"calibrated frames have no column {view.column!r}")
    per_split = files_by_split(files)
    datasets, counts = {}, {}
    for split in SPLITS:
        fs = per_split[split][:max_frames] if max_frames else per_split[split]
        counts[split] = len(fs)
        datasets[split] = (read_split_dataset(fs, view, with_mask=view.mask_column in meta["names"])
                           if fs else None)
    _check_counts(camera, flavor, counts)
    prepared = PreparedData(normaliser=AsinhNormaliser(), counts=counts, view=view, view_name=name,
                            positions=window_positions(view, meta), sample_limit=sample_limit,
                            **datasets)
    sample = prepared.arrays("train", normaliser_sample)
    prepared.normaliser = AsinhNormaliser.fit(sample["x"], sample["m"])
    return prepared


def _check_counts(camera: str, flavor: str, counts: dict) -> None:
    if counts["train"] == 0 or counts["val"] == 0:
        raise InputError(f"camera={camera} flavor={flavor}: need training and validation nights, "
                         f"got {counts} frames per split")


def _prepare_lines(data_root: str, camera: str, flavor: str, *, max_frames: int | None,
                   sample_limit: int) -> PreparedData:
    """Line vectors (``arcray.training.lines_data``), filtered per split."""
    from ray.data.expressions import col

    from arcray.training.lines_data import fit_line_normaliser, frame_key, line_files, read_line_dataset

    codes = split_codes([frame_key(p)[0] for p in line_files(data_root, camera)])
    ds = read_line_dataset(data_root, camera, flavor)
    datasets, counts = {}, {}
    for code, split in enumerate(SPLITS):
        n = int((codes == code).sum())
        counts[split] = min(n, max_frames) if max_frames else n
        part = ds.filter(expr=col("split") == code).select_columns(KEEP)
        datasets[split] = (part.limit(max_frames) if max_frames else part) if n else None
    _check_counts(camera, flavor, counts)
    prepared = PreparedData(normaliser=None, counts=counts, view=None, view_name="lines",
                            sample_limit=sample_limit, **datasets)
    sample = prepared.arrays("train")
    prepared.normaliser = fit_line_normaliser(sample["x"], sample["m"])
    return prepared
