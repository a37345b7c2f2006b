"""The Cramér–Rao bound: the Fisher information of a spectrum and the smallest label scatter it allows.

For a spectrum with per-pixel noise σ and Jacobian J = ∂flux/∂label, no unbiased estimator can
reach a scatter below √diag(F⁻¹) with F = Jᵀ diag(σ⁻²) J. The simulation stores F for the
cross-match stars' observations (``truth.fits[FISHER]``); validation compares the networks with the bound.
"""

import numpy as np


def fisher_information(jacobian, sigma):
    """Fisher matrix F = Jᵀ diag(σ⁻²) J of each spectrum, shape (n, 9, 9).

    Parameters
    ----------
    jacobian : array (n, 9, n_pixels)
        ∂flux/∂label (per K for Teff, per dex otherwise).
    sigma : array (n, n_pixels)
        Flux noise per pixel; pixels with non-finite or non-positive σ carry no information.

    The Cramér–Rao bound on label k is ``sqrt(inv(F)[k, k])``.
    """
    weight = np.where(np.isfinite(sigma) & (sigma > 0), 1.0 / np.where(sigma > 0, sigma, 1.0) ** 2, 0.0)
    return np.einsum("nkp,np,nlp->nkl", jacobian, weight, jacobian, optimize=True)


def cramer_rao_bound(fisher, free=None):
    """σ_min of each label from Fisher matrices (n, k, k): √diag(F⁻¹), shape (n, k).

    ``free`` (indices into the k labels) restricts the fit to those labels, the others being
    known exactly: the bound is then √diag of the inverse of F's (free × free) block, shape
    (n, len(free)), never larger than the all-free bound.
    """
    fisher = np.asarray(fisher, float)
    if free is not None:
        free = np.asarray(free, int)
        fisher = fisher[..., free[:, None], free[None, :]]
    return np.sqrt(np.diagonal(np.linalg.inv(fisher), axis1=-2, axis2=-1))
