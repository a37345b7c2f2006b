"""Bias and robust scatter on known distributions."""

import numpy as np
import pytest

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
    assert list(table["spectra"]) == [5000, 4900]
    assert abs(table["bias (net − APOGEE)"][0] - 10) < 3 and abs(table["robust scatter"][0] - 50) < 3
    assert abs(table["bias (net − APOGEE)"][1] + 0.1) < 0.02 and abs(table["robust scatter"][1] - 0.2) < 0.02


def test_outlier_fraction_gaussian_and_contaminated():
    """A Gaussian has 0.27 % beyond 3 σ; adding 5 % wild points gives ≈ 5 % more."""
    from ravecnn_utils.metrics import outlier_fraction

    rng = np.random.default_rng(5)
    r = rng.normal(1.0, 2.0, 400_000)
    assert abs(outlier_fraction(r) - 0.0027) < 0.0005
    r[:20_000] = rng.uniform(50, 100, 20_000)
    assert abs(outlier_fraction(r) - 0.0526) < 0.003
    assert np.isnan(outlier_fraction([np.nan]))


def test_binned_residuals_per_bin():
    """Bins of x get the bias and scatter of their own residuals; an empty bin gives NaN."""
    from ravecnn_utils.metrics import binned_residuals

    rng = np.random.default_rng(6)
    x = rng.uniform(0, 2, 100_000)
    r = np.where(x < 1, rng.normal(0.0, 1.0, x.size), rng.normal(5.0, 3.0, x.size))
    out = binned_residuals(r, x, [0, 1, 2, 3])
    assert list(out["n"][:2].round(-3)) == [50_000, 50_000] and out["n"][2] == 0
    np.testing.assert_allclose(out["bias"][:2], [0, 5], atol=0.05)
    np.testing.assert_allclose(out["scatter"][:2], [1, 3], rtol=0.02)
    assert np.isnan(out["scatter"][2]) and np.isnan(out["x_median"][2])


def test_rms_in_bins():
    """RMS of per-star bounds per bin: √mean(σ²)."""
    from ravecnn_utils.metrics import rms_in_bins

    out = rms_in_bins([3.0, 4.0, 1.0, np.nan], [0.5, 0.5, 1.5, 1.5], [0, 1, 2, 3])
    np.testing.assert_allclose(out[:2], [np.sqrt(12.5), 1.0])
    assert np.isnan(out[2])


def test_pair_precision_recovers_single_measurement_noise():
    """Stars measured 2–3 times with noise 0.1 around different true values: precision ≈ 0.1,
    one pair per star with two finite measurements."""
    from ravecnn_utils.metrics import pair_precision

    rng = np.random.default_rng(7)
    stars = np.repeat(np.arange(20_000), 3)[: 50_000]   # 16,666 stars × 3, the last one × 2
    values = rng.normal(0, 5, 20_000)[stars] + rng.normal(0, 0.1, stars.size)
    values[0] = np.nan                                  # star 0 keeps two finite measurements
    shuffle = rng.permutation(stars.size)
    precision, n_pairs = pair_precision(values[shuffle], stars[shuffle])
    assert n_pairs == 16_667 and abs(precision - 0.1) < 0.003
    assert pair_precision([1.0, 2.0], ["a", "b"]) == (pytest.approx(np.nan, nan_ok=True), 0)


def test_zscore_summary_calibrated_and_overconfident():
    """σ equal to the true noise: z scatter ≈ 1 and 68 % within |z| < 1; σ halved: scatter ≈ 2."""
    from ravecnn_utils.metrics import zscore_summary

    rng = np.random.default_rng(8)
    sigma = rng.uniform(0.5, 2.0, 200_000)
    r = rng.normal(0, sigma)
    width, inside = zscore_summary(r, sigma)
    assert abs(width - 1) < 0.01 and abs(inside - 0.683) < 0.005
    assert abs(zscore_summary(r, sigma / 2)[0] - 2) < 0.02
