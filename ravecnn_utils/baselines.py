"""The peers a user would pick instead of the CNN, behind one interface.

Every method is a class with ``fit(flux, y, ivar=None)`` (returns self) and
``predict(flux, ivar=None) -> (n, n_labels)``:

* ``flux`` (n, n_pixels): continuum-normalised spectra (dimensionless, continuum = 1), pixels
  with no information already replaced by 1.0; NaN/inf flux is a ValueError;
* ``y`` (n, n_labels): labels in physical units (K, dex), NaN = missing;
* ``ivar`` (n, n_pixels): optional pixel inverse variances (1/σ², σ in flux units, 0 = no
  information). Only ``TheCannon`` uses them; the others accept and ignore them so that a
  notebook can loop over ``BASELINES`` with the same call.

Missing labels. The discriminative methods (ridge, PCA + ridge, kNN) fit each label on the
rows where that label exists: labels that are present on the same rows share one
multi-output fit, which is column-by-column independent, so a missing value in one label
never changes the predictions of another. ``MeanPredictor`` takes the mean of the present
values. ``TheCannon`` needs complete label vectors: it trains on the rows where every label
is present (labels with no value at all are dropped first). A label without any training
value is predicted as NaN by every method.

``BASELINES`` maps a short name to a factory with sensible defaults:
``{name: factory() for name, factory in BASELINES.items()}`` gives fresh, unfitted models.
"""

import warnings

import numpy as np
from scipy.optimize import least_squares
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.neighbors import KNeighborsRegressor

__all__ = ["ALPHAS", "BASELINES", "Baseline", "KNearestNeighbours", "MeanPredictor", "NotFittedError",
           "PCARidge", "RidgeRegression", "TheCannon"]

ALPHAS = tuple(10.0 ** np.arange(-4.0, 4.01, 0.5))
"""Default ridge penalties (1e-4 … 1e4, 0.5 dex steps); one is chosen per label by leave-one-out."""


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


class _PerLabelGroups(Baseline):
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


def _ridge(alpha):
    """Ridge for one penalty, or RidgeCV (efficient leave-one-out, one penalty per label) for a sequence."""
    if np.ndim(alpha) == 0:
        return Ridge(alpha=float(alpha))
    return RidgeCV(alphas=np.asarray(alpha, float), alpha_per_target=True)


class MeanPredictor(Baseline):
    """Every spectrum gets the training mean of each label (NaN-aware): the floor to beat."""

    def _fit(self, flux, y, ivar):
        with warnings.catch_warnings():  # an all-missing label is allowed: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean_ = np.nanmean(y, axis=0)

    def _predict(self, flux, ivar):
        return np.tile(self.mean_, (flux.shape[0], 1))


class RidgeRegression(_PerLabelGroups):
    """Linear regression of each label on all pixels with an L2 penalty (scikit-learn ``Ridge``).

    ``alpha`` is the penalty on the squared coefficients (flux is not standardised, so it is in
    units of flux² × spectra): one number, or a sequence from which the best per label is chosen
    by efficient leave-one-out cross-validation (``RidgeCV``; the choice is in ``alpha_``).
    """

    _params = ("alpha",)

    def __init__(self, alpha=ALPHAS):
        super().__init__()
        self.alpha = alpha

    def _estimator(self, n_rows):
        return _ridge(self.alpha)


class PCARidge(_PerLabelGroups):
    """Ridge regression (as ``RidgeRegression``) on the first ``n_components`` principal
    components of the flux.

    The PCA is unsupervised, so it is fitted on every training spectrum, including those with
    missing labels; ``n_components`` is capped at min(n_spectra, n_pixels).
    """

    _params = ("n_components", "alpha")

    def __init__(self, n_components=50, alpha=ALPHAS):
        super().__init__()
        self.n_components = n_components
        self.alpha = alpha

    def _features_fit(self, flux):
        n = min(int(self.n_components), *flux.shape)
        self.pca_ = PCA(n_components=n, random_state=0).fit(flux)
        return self.pca_.transform(flux)

    def _features(self, flux):
        return self.pca_.transform(flux)

    def _estimator(self, n_rows):
        return _ridge(self.alpha)


class KNearestNeighbours(_PerLabelGroups):
    """Each label is the inverse-distance-weighted mean over the ``k`` nearest training spectra.

    Distances are Euclidean in the space of the first ``n_components`` principal components of
    the flux (not whitened, so they approximate flux distances with most of the pixel noise
    projected out; ``n_components=None`` uses the raw pixels). ``weights`` is ``"distance"``
    (default) or ``"uniform"``. The neighbours of a label are searched among the training rows
    where that label exists; ``k`` is capped at that number of rows.
    """

    _params = ("k", "n_components", "weights")
    min_rows = 1

    def __init__(self, k=10, n_components=30, weights="distance"):
        super().__init__()
        if weights not in ("distance", "uniform"):
            raise ValueError(f"weights must be 'distance' or 'uniform', not {weights!r}")
        self.k = k
        self.n_components = n_components
        self.weights = weights

    def _features_fit(self, flux):
        self.pca_ = None
        if self.n_components is not None:
            n = min(int(self.n_components), *flux.shape)
            self.pca_ = PCA(n_components=n, random_state=0).fit(flux)
            return self.pca_.transform(flux)
        return flux

    def _features(self, flux):
        return flux if self.pca_ is None else self.pca_.transform(flux)

    def _estimator(self, n_rows):
        return KNeighborsRegressor(n_neighbors=min(int(self.k), n_rows), weights=self.weights)


# --- The Cannon ---------------------------------------------------------------------------------

def _design(labels):
    """Quadratic label vectors (n, 1 + K + K(K+1)/2): 1, ℓ_i, ℓ_i ℓ_j (i ≤ j) of scaled labels (n, K)."""
    i, j = np.triu_indices(labels.shape[1])
    return np.hstack([np.ones((len(labels), 1)), labels, labels[:, i] * labels[:, j]])


def _design_jacobian(label):
    """∂(label vector)/∂ℓ (n_coeff, K) at one scaled label vector ℓ (K,)."""
    k = len(label)
    i, j = np.triu_indices(k)
    quad = np.zeros((len(i), k))
    rows = np.arange(len(i))
    quad[rows, i] += label[j]
    quad[rows, j] += label[i]
    return np.vstack([np.zeros((1, k)), np.eye(k), quad])


class TheCannon(Baseline):
    """The Cannon (Ness et al. 2015): a generative model, quadratic in the labels, per pixel.

    Model: flux_np = θ_p · v(ℓ_n) + noise of variance σ_np² + s_p², with v(ℓ) = (1, ℓ_i, ℓ_iℓ_j
    for i ≤ j) of labels pivoted on their training mean and scaled by their training standard
    deviation.

    Training: per-pixel weighted linear least squares for θ_p (weights 1/(σ² + s_p²)), plus an
    L2 penalty ``regularisation`` × |θ_p|² on all but the constant term (in flux units², scaled
    labels; an L2 stand-in for The Cannon 2's L1, kept for its closed form). The intrinsic
    scatter s_p² is estimated from the residuals by moments, s² = max(0, ⟨r²⟩ N/(N − n_coeff)
    − ⟨σ²⟩), iterated ``n_iterations`` times. Without ``ivar`` σ = 0 and s_p² is simply the
    residual variance of the pixel (uniform weights). Pixels with at most n_coeff informative
    training spectra are ignored (θ = continuum, s² = inf).

    Only training rows with every label present are used (labels with no value at all are
    dropped and predicted NaN); ``fit`` raises if fewer than n_coeff + 1 such rows remain.

    Test: per spectrum, non-linear least squares (``scipy.optimize.least_squares``, Levenberg–
    Marquardt, analytic Jacobian) of the labels, with weights 1/(σ_np² + s_p²), started from the
    training mean and from the label part of an unconstrained linear fit of the label vector
    (clipped to the training range); the better of the two is kept. Without ``ivar`` at test
    time σ² is the median training noise variance of each pixel (0 if ``fit`` had no ``ivar``).
    """

    _params = ("regularisation",)

    def __init__(self, regularisation=0.0, n_iterations=5):
        super().__init__()
        self.regularisation = float(regularisation)
        self.n_iterations = int(n_iterations)

    def _fit(self, flux, y, ivar):
        self.trained_ = np.isfinite(y).any(axis=0)
        if not self.trained_.any():
            raise ValueError("The Cannon needs at least one label with training values")
        rows = np.isfinite(y[:, self.trained_]).all(axis=1)
        labels, flux = y[rows][:, self.trained_], flux[rows]
        n, k = labels.shape
        n_coeff = 1 + k + k * (k + 1) // 2
        if n <= n_coeff:
            raise ValueError(f"The Cannon with {k} labels has {n_coeff} coefficients per pixel and needs more "
                             f"than {n_coeff} training spectra with every label present; found {n}")
        self.n_train_ = n  # rows with every trained label present
        self.pivot_ = labels.mean(axis=0)
        sd = labels.std(axis=0)
        self.scale_ = np.where(sd > 0, sd, 1.0)
        scaled = (labels - self.pivot_) / self.scale_
        self.range_ = scaled.min(axis=0), scaled.max(axis=0)
        design = _design(scaled)
        penalty = self.regularisation * np.diag(np.r_[0.0, np.ones(n_coeff - 1)])
        n_pix = flux.shape[1]

        if ivar is None:
            self.noise_var_ = np.zeros(n_pix)
            theta = np.linalg.solve(design.T @ design + penalty, design.T @ flux).T
            resid = flux - design @ theta.T
            self.theta_ = theta
            self.s2_ = (resid ** 2).sum(axis=0) / (n - n_coeff)
            return

        ivar = ivar[rows]
        good = ivar > 0
        with np.errstate(divide="ignore"):
            noise_var = np.where(good, 1.0 / np.where(good, ivar, 1.0), np.inf)
        count = good.sum(axis=0)
        usable = count > n_coeff
        with warnings.catch_warnings():  # all-NaN columns: pixels without any information
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(np.where(good, noise_var, np.nan), axis=0)
        self.noise_var_ = np.where(usable, median, 0.0)
        iu, ju = np.triu_indices(n_coeff)
        products = design[:, iu] * design[:, ju]  # (n, n_coeff(n_coeff+1)/2)
        s2 = np.zeros(n_pix)
        theta = np.zeros((n_pix, n_coeff))
        theta[:, 0] = 1.0
        for _ in range(max(self.n_iterations, 1)):
            w = np.where(good, 1.0 / np.where(good, noise_var + s2, 1.0), 0.0)[:, usable]
            a = np.zeros((w.shape[1], n_coeff, n_coeff))
            a[:, iu, ju] = w.T @ products
            a[:, ju, iu] = a[:, iu, ju]
            b = (w * flux[:, usable]).T @ design
            theta[usable] = np.linalg.solve(a + penalty, b[..., None])[..., 0]
            resid = flux[:, usable] - design @ theta[usable].T
            g = good[:, usable]
            m = g.sum(axis=0)
            mean_r2 = np.where(g, resid ** 2, 0.0).sum(axis=0) / m
            mean_var = np.where(g, noise_var[:, usable], 0.0).sum(axis=0) / m
            new = np.maximum(0.0, mean_r2 * m / (m - n_coeff) - mean_var)
            converged = np.allclose(np.sqrt(new), np.sqrt(s2[usable]), rtol=1e-3, atol=1e-6)
            s2[usable] = new
            if converged:
                break
        s2[~usable] = np.inf
        self.theta_, self.s2_ = theta, s2

    @property
    def s_(self):
        """Intrinsic scatter per pixel (flux units)."""
        self._check_fitted()
        return np.sqrt(self.s2_)

    def model_flux(self, labels):
        """The model spectra (n, n_pixels) at ``labels`` (n, n_labels), physical units (only the
        trained labels are read)."""
        self._check_fitted()
        labels = np.array(labels, dtype=float, ndmin=2)[:, self.trained_]
        return _design((labels - self.pivot_) / self.scale_) @ self.theta_.T

    def predict_with_uncertainty(self, flux, ivar=None):
        """``(labels, sigma, chi2_reduced)``: labels and formal 1σ (n, n_labels), physical units,
        from the curvature of χ² at the best fit, and χ²/(n_pixels − K) per spectrum (n,)."""
        self._check_fitted()
        flux = self._check_flux(flux)
        return self._test(flux, self._check_ivar(ivar, flux))

    def _predict(self, flux, ivar):
        return self._test(flux, ivar)[0]

    def _test(self, flux, ivar):
        k = int(self.trained_.sum())
        n = flux.shape[0]
        labels = np.full((n, self.n_labels_), np.nan)
        sigma = np.full((n, self.n_labels_), np.nan)
        chi2 = np.full(n, np.nan)
        lo, hi = self.range_
        for s in range(n):
            noise = self.noise_var_ if ivar is None else np.where(
                ivar[s] > 0, 1.0 / np.where(ivar[s] > 0, ivar[s], 1.0), np.inf)
            total = np.maximum(noise + self.s2_, 1e-30)
            sw = np.sqrt(1.0 / total)
            used = sw > 0
            if used.sum() <= k:
                continue  # (almost) no informative pixel: labels stay NaN
            f, th, w = flux[s, used], self.theta_[used], sw[used]

            def residual(x):
                return w * (f - th @ _design(x[None])[0])

            def jacobian(x):
                return -w[:, None] * (th @ _design_jacobian(x))

            v = np.linalg.lstsq(w[:, None] * th, w * f, rcond=None)[0]
            starts = [np.zeros(k), np.clip(v[1:k + 1], lo, hi)]
            fits = [least_squares(residual, x0, jac=jacobian, method="lm") for x0 in starts]
            best = min(fits, key=lambda r: r.cost)
            labels[s, self.trained_] = best.x * self.scale_ + self.pivot_
            cov = np.linalg.pinv(best.jac.T @ best.jac)
            sigma[s, self.trained_] = np.sqrt(np.clip(np.diag(cov), 0, None)) * self.scale_
            chi2[s] = 2 * best.cost / max(used.sum() - k, 1)
        return labels, sigma, chi2


BASELINES = {
    "mean": MeanPredictor,
    "ridge": RidgeRegression,
    "pca_ridge": lambda: PCARidge(n_components=50),
    "knn": lambda: KNearestNeighbours(k=10, n_components=30, weights="distance"),
    "cannon": lambda: TheCannon(regularisation=0.0),
}
"""Short name → factory of a fresh, unfitted model with the defaults used in the book."""
