"""Numbers that summarise residuals: bias, robust scatter, outlier fraction."""

import numpy as np

MAD_TO_SIGMA = 1.4826
"""Scale of the median absolute deviation to σ for a Gaussian."""


def bias_and_scatter(residuals):
    """Median (bias) and robust σ (1.4826 × median absolute deviation) of the finite residuals.

    Returns (nan, nan) when there is no finite residual.
    """
    r = np.asarray(np.ma.filled(np.ma.asarray(residuals, float), np.nan)).ravel()
    r = r[np.isfinite(r)]
    if r.size == 0:
        return np.nan, np.nan
    bias = np.median(r)
    return float(bias), float(MAD_TO_SIGMA * np.median(np.abs(r - bias)))


def residual_table(estimate, reference, names, what="estimate − reference"):
    """Bias and robust scatter per label of ``estimate − reference`` (arrays (n, k), NaN = missing).

    Returns an astropy Table: label, number of finite residuals, bias, robust scatter.
    """
    from astropy.table import Table

    diff = np.asarray(estimate, float) - np.asarray(reference, float)
    rows = [(name, int(np.isfinite(diff[:, j]).sum()), *bias_and_scatter(diff[:, j]))
            for j, name in enumerate(names)]
    table = Table(rows=rows, names=("label", "stars", f"bias ({what})", "robust scatter"))
    table[f"bias ({what})"].format = table["robust scatter"].format = ".3f"
    return table
