"""Parametrising a survey (ravecnn_utils.predict): chunking, the compiled path, atomic and
resumable writing, flags, and the Dask path."""

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ravecnn_utils import fitstable, predict
from ravecnn_utils.cube import build_spectra_cube, read_spectra_cube, write_spectra_cube
from ravecnn_utils import model as cnn
from ravecnn_utils.survey import FILES
from ravecnn_utils.ensemble import Ensemble, LabelScaler

LABELS4 = ("teff", "logg", "m_h", "alpha_m")


@pytest.fixture(scope="module")
def cube(smoke_survey, tmp_path_factory):
    """The smoke survey's first 60 spectra on the common grid."""
    files = sorted((smoke_survey / FILES["spectra"]).glob("RAVE_*.fits"))[:60]
    return build_spectra_cube(files, tmp_path_factory.mktemp("cube") / "cube.fits", processes=1, progress=False)


@pytest.fixture(scope="module")
def ensemble(cube, tmp_path_factory):
    """Two untrained slides networks, labels scaled over a plausible range, calibrated on random
    'validation' labels, novelty statistics from the other 30 spectra; saved, so the Dask workers
    can load it."""
    import keras

    wave, flux, error, _ = read_spectra_cube(cube)
    members = []
    for seed in (1, 2):
        keras.utils.set_random_seed(seed)
        members.append(cnn.slides_cnn(n_pixels=wave.size, labels=LABELS4))
    rng = np.random.default_rng(0)
    y = np.column_stack([rng.uniform(4000, 6000, 200), rng.uniform(1, 5, 200), rng.uniform(-1, 0.4, 200),
                         rng.uniform(-0.1, 0.4, 200)])
    ens = Ensemble(members, LabelScaler().fit(y), LABELS4, grid=wave, metadata={"network": "toy"})
    ens.calibrate(ens.inputs(flux[:30], error[:30]), y[:30])
    ens.fit_novelty(ens.inputs(flux[30:], error[30:]), ens.inputs(flux[:30], error[:30]))
    folder = tmp_path_factory.mktemp("models") / "toy"
    ens.save(folder)
    return ens, folder


def test_chunked_equals_one_shot_and_keras(cube, ensemble, tmp_path):
    """Chunks of 7 give the catalogue of one chunk of 60; the means equal the members' Keras
    predictions (model.predict, scaled back) within 1e-5 of the label range."""
    ens, _ = ensemble
    a = Table.read(predict.predict_cube(ens, cube, tmp_path / "a.fits", chunk=7, progress=False))
    b = Table.read(predict.predict_cube(ens, cube, tmp_path / "b.fits", chunk=60, progress=False))
    assert len(a) == 60 and a.colnames == b.colnames
    for name in a.colnames:
        np.testing.assert_array_equal(a[name], b[name])
    _, flux, error, ids = read_spectra_cube(cube)
    x = ens.inputs(flux, error)
    keras_mean = ens.scaler.inverse(np.mean([m.predict(x, verbose=0) for m in ens.members], axis=0))
    np.testing.assert_allclose(np.column_stack([a[n] for n in LABELS4]), keras_mean,
                               atol=1e-5 * ens.scaler.scale.max(), rtol=0)
    assert list(a["rave_obs_id"]) == [str(i) for i in ids["rave_obs_id"]]
    assert a["teff"].unit == "K" and a.meta["FLAG8"] == "members_disagree"
    assert a.colnames == list(predict.column_descriptions(LABELS4)["column"])
    assert not (tmp_path / "a.fits.parts").exists()


def test_cube_snr_is_used_and_a_cube_without_it_gives_the_same_catalogue(cube, ensemble, tmp_path, monkeypatch):
    """The cube's IDS snr spares prediction the sort; a cube of older code (no snr column) is
    predicted as before, to the same catalogue."""
    ens, _ = ensemble
    wave, flux, error, ids = read_spectra_cube(cube)
    old = write_spectra_cube(tmp_path / "old.fits", fits.getheader(cube),
                             lambda ext: [flux if ext == "FLUX" else error], ids["rave_obs_id"], ids["n_bad_pixels"])
    assert "snr" not in read_spectra_cube(old)[3].colnames
    before = Table.read(predict.predict_cube(ens, old, tmp_path / "before.fits", chunk=25, progress=False))
    monkeypatch.setattr(predict, "spectrum_snr", lambda *a: pytest.fail("the SNR was computed again"))
    now = Table.read(predict.predict_cube(ens, cube, tmp_path / "now.fits", chunk=25, progress=False))
    assert now.colnames == before.colnames and len(now) == 60
    for name in now.colnames:
        np.testing.assert_array_equal(now[name], before[name])
    assert np.ptp(now["snr"]) > 0


def test_rows_as_stored_in_the_cube_give_the_same_columns(cube, ensemble):
    """predict_spectra reads the cube's memory-mapped big-endian rows as they lie (no swapped
    copy): the same columns as from native float32 copies."""
    ens, _ = ensemble
    wave, flux, error, _ = read_spectra_cube(cube, rows=slice(10, 30))
    _, stored_flux, stored_error, _ = read_spectra_cube(cube, rows=slice(10, 30), as_stored=True)
    assert stored_flux.dtype == np.dtype(">f4") and stored_error.dtype == np.dtype(">f4")
    np.testing.assert_array_equal(stored_flux, flux)
    native = predict.predict_spectra(ens, flux, error, wave=wave)
    stored = predict.predict_spectra(ens, stored_flux, stored_error, wave=wave)
    assert list(stored) == list(native) and np.isfinite(native["teff"]).all()
    for name in native:
        np.testing.assert_array_equal(stored[name], native[name])


def test_interrupted_run_leaves_no_catalogue_and_resumes(cube, ensemble, tmp_path, monkeypatch):
    ens, _ = ensemble
    out = tmp_path / "cat.fits"
    real, calls = predict._predict_rows, []

    def failing(*args):
        calls.append(args[2])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(*args)

    monkeypatch.setattr(predict, "_predict_rows", failing)
    with pytest.raises(KeyboardInterrupt):
        predict.predict_cube(ens, cube, out, chunk=20, progress=False)
    assert not out.exists()
    assert sorted(p.name for p in (tmp_path / "cat.fits.parts").glob("part_*.npz")) == ["part_00000.npz",
                                                                                        "part_00001.npz"]
    calls.clear()
    predict.predict_cube(ens, cube, out, chunk=20, progress=False)
    assert calls == [40]                                   # only the missing chunk was computed
    assert len(Table.read(out)) == 60 and not (tmp_path / "cat.fits.parts").exists()


def test_failed_write_leaves_nothing(cube, ensemble, tmp_path, monkeypatch):
    ens, _ = ensemble

    def broken(handle, *args, **kwargs):
        handle.write(b"half a FITS file")
        raise OSError("disk full")

    monkeypatch.setattr(fitstable, "append_table", broken)
    with pytest.raises(OSError, match="disk full"):
        predict.predict_cube(ens, cube, tmp_path / "cat.fits", chunk=60, progress=False)
    assert not (tmp_path / "cat.fits").exists()
    assert not list(tmp_path.glob(".*tmp*")) and not list(tmp_path.glob(".part-*"))


def test_flags_on_crafted_spectra(cube, ensemble):
    """NaN pixels, large errors, a narrow training range and a tiny validation spread each set their bit."""
    ens, _ = ensemble
    wave, flux, error, _ = read_spectra_cube(cube, rows=np.arange(4))
    flux, error = flux.copy(), error.copy()
    flux[0, :200] = np.nan                                  # 20 % NaN pixels
    error[1] = flux[1] / 5                                  # SNR 5
    cols = predict.predict_spectra(ens, flux, error, wave=wave)
    bits = predict.FLAGS
    assert cols["flag"][0] & bits["bad_pixels"] and cols["n_bad_pixels"][0] >= 200
    assert cols["flag"][1] & bits["low_snr"] and abs(cols["snr"][1] - 5) < 0.01
    assert not cols["flag"][2] & (bits["bad_pixels"] | bits["low_snr"])
    assert np.isfinite(cols["teff"]).all()
    no_pixels = flux.copy()
    no_pixels[3] = np.nan                                   # no usable pixel at all
    empty = predict.predict_spectra(ens, no_pixels, error, wave=wave)
    assert np.isnan([empty[f"{n}{s}"][3] for n in LABELS4 for s in ("", "_err", "_spread")]).all()
    assert empty["flag"][3] & bits["bad_pixels"] and empty["flag"][3] & bits["low_snr"]
    assert np.isfinite(empty["teff"][:3]).all()

    narrow = Ensemble(ens.members, LabelScaler(ens.scaler.minimum, ens.scaler.scale), LABELS4,
                      grid=ens.grid, metadata=dict(ens.metadata), calibration=ens.calibration,
                      validation_spread=ens.validation_spread, novelty=ens.novelty)
    narrow.scaler.minimum = np.array([1e5, 0, -1, -0.1])   # Teff range 100,000 K and up: all outside
    assert (predict.predict_spectra(narrow, flux, error, wave=wave)["flag"] & bits["outside_coverage"]).all()
    tiny = Ensemble(ens.members, ens.scaler, LABELS4, grid=ens.grid, calibration=ens.calibration,
                    validation_spread={n: 0.0 for n in LABELS4}, novelty=ens.novelty)
    assert (predict.predict_spectra(tiny, flux, error, wave=wave)["flag"] & bits["members_disagree"]).all()
    with pytest.raises(ValueError, match="validation spread"):
        predict.predict_spectra(Ensemble(ens.members, ens.scaler, LABELS4, grid=ens.grid, calibration=ens.calibration,
                                         novelty=ens.novelty), flux, error, wave=wave)


@pytest.mark.slow
def test_dask_path_equals_serial(cube, ensemble, tmp_path):
    """Two worker processes of a local Dask cluster give the serial catalogue."""
    from dask.distributed import Client, LocalCluster

    ens, folder = ensemble
    serial = Table.read(predict.predict_cube(ens, cube, tmp_path / "serial.fits", chunk=25, progress=False))
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        out = predict.predict_cube_dask(folder, cube, tmp_path / "dask.fits", chunk=25, client=client)
    spread = Table.read(out)
    assert spread.colnames == serial.colnames and len(spread) == 60
    for name in serial.colnames:
        if serial[name].dtype.kind == "f":
            np.testing.assert_allclose(spread[name], serial[name], rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(spread[name], serial[name])


def test_select_giants_and_column_descriptions():
    cat = Table({"teff": [4500.0, 4500.0, 6000.0, 4500.0, 4500.0], "logg": [2.5, 4.5, 2.5, 2.5, 2.5],
                 "snr": [100.0, 100.0, 100.0, 50.0, 100.0], "flag": [0, 0, 0, 0, 8]})
    assert predict.select_giants(cat).tolist() == [True, False, False, False, False]
    assert predict.select_giants(cat, clean=False).tolist() == [True, False, False, False, True]
    desc = predict.column_descriptions(LABELS4)
    assert list(desc["column"][:4]) == ["rave_obs_id", "teff", "teff_err", "teff_spread"]
    assert len(desc) == 1 + 3 * 4 + 4 and desc["unit"][1] == "K"


def test_spectrum_snr_ignores_pixels_without_information():
    flux = np.ones((3, 5))
    error = np.array([[0.1] * 5, [0.1, 0.1, np.inf, 0.0, 0.5], [np.inf] * 5])
    flux[1, 4] = np.nan
    snr = predict.spectrum_snr(flux, error)
    np.testing.assert_allclose(snr[:2], [10, 10])
    assert np.isnan(snr[2])


def test_spectrum_snr_equals_nanmedian_for_odd_and_even_counts():
    rng = np.random.default_rng(5)
    flux = rng.normal(1, 0.1, (40, 31)).astype(np.float32)
    error = rng.uniform(0.01, 0.1, (40, 31)).astype(np.float32)
    error[rng.uniform(size=error.shape) < 0.2] = np.inf      # 0 to 31 good pixels per spectrum
    error[3, :] = 0.0
    good = np.isfinite(error) & (error > 0)
    assert {0, 1} <= set(good.sum(axis=1) % 2)
    with np.errstate(divide="ignore"), pytest.warns(RuntimeWarning, match="All-NaN"):  # row 3
        expected = np.nanmedian(np.where(good, flux / error, np.nan), axis=1)
    snr = predict.spectrum_snr(flux, error)
    assert np.isnan(snr[3])
    np.testing.assert_allclose(snr, expected, rtol=1e-6)
