"""Label and velocity fits of the survey's forward model, the MOOG emulator (ravecnn_utils.simulation.realism): known labels and
a known radial velocity recovered from noiseless model spectra, and real spectra brought onto the
RAVE grid.

Tolerances: the spectra are the fitted model itself, noiseless, so the least-squares minimum lies
exactly at the truth (residual 0) and only the optimiser's stopping rule (scipy's ftol = xtol =
1e-8, relative: ~1e-4 K, ~1e-8 dex) limits the recovery. TOL (0.05 K, 1e-4 dex, 0.01 km/s) leaves
a margin of > 100 above that, and is still ~1000 times below RAVE's errors at SNR 100 (≈ 50 K,
0.1 dex, 1 km/s): a fit that stops early, is biased or flips the velocity's sign fails.
"""

import numpy as np
import pytest

from ravecnn_utils.cube import common_wavelengths
from ravecnn_utils.labels import LABELS
from ravecnn_utils.simulation import realism
from ravecnn_utils.simulation.emulator import Emulator

WAVE = np.arange(realism.FIT_RANGE[0], realism.FIT_RANGE[1], 0.4)
TOL = {"teff": 0.05, "logg": 1e-4, "fe_h": 1e-4, "velocity": 0.01}


@pytest.fixture(scope="module")
def model():
    return Emulator(resolution=realism.COMMON_RESOLUTION)


CASES = [  # (Teff, log g, [Fe/H]), velocity km/s, continuum, start
    ((4750.0, 2.45, -0.35), 37.0, (1.02, -0.015), realism.FIT_STARTS[0]),   # a giant, from the giant start
    ((5900.0, 4.20, 0.10), -22.5, (0.98, 0.01), realism.FIT_STARTS[1]),     # a dwarf, from the dwarf start
]


@pytest.mark.parametrize("truth, velocity, continuum, start", CASES)
def test_fit_labels_and_velocity_recover_the_truth(model, truth, velocity, continuum, start):
    flux = realism.model_spectrum(model, realism.labels_from_literature(*truth), WAVE, velocity,
                                  np.array(continuum))
    labels, v, rms = realism.fit_labels_and_velocity(model, WAVE, flux, start=start)
    assert labels.shape == (len(LABELS),)
    assert labels[0] == pytest.approx(truth[0], abs=TOL["teff"])
    assert labels[1] == pytest.approx(truth[1], abs=TOL["logg"])
    assert labels[2] == pytest.approx(truth[2], abs=TOL["fe_h"])
    assert v == pytest.approx(velocity, abs=TOL["velocity"])
    assert rms < 1e-6                                     # the line depths are ~0.1–0.6
    # the nine-label vector: [M/H] = [Fe/H], solar [α/M] and abundances
    np.testing.assert_array_equal(labels, realism.labels_from_literature(*labels[:3]))
    assert labels[LABELS.index("fe_h")] == labels[LABELS.index("m_h")]
    assert np.all(labels[[LABELS.index(n) for n in ("alpha_m", "si_fe", "al_fe", "mg_fe", "ni_fe")]] == 0)

    same, rms2 = realism.fit_labels(model, WAVE, flux, start=start)
    np.testing.assert_array_equal(same, labels)
    assert rms2 == rms


def test_fit_is_not_the_start(model):
    """A start 400 K, 0.6 dex and 0.3 dex away still reaches the truth (the fit moves the labels)."""
    truth = (5200.0, 3.3, -0.6)
    flux = realism.model_spectrum(model, realism.labels_from_literature(*truth), WAVE, 10.0, np.array([1.0, 0.0]))
    start = (4800.0, 2.7, -0.3)
    labels, v, _ = realism.fit_labels_and_velocity(model, WAVE, flux, start=start)
    for value, true, name in zip(labels[:3], truth, ("teff", "logg", "fe_h")):
        assert value == pytest.approx(true, abs=TOL[name])
    assert v == pytest.approx(10.0, abs=TOL["velocity"])
    # and the fitted spectrum is not the start's
    start_flux = realism.model_spectrum(model, realism.labels_from_literature(*start), WAVE, 10.0,
                                        np.array([1.0, 0.0]))
    assert np.sqrt(np.mean((start_flux - flux) ** 2)) > 1e-3


def test_real_on_grid_two_spectra(model):
    spectra = realism.read_real_spectra()
    two = spectra[[0, len(spectra) - 1]]
    assert set(two["library"]) == {"INDO-US", "DEIMOS"}
    table, flux = realism.real_on_grid(model=model, spectra=two)
    grid = common_wavelengths()
    assert table.colnames == ["library", "name", "teff", "logg", "m_h", "velocity", "rms"]
    assert list(table["name"]) == list(two["name"]) and list(table["library"]) == list(two["library"])
    assert flux.shape == (2, grid.size) and np.isfinite(flux).all()
    for k, star in enumerate(two):
        np.testing.assert_allclose(flux[k], realism.rave_like(star, table["velocity"][k]), rtol=1e-12)
        assert 0.8 < np.median(flux[k]) < 1.2 and flux[k].min() < 0.8      # normalised, with the Ca lines
        assert 3500 <= table["teff"][k] <= 8000 and 0 <= table["logg"][k] <= 5
        assert abs(table["velocity"][k]) < 300 and 0 < table["rms"][k] < 0.06
    # on another grid: the same fits, the flux on that grid
    half = grid[::2]
    table2, flux2 = realism.real_on_grid(model=model, spectra=two[:1], grid=half)
    assert flux2.shape == (1, half.size)
    assert table2["teff"][0] == pytest.approx(table["teff"][0], rel=1e-9)
    np.testing.assert_allclose(flux2[0], flux[0, ::2], rtol=1e-12)
