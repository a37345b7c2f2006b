"""One chunk of RAVE observations: the model flux on each file's pixels, the noise, and the
Fisher matrices of the observations validation compares with the Cramér–Rao bound.

``observe`` is the three stages in order; ``benchmarks/simulate.py`` times each one.
"""

import numpy as np

from ..crlb import fisher_information
from ..labels import LABELS
from .forward import resample

RAVE_GRID = dict(crval1=8409.5, cdelt1=0.39, npix=990)
"""Nominal RAVE DR6 wavelength axis (Å); each file's CRVAL1 (±0.2 Å) and CDELT1 jitter around it,
always covering the common grid 8410–8795 Å of ``cube.COMMON_GRID``."""


JACOBIAN_ROWS = 250
"""Observations whose Jacobians are computed at once (each holds 9 × 3,155 model-grid floats)."""


def model_flux(model, labels, obs):
    """The noiseless flux of each observation on its own pixels (the file's CRVAL1, CDELT1,
    Doppler shifted by ``rv_residual``, km/s); returns (the pixels' wavelengths (Å), flux),
    arrays of ``len(labels)`` rows. ``model``: anything with ``wavelengths`` (Å), ``flux(labels)``
    and ``jacobian(labels)`` on them (``emulator.Emulator``, ``forward.ForwardModel``)."""
    wave = obs["crval1"][:, None] + np.arange(RAVE_GRID["npix"])[None, :] * obs["cdelt1"][:, None]
    return wave, resample(model.flux(labels), model.wavelengths, wave, obs["rv_residual"])


def add_noise(flux, snr, rng):
    """A continuum tilt, Gaussian noise at ``snr`` (per pixel, continuum), bad pixels and cosmic
    rays. Returns observed flux, relative error (σ/expected flux), the continuum, σ, and the
    number of bad pixels and cosmic rays per spectrum."""
    n, npix = flux.shape
    x = np.linspace(-1, 1, npix)
    cont = 1 + rng.normal(0, 0.01, (n, 1)) * x + rng.normal(0, 0.01, (n, 1)) * (1.5 * x**2 - 0.5)
    expected = flux * cont
    sigma = np.sqrt(np.clip(expected, 0.05, None)) / snr[:, None]
    observed = expected + rng.normal(size=expected.shape) * sigma
    rel_error = sigma / expected
    n_bad = rng.poisson(0.5, n)
    n_cosmic = rng.binomial(2, 0.03, n)
    for i in np.flatnonzero(n_bad + n_cosmic):
        bad = rng.integers(0, npix, n_bad[i])
        observed[i, bad], rel_error[i, bad] = 0.0, 10.0
        hit = rng.integers(0, npix - 1, n_cosmic[i])
        observed[i, hit] += rng.uniform(0.3, 1.0, n_cosmic[i])
    return observed, rel_error, cont, sigma, n_bad, n_cosmic


def fisher_matrices(model, labels, obs, wave, cont, sigma, rows):
    """Fisher matrices (len(rows), 9, 9) of the observations ``rows`` (indices), from the
    Jacobian resampled like the flux, times the continuum, and σ."""
    rows = np.asarray(rows, int)
    if rows.size == 0:
        return np.empty((0, len(LABELS), len(LABELS)))
    out = []
    for part in np.array_split(rows, -(-rows.size // JACOBIAN_ROWS)):  # memory: JACOBIAN_ROWS × 9 × model pixels
        jac = resample(model.jacobian(labels[part]), model.wavelengths, wave[part], obs["rv_residual"][part])
        out.append(fisher_information(jac * cont[part, None, :], sigma[part]))
    return np.concatenate(out)


def observe(model, labels, obs, rng, fisher_rows=None):
    """Noisy RAVE spectra of a chunk of observations and the Fisher matrices of some of them.

    ``obs``: dict of arrays (crval1, cdelt1 Å; rv_residual km/s; snr). ``fisher_rows``: indices
    of the observations whose Fisher matrix is wanted (default all); the random draws do not
    depend on it. Returns flux, relative error (σ/expected flux), Fisher matrices
    (len(fisher_rows), 9, 9), and the number of bad pixels and cosmic rays per spectrum.
    """
    wave, flux = model_flux(model, labels, obs)
    observed, rel_error, cont, sigma, n_bad, n_cosmic = add_noise(flux, obs["snr"], rng)
    rows = np.arange(len(labels)) if fisher_rows is None else fisher_rows
    return observed, rel_error, fisher_matrices(model, labels, obs, wave, cont, sigma, rows), n_bad, n_cosmic
