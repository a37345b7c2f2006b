"""The spectrum writer: ``rave.write_rave_spectrum`` assembles each file from cached headers and
must write exactly the bytes of ``write_rave_spectrum_with_astropy`` (``HDUList.writeto``)."""

import io

import numpy as np
import pytest
from astropy.io import fits

from ravecnn_utils import rave

RNG = np.random.default_rng(11)
EDGES = np.array([np.nan, np.inf, -np.inf, 0.0, -0.0, 1e39, -1e39, 1e-46, 3.4e38, np.finfo(np.float32).tiny])

CASES = {
    "typical": (RNG.normal(1, 0.1, 990), RNG.uniform(0, 0.1, 990), 8409.5, 0.39, "20050101_0000m05_001", True),
    "edge values, real": (np.r_[EDGES, RNG.normal(size=980)], np.full(990, np.nan), 8409.312345678901234,
                          0.3900117000000001, "20130912_2359p85_150", False),
    "float32 in, sizes differ": (np.ones(10, np.float32), np.zeros(7), 1e-300, -1e300, "20040403_1042m11_024",
                                 np.True_),
    "one block exactly": (np.zeros(720), np.ones(720), 8410, 0.39, "x", 1),
    "long id (CONTINUE cards)": (np.zeros(5), np.ones(5), 8410.0, 0.39, "20050101_0000m05_001" * 5, True),
    "empty spectrum": (np.array([]), np.array([1.0]), 0, 1, "y", 0),
    "numpy scalars": (RNG.normal(1, 0.1, 990).astype(np.float64), RNG.uniform(0, 0.1, 990),
                      np.float64(8409.7), np.float32(0.39), np.str_("20121229_2354m25_110"), np.bool_(False)),
}


@pytest.mark.filterwarnings("ignore:overflow encountered in cast")
@pytest.mark.parametrize("case", CASES)
def test_assembled_file_equals_astropys_bytes(case, tmp_path):
    args = CASES[case]
    fast, reference = tmp_path / "RAVE_a.fits", tmp_path / "RAVE_b.fits"
    rave.write_rave_spectrum(fast, *args)
    rave.write_rave_spectrum_with_astropy(reference, *args)
    assert fast.read_bytes() == reference.read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["RAVE_a.fits", "RAVE_b.fits"]  # no parts left
    with fits.open(fast) as hdul:
        assert hdul[0].header["ROI"] == str(args[4]) and hdul["ERROR"].header["CDELT1"] == float(args[3])


def test_observation_ids_and_flags_each_get_their_own_cards(tmp_path):
    """The cached headers are not shared between files: each file has its own id, flag and axis."""
    flux = np.ones(30)
    for k, (obs_id, simulated) in enumerate([("20050101_0000m05_001", True), ("20130912_2359p85_150", False)]):
        rave.write_rave_spectrum(tmp_path / f"{k}.fits", flux, flux, 8400 + k, 0.39 + k, obs_id, simulated)
    for k, (obs_id, simulated) in enumerate([("20050101_0000m05_001", True), ("20130912_2359p85_150", False)]):
        header = fits.getheader(tmp_path / f"{k}.fits")
        assert (header["ROI"], header["SIMULATE"]) == (obs_id, simulated)
        assert fits.getheader(tmp_path / f"{k}.fits", "SPECTRUM")["CRVAL1"] == 8400 + k


def test_a_value_fits_cannot_hold_writes_nothing(tmp_path):
    """A NaN wavelength is refused by both writers (astropy's Card), and no file is left."""
    for writer in (rave.write_rave_spectrum, rave.write_rave_spectrum_with_astropy):
        with pytest.raises(ValueError):
            writer(tmp_path / "nan.fits", np.ones(5), np.ones(5), np.nan, 0.39, "x")
    assert list(tmp_path.iterdir()) == []


def test_images_of_other_shapes_go_through_astropy(tmp_path):
    flux = np.ones((2, 5))
    rave.write_rave_spectrum(tmp_path / "a.fits", flux, flux, 8410.0, 0.39, "x")
    rave.write_rave_spectrum_with_astropy(tmp_path / "b.fits", flux, flux, 8410.0, 0.39, "x")
    assert (tmp_path / "a.fits").read_bytes() == (tmp_path / "b.fits").read_bytes()


def test_header_templates_find_every_header_past_any_data():
    """``fitsbytes.header_templates`` steps over 2-D image and table data to the next header, and
    a file assembled from its templates equals ``writeto``'s bytes."""
    from astropy.table import Table

    from ravecnn_utils import fitsbytes

    image = np.arange(7 * 130, dtype=">i2").reshape(7, 130)
    table = fits.table_to_hdu(Table({"a": np.arange(1000.0), "b": ["x" * 9] * 1000}))
    hdul = fits.HDUList([fits.PrimaryHDU(image), table, fits.ImageHDU(np.ones(3, np.float32), name="LAST")])
    templates = fitsbytes.header_templates(hdul)
    assert len(templates) == 3 and "XTENSION" in templates[1] and "TFORM2" in templates[1]
    assert templates[2]["EXTNAME"].startswith("EXTNAME = 'LAST    '")
    single = fits.HDUList([fits.PrimaryHDU(image)])
    assembled = fitsbytes.header_bytes(fitsbytes.header_templates(single)[0], {}) + fitsbytes.data_bytes(image, ">i2")
    buffer = io.BytesIO()
    single.writeto(buffer)
    assert assembled == buffer.getvalue()
