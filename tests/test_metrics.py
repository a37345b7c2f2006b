"""Bias and robust scatter on known distributions."""

import numpy as np

from ravecnn_utils.metrics import bias_and_scatter


def test_gaussian_bias_and_scatter_recovered():
    """For N(0.3, 2²) the bias is ≈ 0.3 and the robust σ ≈ 2."""
    r = np.random.default_rng(1).normal(0.3, 2.0, 200_000)
    bias, sigma = bias_and_scatter(r)
    assert abs(bias - 0.3) < 0.02 and abs(sigma - 2.0) < 0.02


def test_robust_to_outliers_and_ignores_nan_and_masked():
    """5 % wild outliers barely move the robust σ; NaN and masked entries are ignored."""
    rng = np.random.default_rng(2)
    r = rng.normal(0, 1, 10_000)
    r[:500] = 1e4
    _, sigma = bias_and_scatter(np.r_[r, np.nan])
    assert 1.0 < sigma < 1.1
    masked = np.ma.masked_array([1.0, 2.0, 3.0, 1e9], mask=[0, 0, 0, 1])
    assert bias_and_scatter(masked) == (2.0, 1.4826)


def test_empty_gives_nan():
    """No finite residual: (nan, nan)."""
    assert np.isnan(bias_and_scatter([np.nan, np.inf])).all()


def test_residual_table_per_label():
    """Bias and robust scatter per column of estimate − reference; NaN entries are not counted."""
    rng = np.random.default_rng(4)
    ref = rng.normal(size=(5000, 2))
    est = ref + np.column_stack([rng.normal(10, 50, 5000), rng.normal(-0.1, 0.2, 5000)])
    est[:100, 1] = np.nan
    from ravecnn_utils.metrics import residual_table

    table = residual_table(est, ref, ["teff", "logg"], what="net − APOGEE")
    assert list(table["stars"]) == [5000, 4900]
    assert abs(table["bias (net − APOGEE)"][0] - 10) < 3 and abs(table["robust scatter"][0] - 50) < 3
    assert abs(table["bias (net − APOGEE)"][1] + 0.1) < 0.02 and abs(table["robust scatter"][1] - 0.2) < 0.02
