"""Simulated against real spectra (ravecnn_utils.simulation.realism): reading, degrading, comparing."""

import numpy as np
from astropy.table import Table
import pytest

from ravecnn_utils.simulation import realism
from ravecnn_utils.labels import LABELS


@pytest.fixture(scope="module")
def spectra():
    return realism.read_real_spectra()


def test_read_real_spectra(spectra):
    """46 continuum-normalised spectra from both libraries, each with a regular, increasing
    grid covering the Ca II triplet and a flux array of the same length."""
    assert len(spectra) == 46
    assert set(spectra["library"]) == {"INDO-US", "DEIMOS"}
    assert len(set(spectra["name"])) == 46
    for star in spectra:
        wave, flux = star["wave"], star["flux"]
        assert wave.shape == flux.shape and wave.size > 100
        step = np.diff(wave)
        np.testing.assert_allclose(step, step[0], rtol=1e-6)
        assert step[0] > 0
        assert wave[0] < 8498 and wave[-1] > 8662
        good = np.isfinite(flux)
        assert 0.8 < np.median(flux[good]) < 1.2  # continuum-normalised


def test_real_labels_have_spectra(spectra):
    """Every labelled benchmark star has a spectrum in the file."""
    labels = realism.read_real_labels()
    assert len(labels) >= 2
    assert set(labels["name"]) <= set(spectra["name"])


WAVE = 8400.0 + 0.2 * np.arange(2000)


def test_degrade_preserves_flat_spectrum():
    """Convolution keeps a flat spectrum flat at its level (and its mean)."""
    flat = np.full(WAVE.size, 0.97)
    out = realism.degrade(WAVE, flat, 1.0)
    np.testing.assert_allclose(out, 0.97, rtol=1e-12)
    np.testing.assert_allclose(out.mean(), flat.mean(), rtol=1e-12)


def test_degrade_narrow_line_to_common_resolution():
    """A line with the native FWHM (1.0 Å) comes out shallower, with its equivalent width
    conserved and its FWHM equal to the common λ/R (the quadrature difference is right)."""
    fwhm_from = 1.0
    sigma = fwhm_from / (2 * np.sqrt(2 * np.log(2)))
    flux = 1 - 0.5 * np.exp(-0.5 * ((WAVE - 8600.0) / sigma) ** 2)
    out = realism.degrade(WAVE, flux, fwhm_from)
    assert 1 - out.min() < 0.6 * 0.5
    ew_in, ew_out = np.sum(1 - flux), np.sum(1 - out)
    np.testing.assert_allclose(ew_out, ew_in, rtol=1e-6)
    dep = 1 - out
    mean = np.sum(WAVE * dep) / dep.sum()
    fwhm_out = 2 * np.sqrt(2 * np.log(2)) * np.sqrt(np.sum((WAVE - mean) ** 2 * dep) / dep.sum())
    np.testing.assert_allclose(fwhm_out, np.median(WAVE) / realism.COMMON_RESOLUTION, rtol=0.02)


def test_degrade_refuses_to_sharpen():
    """Asking for a resolution sharper than the input raises ValueError."""
    with pytest.raises(ValueError, match="sharper"):
        realism.degrade(WAVE, np.ones(WAVE.size), 3.0)  # λ/R at R = 4000 is ≈ 2.15 Å
    with pytest.raises(ValueError, match="sharper"):
        realism.degrade(WAVE, np.ones(WAVE.size), 1.0, resolution_to=20000.0)


def test_benchmark_comparison(spectra):
    """One row per labelled star, with the real and simulated spectra on the same grid, a
    modest fitted velocity and a finite RMS residual below 0.06."""
    labels = realism.read_real_labels()
    out = realism.benchmark_comparison(spectra=spectra)
    assert len(out) == len(labels)
    assert list(out["name"]) == list(labels["name"])
    for row in out:
        assert np.isfinite(row["rms"]) and 0 < row["rms"] < 0.06
        assert abs(row["velocity"]) < 300
        assert row["wave"].shape == row["real"].shape == row["simulated"].shape
        assert row["wave"].min() >= realism.FIT_RANGE[0] and row["wave"].max() <= realism.FIT_RANGE[1]
        np.testing.assert_allclose(np.sqrt(np.mean((row["simulated"] - row["real"]) ** 2)), row["rms"],
                                   rtol=1e-6)


def test_benchmark_comparison_unknown_star(spectra):
    """A labelled star without a spectrum raises ValueError naming it."""
    labels = realism.read_real_labels()[:1]
    labels["name"][0] = "HD000001"
    with pytest.raises(ValueError, match="HD000001"):
        realism.benchmark_comparison(spectra=spectra, labels=labels)


def test_labels_from_literature_order():
    """Teff, log g, [Fe/H] (and [α/M]) become a 9-vector in LABELS order: [M/H] = [Fe/H],
    [Si/Fe] = [Mg/Fe] = [α/M], [Al/Fe] = [Ni/Fe] = 0."""
    vec = realism.labels_from_literature(4577.0, 2.33, 0.06, alpha_m=0.2)
    assert vec.shape == (len(LABELS),)
    expected = {"teff": 4577.0, "logg": 2.33, "m_h": 0.06, "fe_h": 0.06, "alpha_m": 0.2,
                "si_fe": 0.2, "al_fe": 0.0, "mg_fe": 0.2, "ni_fe": 0.0}
    np.testing.assert_array_equal(vec, [expected[name] for name in LABELS])
    np.testing.assert_array_equal(realism.labels_from_literature(5000.0, 3.0, -1.0)[[4, 5, 7]], 0.0)


def test_rave_like_shifts_to_rest_and_resamples():
    """A line at 8542.09 Å observed at +120 km/s lands back at 8542.09 Å on the common grid; a
    spectrum that does not reach the grid's end is refused, naming the star."""
    from astropy.table import Table

    from ravecnn_utils.simulation.forward import SPEED_OF_LIGHT_KMS
    from ravecnn_utils.cube import common_wavelengths

    v, rest_line = 120.0, 8542.09
    wave = np.arange(8380.0, 8900.0, 0.4)
    observed = rest_line * (1 + v / SPEED_OF_LIGHT_KMS)
    flux = 1 - 0.6 * np.exp(-0.5 * ((wave - observed) / 1.5) ** 2)
    star = Table(rows=[("INDO-US", "toy", wave, flux)], names=("library", "name", "wave", "flux"),
                 dtype=(str, str, object, object))[0]
    grid = common_wavelengths()
    out = realism.rave_like(star, v)
    assert out.shape == grid.shape
    assert abs(grid[np.argmin(out)] - rest_line) < 0.4
    short = Table(rows=[("INDO-US", "short", wave[:700], flux[:700])], names=("library", "name", "wave", "flux"),
                  dtype=(str, str, object, object))[0]
    with pytest.raises(ValueError, match="short"):
        realism.rave_like(short, v)


def test_labelled_stars_are_always_fitted_and_set_beside_the_literature(spectra):
    """spectra_to_fit keeps the first n and every labelled star; fit_beside_literature sets a fit
    table's labels beside the literature ones, NaN for a star the fits lack."""
    labels = realism.read_real_labels()
    chosen = realism.spectra_to_fit(spectra, labels, 2)
    assert list(chosen["name"][:2]) == list(spectra["name"][:2])
    assert set(labels["name"]) <= set(chosen["name"]) and len(chosen) == len(set(chosen["name"]))
    fits = Table({"library": ["x"], "name": [labels["name"][0]], "teff": [5000.0], "logg": [3.0], "m_h": [-0.2],
                  "rms": [0.01]})
    table = realism.fit_beside_literature(fits, labels)
    assert list(table["star"]) == list(labels["name"])
    assert table["Teff fit [K]"][0] == 5000.0 and table["[Fe/H] fit"][0] == -0.2
    assert table["Teff literature [K]"][0] == labels["teff_K"][0]
    assert np.isnan(table["log g fit"][1])
