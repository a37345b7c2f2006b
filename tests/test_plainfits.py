"""The fast reader of plain spectrum files (ravecnn_utils.plainfits, rave.read_rave_spectrum)
against astropy's (rave.read_rave_spectrum_with_astropy): the same arrays, or the same error, on
files it reads itself and on files it hands to astropy."""

import gzip

import numpy as np
import pytest
from astropy.io import fits

from ravecnn_utils import plainfits, rave

OBS = "20121229_2354m25_110"
WCS = dict(CTYPE1="AWAV", CUNIT1="Angstrom", CRPIX1=1.0, CRVAL1=8409.61, CDELT1=0.39012)


def _arrays(n=990, seed=0):
    rng = np.random.default_rng(seed)
    return 1 - 0.4 * rng.uniform(size=n) ** 4, rng.uniform(0.005, 0.05, n)


def _images(flux, err, dtype=np.float32, wcs=WCS, names=("SPECTRUM", "ERROR")):
    hdus = []
    for name, data in zip(names, (flux, err)):
        hdu = fits.ImageHDU(np.asarray(data, dtype), name=name)
        for key, value in wcs.items():
            if value is not None:
                hdu.header[key] = value
        hdus.append(hdu)
    return hdus


def _primary(**cards):
    primary = fits.PrimaryHDU()
    primary.header["ROI"] = OBS
    primary.header.update(cards)
    return primary


def _write(tmp_path, hdus, name=rave.spectrum_filename(OBS)):
    path = tmp_path / name
    fits.HDUList(hdus).writeto(path)
    return path


def _outcome(reader, path):
    try:
        return reader(path)
    except Exception as err:  # noqa: BLE001 - the error itself is compared
        return type(err), str(err)


def _same_both_ways(path):
    """Both readers give the same arrays (float64, NaN equal) or the same error; returns the first's."""
    fast, reference = _outcome(rave.read_rave_spectrum, path), _outcome(rave.read_rave_spectrum_with_astropy, path)
    if isinstance(reference[0], type):
        assert fast == reference
    else:
        assert not isinstance(fast[0], type), fast
        for a, b in zip(fast, reference):
            assert a.dtype == b.dtype == np.float64
            np.testing.assert_array_equal(a, b)
    return fast


def _is_plain(path):
    return plainfits.read_plain_images(path, ("SPECTRUM", "ERROR"), ("ROI",) + rave.WCS_KEYS) is not None


# ------------------------------------------------------------------ files the fast path reads
def _as_written(tmp_path):
    flux, err = _arrays()
    path = tmp_path / rave.spectrum_filename(OBS)
    rave.write_rave_spectrum(path, flux, err, 8409.61, 0.39012, OBS)
    return path


def _float64_with_nan(tmp_path):
    flux, err = _arrays()
    flux[[3, 500]] = np.nan
    err[7] = np.inf
    return _write(tmp_path, [_primary()] + _images(flux, err, np.float64))


def _no_unit_crpix5(tmp_path):
    return _write(tmp_path, [_primary()] + _images(*_arrays(), wcs=dict(WCS, CTYPE1=None, CUNIT1=None, CRPIX1=5.0)))


def _vacuum_nm(tmp_path):
    return _write(tmp_path, [_primary()] + _images(*_arrays(), wcs=dict(WCS, CTYPE1="WAVE", CUNIT1="nm",
                                                                          CRVAL1=841.2, CDELT1=0.039)))


def _more_hdus_and_long_headers(tmp_path):
    """Primary data, 60 HISTORY cards (a header of two blocks), ERROR before SPECTRUM, and a table and
    a scaled integer image that are not read."""
    primary = fits.PrimaryHDU(np.arange(12, dtype=np.int16).reshape(3, 4))
    primary.header["ROI"] = OBS
    for i in range(60):
        primary.header["HISTORY"] = f"step {i}"
    table = fits.BinTableHDU.from_columns([fits.Column("a", "E", array=np.arange(5.0))], name="EXTRA")
    mask = fits.ImageHDU(np.arange(990, dtype=np.uint16), name="MASK")  # written with BZERO = 32768
    spectrum, error = _images(*_arrays())
    return _write(tmp_path, [primary, table, error, mask, spectrum])


def _renamed(tmp_path):
    """Plain, but its ROI names another observation: the shared tail refuses it."""
    return _write(tmp_path, [_primary(ROI="20040403_1042m11_024")] + _images(*_arrays()))


def _velocity_axis(tmp_path):
    return _write(tmp_path, [_primary()] + _images(*_arrays(), wcs=dict(WCS, CTYPE1="VRAD")))


def _no_cdelt1(tmp_path):
    return _write(tmp_path, [_primary()] + _images(*_arrays(), wcs=dict(WCS, CDELT1=None)))


def _shapes_differ(tmp_path):
    flux, err = _arrays()
    return _write(tmp_path, [_primary()] + _images(flux, err[:900]))


def _empty_extension(tmp_path):
    """An image extension without data (NAXIS = 0: no data bytes, not |BITPIX|/8) before SPECTRUM."""
    return _write(tmp_path, [_primary(), fits.ImageHDU(name="EMPTY")] + _images(*_arrays()))


PLAIN = [_as_written, _float64_with_nan, _no_unit_crpix5, _vacuum_nm, _more_hdus_and_long_headers, _renamed,
         _velocity_axis, _no_cdelt1, _shapes_differ, _empty_extension]


@pytest.mark.parametrize("make", PLAIN, ids=[f.__name__.strip("_") for f in PLAIN])
def test_plain_files_are_read_fast_and_as_astropy_reads_them(tmp_path, make):
    path = make(tmp_path)
    assert _is_plain(path)
    _same_both_ways(path)


def _in(tmp_path, name):
    (tmp_path / name).mkdir()
    return tmp_path / name


def test_plain_values_and_errors(tmp_path):
    """The comparison above can fail: the fast path's results are the right ones."""
    wave, flux, _ = _same_both_ways(_float64_with_nan(_in(tmp_path, "nan")))
    assert np.isnan(flux[[3, 500]]).all() and wave[0] == pytest.approx(8409.61)
    wave, _, _ = _same_both_ways(_no_unit_crpix5(_in(tmp_path, "crpix")))
    assert wave[4] == pytest.approx(8409.61)
    kind, message = _same_both_ways(_renamed(_in(tmp_path, "renamed")))
    assert kind is ValueError and "ROI = '20040403_1042m11_024'" in message


# ------------------------------------------------------------------ files the fast path hands to astropy
def _scaled(tmp_path):
    spectrum, error = _images(*_arrays())
    spectrum.scale("int16", bscale=2e-5, bzero=0.5)
    return _write(tmp_path, [_primary(), spectrum, error])


def _scaled_floats(tmp_path):
    """Float images with BSCALE and BZERO: astropy applies them (flux · 2 + 0.5)."""
    path = _write(tmp_path, [_primary()] + _images(*_arrays()))
    with fits.open(path, mode="update", do_not_scale_image_data=True) as hdul:
        hdul["SPECTRUM"].header.update(BSCALE=2.0, BZERO=0.5)
    return path


def _compressed(tmp_path):
    flux, err = _arrays()
    hdus = [fits.CompImageHDU(np.asarray(d, np.float32), name=n, compression_type="GZIP_1", quantize_level=0)
            for n, d in (("SPECTRUM", flux), ("ERROR", err))]
    for hdu in hdus:
        hdu.header.update(WCS)
    return _write(tmp_path, [_primary()] + hdus)


def _truncated(tmp_path):
    path = _as_written(tmp_path)
    path.write_bytes(path.read_bytes()[:-1000])
    return path


def _continue_card(tmp_path):
    return _write(tmp_path, [_primary(OBJECT="a long name " * 10)] + _images(*_arrays()))


def _spectrum_twice(tmp_path):
    flux, err = _arrays()
    return _write(tmp_path, [_primary()] + _images(flux, err) + _images(err, flux))


def _random_groups(tmp_path):
    groups = fits.GroupData(np.zeros((2, 1, 3), np.float32), parnames=["p"], pardata=[np.zeros(2)], bitpix=-32)
    primary = fits.GroupsHDU(groups)
    primary.header["ROI"] = OBS
    return _write(tmp_path, [primary] + _images(*_arrays()))


def _gzipped(tmp_path):
    path = _as_written(tmp_path)
    gz = path.with_name(path.name + ".gz")
    gz.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return gz


def _blank_in_a_float_image(tmp_path):
    spectrum, error = _images(*_arrays())
    spectrum.header["BLANK"] = -999
    with pytest.warns(fits.verify.VerifyWarning, match="BLANK"):  # astropy warns as it writes it, too
        return _write(tmp_path, [_primary(), spectrum, error])


def _lower_case_name(tmp_path):
    spectrum, error = _images(*_arrays())
    spectrum.header["EXTNAME"] = "spectrum"
    return _write(tmp_path, [_primary(), spectrum, error])


def _no_error_extension(tmp_path):
    return _write(tmp_path, [_primary(), _images(*_arrays())[0]])


def _trailing_bytes(tmp_path):
    path = _as_written(tmp_path)
    path.write_bytes(path.read_bytes() + b"\0" * 2880)
    return path


def _not_fits(tmp_path):
    path = tmp_path / rave.spectrum_filename(OBS)
    path.write_text("SIMPLE  = nonsense")
    return path


OTHER = [_scaled, _scaled_floats, _compressed, _truncated, _continue_card, _spectrum_twice, _random_groups, _gzipped,
         _blank_in_a_float_image, _lower_case_name, _no_error_extension, _trailing_bytes, _not_fits]


@pytest.mark.parametrize("make", OTHER, ids=[f.__name__.strip("_") for f in OTHER])
def test_other_files_go_to_astropy(tmp_path, make):
    path = make(tmp_path)
    assert not _is_plain(path)
    _same_both_ways(path)


def test_what_astropy_makes_of_the_others(tmp_path):
    """The comparison above can fail: astropy reads the scaled, compressed, gzipped and doubled
    files, and refuses the truncated one, naming the fault."""
    flux, _ = _arrays()
    for make in (_scaled, _compressed, _gzipped, _spectrum_twice):
        _, read, _ = _same_both_ways(make(_in(tmp_path, make.__name__)))
        np.testing.assert_allclose(read, flux.astype(np.float32), atol=3e-5)
    _, read, _ = _same_both_ways(_scaled_floats(_in(tmp_path, "scaled_floats")))
    np.testing.assert_allclose(read, flux.astype(np.float32) * 2 + 0.5, rtol=1e-6)
    kind, message = _same_both_ways(_truncated(_in(tmp_path, "truncated")))
    assert kind is ValueError and "truncated or corrupt FITS file" in message


def test_missing_file_is_named_by_both(tmp_path):
    path = tmp_path / "RAVE_none.fits"
    assert _outcome(rave.read_rave_spectrum, path) == _outcome(rave.read_rave_spectrum_with_astropy, path)
    with pytest.raises(FileNotFoundError, match="RAVE_none.fits"):
        rave.read_rave_spectrum(path)
