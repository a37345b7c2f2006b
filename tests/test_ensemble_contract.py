"""The trained network as an artefact (ravecnn_utils.train.train_network, ravecnn_utils.ensemble):
what train_network stores in the ensemble (photometry scaler, training range, calibration,
validation spread), what survives saving, what is refused, and the photometry ensemble through
the survey path (``predict.predict_cube`` with the RAVE catalogue).

Tiny networks: the ``toy_training_set`` of conftest.py (60 px, 36 train rows), 2 members, 2 epochs.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.table import Table  # noqa: E402

from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils import predict, train  # noqa: E402
from ravecnn_utils.ensemble import ENSEMBLE_FILE, Ensemble, LabelScaler  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS, LABELS  # noqa: E402
from ravecnn_utils.photometry import COLUMNS, FEATURES, absolute_magnitudes  # noqa: E402
from ravecnn_utils.trainingset import label_array  # noqa: E402

FIT = {"epochs": 2, "batch_size": 16, "learning_rate": 1e-3, "patience": 2}


@pytest.fixture(scope="module")
def photometry_ensemble(toy_training_set):
    wave, flux, error, table = toy_training_set
    return train.train_network("paper_photometry", flux, error, table, wave, n_models=2, seed=3,
                               progress=False, **FIT)


def rows(table, part):
    return np.asarray(table["split"]) == part


# --- train_network ------------------------------------------------------------------------------

def test_photometry_network_takes_photometry_with_nine_labels(photometry_ensemble, toy_training_set):
    wave, flux, error, table = toy_training_set
    ens = photometry_ensemble
    assert ens.takes_photometry and ens.labels == LABELS and len(ens) == 2
    assert ens.grid == (8410.0, 0.39, 60)
    meta = ens.metadata
    assert meta["network"] == "paper_photometry" and meta["photometry"] == list(FEATURES)
    assert meta["seeds"] == [3, 4] and meta["training_set_hash"] == "toyhash"
    assert meta["n_train"] == 36 and meta["n_validation"] == 12   # the test rows are never used
    x = ens.inputs(flux[:3], error[:3], table[:3])
    assert set(x) == {"spectrum", "photometry"} and x["photometry"].shape == (3, len(FEATURES))
    with pytest.raises(ValueError, match="photometry"):
        ens.inputs(flux[:3], error[:3])


def test_photometry_scaler_is_fitted_on_the_train_rows_only(photometry_ensemble, toy_training_set):
    table = toy_training_set[3]
    train_rows = absolute_magnitudes(table[rows(table, "train")])
    expected = LabelScaler().fit(train_rows)
    scaler = photometry_ensemble.photometry_scaler
    np.testing.assert_array_equal(scaler.minimum, expected.minimum)
    np.testing.assert_array_equal(scaler.scale, expected.scale)
    everything = LabelScaler().fit(absolute_magnitudes(table))
    assert not np.allclose(everything.scale, expected.scale)  # the test can tell them apart


def test_training_range_is_that_of_the_train_labels(photometry_ensemble, toy_training_set):
    table = toy_training_set[3]
    y = label_array(table, LABELS, rows(table, "train"))
    lo, hi = photometry_ensemble.training_range
    np.testing.assert_array_equal(lo, np.nanmin(y, axis=0))
    np.testing.assert_allclose(hi, np.nanmax(y, axis=0), rtol=1e-12)
    y_val = label_array(table, LABELS, rows(table, "validation"))
    assert np.nanmin(y_val[:, 0]) < lo[0] and np.nanmax(y_val[:, 0]) > hi[0]


def test_calibration_and_validation_spread_for_every_label(photometry_ensemble, toy_training_set):
    wave, flux, error, table = toy_training_set
    ens = photometry_ensemble
    assert set(ens.calibration) == set(ens.validation_spread) == set(LABELS)
    k, spread = ens.calibration_factors, ens.validation_spreads
    assert k.shape == spread.shape == (9,)
    assert np.all(np.isfinite(k) & (k > 0)) and np.all(np.isfinite(spread) & (spread > 0))
    np.testing.assert_array_equal(k, [ens.calibration[n] for n in LABELS])
    # the validation spread is the members' median spread on the validation rows
    val = rows(table, "validation")
    _, raw = ens.predict(ens.inputs(flux[val], error[val], table[val]))
    np.testing.assert_allclose(spread, np.median(raw, axis=0), rtol=1e-6)


def test_novelty_from_the_train_rows_and_threshold_from_the_validation_rows(photometry_ensemble,
                                                                            toy_training_set):
    """train_network fits the feature clouds on the 36 train rows (photometry branch included) and
    sets the threshold on the 12 validation rows for the default rate: too few for 1 %, so it is
    the largest validation score."""
    wave, flux, error, table = toy_training_set
    ens = photometry_ensemble
    nov = ens.novelty
    assert (nov.n_train, nov.n_validation, nov.false_alarm_rate) == (36, 12, 0.01)
    assert nov.mean.shape == (2, 16) and nov.precision.shape == (2, 16, 16)
    val = rows(table, "validation")
    _, _, score = ens.predict(ens.inputs(flux[val], error[val], table[val]), scores=True)
    assert nov.threshold == pytest.approx(score.max(), rel=1e-6)
    assert not nov.flag(score).any()


def test_save_and_load_keep_the_contract(photometry_ensemble, toy_training_set, tmp_path):
    wave, flux, error, table = toy_training_set
    ens = photometry_ensemble
    folder = ens.save(tmp_path / "ens")
    saved = json.loads((folder / ENSEMBLE_FILE).read_text())
    assert saved["photometry_scaler"]["kind"] == "minmax" and saved["photometry"] == list(FEATURES)
    back = Ensemble.load(folder, grid=wave, labels=LABELS)
    assert back.takes_photometry
    np.testing.assert_array_equal(back.photometry_scaler.minimum, ens.photometry_scaler.minimum)
    np.testing.assert_array_equal(back.photometry_scaler.scale, ens.photometry_scaler.scale)
    assert back.validation_spread == pytest.approx(ens.validation_spread, rel=1e-15)
    assert back.calibration == pytest.approx(ens.calibration, rel=1e-15)
    assert saved["novelty"]["n_validation"] == 12 and back.novelty.threshold == ens.novelty.threshold
    x = ens.inputs(flux, error, table)
    np.testing.assert_array_equal(back.inputs(flux, error, table)["photometry"], x["photometry"])
    for calibrated in (False, True):
        for a, b in zip(ens.predict(x, calibrated), back.predict(x, calibrated)):
            np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-5)


def test_ensemble_without_calibration_names_what_is_missing(photometry_ensemble):
    ens = photometry_ensemble
    bare = Ensemble(ens.members, ens.scaler, ens.labels)
    with pytest.raises(ValueError, match="not calibrated"):
        bare.calibration_factors
    with pytest.raises(ValueError, match="validation spread"):
        bare.validation_spreads
    half = Ensemble(ens.members, ens.scaler, ens.labels, calibration=ens.calibration)
    np.testing.assert_array_equal(half.calibration_factors, ens.calibration_factors)
    with pytest.raises(ValueError, match="validation spread"):
        half.validation_spreads


def test_slides_network_is_spectra_only_with_the_core_labels(toy_training_set):
    wave, flux, error, table = toy_training_set
    ens = train.train_network("slides", flux, error, table, wave, n_models=2, seed=1, progress=False,
                              **(FIT | {"epochs": 1}))
    assert not ens.takes_photometry and ens.photometry_scaler is None
    assert ens.labels == CORE_LABELS and ens.members[0].name == "slides_cnn"
    assert ens.describe()["photometry"] is None and set(ens.calibration) == set(CORE_LABELS)
    x = ens.inputs(flux[:4], error[:4])
    assert isinstance(x, np.ndarray) and x.shape == (4, 60, 1)
    lo, _ = ens.training_range
    np.testing.assert_array_equal(lo, np.nanmin(label_array(table, CORE_LABELS, rows(table, "train")), axis=0))


@pytest.mark.parametrize("n_models, drop_worst", [(1, 0.0), (2, 0.5), (3, 0.67)])
def test_an_ensemble_that_would_keep_fewer_than_two_members_is_refused_before_training(
        toy_training_set, n_models, drop_worst):
    """One member has no spread: every catalogue error would be NaN and no member could disagree."""
    wave, flux, error, table = toy_training_set
    with pytest.raises(ValueError, match=r"keeps 1 member\(s\); an ensemble needs at least 2"):
        train.train_network("slides", flux, error, table, wave, n_models=n_models, drop_worst=drop_worst,
                            progress=False, **FIT)


def test_calibrating_one_member_is_refused(photometry_ensemble, toy_training_set):
    wave, flux, error, table = toy_training_set
    one = Ensemble(photometry_ensemble.members[:1], photometry_ensemble.scaler, LABELS, grid=wave,
                   photometry_scaler=photometry_ensemble.photometry_scaler)
    val = rows(table, "validation")
    with pytest.raises(ValueError, match="calibrating needs at least 2 members, this ensemble has 1"):
        one.calibrate(one.inputs(flux[val], error[val], table[val]), label_array(table, LABELS, val))


def test_unknown_network_lists_the_known_ones(toy_training_set):
    wave, flux, error, table = toy_training_set
    with pytest.raises(ValueError, match="paper_cnn_9") as info:
        train.train_network("paper_cnn_9", flux, error, table, wave, n_models=2, progress=False)
    for name in cnn.NETWORKS:
        assert repr(name) in str(info.value)


# --- the photometry ensemble through the survey path --------------------------------------------

@pytest.fixture(scope="module")
def survey_cube(toy_training_set, write_cube, tmp_path_factory):
    """The toy spectra in a shuffled order as a spectra cube; the catalogue (rave_obs_id and the
    photometry columns) in yet another order. Returns (cube path, cube order, catalogue)."""
    wave, flux, error, table = toy_training_set
    rng = np.random.default_rng(11)
    order = rng.permutation(len(table))
    path = write_cube(tmp_path_factory.mktemp("cube") / "cube.fits", wave, flux[order], error[order],
                      table["rave_obs_id"][order], block=7)
    catalogue = table[["rave_obs_id", *COLUMNS]][rng.permutation(len(table))]
    assert list(catalogue["rave_obs_id"]) != list(table["rave_obs_id"][order])
    return path, order, catalogue


def test_predict_cube_matches_the_photometry_of_each_spectrum(photometry_ensemble, toy_training_set,
                                                              survey_cube, tmp_path):
    wave, flux, error, table = toy_training_set
    ens = photometry_ensemble
    path, order, catalogue = survey_cube
    out = predict.predict_cube(ens, path, tmp_path / "cat.fits", catalogue=catalogue, chunk=8, progress=False)
    cat = Table.read(out)
    assert list(cat["rave_obs_id"]) == list(table["rave_obs_id"][order])
    x = ens.inputs(flux[order], error[order], table[order])
    mean = ens.predict(x, calibrated=False)[0]
    _, sigma = ens.predict(x, calibrated=True)
    for j, name in enumerate(LABELS):
        np.testing.assert_allclose(cat[name], mean[:, j], rtol=1e-6, atol=1e-6 * ens.scaler.scale[j])
        np.testing.assert_allclose(cat[f"{name}_err"], sigma[:, j], rtol=1e-5, atol=1e-7 * ens.scaler.scale[j])
    # the photometry matters: the catalogue's rows taken in its own order predict something else
    wrong = ens.predict(ens.inputs(flux[order], error[order], catalogue))[0]
    assert not np.allclose(wrong, mean, rtol=1e-4)


def test_predict_cube_refuses_without_the_catalogue(photometry_ensemble, survey_cube, tmp_path):
    path, _, catalogue = survey_cube
    with pytest.raises(ValueError, match="photometry"):
        predict.predict_cube(photometry_ensemble, path, tmp_path / "cat.fits", progress=False)
    with pytest.raises(KeyError, match="not in the catalogue"):
        predict.predict_cube(photometry_ensemble, path, tmp_path / "cat.fits", catalogue=catalogue[1:],
                             progress=False)
    assert not (tmp_path / "cat.fits").exists()
