"""The report's section on ``arcray predict``, from its held-out evaluation (``arcray predict
--evaluate``: ``Layout.predict_eval_*``) and the nights it predicted (``Layout.predict_scores``).

One section, ``predict`` ("not run" when none of these exist):

- per camera, the predictors' table (RMS line-centre error in x and y, the ratio to
  the floor and the share below "reuse the latest arc", the coverage of the 90 % bound, the share
  of arcs skipped and of unsafe skips per tolerance), the decision against the best safe time-only
  rule, and each predicted night's scores against its measured arcs;
- per camera, a timeline of one held-out night: arcs taken, the predicted error and its
  bound growing after each arc, where arcs would be needed, the true error on top;
- predicted vs true line centres of test exposures (only with a simulated world's truth: without
  one that part says "not run").
"""

from __future__ import annotations

import html

import pandas as pd

from arcray.instrument import CAMERAS
from arcray.io import exists


def _table(df: pd.DataFrame, digits: int = 3) -> str:
    from arcray.report.html import table_html

    return table_html(df, digits=digits, max_rows=200)


def predict_sections(page) -> None:
    """Add the ``predict`` section to a report page (``report.html._Page``)."""
    lay = page.layout
    body, src = [], []
    if exists(lay.predict_eval_table):
        t = pd.read_parquet(lay.predict_eval_table)
        against = "the simulated world's true field" if "x_floor" in t.columns else "the measured arcs"
        body.append(f"<p>Every night predicted by models fitted without it, scored against {against} "
                    "(RMS over every alive fiber and lamp line, px; exposures with an earlier arc that night). "
                    "<code>below_reuse</code>: share of RMS below reusing the latest arc; <code>skip@T</code> / "
                    "<code>unsafe@T</code>: arcs the primary predictor's 90 % bound lets skip at tolerance T px, "
                    "and the share of those whose true error exceeded T. <code>interp</code> sees the next arc: "
                    "an upper bound, never used to skip.</p>")
        for cam, g in t.groupby("camera", sort=True):
            body += [f"<h4>{html.escape(str(cam))}: predictors</h4>", _table(g.drop(columns=["camera"]))]
        src.append(lay.predict_eval_table)
    if exists(lay.predict_eval_decisions):
        d = pd.read_parquet(lay.predict_eval_decisions)
        body += ["<h4>Decision: arcray's rule against the best time-only rule with at most 5 % unsafe skips "
                 "(T tuned on the training nights)</h4>", _table(d)]
        src.append(lay.predict_eval_decisions)
    if exists(lay.predict_scores):
        s = pd.read_parquet(lay.predict_scores)
        body += ["<h4>Predicted nights against their measured arcs (<code>arcray predict --mjd</code>)</h4>",
                 _table(s[[c for c in ("mjd", "camera", "predictor", "subset", "n", "rms_x", "rms_y", "rms_xy")
                           if c in s.columns]])]
        src.append(lay.predict_scores)
    figs, fsrc = page.images(lay.predict_timeline_figure(c) for c in sorted(CAMERAS))
    if figs:
        body += ["<h4>Night timeline (held out): arcs taken, the predicted error and its 90 % bound growing "
                 "after each arc, where an arc would be needed, the true error on top</h4>", *figs]
        src += fsrc
    figs, fsrc = page.images(lay.predict_quiver_figure(c) for c in sorted(CAMERAS))
    if body:
        body.append("<h4>Residuals: predicted vs true line centres (test exposures)</h4>")
        body += figs or ['<p class="nr">not run (needs a simulated world: <code>arcray predict --evaluate '
                         '--truth WORLD/truth.parquet</code>)</p>']
        src += fsrc
    page.section("predict", "Predicted calibration state (arcray predict)", body, src)
