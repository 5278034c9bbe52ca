"""Small seeded latent tables and arc-like images with known answers, for the analysis tests."""

from __future__ import annotations

import numpy as np
import pandas as pd


def arc_frame(dy=0.0, dx=0.0, sigma=1.0, shape=(128, 128), seed=0, noise=0.0, amp=1000.0):
    """An arc-like frame: traces every 6.6 px across, 12 lines along, Gaussian spots; shifted by
    ``(dy, dx)`` px (rows, columns)."""
    rng = np.random.default_rng(seed)
    h, w = shape
    xs = np.arange(3.0, w - 3, 6.6)
    ys = np.sort(rng.uniform(4, h - 4, 12))
    a = rng.uniform(0.3, 1.0, len(ys))
    Y = np.arange(h, dtype=float)[:, None, None]
    X = np.arange(w, dtype=float)[None, :, None]
    prof_x = np.exp(-0.5 * ((X - xs - dx) / sigma) ** 2).sum(-1)
    prof_y = (a * np.exp(-0.5 * ((Y - ys - dy) / sigma) ** 2)).sum(-1)
    img = amp * prof_y * prof_x
    if noise:
        img = img + np.random.default_rng(seed + 1).normal(0, noise, shape)
    return img


def latent_world(n_nights=30, per_night=12, walk=0.3, noise=0.02, seed=0):
    """Frames of one camera over nights: latent = metadata @ W + night random walk + noise.

    Returns ``(meta DataFrame, Z [N, 2], W)``; W maps (MC1TEMDN, ALT, HUMIDITY) to z.
    """
    rng = np.random.default_rng(seed)
    W = np.array([[0.5, -0.2], [0.02, 0.03], [0.01, 0.04]])
    rows, Z, exp = [], [], 1000
    for n in range(n_nights):
        t0, colla = rng.uniform(5, 15), float(rng.integers(-80, 80))
        w = np.zeros(2)
        for k in range(per_night):
            T = t0 - 0.3 * k + rng.normal(0, 0.05)
            alt, hum = rng.uniform(30, 90), rng.uniform(10, 60)
            w = w + rng.normal(0, walk, 2)
            Z.append(np.array([T, alt, hum]) @ W + w + rng.normal(0, noise, 2))
            exp += 1
            rows.append(dict(camera="b1", mjd=60000 + n, expnum=exp, MC1TEMDN=T, ALT=alt, HUMIDITY=hum,
                             COLLA=colla, AIRTEMP=np.nan if k == 3 else T - 2.0))
    return pd.DataFrame(rows), np.array(Z), W
