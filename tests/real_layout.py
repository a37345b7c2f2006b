"""Fixture files in the REAL releases' layout, made from a simulated survey folder.

The RAVE catalogue is split into the TAP tables a user downloads (``dr6_obsdata`` as CSV,
``dr6_sparv`` as FITS, ``dr6_madera`` as VOTable), the spectra sit in one folder per night as the
RAVE archive serves them (``spectra/<YYYYMMDD>/RAVE_<id>.fits``), and the allStar file is rewritten in the
APOGEE DR16 convention (−9999 for missing values, Gaia DR2 ids in ``GAIA_SOURCE_ID``), so
that the notebooks' ``data_source="real"`` path runs on files of the real schemas.
"""

import os
from pathlib import Path

import numpy as np
from astropy.io import fits
from astropy.table import Table

TAP_TABLES = {
    "dr6_obsdata.csv": ["rave_obs_id", "ra_input", "dec_input", "obsdate", "field", "fibre", "id_2mass"],
    "dr6_sparv.fits": ["rave_obs_id", "hrv_sparv", "hrv_error_sparv", "snr_med_sparv"],
    "dr6_madera.xml": ["rave_obs_id", "teff_cal_madera", "teff_error_madera", "logg_cal_madera",
                       "logg_error_madera", "m_h_cal_madera", "m_h_error_madera"],
}


def write_real_layout(survey_dir, out_dir):
    """Write ``out_dir/rave/{spectra/<night>/, dr6_*.*}`` and ``out_dir/allStar-r12-l33.fits`` (DR16)."""
    survey_dir, out_dir = Path(survey_dir), Path(out_dir)
    rave = out_dir / "rave"
    rave.mkdir(parents=True)
    for spectrum in sorted((survey_dir / "spectra").glob("RAVE_*.fits")):  # the archive: a folder per night
        night = rave / "spectra" / spectrum.name[5:13]
        night.mkdir(parents=True, exist_ok=True)
        os.symlink(spectrum.resolve(), night / spectrum.name)
    catalogue = Table.read(survey_dir / "ravedr6_catalogue.fits")
    for name, columns in TAP_TABLES.items():
        part = catalogue[columns]
        fmt = {".csv": "ascii.csv", ".fits": "fits", ".xml": "votable"}[Path(name).suffix]
        part.write(rave / name, format=fmt)
    with fits.open(survey_dir / "allStar-dr17-synspec_rev1.fits") as hdul:
        table = Table(hdul[1].data)
    table.rename_column("GAIAEDR3_SOURCE_ID", "GAIA_SOURCE_ID")
    for name in table.colnames:
        if table[name].dtype.kind == "f":
            values = np.asarray(table[name])
            table[name] = np.where(np.isfinite(values), values, -9999.0).astype(values.dtype)
    table.write(out_dir / "allStar-r12-l33.fits")
    return {"rave_dir": str(rave), "allstar_path": str(out_dir / "allStar-r12-l33.fits"),
            "rave_catalogue": list(TAP_TABLES)}
