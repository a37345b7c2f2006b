"""The training set: matched RAVE spectra with APOGEE labels, split into train / validation / test.

One FITS file (``data/products/training_set.fits`` by default):

* ``FLUX`` and ``ERROR`` images (n_spectra × n_pixels; error = absolute σ, inf = no information),
  on the common wavelength grid given by CRVAL1 / CDELT1 / NPIX in the ``FLUX`` header;
* ``LABELS`` table: one row per spectrum: rave_obs_id, apogee_id, ``split``
  (train / validation / test), ``stratum``, the nine labels and their errors (masked where
  APOGEE gave none or the error was over its limit), RAVE SNR and the match method;
* the header of ``LABELS`` keeps the provenance: the cuts (JSON), split fractions and seed,
  the data source, and the SHA-256 of the label table.

The validation part steers early stopping; the test part is for the final numbers only.
"""

import hashlib
import json
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

from .files import atomic_path, where
from .labels import LABELS
from .photometry import COLUMNS as PHOTOMETRY_COLUMNS
from .splits import PARTS

SPLITS = PARTS  # train, validation, test (splits.split writes them)

TABLE_COLUMNS = ("rave_obs_id", "apogee_id", "split", "stratum", "snr_med_sparv", "method", "separation_arcsec",
                 *LABELS, *(f"{name}_err" for name in LABELS))
"""Columns of the ``LABELS`` table, before the photometry columns (see ``training_table``)."""


def training_table(kept):
    """The rows of the cross-matched, cut and split table ``kept`` with the columns the training set
    keeps: ``TABLE_COLUMNS``, then those of ``photometry.COLUMNS`` it has (the network's optional
    second input). ValueError names missing columns."""
    missing = [c for c in TABLE_COLUMNS if c not in kept.colnames]
    if missing:
        raise ValueError(f"the cross-matched table lacks the column(s) {missing}")
    return kept[[*TABLE_COLUMNS, *(c for c in PHOTOMETRY_COLUMNS if c in kept.colnames)]]


def provenance(kept, cutflow, allstar, source, data_source, split_fractions, split_seed):
    """What the training set was made from, for its header (JSON-serialisable): the data
    ``source`` and ``data_source``, the allStar file and release (``allstar.meta``), the cuts
    applied to ``kept`` (``kept.meta["cuts"]``), the split and the cut flow."""
    return {
        "source": source, "data_source": data_source, "allstar": allstar.meta["source"],
        "allstar_release": allstar.meta["release"], "cuts": kept.meta["cuts"],
        "split": {"fractions": list(split_fractions), "seed": split_seed, "group": "apogee_id"},
        "cutflow": [dict(zip(cutflow.colnames, map(str, row))) for row in cutflow],
    }


def table_hash(table):
    """SHA-256 of a table's rave_obs_id, split and label values (a fingerprint of the training set)."""
    digest = hashlib.sha256()
    for name in ("rave_obs_id", "split", *LABELS):
        col = table[name]
        values = np.ma.filled(col, np.nan) if name in LABELS else np.asarray(col).astype(str)
        digest.update(np.ascontiguousarray(values).tobytes())
    return digest.hexdigest()


def write_training_set(path, table, flux, error, wave, provenance):
    """Write the training set atomically.

    Parameters
    ----------
    table : Table
        One row per spectrum with at least rave_obs_id, apogee_id, split, the labels and
        ``<label>_err`` (MaskedColumns where missing).
    flux, error : arrays (n, n_pixels)
        Spectra on the common grid ``wave`` (Å, regular).
    provenance : dict
        JSON-serialisable description (cuts, split, source…), stored in the header.
    """
    missing = [c for c in ("rave_obs_id", "apogee_id", "split", *LABELS) if c not in table.colnames]
    if missing:
        raise ValueError(f"training table lacks the column(s) {missing}")
    if flux.shape != error.shape or flux.shape != (len(table), len(wave)):
        raise ValueError(f"flux {flux.shape}, error {error.shape}, table ({len(table)} rows) and "
                         f"grid ({len(wave)} px) do not agree")
    unknown = sorted(set(np.asarray(table["split"]).astype(str)) - set(SPLITS))
    if unknown:
        raise ValueError(f"unknown split value(s) {unknown}; expected {SPLITS}")
    step = float(wave[1] - wave[0])
    images = []
    for name, data in (("FLUX", flux), ("ERROR", error)):
        hdu = fits.ImageHDU(np.asarray(data, np.float32), name=name)
        hdu.header.update(CRVAL1=float(wave[0]), CDELT1=step, CRPIX1=1.0, NPIX=len(wave), CUNIT1="Angstrom")
        images.append(hdu)
    labels = fits.table_to_hdu(Table(table, meta={}))  # provenance goes in as JSON, below
    labels.name = "LABELS"
    labels.header["HASH"] = table_hash(table)  # SHA-256 of ids, split and labels
    labels.header["PROVENAN"] = json.dumps(provenance, sort_keys=True, default=str)
    with atomic_path(path) as tmp:
        fits.HDUList([fits.PrimaryHDU(), *images, labels]).writeto(tmp)
    return path


def read_training_set(path):
    """Read a training set: (wave Å, flux, error, labels Table with ``meta['provenance']``)."""
    if not Path(path).is_file():
        raise FileNotFoundError(f"training set not found: {where(path)}; notebook 02 writes it")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        for ext in ("FLUX", "ERROR", "LABELS"):
            if ext not in names:
                raise ValueError(f"{path}: no {ext} extension (found {names})")
        head = hdul["FLUX"].header
        wave = head["CRVAL1"] + head["CDELT1"] * np.arange(head["NPIX"])
        flux = np.asarray(hdul["FLUX"].data, np.float32)
        error = np.asarray(hdul["ERROR"].data, np.float32)
        provenance = json.loads(hdul["LABELS"].header.get("PROVENAN", "{}"))
        stored_hash = hdul["LABELS"].header.get("HASH")
    table = Table.read(path, hdu="LABELS")
    table.convert_bytestring_to_unicode()  # FITS strings come back as bytes
    table.meta = {"provenance": provenance, "hash": stored_hash}
    return wave, flux, error, table


def label_array(table, names, rows=None):
    """Labels ``names`` of a training-set table as a float array (n, k), NaN where missing.

    ``rows`` (a boolean mask or indices) selects rows; default all.
    """
    missing = [n for n in names if n not in table.colnames]
    if missing:
        raise ValueError(f"table lacks the label column(s) {missing}")
    out = np.column_stack([np.ma.filled(np.ma.asarray(table[n], dtype=float), np.nan) for n in names])
    return out if rows is None else out[rows]
