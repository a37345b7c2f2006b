"""Min–max scaling to [0, 1], fitted on the training rows: the labels (outputs) and the photometry
(second input) of the networks."""

import math
import warnings

import numpy as np


def as_float_array(y):
    """Float64 copy of ``y`` with masked entries as NaN."""
    return np.asarray(np.ma.filled(np.ma.asarray(y, dtype=float), np.nan), dtype=float)


def plain(value):
    """``value`` with numpy scalars / arrays turned into plain Python (NaN and inf → None) for JSON."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


class LabelScaler:
    """Min–max scaling of labels to [0, 1] on the training rows: ``(y − min) / (max − min)``.

    NaN (missing) labels are ignored by ``fit`` and stay NaN. A label with a single value (or
    none at all) gets a scale of 1.
    """

    def __init__(self, minimum=None, scale=None):
        self.minimum = None if minimum is None else np.asarray(minimum, float)
        self.scale = None if scale is None else np.asarray(scale, float)

    def fit(self, y):
        """Fit on the training labels ``y`` (n, n_labels), physical units; returns self."""
        y = as_float_array(y)
        if y.shape[0] == 0:
            raise ValueError("cannot fit the scaling on zero training rows")
        with warnings.catch_warnings():  # an all-missing label is allowed
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
        scale = hi - lo
        self.minimum = np.where(np.isfinite(lo), lo, 0.0)
        self.scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        return self

    def _check(self):
        if self.minimum is None:
            raise ValueError("LabelScaler is not fitted; call fit(y_train) first")

    def transform(self, y):
        """Physical labels (n, n_labels) → scaled float32, NaN stays NaN."""
        self._check()
        return ((as_float_array(y) - self.minimum) / self.scale).astype(np.float32)

    def inverse(self, y):
        """Scaled labels (n, n_labels) → physical units (float64)."""
        self._check()
        return np.asarray(y, float) * self.scale + self.minimum

    def inverse_sigma(self, s):
        """Scaled uncertainties (n, n_labels) → physical units (scaled only, not shifted)."""
        self._check()
        return np.asarray(s, float) * self.scale

    def to_dict(self):
        """Plain-JSON description."""
        self._check()
        return {"kind": "minmax", "minimum": plain(self.minimum), "scale": plain(self.scale)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of ``to_dict``."""
        if d.get("kind", "minmax") != "minmax":
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
        return cls(d["minimum"], d["scale"])
