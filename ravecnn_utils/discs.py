"""The thin and thick discs in the [α/M]–[M/H] plane: the boundary, and which side a star is on.

One definition serves the simulation (which names the population of a cross-match star by it),
the validation (how often the network puts a giant on the side of its true labels) and the
figures of notebook 07 (the line drawn is ``boundary_alpha_m``).
"""

import numpy as np
from astropy.table import Table

HALO_M_H_MAX = -1.2
"""[M/H] (dex) below which a star counts as halo."""

ALPHA_BOUNDARY = (0.10, -0.08)
"""Intercept and slope of the thin/thick boundary: [α/M] = 0.10 − 0.08 [M/H] (dex)."""

SIDES = ("thin", "thick", "halo")


def boundary_alpha_m(m_h):
    """[α/M] (dex) of the thin/thick boundary at ``m_h`` (dex)."""
    intercept, slope = ALPHA_BOUNDARY
    return intercept + slope * np.asarray(m_h, float)


def chemical_population(m_h, alpha_m):
    """Population a star's chemistry puts it in: halo below [M/H] = ``HALO_M_H_MAX``, else thick
    disc above the α boundary (``boundary_alpha_m``), else thin disc."""
    m_h, alpha_m = np.asarray(m_h, float), np.asarray(alpha_m, float)
    high_alpha = alpha_m > boundary_alpha_m(m_h)
    return np.where(m_h < HALO_M_H_MAX, "halo", np.where(high_alpha, "thick", "thin"))


def disc_sides(m_h, alpha_m, true_m_h, true_alpha_m, population):
    """Thin / thick / halo side (``chemical_population``) of stars by their predicted and
    their true [M/H], [α/M] (dex), against their true ``population``.

    Returns (summary Table: how often the predicted side is the side of the true labels, and the
    true population for thin/thick/halo stars; confusion Table: true population × predicted side).
    """
    side = chemical_population(m_h, alpha_m)
    side_true = chemical_population(true_m_h, true_alpha_m)
    population = np.asarray(population)
    known = np.isin(population, SIDES)
    summary = Table({
        "compared with": ["the side of the true labels", "the true population (thin/thick/halo stars only)"],
        "spectra": [len(side), int(known.sum())],
        "same side": [float(np.mean(side == side_true)), float(np.mean((side == population)[known]))],
    })
    summary["same side"].format = ".3f"
    confusion = Table({"true population": np.unique(population)})
    for name in SIDES:
        confusion[f"network: {name}"] = [int(np.sum((population == p) & (side == name)))
                                         for p in np.unique(population)]
    return summary, confusion


def fraction_on_side(m_h, alpha_m, population, side="thick"):
    """Fraction of the stars whose true ``population`` is ``side`` that the labels ``m_h``,
    ``alpha_m`` (dex; a network's, say) put on that side (``chemical_population``).
    Returns (fraction, number of such stars); (nan, 0) when there are none."""
    sel = np.asarray(population) == side
    if not sel.any():
        return np.nan, 0
    placed = chemical_population(np.asarray(m_h, float)[sel], np.asarray(alpha_m, float)[sel])
    return float(np.mean(placed == side)), int(sel.sum())


SEPARATED = 0.8
"""Fraction of the true thick-disc stars a method must keep on the thick side (fewer than one in
five crossing the boundary) for ``separation_sentence`` to say that the two sequences stay apart."""


def separation_sentence(fraction_kept, n_thick):
    """A sentence for the prose, chosen by the measured ``fraction_kept`` (``fraction_on_side``) of
    the ``n_thick`` true thick-disc stars that a method puts on the thick side of the boundary."""
    if not n_thick or not np.isfinite(fraction_kept):
        return "No star of this selection belongs to the thick disc, so whether the discs stay apart is not measured."
    said = (f"The network puts {100 * fraction_kept:.0f}\u00a0% of the {n_thick:,} true thick-disc stars on the "
            f"thick side of the boundary and {100 * (1 - fraction_kept):.0f}\u00a0% on the thin side")
    if fraction_kept >= SEPARATED:
        return said + ": fewer than one in five crosses the boundary, and in its plane the two sequences stay apart."
    if fraction_kept >= 0.5:
        return said + ": more than one in five crosses the boundary, so in its plane the two sequences are not apart."
    return said + ": most cross the boundary, so in its plane the thick disc is no sequence of its own."
