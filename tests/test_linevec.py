"""The line-vector representation: fixed slots, masks that round-trip, its normaliser and autoencoder."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from arcray import optics
from arcray.errors import InputError
from arcray.model.ae import AEConfig
from arcray.model.line_ae import LineAutoencoder
from arcray.model.linevec import FILL, LineIndex
from arcray.model.loss import masked_mse_np
from arcray.model.normalise import AsinhNormaliser, StandardNormaliser, normaliser_from_dict
from arcray.model.pca import fit_pca
from arcray.training.lines_data import _ToLineVector, fit_line_normaliser

LINES = (3, 10, 17, 40)  # a small index of r1 lines keeps vectors short


def table_for(index: LineIndex, field: optics.Field, *, drop=(), bad=(), nan_sigma=(), seed=0):
    """A per-line table of every (fiber, line) of ``index`` placed by ``field``, in shuffled row
    order; ``drop``: slots with no row, ``bad``: slots flagged and not used, ``nan_sigma``: no width."""
    fib, line = index.slot_fiber_line()
    x, y, s = optics.line_positions(index.camera, field, np.arange(index.n_fibers), list(index.line_ids))
    cols = {"fiber": fib.astype(np.int16), "line": line.astype(np.int16), "x": x.ravel(), "y": y.ravel(),
            "sigma_y": s.ravel().astype(np.float32), "flags": np.zeros(fib.size, np.uint16),
            "used": np.ones(fib.size, bool)}
    cols["flags"][list(bad)] = 4
    cols["used"][list(bad)] = False
    cols["sigma_y"][list(nan_sigma)] = np.nan
    keep = np.setdiff1d(np.arange(fib.size), list(drop))
    order = np.random.default_rng(seed).permutation(keep)
    return pa.table({k: v[order] for k, v in cols.items()}), (x.ravel(), y.ravel(), s.ravel())


def test_round_trip_values_and_masks():
    ix = LineIndex.for_camera("r1", LINES)
    assert ix.n_slots == 500 * 4 and ix.size == 3 * 2000
    field = optics.Field(a0=0.7, b0=-0.4, a1=0.2, b2=0.3, s0=1.2, su=0.05)
    drop, bad, nan_s = [5, 1999], [7, 123], [42]
    t, (tx, ty, ts) = table_for(ix, field, drop=drop, bad=bad, nan_sigma=nan_s)
    x, m = ix.to_vector(t)
    k = ix.n_slots
    assert x.shape == m.shape == (3 * k,) and x.dtype == np.float32 and m.dtype == np.uint8
    masked_xy = np.flatnonzero(m[:k])
    assert masked_xy.tolist() == sorted(drop + bad)
    assert np.array_equal(m[:k], m[k:2 * k])
    assert np.flatnonzero(m[2 * k:]).tolist() == sorted(drop + bad + nan_s)
    assert np.all(x[:k][masked_xy] == FILL["dx"]) and np.all(x[2 * k:][nan_s] == FILL["sigma_y"])
    back = ix.from_vector(x, m)
    good = m[:k] == 0
    assert np.abs(back["x"][good] - tx[good]).max() < 1e-4  # float32 displacements
    assert np.abs(back["y"][good] - ty[good]).max() < 1e-4
    assert np.all(np.isnan(back["x"][~good])) and np.all(np.isnan(back["y"][~good]))
    gs = m[2 * k:] == 0
    assert np.abs(back["sigma_y"][gs] - ts[gs]).max() < 1e-6 and np.isnan(back["sigma_y"][~gs]).all()
    # the slot of (fiber 3, 3rd line) holds that pair's value whatever the row order
    s = ix.slots([3], [LINES[2]])[0]
    assert s == 2 * 4 + 2 and back["fiber"][s] == 3 and back["line"][s] == LINES[2]
    assert abs(back["x"][s] - tx[s]) < 1e-4


def test_nothing_shifts_between_frames_and_outside_pairs_are_ignored():
    ix = LineIndex.for_camera("r1", LINES)
    t1, _ = table_for(ix, optics.Field(a0=1.0, s0=1.1), drop=list(range(0, 2000, 3)), seed=1)
    t2, _ = table_for(ix, optics.Field(a0=1.0, s0=1.1), seed=2)
    extra = pa.table({"fiber": np.int16([7, 501]), "line": np.int16([11, LINES[0]]),
                      "x": [1.0, 2.0], "y": [1.0, 2.0], "sigma_y": np.float32([1.0, 1.0]),
                      "flags": np.uint16([0, 0]), "used": [True, True]})
    x1, m1 = ix.to_vector(t1)
    x2, m2 = ix.to_vector(pa.concat_tables([t2, extra]))
    both = (m1 == 0) & (m2 == 0)
    assert both.sum() == 3 * (2000 - len(range(0, 2000, 3)))
    assert np.allclose(x1[both], x2[both], atol=1e-6)
    assert m2.sum() == 0


def test_to_vectors_orders_frames_and_rejects_wrong_input():
    ix = LineIndex.for_camera("r1", LINES)
    ta, _ = table_for(ix, optics.Field(a0=0.5, s0=1.2))
    tb, _ = table_for(ix, optics.Field(a0=-0.5, s0=1.2), drop=[0])
    frames = []
    for t, mjd, exp in ((tb, 60002, 9), (ta, 60001, 5)):
        frames.append(t.append_column("mjd", pa.array(np.full(t.num_rows, mjd, np.int32)))
                      .append_column("expnum", pa.array(np.full(t.num_rows, exp, np.int64))))
    keys, xs, ms = ix.to_vectors(pa.concat_tables(frames))
    assert keys.tolist() == [[60001, 5], [60002, 9]]
    assert ms[0].sum() == 0 and ms[1].sum() == 3
    assert np.median(ix.blocks(xs[0])["dx"]) == pytest.approx(0.5, abs=1e-5)
    with pytest.raises(InputError, match="lacks column"):
        ix.to_vector({"fiber": np.int16([1])})
    with pytest.raises(InputError, match="does not fit"):
        ix.from_vector(np.zeros(5))


def test_reader_turns_files_into_vectors_and_an_unreadable_file_into_a_masked_one(tmp_path):
    ix = LineIndex.for_camera("r1", LINES)
    t, _ = table_for(ix, optics.Field(b0=0.25, s0=1.2), bad=[1])
    d = tmp_path / "measure/lines/camera=r1/flavor=arc/mjd=60010"
    d.mkdir(parents=True)
    pq.write_table(t, d / "sdR-r1-00001234.parquet")
    (d / "sdR-r1-00001235.parquet").write_bytes(b"not parquet")
    out = _ToLineVector(str(tmp_path), ix.to_dict())({"path": np.array(
        [str(d / "sdR-r1-00001234.parquet"), str(d / "sdR-r1-00001235.parquet")], object)})
    assert out["x"].shape == (2, ix.size) and out["m"].dtype == np.uint8
    assert out["expnum"].tolist() == [1234, 1235] and out["mjd"].tolist() == [60010, 60010]
    assert out["m"][0].sum() == 3 and out["m"][1].all()
    assert np.median(ix.blocks(out["x"][0])["dy"]) == pytest.approx(0.25, abs=1e-5)


def test_standard_normaliser_blocks_and_dispatch():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(1.0, 2.0, (50, 10)), rng.normal(-3.0, 0.5, (50, 10))], 1)
    m = np.zeros_like(x, np.uint8)
    m[:, 0] = 1
    x[:, 0] = 1e6  # masked values do not reach the fit
    n = StandardNormaliser.fit(x, m, groups=2)
    assert n.mean[0] == pytest.approx(1.0, abs=0.4) and n.std[1] == pytest.approx(0.5, abs=0.1)
    y = n.forward(x)
    assert np.allclose(n.inverse(y)[:, 1:], x[:, 1:], atol=1e-4)
    assert torch.allclose(n.forward(torch.as_tensor(x[:, 1:2].repeat(20, 1), dtype=torch.float64)).float(),
                          torch.as_tensor(n.forward(x[:, 1:2].repeat(20, 1))), atol=1e-5)
    assert normaliser_from_dict(n.to_dict()) == n
    a = AsinhNormaliser(scale=3.0, gain=2.0)
    assert normaliser_from_dict(a.to_dict()) == a and normaliser_from_dict({"scale": 1, "gain": 1}).kind == "asinh"
    with pytest.raises(InputError, match="unknown normaliser"):
        normaliser_from_dict({"kind": "zscore"})
    assert fit_line_normaliser(x[:, :9].reshape(50, 1, 9)).std[0] > 0


def test_line_autoencoder_starts_at_pca_and_reads_masked_values_as_the_mean():
    rng = np.random.default_rng(1)
    basis = rng.normal(size=(3, 60))
    y = (rng.normal(size=(80, 3)) @ basis + 0.05 * rng.normal(size=(80, 60))).astype(np.float32)
    cfg = AEConfig(arch="line_mlp", latent=3, depth=1, width=16, height=1, width_px=60, kind="line_mlp")
    model = LineAutoencoder(cfg).init_from_data(y[:60])
    pca = fit_pca(y[:60, None], 3)
    rec_pca = pca.decode(pca.encode(y[60:, None]))[:, 0]
    with torch.no_grad():
        rec = model(torch.as_tensor(y[60:])).numpy()
        assert model(torch.as_tensor(y[60:, None])).shape == (20, 1, 60)
        m = np.zeros_like(y[60:], np.uint8)
        m[:, :5] = 1
        z_m = model.encode(torch.as_tensor(np.where(m, 99.0, y[60:]).astype(np.float32)), torch.as_tensor(m))
    assert np.abs(rec - rec_pca).max() < 1e-4
    assert masked_mse_np(rec, y[60:], None) < 0.01
    zp = pca.encode(np.where(m, 99.0, y[60:])[:, None], m[:, None])
    std = pca.encode(y[:60, None]).std(0)
    assert np.allclose(z_m.numpy(), zp / std, atol=1e-3)
