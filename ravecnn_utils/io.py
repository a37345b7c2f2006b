"""Readers and writers for RAVE DR6- and APOGEE-format files (simulated or real).

- RAVE spectra: ``read_rave_spectrum`` / ``write_rave_spectrum`` (one file per observation);
  ``resample_spectrum`` onto ``COMMON_GRID``; ``build_spectra_cube`` / ``read_spectra_cube``
  (all spectra on one grid in one FITS file).
- RAVE catalogue tables (FITS, CSV, VOTable from the TAP service): ``read_rave_catalogue``.
- APOGEE allStar (DR16 or DR17): ``read_allstar``, ``allstar_release``.

RAVE DR6 spectra come one FITS file per observation, ``RAVE_<rave_obs_id>.fits``,
with image extensions ``SPECTRUM`` (continuum-normalised flux) and ``ERROR``
(relative error, σ/flux) on a linear wavelength axis: λ = CRVAL1 + (i + 1 − CRPIX1)·CDELT1 (Å, air).
Every writer here is atomic: it writes a temporary file, then renames it.
"""

import hashlib
import multiprocessing
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, MaskedColumn, Table, join
from tqdm import tqdm

from .labels import APOGEE_COLUMNS

SPECTRUM_EXT = "SPECTRUM"
ERROR_EXT = "ERROR"


@contextmanager
def atomic_path(path):
    """Yield a temporary path beside ``path``; rename it to ``path`` only if the block succeeds."""
    path = Path(path)
    # keep the real name at the end, so that writers inferring the format from it still work
    tmp = path.with_name(f".part-{os.getpid()}-{path.name}")
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def spectrum_filename(rave_obs_id):
    """File name of one RAVE DR6 observation."""
    return f"RAVE_{rave_obs_id}.fits"


def write_rave_spectrum(path, flux, rel_error, crval1, cdelt1, rave_obs_id, simulated=True):
    """Write one spectrum in the RAVE DR6 layout (float32 ``SPECTRUM`` and ``ERROR`` images)."""
    primary = fits.PrimaryHDU()
    primary.header["OBS_ID"] = (rave_obs_id, "RAVE observation id")
    primary.header["SIMULATE"] = (bool(simulated), "simulated by ravecnn_utils.simulate")
    hdus = [primary]
    for name, data in ((SPECTRUM_EXT, flux), (ERROR_EXT, rel_error)):
        hdu = fits.ImageHDU(np.asarray(data, np.float32), name=name)
        hdu.header["CTYPE1"] = "AWAV"
        hdu.header["CUNIT1"] = "Angstrom"
        hdu.header["CRPIX1"] = 1.0
        hdu.header["CRVAL1"] = float(crval1)
        hdu.header["CDELT1"] = float(cdelt1)
        hdus.append(hdu)
    with atomic_path(path) as tmp:
        fits.HDUList(hdus).writeto(tmp)


def read_rave_spectrum(path):
    """Read one RAVE DR6 spectrum file.

    Returns
    -------
    wave, flux, rel_error : arrays (n_pixels,)
        Wavelength (Å, air) from the file's linear WCS, continuum-normalised flux,
        and relative error σ/flux.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"RAVE spectrum file not found: {path}")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        for ext in (SPECTRUM_EXT, ERROR_EXT):
            if ext not in names:
                raise ValueError(f"{path}: no {ext} extension (found {names})")
        header = hdul[SPECTRUM_EXT].header
        missing = [k for k in ("CRVAL1", "CDELT1") if k not in header]
        if missing:
            raise ValueError(f"{path}: SPECTRUM header lacks the wavelength keyword(s) {missing}")
        flux = np.asarray(hdul[SPECTRUM_EXT].data, float)
        rel_error = np.asarray(hdul[ERROR_EXT].data, float)
    if flux.shape != rel_error.shape:
        raise ValueError(f"{path}: SPECTRUM {flux.shape} and ERROR {rel_error.shape} differ in shape")
    wave = header["CRVAL1"] + (np.arange(flux.size) + 1 - header.get("CRPIX1", 1.0)) * header["CDELT1"]
    return wave, flux, rel_error


def write_table(table, path, overwrite=False):
    """Write an astropy Table to FITS (or any format astropy infers) atomically."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it")
    with atomic_path(path) as tmp:
        table.write(tmp, format="fits" if path.suffix == ".fits" else None)


# ====================================================================== APOGEE allStar
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
        raise ValueError(f"{path}: unknown allStar release: none of the marker columns {markers} is present")
    if len(found) > 1:
        raise ValueError(f"{path}: ambiguous allStar release: it has the marker columns of {found} ({markers})")
    return found[0]


def _native(array):
    """A copy of ``array`` in native byte order (FITS data are big-endian)."""
    array = np.asarray(array)
    return array.astype(array.dtype.newbyteorder("="))


def _strings(values):
    """Stripped ``str`` array from bytes / str / object values (masked values become '')."""
    if np.ma.isMaskedArray(values):
        values = np.ma.asarray(values).astype(object).filled("")
    values = np.asarray(values)
    if values.dtype.kind == "S":
        values = np.char.decode(values, "ascii", errors="replace")
    return np.char.strip(values.astype(str))


def read_allstar(path, columns=()):
    """Read an APOGEE allStar file (DR16 or DR17; the table in HDU 1) into a masked astropy Table.

    Keeps ``ALLSTAR_REQUIRED``, those of ``ALLSTAR_OPTIONAL`` present and the extra ``columns``.
    APOGEE_ID is a stripped str; RA, DEC in deg; every label column and its ``_ERR``
    (TEFF in K, others in dex) is a float64 MaskedColumn masked where the release's missing
    value appears (−9999 in DR16, NaN in DR17; any non-finite value too), with NaN under the
    mask, so both releases give the same representation. ``meta["release"]`` is "dr16" or
    "dr17", ``meta["source"]`` the path. Raises ValueError naming the file and the problem.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"allStar file not found: {path}")
    try:
        hdul = fits.open(path, memmap=True)
    except OSError as err:
        raise ValueError(f"{path}: not a readable FITS file ({err})") from err
    with hdul:
        if len(hdul) < 2 or not isinstance(hdul[1], fits.BinTableHDU):
            raise ValueError(f"{path}: HDU 1 is not a binary table (an allStar file has its table there)")
        names = list(hdul[1].columns.names)
        upper = {n.upper(): n for n in names}
        release = allstar_release(names, path)
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
                table[col] = _strings(values)
            else:
                table[col] = Column(_native(values), unit=units.get(col) or None)
    for col in ("RA", "DEC"):
        table[col] = Column(np.asarray(table[col], np.float64), unit=u.deg)
    table.meta["release"] = release
    table.meta["source"] = str(path)
    return table


# ====================================================================== RAVE catalogue
RAVE_REQUIRED = ("rave_obs_id", "ra_input", "dec_input", "snr_med_sparv")
"""Columns a RAVE catalogue must have once its tables are joined."""

_TABLE_FORMATS = {".fits": "fits", ".fit": "fits", ".fts": "fits", ".csv": "ascii.csv",
                  ".vot": "votable", ".votable": "votable", ".xml": "votable"}


def _read_any_table(path):
    """Read one table file (FITS: first table HDU; CSV; VOTable), format from the name."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"catalogue file not found: {path}")
    suffixes = [s.lower() for s in path.suffixes if s.lower() != ".gz"]
    fmt = _TABLE_FORMATS.get(suffixes[-1] if suffixes else "")
    try:
        return Table.read(path, format=fmt) if fmt else Table.read(path)
    except Exception as err:  # astropy raises many kinds; name the file
        raise ValueError(f"{path}: cannot read it as a FITS, CSV or VOTable table ({err})") from err


def read_rave_catalogue(paths):
    """Read RAVE DR6 catalogue table(s) as the TAP service delivers them, one row per observation.

    ``paths`` is one file or a list (FITS, CSV or VOTable: dr6_obsdata, dr6_sparv,
    dr6_madera, cross-matches...). Column names are lower-cased and every file is
    left-joined on ``rave_obs_id`` onto the first one (whose row order is kept; a column
    already present is taken from the earlier file). rave_obs_id is a stripped str;
    ra_input, dec_input in deg. ``meta["source"]`` lists the files.
    Raises ValueError naming the file: no rave_obs_id column, a duplicate or empty
    rave_obs_id, or a column of ``RAVE_REQUIRED`` missing from the joined result.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if not paths:
        raise ValueError("read_rave_catalogue: no catalogue file given")
    result = None
    for path in paths:
        table = _read_any_table(path)
        table.rename_columns(table.colnames, [c.lower() for c in table.colnames])
        if "rave_obs_id" not in table.colnames:
            raise ValueError(f"{path}: no rave_obs_id column (columns: {table.colnames}); "
                             "every RAVE table is joined on it")
        for name in table.colnames:
            if table[name].dtype.kind in "SO":
                table[name] = _strings(table[name]) if name == "rave_obs_id" else table[name].astype(str)
        ids = _strings(table["rave_obs_id"])
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


# ====================================================================== spectra cube
COMMON_GRID = dict(start=8410.0, stop=8795.0, step=0.39)
"""The common wavelength grid (Å, air): start + step·i for i = 0 … n−1, n = ⌊(stop − start)/step⌋
(987 pixels, 8410.00–8794.54 Å)."""

EDGE_TOLERANCE = 1.0
"""Å: a spectrum may fall short of the grid by this much at either end; the uncovered grid
pixels are then bad (no information). Files' CRVAL1 scatter by ~0.1 Å around 8410 Å."""


def common_wavelengths(grid=None):
    """Wavelengths (Å) of a grid given as ``dict(start, stop, step)`` (default ``COMMON_GRID``)."""
    grid = COMMON_GRID if grid is None else grid
    n = int(np.floor((grid["stop"] - grid["start"]) / grid["step"] + 1e-9)) if grid["step"] > 0 else 0
    if n < 2:
        raise ValueError(f"wavelength grid {grid}: needs step > 0 and at least 2 pixels")
    return grid["start"] + grid["step"] * np.arange(n)


def _grid_array(grid):
    """Grid wavelengths from None (COMMON_GRID), a dict or an array; must increase strictly."""
    wave = common_wavelengths(grid) if grid is None or isinstance(grid, dict) else np.asarray(grid, float)
    if wave.ndim != 1 or wave.size < 2 or not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise ValueError("the wavelength grid must be a finite, strictly increasing 1-D array of >= 2 values")
    return wave


def resample_spectrum(wave, flux, rel_error, grid=None, source=None, edge_tolerance=EDGE_TOLERANCE):
    """Resample one spectrum onto ``grid`` (Å; dict, array, or None for ``COMMON_GRID``).

    Flux is interpolated linearly; the absolute error σ = |rel_error·flux| is propagated as
    sqrt((1−w)²σ_l² + w²σ_r²) (neighbouring output pixels become correlated; ignored).
    An input pixel is bad when its flux or error is not finite or σ = 0. A grid pixel that
    uses a bad input pixel (non-zero weight), or lies beyond the spectrum's ends (allowed up
    to ``edge_tolerance`` Å), carries no information: flux 1.0 and error inf.

    Returns (flux, error, n_bad): arrays on the grid and the number of such grid pixels.
    Raises ValueError (naming ``source``, e.g. the file) when the spectrum does not cover the grid.
    """
    name = source if source is not None else "spectrum"
    grid = _grid_array(grid)
    wave, flux, rel_error = (np.asarray(a, float) for a in (wave, flux, rel_error))
    if not (wave.ndim == 1 and wave.shape == flux.shape == rel_error.shape and wave.size >= 2):
        raise ValueError(f"{name}: wave {wave.shape}, flux {flux.shape} and error {rel_error.shape} must be "
                         "1-D arrays of the same length (>= 2)")
    if not np.all(np.isfinite(wave)) or np.any(np.diff(wave) <= 0):
        raise ValueError(f"{name}: wavelengths must be finite and strictly increasing")
    lo, hi = wave[0], wave[-1]
    if grid[0] < lo - edge_tolerance - 1e-9 or grid[-1] > hi + edge_tolerance + 1e-9:
        raise ValueError(f"{name} covers {lo:.2f}–{hi:.2f} Å, the common grid needs "
                         f"{grid[0]:.2f}–{grid[-1]:.2f} Å (tolerance {edge_tolerance} Å at each end)")
    with np.errstate(invalid="ignore", over="ignore"):
        sigma = np.abs(rel_error * flux)
        bad = ~(np.isfinite(flux) & np.isfinite(sigma) & (sigma > 0))
    flux_ok, sigma_ok = np.where(bad, 0.0, flux), np.where(bad, 0.0, sigma)
    inside = (grid >= lo) & (grid <= hi)
    g = grid[inside]
    j = np.clip(np.searchsorted(wave, g, side="right") - 1, 0, wave.size - 2)
    w = (g - wave[j]) / (wave[j + 1] - wave[j])
    touched = (bad[j] & (w < 1)) | (bad[j + 1] & (w > 0))
    out_flux, out_err = np.ones(grid.size), np.full(grid.size, np.inf)
    out_flux[inside] = np.where(touched, 1.0, (1 - w) * flux_ok[j] + w * flux_ok[j + 1])
    out_err[inside] = np.where(touched, np.inf, np.hypot((1 - w) * sigma_ok[j], w * sigma_ok[j + 1]))
    return out_flux, out_err, int(np.sum(~inside) + np.sum(touched))


def rave_obs_id_from_path(path):
    """``rave_obs_id`` from a file name ``RAVE_<rave_obs_id>.fits`` (also .fit, .fits.gz)."""
    name = Path(path).name
    for suffix in (".fits.gz", ".fits", ".fit"):
        if name.lower().endswith(suffix):
            name = name[: -len(suffix)]
            break
    return name[5:] if name.startswith("RAVE_") else name


_WORKER = {}


def _init_worker(grid, edge_tolerance):
    _WORKER.update(grid=grid, edge_tolerance=edge_tolerance)


def _read_one(path):
    """Read one RAVE file and resample it onto the worker's grid (float32 flux, error; n_bad)."""
    wave, flux, rel_error = read_rave_spectrum(path)
    f, e, n_bad = resample_spectrum(wave, flux, rel_error, _WORKER["grid"], source=Path(path).name,
                                    edge_tolerance=_WORKER["edge_tolerance"])
    return f.astype(np.float32), e.astype(np.float32), n_bad


def _linear_step(grid_spec, grid):
    """CDELT1 of a grid (exactly ``step`` for a dict); ValueError if the grid is not linear."""
    step = grid_spec["step"] if isinstance(grid_spec, dict) else (grid[-1] - grid[0]) / (grid.size - 1)
    if np.max(np.abs(np.diff(grid) - step)) > 1e-6 * step:
        raise ValueError("the cube's wavelength grid must be linear (constant step), as its header "
                         "records only CRVAL1 and CDELT1")
    return float(step)


def _sources_digest(paths, grid, max_bad_fraction, edge_tolerance):
    """SHA-1 of what a cube is made from: the grid, the settings, and each file's path, size and mtime."""
    digest = hashlib.sha1(grid.tobytes() + repr((max_bad_fraction, edge_tolerance)).encode())
    for p in paths:
        stat = p.stat()
        digest.update(f"{p.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
    return digest.hexdigest()


def cube_header(grid, step, n, max_bad_fraction=0.2, edge_tolerance=EDGE_TOLERANCE, sources=""):
    """Primary header of a spectra cube: the grid (Å), the number of spectra and how they were made."""
    header = fits.Header()
    header["SOURCES"] = sources  # SHA-1 of the input files (path, size, mtime) and settings
    header["CTYPE1"] = ("AWAV", "air wavelength")
    header["CUNIT1"] = "Angstrom"
    header["CRPIX1"] = 1.0
    header["CRVAL1"] = (float(grid[0]), "[Angstrom] wavelength of the first pixel")
    header["CDELT1"] = (step, "[Angstrom] pixel step")
    header["NPIX"] = (grid.size, "pixels per spectrum")
    header["NSPEC"] = (n, "spectra (rows of FLUX, ERROR, IDS)")
    header["MAXBAD"] = (max_bad_fraction, "rejected if bad-pixel fraction exceeds this")
    header["EDGETOL"] = (edge_tolerance, "[Angstrom] allowed shortfall at the grid ends")
    header["COMMENT"] = "RAVE spectra resampled to a common grid by ravecnn_utils.io.build_spectra_cube."
    header["COMMENT"] = "FLUX: continuum-normalised flux; ERROR: absolute 1-sigma error;"
    header["COMMENT"] = "a pixel with ERROR = inf (FLUX = 1) carries no information."
    return header


def build_spectra_cube(spectrum_paths, out_path, grid=None, chunk=2000, processes=2, progress=True,
                       max_bad_fraction=0.2, edge_tolerance=EDGE_TOLERANCE, overwrite=False):
    """Resample many ``RAVE_<rave_obs_id>.fits`` files onto one grid and write them as ONE FITS file.

    HDUs: primary (grid: CRVAL1, CDELT1, NPIX, CUNIT1; description), ``FLUX`` (n, npix)
    float32, ``ERROR`` (n, npix) float32 absolute σ (inf = no information), ``IDS`` table
    (rave_obs_id, n_bad_pixels, rejected: bad-pixel fraction > ``max_bad_fraction``; the
    spectrum is kept). Files are read ``chunk`` at a time by ``processes`` worker processes
    (1 = serial) and each finished chunk is saved in ``<out_path>.parts/``; a rerun after an
    interruption skips them. The cube is then streamed chunk by chunk into a temporary file
    renamed to ``out_path`` and the parts folder is removed. A bad file raises ValueError
    naming it, and nothing is written at ``out_path``. An existing cube made from the same
    files (path, size, modification time) and settings is kept as it is; one made from others
    is replaced only with ``overwrite=True``. Returns ``out_path``.
    """
    out_path = Path(out_path)
    paths = [Path(p) for p in spectrum_paths]
    grid_spec, grid = grid, _grid_array(grid)
    step = _linear_step(COMMON_GRID if grid_spec is None else grid_spec, grid)
    if not paths:
        raise ValueError(f"{out_path}: no spectrum files given")
    for name, value in (("chunk", chunk), ("processes", processes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= max_bad_fraction <= 1:
        raise ValueError(f"max_bad_fraction must lie in [0, 1], got {max_bad_fraction!r}")
    absent = [p for p in paths if not p.is_file()]
    if absent:  # checked up front: better than failing hours into a run
        raise FileNotFoundError(f"{len(absent)} RAVE spectrum file(s) not found, e.g. {absent[0]}")
    sources = _sources_digest(paths, grid, max_bad_fraction, edge_tolerance)
    if out_path.exists():
        try:
            existing = fits.getheader(out_path).get("SOURCES")
        except OSError:  # not a FITS file
            existing = None
        if existing == sources:
            return out_path  # up to date: made from these very files and settings
        if not overwrite:
            raise FileExistsError(f"{out_path} exists and was made from other files or settings; "
                                  f"pass overwrite=True to replace it")
    ids = np.array([rave_obs_id_from_path(p) for p in paths])
    unique, counts = np.unique(ids, return_counts=True)
    if np.any(counts > 1):
        raise ValueError(f"{out_path}: several files share a rave_obs_id, e.g. {list(unique[counts > 1][:3])}")

    parts_dir = Path(f"{out_path}.parts")
    parts_dir.mkdir(parents=True, exist_ok=True)
    chunks = [paths[s:s + chunk] for s in range(0, len(paths), chunk)]
    part_files = []
    for i, members in enumerate(chunks):  # a part's name encodes its files and grid: stale parts are ignored
        digest = hashlib.sha1(grid.tobytes() + repr(edge_tolerance).encode())
        for p in members:
            digest.update(str(p.absolute()).encode() + b"\0")
        part_files.append(parts_dir / f"chunk_{i:05d}_{digest.hexdigest()[:12]}.npz")
    todo = [i for i, f in enumerate(part_files) if not f.is_file()]
    bar = tqdm(total=len(paths), initial=len(paths) - sum(len(chunks[i]) for i in todo),
               desc="spectra cube", unit="spec", disable=not progress)
    pool = None
    try:
        if processes > 1 and todo:
            pool = multiprocessing.get_context("fork").Pool(processes, _init_worker, (grid, edge_tolerance))
        else:
            _init_worker(grid, edge_tolerance)
        for i in todo:
            members = chunks[i]
            flux = np.empty((len(members), grid.size), np.float32)
            error = np.empty_like(flux)
            n_bad = np.empty(len(members), np.int32)
            results = (pool.imap(_read_one, members, chunksize=max(1, min(64, len(members) // (4 * processes))))
                       if pool is not None else map(_read_one, members))
            for k, (f, e, nb) in enumerate(results):
                flux[k], error[k], n_bad[k] = f, e, nb
                bar.update(1)
            with atomic_path(part_files[i]) as tmp:
                np.savez(tmp, flux=flux, error=error, n_bad=n_bad)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()

    n = len(paths)
    n_bad = []
    for f in part_files:
        with np.load(f) as part:
            n_bad.append(part["n_bad"])
    n_bad = np.concatenate(n_bad)
    if n_bad.size != n:
        raise ValueError(f"{parts_dir}: the saved chunks hold {n_bad.size} spectra, expected {n}; "
                         "delete the folder and run again")
    header = cube_header(grid, step, n, max_bad_fraction, edge_tolerance, sources)

    def blocks(ext):
        for f in part_files:
            with np.load(f) as part:
                yield part[ext.lower()]

    write_spectra_cube(out_path, header, blocks, ids, n_bad, max_bad_fraction)
    shutil.rmtree(parts_dir)
    return out_path


def write_spectra_cube(out_path, header, blocks, ids, n_bad, max_bad_fraction=0.2):
    """Stream a spectra cube to ``out_path`` (atomically) without holding it in memory.

    ``header``: the primary header with the grid (CRVAL1, CDELT1, NPIX …, see ``cube_header``);
    ``blocks(ext)``: for ext "FLUX" then "ERROR", an iterable of (rows, NPIX) arrays that together
    hold ``len(ids)`` rows; ``ids`` the rave_obs_id and ``n_bad`` the bad pixels of every row.
    """
    n, npix = len(ids), int(header["NPIX"])
    with atomic_path(out_path) as tmp:
        fits.PrimaryHDU(header=header).writeto(tmp)
        for ext in ("FLUX", "ERROR"):
            image = fits.ImageHDU(np.zeros((1, npix), np.float32), name=ext).header
            image["NAXIS2"] = n
            for key in ("CTYPE1", "CUNIT1", "CRPIX1", "CRVAL1", "CDELT1"):
                image[key] = (header[key], header.comments[key])
            image["COMMENT"] = ("continuum-normalised flux" if ext == "FLUX" else
                                "absolute 1-sigma error of FLUX; inf = no information")
            stream = fits.StreamingHDU(str(tmp), image)  # str: astropy takes only the name of a Path
            try:
                for block in blocks(ext):
                    stream.write(np.ascontiguousarray(block, np.float32))
            finally:
                stream.close()
        n_bad = np.asarray(n_bad)
        table = Table({"rave_obs_id": ids, "n_bad_pixels": n_bad.astype(np.int32),
                       "rejected": n_bad / npix > max_bad_fraction})
        ids_hdu = fits.table_to_hdu(table)
        ids_hdu.name = "IDS"
        fits.append(tmp, ids_hdu.data, ids_hdu.header)
    return Path(out_path)


def read_spectra_cube(path, grid=None, rows=None):
    """Read a cube written by ``build_spectra_cube``.

    Returns wave (Å), flux and error (n, npix) float32 (error inf = no information) and the
    IDS Table (rave_obs_id, n_bad_pixels, rejected). Checks that the header grid (CRVAL1,
    CDELT1, NPIX) agrees with the data and, if ``grid`` is given, with that grid.
    ``rows`` (indices into the cube, or a slice) reads only those spectra (memory-mapped), in that order.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectra cube not found: {path}")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        missing = [e for e in ("FLUX", "ERROR", "IDS") if e not in names]
        if missing:
            raise ValueError(f"{path}: not a spectra cube, no {missing} extension(s) (found {names})")
        header = hdul[0].header
        keys = [k for k in ("CRVAL1", "CDELT1", "NPIX") if k not in header]
        if keys:
            raise ValueError(f"{path}: the primary header lacks the grid keyword(s) {keys}")
        npix = int(header["NPIX"])
        wave = header["CRVAL1"] + (np.arange(npix) + 1 - header.get("CRPIX1", 1.0)) * header["CDELT1"]
        pick = slice(None) if rows is None else rows if isinstance(rows, slice) else np.asarray(rows, int)
        flux = np.asarray(hdul["FLUX"].data[pick], np.float32)
        error = np.asarray(hdul["ERROR"].data[pick], np.float32)
        ids = Table(hdul["IDS"].data[pick])
    if flux.ndim != 2 or flux.shape[1] != npix or error.shape != flux.shape or len(ids) != flux.shape[0]:
        raise ValueError(f"{path}: FLUX {flux.shape}, ERROR {error.shape} and IDS ({len(ids)} rows) do not "
                         f"agree with NPIX = {npix}")
    if grid is not None:
        expected = _grid_array(grid)
        if expected.shape != wave.shape or not np.allclose(expected, wave, rtol=0, atol=1e-6):
            raise ValueError(f"{path}: the cube's grid ({wave[0]:.2f}–{wave[-1]:.2f} Å, {npix} px) is not the "
                             f"expected one ({expected[0]:.2f}–{expected[-1]:.2f} Å, {expected.size} px)")
    ids["rave_obs_id"] = _strings(ids["rave_obs_id"])
    ids["n_bad_pixels"] = _native(ids["n_bad_pixels"])
    ids["rejected"] = np.asarray(ids["rejected"], bool)
    return wave, flux, error, ids


def read_cube_ids(path):
    """The rave_obs_id of every spectrum of a spectra cube, in cube order (no flux read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectra cube not found: {path}")
    with fits.open(path) as hdul:
        if "IDS" not in [h.name for h in hdul]:
            raise ValueError(f"{path}: not a spectra cube, no IDS extension")
        return _strings(hdul["IDS"].data["rave_obs_id"])
