"""APOGEE allStar files (DR16 or DR17): the label columns, the flag bits and the reader.

APOGEE conventions (see docs/SCIENCE.md): ``APOGEE_ID`` is the 2MASS designation
(``2MHHMMSSss±DDMMSSs``); ``EXTRATARG`` bit 4 marks a duplicate entry of a star;
``STARFLAG`` bits 0, 3, 4, 18, 22 and ``ASPCAPFLAG`` bit 23 (STAR_BAD) mark bad stars.
"""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, MaskedColumn, Table

from .files import native, strings, where

APOGEE_COLUMNS = {
    "teff": "TEFF",
    "logg": "LOGG",
    "m_h": "M_H",
    "fe_h": "FE_H",
    "alpha_m": "ALPHA_M",
    "si_fe": "SI_FE",
    "al_fe": "AL_FE",
    "mg_fe": "MG_FE",
    "ni_fe": "NI_FE",
}
"""APOGEE allStar column of each label of ``labels.LABELS`` (errors in ``<column>_ERR``)."""

STARFLAG_BAD_BITS = (0, 3, 4, 18, 22)
"""``STARFLAG`` bits that mark a star as bad (bad pixels, very bright neighbour, low SNR, …)."""

ASPCAP_STAR_BAD_BIT = 23
"""``ASPCAPFLAG`` bit STAR_BAD."""

EXTRATARG_DUPLICATE_BIT = 4
"""``EXTRATARG`` bit set on the duplicate (not kept) allStar entries of a star."""

ALLSTAR_RELEASES = {"dr16": dict(marker="GAIA_SOURCE_ID", missing=-9999.0),
                    "dr17": dict(marker="GAIAEDR3_SOURCE_ID", missing=np.nan)}
"""APOGEE allStar releases: the column that only that release has, and its missing-value code."""

ALLSTAR_LABEL_COLUMNS = tuple(APOGEE_COLUMNS.values()) + tuple(f"{c}_ERR" for c in APOGEE_COLUMNS.values())
ALLSTAR_REQUIRED = ("APOGEE_ID", "RA", "DEC", "SNR", "STARFLAG", "ASPCAPFLAG", "EXTRATARG") + ALLSTAR_LABEL_COLUMNS
ALLSTAR_OPTIONAL = ("TELESCOPE", "FIELD", "GLON", "GLAT", "GAIA_SOURCE_ID", "GAIAEDR3_SOURCE_ID") + tuple(
    f"{c}_FLAG" for c in APOGEE_COLUMNS.values())
"""Columns ``read_allstar`` keeps when present (the real allStar files have hundreds more)."""


def allstar_release(colnames, path):
    """``"dr16"`` or ``"dr17"``: the release whose marker column (``ALLSTAR_RELEASES``) is present.

    Raises ValueError naming ``path`` when neither or both marker columns are present.
    """
    names = {str(c).upper() for c in colnames}
    found = [rel for rel, spec in ALLSTAR_RELEASES.items() if spec["marker"] in names]
    markers = {rel: spec["marker"] for rel, spec in ALLSTAR_RELEASES.items()}
    if not found:
        raise ValueError(f"{path}: unknown allStar release: none of the marker columns {markers} is present "
                         "(for an extract without them, say the release: read_allstar(..., release='dr17'), "
                         "notebook parameter allstar_release)")
    if len(found) > 1:
        raise ValueError(f"{path}: ambiguous allStar release: it has the marker columns of {found} ({markers})")
    return found[0]



def read_allstar(path, columns=(), release=None):
    """Read an APOGEE allStar file (DR16 or DR17; the table in HDU 1) into a masked astropy Table.

    ``release`` ("dr16" or "dr17") says which release a file is, for extracts without the
    release's marker column (a query result trimmed to the columns needed); by default it is
    told from the columns (``allstar_release``).

    Keeps ``ALLSTAR_REQUIRED``, those of ``ALLSTAR_OPTIONAL`` present and the extra ``columns``.
    APOGEE_ID is a stripped str; RA, DEC in deg; every label column and its ``_ERR``
    (TEFF in K, others in dex) is a float64 MaskedColumn masked where the release's missing
    value appears (−9999 in DR16, NaN in DR17; any non-finite value too), with NaN under the
    mask, so both releases give the same representation. ``meta["release"]`` is "dr16" or
    "dr17", ``meta["source"]`` the path. Raises ValueError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"allStar file not found: {where(path)}")
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as err:
        raise ValueError(f"{path}: not a readable FITS file ({err})") from err
    with hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise ValueError(f"{path}: HDU 1 is not a binary table (an allStar file has its table there)")
        names = list(hdul[1].columns.names)
        upper = {n.upper(): n for n in names}
        if release is None:
            release = allstar_release(names, path)
        elif release not in ALLSTAR_RELEASES:
            raise ValueError(f"release must be one of {sorted(ALLSTAR_RELEASES)}, got {release!r}")
        missing = [c for c in ALLSTAR_REQUIRED if c not in upper]
        if missing:
            raise ValueError(f"{path}: the allStar table lacks the required column(s) {missing}")
        absent = [c for c in columns if c.upper() not in upper]
        if absent:
            raise ValueError(f"{path}: the allStar table has no column(s) {absent}")
        wanted = list(ALLSTAR_REQUIRED) + [c for c in ALLSTAR_OPTIONAL if c in upper]
        wanted += [c.upper() for c in columns if c.upper() not in wanted]
        units = {c.name.upper(): c.unit for c in hdul[1].columns}
        data = hdul[1].data
        table = Table()
        for col in wanted:
            values = data[upper[col]]
            if col in ALLSTAR_LABEL_COLUMNS:
                values = np.array(values, dtype=np.float64)
                bad = ~np.isfinite(values)
                code = ALLSTAR_RELEASES[release]["missing"]
                if np.isfinite(code):
                    bad |= np.abs(values - code) < 1e-3
                values[bad] = np.nan
                unit = "K" if col.startswith("TEFF") else None
                table[col] = MaskedColumn(values, mask=bad, unit=unit)
            elif values.dtype.kind in "SUO":
                table[col] = strings(values)
            else:
                table[col] = Column(native(values), unit=units.get(col) or None)
    for col in ("RA", "DEC"):
        table[col] = Column(np.asarray(table[col], np.float64), unit=u.deg)
    table.meta["release"] = release
    table.meta["source"] = str(path)
    return table

