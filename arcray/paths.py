"""The one place that names every arcray artefact.

A ``Layout`` is rooted at a local directory or at a filesystem URI that pyarrow understands
(``s3://bucket/arcray``, ``gs://...``, ``file:///...``). Every stage asks it where to read and
write, so names are deterministic (camera / mjd / expnum) and a rerun replaces instead of
duplicating. Paths are returned as strings; ``Layout.filesystem()`` gives the pyarrow
filesystem and the path inside it.

Tree under the root::

    raw/sdsswork/data/boss/spectro/<obs>/<mjd>/sdR-<cam>-<expnum:08d>.fit.gz   downloaded frames
    manifest/exposures.parquet                          scraped exposure list
    manifest/months/<YYYY>-<MM>.parquet                 per-month scrape results (incremental)
    manifest/downloads.parquet                          one row per downloaded file
    calibrated/camera=<cam>/flavor=<flv>/mjd=<mjd>/sdR-<cam>-<expnum:08d>.parquet
    calibrated_failures.parquet                         frames calibration rejected, with reason
    models/<cam>/<flavor>/latent=<l>/{model.pt,meta.json}  registered best model per latent size
    runs/                                               Ray Train / Tune checkpoints and trial logs
    tune/results.parquet                                every Tune trial (+ PCA baseline)
    analysis/train/<cam>-<flavor>-<kind>.png            training figures (kind: TRAIN_FIGURES)
    latents/camera=<cam>/flavor=<flv>/latent=<l>/latents.parquet   encoded frames
    analysis/latent_scatter_<colour>.png, pearson-<cam>.{parquet,png}, drift-<cam>.png,
    analysis/flagged.parquet                            latent study figures and tables
    regress/predictions/camera=<cam>/{latents,frames}.parquet  predicted latents, decoded frames
    regress/{scores,floors,state_errors}.parquet        scores, truth floors, state errors
    predict/predictions/mjd=<mjd>.{parquet,fits}, predict/scores.parquet   predicted state per exposure
    predict/eval/{scored,predictors,decisions}.parquet, predict/eval/{timeline,quiver}-<cam>.png   held-out scoring
    report/index.html, report/fig/<name>.png            the static report

Every method returns one name; nothing else in arcray builds a path below the root, and no reader
looks for an artefact by pattern: a renamed artefact is renamed here, for its writer and its
readers at once.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from urllib.parse import urlparse

from arcray.instrument import OBSERVATORY

# The SAS path of a raw frame relative to the archive root (``.../sas/``), as on data.sdss5.org.
SAS_RELEASE = "sdsswork"
MODEL_FILE, MODEL_META_FILE = "model.pt", "meta.json"  # the two files of a registered model
TRAIN_FIGURES = ("curves", "loss_vs_latent", "recon")  # kinds of ``Layout.train_figure``


def raw_frame_name(camera: str, expnum: int) -> str:
    """``sdR-b1-00380717.fit.gz``."""
    return f"sdR-{camera}-{int(expnum):08d}.fit.gz"


def sas_relpath(camera: str, mjd: int, expnum: int, *, release: str = SAS_RELEASE) -> str:
    """Path of a raw frame below the SAS root: ``sdsswork/data/boss/spectro/apo/<mjd>/sdR-...``."""
    obs = OBSERVATORY[camera]
    return f"{release}/data/boss/spectro/{obs}/{int(mjd)}/{raw_frame_name(camera, expnum)}"


def is_uri(path: str) -> bool:
    scheme = urlparse(str(path)).scheme
    return len(scheme) > 1  # a Windows drive letter is not a scheme


def join(root: str, *parts: str) -> str:
    root = str(root)
    tail = "/".join(str(p).strip("/") for p in parts if str(p))
    if not tail:
        return root
    return root.rstrip("/") + "/" + tail if is_uri(root) else os.path.join(root, *tail.split("/"))


@dataclass(frozen=True)
class Layout:
    """Names of every artefact below one root (local directory or URI)."""

    root: str

    def __post_init__(self) -> None:
        root = str(self.root)
        if not is_uri(root):
            root = os.path.abspath(os.path.expanduser(root))
        object.__setattr__(self, "root", root)

    def _p(self, *parts: str) -> str:
        return join(self.root, *parts)

    def filesystem(self, path: str | None = None):
        """``(pyarrow.fs.FileSystem, path_inside_it)`` for ``path`` (default: the root)."""
        from pyarrow import fs as pafs

        path = self.root if path is None else path
        if is_uri(path):
            return pafs.FileSystem.from_uri(path)
        return pafs.LocalFileSystem(), path

    # -- ingest -------------------------------------------------------------------------
    @property
    def raw_root(self) -> str:
        return self._p("raw")

    def raw_frame(self, camera: str, mjd: int, expnum: int) -> str:
        return self._p("raw", sas_relpath(camera, mjd, expnum))

    @property
    def manifest(self) -> str:
        return self._p("manifest", "exposures.parquet")

    def manifest_month(self, month: str) -> str:
        """``month`` as ``YYYY-MM``."""
        return self._p("manifest", "months", f"{month}.parquet")

    @property
    def downloads(self) -> str:
        return self._p("manifest", "downloads.parquet")

    # -- calibrate ----------------------------------------------------------------------
    @property
    def calibrated(self) -> str:
        return self._p("calibrated")

    def calibrated_partition(self, camera: str, flavor: str) -> str:
        """Every calibrated frame of one (camera, flavor): ``calibrated/camera=<cam>/flavor=<flv>``."""
        return self._p("calibrated", f"camera={camera}", f"flavor={flavor}")

    def calibrated_frame(self, camera: str, flavor: str, mjd: int, expnum: int) -> str:
        return join(self.calibrated_partition(camera, flavor), f"mjd={int(mjd)}",
                    f"sdR-{camera}-{int(expnum):08d}.parquet")

    @property
    def calibrated_failures(self) -> str:
        return self._p("calibrated_failures.parquet")

    # -- measure (inside calibrate, then the night pass of ``arcray measure``) ------------------
    @property
    def measured(self) -> str:
        return self._p("measure")

    @property
    def measured_rows(self) -> str:
        """One per-frame row (``measure.schema.FRAME_SCHEMA``) per calibrated frame, written by calibrate."""
        return self._p("measure", "frame_rows")

    def measured_row(self, camera: str, flavor: str, mjd: int, expnum: int) -> str:
        return self._p("measure", "frame_rows", f"camera={camera}", f"flavor={flavor}", f"mjd={int(mjd)}",
                       f"sdR-{camera}-{int(expnum):08d}.parquet")

    def measured_lines(self, camera: str, mjd: int, expnum: int) -> str:
        """Per-line table of one arc (``LINE_SCHEMA``), partitioned like the calibrated dataset."""
        return self._p("measure", "lines", f"camera={camera}", "flavor=arc", f"mjd={int(mjd)}",
                       f"sdR-{camera}-{int(expnum):08d}.parquet")

    def measured_lines_partition(self, camera: str) -> str:
        """Every arc's per-line table of one camera (the line vectors' source)."""
        return self._p("measure", "lines", f"camera={camera}", "flavor=arc")

    def measured_traces(self, camera: str, mjd: int, expnum: int) -> str:
        """Per-trace-point table of one flat (``TRACE_SCHEMA``)."""
        return self._p("measure", "traces", f"camera={camera}", "flavor=flat", f"mjd={int(mjd)}",
                       f"sdR-{camera}-{int(expnum):08d}.parquet")

    @property
    def measured_frames(self) -> str:
        """Every frame's row with the fits against its night's reference arc (``arcray measure``)."""
        return self._p("measure", "frames.parquet")

    @property
    def measured_frames_fits(self) -> str:
        """The same table as a FITS binary table (``arcray measure --export-fits``)."""
        return self._p("measure", "frames.fits")

    # -- train / tune -------------------------------------------------------------------
    @property
    def models(self) -> str:
        return self._p("models")

    def model_dir(self, camera: str, flavor: str, latent: int, view: str = "window0") -> str:
        """A registered model: ``models/<camera>/<flavor>/latent=<l>`` for the window0 view (the
        path before views had names), ``.../view=<view>/latent=<l>`` for the others."""
        if view in ("window0", "", None):
            return self._p("models", camera, flavor, f"latent={int(latent)}")
        return self._p("models", camera, flavor, f"view={view}", f"latent={int(latent)}")

    def model_file(self, camera: str, flavor: str, latent: int, view: str = "window0") -> str:
        """The registered weights (``arcray.model.store``)."""
        return join(self.model_dir(camera, flavor, latent, view), MODEL_FILE)

    def model_meta(self, camera: str, flavor: str, latent: int, view: str = "window0") -> str:
        """The registered model's ``meta.json`` (written last: it marks a complete model)."""
        return join(self.model_dir(camera, flavor, latent, view), MODEL_META_FILE)

    @property
    def train_runs(self) -> str:
        """Ray Train / Tune storage (checkpoints, trial logs)."""
        return self._p("runs")

    @property
    def tune_results(self) -> str:
        return self._p("tune", "results.parquet")

    def train_figure(self, camera: str, flavor: str, kind: str) -> str:
        """A training figure of one (camera, flavor); ``kind`` is one of ``TRAIN_FIGURES``."""
        if kind not in TRAIN_FIGURES:
            raise ValueError(f"unknown training figure {kind!r} (one of {', '.join(TRAIN_FIGURES)})")
        return self._p("analysis", "train", f"{camera}-{flavor}-{kind}.png")

    # -- embed ----------------------------------------------------------------------------
    @property
    def latents(self) -> str:
        return self._p("latents")

    def latents_file(self, camera: str, flavor: str, latent: int) -> str:
        """Every frame of (camera, flavor) encoded by the model of latent size ``latent``."""
        return self._p("latents", f"camera={camera}", f"flavor={flavor}", f"latent={int(latent)}",
                       "latents.parquet")

    # -- analyze --------------------------------------------------------------------------
    @property
    def analysis(self) -> str:
        return self._p("analysis")

    def latent_scatter_figure(self, colour: str) -> str:
        """z0 vs z1 coloured by ``colour`` (``camera`` or a metadata column)."""
        return self._p("analysis", f"latent_scatter_{colour}.png")

    def pearson_table(self, camera: str) -> str:
        return self._p("analysis", f"pearson-{camera}.parquet")

    def pearson_figure(self, camera: str) -> str:
        return self._p("analysis", f"pearson-{camera}.png")

    def drift_figure(self, camera: str) -> str:
        return self._p("analysis", f"drift-{camera}.png")

    @property
    def flagged(self) -> str:
        """Out-of-distribution frames (every camera)."""
        return self._p("analysis", "flagged.parquet")

    # -- regress --------------------------------------------------------------------------
    @property
    def regress(self) -> str:
        return self._p("regress")

    @property
    def predictions(self) -> str:
        return self._p("regress", "predictions")

    def predicted_latents(self, camera: str) -> str:
        """Per (frame, model) of one camera: predicted latents and their scores."""
        return self._p("regress", "predictions", f"camera={camera}", "latents.parquet")

    def decoded_frames(self, camera: str) -> str:
        """A few decoded test frames of one camera (every model's decoding of each)."""
        return self._p("regress", "predictions", f"camera={camera}", "frames.parquet")

    @property
    def scores(self) -> str:
        return self._p("regress", "scores.parquet")

    @property
    def floors(self) -> str:
        """The truth floors (simulated world only: ``arcray regress --truth``)."""
        return self._p("regress", "floors.parquet")

    @property
    def state_errors(self) -> str:
        """Errors against the simulator's true state (``arcray regress --truth``)."""
        return self._p("regress", "state_errors.parquet")

    # -- predict --------------------------------------------------------------------------
    @property
    def predict(self) -> str:
        return self._p("predict")

    def predictions_night(self, mjd: int) -> str:
        """Every exposure of one night predicted by every predictor (``arcray predict``)."""
        return self._p("predict", "predictions", f"mjd={int(mjd)}.parquet")

    def predictions_night_fits(self, mjd: int) -> str:
        """The same table as a FITS binary table."""
        return self._p("predict", "predictions", f"mjd={int(mjd)}.fits")

    @property
    def predict_scores(self) -> str:
        """Each predicted night scored against its measured arcs (one row per night, camera, predictor)."""
        return self._p("predict", "scores.parquet")

    @property
    def predict_eval_scored(self) -> str:
        """Every night predicted by models fitted without it, each row with its error against the
        actual field (``arcray predict --evaluate``)."""
        return self._p("predict", "eval", "scored.parquet")

    @property
    def predict_eval_table(self) -> str:
        """Per camera and predictor: RMS x/y, ratio to the floor and to reuse, coverage, skips."""
        return self._p("predict", "eval", "predictors.parquet")

    @property
    def predict_eval_decisions(self) -> str:
        """Per camera, tolerance and rule (arcray's, time-only): arcs skipped and unsafe skips."""
        return self._p("predict", "eval", "decisions.parquet")

    def predict_timeline_figure(self, camera: str) -> str:
        return self._p("predict", "eval", f"timeline-{camera}.png")

    def predict_quiver_figure(self, camera: str) -> str:
        return self._p("predict", "eval", f"quiver-{camera}.png")

    # -- represent (benchmarks/bench_represent.py: representations scored against the truth) --------
    @property
    def represent(self) -> str:
        return self._p("represent")

    def represent_table(self, name: str) -> str:
        """One result table of the representation benchmark: ``losses`` (test loss and noise floor
        per representation, camera, latent), ``r2`` (per state term), ``lines`` (reconstruction
        line-position RMS, px), ``corners`` (corner windows: data, noiseless, reconstructions)."""
        return self._p("represent", f"{name}.parquet")

    # -- report ---------------------------------------------------------------------------
    @property
    def report(self) -> str:
        return self._p("report")

    @property
    def report_index(self) -> str:
        return self._p("report", "index.html")

    def report_figure(self, name: str) -> str:
        """A figure of the report (``report/fig/<name>``), linked from the index as ``fig/<name>``."""
        return self._p("report", "fig", name)

    # -- night (``arcray night``: one page per night, an index with a calendar) -------------
    @property
    def nights(self) -> str:
        return self._p("night")

    @property
    def nights_index(self) -> str:
        """The calendar of every night with a page, coloured by its worst status."""
        return self._p("night", "index.html")

    def night_page(self, mjd: int) -> str:
        """``night/<mjd>/index.html``: the night's health page."""
        return self._p("night", str(int(mjd)), "index.html")

    def night_figure(self, mjd: int, name: str) -> str:
        """A figure of one night's page, linked from it as ``<name>``."""
        return self._p("night", str(int(mjd)), name)

    def night_flags(self, mjd: int) -> str:
        """Every calibration frame of the night with its flag (cause), detail and action."""
        return self._p("night", str(int(mjd)), "flags.parquet")

    def night_summary(self, mjd: int) -> str:
        """The night's verdict per camera and its actionable lines (JSON), read by the index."""
        return self._p("night", str(int(mjd)), "night.json")


@dataclass(frozen=True)
class SimLayout:
    """Names inside a simulated world rendered by ``arcray sim render --out DIR``."""

    root: str

    @property
    def sas_root(self) -> str:
        return os.path.join(self.root, "sas")

    def raw_frame(self, camera: str, mjd: int, expnum: int) -> str:
        return os.path.join(self.sas_root, sas_relpath(camera, mjd, expnum))

    @property
    def mailman(self) -> str:
        return os.path.join(self.root, "mailman")

    def month_archive(self, year: int, month_name: str) -> str:
        """``<root>/mailman/2023-December.txt.gz``."""
        return os.path.join(self.mailman, f"{year}-{month_name}.txt.gz")

    @property
    def truth(self) -> str:
        return os.path.join(self.root, "truth.parquet")

    @property
    def world_json(self) -> str:
        """Seed and parameters the world was rendered with (so a server can re-render frames)."""
        return os.path.join(self.root, "world.json")
