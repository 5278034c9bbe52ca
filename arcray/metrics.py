"""arcray's Prometheus metrics: every name in one place, and helpers for the ones the night records.

Ray exports a ``ray.util.metrics`` metric on each node's metrics port (``--metrics-export-port``,
8080 in the chart) as ``ray_<name>``, counters with ``_total`` appended, histograms as
``_bucket``/``_sum``/``_count``, and tag keys as labels. ``EXPORTED`` lists every metric arcray
records, with its kind and tag keys, so the Grafana dashboard (``helm/arcray/dashboards/``) and its
test can check each panel's query against what is really exported.

The stage modules create their own metrics (download actors, calibrate's Ray Data workers); the
names are repeated here, not imported from there. New ones belong here first:

- ``arcray_flags`` (counter; tags ``reason``, ``camera``): frames flagged, by reason (red QA
  quantity, instrument fault, failed measurement...), as the night's verdict counts them.
- ``arcray_arcs_needed`` (counter; tag ``camera``): arcs the calibration-state model predicts a
  camera needs; ``increase(...[1d])`` is the last night's prediction.
- ``arcray_arcs_needed_latest`` (gauge; tag ``camera``): the latest prediction itself, while the
  job's cluster lives (the chart deletes finished clusters, so dashboards use the counter).

Recording is a no-op outside Ray (a plain ``arcray night`` without a cluster, a unit test): the
helpers never start or require Ray. Metric objects are created once per process and reused.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from typing import NamedTuple


class Metric(NamedTuple):
    name: str          # as created with ray.util.metrics (Prometheus adds "ray_")
    kind: str          # counter | gauge | histogram
    tags: tuple[str, ...]
    description: str

    @property
    def series(self) -> tuple[str, ...]:
        """The Prometheus series names Ray exports for it."""
        base = f"ray_{self.name}"
        if self.kind == "counter":
            return (f"{base}_total",)
        if self.kind == "histogram":
            return (f"{base}_bucket", f"{base}_sum", f"{base}_count")
        return (base,)


FLAGS = Metric("arcray_flags", "counter", ("reason", "camera"), "frames flagged, by reason")
ARCS_NEEDED = Metric("arcray_arcs_needed", "counter", ("camera",),
                     "arcs the calibration-state model predicts a camera needs")
ARCS_NEEDED_LATEST = Metric("arcray_arcs_needed_latest", "gauge", ("camera",),
                            "latest predicted arcs needed per camera")

# Recorded by the stage modules themselves (arcray/pipeline/download.py, calibrate.py).
EXPORTED: tuple[Metric, ...] = (
    Metric("arcray_download_files", "counter", ("status",), "frames finished"),
    Metric("arcray_download_bytes", "counter", (), "bytes received from the SAS"),
    Metric("arcray_download_retries", "counter", (), "retried attempts"),
    Metric("arcray_download_failures", "counter", (), "frames that failed for good"),
    Metric("arcray_download_pending", "gauge", (), "frames not yet finished in this run"),
    Metric("arcray_calibrate_frames", "counter", ("status", "camera"), "frames calibrated, by status"),
    Metric("arcray_calibrate_seconds", "histogram", (), "seconds per frame"),
    FLAGS, ARCS_NEEDED, ARCS_NEEDED_LATEST,
)


def exported_series() -> set[str]:
    """Every Prometheus series name arcray exports (``ray_arcray_..._total`` etc.)."""
    return {s for m in EXPORTED for s in m.series}


def _ray_connected() -> bool:
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return False
    return ray.is_initialized()


@functools.cache
def _metric(m: Metric):
    from ray.util import metrics

    cls = {"counter": metrics.Counter, "gauge": metrics.Gauge}[m.kind]
    return cls(m.name, description=m.description, tag_keys=m.tags)


def record_flags(reason_counts: Mapping[str, int], *, camera: str = "all") -> None:
    """Add ``{reason: n}`` flagged frames of ``camera`` to ``arcray_flags``; zero counts skipped."""
    counts = {str(reason): int(n) for reason, n in reason_counts.items()}
    negative = {r: n for r, n in counts.items() if n < 0}
    if negative:
        raise ValueError(f"negative flag counts: {negative}")
    if not _ray_connected():
        return
    counter = _metric(FLAGS)
    for reason, n in counts.items():
        if n:
            counter.inc(n, tags={"reason": reason, "camera": str(camera)})


def record_arcs_needed(camera: str, n: int) -> None:
    """Record the predicted number of arcs ``camera`` needs (counter and latest-value gauge)."""
    if int(n) < 0:
        raise ValueError(f"arcs needed for {camera!r} is negative: {n}")
    if not _ray_connected():
        return
    tags = {"camera": str(camera)}
    if n:
        _metric(ARCS_NEEDED).inc(int(n), tags=tags)
    _metric(ARCS_NEEDED_LATEST).set(int(n), tags=tags)
