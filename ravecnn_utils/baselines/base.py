"""The interface every peer shares: input checks, fitting bookkeeping, and per-label-group fits."""

import numpy as np


class NotFittedError(ValueError):
    """``predict`` (or another method needing a trained model) called before ``fit``."""


class Baseline:
    """Common checks and bookkeeping; subclasses implement ``_fit`` and ``_predict``."""

    _params = ()

    def __init__(self):
        self.n_pixels_ = None
        self.n_labels_ = None

    def __repr__(self):
        args = ", ".join(f"{p}={getattr(self, p)!r}" for p in self._params)
        return f"{type(self).__name__}({args})"

    def get_params(self):
        """The constructor arguments as a dict (for tables of results)."""
        return {p: getattr(self, p) for p in self._params}

    # --- checks -------------------------------------------------------------------------------
    def _check_flux(self, flux):
        flux = np.array(flux, dtype=float, ndmin=2)
        if flux.ndim != 2:
            raise ValueError(f"flux must be (n_spectra, n_pixels); got shape {flux.shape}")
        if self.n_pixels_ is not None and flux.shape[1] != self.n_pixels_:
            raise ValueError(f"{type(self).__name__} was fitted on spectra of {self.n_pixels_} pixels; "
                             f"expected {self.n_pixels_} pixels, found {flux.shape[1]}")
        bad = ~np.isfinite(flux)
        if bad.any():
            raise ValueError(f"{np.unique(np.nonzero(bad)[0]).size} spectra have NaN/inf flux "
                             f"({bad.sum()} pixels); replace pixels without information by 1.0")
        return flux

    @staticmethod
    def _check_ivar(ivar, flux):
        if ivar is None:
            return None
        ivar = np.array(ivar, dtype=float, ndmin=2)
        if ivar.shape != flux.shape:
            raise ValueError(f"ivar {ivar.shape} and flux {flux.shape} differ in shape")
        if not np.all(np.isfinite(ivar) & (ivar >= 0)):
            raise ValueError("ivar must be finite and >= 0 (0 = pixel without information)")
        return ivar

    def _check_fitted(self):
        if self.n_pixels_ is None:
            raise NotFittedError(f"{type(self).__name__} is not fitted; call fit(flux, y) first")

    # --- interface ----------------------------------------------------------------------------
    def fit(self, flux, y, ivar=None):
        """Train on ``flux`` (n, n_pixels) and labels ``y`` (n, n_labels; physical units, NaN =
        missing; a 1-D ``y`` is one label). ``ivar`` (n, n_pixels) is optional. Returns self."""
        self.n_pixels_ = None
        flux = self._check_flux(flux)
        y = np.asarray(np.ma.filled(np.ma.asarray(y, dtype=float), np.nan), dtype=float)
        if y.ndim == 1:
            y = y[:, None]
        if y.ndim != 2 or y.shape[0] != flux.shape[0]:
            raise ValueError(f"y must be (n_spectra, n_labels) with n_spectra = {flux.shape[0]} "
                             f"(the rows of flux); got shape {y.shape}")
        if flux.shape[0] == 0:
            raise ValueError("cannot fit on zero spectra")
        ivar = self._check_ivar(ivar, flux)
        self._fit(flux, y, ivar)
        self.n_pixels_, self.n_labels_ = flux.shape[1], y.shape[1]
        return self

    def predict(self, flux, ivar=None):
        """Labels (n, n_labels) in physical units for ``flux`` (n, n_pixels); NaN for a label
        that had no training value."""
        self._check_fitted()
        flux = self._check_flux(flux)
        return self._predict(flux, self._check_ivar(ivar, flux))

    def _fit(self, flux, y, ivar):
        raise NotImplementedError

    def _predict(self, flux, ivar):
        raise NotImplementedError


def _label_groups(y):
    """Group the label columns by their pattern of present rows.

    Returns a list of ``(columns, rows)`` (integer array, boolean mask over rows); labels with
    no value at all are left out.
    """
    present = np.isfinite(y)
    patterns, inverse = np.unique(present.T, axis=0, return_inverse=True)
    return [(np.flatnonzero(inverse.ravel() == g), pattern)
            for g, pattern in enumerate(patterns) if pattern.any()]


class PerLabelGroups(Baseline):
    """A scikit-learn regressor per group of labels sharing their present rows (see module doc).

    A group with fewer than ``min_rows`` rows is predicted by the mean of its values.
    """

    min_rows = 2

    def _features_fit(self, flux):
        return flux

    def _features(self, flux):
        return flux

    def _estimator(self, n_rows):
        raise NotImplementedError

    def _fit(self, flux, y, ivar):
        x = self._features_fit(flux)
        self.groups_ = []
        for columns, rows in _label_groups(y):
            target = y[np.ix_(rows, columns)]
            if rows.sum() < self.min_rows:
                self.groups_.append((columns, None, target.mean(axis=0)))
                continue
            estimator = self._estimator(int(rows.sum())).fit(x[rows], target)
            self.groups_.append((columns, estimator, None))

    def _predict(self, flux, ivar):
        x = self._features(flux)
        out = np.full((flux.shape[0], self.n_labels_), np.nan)
        for columns, estimator, constant in self.groups_:
            out[:, columns] = (np.broadcast_to(constant, (len(x), len(columns))) if estimator is None
                               else np.asarray(estimator.predict(x)).reshape(len(x), len(columns)))
        return out

    @property
    def alpha_(self):
        """Ridge penalty used for each label (NaN where no ridge was fitted)."""
        self._check_fitted()
        alpha = np.full(self.n_labels_, np.nan)
        for columns, estimator, _ in self.groups_:
            if estimator is not None and hasattr(estimator, "alpha_"):
                alpha[columns] = estimator.alpha_
            elif estimator is not None and hasattr(estimator, "alpha"):
                alpha[columns] = estimator.alpha
        return alpha
