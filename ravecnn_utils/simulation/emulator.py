"""The emulator of the MOOG syntheses: flux and its exact derivatives from nine labels, in numpy.

A small fully connected network in the manner of The Payne (Ting et al. 2019): the labels,
scaled to [−1, 1] over ``synthgrid.DOMAIN``, pass two hidden layers (SiLU, smooth, so the
derivatives are too) to the coefficients of the leading principal components of the syntheses,
whose sum with the mean spectrum is the flux of every pixel of the model grid
(``forward.model_wavelengths``, R = 7,500). Its weights are committed in ``data/emulator/emulator.npz``, made by
``python -m ravecnn_utils.simulation.emulator_build`` (``make emulator``) from MOOG syntheses
over ATLAS9 atmospheres; their provenance is in the file and in ``data/emulator/README.md``.

The Jacobian ∂flux/∂label is the chain rule through the network, exact and cheap: no finite
differences.
"""

from pathlib import Path

import numpy as np
from scipy.ndimage import gaussian_filter1d

from ..labels import LABELS
from ..paths import EMULATOR_FILE

WEIGHT_KEYS = ("w1", "b1", "w2", "b2", "w3", "b3", "basis", "mean_flux", "label_lo", "label_hi", "wavelengths",
               "resolution")
"""What an emulator file must hold (plus provenance strings)."""


def _silu(a):
    return a / (1.0 + np.exp(-a))


def _silu_slope(a):
    s = 1.0 / (1.0 + np.exp(-a))
    return s * (1.0 + a * (1.0 - s))


class Emulator:
    """Continuum-normalised flux and ∂flux/∂label from labels, like ``forward.ForwardModel``.

    Parameters
    ----------
    path : str or Path
        The emulator's weights (default ``paths.EMULATOR_FILE``).
    resolution : float, optional
        Resolving power of the returned spectra; at most the emulator's own (7,500): lower
        values broaden by a Gaussian of the quadrature difference (FWHM constant in Å, at 8600 Å).
    """

    def __init__(self, path=EMULATOR_FILE, resolution=None):
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"emulator weights not found: {path} (made by `make emulator`)")
        with np.load(path, allow_pickle=False) as saved:
            missing = [k for k in WEIGHT_KEYS if k not in saved.files]
            if missing:
                raise ValueError(f"{path} is not an emulator file: it lacks {missing}")
            self.weights = {k: saved[k].astype(np.float64) for k in WEIGHT_KEYS}
            self.provenance = {k: str(saved[k]) for k in saved.files if k.startswith("about_")}
        self.path = path
        self.wavelengths = self.weights.pop("wavelengths")
        self.native_resolution = float(self.weights.pop("resolution"))
        self.resolution = self.native_resolution if resolution is None else float(resolution)
        if not 0 < self.resolution <= self.native_resolution:
            raise ValueError(f"resolution must be in (0, {self.native_resolution:.0f}] (the emulator's own), "
                             f"got {resolution}")
        fwhm = np.sqrt(max((8600.0 / self.resolution) ** 2 - (8600.0 / self.native_resolution) ** 2, 0.0))
        self._sigma_px = fwhm / (2 * np.sqrt(2 * np.log(2))) / (self.wavelengths[1] - self.wavelengths[0])
        self.label_lo, self.label_hi = self.weights["label_lo"], self.weights["label_hi"]
        self._w3_basis = self.weights["w3"] @ self.weights["basis"]  # the last two linear maps, for Jacobians

    def _scaled(self, labels):
        labels = np.atleast_2d(np.asarray(labels, float))
        if labels.shape[1] != len(LABELS):
            raise ValueError(f"labels have {labels.shape[1]} columns, the emulator takes {len(LABELS)} {LABELS}")
        return 2 * (labels - self.label_lo) / (self.label_hi - self.label_lo) - 1

    def _broaden(self, values):
        return values if self._sigma_px == 0 else gaussian_filter1d(values, self._sigma_px, axis=-1, mode="nearest")

    def outside(self, labels):
        """Boolean (n,): rows with a label outside the range the emulator was trained on."""
        labels = np.atleast_2d(np.asarray(labels, float))
        return np.any((labels < self.label_lo) | (labels > self.label_hi), axis=1)

    def count_outside(self, labels, what="stars"):
        """How many rows of ``labels`` lie outside the training range; says so when there are any
        (their spectra are extrapolated)."""
        n = int(self.outside(labels).sum())
        if n:
            print(f"{n} of {len(labels)} {what} have a label outside the emulator's training range "
                  f"({self.path}): their spectra are extrapolated")
        return n

    def _hidden(self, labels):
        """Pre-activations (a1, a2) of the two hidden layers."""
        w = self.weights
        a1 = self._scaled(labels) @ w["w1"] + w["b1"]
        return a1, _silu(a1) @ w["w2"] + w["b2"]

    def _unbroadened_flux(self, a2):
        w = self.weights
        return (_silu(a2) @ w["w3"] + w["b3"]) @ w["basis"] + w["mean_flux"]

    def flux(self, labels):
        """Flux on ``self.wavelengths`` (Å), shape (n_stars, n_pixels)."""
        return self._broaden(self._unbroadened_flux(self._hidden(labels)[1]))

    def flux_and_jacobian(self, labels):
        """``flux`` and ∂flux/∂label, shape (n, 9, n_pixels): per K for Teff, per dex otherwise."""
        w = self.weights
        a1, a2 = self._hidden(labels)
        n, k = a1.shape[0], len(LABELS)
        d1 = _silu_slope(a1)[:, None, :] * (w["w1"] * (2 / (self.label_hi - self.label_lo))[:, None])[None]
        d2 = _silu_slope(a2)[:, None, :] * (d1.reshape(n * k, -1) @ w["w2"]).reshape(n, k, -1)
        jac = (d2.reshape(n * k, -1) @ self._w3_basis).reshape(n, k, -1)  # 2-D products: numpy's 3-D @ is slow
        return self._broaden(self._unbroadened_flux(a2)), self._broaden(jac)

    def jacobian(self, labels):
        """∂flux/∂label, shape (n, 9, n_pixels)."""
        return self.flux_and_jacobian(labels)[1]
