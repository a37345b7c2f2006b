"""Numbers that summarise residuals: bias, robust scatter, outlier fraction, binned residuals,
precision from repeat pairs, calibration of predicted uncertainties, bounds per bin."""

import numpy as np
from astropy.table import Table

MAD_TO_SIGMA = 1.4826
"""Scale of the median absolute deviation to σ for a Gaussian."""

OUTLIER_SIGMA = 3.0
"""A residual is an outlier when it lies more than this many robust σ from the bias
(0.27 % of a Gaussian)."""


def _finite(values):
    """1-D float array of the finite entries of ``values`` (masked entries dropped)."""
    r = np.asarray(np.ma.filled(np.ma.asarray(values, float), np.nan)).ravel()
    return r[np.isfinite(r)]


def bias_and_scatter(residuals):
    """Median (bias) and robust σ (1.4826 × median absolute deviation) of the finite residuals.

    Returns (nan, nan) when there is no finite residual.
    """
    r = _finite(residuals)
    if r.size == 0:
        return np.nan, np.nan
    bias = np.median(r)
    return float(bias), float(MAD_TO_SIGMA * np.median(np.abs(r - bias)))


def outlier_fraction(residuals, n_sigma=OUTLIER_SIGMA):
    """Fraction of the finite residuals farther than ``n_sigma`` robust σ from their median.

    A Gaussian gives 0.0027 for 3 σ; heavy tails (catastrophic failures) give more.
    NaN when there is no finite residual.
    """
    r = _finite(residuals)
    if r.size == 0:
        return np.nan
    bias, sigma = bias_and_scatter(r)
    return float(np.mean(np.abs(r - bias) > n_sigma * sigma))


def residual_table(estimate, reference, names, what="estimate − reference"):
    """Bias, robust scatter and outlier fraction per label of ``estimate − reference``
    (arrays (n, k), NaN = missing).

    Returns an astropy Table: label, spectra (the number of finite residuals), bias, robust scatter,
    outlier fraction (beyond ``OUTLIER_SIGMA`` robust σ).
    """

    diff = np.asarray(estimate, float) - np.asarray(reference, float)
    rows = [(name, int(np.isfinite(diff[:, j]).sum()), *bias_and_scatter(diff[:, j]), outlier_fraction(diff[:, j]))
            for j, name in enumerate(names)]
    table = Table(rows=rows, names=("label", "spectra", f"bias ({what})", "robust scatter", "outlier fraction"))
    table[f"bias ({what})"].format = table["robust scatter"].format = ".4g"  # K for Teff, dex otherwise
    table["outlier fraction"].format = ".3f"
    return table


def binned_residuals(residuals, x, edges):
    """Bias and robust scatter of ``residuals`` in bins of ``x`` (bin i: edges[i] ≤ x < edges[i+1]).

    Returns a dict of arrays, one entry per bin: ``lo``, ``hi``, ``n``, ``x_median``, ``bias``,
    ``scatter`` (NaN for an empty bin).
    """
    r, x, edges = np.asarray(residuals, float), np.asarray(x, float), np.asarray(edges, float)
    if r.shape != x.shape:
        raise ValueError(f"residuals {r.shape} and x {x.shape} must have the same shape")
    out = {key: [] for key in ("lo", "hi", "n", "x_median", "bias", "scatter")}
    for lo, hi in zip(edges[:-1], edges[1:]):
        sel = (x >= lo) & (x < hi) & np.isfinite(r)
        bias, scatter = bias_and_scatter(r[sel])
        for key, value in zip(out, (lo, hi, int(sel.sum()), np.median(x[sel]) if sel.any() else np.nan,
                                    bias, scatter)):
            out[key].append(value)
    return {key: np.asarray(value) for key, value in out.items()}


def rms_in_bins(values, x, edges):
    """Root mean square of ``values`` in bins of ``x``: for per-star Cramér–Rao bounds σ_i, the
    scatter an unbiased estimator reaching every bound would show in the bin. NaN if empty."""
    values, x = np.asarray(values, float), np.asarray(x, float)
    out = []
    for lo, hi in zip(edges[:-1], edges[1:]):
        v = values[(x >= lo) & (x < hi) & np.isfinite(values)]
        out.append(float(np.sqrt(np.mean(v**2))) if v.size else np.nan)
    return np.asarray(out)


def pair_precision(values, groups):
    """Precision of one measurement from repeat observations: robust σ of the differences
    between the first two measurements of each group (star), divided by √2.

    ``values`` (n,) one label of every observation; ``groups`` (n,) star identifiers. Returns
    (precision, number of pairs); (nan, 0) when no star has two finite measurements.
    """
    values, groups = np.asarray(values, float), np.asarray(groups)
    keep = np.isfinite(values)
    values, groups = values[keep], groups[keep]
    order = np.argsort(groups, kind="stable")
    values, groups = values[order], groups[order]
    same = groups[1:] == groups[:-1]
    first = np.r_[True, groups[1:] != groups[:-1]][:-1]       # pair = the first two of a group
    diff = (values[1:] - values[:-1])[same & first]
    if diff.size == 0:
        return np.nan, 0
    return bias_and_scatter(diff)[1] / np.sqrt(2.0), int(diff.size)


def zscores(residuals, sigma):
    """z = residual / σ (NaN where either is missing, or σ is 0 or not finite)."""
    residuals, sigma = np.asarray(residuals, float), np.asarray(sigma, float)
    usable = np.isfinite(sigma) & (sigma > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(usable, residuals / np.where(usable, sigma, 1.0), np.nan)


def zscore_summary(residuals, sigma):
    """Calibration of predicted uncertainties: z = residual / σ (``zscores``), summarised by
    ``z_summary``."""
    return z_summary(zscores(residuals, sigma))


def z_summary(z):
    """(robust σ of z, fraction of |z| < 1) over the finite z. Calibrated uncertainties give
    ≈ (1, 0.683); σ too small gives a z scatter above 1."""
    z = np.asarray(z, float)
    z = z[np.isfinite(z)]
    if z.size == 0:
        return np.nan, np.nan
    return bias_and_scatter(z)[1], float(np.mean(np.abs(z) < 1))


def slope_at_fixed(estimate, truth, fixed):
    """Does an estimate follow the label itself, or only the other labels? The coefficient b of
    the least-squares fit estimate = a + b·truth + c·fixed (``fixed``: (n,) or (n, k), e.g. the
    true [M/H]; None: no such term), over the rows where every value is finite.

    On a sample whose label is drawn independently of ``fixed`` (the simulation's decorrelated
    sample), b = 1 for an estimate that reads the label from the spectrum and b = 0 for one that
    returns what its training set's correlations expect at that [M/H] (the prior). Returns
    (b, its standard error, rows used); NaN where fewer than k + 3 rows or no spread in ``truth``.
    """
    y, t = np.asarray(estimate, float).ravel(), np.asarray(truth, float).ravel()
    f = np.empty((len(t), 0)) if fixed is None else np.asarray(fixed, float).reshape(len(t), -1)
    x = np.column_stack([np.ones(len(t)), t, f])
    ok = np.isfinite(y) & np.all(np.isfinite(x), axis=1)
    n = int(ok.sum())
    if n < x.shape[1] + 1 or np.ptp(t[ok]) == 0:
        return np.nan, np.nan, n
    x, y = x[ok], y[ok]
    coef, *_ = np.linalg.lstsq(x, y, rcond=None)
    dof = n - x.shape[1]
    s2 = np.sum((y - x @ coef) ** 2) / dof
    cov = s2 * np.linalg.pinv(x.T @ x)
    return float(coef[1]), float(np.sqrt(cov[1, 1])), n
