"""The atomic and hydrogen lines of the RAVE region (8400–8800 Å).

The committed line list (``data/linelist/linelist_cat.csv``, VALD3 via TSFitPy)
has several entries per line (isotopic and hyperfine components). ``read_linelist``
merges them: components of one species within ``merge_tol`` Å and with the same
excitation potential become one line whose gf is the sum of theirs.
"""

from pathlib import Path

import numpy as np
from astropy.table import Table

from ..paths import LINELIST_FILE

REQUIRED_COLUMNS = ("wavelength_air_A", "species", "element", "ion_stage", "chi_eV", "loggf")

SOLAR_LOG_EPS = {
    "H": 12.00, "Mg": 7.60, "Al": 6.45, "Si": 7.51, "Ca": 6.34, "Ti": 4.95, "Cr": 5.64,
    "Mn": 5.43, "Fe": 7.50, "Co": 4.99, "Ni": 6.22, "Ce": 1.58,
}
"""Solar abundances log ε (Asplund et al. 2009), the scale the line list was ranked on."""

IONISATION_EV = {
    "H": 13.598, "Mg": 7.646, "Al": 5.986, "Si": 8.152, "Ca": 6.113, "Ti": 6.828,
    "Cr": 6.767, "Mn": 7.434, "Fe": 7.902, "Co": 7.881, "Ni": 7.640, "Ce": 5.539,
}
"""First ionisation potentials (eV), for the Saha equation."""


def read_linelist(path=LINELIST_FILE, merge_tol=0.3):
    """Read the line list and merge the components of each line.

    Parameters
    ----------
    path : str or Path
        CSV with the columns of ``REQUIRED_COLUMNS`` (wavelengths in Å, air).
    merge_tol : float
        Components of one species closer than this (Å) are one line.

    Returns
    -------
    astropy.table.Table
        One row per line, sorted by wavelength: ``wavelength`` (Å), ``species``,
        ``element``, ``ion_stage``, ``chi`` (eV), ``loggf`` (summed over components).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"line list file not found: {path}")
    raw = Table.read(path, format="ascii.csv")
    missing = [c for c in REQUIRED_COLUMNS if c not in raw.colnames]
    if missing:
        raise ValueError(f"line list {path} lacks the column(s) {missing}")
    unknown = sorted(set(raw["element"]) - set(SOLAR_LOG_EPS))
    if unknown:
        raise ValueError(f"line list {path}: no solar abundance for element(s) {unknown}")
    raw.sort(["species", "chi_eV", "wavelength_air_A"])
    rows = []
    for species in np.unique(raw["species"]):
        part = raw[raw["species"] == species]
        wave, chi, gf = (np.asarray(part[c], float) for c in ("wavelength_air_A", "chi_eV", "loggf"))
        starts = np.flatnonzero(
            np.r_[True, (np.abs(np.diff(wave)) > merge_tol) | (np.abs(np.diff(chi)) > 0.05)]
        )
        for lo, hi in zip(starts, np.r_[starts[1:], len(part)]):
            weight = 10.0 ** gf[lo:hi]
            rows.append((
                np.sum(wave[lo:hi] * weight) / weight.sum(), species, part["element"][lo],
                int(part["ion_stage"][lo]), chi[lo], np.log10(weight.sum()),
            ))
    lines = Table(rows=rows, names=("wavelength", "species", "element", "ion_stage", "chi", "loggf"))
    lines["wavelength"].unit = "Angstrom"
    lines["chi"].unit = "eV"
    lines.sort("wavelength")
    return lines

ATOMIC_MASS = {
    "H": 1.008, "Mg": 24.305, "Al": 26.982, "Si": 28.085, "Ca": 40.078, "Ti": 47.867,
    "Cr": 51.996, "Mn": 54.938, "Fe": 55.845, "Co": 58.933, "Ni": 58.693, "Ce": 140.116,
}
"""Atomic masses (u), for thermal Doppler widths."""

LOG_PARTITION = {
    ("H", 1): 0.30, ("Mg", 1): 0.00, ("Al", 1): 0.77, ("Si", 1): 0.98, ("Ca", 2): 0.34,
    ("Ti", 1): 1.50, ("Ti", 2): 1.75, ("Cr", 1): 1.02, ("Mn", 1): 0.81, ("Fe", 1): 1.43,
    ("Co", 1): 1.52, ("Ni", 1): 1.47, ("Ce", 2): 2.30,
}
"""log10 partition function U(T ≈ 5,000 K) of each (element, ion stage) present (Gray 2005, App. D, rounded)."""
