"""Photometry as a second input of the network: absolute magnitudes from parallaxes.

Guiglion et al. (2020) fed the network, next to the spectrum, the absolute magnitudes
G, BP, RP (Gaia), J, H, Ks (2MASS), W1, W2 (WISE) computed from the Gaia parallax, and the
extinction A_V: nine numbers per star, each min–max scaled with the labels' scaler logic.
"""

import numpy as np

BANDS = {
    "G": "phot_g_mean_mag", "BP": "phot_bp_mean_mag", "RP": "phot_rp_mean_mag",
    "J": "jmag_2mass", "H": "hmag_2mass", "Ks": "kmag_2mass", "W1": "w1mpro", "W2": "w2mpro",
}
"""Band → RAVE-catalogue column of the apparent magnitude (mag)."""

EXTINCTION_COLUMN = "av50"
PARALLAX_COLUMN = "parallax"
COLUMNS = (PARALLAX_COLUMN, *BANDS.values(), EXTINCTION_COLUMN)
"""Catalogue columns the photometric input needs (parallax in mas, magnitudes in mag)."""

FEATURES = (*(f"M_{band}" for band in BANDS), "A_V")
"""Names of the nine photometric inputs: absolute magnitudes (mag) and A_V (mag)."""


def absolute_magnitudes(table, min_parallax=0.0):
    """The photometric input (n, 9): M = m + 5 log10(ϖ / mas) − 10 for the eight bands, then A_V.

    Rows whose parallax is missing or ≤ ``min_parallax`` (mas) get NaN absolute magnitudes, as
    do missing magnitudes. Raises ValueError naming the columns a table lacks.
    """
    missing = [c for c in COLUMNS if c not in table.colnames]
    if missing:
        raise ValueError(f"photometry needs the catalogue column(s) {missing}")

    def values(name):
        return np.ma.filled(np.ma.asarray(table[name], dtype=float), np.nan)

    plx = values(PARALLAX_COLUMN)
    with np.errstate(invalid="ignore", divide="ignore"):
        modulus = np.where(plx > min_parallax, 5 * np.log10(plx) - 10, np.nan)
    out = np.column_stack([values(col) + modulus for col in BANDS.values()] + [values(EXTINCTION_COLUMN)])
    return out.astype(np.float32)
