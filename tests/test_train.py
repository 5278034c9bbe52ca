"""Ray Train: a worker killed mid-run resumes from the last checkpoint and the model is registered."""

from __future__ import annotations

import os

import numpy as np
import pytest

from arcray.model.store import load_model
from arcray.paths import Layout
from arcray.testing.calibrated import pca_loss_on_split, write_synthetic_dataset
from arcray.training.config import TrainConfig
from arcray.training.trainer import train_camera


@pytest.mark.ray
@pytest.mark.slow
@pytest.mark.timeout(400)
def test_worker_killed_mid_run_resumes_from_checkpoint(ray_local, tmp_path):
    data, out = str(tmp_path / "data"), str(tmp_path / "out")
    write_synthetic_dataset(data, cameras=("b1",), window_size=64, seed=3)
    marker = str(tmp_path / "crashed-once")

    def crash_once(epoch: int, rank: int) -> None:  # runs inside the Train worker
        if epoch == 2 and rank == 0 and not os.path.exists(marker):
            open(marker, "w").close()
            os._exit(1)  # the worker process dies without any cleanup

    cfg = TrainConfig(camera="b1", arch="tiny", latent=3, epochs=3, crop=(16, 16, 32, 32),
                      max_failures=1, patience=10)
    res = train_camera(data, out, cfg, epoch_hook=crash_once)
    assert os.path.exists(marker), "the worker never crashed"
    hist = res["history"]
    assert list(hist["epoch"]) == [0, 1, 2]
    # Epoch 2 (and maybe 1: the controller may not have registered the last report before the
    # crash) ran again in a new worker group that resumed from a checkpoint, not from scratch.
    resumed_at = int(hist["start_epoch"].iloc[-1])
    assert resumed_at in (1, 2)
    assert list(hist["start_epoch"]) == [0] * resumed_at + [resumed_at] * (3 - resumed_at)
    assert res["final"]["start_epoch"] == resumed_at
    lm = load_model(Layout(out).model_dir("b1", "arc", 3))
    assert lm.meta["metrics"]["epochs_run"] == 3 and np.isfinite(lm.meta["metrics"]["test_loss"])
    assert lm.view.crop == (16, 16, 32, 32)
    assert lm.meta["metrics"]["pca_val_loss"] == pytest.approx(pca_loss_on_split(data, "b1", lm, 3, "val"),
                                                               rel=1e-5)


def test_worker_loop_receives_the_typed_config_it_validates_again():
    from arcray.model.ae import arch_config
    from arcray.model.normalise import AsinhNormaliser
    from arcray.training.trainer import loop_config

    cfg = TrainConfig(camera="r1", latent=3, lr=1e-3, patience=2)
    lcfg = loop_config(cfg, arch_config("tiny", 3, 32, 32), AsinhNormaliser(), init_state=None)
    assert TrainConfig.model_validate(lcfg["train"]) == cfg  # one source of defaults: TrainConfig's
    assert set(lcfg) == {"train", "ae_config", "normaliser", "init_state"}
    defaults = TrainConfig.model_validate({})
    assert (defaults.patience, defaults.weight_decay) == (6, 1e-2)
