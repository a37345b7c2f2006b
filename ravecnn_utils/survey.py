"""A survey folder as the notebooks see it: simulated (``data/sim/<profile>``) or real.

Both kinds hold the same files (see ``ravecnn_utils.simulate``); only a simulated
one has ``truth.fits`` and ``survey.json``.
"""

from pathlib import Path

import numpy as np
from astropy.table import Table

from .io import read_allstar, read_rave_catalogue, spectrum_filename
from .simulate import FILES, read_manifest


def resolve_sources(data_source, survey_dir, rave_dir=None, allstar_path=None):
    """The RAVE folder and allStar file a notebook reads, from its parameters.

    ``data_source="sim"``: both default to the simulated survey in ``survey_dir``;
    ``"real"``: ``rave_dir`` and ``allstar_path`` must be given. Returns (rave_dir, allstar_path).
    """
    if data_source not in ("sim", "real"):
        raise ValueError(f"data_source must be 'sim' or 'real', got {data_source!r}")
    if data_source == "real" and (rave_dir is None or allstar_path is None):
        raise ValueError("data_source='real' needs the parameters rave_dir and allstar_path")
    rave_dir = Path(rave_dir or survey_dir)
    return rave_dir, Path(allstar_path) if allstar_path else rave_dir / FILES["allstar"]


def load_survey(rave_dir, rave_catalogue=(FILES["catalogue"],), allstar_path=None):
    """The survey's tables, read with the same readers for simulated and real files.

    Parameters
    ----------
    rave_dir : str or Path
        Folder with ``spectra/`` and the RAVE catalogue file(s) (a simulated survey folder, or
        the real files laid out as in the book's *Run on the real data* page).
    rave_catalogue : str or list
        RAVE DR6 table file(s) in ``rave_dir``, joined on rave_obs_id.
    allstar_path : str or Path, optional
        APOGEE allStar file (DR16 or DR17); default: the simulated one in ``rave_dir``.

    Returns
    -------
    dict
        ``catalogue`` (RAVE), ``allstar`` (APOGEE, missing labels masked), ``benchmark``
        (None if the folder has none), ``manifest`` (None for real data), and for a simulated
        survey ``truth_stars`` and ``truth_obs``.
    """
    rave_dir = Path(rave_dir)
    if not rave_dir.is_dir():
        raise FileNotFoundError(f"survey folder not found: {rave_dir}")
    names = [rave_catalogue] if isinstance(rave_catalogue, (str, Path)) else list(rave_catalogue)
    out = {
        "manifest": read_manifest(rave_dir),
        "catalogue": read_rave_catalogue([rave_dir / name for name in names]),
        "allstar": read_allstar(Path(allstar_path) if allstar_path else rave_dir / FILES["allstar"]),
    }
    bench = rave_dir / FILES["benchmark"]
    out["benchmark"] = Table.read(bench, hdu=1) if bench.is_file() else None
    if out["manifest"] is not None:
        out["truth_stars"] = Table.read(rave_dir / FILES["truth"], hdu="STARS")
        out["truth_obs"] = Table.read(rave_dir / FILES["truth"], hdu="OBSERVATIONS")
    for key in ("benchmark", "truth_stars", "truth_obs"):
        if out.get(key) is not None:
            out[key].convert_bytestring_to_unicode()  # FITS strings come back as bytes
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
