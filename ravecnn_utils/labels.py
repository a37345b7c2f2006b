"""The nine stellar labels, their units and how to print them.

Order follows Guiglion et al. (2020): Teff, log g, [M/H], [Fe/H], [α/M],
[Si/Fe], [Al/Fe], [Mg/Fe], [Ni/Fe].
"""

import difflib

LABELS = ("teff", "logg", "m_h", "fe_h", "alpha_m", "si_fe", "al_fe", "mg_fe", "ni_fe")
"""Canonical label names, used as column names in every table the package writes."""

CORE_LABELS = ("teff", "logg", "m_h", "alpha_m")
"""The four atmospheric labels of the slides' network (and of the 4-label Cramér–Rao bound)."""

UNITS = {"teff": "K", "logg": "dex"} | {name: "dex" for name in LABELS[2:]}
"""Units of each label (log g in dex of cm s⁻²)."""

LATEX = {
    "teff": r"$T_\mathrm{eff}$",
    "logg": r"$\log g$",
    "m_h": "[M/H]",
    "fe_h": "[Fe/H]",
    "alpha_m": r"[$\alpha$/M]",
    "si_fe": "[Si/Fe]",
    "al_fe": "[Al/Fe]",
    "mg_fe": "[Mg/Fe]",
    "ni_fe": "[Ni/Fe]",
}
"""Axis labels for figures."""

TEXT = {"teff": "Teff", "logg": "log g", "alpha_m": "[α/M]"} | {
    name: LATEX[name] for name in LABELS if name not in ("teff", "logg", "alpha_m")}
"""Names for prose (glued into the notebooks' text): plain Unicode, no LaTeX."""

GUIGLION2020_COLUMNS = {
    "teff": "Teff",
    "logg": "logg",
    "m_h": "MH",
    "fe_h": "FeH",
    "alpha_m": "alphaM",
    "si_fe": "SiFe",
    "al_fe": "AlFe",
    "mg_fe": "MgFe",
    "ni_fe": "NiFe",
}
"""Column of each label in ``data/guiglion2020/training_sample_labels.csv``."""


def axis_label(name):
    """Figure axis label with unit, e.g. ``'$T_\\mathrm{eff}$ [K]'``."""
    return f"{LATEX[name]} [{UNITS[name]}]"


def require_known(names, what):
    """ValueError naming ``what`` unless every label name in ``names`` is one of ``LABELS``
    (a renamed label, e.g. ``'Teff'``, is refused here, not later as a bare KeyError)."""
    unknown = [n for n in names if n not in LABELS]
    if unknown:
        hints = {n: difflib.get_close_matches(str(n).lower(), LABELS, n=1) for n in unknown}
        hint = "; ".join(f"{n!r}: did you mean {h[0]!r}?" for n, h in hints.items() if h)
        raise ValueError(f"{what}: unknown label name(s) {unknown}; the labels are {list(LABELS)}"
                         + (f" ({hint})" if hint else ""))
