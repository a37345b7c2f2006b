"""Parametrise a whole survey: the spectra cube, chunk by chunk, through a calibrated ensemble,
into one FITS catalogue.

Memory is bounded by ``chunk`` (spectra read from the memory-mapped cube per step), not by the
survey. Every finished chunk is saved in ``<catalogue>.parts/`` so an interrupted run resumes
where it stopped — but only when every input that changes the answer is the same
(``run_inputs``: the cube, the catalogue rows, the ensemble's weights, the thresholds …);
otherwise the saved chunks are discarded with a line saying which input changed. The catalogue
is written to a temporary file and renamed, so it either exists complete or not at all, and a
lock keeps a second run from writing it at the same time. The cube must be on the ensemble's
grid. ``predict_cube_dask`` runs the missing chunks as Dask tasks (one ensemble loaded per worker
process) for users with a cluster, with the same saved chunks and rules.

The catalogue: ``rave_obs_id``; per label ``<label>`` (ensemble mean), ``<label>_err``
(calibrated uncertainty) and ``<label>_spread`` (raw spread of the members), in K or dex;
``snr`` (median flux / σ of the spectrum), ``n_bad_pixels``, ``ood_score`` (how unlike the
training spectra the spectrum looks to the networks: :mod:`ravecnn_utils.novelty`; NaN, with a
warning, for an ensemble saved without novelty statistics) and ``flag`` (bits in ``FLAGS``).
"""

import functools
import hashlib
import json
import os
import shutil
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from tqdm.auto import tqdm

from . import __version__
from .cube import read_cube_ids, read_spectra_cube, read_spectra_cube_grid, spectrum_snr
from .ensemble import Ensemble
from .fastcnn import spectra_input
from .files import ascii_bytes, exclusive_lock, row_index
from .fitstable import Rows, write_fits
from .labels import LATEX, UNITS
from .photometry import COLUMNS as PHOTOMETRY_COLUMNS

CATALOGUE_COLUMNS = ("rave_obs_id", *PHOTOMETRY_COLUMNS)
"""The RAVE catalogue's columns that prediction reads (a photometry ensemble's input); a caller may
read only these (``survey.read_catalogue(..., columns=CATALOGUE_COLUMNS)``)."""

FLAGS = {
    "outside_coverage": 1,   # a label lies outside the range of the training labels
    "low_snr": 2,            # snr < snr_min
    "bad_pixels": 4,         # more than max_bad_fraction of the pixels NaN or without information
    "members_disagree": 8,   # a label's member spread > disagree_factor × its median on validation
    "out_of_domain": 16,     # ood_score > the ensemble's threshold: unlike any training spectrum
}
"""Bits of the catalogue's ``flag`` column; 0 = nothing to worry about."""

DEFAULTS = dict(snr_min=20.0, max_bad_fraction=0.05, disagree_factor=3.0)
"""Flag thresholds: SNR, fraction of bad pixels, member spread relative to validation."""


def flags(mean, spread, snr, bad_fraction, ensemble, snr_min, max_bad_fraction, disagree_factor, ood_score):
    """``flag`` bits (``FLAGS``) for predictions ``mean``/``spread`` (n, n_labels) and ``ood_score``
    (n,) of ``ensemble``."""
    lo, hi = ensemble.training_range
    out = np.zeros(len(mean), np.int16)
    out[np.any((mean < lo) | (mean > hi), axis=1)] |= FLAGS["outside_coverage"]
    out[~(snr >= snr_min)] |= FLAGS["low_snr"]
    out[bad_fraction > max_bad_fraction] |= FLAGS["bad_pixels"]
    limit = disagree_factor * ensemble.validation_spreads
    out[np.any(spread > limit, axis=1)] |= FLAGS["members_disagree"]
    if ensemble.novelty is not None:
        out[ensemble.novelty.flag(ood_score)] |= FLAGS["out_of_domain"]
    return out


def _thresholds(thresholds):
    """``DEFAULTS`` updated by ``thresholds``; ValueError naming an unknown one (a typo is never ignored)."""
    unknown = sorted(set(thresholds) - set(DEFAULTS))
    if unknown:
        raise ValueError(f"unknown threshold(s) {unknown}; known: {sorted(DEFAULTS)}")
    return DEFAULTS | thresholds


def predict_spectra(ensemble, flux, error, phot_table=None, *, wave, snr=None, **thresholds):
    """Catalogue columns (dict of arrays) for spectra (n, n_pixels) on the wavelengths ``wave`` (Å),
    which must be the ensemble's grid (ValueError otherwise).

    NaN flux is not an error here: such pixels count as bad and get no information; a spectrum
    without any usable pixel gets NaN labels (and its flags). For an ensemble with photometry,
    ``phot_table`` holds the catalogue rows (parallax, magnitudes) of the same spectra. ``snr``: the
    spectra's ``cube.spectrum_snr`` if known (the cube's column), else computed here. ``flux`` and
    ``error`` are only read, as they lie (even big-endian: ``fastcnn.spectra_input``).
    """
    t = _thresholds(thresholds)
    ensemble.require_grid(wave, "the spectra")
    x, n_bad = spectra_input(flux, error)  # bad pixels at the continuum, in one pass
    return _columns(ensemble, x, n_bad, spectrum_snr(flux, error) if snr is None else snr, phot_table, t)


def _columns(ensemble, x, n_bad, snr, phot_table, t):
    """``predict_spectra``'s columns from the network input ``x`` (n, n_pixels), the bad pixels
    ``n_bad`` and ``snr`` of each spectrum, with the checked thresholds ``t``."""
    mean, spread, ood_score = ensemble.predict(ensemble.inputs(x, None, phot_table), scores=True)
    empty = n_bad == x.shape[1]  # no usable pixel: the network would read a flat continuum
    mean[empty], spread[empty], ood_score[empty] = np.nan, np.nan, np.nan
    k = ensemble.calibration_factors
    snr = np.asarray(snr, np.float32)
    cols = {}
    for j, name in enumerate(ensemble.labels):
        cols[name] = mean[:, j].astype(np.float32)
        cols[f"{name}_err"] = (spread[:, j] * k[j]).astype(np.float32)
        cols[f"{name}_spread"] = spread[:, j].astype(np.float32)
    cols["snr"] = snr
    cols["n_bad_pixels"] = n_bad
    cols["ood_score"] = ood_score.astype(np.float32)
    cols["flag"] = flags(mean, spread, snr, n_bad / x.shape[1], ensemble,
                         t["snr_min"], t["max_bad_fraction"], t["disagree_factor"], ood_score)
    return cols


def _photometry_rows(ensemble, catalogue, cube_path):
    """Catalogue rows of the cube's spectra when the ensemble takes photometry, else None."""
    if not ensemble.takes_photometry:
        return None
    if catalogue is None:
        raise ValueError("this ensemble takes photometry: pass the RAVE catalogue (parallax, magnitudes)")
    needed = Table([catalogue[name] for name in CATALOGUE_COLUMNS if name in catalogue.colnames], copy=False)
    return needed[row_index(catalogue["rave_obs_id"], read_cube_ids(cube_path),
                            "spectra of the cube not in the catalogue")]


def _read_rows(cube_path, start, stop, out=None):
    """Cube rows [start, stop) made ready for the networks: (x, n_bad, snr, rave_obs_id), the
    input built in ``out`` if given (``fastcnn.spectra_input``)."""
    _, flux, error, ids = read_spectra_cube(cube_path, rows=slice(start, stop), as_stored=True)
    x, n_bad = spectra_input(flux, error, out=out)
    snr = ids["snr"] if "snr" in ids.colnames else spectrum_snr(flux, error)  # a cube of older code has none
    return x, n_bad, snr, np.asarray(ids["rave_obs_id"]).astype(str)


def _predict_rows(ensemble, cube_path, start, stop, phot, thresholds, rows=None):
    """Catalogue columns of cube rows [start, stop); ``phot``: their catalogue rows, or None;
    ``rows``: what ``_read_rows`` gives for them, if already read."""
    x, n_bad, snr, ids = _read_rows(cube_path, start, stop) if rows is None else rows
    return {"rave_obs_id": ids} | _columns(ensemble, x, n_bad, snr, phot, thresholds)


def _chunks(ensemble, cube_path, catalogue, chunk):
    """(start, stop, photometry rows or None) of every chunk of the cube."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    with fits.open(cube_path) as hdul:  # the number of spectra, without reading their ids
        n = hdul["IDS"].header["NAXIS2"] if "IDS" in hdul else 0
    if not n:
        raise ValueError(f"{cube_path}: the spectra cube holds no spectrum (no rows in its IDS table)")
    phot = _photometry_rows(ensemble, catalogue, cube_path)
    return [(s, min(s + chunk, n), None if phot is None else phot[s:s + chunk]) for s in range(0, n, chunk)]


def _describe(table, ensemble, cube_path, thresholds):
    """Units, flag bits and provenance in the catalogue's metadata (FITS header)."""
    for name in ensemble.labels:
        for suffix in ("", "_err", "_spread"):
            if UNITS[name] == "K":  # FITS has no 'dex': abundance and log g columns say so in the header
                table[name + suffix].unit = "K"
    table.meta.update({
        "COMMENT": "log g in dex (cgs), [X/H] and [X/Fe] in dex; flag: sum of the FLAG<bit> keywords' bits",
        "ORIGIN": f"ravecnn {__version__}", "CUBE": Path(cube_path).name,
        "NETWORK": str(ensemble.metadata.get("network", ensemble.members[0].name)),
        "MEMBERS": len(ensemble), "TRAINSET": str(ensemble.metadata.get("training_set_hash", ""))[:16],
        **{f"FLAG{bit}": name for name, bit in FLAGS.items()},
        **{k.upper()[:8]: v for k, v in thresholds.items()},
        **({} if ensemble.novelty is None else {"OODTHRES": ensemble.novelty.threshold,
                                                 "OODALPHA": ensemble.novelty.false_alarm_rate,
                                                 "OODNVAL": ensemble.novelty.n_validation}),
    })
    return table


def _digest(*parts):
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _ensemble_digest(ensemble):
    """SHA-256 of the ensemble's description (labels, grid, scalers, calibration …) and weights."""
    digest = hashlib.sha256(json.dumps(ensemble.describe(), sort_keys=True, default=str).encode())
    for member in ensemble.members:
        for weights in member.get_weights():
            digest.update(np.ascontiguousarray(weights).tobytes())
    return digest.hexdigest()[:16]


def run_inputs(ensemble, cube_path, chunks, chunk, thresholds):
    """A digest of every input that changes the catalogue, by name: what a resumed run must share
    with the interrupted one (the cube's file and the spectra it was made from, the catalogue rows
    of the photometric input, the ensemble's weights and description, the thresholds, the chunk
    size, the package version)."""
    stat, header = Path(cube_path).stat(), fits.getheader(cube_path)
    catalogue = hashlib.sha256()
    for rows in (c[2] for c in chunks if c[2] is not None):
        for name in PHOTOMETRY_COLUMNS:
            if name in rows.colnames:
                catalogue.update(np.ma.filled(np.ma.asarray(rows[name], dtype=float), np.nan).tobytes())
    return {
        "spectra cube": _digest(str(Path(cube_path).resolve()), stat.st_size, stat.st_mtime_ns,
                                header.get("SOURCES"), header.get("NSPEC")),
        "catalogue rows": catalogue.hexdigest()[:16] if ensemble.takes_photometry else "none",
        "ensemble": _ensemble_digest(ensemble),
        "thresholds": _digest(thresholds),
        "chunk": str(chunk),
        "package version": __version__,
    }


def _prepare_parts(parts, inputs):
    """The parts folder of a run with ``inputs``: kept when an interrupted run had the same inputs,
    emptied (with one line saying which inputs changed) when it had others."""
    record = parts / "run.json"
    if parts.is_dir():
        before = json.loads(record.read_text()).get("inputs", {}) if record.is_file() else {}
        changed = [name for name in inputs if before.get(name) != inputs[name]]
        if changed:
            print(f"{parts}: discarding the parts of an interrupted run made with another "
                  f"{', '.join(changed)}; starting afresh")
            shutil.rmtree(parts)
    parts.mkdir(parents=True, exist_ok=True)
    record.write_text(json.dumps({"inputs": inputs}, indent=1))


def _save_part(parts, k, cols):
    tmp = parts / f".part_{k:05d}.tmp.npz"
    np.savez(tmp, **cols)
    os.replace(tmp, parts / f"part_{k:05d}.npz")


def _run(ensemble, cube_path, out_path, catalogue, chunk, thresholds, compute, progress=True):
    """The catalogue of a cube, resumable: ``compute(todo, thresholds)`` yields (k, columns) for the
    missing chunks ``todo`` (a list of (k, (start, stop, photometry rows))) with the checked
    ``thresholds``; each is saved as it arrives."""
    out_path = Path(out_path)
    thresholds = _thresholds(thresholds)
    ensemble.require_grid(read_spectra_cube_grid(cube_path), f"the spectra cube {cube_path}")
    with exclusive_lock(out_path):
        chunks = _chunks(ensemble, cube_path, catalogue, chunk)
        parts = out_path.with_name(out_path.name + ".parts")
        _prepare_parts(parts, run_inputs(ensemble, cube_path, chunks, chunk, thresholds))
        todo = [(k, c) for k, c in enumerate(chunks) if not (parts / f"part_{k:05d}.npz").is_file()]
        for k, cols in tqdm(compute(todo, thresholds), total=len(todo), desc=f"predict {out_path.name}", unit="chunk",
                            disable=not progress):
            _save_part(parts, k, cols)
        table = _describe(_gather(parts, len(chunks)), ensemble, cube_path, thresholds)
        write_fits(out_path, [Rows(table)])  # by blocks of rows: astropy would convert it whole
        shutil.rmtree(parts)
    return out_path


def _gather(parts, count):
    """The catalogue of the ``count`` saved parts in ``parts``, one column at a time (memory: the
    catalogue and one column's parts; ids as ASCII bytes, the same FITS column as str)."""
    def column(name):
        values = []
        for k in range(count):
            with np.load(parts / f"part_{k:05d}.npz") as data:
                values.append(data[name])
        return ascii_bytes(np.concatenate(values))

    with np.load(parts / "part_00000.npz") as data:
        names = data.files
    return Table({name: column(name) for name in names}, copy=False)


def predict_cube(ensemble, cube_path, out_path, catalogue=None, chunk=20_000, progress=True, **thresholds):
    """Parametrise every spectrum of a spectra cube (``cube.build_spectra_cube``) into the FITS
    catalogue ``out_path``, ``chunk`` spectra at a time; returns ``out_path``.

    The cube must be on the ensemble's grid. An interrupted run resumes from its saved chunks when
    every input is the same (``run_inputs``), else starts afresh and says which input changed; a
    second run writing the same catalogue at the same time is refused (``files.LockedError``).
    ``thresholds`` override ``DEFAULTS``.
    """
    def compute(todo, checked):
        # a thread reads the next chunk and builds its input while the networks run on this one
        # (a core would idle otherwise), into two arrays used in turn (fresh memory costs page faults)
        size = max((c[1] - c[0] for _, c in todo), default=0)
        inputs = [np.empty((size, ensemble.grid[2]), np.float32) for _ in range(2)]
        with ThreadPoolExecutor(1) as reader:
            def read(i):
                return reader.submit(_read_rows, cube_path, *todo[i][1][:2], inputs[i % 2])

            ahead = read(0) if todo else None
            for i, (k, (start, stop, phot)) in enumerate(todo):
                rows = ahead.result()
                ahead = read(i + 1) if i + 1 < len(todo) else None  # into the array chunk i - 1 used
                yield k, _predict_rows(ensemble, cube_path, start, stop, phot, checked, rows)

    return _run(ensemble, cube_path, out_path, catalogue, chunk, thresholds, compute, progress)


@functools.lru_cache(maxsize=4)
def _load_ensemble(folder):
    """One ensemble per worker process (Dask tasks reuse it)."""
    return Ensemble.load(folder)


def _dask_task(folder, cube_path, k, start, stop, phot, thresholds):
    return k, _predict_rows(_load_ensemble(folder), cube_path, start, stop, phot, thresholds)


def predict_cube_dask(ensemble_dir, cube_path, out_path, catalogue=None, chunk=20_000, client=None,
                      progress=True, **thresholds):
    """``predict_cube`` with the missing chunks as Dask tasks: each worker loads the ensemble from
    ``ensemble_dir`` once and reads its own rows of the cube (so the cube must be on a file system
    the workers see). Uses ``client`` (a ``dask.distributed.Client``) if given, else Dask's default
    scheduler. The same saved chunks, resume rules and lock as ``predict_cube``; returns ``out_path``.
    """
    import dask  # only this path needs Dask

    folder, cube = str(Path(ensemble_dir).resolve()), str(Path(cube_path).resolve())
    ensemble = _load_ensemble(folder)

    def compute(todo, checked):
        tasks = [dask.delayed(_dask_task)(folder, cube, k, start, stop, phot, checked)
                 for k, (start, stop, phot) in todo]
        if client is None:
            yield from dask.compute(*tasks)
            return
        from dask.distributed import as_completed

        for future in as_completed(client.compute(tasks)):
            yield future.result()

    return _run(ensemble, cube, out_path, catalogue, chunk, thresholds, compute, progress)


def column_descriptions(labels):
    """A Table describing the catalogue's columns (name, unit, description) for ``labels``."""
    rows = [("rave_obs_id", "", "RAVE observation identifier (DR6 rave_obs_id)")]
    for name in labels:
        plain = LATEX[name].replace("$", "").replace("\\mathrm{eff}", "eff").replace("\\log", "log") \
            .replace("\\alpha", "α")
        rows += [(name, UNITS[name], f"{plain}: mean of the ensemble members"),
                 (f"{name}_err", UNITS[name], f"{plain}: calibrated uncertainty (spread × validation factor)"),
                 (f"{name}_spread", UNITS[name], f"{plain}: standard deviation of the members")]
    rows += [("snr", "", "median flux / σ of the spectrum over pixels with information"),
             ("n_bad_pixels", "", "pixels NaN or without information"),
             ("ood_score", "", "novelty of the spectrum to the networks: squared Mahalanobis distance of its "
              "last-hidden-layer features from the training spectra's, per feature, mean over members "
              "(dimensionless; out_of_domain above the threshold set on validation for the stated "
              "false-alarm rate, header OODTHRES and OODALPHA; NaN: ensemble without novelty statistics)"),
             ("flag", "", "sum of bits: " + ", ".join(f"{bit} {name}" for name, bit in FLAGS.items()))]
    return Table(rows=rows, names=("column", "unit", "description"))


def select_giants(catalogue, snr_min=80.0, logg_max=3.5, teff_max=5500.0, clean=True):
    """Boolean mask of giants: predicted log g < ``logg_max`` (dex) and Teff < ``teff_max`` (K),
    spectrum SNR > ``snr_min``; with ``clean`` only rows whose ``flag`` is 0."""
    mask = ((np.asarray(catalogue["logg"]) < logg_max) & (np.asarray(catalogue["teff"]) < teff_max)
            & (np.asarray(catalogue["snr"]) > snr_min))
    if clean:
        mask &= np.asarray(catalogue["flag"]) == 0
    return mask
