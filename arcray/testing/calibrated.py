"""A small seeded calibrated dataset in the exact layout of ``Layout.calibrated``.

Used by the tests and benchmarks until (and besides) the simulator + calibration: every frame is
a grid of Gaussian arc lines on fiber traces, shifted by a known ``(dx, dy)`` with a known width
``sigma`` and brightness ``A`` (the true low-dimensional state, written to a truth table), with
Poisson + read noise and saturated pixels masked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.io import atomic_write_parquet, provenance
from arcray.paths import Layout, join
from arcray.tensors import tensor_array

# This fixture's windows are drawn in electrons and clipped here: a fixture's choice, not the
# instrument's saturation (``arcray.instrument.SATURATION_ADU`` raw ADU, applied by calibration).
FIXTURE_FULL_WELL_E = 60000.0
TRUTH_FILE = "synthetic_truth.parquet"  # the fixture's known state, beside its calibrated/


def render_window(size: int, dx: float, dy: float, sigma: float, amp: float,
                  rng: np.random.Generator, *, trace_pitch: float = 7.0, line_pitch: float = 11.0,
                  read_noise: float = 3.0) -> tuple[np.ndarray, np.ndarray]:
    """One ``size`` x ``size`` window in electrons and its mask (1 = saturated)."""
    yy = np.arange(size, dtype=np.float64)
    xs = np.arange(trace_pitch / 2, size, trace_pitch) + dx
    ys = np.arange(line_pitch / 2, size, line_pitch) + dy
    line_amp = amp * (0.2 + 0.8 * ((np.arange(len(ys)) * 7919) % 13) / 12.0)
    px = np.exp(-0.5 * ((yy[None, :] - xs[:, None]) / sigma) ** 2).sum(0)          # [size] cols
    py = (line_amp[:, None] * np.exp(-0.5 * ((yy[None, :] - ys[:, None]) / sigma) ** 2)).sum(0)
    img = np.outer(py, px) + 20.0
    img = rng.poisson(img).astype(np.float64) + rng.normal(0, read_noise, img.shape)
    mask = (img >= FIXTURE_FULL_WELL_E).astype(np.uint8)
    return np.minimum(img, FIXTURE_FULL_WELL_E).astype(np.float32), mask


def write_synthetic_dataset(root: str, *, mjds=tuple(range(60000, 60012)),
                            frames_per_night: int = 4, cameras=("b1", "r1"), window_size: int = 64,
                            n_windows: int = 2, seed: int = 0, flavor: str = "arc") -> pd.DataFrame:
    """Write frames under ``Layout(root).calibrated``; return (and write) the truth table."""
    layout, rng, truth = Layout(root), np.random.default_rng(seed), []
    expnum = 100000
    for mjd in mjds:
        for _ in range(frames_per_night):
            expnum += 1
            for cam in cameras:
                st = dict(dx=rng.uniform(-1.5, 1.5), dy=rng.uniform(-1.5, 1.5),
                          sigma=rng.uniform(0.9, 1.35), A=rng.uniform(0.9, 1.1))
                wins, masks = zip(*[render_window(window_size, st["dx"], st["dy"], st["sigma"],
                                                  40000.0 * st["A"] * (1 + 0.5 * w), rng)
                                    for w in range(n_windows)])
                _write_frame(layout, cam, flavor, mjd, expnum, np.stack(wins), np.stack(masks), st)
                truth.append(dict(expnum=expnum, camera=cam, mjd=mjd, flavor=flavor, **st))
    df = pd.DataFrame(truth)
    atomic_write_parquet(join(layout.root, TRUTH_FILE), pa.Table.from_pandas(df))
    return df


def _write_frame(layout: Layout, cam: str, flavor: str, mjd: int, expnum: int, wins: np.ndarray,
                 masks: np.ndarray, st: dict) -> None:
    f = 8
    s = wins.shape[-1] // f
    binned = wins[0].reshape(s, f, s, f).mean(axis=(1, 3))[None].astype(np.float32)
    table = pa.table({
        "camera": pa.array([cam]), "flavor": pa.array([flavor]),
        "mjd": pa.array([mjd], pa.int32()), "expnum": pa.array([expnum], pa.int64()),
        "observatory": pa.array(["apo"]), "hartmann": pa.array(["Out"]),
        "is_hartmann": pa.array([False]),
        "MC1TEMDN": pa.array([10.0 + 3 * st["dy"]], pa.float64()),
        "windows": tensor_array(wins[None]),
        "windows_mask": tensor_array(masks[None]),
        "binned": tensor_array(binned),
        "binned_mask": tensor_array(np.zeros(binned.shape, np.uint8)),
    })
    atomic_write_parquet(layout.calibrated_frame(cam, flavor, mjd, expnum), table,
                         provenance(None, ["synthetic"]))


def pca_loss_on_split(data_root: str, camera: str, model, latent: int, split: str,
                      flavor: str = "arc") -> float:
    """PCA's masked loss at ``latent`` on the ``split`` nights of ``camera``, computed directly from
    the calibrated files with a registered ``model``'s view and normaliser (no Ray): the number the
    pipeline reports as ``pca_<split>_loss``, found independently."""
    import pyarrow.parquet as pq

    from arcray.model.loss import masked_mse_np
    from arcray.model.pca import fit_pca
    from arcray.model.split import split_labels

    tab = pq.read_table(Layout(data_root).calibrated_partition(camera, flavor), partitioning=None)
    x, m = model.view.extract_table(tab)
    split_of = split_labels(tab.column("mjd").to_numpy())
    y = model.normaliser.forward(x)
    p = fit_pca(y[split_of == "train"], latent, m[split_of == "train"])
    ys, ms = y[split_of == split], m[split_of == split]
    return masked_mse_np(p.decode(p.encode(ys, ms)), ys, ms)
