"""The train / validation / test split: star by star, stratified so that rare stars are in every part.

The validation part steers early stopping and the calibration; the test part is for the final
numbers only. Nothing here looks at the test part's labels.
"""

import numpy as np
from astropy.table import Table

from .files import as_float, require_columns

PARTS = ("train", "validation", "test")

STRATA = ("metal_poor", "dwarf", "hot", "main")
"""Strata of :func:`stratum`, in order of precedence."""


def stratum(table):
    """Stratum of each row: ``metal_poor`` ([M/H] < −1), else ``dwarf`` (log g > 3.8), else
    ``hot`` (Teff > 6200 K), else ``main``. Missing labels count as not meeting a condition."""
    require_columns(table, ("m_h", "logg", "teff"), "stratum")
    m_h, logg, teff = as_float(table["m_h"]), as_float(table["logg"]), as_float(table["teff"])
    return np.select([m_h < -1, logg > 3.8, teff > 6200], list(STRATA[:3]), default=STRATA[3]).astype("U10")


def _allocate(n, fractions):
    """Numbers of stars per part: largest remainders of ``n * fractions``; at least one per
    part when n >= 3 (taken from the largest part)."""
    exact = n * np.asarray(fractions, float)
    counts = np.floor(exact).astype(int)
    for i in np.argsort(-(exact - counts), kind="stable")[: n - counts.sum()]:
        counts[i] += 1
    if n >= 3:
        for i in range(len(counts)):
            if counts[i] == 0:
                counts[i] += 1
                counts[np.argmax(counts)] -= 1
    return counts


def split(table, fractions=(0.8, 0.1, 0.1), seed=42, group="apogee_id"):
    """Assign each row to ``"train"``, ``"validation"`` or ``"test"``.

    Stars (rows sharing ``group``; ``group=None``: every row its own star) are shuffled with
    ``numpy.random.default_rng(seed)`` within each :func:`stratum` and shared out in the
    given ``fractions`` (of stars, not rows); every stratum with >= 3 stars gets at least one
    star in each part, and all rows of a star land in the same part. Deterministic for a
    seed and independent of row order. Only labels rows: nothing here looks at the test part.
    """
    fractions = tuple(fractions)
    f = np.asarray(fractions, float)
    if f.shape != (3,) or not np.all(np.isfinite(f)) or np.any(f <= 0) or abs(f.sum() - 1) > 1e-9:
        raise ValueError(f"fractions must be three positive numbers (train, validation, test) summing to 1, "
                         f"got {fractions}")
    n = len(table)
    if group is None:
        keys = np.arange(n).astype(str)
    else:
        require_columns(table, (group,), "split")
        if np.ma.getmaskarray(table[group]).any():
            raise ValueError(f"split: column {group!r} has masked values")
        keys = np.array([str(x).strip() for x in np.asarray(table[group])])
    strata = stratum(table)
    stars, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    star_stratum = strata[first]  # the stratum of a star's first row
    star_part = np.empty(len(stars), dtype="U10")
    rng = np.random.default_rng(seed)
    for name in STRATA:
        members = np.flatnonzero(star_stratum == name)
        if members.size == 0:
            continue
        members = rng.permutation(members)
        counts = _allocate(members.size, f)
        star_part[members] = np.repeat(PARTS, counts)
    return star_part[inverse.ravel()]


def split_counts(table):
    """Rows per part (train / validation / test) and :func:`stratum`, with an ``all`` column.

    ``table`` needs the columns ``split`` and ``stratum``.
    """
    require_columns(table, ("split", "stratum"), "split_counts")
    part, strat = np.asarray(table["split"]).astype(str), np.asarray(table["stratum"]).astype(str)
    rows = [(p, *(int(np.sum((part == p) & (strat == s))) for s in STRATA), int(np.sum(part == p)))
            for p in PARTS]
    return Table(rows=rows, names=("part", *STRATA, "all"))
