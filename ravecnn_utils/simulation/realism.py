"""Simulated against real spectra: the real Ca II triplet spectra of known stars.

``data/real_cat_spectra/spectra.fits`` holds continuum-normalised spectra of
the Indo-US and Keck/DEIMOS libraries (see its README). To compare them with the
survey's model of spectra (the MOOG emulator, ``emulator.Emulator``; any object with
``wavelengths`` and ``flux(labels)`` will do, e.g. the hand-built ``forward.ForwardModel``),
both are brought to a common, lower resolution (``COMMON_RESOLUTION``),
the real spectrum by a Gaussian whose width is the quadrature difference of the
two line-spread functions; nuisance parameters (radial velocity, a linear
continuum) are fitted to every spectrum. Nothing here is tuned on the real spectra, except
``calibrate``, which fits the hand-built model's constants to the two labelled stars.
"""

import numpy as np
from astropy.io import fits
from astropy.table import Table
from scipy.ndimage import gaussian_filter1d
from scipy.optimize import least_squares

from ..cube import common_wavelengths
from ..labels import LABELS
from ..paths import REAL_LABELS_FILE, REAL_SPECTRA_FILE
from .emulator import Emulator
from .forward import SPEED_OF_LIGHT_KMS, ForwardModel, resample

COMMON_RESOLUTION = 4000.0
"""Resolving power at which real and simulated spectra are compared."""

NATIVE_FWHM = {"INDO-US": 1.0, "DEIMOS": 1.3}
"""Assumed FWHM (Å) of each library's line-spread function near 8600 Å (not in the
headers; an error of ±0.3 Å changes the degraded spectra little, since the common
FWHM is 2.15 Å)."""

RAVE_RESOLUTION = 7500.0
"""RAVE's resolving power: real spectra fed to the networks are degraded to it."""

FIT_STARTS = ((4600.0, 2.3, -0.3), (5800.0, 4.3, -0.3))
"""Starting (Teff K, log g, [Fe/H]) of label fits: a giant and a dwarf."""

FIT_RANGE = (8420.0, 8780.0)
"""Wavelength range (Å) used in every comparison."""

CALIBRATED = ("log_c", "max_depth", "log_gamma_ca", "log_gamma_vdw")
"""Forward-model constants fitted by ``calibrate`` (the Paschen constants stay: the
labelled stars are too cool to constrain them)."""


def read_real_spectra(path=REAL_SPECTRA_FILE):
    """Every real spectrum: a Table with ``library``, ``name``, ``wave`` (Å), ``flux``.

    Spectra of the two libraries have different grids, so ``wave`` and ``flux``
    are object columns of 1-D arrays.
    """
    rows = []
    with fits.open(path) as hdul:
        for hdu in hdul[1:]:
            h = hdu.header
            wave = h["CRVAL1"] + (np.arange(h["NPIX"]) + 1 - h["CRPIX1"]) * h["CDELT1"]
            for name, flux in zip(hdu.data["NAME"], hdu.data["FLUX"]):
                rows.append((hdu.name, name.strip(), wave, np.asarray(flux, float)))
    table = Table(rows=rows, names=("library", "name", "wave", "flux"), dtype=(str, str, object, object))
    return table


def read_real_labels(path=REAL_LABELS_FILE):
    """Literature labels (Gaia FGK benchmark stars): name, teff_K, logg_dex, feh_dex…"""
    return Table.read(path, format="ascii.csv")


def degrade(wave, flux, fwhm_from, resolution_to=COMMON_RESOLUTION):
    """Convolve a spectrum on a regular grid (Å) from FWHM ``fwhm_from`` (Å) to λ/R."""
    fwhm_to = np.median(wave) / resolution_to
    if fwhm_to <= fwhm_from:
        raise ValueError(f"cannot degrade FWHM {fwhm_from} Å to the sharper {fwhm_to:.2f} Å")
    sigma_px = np.sqrt(fwhm_to**2 - fwhm_from**2) / (2 * np.sqrt(2 * np.log(2))) / (wave[1] - wave[0])
    return gaussian_filter1d(flux, sigma_px, mode="nearest")


def labels_from_literature(teff, logg, feh, alpha_m=0.0):
    """A full nine-label vector for a star known only by Teff, log g, [Fe/H].

    [M/H] = [Fe/H]; [α/M] as given (default solar); [X/Fe] = [α/M] for Mg and Si,
    0 for Al and Ni.
    """
    return np.array([teff, logg, feh, feh, alpha_m, alpha_m, 0.0, alpha_m, 0.0])


def model_spectrum(model, labels, wave, velocity, continuum):
    """Model flux on ``wave`` (Å) for one star, shifted by ``velocity`` (km/s),
    times a continuum ``c0 + c1·x`` with x ∈ [−1, 1] across ``wave``."""
    flux = resample(model.flux(labels[None]), model.wavelengths, wave[None], velocity)[0]
    x = np.linspace(-1, 1, wave.size)
    return flux * (continuum[0] + continuum[1] * x)


def _prepare(star):
    wave = star["wave"]
    flux = degrade(wave, star["flux"], NATIVE_FWHM[star["library"]])
    keep = (wave >= FIT_RANGE[0]) & (wave <= FIT_RANGE[1]) & np.isfinite(flux)
    return wave[keep], flux[keep]


def fit_nuisance(model, labels, wave, flux):
    """Best radial velocity (km/s) and linear continuum for fixed labels; returns (v, c, rms)."""
    def resid(p):
        return model_spectrum(model, labels, wave, p[0], p[1:]) - flux
    best = None
    for v0 in (-60.0, -20.0, 20.0, 60.0):   # coarse start: real spectra are not all at rest
        fit = least_squares(resid, [v0, 1.0, 0.0], bounds=([-300, 0.5, -0.5], [300, 1.5, 0.5]))
        if best is None or fit.cost < best.cost:
            best = fit
    return best.x[0], best.x[1:], float(np.sqrt(np.mean(best.fun**2)))


def fit_labels(model, wave, flux, start=(5000.0, 3.0, 0.0)):
    """Least-squares Teff (K), log g, [Fe/H] (with [M/H] = [Fe/H], solar [α/M]),
    radial velocity and continuum of one real spectrum. Returns (labels, rms)."""
    labels, _, rms = fit_labels_and_velocity(model, wave, flux, start)
    return labels, rms


def fit_labels_and_velocity(model, wave, flux, start=(5000.0, 3.0, 0.0)):
    """As ``fit_labels``, also returning the radial velocity (km/s): (labels, velocity, rms)."""
    v, cont, _ = fit_nuisance(model, labels_from_literature(*start), wave, flux)

    def resid(p):
        return model_spectrum(model, labels_from_literature(*p[:3]), wave, p[3], p[4:]) - flux

    fit = least_squares(
        resid, [*start, v, *cont], x_scale=[300, 0.5, 0.3, 5, 0.05, 0.05],
        bounds=([3500, 0.0, -2.5, -300, 0.5, -0.5], [8000, 5.0, 0.6, 300, 1.5, 0.5]),
    )
    return labels_from_literature(*fit.x[:3]), float(fit.x[3]), float(np.sqrt(np.mean(fit.fun**2)))


def benchmark_comparison(model=None, spectra=None, labels=None):
    """Simulated spectra at the literature labels against the real spectra.

    Returns a Table per labelled star: name, library, literature Teff/log g/[Fe/H],
    fitted radial velocity, and ``rms`` (the RMS flux residual at the common resolution),
    plus the arrays ``wave``, ``real`` and ``simulated`` for plotting.
    """
    model = model or Emulator(resolution=COMMON_RESOLUTION)
    spectra = read_real_spectra() if spectra is None else spectra
    labels = read_real_labels() if labels is None else labels
    rows = []
    for lab in labels:
        match = spectra[spectra["name"] == lab["name"]]
        if len(match) == 0:
            raise ValueError(f"labelled star {lab['name']} has no spectrum in the real spectra file")
        star = match[0]
        wave, flux = _prepare(star)
        vec = labels_from_literature(lab["teff_K"], lab["logg_dex"], lab["feh_dex"])
        v, cont, rms = fit_nuisance(model, vec, wave, flux)
        sim = model_spectrum(model, vec, wave, v, cont)
        rows.append((lab["name"], star["library"], lab["teff_K"], lab["logg_dex"], lab["feh_dex"],
                     v, rms, wave, flux, sim))
    return Table(rows=rows, names=("name", "library", "teff", "logg", "fe_h", "velocity", "rms",
                                   "wave", "real", "simulated"),
                 dtype=(str, str, float, float, float, float, float, object, object, object))


def fit_all(model=None, spectra=None):
    """Fit the model's labels to every real spectrum; Table of fitted labels and RMS."""
    model = model or Emulator(resolution=COMMON_RESOLUTION)
    spectra = read_real_spectra() if spectra is None else spectra
    rows = []
    for star in spectra:
        labels, _, rms = best_fit(model, *_prepare(star))
        rows.append((star["library"], star["name"], *labels[:3], rms))
    return Table(rows=rows, names=("library", "name", *LABELS[:3], "rms"))


def spectra_to_fit(spectra, literature, n_first):
    """The first ``n_first`` of ``spectra``, and always the stars with literature labels."""
    chosen = np.arange(len(spectra)) < n_first
    return spectra[chosen | np.isin(spectra["name"], literature["name"])]


def fit_beside_literature(fits, literature):
    """One row per labelled star: its literature Teff (K), log g, [Fe/H] beside those of ``fits``
    (``fit_all``'s table; NaN for a star it lacks)."""
    table = Table({"star": literature["name"], "Teff literature [K]": literature["teff_K"],
                   "log g literature": literature["logg_dex"], "[Fe/H] literature": literature["feh_dex"]})
    fitted = [fits[fits["name"] == name] for name in literature["name"]]
    for column, key in (("Teff fit [K]", "teff"), ("log g fit", "logg"), ("[Fe/H] fit", "m_h")):
        table[column] = [row[key][0] if len(row) else np.nan for row in fitted]
    return table


def best_fit(model, wave, flux):
    """``fit_labels_and_velocity`` from a giant's and a dwarf's start; the better of the two."""
    return min((fit_labels_and_velocity(model, wave, flux, start) for start in FIT_STARTS), key=lambda r: r[2])


def rave_like(star, velocity, grid=None):
    """A real spectrum as RAVE would give it: shifted to rest by ``velocity`` (km/s), degraded to
    R = ``RAVE_RESOLUTION`` when it is sharper, and resampled linearly onto ``grid`` (Å; default the
    common grid). Returns the flux on the grid."""
    grid = common_wavelengths() if grid is None else np.asarray(grid, float)
    wave, flux = np.asarray(star["wave"], float), np.asarray(star["flux"], float)
    if NATIVE_FWHM[star["library"]] < np.median(wave) / RAVE_RESOLUTION:
        flux = degrade(wave, flux, NATIVE_FWHM[star["library"]], RAVE_RESOLUTION)
    rest = wave / (1 + velocity / SPEED_OF_LIGHT_KMS)
    good = np.isfinite(flux)
    if rest[good][0] > grid[0] or rest[good][-1] < grid[-1]:
        raise ValueError(f"{star['name']}: the spectrum ({rest[good][0]:.1f}–{rest[good][-1]:.1f} Å at rest) "
                         f"does not cover the grid {grid[0]:.1f}–{grid[-1]:.1f} Å")
    return np.interp(grid, rest[good], flux[good])


def real_on_grid(model=None, spectra=None, grid=None):
    """Every real spectrum fitted (labels, velocity) and brought onto the RAVE grid.

    Returns (Table: library, name, fitted teff/logg/m_h (the fit's [Fe/H], = [M/H] here), velocity km/s,
    rms; flux (n, n_grid)).
    """
    model = model or Emulator(resolution=COMMON_RESOLUTION)
    spectra = read_real_spectra() if spectra is None else spectra
    rows, fluxes = [], []
    for star in spectra:
        labels, velocity, rms = best_fit(model, *_prepare(star))
        rows.append((star["library"], star["name"], *labels[:3], velocity, rms))
        fluxes.append(rave_like(star, velocity, grid))
    return Table(rows=rows, names=("library", "name", *LABELS[:3], "velocity", "rms")), np.array(fluxes)


def calibrate(model=None, spectra=None, labels=None):
    """Fit the constants ``CALIBRATED`` of the hand-built ``ForwardModel`` to the labelled real stars.

    The literature labels are held fixed; the constants are fitted together with every
    star's radial velocity and linear continuum, in one least-squares problem. Returns
    the calibration dict (pass it to ``ForwardModel``) and the RMS residual per star.
    """
    model = model or ForwardModel(resolution=COMMON_RESOLUTION)
    spectra = read_real_spectra() if spectra is None else spectra
    labels = read_real_labels() if labels is None else labels
    stars, start = [], [model.calibration[k] for k in CALIBRATED]
    for lab in labels:
        wave, flux = _prepare(spectra[spectra["name"] == lab["name"]][0])
        vec = labels_from_literature(lab["teff_K"], lab["logg_dex"], lab["feh_dex"])
        v, cont, _ = fit_nuisance(model, vec, wave, flux)
        stars.append((vec, wave, flux))
        start += [v, *cont]
    n_cal = len(CALIBRATED)

    def residuals(p):
        model.calibration = model.calibration | dict(zip(CALIBRATED, p[:n_cal]))
        nuisance = p[n_cal:].reshape(-1, 3)
        return [model_spectrum(model, vec, wave, q[0], q[1:]) - flux
                for (vec, wave, flux), q in zip(stars, nuisance)]

    lower = [5, 0.3, -3, -4] + [-300, 0.5, -0.5] * len(stars)
    upper = [20, 1.0, 1.5, 0.0] + [300, 1.5, 0.5] * len(stars)
    fit = least_squares(lambda p: np.concatenate(residuals(p)), start, bounds=(lower, upper),
                        x_scale=[0.3, 0.1, 0.3, 0.3] + [5, 0.05, 0.05] * len(stars))
    rms = [float(np.sqrt(np.mean(r**2))) for r in residuals(fit.x)]
    return dict(zip(CALIBRATED, map(float, fit.x[:n_cal]))), rms
