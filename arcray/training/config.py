"""The typed config of one training run (``arcray train``, each Tune trial, the worker loop).

The driver builds it from the command line; every Ray Train worker receives it as JSON and
validates it again (``train_loop_per_worker``), so these defaults are the only ones.
"""

from __future__ import annotations

from pydantic import Field

from arcray.config import StageConfig
from arcray.model.view import View


class TrainConfig(StageConfig):
    """One training run of one camera's autoencoder."""

    camera: str = Field("b1", description="camera (b1, r1, b2, r2)")
    flavor: str = Field("arc", description="frame flavor (arc or flat)")
    arch: str = Field("pca_res", description="named architecture (arcray.model.ae.ARCHS)")
    latent: int = Field(4, ge=1, le=64, description="latent size")
    lr: float = Field(3e-4, gt=0, description="AdamW learning rate")
    weight_decay: float = Field(1e-2, ge=0, description="AdamW weight decay")
    epochs: int = Field(30, ge=1, description="maximum epochs")
    batch_size: int = Field(32, ge=1, description="samples per batch per worker")
    patience: int = Field(6, ge=1, description="early stopping: epochs without val improvement")
    seed: int = Field(0, description="torch seed")
    workers: int = Field(1, ge=1, description="Ray Train workers")
    cpus_per_worker: int = Field(1, ge=1, description="logical CPUs per worker")
    use_gpu: bool | None = Field(None, description="None = use a GPU when the cluster has one")
    max_failures: int = Field(2, ge=0, description="worker-group restarts before giving up")
    keep_checkpoints: int = Field(2, ge=1, description="checkpoints kept (best by val_loss)")
    column: str = Field("windows", description="calibrated column: windows or binned")
    window: int = Field(0, ge=0, description="window index (column=windows)")
    crop: tuple[int, int, int, int] | None = Field((96, 96, 64, 64),
                                                   description="(row0, col0, h, w) px; None = all")
    downsample: int = Field(1, ge=1, description="block-mean downsampling factor")
    cache_shard: bool = Field(True, description="keep each worker's data shard in memory after "
                                                "the first epoch (small per-camera views)")
    max_frames: int | None = Field(None, description="at most this many frames per split (smoke)")

    def view(self) -> View:
        return View(column=self.column, window=self.window, crop=self.crop,
                    downsample=self.downsample)
