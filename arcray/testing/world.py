"""A small seeded world with a known answer for the analysis tests and the science benchmark.

Independent of ``arcray.sim`` (which renders full raw frames): here the calibrated dataset is
written directly in the ``Layout.calibrated`` format — one Parquet file per frame with header
metadata and one ``windows`` cut-out (Gaussian arc lines on fiber traces) — from a state with the
simulator's structure: ``dy`` linear in the spectrograph temperature and the collimator tilt plus a
hidden random walk within the night, ``dx`` linear in humidity and collimator piston plus its own
walk, ``sigma`` quadratic in temperature, ``A`` lamp ageing plus noise. The truth table has the
state and its hidden parts (``*_hidden``), as ``SimLayout.truth`` does.

``train_tiny_model`` fits a small autoencoder (``arcray.model.ae``, plain torch, no Ray) and
registers it with ``arcray.model.store.save_model`` so ``embed`` / ``regress`` can run on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from arcray.io import atomic_write_parquet, provenance
from arcray.paths import Layout, join
from arcray.tensors import tensor_array

TRUTH_FILE = "truth.parquet"  # the world's true state, beside its calibrated/ (as SimLayout.truth)

WINDOW = 64
LINE_ROWS = (6.3, 14.8, 23.1, 29.7, 38.4, 45.2, 51.9, 58.6)
LINE_AMP = (0.9, 0.4, 1.0, 0.6, 0.8, 0.3, 0.7, 0.5)


def render(dy: float, dx: float, sigma: float, amp: float, rng: np.random.Generator,
           size: int = WINDOW, pitch: float = 6.7) -> np.ndarray:
    """One ``size`` x ``size`` arc window in electrons (lines along rows, traces along columns)."""
    yy = np.arange(size, dtype=np.float64)
    xs = np.arange(3.2, size, pitch) + dx
    py = sum(a * np.exp(-0.5 * ((yy - r - dy) / sigma) ** 2) for r, a in zip(LINE_ROWS, LINE_AMP))
    px = np.exp(-0.5 * ((yy[:, None] - xs[None, :]) / sigma) ** 2).sum(1)
    img = amp * np.outer(py, px) + 10.0
    return (rng.poisson(img) + rng.normal(0, 2.0, img.shape)).astype(np.float32)


def _night(rng, mjd, n_frames, expnum, cam, walk, coll):
    t0, hum0 = rng.uniform(6, 16), rng.uniform(10, 50)
    wy = wx = 0.0
    rows = []
    for k in range(n_frames):
        T = t0 - 3.0 * k / max(n_frames - 1, 1) + rng.normal(0, 0.03)
        hum = hum0 + rng.normal(0, 4.0)
        alt = rng.uniform(30, 90)
        wy, wx = wy + rng.normal(0, walk), wx + rng.normal(0, walk)
        hy, hx = wy + rng.normal(0, 0.02), wx + rng.normal(0, 0.02)
        colla, collb, collc = coll
        dy = 0.12 * (T - 11) + (colla - collb) / 310.0 + 0.004 * (alt - 60) + hy
        dx = 0.03 * (hum - 30) + (colla + collb + collc) / 630.0 + hx
        sh = rng.normal(0, 0.01)
        sigma = float(np.clip(1.0 + 0.004 * (T - 9) ** 2 + sh, 0.9, 1.35))
        ah = rng.normal(0, 0.02)
        A = 1.0 - 0.002 * (mjd - 60000) + ah
        rows.append(dict(camera=cam, mjd=mjd, expnum=expnum + k, MC1TEMDN=T + rng.normal(0, 0.05),
                         AIRTEMP=T - 4 + rng.normal(0, 0.5), HUMIDITY=hum, ALT=alt,
                         ROTPOS=rng.uniform(-180, 180), COLLA=float(colla), COLLB=float(collb),
                         COLLC=float(collc), EXPTIME=4.0, dx=dx, dy=dy, sigma=sigma, A=A,
                         dx_hidden=hx, dy_hidden=hy, sigma_hidden=sh, A_hidden=ah))
    return rows


def world_states(n_nights: int = 20, per_night: int = 8, cameras=("b1",), walk: float = 0.12,
                 seed: int = 0) -> pd.DataFrame:
    """The state and metadata of every (frame, camera), without rendering."""
    rng = np.random.default_rng(seed)
    rows = []
    for cam in cameras:
        coll = (-58, 78, 63)
        for n in range(n_nights):
            if rng.random() < 0.15:  # a Hartmann test moved the collimator
                coll = (coll[0] + int(rng.integers(-30, 31)), coll[1] + int(rng.integers(-30, 31)), coll[2])
            rows += _night(rng, 60000 + n, per_night, 1000 + 100 * n, cam, walk, coll)
    return pd.DataFrame(rows)


def write_world(root: str, *, seed: int = 0, **kw) -> pd.DataFrame:
    """Write the calibrated frames under ``Layout(root)`` and ``<root>/truth.parquet``; return truth."""
    layout, states = Layout(root), world_states(seed=seed, **kw)
    rng = np.random.default_rng(seed + 1)
    meta_cols = ["MC1TEMDN", "AIRTEMP", "HUMIDITY", "ALT", "ROTPOS", "COLLA", "COLLB", "COLLC", "EXPTIME"]
    for r in states.itertuples(index=False):
        win = render(r.dy, r.dx, r.sigma, 4000.0 * r.A, rng)[None, None]
        t = {"camera": pa.array([r.camera]), "flavor": pa.array(["arc"]),
             "mjd": pa.array([r.mjd], pa.int32()), "expnum": pa.array([r.expnum], pa.int64()),
             "observatory": pa.array(["apo"]), "hartmann": pa.array(["Out"]),
             "is_hartmann": pa.array([False])}
        t.update({c: pa.array([float(getattr(r, c))], pa.float64()) for c in meta_cols})
        t["windows"] = tensor_array(win)
        t["windows_mask"] = tensor_array(np.zeros(win.shape, np.uint8))
        atomic_write_parquet(layout.calibrated_frame(r.camera, "arc", r.mjd, r.expnum), pa.table(t),
                             provenance(None, ["synthetic-analysis"]))
    truth = states[["expnum", "camera", "mjd", "dx", "dy", "sigma", "A",
                    "dx_hidden", "dy_hidden", "sigma_hidden", "A_hidden"]].assign(flavor="arc", hartmann="Out")
    atomic_write_parquet(join(layout.root, TRUTH_FILE), pa.Table.from_pandas(truth, preserve_index=False))
    return truth


def train_tiny_model(root: str, camera: str, *, latent: int = 2, epochs: int = 60, seed: int = 0,
                     arch: str = "tiny") -> str:
    """Fit a small AE on the world's training-night windows of ``camera``; register it; return dir."""
    import pyarrow.parquet as pq
    import torch

    from arcray.model.ae import arch_config, build_autoencoder
    from arcray.model.normalise import AsinhNormaliser
    from arcray.model.split import split_labels
    from arcray.model.store import save_model
    from arcray.model.view import View
    from arcray.tensors import to_ndarray

    layout = Layout(root)
    tab = pq.read_table(layout.calibrated_partition(camera, "arc"), columns=["mjd", "windows"],
                        partitioning=None)
    x = to_ndarray(tab.column("windows"))[:, 0].astype(np.float32)
    x = x[split_labels(tab.column("mjd").to_numpy()) == "train"]
    norm = AsinhNormaliser.fit(x)
    torch.manual_seed(seed)
    model = build_autoencoder(arch_config(arch, latent, WINDOW, WINDOW))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    y = torch.from_numpy(norm.forward(x))
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for idx in torch.randperm(len(y), generator=g).split(32):
            opt.zero_grad()
            loss = torch.mean((model(y[idx]) - y[idx]) ** 2)
            loss.backward()
            opt.step()
    model.eval()
    d = layout.model_dir(camera, "arc", latent)
    save_model(d, model, normaliser=norm, view=View(column="windows", window=0, crop=None),
               camera=camera, flavor="arc", metrics={"train_loss": float(loss.detach())})
    return d
