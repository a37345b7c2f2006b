"""The model grid, Doppler resampling, and the hand-built line model of the first milestone.

The survey's spectra now come from the MOOG emulator (``emulator``); it shares this module's
model grid (``model_wavelengths``), ``resample`` and ``forward_sensitivity``. ``ForwardModel``,
the hand-built line model below, is kept as the comparison of ``benchmarks/realism.py``.

Its physics, kept simple on purpose (a mock survey, not a model atmosphere):

* Each line's integrated optical depth (Å) follows the Boltzmann and Saha
  equations and the H⁻ continuum opacity of a cool photosphere::

      log W = C + log gf + log ε☉ − 12 − log U + [X/H] − θχ + log f_ion(T, Pₑ) − log κ(T, Pₑ)

  with θ = 5040/Teff, an electron pressure Pₑ that grows with Teff, log g and
  [M/H], and κ ∝ Pₑ θ^2.5 10^(0.754θ) (H⁻ bound-free). Fe I lines therefore
  strengthen with [Fe/H] and weaken with Teff; Paschen lines (χ = 12.09 eV)
  appear only in hot stars.
* Which abundance moves a line: Fe → [Fe/H]; Mg, Si, Al, Ni → [Fe/H] + [X/Fe];
  Ca and Ti → [M/H] + [α/M]; other metals → [M/H]; H → none.
* Ca II and H I lines have Lorentzian (pressure) wings whose half-width grows
  with gas pressure (Ca II: γ ∝ g^0.5, so the damping wings of the Ca II triplet
  broaden with gravity) or with Pₑ (Paschen: Stark broadening). All other lines
  have the instrumental Gaussian profile (R ≈ 7,500).
* Every profile is a fixed column of a basis matrix Φ (Voigt profiles of the
  wing lines on a ladder of γ values, interpolated in log γ), so the optical
  depth of any number of stars is one matrix product ``A(labels) @ Φ``.
* Saturation: flux = 1 − d·τ/(d + τ) (depth → τ for weak lines, → d for
  strong ones).

The constants ``C``, ``C_H``, ``d`` and the wing widths were calibrated on real
spectra of two Gaia benchmark stars (see ``ravecnn_utils.simulation.realism``).
"""

import numpy as np
from astropy.table import Table
from scipy.special import voigt_profile

from ..labels import LABELS
from .linelist import ATOMIC_MASS, IONISATION_EV, LOG_PARTITION, SOLAR_LOG_EPS, read_linelist

SPEED_OF_LIGHT_KMS = 299_792.458
N_LABELS = len(LABELS)
_IDX = {name: i for i, name in enumerate(LABELS)}

DEFAULT_CALIBRATION = {
    "log_c": 12.350,         # global strength constant C (dex)
    "log_c_h": 1.0,          # extra strength of the Paschen lines (dex): set so they appear above ~6,500 K
    "max_depth": 0.816,      # saturation depth d
    "log_gamma_ca": -1.031,  # log10 Ca II Lorentz HWHM (Å) at Teff 5777 K, log g 4.44
    "log_gamma_vdw": -1.976, # log10 effective Lorentz HWHM (Å) of the other metal lines, same star
    "log_gamma_h": 0.3,      # log10 Paschen Stark HWHM (Å) at log Pₑ = 2, set by eye
}
"""Free constants of the model. ``log_c``, ``max_depth`` and the two metal-line widths are
the output of ``ravecnn_utils.simulation.realism.calibrate()`` (a least-squares fit to the real
spectra of HD 39587 and HD 161096 at their benchmark labels); a test checks that the
fit still returns them."""

MODEL_GRID = (8395.0, 8805.0, 0.13)
"""Start, end and step (Å) of the model's internal wavelength grid."""

GAMMA_LADDER = np.geomspace(0.003, 30.0, 13)
"""Lorentz half-widths (Å) of the Voigt basis profiles of the wing lines."""


def model_wavelengths(start=MODEL_GRID[0], stop=MODEL_GRID[1], step=MODEL_GRID[2]):
    """The model's internal wavelength grid (Å, air)."""
    return start + step * np.arange(int(round((stop - start) / step)) + 1)


def abundance_matrix(lines):
    """Matrix E (lines × labels): [X/H] of each line's element is ``labels @ E.T``."""
    e = np.zeros((len(lines), N_LABELS))
    for i, el in enumerate(lines["element"]):
        if el == "Fe":
            e[i, _IDX["fe_h"]] = 1
        elif el in ("Mg", "Si", "Al", "Ni"):
            e[i, _IDX["fe_h"]] = 1
            e[i, _IDX[f"{el.lower()}_fe"]] = 1
        elif el in ("Ca", "Ti"):
            e[i, _IDX["m_h"]] = 1
            e[i, _IDX["alpha_m"]] = 1
        elif el != "H":
            e[i, _IDX["m_h"]] = 1
    return e


def electron_pressure(teff, logg, m_h):
    """log10 of a photospheric electron pressure (dyn cm⁻²), a rough scaling."""
    return 0.5 + (logg - 2.5) / 3 + 2.5 * (teff - 4800.0) / 4800.0 + 0.5 * m_h


class ForwardModel:
    """RAVE-like spectra (continuum-normalised flux) from labels.

    Parameters
    ----------
    lines : astropy.table.Table, optional
        Output of ``read_linelist`` (default: the committed line list).
    resolution : float
        Resolving power λ/Δλ (FWHM) of the instrumental Gaussian.
    calibration : dict, optional
        Overrides of ``DEFAULT_CALIBRATION``.
    wavelengths : array, optional
        Model grid (Å); default ``model_wavelengths()``.
    """

    def __init__(self, lines=None, resolution=7500.0, calibration=None, wavelengths=None):
        if resolution <= 0:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.lines = read_linelist() if lines is None else lines
        self.resolution = float(resolution)
        self.calibration = DEFAULT_CALIBRATION | (calibration or {})
        unknown = set(self.calibration) - set(DEFAULT_CALIBRATION)
        if unknown:
            raise ValueError(f"unknown calibration constant(s) {sorted(unknown)}")
        self.wavelengths = model_wavelengths() if wavelengths is None else np.asarray(wavelengths, float)
        el = list(self.lines["element"])
        self._wave0 = np.asarray(self.lines["wavelength"], float)
        self._const = (
            np.asarray(self.lines["loggf"], float)
            + np.array([SOLAR_LOG_EPS[e] for e in el]) - 12.0
            - np.array([LOG_PARTITION[(e, int(s))] for e, s in zip(el, self.lines["ion_stage"])])
        )
        self._chi = np.asarray(self.lines["chi"], float)
        self._chi_ion = np.array([IONISATION_EV[e] for e in el])
        self._ionised = np.asarray(self.lines["ion_stage"]) == 2
        self._hydrogen = np.array([e == "H" for e in el])
        self._calcium = np.array([s == "Ca II" for s in self.lines["species"]])
        self._abund = abundance_matrix(self.lines)
        self._mass = np.array([ATOMIC_MASS[e] for e in el])
        self._wing = self._hydrogen | self._calcium
        self.basis = self._build_basis()

    # ----------------------------------------------------------------- basis
    def _build_basis(self):
        """Φ (columns × pixels): a Gaussian per narrow line, a Voigt ladder per wing line."""
        sigma = self._wave0 / self.resolution / (2 * np.sqrt(2 * np.log(2)))
        dx = self.wavelengths[None, :] - self._wave0[:, None]
        narrow = np.exp(-0.5 * (dx[~self._wing] / sigma[~self._wing, None]) ** 2)
        narrow /= np.sqrt(2 * np.pi) * sigma[~self._wing, None]
        ladder = [
            voigt_profile(dx[self._wing][:, None, :], sigma[self._wing, None, None],
                          GAMMA_LADDER[None, :, None])
        ]
        return np.concatenate([narrow, ladder[0].reshape(-1, dx.shape[1])])

    # ------------------------------------------------------------- strengths
    def line_strengths(self, labels):
        """Integrated intrinsic optical depth W (Å) of every line, shape (n_stars, n_lines)."""
        labels = np.atleast_2d(labels)
        teff, logg, m_h = labels[:, 0:1], labels[:, 1:2], labels[:, 2:3]
        theta = 5040.0 / teff
        log_pe = electron_pressure(teff, logg, m_h)
        saha = 2.5 * np.log10(teff) - theta * self._chi_ion - 0.1762 - log_pe
        log_f = np.where(self._ionised, -np.log10(1 + 10.0 ** -saha), -np.log10(1 + 10.0 ** saha))
        log_kappa = log_pe + 2.5 * np.log10(theta) + 0.754 * theta
        cal = self.calibration
        log_w = (
            cal["log_c"] + cal["log_c_h"] * self._hydrogen + self._const + labels @ self._abund.T
            - theta * self._chi + log_f - log_kappa
        )
        return 10.0 ** log_w

    def damping_widths(self, labels):
        """Lorentz half-width γ (Å) of every line, shape (n_stars, n_lines).

        Van der Waals broadening (metals, Ca II with its own constant) scales as
        γ ∝ g^0.5 T^0.3; Stark broadening of the Paschen lines as Pₑ^0.5.
        """
        labels = np.atleast_2d(labels)
        teff, logg, m_h = labels[:, 0:1], labels[:, 1:2], labels[:, 2:3]
        cal = self.calibration
        log_vdw = 0.5 * (logg - 4.44) + 0.3 * np.log10(teff / 5777.0)
        log_gamma = np.where(self._calcium, cal["log_gamma_ca"], cal["log_gamma_vdw"]) + log_vdw
        log_stark = cal["log_gamma_h"] + 0.5 * (electron_pressure(teff, logg, m_h) - 2.0)
        return 10.0 ** np.where(self._hydrogen, log_stark, log_gamma)

    def doppler_widths(self, labels):
        """Doppler width Δλ_D = λ/c √(2kT/m + ξ²) (Å), ξ = 1.5 km/s; shape (n_stars, n_lines)."""
        teff = np.atleast_2d(labels)[:, 0:1]
        v2 = 2 * 1.380649e-23 * teff / (self._mass * 1.66054e-27) / 1e6 + 1.5**2
        return self._wave0 / SPEED_OF_LIGHT_KMS * np.sqrt(v2)

    def equivalent_widths(self, labels):
        """Equivalent width (Å) of every line from a curve of growth, and γ_eff (Å).

        Linear, flat and damping parts are joined as in Rodgers & Williams (1974):
        EW² = W_ld² + W_d² (1 − (W_ld/W)²), with W_ld = 2Δλ_D √ln(1 + (W/2Δλ_D)²)
        and the damping part W_d = 2√(Wγ). The depression profile of a damped line
        has Lorentzian wings of half-width γ_eff = Wγ/EW.
        """
        w = self.line_strengths(labels)
        gamma = self.damping_widths(labels)
        dl = self.doppler_widths(labels)
        w_ld = 2 * dl * np.sqrt(np.log1p((w / (2 * dl)) ** 2))
        w_d2 = 4 * w * gamma
        ew = np.sqrt(w_ld**2 + w_d2 * (1 - (w_ld / w) ** 2))
        return ew, w * gamma / ew

    def coefficients(self, labels):
        """A (n_stars × basis columns) such that the optical depth is ``A @ basis``."""
        ew, gamma_eff = self.equivalent_widths(labels)
        log_gamma = np.log10(gamma_eff[:, self._wing])
        ladder = np.log10(GAMMA_LADDER)
        pos = np.clip(np.interp(log_gamma, ladder, np.arange(len(ladder))), 0, len(ladder) - 1 - 1e-9)
        lo = pos.astype(int)
        frac = pos - lo
        n, n_wing = log_gamma.shape
        wing = np.zeros((n, n_wing, len(ladder)))
        rows, cols = np.indices((n, n_wing))
        wing[rows, cols, lo] = 1 - frac
        wing[rows, cols, lo + 1] = frac
        wing *= ew[:, self._wing, None]
        return np.concatenate([ew[:, ~self._wing], wing.reshape(n, -1)], axis=1)

    # ------------------------------------------------------------------ flux
    def optical_depth(self, labels):
        """Instrument-broadened optical depth on the model grid, (n_stars, n_pixels)."""
        return self.coefficients(labels) @ self.basis

    def flux(self, labels, tau=None):
        """Continuum-normalised flux on the model grid, (n_stars, n_pixels); ``tau``: the
        ``optical_depth`` of ``labels`` when already computed."""
        d = self.calibration["max_depth"]
        tau = self.optical_depth(labels) if tau is None else tau
        return 1.0 - d * tau / (d + tau)

    def jacobian(self, labels, tau=None):
        """∂flux/∂label (n, 9, pixels) on the model grid; ``tau`` as in ``flux``.

        Derivatives of the small coefficient matrix A are taken by central
        differences (steps: 1 K in Teff, 10⁻³ dex otherwise); the product with the
        basis and the saturation are differentiated exactly. About 10× the cost of ``flux``.
        """
        labels = np.atleast_2d(np.asarray(labels, float))
        d = self.calibration["max_depth"]
        tau = self.optical_depth(labels) if tau is None else tau
        dflux_dtau = -((d / (d + tau)) ** 2)
        jac = np.empty((len(labels), N_LABELS, tau.shape[1]))
        for k in range(N_LABELS):
            step = np.zeros(N_LABELS)
            step[k] = 1.0 if k == 0 else 1e-3
            da = (self.coefficients(labels + step) - self.coefficients(labels - step)) / (2 * step[k])
            jac[:, k] = (da @ self.basis) * dflux_dtau
        return jac

    def flux_and_jacobian(self, labels):
        """``flux`` and ``jacobian`` of ``labels``, sharing one optical depth."""
        labels = np.atleast_2d(np.asarray(labels, float))
        tau = self.optical_depth(labels)
        return self.flux(labels, tau), self.jacobian(labels, tau)


def resample(values, model_wave, target_wave, velocity_kms=0.0):
    """Linear interpolation of model-grid arrays onto per-spectrum wavelength grids.

    Parameters
    ----------
    values : array (n, ..., n_model)
        Quantities on ``model_wave`` (flux, Jacobian rows...).
    model_wave : array (n_model,)
        Regular model grid (Å).
    target_wave : array (n, n_target)
        Observed wavelength of each pixel of each spectrum (Å).
    velocity_kms : float or array (n,)
        Radial velocity (km/s) of the star: the spectrum is Doppler shifted, so
        the model is read at ``target_wave / (1 + v/c)``.
    """
    values = np.asarray(values)
    n = values.shape[0]
    target_wave = np.broadcast_to(target_wave, (n, np.shape(target_wave)[-1]))
    v = np.broadcast_to(np.asarray(velocity_kms, float), (n,))
    rest = target_wave / (1 + v[:, None] / SPEED_OF_LIGHT_KMS)
    step = model_wave[1] - model_wave[0]
    pos = (rest - model_wave[0]) / step
    if pos.min() < 0 or pos.max() > len(model_wave) - 1:
        raise ValueError(
            f"target wavelengths {rest.min():.2f}–{rest.max():.2f} Å fall outside the model grid "
            f"{model_wave[0]:.2f}–{model_wave[-1]:.2f} Å"
        )
    lo = np.minimum(pos.astype(int), len(model_wave) - 2)
    frac = pos - lo
    shape = (n,) + (1,) * (values.ndim - 2) + (lo.shape[1],)
    lo, frac = lo.reshape(shape), frac.reshape(shape)
    left = np.take_along_axis(values, np.broadcast_to(lo, values.shape[:-1] + lo.shape[-1:]), axis=-1)
    right = np.take_along_axis(values, np.broadcast_to(lo + 1, values.shape[:-1] + lo.shape[-1:]), axis=-1)
    return left * (1 - frac) + right * frac


def forward_sensitivity(forward_model, labels, wave, label_names=None, chunk=256):
    """The forward model's ∂flux/∂label on the pixels ``wave``, averaged over ``labels``' rows.

    Parameters
    ----------
    forward_model : emulator.Emulator or ForwardModel (anything with ``wavelengths`` and ``flux_and_jacobian``)
    labels : Table with the nine label columns (``labels.LABELS``), array (n, 9) in that
        order, or one row (9,). Physical units. Rows with a missing label are left out.
    wave : array (n_pixels,)
        Target wavelengths (Å, rest frame), inside the model grid.
    label_names : sequence of str, optional
        Labels to return, in this order (e.g. ``ensemble.labels``); default all nine.
    chunk : int
        Rows per Jacobian call (each row holds 9 × model pixels floats).

    Returns
    -------
    array (n_labels, n_pixels)
        Mean ∂flux/∂label: per K for Teff, per dex otherwise.
    """
    if isinstance(labels, Table) or (hasattr(labels, "dtype") and labels.dtype.names):
        names = labels.colnames if isinstance(labels, Table) else labels.dtype.names
        missing = [name for name in LABELS if name not in names]
        if missing:
            raise ValueError(f"labels table lacks the column(s) {missing}")
        rows = np.column_stack([np.ma.filled(np.ma.asarray(labels[name], dtype=float), np.nan) for name in LABELS])
    else:
        rows = np.atleast_2d(np.asarray(np.ma.filled(np.ma.asarray(labels, dtype=float), np.nan)))
        if rows.shape[1] != len(LABELS):
            raise ValueError(f"labels have {rows.shape[1]} columns, the forward model takes {len(LABELS)} {LABELS}")
    rows = rows[np.isfinite(rows).all(axis=1)]
    if len(rows) == 0:
        raise ValueError("no label row with all nine labels finite")
    names = list(LABELS) if label_names is None else list(label_names)
    unknown = [name for name in names if name not in LABELS]
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; the forward model's labels are {LABELS}")
    total = np.zeros((len(LABELS), len(forward_model.wavelengths)))
    for start in range(0, len(rows), chunk):
        _, jac = forward_model.flux_and_jacobian(rows[start:start + chunk])
        total += jac.sum(axis=0)
    mean = total / len(rows)
    wave = np.asarray(wave, float)
    on_wave = resample(mean[None], forward_model.wavelengths, wave[None])[0]
    return on_wave[[LABELS.index(name) for name in names]]
