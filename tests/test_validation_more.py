"""Notebook 06's other inputs (ravecnn_utils.validation): the peers, the networks' predictions over
the nine labels, predictions of catalogue rows from the spectra cube, the precision from repeat
observations and real spectra through a network (domain shift).

Networks here are untrained (fixed seeds): the functions under test only move predictions around,
so any weights do; the toy spectra are the ``toy_training_set`` of conftest.py.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.table import Table  # noqa: E402

from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils import validation  # noqa: E402
from ravecnn_utils.baselines import BASELINES  # noqa: E402
from ravecnn_utils.cube import common_wavelengths  # noqa: E402
from ravecnn_utils.ensemble import Ensemble, LabelScaler  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS, LABELS  # noqa: E402
from ravecnn_utils.metrics import pair_precision  # noqa: E402
from ravecnn_utils.photometry import COLUMNS, absolute_magnitudes  # noqa: E402
from ravecnn_utils.simulation import realism  # noqa: E402

SCALE = {"teff": (3500.0, 3000.0), "logg": (0.0, 5.0), "m_h": (-2.5, 3.0), "alpha_m": (-0.2, 0.6)}


def members(build, n=2):
    out = []
    for seed in range(1, n + 1):
        keras.utils.set_random_seed(seed)
        out.append(build())
    return out


def toy_ensemble(labels, n_pixels=60, photometry_table=None):
    """Untrained members (slides' network, or the paper's with photometry when a table is given),
    labels scaled over ``SCALE``, calibration k = 2 and a validation spread for every label."""
    if photometry_table is None:
        nets = members(lambda: cnn.slides_cnn(n_pixels=n_pixels, labels=labels))
        phot = None
    else:
        nets = members(lambda: cnn.paper_cnn(n_pixels=n_pixels, labels=labels, photometry=True))
        phot = LabelScaler().fit(absolute_magnitudes(photometry_table))
    scaler = LabelScaler([SCALE[n][0] for n in labels], [SCALE[n][1] for n in labels])
    return Ensemble(nets, scaler, labels, calibration=dict.fromkeys(labels, 2.0),
                    validation_spread=dict.fromkeys(labels, 1.0), photometry_scaler=phot)


@pytest.fixture(scope="module")
def core(toy_training_set):
    return toy_ensemble(CORE_LABELS)


@pytest.fixture(scope="module")
def with_photometry(toy_training_set):
    return toy_ensemble(("teff", "logg"), photometry_table=toy_training_set[3])


# --- fit_peers ----------------------------------------------------------------------------------

def test_fit_peers_fits_the_train_rows_and_predicts_the_test_rows(toy_training_set):
    wave, flux, error, table = toy_training_set
    error = error.copy()
    error[:, 50:] = np.inf                       # pixels without information: continuum, ivar 0
    y = np.column_stack([table["teff"], table["logg"]])
    train, test = np.asarray(table["split"]) == "train", np.asarray(table["split"]) == "test"
    pred, seconds = validation.fit_peers(flux, error, y, train, test, names=["mean", "ridge"])
    assert list(pred) == list(seconds) == ["mean", "ridge"]
    assert pred["mean"].shape == pred["ridge"].shape == (test.sum(), 2)
    assert all(s >= 0 for s in seconds.values())
    np.testing.assert_allclose(pred["mean"], np.broadcast_to(y[train].mean(axis=0), (test.sum(), 2)))
    assert not np.allclose(y[test].mean(axis=0), y[train].mean(axis=0), rtol=1e-3)
    # ridge reads the line depths: far better than the mean on Teff
    rms = {name: np.sqrt(np.mean((p[:, 0] - y[test, 0]) ** 2)) for name, p in pred.items()}
    assert rms["ridge"] < 0.5 * rms["mean"]


def test_fit_peers_refuses_unknown_names(toy_training_set):
    _, flux, error, table = toy_training_set
    y = np.asarray(table["teff"])[:, None]
    mask = np.asarray(table["split"]) == "train"
    with pytest.raises(ValueError, match=r"unknown peer\(s\) \['gpr'\]") as info:
        validation.fit_peers(flux, error, y, mask, ~mask, names=["mean", "gpr"])
    for name in BASELINES:
        assert repr(name) in str(info.value)


# --- network_predictions ------------------------------------------------------------------------

def test_network_predictions_expand_four_labels_to_nine(core, with_photometry, toy_training_set):
    _, flux, error, table = toy_training_set
    pred, sigma = validation.network_predictions({"core": core, "phot": with_photometry},
                                                 flux[:5], error[:5], table[:5])
    assert set(pred) == set(sigma) == {"core", "phot"}
    mean, spread = core.predict(core.inputs(flux[:5], error[:5]), calibrated=True)
    assert pred["core"].shape == sigma["core"].shape == (5, 9)
    for j, name in enumerate(CORE_LABELS):
        np.testing.assert_array_equal(pred["core"][:, LABELS.index(name)], mean[:, j])
        np.testing.assert_array_equal(sigma["core"][:, LABELS.index(name)], spread[:, j])
    lacking = [LABELS.index(n) for n in ("fe_h", "si_fe", "al_fe", "mg_fe", "ni_fe")]
    assert np.isnan(pred["core"][:, lacking]).all() and np.isnan(sigma["core"][:, lacking]).all()
    assert np.isfinite(np.delete(pred["core"], lacking, axis=1)).all()
    assert np.all(sigma["core"][:, 0] > 0)
    m2, _ = with_photometry.predict(with_photometry.inputs(flux[:5], error[:5], table[:5]), calibrated=True)
    np.testing.assert_array_equal(pred["phot"][:, :2], m2)
    assert np.isnan(pred["phot"][:, 2:]).all()


# --- predict_observations -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def cube_and_catalogue(toy_training_set, write_cube, tmp_path_factory):
    """The first 20 toy spectra in a cube (reversed order) and the catalogue of the 20 stars in
    the table's order (with photometry)."""
    wave, flux, error, table = toy_training_set
    cube_rows = np.arange(20)[::-1]
    path = write_cube(tmp_path_factory.mktemp("cube") / "cube.fits", wave, flux[cube_rows], error[cube_rows],
                      table["rave_obs_id"][cube_rows])
    return path, table[["rave_obs_id", *COLUMNS]][:20]


def test_predict_observations_keep_the_order_given(core, with_photometry, toy_training_set,
                                                   cube_and_catalogue):
    _, flux, error, table = toy_training_set
    path, catalogue = cube_and_catalogue
    rows = np.array([7, 2, 15, 0, 11])
    for ens in (core, with_photometry):
        mean, sigma = validation.predict_observations(ens, path, catalogue, rows)
        direct = ens.predict(ens.inputs(flux[rows], error[rows], table[rows]), calibrated=True)
        np.testing.assert_allclose(mean, direct[0], rtol=1e-6)
        np.testing.assert_allclose(sigma, direct[1], rtol=1e-5, atol=1e-9)
        assert mean.shape == (5, len(ens.labels))
    reference = validation.predict_observations(core, path, catalogue, rows)[0]
    shuffled = validation.predict_observations(core, path, catalogue, rows[::-1])[0]
    np.testing.assert_allclose(shuffled[::-1], reference, rtol=1e-6)
    assert not np.allclose(shuffled, reference)


def test_predict_observations_names_a_row_missing_from_the_cube(core, toy_training_set, cube_and_catalogue):
    path, catalogue = cube_and_catalogue
    table = toy_training_set[3]
    with pytest.raises(KeyError, match=r"spectra cube.*toy_030"):
        validation.predict_observations(core, path, table[["rave_obs_id", *COLUMNS]], np.array([1, 30]))


# --- repeat_precision ---------------------------------------------------------------------------

def repeat_catalogue(toy_training_set, write_cube, path, identical):
    """Stars s1, s2 (2 observations), s3 (3) and s4 (1): repeats are the same spectrum plus, unless
    ``identical``, 1 % noise. The cube holds the observations in reverse catalogue order."""
    wave, flux, error, table = toy_training_set
    stars = ["s1", "s1", "s2", "s3", "s2", "s3", "s4", "s3"]
    source = {"s1": 0, "s2": 1, "s3": 2, "s4": 3}
    rng = np.random.default_rng(5)
    f = np.array([flux[source[s]] for s in stars])
    if not identical:
        f = f + rng.normal(0, 0.01, f.shape).astype(np.float32)
    ids = [f"obs_{i}" for i in range(len(stars))]
    catalogue = Table({"rave_obs_id": ids, "id_2mass": stars})
    for col in COLUMNS:
        catalogue[col] = [table[col][source[s]] for s in stars]
    back = slice(None, None, -1)
    write_cube(path, wave, f[back], error[: len(stars)][back], np.array(ids)[back])
    return catalogue, f, error[: len(stars)]


def test_repeat_precision_of_identical_repeats_is_zero(core, with_photometry, toy_training_set, write_cube,
                                                       tmp_path):
    catalogue, _, _ = repeat_catalogue(toy_training_set, write_cube, tmp_path / "cube.fits", identical=True)
    rows = validation.repeat_rows(catalogue)
    assert sorted(catalogue["id_2mass"][rows]) == ["s1", "s1", "s2", "s2", "s3", "s3", "s3"]
    out = validation.repeat_precision({"core": core, "phot": with_photometry}, tmp_path / "cube.fits",
                                      catalogue, rows)
    assert list(out["network"]) == ["core"] * 4 + ["phot"] * 2
    assert list(out["label"]) == [*CORE_LABELS, "teff", "logg"]
    assert list(out["pairs"]) == [3] * 6                   # one pair per star, s3's third ignored
    for row in out:
        assert row["precision from pairs"] == pytest.approx(0.0, abs=1e-6 * SCALE[row["label"]][1])
    _, sigma = validation.predict_observations(core, tmp_path / "cube.fits", catalogue, rows)
    np.testing.assert_allclose(out["median predicted σ"][:4], np.median(sigma, axis=0), rtol=1e-12)
    assert np.all(out["median predicted σ"] > 0)


def test_repeat_precision_of_noisy_repeats_is_the_pair_scatter(core, toy_training_set, write_cube, tmp_path):
    catalogue, flux, error = repeat_catalogue(toy_training_set, write_cube, tmp_path / "cube.fits",
                                              identical=False)
    rows = validation.repeat_rows(catalogue)
    out = validation.repeat_precision({"core": core}, tmp_path / "cube.fits", catalogue, rows)
    mean, _ = core.predict(core.inputs(flux[rows], error[rows]), calibrated=True)
    for j, row in enumerate(out):
        expected, pairs = pair_precision(mean[:, j], catalogue["id_2mass"][rows])
        assert pairs == row["pairs"] == 3
        assert row["precision from pairs"] == pytest.approx(expected, rel=1e-5)
        assert row["precision from pairs"] > 0


# --- domain_shift -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def two_real_spectra():
    """One Indo-US star with literature labels (HD39587) and one DEIMOS star without, and their fits
    on the common grid."""
    spectra = realism.read_real_spectra()
    known = set(realism.read_real_labels()["name"])
    pick = [list(spectra["name"]).index("HD39587"),
            next(i for i, (n, lib) in enumerate(zip(spectra["name"], spectra["library"]))
                 if n not in known and lib == "DEIMOS")]
    real = spectra[pick]
    return real, realism.real_on_grid(spectra=real, grid=common_wavelengths())


def test_domain_shift_table(two_real_spectra, monkeypatch):
    real, (fitted, flux) = two_real_spectra
    grid = common_wavelengths()
    ens = toy_ensemble(CORE_LABELS, n_pixels=grid.size)
    rng = np.random.default_rng(5)
    ens.fit_novelty(*(1 + rng.normal(0, 0.01, (n, grid.size, 1)) for n in (40, 20)))  # flat, noisy 'survey'
    table = validation.domain_shift(ens, real, grid)
    assert table.colnames == ["star", "library", "teff fit", "teff network", "teff sigma", "logg fit",
                              "logg network", "logg sigma", "m_h fit", "m_h network", "m_h sigma",
                              "teff literature", "logg literature", "ood_score", "out_of_domain"]
    _, _, score = ens.predict(ens.inputs(flux), scores=True)
    np.testing.assert_allclose(table["ood_score"], score, rtol=1e-6)
    np.testing.assert_array_equal(table["out_of_domain"], score > ens.novelty.threshold)
    assert table["out_of_domain"].all()                         # real lines, unlike the flat 'survey'
    assert list(table["star"]) == list(real["name"]) and list(table["library"]) == list(real["library"])
    network, sigma = ens.predict(ens.inputs(flux), calibrated=True)
    for label in ("teff", "logg", "m_h"):
        np.testing.assert_allclose(table[f"{label} fit"], fitted[label], rtol=1e-6)
        np.testing.assert_allclose(table[f"{label} network"], network[:, CORE_LABELS.index(label)], rtol=1e-6)
        np.testing.assert_allclose(table[f"{label} sigma"], sigma[:, CORE_LABELS.index(label)], rtol=1e-6)
    lit = realism.read_real_labels()
    star = lit[list(lit["name"]).index("HD39587")]
    assert table["teff literature"][0] == star["teff_K"] and table["logg literature"][0] == star["logg_dex"]
    assert np.isnan(table["teff literature"][1]) and np.isnan(table["logg literature"][1])
    assert np.all((table["teff fit"] > 3500) & (table["teff fit"] < 8000))   # inside the fit's bounds

    # labels are looked up by name: a network predicting (logg, teff) only; the fit is reused
    monkeypatch.setattr(validation, "real_on_grid", lambda **kwargs: (fitted, flux))
    two = toy_ensemble(("logg", "teff"), n_pixels=grid.size)
    with pytest.warns(UserWarning, match="no novelty statistics"):  # an ensemble without them
        small = validation.domain_shift(two, real, grid, literature=lit[:0])
    assert small.colnames == ["star", "library", "teff fit", "teff network", "teff sigma", "logg fit",
                              "logg network", "logg sigma", "teff literature", "logg literature", "ood_score",
                              "out_of_domain"]
    assert np.isnan(small["ood_score"]).all() and not small["out_of_domain"].any()
    mean, _ = two.predict(two.inputs(flux), calibrated=True)
    np.testing.assert_allclose(small["teff network"], mean[:, 1], rtol=1e-6)
    np.testing.assert_allclose(small["logg network"], mean[:, 0], rtol=1e-6)
    assert np.isnan(small["teff literature"]).all()


def test_domain_shift_refuses_a_photometry_ensemble(with_photometry):
    with pytest.raises(ValueError, match="spectra-only"):
        validation.domain_shift(with_photometry, realism.read_real_spectra()[:1], common_wavelengths())


def test_the_summary_picks_of_the_tables():
    """top_bin_ratios: each label's highest SNR bin with a ratio; best_methods: the smallest scatter."""
    ratios = Table({"snr_lo": [10, 50, 80, 10], "label": ["teff", "teff", "teff", "logg"],
                    "ratio": [2.0, 1.5, np.nan, 0.7]})
    assert validation.top_bin_ratios(ratios, ["teff", "logg", "m_h"]) == pytest.approx(
        {"teff": 1.5, "logg": 0.7, "m_h": np.nan}, nan_ok=True)
    table = Table({"method": ["CNN a", "ridge", "published"], "teff": [80.0, 90.0, 50.0],
                   "logg": [np.nan, 0.2, 0.1]})
    assert validation.best_methods(table, ["teff", "logg"], skip=["published"]) == {
        "teff": ("CNN a", 80.0), "logg": ("ridge", 0.2)}
