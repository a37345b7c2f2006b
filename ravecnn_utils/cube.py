"""The spectra cube: every RAVE spectrum resampled onto one wavelength grid, in one FITS file.

``resample_spectrum`` brings one spectrum onto ``COMMON_GRID``; ``build_spectra_cube`` does it
for many files (chunked, on several processes, resumable); ``read_spectra_cube``,
``read_cube_table`` and ``read_cube_ids`` read the result back. The cube is standard (big-endian)
FITS: a primary header with the grid (CRVAL1, CDELT1, NPIX; Å, air) and how it was made; float32
images ``FLUX`` and ``ERROR`` (n × NPIX; absolute 1σ, inf = no information, FLUX then 1); and the
table ``IDS``: rave_obs_id, n_bad_pixels, rejected and snr (``spectrum_snr``, computed once here
so that prediction need not sort every spectrum again; a cube of older code lacks it). Prediction
maps FLUX and ERROR as they lie: ``fastcnn.spectra_input`` swaps the bytes in registers (0.1 µs).
"""

import multiprocessing
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table
from tqdm import tqdm

from .cubefiles import list_files, spectrum_ids, spilled_chunks
from .files import atomic_path, native, strings, where
from .fitstable import Rows, append_table
from .rave import read_rave_spectrum, spectrum_wavelengths

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


def spectrum_snr(flux, error):
    """Median flux / σ over the pixels with information (σ finite and > 0) of each spectrum (n,);
    NaN for a spectrum without any such pixel. float32 arithmetic, so that the cube's ``snr``
    column and a computation from the cube's FLUX and ERROR agree to the bit."""
    flux, error = np.asarray(flux, np.float32), np.asarray(error, np.float32)
    good = np.isfinite(flux) & np.isfinite(error) & (error > 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.sort(np.where(good, flux / error, np.nan), axis=1)  # NaN sorts last; numpy's SIMD
    count = good.sum(axis=1)                                             # sort beats np.nanmedian 4×
    rows = np.arange(len(ratio))
    return (ratio[rows, (np.maximum(count, 1) - 1) // 2] + ratio[rows, count // 2]) / np.float32(2)


_WORKER = {}


def _init_worker(grid, edge_tolerance):
    _WORKER.update(grid=grid, edge_tolerance=edge_tolerance)


def _read_one(path):
    """Read one RAVE file (``path`` as bytes) and resample it onto the worker's grid: float32 flux
    and error, n_bad, and the float32 SNR of the resampled spectrum."""
    path = Path(os.fsdecode(path))
    wave, flux, rel_error = read_rave_spectrum(path)
    f, e, n_bad = resample_spectrum(wave, flux, rel_error, _WORKER["grid"], source=path.name,
                                    edge_tolerance=_WORKER["edge_tolerance"])
    f, e = f.astype(np.float32), e.astype(np.float32)
    return f, e, n_bad, spectrum_snr(f[None], e[None])[0]


def _linear_step(grid_spec, grid):
    """CDELT1 of a grid (exactly ``step`` for a dict); ValueError if the grid is not linear."""
    step = grid_spec["step"] if isinstance(grid_spec, dict) else (grid[-1] - grid[0]) / (grid.size - 1)
    if np.max(np.abs(np.diff(grid) - step)) > 1e-6 * step:
        raise ValueError("the cube's wavelength grid must be linear (constant step), as its header "
                         "records only CRVAL1 and CDELT1")
    return float(step)


LAYOUT = "ids+snr"
"""What the cube and its saved chunks hold, in their digests: a cube or a chunk of older code
(without ``snr``) is not taken for an up-to-date one."""


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

    The layout is the module's; a spectrum whose bad-pixel fraction exceeds ``max_bad_fraction`` is
    kept, ``rejected``. ``spectrum_paths`` may be any iterable (a generator saves memory: the paths
    wait in a temporary file, memory holds one chunk of them and each file's rave_obs_id). Files are
    read ``chunk`` at a time by ``processes`` worker processes (1 = serial) and each finished chunk
    is saved in ``<out_path>.parts/``; a rerun after an interruption skips the chunks whose files
    are unchanged (path, size, modification time). The cube is then streamed chunk by chunk into a
    temporary file renamed to ``out_path`` and the parts folder is removed. A bad file raises
    ValueError naming it, and nothing is written at ``out_path``. An existing cube made from the same
    files (path, size, modification time) and settings is kept as it is; one made from others
    (or by older code) is replaced only with ``overwrite=True``. Returns ``out_path``.
    """
    out_path = Path(out_path)
    grid_spec, grid = grid, _grid_array(grid)
    step = _linear_step(COMMON_GRID if grid_spec is None else grid_spec, grid)
    for name, value in (("chunk", chunk), ("processes", processes)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    if not 0 <= max_bad_fraction <= 1:
        raise ValueError(f"max_bad_fraction must lie in [0, 1], got {max_bad_fraction!r}")
    seed = grid.tobytes() + repr((edge_tolerance, LAYOUT)).encode()  # what a chunk's part is made from
    with tempfile.TemporaryFile() as spill:
        n, sources, digests = list_files(spectrum_paths, chunk, seed, seed + repr(max_bad_fraction).encode(), spill)
        if not n:
            raise ValueError(f"{out_path}: no spectrum files given")
        if out_path.exists():
            try:
                existing = fits.getheader(out_path).get("SOURCES")
            except OSError:  # not a FITS file
                existing = None
            if existing == sources:
                return out_path  # up to date: made from these very files and settings
            if not overwrite:
                raise FileExistsError(f"{out_path} exists and was made from other files or settings (or by older "
                                      f"code); pass overwrite=True to replace it")
        ids = spectrum_ids(spill, len(digests), out_path)
        parts_dir = Path(f"{out_path}.parts")
        parts_dir.mkdir(parents=True, exist_ok=True)
        part_files = [parts_dir / f"chunk_{i:05d}_{d}.npz" for i, d in enumerate(digests)]  # stale parts ignored
        _read_chunks(spilled_chunks(spill, len(digests)), part_files, grid, edge_tolerance, processes,
                     progress, n, chunk)

    n_bad, snr = [], []
    for f in part_files:
        with np.load(f) as part:
            n_bad.append(part["n_bad"]), snr.append(part["snr"])
    n_bad, snr = np.concatenate(n_bad), np.concatenate(snr)
    if n_bad.size != n:
        raise ValueError(f"{parts_dir}: the saved chunks hold {n_bad.size} spectra, expected {n}; "
                         "delete the folder and run again")
    header = cube_header(grid, step, n, max_bad_fraction, edge_tolerance, sources)

    def blocks(ext):
        for f in part_files:
            with np.load(f) as part:
                yield part[ext.lower()]

    write_spectra_cube(out_path, header, blocks, ids, n_bad, max_bad_fraction, snr)
    shutil.rmtree(parts_dir)
    return out_path


def _read_chunks(chunks, part_files, grid, edge_tolerance, processes, progress, n, chunk):
    """Read and resample each chunk of paths (``chunks``) whose part file is missing; save it there."""
    todo = [i for i, f in enumerate(part_files) if not f.is_file()]
    bar = tqdm(total=n, initial=n - sum(min(chunk, n - i * chunk) for i in todo),
               desc="spectra cube", unit="spec", disable=not progress)
    pool = None
    try:
        if processes > 1 and todo:
            pool = multiprocessing.get_context("fork").Pool(processes, _init_worker, (grid, edge_tolerance))
        else:
            _init_worker(grid, edge_tolerance)
        for i, paths in enumerate(chunks):
            if part_files[i].is_file():
                continue
            members = paths.tolist()
            flux = np.empty((len(members), grid.size), np.float32)
            error = np.empty_like(flux)
            n_bad = np.empty(len(members), np.int32)
            snr = np.empty(len(members), np.float32)
            results = (pool.imap(_read_one, members, chunksize=max(1, min(64, len(members) // (4 * processes))))
                       if pool is not None else map(_read_one, members))
            for k, row in enumerate(results):
                flux[k], error[k], n_bad[k], snr[k] = row
                bar.update(1)
            with atomic_path(part_files[i]) as tmp:
                np.savez(tmp, flux=flux, error=error, n_bad=n_bad, snr=snr)
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()


def write_spectra_cube(out_path, header, blocks, ids, n_bad, max_bad_fraction=0.2, snr=None):
    """Stream a spectra cube to ``out_path`` (atomically) without holding it in memory.

    ``header``: the primary header with the grid (CRVAL1, CDELT1, NPIX …, see ``cube_header``);
    ``blocks(ext)``: for ext "FLUX" then "ERROR", an iterable of (rows, NPIX) arrays that together
    hold ``len(ids)`` rows; ``ids`` the rave_obs_id, ``n_bad`` the bad pixels and ``snr`` (None:
    no such column) the ``spectrum_snr`` of every row.
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
                       "rejected": n_bad / npix > max_bad_fraction}, copy=False)
        if snr is not None:
            table["snr"] = np.asarray(snr, np.float32)
        with open(tmp, "ab") as handle:  # by blocks: astropy would convert the whole table at once
            append_table(handle, Rows(table, "IDS"))
    return Path(out_path)


def read_spectra_cube(path, grid=None, rows=None, as_stored=False):
    """Read a cube written by ``build_spectra_cube``.

    Returns wave (Å), flux and error (n, npix) float32 (error inf = no information) and the IDS
    Table (``read_cube_table``). Checks that the header grid (CRVAL1, CDELT1, NPIX) agrees with the
    data and, if ``grid`` is given, with that grid. ``rows`` (indices into the cube, or a slice)
    reads only those spectra (memory-mapped), in that order. ``as_stored``: flux and error as the
    file holds them (big-endian; for a slice the read-only memory map itself, nothing read yet),
    not native copies (``fastcnn.spectra_input`` reads them so).
    """
    path = _existing(path)
    with fits.open(path) as hdul:
        names = [h.name for h in hdul]
        missing = [e for e in ("FLUX", "ERROR", "IDS") if e not in names]
        if missing:
            raise ValueError(f"{path}: not a spectra cube, no {missing} extension(s) (found {names})")
        wave = _header_wave(hdul[0].header, path)
        npix, pick = wave.size, _pick(rows)
        flux, error = (hdul[ext].data[pick] if as_stored else np.asarray(hdul[ext].data[pick], np.float32)
                       for ext in ("FLUX", "ERROR"))
        ids = _ids_table(hdul["IDS"].data[pick])
    if flux.ndim != 2 or flux.shape[1] != npix or error.shape != flux.shape or len(ids) != flux.shape[0]:
        raise ValueError(f"{path}: FLUX {flux.shape}, ERROR {error.shape} and IDS ({len(ids)} rows) do not "
                         f"agree with NPIX = {npix}")
    if grid is not None:
        expected = _grid_array(grid)
        if expected.shape != wave.shape or not np.allclose(expected, wave, rtol=0, atol=1e-6):
            raise ValueError(f"{path}: the cube's grid ({wave[0]:.2f}–{wave[-1]:.2f} Å, {npix} px) is not the "
                             f"expected one ({expected[0]:.2f}–{expected[-1]:.2f} Å, {expected.size} px)")
    return wave, flux, error, ids


def _existing(path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"spectra cube not found: {where(path)}")
    return path


def _pick(rows):
    """Rows of the cube to read: all (None), a slice, or indices."""
    return slice(None) if rows is None else rows if isinstance(rows, slice) else np.asarray(rows, int)


def _ids_table(records):
    """IDS rows (FITS records) as a Table of native numpy columns."""
    ids = Table(records)
    ids["rave_obs_id"] = strings(ids["rave_obs_id"])
    ids["n_bad_pixels"] = native(ids["n_bad_pixels"])
    ids["rejected"] = np.asarray(ids["rejected"], bool)
    if "snr" in ids.colnames:
        ids["snr"] = native(ids["snr"])
    return ids


def read_cube_table(path, rows=None):
    """The IDS table of a spectra cube, in cube order, or only ``rows`` (indices or a slice, in
    that order), without reading any spectrum: rave_obs_id (str), n_bad_pixels, rejected and (a
    cube of this code) snr."""
    path = _existing(path)
    with fits.open(path) as hdul:
        if "IDS" not in [h.name for h in hdul]:
            raise ValueError(f"{path}: not a spectra cube, no IDS extension")
        return _ids_table(hdul["IDS"].data[_pick(rows)])


def _header_wave(header, path):
    """Wavelengths (Å, air) of a cube's grid from its primary header (NPIX and the linear WCS that
    ``rave.spectrum_wavelengths`` reads)."""
    keys = [k for k in ("CRVAL1", "CDELT1", "NPIX") if k not in header]
    if keys:
        raise ValueError(f"{path}: the primary header lacks the grid keyword(s) {keys}")
    return spectrum_wavelengths(header, int(header["NPIX"]), path)


def read_spectra_cube_grid(path):
    """Wavelengths (Å) of a spectra cube's grid, from its primary header (no flux read)."""
    path = _existing(path)
    return _header_wave(fits.getheader(path), path)


def read_cube_ids(path):
    """The rave_obs_id of every spectrum of a spectra cube, in cube order (no flux read)."""
    return np.asarray(read_cube_table(path)["rave_obs_id"])
