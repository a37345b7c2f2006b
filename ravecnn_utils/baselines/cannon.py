"""The Cannon (Ness et al. 2015): a generative model of each pixel, quadratic in the labels."""

import warnings

import numpy as np
from scipy.optimize import least_squares

from .base import Baseline


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
