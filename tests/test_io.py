"""RAVE spectrum files (ravecnn_utils.rave) and atomic table writes (ravecnn_utils.files)."""

import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ravecnn_utils import files, rave


def _spectrum(n=987, seed=0):
    rng = np.random.default_rng(seed)
    return 1 - 0.3 * rng.uniform(size=n), rng.uniform(0.005, 0.05, n)


def _leftovers(folder):
    return [p.name for p in folder.iterdir() if ".part" in p.name]


# ------------------------------------------------------------------ spectra
def test_spectrum_filename():
    assert rave.spectrum_filename("20121229_2354m25_110") == "RAVE_20121229_2354m25_110.fits"


def test_spectrum_round_trip(tmp_path):
    flux, err = _spectrum()
    path = tmp_path / rave.spectrum_filename("20121229_2354m25_110")
    rave.write_rave_spectrum(path, flux, err, 8410.0371, 0.39012, "20121229_2354m25_110")
    wave, flux2, err2 = rave.read_rave_spectrum(path)
    assert flux2.shape == err2.shape == wave.shape == (987,)
    np.testing.assert_array_equal(flux2, flux.astype(np.float32))  # stored as float32
    np.testing.assert_array_equal(err2, err.astype(np.float32))
    np.testing.assert_allclose(flux2, flux, rtol=1e-7)
    assert wave[0] == pytest.approx(8410.0371, abs=1e-9)
    assert wave[-1] == pytest.approx(8410.0371 + 986 * 0.39012, abs=1e-9)
    with fits.open(path) as hdul:
        assert hdul[0].header["ROI"] == "20121229_2354m25_110"
        assert hdul[0].header["SIMULATE"] is True
        assert hdul["SPECTRUM"].data.dtype.itemsize == 4
        assert hdul["SPECTRUM"].header["CTYPE1"] == "AWAV"
    assert sorted(p.name for p in tmp_path.iterdir()) == [path.name]


def test_file_renamed_to_another_observation_is_refused(tmp_path):
    """The primary header's ROI (as in the DR6 files) must agree with the file name; a file
    without ROI (an older simulated survey) is read by its name."""
    flux, err = _spectrum(20)
    path = tmp_path / rave.spectrum_filename("20121229_2354m25_110")
    rave.write_rave_spectrum(path, flux, err, 8410.0, 0.39, "20040403_1042m11_024")
    with pytest.raises(ValueError, match=r"RAVE_20121229_2354m25_110\.fits: the file name says .*"
                                         r"'20121229_2354m25_110'.* ROI = '20040403_1042m11_024'"):
        rave.read_rave_spectrum(path)
    with fits.open(path, mode="update") as hdul:
        del hdul[0].header["ROI"]
    assert rave.read_rave_spectrum(path)[1].size == 20


def test_real_flag_is_written(tmp_path):
    flux, err = _spectrum(10)
    path = tmp_path / "s.fits"
    rave.write_rave_spectrum(path, flux, err, 8410, 0.39, "x", simulated=False)
    assert fits.getheader(path)["SIMULATE"] is False


def test_crpix1_is_honoured(tmp_path):
    """λ = CRVAL1 + (i + 1 − CRPIX1)·CDELT1, with i counted from 0."""
    flux, err = _spectrum(50)
    hdus = [fits.PrimaryHDU()]
    for name, data in (("SPECTRUM", flux), ("ERROR", err)):
        hdu = fits.ImageHDU(data.astype(np.float32), name=name)
        hdu.header.update(CRPIX1=11.0, CRVAL1=8500.0, CDELT1=0.5)
        hdus.append(hdu)
    path = tmp_path / "crpix.fits"
    fits.HDUList(hdus).writeto(path)
    wave, _, _ = rave.read_rave_spectrum(path)
    assert wave[10] == pytest.approx(8500.0)
    assert wave[0] == pytest.approx(8495.0)


def test_missing_spectrum_file(tmp_path):
    path = tmp_path / "RAVE_nothing.fits"
    with pytest.raises(FileNotFoundError, match="RAVE_nothing.fits"):
        rave.read_rave_spectrum(path)


def test_spectrum_without_error_extension(tmp_path):
    flux, _ = _spectrum(20)
    hdu = fits.ImageHDU(flux.astype(np.float32), name="SPECTRUM")
    hdu.header.update(CRPIX1=1.0, CRVAL1=8410.0, CDELT1=0.39)
    path = tmp_path / "no_error.fits"
    fits.HDUList([fits.PrimaryHDU(), hdu]).writeto(path)
    with pytest.raises(ValueError, match="no_error.fits") as err:
        rave.read_rave_spectrum(path)
    assert "ERROR" in str(err.value)


def test_spectrum_header_without_cdelt1(tmp_path):
    flux, err = _spectrum(20)
    hdus = [fits.PrimaryHDU()]
    for name, data in (("SPECTRUM", flux), ("ERROR", err)):
        hdu = fits.ImageHDU(data.astype(np.float32), name=name)
        hdu.header.update(CRPIX1=1.0, CRVAL1=8410.0)
        hdus.append(hdu)
    path = tmp_path / "no_cdelt.fits"
    fits.HDUList(hdus).writeto(path)
    with pytest.raises(ValueError, match="CDELT1") as err:
        rave.read_rave_spectrum(path)
    assert "no_cdelt.fits" in str(err.value)


def test_spectrum_with_mismatched_shapes(tmp_path):
    flux, err = _spectrum(20)
    path = tmp_path / "mismatch.fits"
    rave.write_rave_spectrum(path, flux, err[:15], 8410.0, 0.39, "x")
    with pytest.raises(ValueError, match=re.escape("(20,)")) as e:
        rave.read_rave_spectrum(path)
    assert "mismatch.fits" in str(e.value) and "(15,)" in str(e.value)


# ------------------------------------------------------------------ tables
def test_write_table_round_trip_and_refuses_to_overwrite(tmp_path):
    path = tmp_path / "t.fits"
    files.write_table(Table({"a": [1, 2, 3]}), path)
    assert Table.read(path)["a"].tolist() == [1, 2, 3]
    with pytest.raises(FileExistsError, match="t.fits"):
        files.write_table(Table({"a": [4]}), path)
    assert Table.read(path)["a"].tolist() == [1, 2, 3]
    files.write_table(Table({"a": [4]}), path, overwrite=True)
    assert Table.read(path)["a"].tolist() == [4]
    assert _leftovers(tmp_path) == []


def test_write_table_infers_other_formats_from_the_name(tmp_path):
    path = tmp_path / "t.csv"
    files.write_table(Table({"a": [1, 2]}), path)
    assert path.read_text().split() == ["a", "1", "2"]
    assert _leftovers(tmp_path) == []


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    path = tmp_path / "table.fits"
    with pytest.raises(RuntimeError, match="boom"):
        with files.atomic_path(path) as tmp:
            assert tmp.parent == tmp_path and tmp != path
            Table({"a": [1]}).write(tmp, format="fits")
            assert tmp.exists()
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_atomic_path_keeps_the_old_file_on_error(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with files.atomic_path(path) as tmp:
            tmp.write_text("new")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_atomic_path_replaces_on_success(tmp_path):
    path = tmp_path / "keep.txt"
    path.write_text("old")
    with files.atomic_path(path) as tmp:
        tmp.write_text("new")
    assert path.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]
