"""Readers and writers for RAVE DR6- and APOGEE-format files (simulated or real).

RAVE DR6 spectra come one FITS file per observation, ``RAVE_<rave_obs_id>.fits``,
with image extensions ``SPECTRUM`` (continuum-normalised flux) and ``ERROR``
(relative error, σ/flux) on a linear wavelength axis: λ = CRVAL1 + (i + 1 − CRPIX1)·CDELT1 (Å, air).
Every writer here is atomic: it writes a temporary file, then renames it.
"""

import os
from contextlib import contextmanager
from pathlib import Path

import numpy as np
from astropy.io import fits

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
