"""A survey folder as the notebooks see it: simulated (``data/sim/<profile>``) or real.

Both kinds hold the same files (see ``ravecnn_utils.simulate``); only a simulated
one has ``truth.fits`` and ``survey.json``.
"""

from pathlib import Path

import numpy as np
from astropy.table import Table

from .io import spectrum_filename
from .simulate import FILES, read_manifest


def load_survey(survey_dir):
    """The survey's tables: ``catalogue`` (RAVE), ``allstar`` (APOGEE), ``benchmark``, and for
    a simulated survey ``truth_stars``, ``truth_obs`` and ``manifest``.

    Raises FileNotFoundError naming the first missing file.
    """
    survey_dir = Path(survey_dir)
    if not survey_dir.is_dir():
        raise FileNotFoundError(f"survey folder not found: {survey_dir}")
    out = {"manifest": read_manifest(survey_dir)}
    for key in ("catalogue", "allstar", "benchmark"):
        path = survey_dir / FILES[key]
        if not path.is_file():
            raise FileNotFoundError(f"{survey_dir}: the {key} file {FILES[key]} is missing")
        out[key] = Table.read(path, hdu=1)
    if out["manifest"] is not None:
        out["truth_stars"] = Table.read(survey_dir / FILES["truth"], hdu="STARS")
        out["truth_obs"] = Table.read(survey_dir / FILES["truth"], hdu="OBSERVATIONS")
    return out


def spectrum_path(survey_dir, rave_obs_id):
    """Path of one observation's spectrum file in a survey folder."""
    return Path(survey_dir) / FILES["spectra"] / spectrum_filename(rave_obs_id)


def describe(survey):
    """One line naming the data a run uses, for captions: simulated (profile, seed) or real."""
    m = survey["manifest"]
    if m is None:
        return "real RAVE DR6 / APOGEE data"
    return f"SIMULATED survey (profile {m['profile']}, seed {m['seed']})"


GALLERY_BOXES = (
    ("hot dwarf", (6800, 8000), (3.8, 4.6), (-0.5, 0.5)),
    ("solar-type dwarf", (5500, 6100), (4.1, 4.7), (-0.3, 0.3)),
    ("K dwarf", (4300, 5200), (4.3, 5.0), (-0.3, 0.3)),
    ("subgiant", (5000, 5800), (3.5, 4.0), (-0.5, 0.3)),
    ("red clump", (4600, 5000), (2.3, 2.6), (-0.3, 0.2)),
    ("metal-poor giant", (4500, 5300), (1.0, 2.5), (-2.5, -1.0)),
    ("metal-rich giant", (4000, 4500), (1.2, 2.2), (0.0, 0.5)),
)
"""HR-diagram boxes for the spectrum gallery: name, Teff (K), log g, [M/H] (dex) ranges."""


def gallery_selection(truth_stars, truth_obs):
    """One observation per ``GALLERY_BOXES`` entry (the highest-SNR one in the box).

    Returns a list of (box name, row index into ``truth_obs``); boxes without stars
    are skipped.
    """
    index = {sid: i for i, sid in enumerate(truth_stars["id_2mass"])}
    star = np.array([index[s] for s in truth_obs["id_2mass"]])
    teff, logg, m_h = (np.asarray(truth_stars[c])[star] for c in ("teff", "logg", "m_h"))
    snr = np.asarray(truth_obs["snr"])
    picks = []
    for name, (t0, t1), (g0, g1), (m0, m1) in GALLERY_BOXES:
        inside = np.flatnonzero((teff >= t0) & (teff < t1) & (logg >= g0) & (logg < g1) & (m_h >= m0) & (m_h < m1))
        if inside.size:
            picks.append((name, int(inside[np.argmax(snr[inside])])))
    return picks
