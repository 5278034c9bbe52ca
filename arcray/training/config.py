"""The typed config of one training run (``arcray train``, each Tune trial, the worker loop).

The driver builds it from the command line; every Ray Train worker receives it as JSON and
validates it again (``train_loop_per_worker``), so these defaults are the only ones.
"""

from __future__ import annotations

from pydantic import Field, model_validator

from arcray.config import StageConfig
from arcray.model.ae import ARCHS
from arcray.model.view import View

VIEWS = ("window0", "grid", "lines")  # model inputs by name (``arcray.training.data.prepare_data``)
# The kinds of model that read the multi-window and line-vector inputs; every other reads one image.
VIEW_OF_KIND = {"grid_res": "grid", "line_mlp": "lines"}
DEFAULT_ARCH = {"window0": "pca_res", "grid": "grid_res", "lines": "line_mlp"}  # per view


def archs_for_views(views, archs) -> list[str]:
    """The architectures a search over ``views`` x ``archs`` runs: each view gets the given
    architectures that read it, or its ``DEFAULT_ARCH`` when none does."""
    out = []
    for v in views:
        if v not in VIEWS:
            raise ValueError(f"unknown view {v!r}; choose from {', '.join(VIEWS)}")
        out += [a for a in archs if view_of_arch(a) == v] or [DEFAULT_ARCH[v]]
    return list(dict.fromkeys(out))


def view_of_arch(arch: str) -> str:
    """The view an architecture reads: ``grid`` (grid_res), ``lines`` (line_mlp) or ``window0``
    (one image: every other architecture)."""
    return VIEW_OF_KIND.get(ARCHS.get(arch, {}).get("kind", "conv"), "window0")


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
    view: str = Field("window0", description="model input: window0 (one window), grid (every "
                                             "detector-grid window) or lines (line vectors)")
    column: str = Field("windows", description="calibrated column: windows or binned (view window0)")
    window: int = Field(0, ge=0, description="window index (view window0, column=windows)")
    crop: tuple[int, int, int, int] | None = Field(
        None, description="(row0, col0, h, w) px (view window0); None = the central crop_size square")
    crop_size: int | None = Field(64, ge=1, description="side of the central square cut from each "
                                                        "window, px (None with no crop: whole window)")
    downsample: int = Field(1, ge=1, description="block-mean downsampling factor (view window0)")
    cache_shard: bool = Field(True, description="keep each worker's data shard in memory after "
                                                "the first epoch while it fits cache_mb")
    cache_mb: float = Field(256.0, ge=0, description="worker shard cache budget, MB; a shard above "
                                                     "it is streamed from Parquet every epoch")
    driver_frames: int = Field(512, ge=2, description="frames per split the driver reads at most "
                                                      "(normaliser fit, PCA init and scores)")
    max_frames: int | None = Field(None, description="at most this many frames per split (smoke)")

    @model_validator(mode="after")
    def _arch_reads_view(self) -> "TrainConfig":
        if self.view not in VIEWS:
            raise ValueError(f"unknown view {self.view!r}; choose one of {VIEWS}")
        if self.arch not in ARCHS:
            raise ValueError(f"unknown architecture {self.arch!r}; choose one of {', '.join(sorted(ARCHS))}")
        if view_of_arch(self.arch) != self.view:
            raise ValueError(f"architecture {self.arch!r} reads view {view_of_arch(self.arch)!r}, "
                             f"not {self.view!r}")
        return self

    def input_view(self) -> View | str:
        """What ``prepare_data`` reads: a ``View`` for window0 (its column/window/crop fields),
        the name for grid and lines (resolved against the calibrated files)."""
        if self.view != "window0":
            return self.view
        default = (self.column, self.window, self.crop, self.downsample) == ("windows", 0, None, 1)
        return View(column=self.column, window=self.window, crop=self.crop,
                    centred=self.crop_size if self.crop is None else None,
                    downsample=self.downsample, name="window0" if default and self.crop_size == 64 else "")
