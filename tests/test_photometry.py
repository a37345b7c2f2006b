"""Absolute magnitudes from parallaxes for the photometric input."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from ravecnn_utils import photometry


def catalogue(parallax, mag=10.0):
    n = len(parallax)
    table = Table({"parallax": MaskedColumn(parallax, mask=np.isnan(parallax))})
    for col in photometry.BANDS.values():
        table[col] = np.full(n, mag)
    table["av50"] = np.full(n, 0.1)
    return table


def test_distance_modulus():
    """A star at 10 pc (100 mas) has M = m; at 1 kpc (1 mas) M = m − 10; A_V is passed through."""
    out = photometry.absolute_magnitudes(catalogue(np.array([100.0, 1.0])))
    assert out.shape == (2, len(photometry.FEATURES))
    np.testing.assert_allclose(out[0, :8], 10.0, atol=1e-5)
    np.testing.assert_allclose(out[1, :8], 0.0, atol=1e-5)
    np.testing.assert_allclose(out[:, 8], 0.1, atol=1e-6)


def test_bad_parallax_gives_nan():
    """Negative, zero or missing parallaxes give NaN absolute magnitudes."""
    out = photometry.absolute_magnitudes(catalogue(np.array([-0.5, 0.0, np.nan, 2.0])))
    assert np.isnan(out[:3, :8]).all() and np.isfinite(out[3]).all()


def test_missing_column_is_named():
    table = catalogue(np.array([1.0]))
    table.remove_column("w2mpro")
    with pytest.raises(ValueError, match="w2mpro"):
        photometry.absolute_magnitudes(table)
