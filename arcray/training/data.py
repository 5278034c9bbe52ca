"""Training data through Ray Data: calibrated frames of one (camera, flavor) -> view arrays.

``read_parquet`` on ``calibrated/camera=<cam>/flavor=<flavor>/``, a ``map_batches`` that cuts the
model's view out of each frame (``View.extract``, the same function ``arcray embed`` uses) and
labels the night's split, then numeric columns only (``x`` float32 [h, w] electrons, ``m`` uint8
mask) for the workers' ``get_dataset_shard(...).iter_torch_batches``.
"""

from __future__ import annotations

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


def list_cameras(data_root: str, flavor: str) -> list[str]:
    """Cameras that have ``flavor`` frames in the calibrated dataset."""
    layout = Layout(data_root)
    found = sorted(c for c in CAMERAS if exists(layout.calibrated_partition(c, flavor)))
    if not found:
        raise InputError(f"no calibrated {flavor!r} frames under {layout.calibrated}")
    return found


class _ToView:
    """map_batches callable: calibrated rows -> ``x``, ``m``, ``split``, ``expnum``, ``mjd``."""

    def __init__(self, view: View):
        self.view = view

    def __call__(self, batch: dict) -> dict:
        x, m = self.view.extract(batch[self.view.column], batch.get(self.view.mask_column))
        mjd = np.array([int(_MJD_RE.search(p).group(1)) for p in batch["path"]], np.int32)
        return {"x": x, "m": m, "split": split_codes(mjd), "expnum": batch["expnum"].astype(np.int64),
                "mjd": mjd}


def read_view_dataset(data_root: str, camera: str, flavor: str, view: View):
    """A Ray Dataset of the view of every frame of (camera, flavor), with its split code."""
    import pyarrow.parquet as pq
    import ray

    layout = Layout(data_root)
    path = layout.calibrated_partition(camera, flavor)
    files = list_files(path, ".parquet")
    if not files:
        raise InputError(f"no calibrated frames for camera={camera} flavor={flavor} in {path}")
    fs, first = layout.filesystem(files[0])
    names = pq.read_schema(first, filesystem=fs).names
    if view.column not in names:
        raise InputError(f"calibrated frames have no column {view.column!r}")
    cols = ["expnum", view.column] + ([view.mask_column] if view.mask_column in names else [])
    ds = ray.data.read_parquet(path, columns=cols, include_paths=True, partitioning=None)
    return ds.map_batches(_ToView(view), batch_format="numpy", batch_size=16)


@dataclass
class PreparedData:
    """Materialised view datasets per split + the normaliser fitted on the training split."""

    train: object  # ray.data.Dataset, columns x, m
    val: object
    test: object
    normaliser: AsinhNormaliser
    counts: dict
    _cache: dict = field(default_factory=dict, repr=False, compare=False)

    def ray_datasets(self) -> dict:
        return {"train": self.train, "val": self.val}

    def arrays(self, split: str, limit: int | None = None) -> dict:
        """numpy ``x``, ``m``, ``expnum``, ``mjd`` of a split (on the driver; small data; each
        (split, limit) is fetched once: the datasets are materialised and never change)."""
        n = self.counts[split] if limit is None else min(limit, self.counts[split])
        if (split, n) not in self._cache:
            if n == 0:
                out = {"x": np.zeros((0, 1, 1), np.float32), "m": np.zeros((0, 1, 1), np.uint8),
                       "expnum": np.zeros(0, np.int64), "mjd": np.zeros(0, np.int32)}
            else:
                out = getattr(self, split).take_batch(n, batch_format="numpy")
            self._cache[(split, n)] = out
        return self._cache[(split, n)]

    def view_shape(self) -> tuple[int, int]:
        """``(h, w)`` of the model input."""
        return tuple(np.asarray(self.arrays("train", 2000)["x"]).shape[1:])


def prepare_data(data_root: str, camera: str, flavor: str, view: View, *,
                 max_frames: int | None = None, normaliser_sample: int = 512) -> PreparedData:
    """Read, cut the view, split by night, fit the normaliser on (a sample of) training frames.

    ``max_frames`` (smoke runs) keeps at most that many frames of each split."""
    from ray.data.expressions import col

    ds = read_view_dataset(data_root, camera, flavor, view).materialize()
    keep = ["x", "m", "expnum", "mjd"]
    parts = {}
    for code, name in enumerate(SPLITS):
        part = ds.filter(expr=col("split") == code)
        # materialised last, so training iterates stored blocks with no operator left to run
        parts[name] = (part.limit(max_frames) if max_frames else part).select_columns(keep).materialize()
    counts = {name: parts[name].count() for name in SPLITS}
    if counts["train"] == 0 or counts["val"] == 0:
        raise InputError(f"camera={camera} flavor={flavor}: need training and validation nights, "
                         f"got {counts} frames per split")
    prepared = PreparedData(train=parts["train"], val=parts["val"], test=parts["test"],
                            normaliser=AsinhNormaliser(), counts=counts)
    sample = prepared.arrays("train", min(normaliser_sample, counts["train"]))
    prepared.normaliser = AsinhNormaliser.fit(sample["x"], sample["m"])
    return prepared
