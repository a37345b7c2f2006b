"""RAVE DR6: the spectrum files and the catalogue tables.

RAVE DR6 spectra come one FITS file per observation, ``RAVE_<rave_obs_id>.fits``,
with image extensions ``SPECTRUM`` (continuum-normalised flux) and ``ERROR``
(relative error, σ/flux) on a linear wavelength axis: λ = CRVAL1 + (i + 1 − CRPIX1)·CDELT1 (Å, air,
the star's rest frame); the primary header's ``ROI`` holds the observation id. Where each of
these beliefs comes from is tabulated in data/README.md.
The catalogue comes as several tables of the DR6 TAP service (``dr6_obsdata``, ``dr6_sparv``,
``dr6_madera``, …; FITS, CSV or VOTable), joined here on ``rave_obs_id``.
"""

import functools
import os
import warnings
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Table, join
from astropy.utils.exceptions import AstropyUserWarning

from . import fitsbytes
from .files import atomic_path, strings, where
from .fitstable import Unsupported, read_columns
from .plainfits import read_plain_images

PIPELINE_COLUMNS = {"teff": "teff_cal_madera", "logg": "logg_cal_madera", "m_h": "m_h_cal_madera"}
"""RAVE DR6 catalogue column of each label the RAVE pipeline (MADERA, calibrated) provides."""

SPECTRUM_EXT = "SPECTRUM"
ERROR_EXT = "ERROR"
OBS_ID_KEY = "ROI"
"""Primary-header keyword of a DR6 spectrum file that holds its ``rave_obs_id`` (data/README.md)."""


def spectrum_filename(rave_obs_id):
    """File name of one RAVE DR6 observation."""
    return f"RAVE_{rave_obs_id}.fits"


def write_rave_spectrum(path, flux, rel_error, crval1, cdelt1, rave_obs_id, simulated=True):
    """Write one spectrum in the RAVE DR6 layout (float32 ``SPECTRUM`` and ``ERROR`` images).

    The file is byte for byte what ``write_rave_spectrum_with_astropy`` writes, about 5× faster:
    it is assembled from headers astropy wrote once per image size (``_templates``) with the
    cards that change formatted by ``fits.Card`` (``fitsbytes``), without ``HDUList.writeto``.
    """
    flux, rel_error = np.asarray(flux, np.float32), np.asarray(rel_error, np.float32)
    if flux.ndim != 1 or rel_error.ndim != 1:
        return write_rave_spectrum_with_astropy(path, flux, rel_error, crval1, cdelt1, rave_obs_id, simulated)
    primary, spectrum, error = _templates(flux.size, rel_error.size)
    cards = _spectrum_cards(crval1, cdelt1, rave_obs_id, simulated)
    axis = fitsbytes.card_images({key: cards[1][key] for key in ("CRVAL1", "CDELT1")})
    blocks = [fitsbytes.header_bytes(primary, fitsbytes.card_images(cards[0])),
              fitsbytes.header_bytes(spectrum, axis), fitsbytes.data_bytes(flux, ">f4"),
              fitsbytes.header_bytes(error, axis), fitsbytes.data_bytes(rel_error, ">f4")]
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as handle:
            handle.write(b"".join(blocks))


def write_rave_spectrum_with_astropy(path, flux, rel_error, crval1, cdelt1, rave_obs_id, simulated=True):
    """``write_rave_spectrum`` through ``HDUList.writeto`` (the reference its bytes are tested against)."""
    with atomic_path(path) as tmp:
        _spectrum_hdus(flux, rel_error, crval1, cdelt1, rave_obs_id, simulated).writeto(tmp)


def _spectrum_cards(crval1, cdelt1, rave_obs_id, simulated):
    """The cards of a spectrum file's primary header and of each image's header: {keyword: value
    or (value, comment)}."""
    return ({OBS_ID_KEY: (rave_obs_id, "RAVE observation id"),
             "SIMULATE": (bool(simulated), "simulated by ravecnn_utils.simulation")},
            {"CTYPE1": "AWAV", "CUNIT1": "Angstrom", "CRPIX1": 1.0, "CRVAL1": float(crval1),
             "CDELT1": float(cdelt1)})


def _spectrum_hdus(flux, rel_error, crval1, cdelt1, rave_obs_id, simulated):
    """The HDUList of one spectrum file, as astropy builds it."""
    cards = _spectrum_cards(crval1, cdelt1, rave_obs_id, simulated)
    primary = fits.PrimaryHDU()
    primary.header.update(cards[0])
    hdus = [primary]
    for name, data in ((SPECTRUM_EXT, flux), (ERROR_EXT, rel_error)):
        hdu = fits.ImageHDU(np.asarray(data, np.float32), name=name)
        hdu.header.update(cards[1])
        hdus.append(hdu)
    return fits.HDUList(hdus)


@functools.lru_cache(maxsize=None)
def _templates(n_flux, n_error):
    """The three headers of a spectrum file with images of ``n_flux`` and ``n_error`` pixels, as
    astropy writes them (placeholder values; ``fitsbytes.header_templates``)."""
    return tuple(fitsbytes.header_templates(
        _spectrum_hdus(np.zeros(n_flux), np.zeros(n_error), 8400.0, 0.4, "x", True)))


def vacuum_to_air(wave):
    """Air wavelengths (Å) of vacuum wavelengths ``wave`` (Å): the IAU standard of Morton (2000,
    ApJS 130, 403), λ_air = λ_vac / n with n = 1 + 8.34254e-5 + 2.406147e-2 / (130 − s²)
    + 1.5998e-4 / (38.9 − s²), s = 10⁴ / λ_vac (the convention of VALD)."""
    s2 = (1e4 / np.asarray(wave, float)) ** 2
    return wave / (1 + 8.34254e-5 + 2.406147e-2 / (130 - s2) + 1.5998e-4 / (38.9 - s2))


AIR_TYPES, VACUUM_TYPES = ("AWAV", ""), ("WAVE",)
"""``CTYPE1`` values of a linear wavelength axis in air (RAVE writes AWAV; none = air) and in vacuum."""

RAVE_RANGE = (8000.0, 9000.0)
"""Å: where a RAVE spectrum's CRVAL1 lies; a file without CUNIT1 is read in Å only then."""


@functools.lru_cache(maxsize=64)
def _angstroms_per(cunit):
    """Å in one ``cunit`` (a CUNIT1 value); None if it is not a unit of length."""
    try:
        unit = u.Unit(cunit)
    except ValueError:
        return None
    return float(unit.to(u.AA)) if unit.physical_type == "length" else None


def spectrum_wavelengths(header, n, path):
    """Air wavelengths (Å) of the ``n`` pixels of a linear spectral axis described by ``header``
    (CTYPE1, CUNIT1, CRVAL1, CDELT1, CRPIX1).

    Vacuum axes (WAVE) are converted to air and other length units (nm, m …) to Å; logarithmic,
    frequency and velocity axes are refused, as is a missing CUNIT1 unless CRVAL1 is a RAVE
    wavelength in Å (``RAVE_RANGE``). ValueError names ``path`` and the keyword at fault.
    """
    missing = [k for k in ("CRVAL1", "CDELT1") if k not in header]
    if missing:
        raise ValueError(f"{path}: the header lacks the wavelength keyword(s) {missing}")
    ctype = str(header.get("CTYPE1", "")).strip().upper()
    if ctype not in AIR_TYPES + VACUUM_TYPES:
        raise ValueError(f"{path}: CTYPE1 = {ctype!r} is not a linear wavelength axis (AWAV in air or WAVE in "
                         "vacuum); logarithmic, frequency and velocity axes are not read")
    pixel = np.arange(n) + 1 - header.get("CRPIX1", 1.0)
    wave = header["CRVAL1"] + pixel * header["CDELT1"]
    if "CUNIT1" in header:
        scale = _angstroms_per(str(header["CUNIT1"]).strip())
        if scale is None:
            raise ValueError(f"{path}: CUNIT1 = {header['CUNIT1']!r} is not a unit of wavelength")
        wave = wave if scale == 1 else wave * scale
    elif not RAVE_RANGE[0] <= header["CRVAL1"] <= RAVE_RANGE[1]:
        raise ValueError(f"{path}: no CUNIT1 and CRVAL1 = {header['CRVAL1']} is not a RAVE wavelength in Å; "
                         "say the unit in CUNIT1")
    return vacuum_to_air(wave) if ctype in VACUUM_TYPES else wave


WCS_KEYS = ("CTYPE1", "CUNIT1", "CRPIX1", "CRVAL1", "CDELT1")
"""Keywords of the linear wavelength axis that ``spectrum_wavelengths`` reads."""


def read_rave_spectrum(path):
    """Read one RAVE DR6 spectrum file.

    Returns
    -------
    wave, flux, rel_error : arrays (n_pixels,)
        Wavelength (Å, air) from the file's linear WCS (``spectrum_wavelengths``),
        continuum-normalised flux, and relative error σ/flux.

    A truncated file is reported as such; a missing extension or keyword is named. A file whose
    SPECTRUM and ERROR are plain 1-D float images (as RAVE writes them) is read by
    ``plainfits.read_plain_images`` (about 8× faster: ~0.1 ms a file); any other goes to astropy
    (``read_rave_spectrum_with_astropy``), and both give the same arrays and the same errors.
    """
    return _read(path, _plain_parts)


def read_rave_spectrum_with_astropy(path):
    """``read_rave_spectrum`` through ``astropy.io.fits.open`` alone (any FITS file astropy reads:
    scaled, compressed, gzip …): the fast path's fallback and the reference it is tested against."""
    return _read(path, None)


def _plain_parts(path):
    """(primary header, SPECTRUM header, flux, rel_error) of a plain file, as dicts and float
    arrays; None if the file is not plain (``plainfits``)."""
    plain = read_plain_images(path, (SPECTRUM_EXT, ERROR_EXT), (OBS_ID_KEY,) + WCS_KEYS)
    if plain is None:
        return None
    primary, images = plain
    (header, flux), (_, rel_error) = images[SPECTRUM_EXT], images[ERROR_EXT]
    return primary, header, flux, rel_error


def _astropy_parts(path):
    """(primary header, SPECTRUM header, flux, rel_error) of any FITS file astropy opens."""
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        for ext in (SPECTRUM_EXT, ERROR_EXT):
            if ext not in names:
                raise ValueError(f"{path}: no {ext} extension (found {names}; "
                                 "an incomplete or truncated file?)")
        return (hdul[0].header, hdul[SPECTRUM_EXT].header, np.asarray(hdul[SPECTRUM_EXT].data, float),
                np.asarray(hdul[ERROR_EXT].data, float))


def _read(path, fast):
    """The readers' shared tail: the parts of the file at ``path`` (from ``fast``, else astropy),
    then its checks (ROI against the file name, equal shapes, the wavelength axis)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RAVE spectrum file not found: {where(path)}")
    with warnings.catch_warnings():
        warnings.simplefilter("error", AstropyUserWarning)  # astropy only warns of a truncated file
        try:
            parts = fast(path) if fast is not None else None
            primary, header, flux, rel_error = parts if parts is not None else _astropy_parts(path)
            _check_obs_id(primary, path)
            if flux.shape != rel_error.shape:
                raise ValueError(f"{path}: SPECTRUM {flux.shape} and ERROR {rel_error.shape} differ in shape")
            return spectrum_wavelengths(header, flux.size, path), flux, rel_error
        except AstropyUserWarning as warning:
            raise ValueError(f"{path}: truncated or corrupt FITS file ({warning})") from None
        except OSError as err:
            raise ValueError(f"{path}: not a readable FITS file ({err})") from None


def _check_obs_id(primary, path):
    """Refuse a file whose primary header ``ROI`` names another observation than its file name
    ``RAVE_<rave_obs_id>.fits`` (a renamed or mixed-up file would label the wrong star)."""
    name_id = rave_obs_id_from_path(path)
    header_id = str(primary.get(OBS_ID_KEY, "")).strip()
    if header_id and Path(path).name.startswith("RAVE_") and header_id != name_id:
        raise ValueError(f"{path}: the file name says observation {name_id!r} but its header "
                         f"{OBS_ID_KEY} = {header_id!r}; rename the file or fix its header")


def rave_obs_id_from_path(path):
    """``rave_obs_id`` from a file name ``RAVE_<rave_obs_id>.fits`` (also .fit, .fits.gz)."""
    name = Path(path).name
    for suffix in (".fits.gz", ".fits", ".fit"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[5:] if name.startswith("RAVE_") else name



RAVE_REQUIRED = ("rave_obs_id", "ra_input", "dec_input", "snr_med_sparv")
"""Columns a RAVE catalogue must have once its tables are joined."""

_TABLE_FORMATS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".csv": "ascii.csv",
                  ".vot": "votable", ".votable": "votable", ".xml": "votable"}


def _read_any_table(path, columns=None):
    """Read one table file (FITS: first table HDU; CSV; VOTable), format from the name; with
    ``columns`` (lower-case names) only those of its columns (of a plain FITS table, only those
    are read: ``fitstable.read_columns``)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file not found: {where(path)}")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    fmt = _TABLE_FORMATS.get(suffixes[-1] if suffixes else "")
    try:
        if columns is not None and fmt == "fits":
            try:
                return _fits_columns(path, columns)
            except Unsupported:  # compressed, scaled or null-flagged columns: astropy reads them
                pass
        table = Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as err:  # astropy raises many kinds; name the file
        raise ValueError(f"{path}: cannot read it as a FITS, CSV or VOTable table ({err})") from err
    return table if columns is None else table[[c for c in table.colnames if c.lower() in columns]]


def _fits_columns(path, columns):
    """The columns of the first binary table of a FITS file whose lower-case names are in ``columns``."""
    with fits.open(path, lazy_load_hdus=True) as hdul:
        hdu = next((k for k, h in enumerate(hdul) if isinstance(h, fits.BinTableHDU)), None)
        if hdu is None:
            raise ValueError("no binary table")
        names = [c for c in hdul[hdu].columns.names if c.lower() in columns]
    return read_columns(path, names, hdu)


def read_rave_catalogue(paths, columns=None):
    """Read RAVE DR6 catalogue table(s) as the TAP service delivers them, one row per observation.

    ``paths`` is one file or a list (FITS, CSV or VOTable: dr6_obsdata, dr6_sparv,
    dr6_madera, cross-matches...). Column names are lower-cased and every file is
    left-joined on ``rave_obs_id`` onto the first one (whose row order is kept; a column
    already present is taken from the earlier file). rave_obs_id is a stripped str;
    ra_input, dec_input in deg. ``meta["source"]`` lists the files. ``columns`` (None: all):
    only these (lower-case names) and ``RAVE_REQUIRED`` are kept (read: half a million rows of
    every column are big).
    Raises ValueError naming the file: no rave_obs_id column, a duplicate or empty
    rave_obs_id, or a column of ``RAVE_REQUIRED`` missing from the joined result.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("read_rave_catalogue: no catalogue file given")
    columns = None if columns is None else {*RAVE_REQUIRED, *(c.lower() for c in columns)}
    result = None
    for path in paths:
        table = _read_any_table(path, columns)
        table.rename_columns(table.colnames, [c.lower() for c in table.colnames])
        if "rave_obs_id" not in table.colnames:
            raise ValueError(f"{path}: no rave_obs_id column (columns: {table.colnames}); "
                             "every RAVE table is joined on it")
        for name in table.colnames:
            if table[name].dtype.kind in "SO":
                table[name] = strings(table[name]) if name == "rave_obs_id" else table[name].astype(str)
        ids = strings(table["rave_obs_id"])
        if np.any(ids == ""):
            raise ValueError(f"{path}: {np.sum(ids == '')} row(s) without a rave_obs_id")
        unique, counts = np.unique(ids, return_counts=True)
        if np.any(counts > 1):
            dup = unique[counts > 1]
            raise ValueError(f"{path}: duplicate rave_obs_id ({dup.size} id(s), e.g. {list(dup[:3])})")
        table["rave_obs_id"] = ids
        if result is None:
            result = table
            result["_row"] = np.arange(len(result))
            continue
        keep = ["rave_obs_id"] + [c for c in table.colnames if c not in result.colnames]
        result = join(result, table[keep], keys="rave_obs_id", join_type="left")
    result.sort("_row")
    result.remove_column("_row")
    missing = [c for c in RAVE_REQUIRED if c not in result.colnames]
    if missing:
        raise ValueError(f"RAVE catalogue {[str(p) for p in paths]}: required column(s) {missing} "
                         f"missing from the joined table")
    for col in ("ra_input", "dec_input"):
        if result[col].unit is None:
            result[col].unit = u.deg
    result.meta = {"source": [str(p) for p in paths]}
    return result


def count_stars(catalogue):
    """Number of distinct stars among a catalogue's observations: distinct positions
    (``ra_input``, ``dec_input``, deg) rounded to 1e-6 deg (repeat observations of a star share
    its input position)."""
    ra = np.round(np.asarray(catalogue["ra_input"], float), 6)
    dec = np.round(np.asarray(catalogue["dec_input"], float), 6)
    return len(np.unique(np.column_stack([ra, dec]), axis=0))
