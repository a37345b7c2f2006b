"""The spectra cube: every RAVE spectrum resampled onto one wavelength grid, in one FITS file.

``resample_spectrum`` brings one spectrum onto ``COMMON_GRID``; ``build_spectra_cube`` does it
for many files (chunked, on several processes, resumable) and ``read_spectra_cube`` /
``read_cube_ids`` read the result back.
"""

import hashlib
import multiprocessing
import shutil
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from tqdm import tqdm

from .files import atomic_path, native, strings, where
from .rave import rave_obs_id_from_path, read_rave_spectrum, spectrum_wavelengths

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
    header["COMMENT"] = "RAVE spectra resampled to a common grid by ravecnn_utils.cube.build_spectra_cube."
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
    interruption skips the chunks whose files are unchanged (path, size, modification time).
    The cube is then streamed chunk by chunk into a temporary file renamed to ``out_path`` and
    the parts folder is removed. A bad file raises ValueError
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
        raise FileNotFoundError(f"{len(absent)} RAVE spectrum file(s) not found, e.g. {where(absent[0])}")
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
    for i, members in enumerate(chunks):  # a part's name encodes its files (path, size, mtime) and grid:
        digest = hashlib.sha1(grid.tobytes() + repr(edge_tolerance).encode())  # stale parts are ignored
        for p in members:
            stat = p.stat()
            digest.update(f"{p.absolute()}\0{stat.st_size}\0{stat.st_mtime_ns}\0".encode())
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
        raise FileNotFoundError(f"spectra cube not found: {where(path)}")
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        missing = [e for e in ("FLUX", "ERROR", "IDS") if e not in names]
        if missing:
            raise ValueError(f"{path}: not a spectra cube, no {missing} extension(s) (found {names})")
        wave = _header_wave(hdul[0].header, path)
        npix = wave.size
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
    ids["rave_obs_id"] = strings(ids["rave_obs_id"])
    ids["n_bad_pixels"] = native(ids["n_bad_pixels"])
    ids["rejected"] = np.asarray(ids["rejected"], bool)
    return wave, flux, error, ids


def _header_wave(header, path):
    """Wavelengths (Å, air) of a cube's grid from its primary header (NPIX and the linear WCS that
    ``rave.spectrum_wavelengths`` reads)."""
    keys = [k for k in ("CRVAL1", "CDELT1", "NPIX") if k not in header]
    if keys:
        raise ValueError(f"{path}: the primary header lacks the grid keyword(s) {keys}")
    return spectrum_wavelengths(header, int(header["NPIX"]), path)


def read_spectra_cube_grid(path):
    """Wavelengths (Å) of a spectra cube's grid, from its primary header (no flux read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectra cube not found: {where(path)}")
    return _header_wave(fits.getheader(path), path)


def read_cube_ids(path):
    """The rave_obs_id of every spectrum of a spectra cube, in cube order (no flux read)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectra cube not found: {where(path)}")
    with fits.open(path) as hdul:
        if "IDS" not in [h.name for h in hdul]:
            raise ValueError(f"{path}: not a spectra cube, no IDS extension")
        return strings(hdul["IDS"].data["rave_obs_id"])

