"""Predicting a camera's calibration state without taking an arc (issue 15); pure, no Ray, no I/O.

What is predicted is a *representation* of the state (``representation``): today the measured
12-term field of ``arcray.optics.Field`` (``MeasuredField``); a learned latent can plug in later by
giving its states and a way to turn them into fields. From the header values of an exposure and the
states of its night's earlier arcs, ``models`` predicts the state per camera (metadata-only:
``linear``, ``ridge``, ``gbr``; ``refarc``: the header-driven state now plus the night's latest usable
arc's departure from it, decayed with the time since), and two references that are not predictors
(``reuse``: the latest arc unchanged; ``interp``: time interpolation between the arcs before and
after, an upper bound that sees the future). ``uncertainty`` turns cross-validated errors into a
predicted RMS line error and a 90 % upper bound as a function of the time since the latest arc and
of how far the prediction moved from that arc, and the decision ``arc_needed``.
``night`` bundles the fit on training nights and the prediction of a night; ``evaluate`` holds the
leave-one-night-out loop and the scores against a true state.

Rows are exposures of one camera: a DataFrame with ``camera, mjd, expnum, flavor, date_obs``, the
header columns (FITS keyword names) and, for arcs, the measured state and ``usable``
(``features.usable_arcs``).
"""

from arcray.predict.models import PREDICTORS, REFERENCES
from arcray.predict.night import NightModel, fit_night_model, predict_night
from arcray.predict.representation import MeasuredField, Representation

__all__ = ["PREDICTORS", "REFERENCES", "MeasuredField", "NightModel", "Representation", "fit_night_model",
           "predict_night"]
