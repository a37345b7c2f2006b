"""The input contract of the networks: spectra (and photometry) into the arrays the networks take.

The spectrum input is float32 (n, n_pixels, 1) continuum-normalised flux, pixels without
information set to the continuum; the photometric input (paper's network) is min–max scaled
with the scaler fitted on the training rows, missing values at the middle of the range.
Training, prediction and the inference engines all build their inputs here.
"""

import numpy as np


def prepare_inputs(flux, error=None, fill=1.0, max_listed=5):
    """Network input from spectra: float32 (n, n_pixels, 1).

    Pixels whose ``error`` is inf carry no information and get the continuum value ``fill``
    (in a copy; without ``error``, float32 ``flux`` is used as it is). A NaN or inf in ``flux``
    itself is an upstream bug: ValueError naming how many spectra and pixels, and the first
    ``max_listed`` (spectrum, pixel) positions.
    """
    flux = np.array(flux, dtype=np.float32, ndmin=2, copy=None if error is None else True)
    if not (np.isfinite(flux.min(initial=0.0)) and np.isfinite(flux.max(initial=0.0))):  # no temporary
        bad = ~np.isfinite(flux)
        rows, cols = np.nonzero(bad)
        first = ", ".join(f"({r}, {c})" for r, c in zip(rows[:max_listed], cols[:max_listed]))
        raise ValueError(
            f"{np.unique(rows).size} spectra have NaN/inf flux in {bad.sum()} pixels in all; "
            f"first (spectrum, pixel): {first}")
    if error is not None:
        error = np.asarray(error)
        if error.shape != flux.shape:
            raise ValueError(f"flux {flux.shape} and error {error.shape} differ in shape")
        flux[np.isinf(error)] = fill
    return flux[..., None]


def make_inputs(flux, error=None, phot=None, phot_scaler=None):
    """The network's input: spectra (n, n_pixels, 1), or with photometry the dict
    ``{"spectrum": …, "photometry": (n, n_features)}``.

    ``phot`` is min–max scaled with ``phot_scaler`` (a LabelScaler fitted on the training rows);
    missing values (e.g. no usable parallax) get the middle of the training range, 0.5.
    """
    x = prepare_inputs(flux, error)
    if phot is None:
        return x
    if phot_scaler is None:
        raise ValueError("photometry given without its scaler (fit a LabelScaler on the training rows)")
    scaled = phot_scaler.transform(np.asarray(phot, float))
    return {"spectrum": x, "photometry": np.where(np.isfinite(scaled), scaled, 0.5).astype(np.float32)}



def named_inputs(names, x):
    """The model inputs ``names`` from ``x`` (one array, or a dict by input name) as float32
    arrays in that order, with the same number of rows; KeyError names a missing input."""
    if isinstance(x, dict):
        missing = [name for name in names if name not in x]
        if missing:
            raise KeyError(f"input(s) {missing} missing; the model takes {names}")
        arrays = [np.asarray(x[name], np.float32) for name in names]
    elif len(names) == 1:
        arrays = [np.asarray(x, np.float32)]
    else:
        raise TypeError(f"the model takes several inputs {names}: pass a dict")
    if len({len(a) for a in arrays}) != 1:
        raise ValueError(f"inputs {names} have different numbers of rows")
    return arrays
