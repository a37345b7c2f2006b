"""Readers of the real survey formats (ravecnn_utils.rave, .apogee, .cube): small fixture files written in the
schemas of RAVE DR6 (spectrum files, TAP catalogue tables) and APOGEE DR16 / DR17 allStar,
read back with the package's readers; the common-grid resampling and the spectra cube."""

import re

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ravecnn_utils import apogee, cube, rave
from ravecnn_utils.simulation import catalogues, simulate
from ravecnn_utils.apogee import APOGEE_COLUMNS
from ravecnn_utils.survey import FILES

GRID = cube.common_wavelengths()


def _leftovers(folder):
    """Half-written files (the resumable ``<out>.parts`` folder is not one)."""
    return sorted(p.name for p in folder.iterdir() if ".part-" in p.name)


def _write_spectrum(path, flux, rel_error, crval1, cdelt1, crpix1=1.0, extensions=("SPECTRUM", "ERROR")):
    """A RAVE DR6 spectrum file written with astropy directly (linear WCS per extension)."""
    hdus = [fits.PrimaryHDU()]
    for name, data in zip(extensions, (flux, rel_error)):
        hdu = fits.ImageHDU(np.asarray(data, np.float32), name=name)
        hdu.header.update(CTYPE1="AWAV", CUNIT1="Angstrom", CRPIX1=crpix1, CRVAL1=crval1, CDELT1=cdelt1)
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


def _survey_files(folder, n=30, seed=1):
    """``n`` RAVE files whose WCS (CRVAL1, CDELT1, CRPIX1, length) differ from file to file."""
    rng = np.random.default_rng(seed)
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(n):
        npix = int(rng.integers(990, 1000))
        flux = 1 - 0.4 * rng.uniform(size=npix) ** 4
        rel = rng.uniform(0.01, 0.05, npix)
        if i % 5 == 2:
            flux[rng.integers(0, npix, 3)] = np.nan
        path = folder / rave.spectrum_filename(f"2005{i:04d}_0012m34_{i % 150 + 1:03d}")
        crpix1 = 1.0 if i % 3 else 5.0
        crval1 = 8409.3 + rng.uniform(0, 0.5) + (crpix1 - 1) * 0.39
        _write_spectrum(path, flux, rel, crval1, 0.39 * (1 + rng.normal(0, 3e-4)), crpix1)
        paths.append(path)
    return paths


# ================================================================== resampling
def test_common_grid():
    assert GRID.size == 987
    assert GRID[0] == 8410.0 and GRID[-1] == pytest.approx(8794.54)
    np.testing.assert_allclose(np.diff(GRID), 0.39)
    assert cube.common_wavelengths(dict(start=0.0, stop=10.0, step=1.0)).tolist() == list(range(10))


def test_resample_reproduces_a_linear_flux():
    wave = 8409.3 + 0.3871 * np.arange(1000)
    flux, err, n_bad = cube.resample_spectrum(wave, 0.5 + 1e-4 * (wave - 8400), np.full(1000, 0.01))
    np.testing.assert_allclose(flux, 0.5 + 1e-4 * (GRID - 8400), rtol=0, atol=1e-12)
    assert n_bad == 0 and np.all(np.isfinite(err))


def test_resample_error_propagation():
    """Constant σ: sqrt(0.5)·σ half-way between two input pixels (w = 0.5), σ on an input pixel."""
    rel = np.full(1000, 0.02)
    half = 8409.805 + 0.39 * np.arange(1000)  # every grid pixel half-way between two input pixels
    _, err, _ = cube.resample_spectrum(half, np.full(1000, 2.0), rel)
    np.testing.assert_allclose(err, 0.04 * np.sqrt(0.5), rtol=1e-9)
    same = 8409.61 + 0.39 * np.arange(1000)  # grid pixels on input pixels (w = 0)
    flux, err, _ = cube.resample_spectrum(same, np.full(1000, 2.0), rel)
    np.testing.assert_allclose(err, 0.04, rtol=1e-9)
    np.testing.assert_allclose(flux, 2.0)


def test_resample_coverage_error_names_the_spectrum():
    wave = np.linspace(8415.0, 8790.0, 962)
    with pytest.raises(ValueError, match=re.escape("RAVE_x.fits covers 8415.00–8790.00 Å, the common grid "
                                                   "needs 8410.00–8794.54 Å")):
        cube.resample_spectrum(wave, np.ones(962), np.full(962, 0.01), source="RAVE_x.fits")
    with pytest.raises(ValueError, match="spectrum covers"):
        cube.resample_spectrum(wave, np.ones(962), np.full(962, 0.01), edge_tolerance=4.0)
    cube.resample_spectrum(wave, np.ones(962), np.full(962, 0.01), edge_tolerance=5.0)  # within tolerance


def test_resample_edge_shortfall_within_tolerance_is_no_information():
    wave = 8410.3 + 0.39 * np.arange(987)  # misses the first grid pixel (0.3 Å short)
    flux, err, n_bad = cube.resample_spectrum(wave, np.full(987, 0.9), np.full(987, 0.01))
    assert n_bad == 1 and flux[0] == 1.0 and err[0] == np.inf
    assert np.all(np.isfinite(err[1:])) and np.allclose(flux[1:], 0.9)
    with pytest.raises(ValueError, match="covers"):
        cube.resample_spectrum(wave, np.full(987, 0.9), np.full(987, 0.01), edge_tolerance=0.0)


def test_resample_bad_pixels_carry_no_information():
    wave = 8409.805 + 0.39 * np.arange(1000)  # grid pixel k lies between input pixels k and k + 1
    flux, rel = np.full(1000, 0.8), np.full(1000, 0.01)
    flux[100], rel[300] = np.nan, np.inf
    flux[500], rel[500] = 0.0, 10.0  # the simulated survey's dead pixel: σ = 0, no information
    f, e, n_bad = cube.resample_spectrum(wave, flux, rel)
    bad = np.flatnonzero(~np.isfinite(e))
    assert bad.tolist() == [99, 100, 299, 300, 499, 500] and n_bad == 6
    assert np.all(f[bad] == 1.0)
    assert np.allclose(f[np.isfinite(e)], 0.8)


def test_resample_rejects_inconsistent_input():
    with pytest.raises(ValueError, match="same length"):
        cube.resample_spectrum(np.arange(10.0), np.ones(9), np.ones(10))
    with pytest.raises(ValueError, match="strictly increasing"):
        cube.resample_spectrum(np.arange(9000.0, 8000.0, -1), np.ones(1000), np.ones(1000), source="f.fits")


# ================================================================== RAVE catalogue (TAP tables)
OBS_IDS = ["20040403_1042m11_024", "20040403_1042m11_025", "20061012_0305m45_101", "20121229_2354m25_110"]


def _catalogue_files(folder):
    """dr6_obsdata (CSV), dr6_sparv (FITS, upper-case names, padded ids), dr6_madera (VOTable)."""
    obsdata = Table({"rave_obs_id": OBS_IDS, "ra_input": [160.5, 160.6, 46.2, 358.9],
                     "dec_input": [-11.2, -11.3, -45.1, -25.0],
                     "obsdate": ["20040403", "20040403", "20061012", "20121229"],
                     "field": ["1042m11", "1042m11", "0305m45", "2354m25"], "fibre": [24, 25, 101, 110],
                     "id_2mass": ["10420012-1112000", "", "03044800-4506000", "23555555-2500000"]})
    obsdata.write(folder / "dr6_obsdata.csv")
    sparv = Table({"RAVE_OBS_ID": [f"{i}   " for i in OBS_IDS[::-1]], "HRV_SPARV": [10.0, -20.0, 5.0, 30.0],
                   "EHRV_SPARV": [1.0, 2.0, 1.5, 0.9], "SNR_MED_SPARV": [55.0, 12.0, 80.0, 40.0]})
    sparv.write(folder / "dr6_sparv.fits")
    madera = Table({"rave_obs_id": [OBS_IDS[0], OBS_IDS[2], OBS_IDS[3], "20130101_0000m00_001"],
                    "teff_cal_madera": [4800.0, 5900.0, 4500.0, 6000.0], "logg_cal_madera": [2.4, 4.2, 1.9, 4.0],
                    "m_h_cal_madera": [-0.1, 0.05, -0.8, 0.0]})
    madera.write(folder / "dr6_madera.vot", format="votable")
    return [folder / "dr6_obsdata.csv", folder / "dr6_sparv.fits", folder / "dr6_madera.vot"]


def test_read_rave_catalogue_joins_the_tap_tables(tmp_path):
    cat = rave.read_rave_catalogue(_catalogue_files(tmp_path))
    assert cat["rave_obs_id"].tolist() == OBS_IDS  # the first file's rows, in its order
    assert cat["rave_obs_id"].dtype.kind == "U"
    for col in rave.RAVE_REQUIRED + ("obsdate", "field", "fibre", "id_2mass", "hrv_sparv", "teff_cal_madera"):
        assert col in cat.colnames
    assert cat["snr_med_sparv"].tolist() == [40.0, 80.0, 12.0, 55.0]  # matched by id, not by row
    assert cat["hrv_sparv"][0] == 30.0
    assert cat["teff_cal_madera"].mask.tolist() == [False, True, False, False]  # no madera row: masked
    assert cat["teff_cal_madera"][2] == 5900.0
    assert cat["ra_input"].unit == "deg"
    assert [s.rsplit("/", 1)[-1] for s in cat.meta["source"]] == ["dr6_obsdata.csv", "dr6_sparv.fits", "dr6_madera.vot"]


def test_read_rave_catalogue_only_some_columns(tmp_path, smoke_survey):
    """``columns`` keeps those and the required ones, with the values of a whole read: from the
    TAP tables (CSV, upper-case FITS, VOTable) and from the simulated catalogue (a plain FITS
    table: only those columns are read, masked as astropy masks them)."""
    files = _catalogue_files(tmp_path)
    whole, some = rave.read_rave_catalogue(files), rave.read_rave_catalogue(files, columns=["HRV_sparv", "fibre"])
    assert set(some.colnames) == {*rave.RAVE_REQUIRED, "hrv_sparv", "fibre"}
    for path in (files, smoke_survey / FILES["catalogue"]):
        whole = rave.read_rave_catalogue(path)
        some = rave.read_rave_catalogue(path, columns=["fibre", "id_2mass"])
        assert set(some.colnames) == {*rave.RAVE_REQUIRED, "fibre", "id_2mass"}
        for name in some.colnames:
            assert type(some[name]) is type(whole[name]) and some[name].unit == whole[name].unit, name
            assert some[name].tolist() == whole[name].tolist(), name
    assert np.ma.getmaskarray(some["id_2mass"]).any()  # the simulated catalogue's empty 2MASS ids


def test_read_rave_catalogue_single_file_and_formats(tmp_path):
    files = _catalogue_files(tmp_path)
    one = Table.read(files[0])
    one["snr_med_sparv"] = [1.0, 2.0, 3.0, 4.0]
    for name, fmt in (("all.fits", "fits"), ("all.vot", "votable"), ("all.csv", "ascii.csv")):
        one.write(tmp_path / name, format=fmt)
        cat = rave.read_rave_catalogue(str(tmp_path / name))
        assert cat["rave_obs_id"].tolist() == OBS_IDS and cat["snr_med_sparv"].tolist() == [1, 2, 3, 4]


def test_read_rave_catalogue_missing_required_column(tmp_path):
    files = _catalogue_files(tmp_path)
    with pytest.raises(ValueError, match="snr_med_sparv") as err:
        rave.read_rave_catalogue([files[0], files[2]])
    assert "dr6_obsdata.csv" in str(err.value) and "dr6_madera.vot" in str(err.value)


def test_read_rave_catalogue_without_rave_obs_id(tmp_path):
    files = _catalogue_files(tmp_path)
    Table({"obs": OBS_IDS, "x": [1, 2, 3, 4]}).write(tmp_path / "xmatch.csv")
    with pytest.raises(ValueError, match=r"xmatch\.csv: no rave_obs_id column"):
        rave.read_rave_catalogue(files + [tmp_path / "xmatch.csv"])


def test_read_rave_catalogue_duplicate_rave_obs_id(tmp_path):
    files = _catalogue_files(tmp_path)
    Table({"rave_obs_id": [OBS_IDS[0], OBS_IDS[0] + " "], "parallax": [1.0, 1.1]}).write(tmp_path / "gaia.fits")
    with pytest.raises(ValueError, match=r"gaia\.fits: duplicate rave_obs_id .*" + OBS_IDS[0]):
        rave.read_rave_catalogue(files + [tmp_path / "gaia.fits"])


def test_read_rave_catalogue_unreadable_or_absent_file(tmp_path):
    (tmp_path / "junk.fits").write_text("not a table")
    with pytest.raises(ValueError, match=r"junk\.fits: cannot read"):
        rave.read_rave_catalogue(tmp_path / "junk.fits")
    with pytest.raises(FileNotFoundError, match=r"absent\.csv"):
        rave.read_rave_catalogue([tmp_path / "absent.csv"])


# ================================================================== APOGEE allStar
def _allstar(release, n=6, seed=3):
    """An allStar table of ``release`` (DR16: −9999 and GAIA_SOURCE_ID; DR17: NaN and
    GAIAEDR3_SOURCE_ID); the same stars and the same missing labels in both."""
    rng = np.random.default_rng(seed)
    t = Table({"APOGEE_ID": [f"2M1042{i:04d}-1112000 " for i in range(n)],
               "RA": rng.uniform(0, 360, n), "DEC": rng.uniform(-90, 30, n),
               "SNR": rng.uniform(50, 500, n).astype(np.float32),
               "STARFLAG": np.zeros(n, np.int64), "ASPCAPFLAG": np.zeros(n, np.int64),
               "EXTRATARG": np.zeros(n, np.int32)})
    code = -9999.0 if release == "dr16" else np.nan
    for k, col in enumerate(APOGEE_COLUMNS.values()):
        value, err = rng.normal(0, 1, n).astype(np.float32), rng.uniform(0.01, 0.1, n).astype(np.float32)
        value[k % n], err[k % n] = code, code
        if col == "AL_FE":
            value[(k + 1) % n] = code  # a missing value whose error is present
        t[col], t[f"{col}_ERR"], t[f"{col}_FLAG"] = value, err, np.zeros(n, np.int32)
    t["GAIA_SOURCE_ID" if release == "dr16" else "GAIAEDR3_SOURCE_ID"] = np.arange(n, dtype=np.int64) + 10**18
    return t


def _write_allstar(table, path):
    table.write(path)  # primary HDU + the table in HDU 1, as the real allStar files
    return path


def test_read_allstar_dr16_and_dr17_agree(tmp_path):
    dr16 = apogee.read_allstar(_write_allstar(_allstar("dr16"), tmp_path / "allStar-r12-l33.fits"))
    dr17 = apogee.read_allstar(_write_allstar(_allstar("dr17"), tmp_path / "allStar-dr17-synspec_rev1.fits"))
    assert dr16.meta["release"] == "dr16" and dr17.meta["release"] == "dr17"
    assert dr17.meta["source"].endswith("allStar-dr17-synspec_rev1.fits")
    assert dr16["APOGEE_ID"].tolist() == [f"2M1042{i:04d}-1112000" for i in range(6)]
    assert dr16["RA"].unit == "deg" and dr17["DEC"].unit == "deg" and dr16["TEFF"].unit == "K"
    for col in apogee.ALLSTAR_LABEL_COLUMNS:
        a, b = dr16[col], dr17[col]
        assert a.dtype == b.dtype == np.float64 and hasattr(a, "mask")
        assert a.mask.tolist() == b.mask.tolist() and a.mask.sum() >= 1, col
        np.testing.assert_array_equal(a.filled(np.nan), b.filled(np.nan))
        assert np.all(np.isnan(np.asarray(a)[a.mask]))  # not −9999 under the mask
    assert dr16["AL_FE"].mask.sum() == 2 and dr16["AL_FE_ERR"].mask.sum() == 1
    assert "GAIA_SOURCE_ID" in dr16.colnames and "GAIAEDR3_SOURCE_ID" in dr17.colnames
    assert "TEFF_FLAG" in dr16.colnames


def test_allstar_release():
    assert apogee.allstar_release(["APOGEE_ID", "GAIA_SOURCE_ID"], "a.fits") == "dr16"
    assert apogee.allstar_release(["apogee_id", "gaiaedr3_source_id"], "a.fits") == "dr17"
    with pytest.raises(ValueError, match=r"a\.fits: ambiguous"):
        apogee.allstar_release(["GAIA_SOURCE_ID", "GAIAEDR3_SOURCE_ID"], "a.fits")


def test_read_allstar_unknown_release(tmp_path):
    table = _allstar("dr17")
    table.remove_column("GAIAEDR3_SOURCE_ID")
    path = _write_allstar(table, tmp_path / "allStar-dr15.fits")
    with pytest.raises(ValueError, match=r"allStar-dr15\.fits: unknown allStar release"):
        apogee.read_allstar(path)


def test_read_allstar_missing_column(tmp_path):
    table = _allstar("dr16")
    table.remove_columns(["NI_FE_ERR", "EXTRATARG"])
    path = _write_allstar(table, tmp_path / "allStar-cut.fits")
    with pytest.raises(ValueError, match=r"allStar-cut\.fits.*EXTRATARG.*NI_FE_ERR"):
        apogee.read_allstar(path)
    with pytest.raises(ValueError, match="no column"):
        apogee.read_allstar(_write_allstar(_allstar("dr16"), tmp_path / "ok.fits"), columns=["VHELIO_AVG"])


def test_read_allstar_needs_a_table_in_hdu1(tmp_path):
    path = tmp_path / "image.fits"
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.zeros(3))]).writeto(path)
    with pytest.raises(ValueError, match=r"image\.fits: HDU 1 is not a binary table"):
        apogee.read_allstar(path)


# ================================================================== spectra cube
def _direct(paths):
    out = [cube.resample_spectrum(*rave.read_rave_spectrum(p)) for p in paths]
    return (np.array([o[0] for o in out], np.float32), np.array([o[1] for o in out], np.float32),
            np.array([o[2] for o in out]))


@pytest.fixture(scope="module")
def spectra(tmp_path_factory):
    return _survey_files(tmp_path_factory.mktemp("rave") / "spectra")


def test_cube_equals_direct_resampling(spectra, tmp_path):
    out = cube.build_spectra_cube(spectra, tmp_path / "cube.fits", chunk=7, processes=1, progress=False)
    assert out == tmp_path / "cube.fits"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cube.fits"]  # parts folder removed
    wave, flux, error, ids = cube.read_spectra_cube(out, grid=cube.COMMON_GRID)
    f, e, n_bad = _direct(spectra)
    np.testing.assert_array_equal(flux, f)
    np.testing.assert_array_equal(error, e)
    np.testing.assert_array_equal(wave, GRID)
    assert ids["rave_obs_id"].tolist() == [p.name[5:-5] for p in spectra]
    assert ids["n_bad_pixels"].tolist() == n_bad.tolist() and n_bad[2] >= 3
    _, f_rows, e_rows, ids_rows = cube.read_spectra_cube(out, rows=[4, 1])  # a subset, in the order asked
    np.testing.assert_array_equal(f_rows, f[[4, 1]])
    np.testing.assert_array_equal(e_rows, e[[4, 1]])
    assert ids_rows["rave_obs_id"].tolist() == ids["rave_obs_id"][[4, 1]].tolist()
    assert not ids["rejected"].any()
    header = fits.getheader(out)
    assert (header["CRVAL1"], header["CDELT1"], header["NPIX"], header["CUNIT1"]) == (8410.0, 0.39, 987, "Angstrom")
    with fits.open(out) as hdul:
        assert [h.name for h in hdul] == ["PRIMARY", "FLUX", "ERROR", "IDS"]
        assert hdul["FLUX"].data.dtype.name == "float32" and hdul["FLUX"].header["CDELT1"] == 0.39


def test_cube_stores_each_spectrum_snr(spectra, tmp_path):
    """IDS snr is ``spectrum_snr`` of the cube's own FLUX and ERROR, to the bit."""
    out = cube.build_spectra_cube(spectra, tmp_path / "cube.fits", chunk=7, processes=1, progress=False)
    _, flux, error, ids = cube.read_spectra_cube(out)
    assert ids["snr"].dtype == np.float32
    np.testing.assert_array_equal(ids["snr"], cube.spectrum_snr(flux, error))
    assert np.all(ids["snr"] > 15)  # relative errors of 1–5 %


def test_cube_table_reads_rows_without_spectra(spectra, tmp_path, monkeypatch):
    out = cube.build_spectra_cube(spectra[:9], tmp_path / "cube.fits", chunk=4, processes=1, progress=False)
    _, _, _, ids = cube.read_spectra_cube(out)
    table = cube.read_cube_table(out)
    assert table.colnames == ["rave_obs_id", "n_bad_pixels", "rejected", "snr"]
    for name in table.colnames:
        np.testing.assert_array_equal(table[name], ids[name])
    rows = cube.read_cube_table(out, rows=[5, 0, 7])
    assert rows["rave_obs_id"].tolist() == [ids["rave_obs_id"][i] for i in (5, 0, 7)]
    np.testing.assert_array_equal(rows["snr"], ids["snr"][[5, 0, 7]])
    assert cube.read_cube_ids(out).tolist() == ids["rave_obs_id"].tolist()
    with pytest.raises(ValueError, match=r"RAVE_.*\.fits: not a spectra cube, no IDS"):
        cube.read_cube_table(spectra[0])
    with pytest.raises(FileNotFoundError, match="absent.fits"):
        cube.read_cube_table(tmp_path / "absent.fits")


def test_cube_of_either_reader_and_of_a_generator_is_the_same(spectra, tmp_path, monkeypatch):
    """The fast reader and astropy's give the same cube, byte for byte; so does a generator of paths."""
    fast = cube.build_spectra_cube(spectra, tmp_path / "fast.fits", chunk=7, processes=1, progress=False)
    lazy = cube.build_spectra_cube((p for p in spectra), tmp_path / "lazy.fits", chunk=7, processes=1,
                                   progress=False)
    monkeypatch.setattr(cube, "read_rave_spectrum", rave.read_rave_spectrum_with_astropy)
    slow = cube.build_spectra_cube(spectra, tmp_path / "slow.fits", chunk=7, processes=1, progress=False)
    assert fast.read_bytes() == slow.read_bytes() == lazy.read_bytes()


def test_cube_is_resumable(spectra, tmp_path, monkeypatch):
    calls = []
    real = rave.read_rave_spectrum

    def reader(path):
        calls.append(path)
        if len(calls) == 15 and fail:  # the first file of the 3rd chunk
            raise RuntimeError("interrupted")
        return real(path)

    monkeypatch.setattr(cube, "read_rave_spectrum", reader)
    out, parts = tmp_path / "cube.fits", tmp_path / "cube.fits.parts"
    fail = True
    with pytest.raises(RuntimeError, match="interrupted"):
        cube.build_spectra_cube(spectra, out, chunk=7, processes=1, progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []
    assert len(list(parts.glob("chunk_*.npz"))) == 2 and not list(parts.glob(".part*"))
    fail, calls[:] = False, []
    cube.build_spectra_cube(spectra, out, chunk=7, processes=1, progress=False)
    assert calls == spectra[14:]  # the two finished chunks are not read again
    assert not parts.exists()
    reference = cube.build_spectra_cube(spectra, tmp_path / "ref.fits", chunk=7, processes=1, progress=False)
    assert fits.FITSDiff(str(out), str(reference)).identical


def test_cube_ignores_stale_parts(spectra, tmp_path):
    out = tmp_path / "cube.fits"
    cube.build_spectra_cube(spectra[:10], tmp_path / "other.fits", chunk=7, processes=1, progress=False)
    (tmp_path / "cube.fits.parts").mkdir()
    np.savez(tmp_path / "cube.fits.parts" / "chunk_00000_000000000000.npz", flux=np.zeros(1))
    cube.build_spectra_cube(spectra[:12], out, chunk=7, processes=1, progress=False)
    _, flux, _, ids = cube.read_spectra_cube(out)
    np.testing.assert_array_equal(flux, _direct(spectra[:12])[0])


def test_cube_with_two_processes_is_identical(spectra, tmp_path):
    one = cube.build_spectra_cube(spectra, tmp_path / "one.fits", chunk=7, processes=1, progress=False)
    two = cube.build_spectra_cube(spectra, tmp_path / "two.fits", chunk=7, processes=2, progress=False)
    assert fits.FITSDiff(str(one), str(two)).identical


def test_cube_flags_spectra_with_too_many_bad_pixels(tmp_path):
    paths = _survey_files(tmp_path / "spectra", n=3)
    wave, flux, rel = rave.read_rave_spectrum(paths[1])
    flux[100:400] = np.inf  # 300 of ~990 input pixels: > 20 % of the grid
    paths[1].unlink()
    _write_spectrum(paths[1], flux, rel, wave[0], wave[1] - wave[0])
    cube.build_spectra_cube(paths, tmp_path / "cube.fits", processes=1, progress=False)
    _, f, e, ids = cube.read_spectra_cube(tmp_path / "cube.fits")
    assert ids["rejected"].tolist() == [False, True, False]
    assert ids["n_bad_pixels"][1] > 0.2 * 987
    bad = ~np.isfinite(e[1])
    assert bad.sum() == ids["n_bad_pixels"][1] and np.all(f[1][bad] == 1.0) and np.all(e[1][bad] == np.inf)


@pytest.mark.parametrize("problem", ["no SPECTRUM", "short grid", "missing file"])
def test_cube_bad_file_names_it_and_writes_nothing(spectra, tmp_path, problem):
    bad = tmp_path / "RAVE_20100101_0000m00_001.fits"
    if problem == "no SPECTRUM":
        _write_spectrum(bad, np.ones(990), np.full(990, 0.01), 8409.5, 0.39, extensions=("FLUX", "ERROR"))
        expected, kind = r"RAVE_20100101_0000m00_001\.fits: no SPECTRUM extension", ValueError
    elif problem == "short grid":
        _write_spectrum(bad, np.ones(962), np.full(962, 0.01), 8415.0, 0.39)
        expected, kind = r"RAVE_20100101_0000m00_001\.fits covers 8415\.00–8789\.79 Å", ValueError
    else:
        expected, kind = "RAVE_20100101_0000m00_001.fits", FileNotFoundError
    out = tmp_path / "cube.fits"
    with pytest.raises(kind, match=expected):
        cube.build_spectra_cube(spectra[:9] + [bad], out, chunk=4, processes=1, progress=False)
    assert not out.exists() and _leftovers(tmp_path) == []


def test_cube_bad_file_with_two_processes(spectra, tmp_path):
    bad = _write_spectrum(tmp_path / "RAVE_bad.fits", np.ones(900), np.ones(900), 8420.0, 0.39)
    with pytest.raises(ValueError, match=r"RAVE_bad\.fits covers"):
        cube.build_spectra_cube(spectra[:5] + [bad], tmp_path / "cube.fits", processes=2, progress=False)
    assert not (tmp_path / "cube.fits").exists()


def test_cube_arguments(spectra, tmp_path):
    out = tmp_path / "cube.fits"
    out.write_text("old")
    with pytest.raises(FileExistsError, match="cube.fits"):
        cube.build_spectra_cube(spectra[:2], out, processes=1, progress=False)
    cube.build_spectra_cube(spectra[:2], out, processes=1, progress=False, overwrite=True)
    assert len(cube.read_spectra_cube(out)[3]) == 2
    with pytest.raises(ValueError, match="share a rave_obs_id"):
        cube.build_spectra_cube(spectra[:2] * 2, tmp_path / "dup.fits", progress=False)
    with pytest.raises(ValueError, match="chunk"):
        cube.build_spectra_cube(spectra[:2], tmp_path / "c.fits", chunk=0, progress=False)
    with pytest.raises(ValueError, match="no spectrum files"):
        cube.build_spectra_cube([], tmp_path / "c.fits", progress=False)


def test_read_spectra_cube_checks_the_grid(spectra, tmp_path):
    out = cube.build_spectra_cube(spectra[:3], tmp_path / "cube.fits", processes=1, progress=False)
    with pytest.raises(ValueError, match=r"cube\.fits: the cube's grid"):
        cube.read_spectra_cube(out, grid=dict(start=8420.0, stop=8780.0, step=0.39))
    with pytest.raises(ValueError, match=r"RAVE_.*\.fits: not a spectra cube"):
        cube.read_spectra_cube(spectra[0])


# ================================================================== the simulated survey
def test_simulated_survey_catalogue_and_spectra(smoke_survey, tmp_path):
    truth = Table.read(smoke_survey / FILES["truth"], hdu="OBSERVATIONS")
    cat = rave.read_rave_catalogue(smoke_survey / FILES["catalogue"])
    assert cat["rave_obs_id"].tolist() == truth["rave_obs_id"].tolist()
    spectra = [smoke_survey / FILES["spectra"] / rave.spectrum_filename(i) for i in cat["rave_obs_id"]]
    path = cube.build_spectra_cube(spectra, tmp_path / "cube.fits", chunk=200, processes=1, progress=False)
    wave, flux, error, ids = cube.read_spectra_cube(path, grid=cube.COMMON_GRID)
    assert flux.shape == (len(cat), 987) and ids["rave_obs_id"].tolist() == cat["rave_obs_id"].tolist()
    # the simulated files cover the whole common grid: bad grid pixels = two per dead input pixel
    start = np.asarray(truth["crval1"])
    end = start + (simulate.RAVE_GRID["npix"] - 1) * np.asarray(truth["cdelt1"])
    assert np.all(start <= GRID[0]) and np.all(end >= GRID[-1])
    expected = 2 * np.asarray(truth["n_bad_pixels"])
    assert np.mean(np.asarray(ids["n_bad_pixels"]) == expected) > 0.98  # 1.0 for seed 2020
    assert not ids["rejected"].any()
    good = np.isfinite(error)
    assert 0.2 < np.median(flux[good]) < 1.1 and np.all(error[good] > 0)


def test_simulated_survey_allstar(smoke_survey, tmp_path):
    path = smoke_survey / FILES["allstar"]
    with fits.open(path) as hdul:
        if "GAIAEDR3_SOURCE_ID" not in hdul[1].columns.names:
            pytest.xfail("lead to check: simulate.py does not write GAIAEDR3_SOURCE_ID yet")
    allstar = apogee.read_allstar(path)
    assert allstar.meta["release"] == "dr17"
    raw = Table.read(path, hdu=1)
    for col in apogee.ALLSTAR_LABEL_COLUMNS:
        np.testing.assert_array_equal(allstar[col].mask, ~np.isfinite(np.asarray(raw[col])))
    assert len(allstar) == len(raw) and allstar["APOGEE_ID"].dtype.kind == "U"
    # the simulator's DR16 and DR17 conventions read to the same masked table
    stars = Table.read(smoke_survey / FILES["truth"], hdu="STARS")
    tables = {rel: apogee.read_allstar(_write_allstar(catalogues.allstar_table(stars, np.random.default_rng(5), rel),
                                                  tmp_path / f"allStar-{rel}.fits"))
              for rel in ("dr16", "dr17")}
    assert [t.meta["release"] for t in tables.values()] == ["dr16", "dr17"]
    for col in apogee.ALLSTAR_LABEL_COLUMNS:
        a, b = tables["dr16"][col], tables["dr17"][col]
        assert a.mask.tolist() == b.mask.tolist(), col
        np.testing.assert_array_equal(a.filled(np.nan), b.filled(np.nan))
    assert sum(tables["dr16"][c].mask.sum() for c in apogee.ALLSTAR_LABEL_COLUMNS) > 0


def test_up_to_date_cube_is_kept_and_another_file_list_is_refused(spectra, tmp_path):
    """Rebuilding from the same files leaves the cube untouched; other files need overwrite=True."""
    out = cube.build_spectra_cube(spectra[:3], tmp_path / "cube.fits", processes=1, progress=False)
    before = out.stat().st_mtime_ns
    cube.build_spectra_cube(spectra[:3], out, processes=1, progress=False)
    assert out.stat().st_mtime_ns == before
    with pytest.raises(FileExistsError, match="other files"):
        cube.build_spectra_cube(spectra[:4], out, processes=1, progress=False)
    cube.build_spectra_cube(spectra[:4], out, processes=1, progress=False, overwrite=True)
    assert len(cube.read_spectra_cube(out)[3]) == 4
