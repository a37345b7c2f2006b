"""A survey folder as the notebooks see it: simulated (``data/sim/<profile>``) or real.

Both kinds hold the same files (``FILES``; ``ravecnn_utils.simulation`` writes them, the readers
of ``rave`` and ``apogee`` read them); only a simulated one has ``truth.fits`` and ``survey.json``.
"""

import json
from pathlib import Path

import numpy as np
from astropy.table import Table

from .apogee import read_allstar
from .crlb import cramer_rao_bound
from .files import float_column, row_index, where
from .fitstable import read_columns
from .labels import CORE_LABELS, LABELS
from .rave import read_rave_catalogue, spectrum_filename

FILES = dict(catalogue="ravedr6_catalogue.fits", allstar="allStar-dr17-synspec_rev1.fits",
             benchmark="benchmark_highres.fits", truth="truth.fits", spectra="spectra",
             decorrelated="decorrelated")
"""The files of a survey folder: the RAVE catalogue, the APOGEE allStar table, the high-resolution
benchmark sample, the truth (simulated surveys only), the folder of spectrum files and (simulated
surveys only) the decorrelated test sample, a folder of its own ``spectra`` and ``truth``
(``read_decorrelated``)."""

MANIFEST = "survey.json"
"""The description a simulated survey folder carries (profile, seed, sizes, package version)."""


def read_manifest(out_dir):
    """The ``survey.json`` of a simulated survey folder, or None if there is none."""
    path = Path(out_dir) / MANIFEST
    return json.loads(path.read_text()) if path.is_file() else None


def rave_folder(survey_dir, rave_dir=None):
    """The folder with the RAVE spectra and catalogue files: ``rave_dir`` when given (the real
    data), else the simulated survey ``survey_dir``."""
    return Path(rave_dir or survey_dir)


def resolve_sources(data_source, survey_dir, rave_dir=None, allstar_path=None):
    """The RAVE folder and allStar file a notebook reads, from its parameters.

    ``data_source="sim"``: both default to the simulated survey in ``survey_dir``;
    ``"real"``: ``rave_dir`` and ``allstar_path`` must be given. Returns (rave_dir, allstar_path).
    """
    if data_source not in ("sim", "real"):
        raise ValueError(f"data_source must be 'sim' or 'real', got {data_source!r}")
    if data_source == "real" and (rave_dir is None or allstar_path is None):
        raise ValueError("data_source='real' needs the parameters rave_dir and allstar_path")
    rave_dir = rave_folder(survey_dir, rave_dir)
    return rave_dir, Path(allstar_path) if allstar_path else rave_dir / FILES["allstar"]


def read_catalogue(rave_dir, rave_catalogue=None, columns=None):
    """The RAVE catalogue of a survey folder: the table file(s) ``rave_catalogue`` (one name or a
    list of names, in ``rave_dir``; None: the simulated survey's ``FILES["catalogue"]``) read and
    joined on rave_obs_id by ``rave.read_rave_catalogue`` (``columns``: only those, and the
    required ones)."""
    rave_catalogue = FILES["catalogue"] if rave_catalogue is None else rave_catalogue
    names = [rave_catalogue] if isinstance(rave_catalogue, (str, Path)) else list(rave_catalogue)
    return read_rave_catalogue([Path(rave_dir) / name for name in names], columns)


def load_survey(rave_dir, rave_catalogue=None, allstar_path=None, allstar_release=None):
    """The survey's tables, read with the same readers for simulated and real files.

    Parameters
    ----------
    rave_dir : str or Path
        Folder with ``spectra/`` and the RAVE catalogue file(s) (a simulated survey folder, or
        the real files laid out as in the book's *Run on the real data* page).
    rave_catalogue : str, list or None
        RAVE DR6 table file(s) in ``rave_dir``, joined on rave_obs_id (``read_catalogue``).
    allstar_path : str or Path, optional
        APOGEE allStar file (DR16 or DR17); default: the simulated one in ``rave_dir``.
    allstar_release : "dr16", "dr17" or None
        The allStar file's release when its columns do not tell (see ``apogee.read_allstar``).

    Returns
    -------
    dict
        ``catalogue`` (RAVE), ``allstar`` (APOGEE, missing labels masked), ``benchmark``
        (None if the folder has none), ``manifest`` (None for real data), and for a simulated
        survey ``truth_stars`` and ``truth_obs``.
    """
    rave_dir = Path(rave_dir)
    if not rave_dir.is_dir():
        raise FileNotFoundError(f"survey folder not found: {where(rave_dir)}")
    out = {
        "manifest": read_manifest(rave_dir),
        "catalogue": read_catalogue(rave_dir, rave_catalogue),
        "allstar": read_allstar(Path(allstar_path) if allstar_path else rave_dir / FILES["allstar"],
                                release=allstar_release),
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
    """Path of one observation's spectrum file in a survey folder: ``spectra/RAVE_<id>.fits``, or
    ``spectra/<YYYYMMDD>/RAVE_<id>.fits`` (one folder per night, as the RAVE archive serves them)
    when only that exists."""
    folder = Path(survey_dir) / FILES["spectra"]
    flat = folder / spectrum_filename(rave_obs_id)
    by_night = folder / str(rave_obs_id)[:8] / spectrum_filename(rave_obs_id)
    return by_night if not flat.exists() and by_night.exists() else flat


def describe(manifest):
    """One line naming the data a run uses, for captions, from a survey folder's ``manifest``
    (``read_manifest``; None for real data): simulated (profile, seed) or real."""
    m = manifest
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


def read_truth(survey_dir, table, labels=LABELS):
    """The simulation's truth for the observations of ``table`` (``rave_obs_id``; the star is
    ``apogee_id`` = 2MASS id if the table has it, else the observation's own star in the truth).

    Returns a dict: ``labels`` (n, k) true labels, ``fisher`` (n, 9, 9), ``crlb`` (n, k) with all nine
    labels free, ``crlb_core`` (n, 4) for ``CORE_LABELS`` with the abundances known, ``snr`` (n,)
    the true SNR, ``population`` (n,) — all in the order of ``table``. Only the cross-match stars'
    observations have a Fisher matrix (``truth.fits[FISHER]``); the others' ``fisher`` and bounds
    are NaN.
    """
    path = Path(survey_dir) / FILES["truth"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no truth file (only a simulated survey has one)")
    stars = read_columns(path, ["id_2mass", "population", *labels], "STARS")  # only these: a survey's truth is big
    obs = read_columns(path, ["rave_obs_id", "id_2mass", "snr"], "OBSERVATIONS")
    try:
        bounds = Table.read(path, hdu="FISHER")
    except KeyError:
        raise ValueError(f"{path}: no FISHER extension; this survey was simulated by older code (Fisher "
                         "matrices in OBSERVATIONS): simulate it again (make simulate, or "
                         "python -m ravecnn_utils.simulation --overwrite)") from None
    for t in (stars, obs, bounds):
        t.convert_bytestring_to_unicode()
    o = row_index(obs["rave_obs_id"], table["rave_obs_id"], f"{path} OBSERVATIONS")
    star_ids = table["apogee_id"] if "apogee_id" in table.colnames else obs["id_2mass"][o]
    s = row_index(stars["id_2mass"], star_ids, f"{path} STARS")
    f = row_index(bounds["rave_obs_id"], table["rave_obs_id"], f"{path} FISHER", allow_missing=True)
    have = f >= 0
    cols = [LABELS.index(name) for name in labels]
    core = [LABELS.index(n) for n in CORE_LABELS]
    fisher = np.full((len(f), len(LABELS), len(LABELS)), np.nan)
    crlb, crlb_core = np.full((len(f), len(cols)), np.nan), np.full((len(f), len(core)), np.nan)
    fisher[have] = np.asarray(bounds["fisher"], float)[f[have]]
    crlb[have] = np.asarray(bounds["crlb"], float)[f[have]][:, cols]
    crlb_core[have] = cramer_rao_bound(fisher[have], free=core)
    return {
        "labels": np.column_stack([float_column(stars, name, path.name) for name in labels])[s],
        "fisher": fisher, "crlb": crlb, "crlb_core": crlb_core,
        "snr": np.asarray(obs["snr"], float)[o],
        "population": np.asarray(stars["population"])[s],
    }


def read_decorrelated(survey_dir, labels=LABELS):
    """The decorrelated test sample of a simulated survey (``FILES["decorrelated"]``): one more
    spectrum of every cross-match star, its [α/M] and each [X/Fe] shuffled among those stars at the
    star's own Teff, log g, [M/H] and [Fe/H].

    Returns (folder, table, truth): the sample's folder (its spectra are ``spectrum_path(folder,
    rave_obs_id)``); a Table with rave_obs_id (that of the star's first observation in the survey,
    whose catalogue row holds the star's photometry), id_2mass and the true snr; and
    ``read_truth`` of the sample (its labels, Fisher matrices and Cramér–Rao bounds), in the
    table's order.
    """
    folder = Path(survey_dir) / FILES["decorrelated"]
    path = folder / FILES["truth"]
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no decorrelated sample (only a simulated survey of this code has "
                                "one; simulate the survey again)")
    table = Table.read(path, hdu="OBSERVATIONS")
    table.convert_bytestring_to_unicode()
    table = table["rave_obs_id", "id_2mass", "snr"]
    return folder, table, read_truth(folder, table, labels)
