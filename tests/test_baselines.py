"""Peers of the CNN: mean, ridge, PCA + ridge, kNN and The Cannon behind one interface.

Small synthetic problems with fixed seeds keep this file fast: a flux linear in 3 labels for
the discriminative methods, and spectra drawn from a known quadratic model for The Cannon.
"""

import numpy as np
import pytest

from ravecnn_utils import baselines
from ravecnn_utils.baselines.cannon import _design, _design_jacobian
from ravecnn_utils.baselines import (BASELINES, KNearestNeighbours, MeanPredictor, NotFittedError, PCARidge,
                                     RidgeRegression, TheCannon)

LOW = np.array([4000.0, 1.0, -1.5])
HIGH = np.array([6500.0, 4.8, 0.4])
NOISE = 0.005


def draw_labels(rng, n):
    """(n, 3) labels: Teff [K], log g [dex], [Fe/H] [dex], uniform in the box LOW–HIGH."""
    return rng.uniform(LOW, HIGH, (n, 3))


def rmse(pred, true):
    return np.sqrt(np.mean((pred - true) ** 2, axis=0))


# --- a flux linear in the labels -----------------------------------------------------------------

@pytest.fixture(scope="module")
def linear():
    """400 training / 200 test spectra of 150 pixels, flux = 1 + A·(scaled labels) + N(0, 0.01)."""
    rng = np.random.default_rng(7)
    a = rng.normal(0, 0.03, (150, 3))
    y_train, y_test = draw_labels(rng, 400), draw_labels(rng, 200)

    def flux(y):
        scaled = (y - LOW) / (HIGH - LOW) - 0.5
        return 1 + scaled @ a.T + rng.normal(0, 0.01, (len(y), 150))

    return flux(y_train), y_train, flux(y_test), y_test


@pytest.mark.parametrize("name", ["ridge", "pca_ridge", "knn"])
def test_discriminative_methods_beat_the_mean(linear, name):
    f_train, y_train, f_test, y_test = linear
    floor = rmse(MeanPredictor().fit(f_train, y_train).predict(f_test), y_test)
    pred = BASELINES[name]().fit(f_train, y_train).predict(f_test)
    assert pred.shape == y_test.shape
    ratio = rmse(pred, y_test) / floor
    limit = 0.35 if name == "knn" else 0.2  # kNN averages neighbours in a 3-D label space
    assert np.all(ratio < limit), ratio


def test_mean_predictor_is_the_nan_aware_mean():
    y = np.array([[1.0, np.nan], [3.0, 4.0], [np.nan, np.nan]])
    pred = MeanPredictor().fit(np.ones((3, 5)), y).predict(np.ones((2, 5)))
    np.testing.assert_allclose(pred, [[2.0, 4.0], [2.0, 4.0]])


def test_ridge_alpha_scalar_or_chosen_per_label(linear):
    f_train, y_train, f_test, y_test = linear
    fixed = RidgeRegression(alpha=1e-2).fit(f_train, y_train)
    np.testing.assert_array_equal(fixed.alpha_, [1e-2] * 3)
    chosen = RidgeRegression().fit(f_train, y_train)
    assert np.all(np.isin(chosen.alpha_, baselines.ALPHAS))
    assert repr(chosen).startswith("RidgeRegression(alpha=")
    assert PCARidge(n_components=500).fit(f_train, y_train).pca_.n_components_ == 150  # capped


@pytest.mark.parametrize("name", ["mean", "ridge", "pca_ridge", "knn"])
def test_missing_labels_leave_the_other_labels_alone(linear, name):
    """30 % of log g missing: Teff and [Fe/H] predictions are exactly those of a fit without log g."""
    f_train, y_train, f_test, y_test = linear
    y = y_train.copy()
    y[np.random.default_rng(3).random(len(y)) < 0.3, 1] = np.nan
    pred = BASELINES[name]().fit(f_train, y).predict(f_test)
    alone = BASELINES[name]().fit(f_train, y[:, [0, 2]]).predict(f_test)
    np.testing.assert_allclose(pred[:, [0, 2]], alone, rtol=1e-9, atol=1e-9)
    assert np.all(np.isfinite(pred))
    if name != "mean":
        assert rmse(pred[:, 1], y_test[:, 1]) < 0.6 * np.std(y_test[:, 1])


@pytest.mark.parametrize("name", list(BASELINES))
def test_all_missing_label_is_predicted_nan(linear, name):
    f_train, y_train, f_test, _ = linear
    y = np.column_stack([y_train, np.full(len(y_train), np.nan)])
    pred = BASELINES[name]().fit(f_train[:100], y[:100]).predict(f_test[:5])
    assert pred.shape == (5, 4)
    assert np.all(np.isnan(pred[:, 3])) and np.all(np.isfinite(pred[:, :3]))


@pytest.mark.parametrize("name", list(BASELINES))
def test_interface_shapes_and_errors(linear, name):
    f_train, y_train, f_test, _ = linear
    model = BASELINES[name]()
    with pytest.raises(NotFittedError, match="not fitted; call fit"):
        model.predict(f_test)
    with pytest.raises(ValueError, match="n_spectra = 100"):
        model.fit(f_train[:100], y_train[:99])
    bad = f_train[:100].copy()
    bad[3, 7] = np.nan
    with pytest.raises(ValueError, match="NaN/inf flux"):
        model.fit(bad, y_train[:100])
    with pytest.raises(ValueError, match="differ in shape"):
        model.fit(f_train[:100], y_train[:100], ivar=np.ones((100, 149)))
    assert model.fit(f_train[:100], y_train[:100], ivar=np.full((100, 150), 1e4)) is model
    assert model.predict(f_test[:4]).shape == (4, 3)
    assert model.predict(f_test[0]).shape == (1, 3)  # one spectrum as a 1-D array
    with pytest.raises(ValueError, match="expected 150 pixels, found 149"):
        model.predict(f_test[:, :149])


def test_knn_options():
    with pytest.raises(ValueError, match="weights"):
        KNearestNeighbours(weights="gaussian")
    flux, y = np.eye(3), np.array([[1.0], [2.0], [3.0]])
    raw = KNearestNeighbours(k=50, n_components=None).fit(flux, y)  # k capped at the 3 rows
    np.testing.assert_allclose(raw.predict(flux), y)  # a training spectrum is its own neighbour


# --- The Cannon on spectra from a known quadratic model -------------------------------------------

@pytest.fixture(scope="module")
def cannon_truth():
    """300 training and 60 test spectra of 200 pixels from θ_true (in the scaled labels of the
    training set, so the learned θ is directly comparable), noise NOISE."""
    rng = np.random.default_rng(2015)
    n_pix = 200
    y_train, y_test = draw_labels(rng, 300), draw_labels(rng, 60)
    pivot, scale = y_train.mean(axis=0), y_train.std(axis=0)
    theta = np.column_stack([rng.uniform(0.6, 1.0, n_pix), rng.normal(0, 0.03, (n_pix, 3)),
                             rng.normal(0, 0.01, (n_pix, 6))])

    def model(y):
        return _design((y - pivot) / scale) @ theta.T

    f_train = model(y_train) + rng.normal(0, NOISE, (300, n_pix))
    f_test = model(y_test) + rng.normal(0, NOISE, (60, n_pix))
    # Cramér–Rao bound of each test spectrum's labels (physical units)
    crb = np.array([np.sqrt(np.diag(np.linalg.inv(j.T @ j))) * NOISE * scale
                    for j in (theta @ _design_jacobian(x) for x in (y_test - pivot) / scale)])
    return {"theta": theta, "pivot": pivot, "scale": scale, "model": model, "f_train": f_train,
            "y_train": y_train, "f_test": f_test, "y_test": y_test, "crb": crb}


def check_recovery(pred, sigma, t):
    pull = (pred - t["y_test"]) / t["crb"]
    assert np.all(np.std(pull, axis=0) < 2.0), np.std(pull, axis=0)
    assert np.all(np.abs(np.mean(pull, axis=0)) < 0.5), np.mean(pull, axis=0)
    np.testing.assert_allclose(np.median(sigma / t["crb"], axis=0), 1.0, rtol=0.3)


def test_cannon_learns_the_coefficients_and_scatter(cannon_truth):
    t = cannon_truth
    cannon = TheCannon().fit(t["f_train"], t["y_train"])
    np.testing.assert_allclose(cannon.pivot_, t["pivot"])
    np.testing.assert_allclose(cannon.scale_, t["scale"])
    design = _design((t["y_train"] - t["pivot"]) / t["scale"])
    se = NOISE * np.sqrt(np.diag(np.linalg.inv(design.T @ design)))  # least-squares standard errors
    z = (cannon.theta_ - t["theta"]) / se
    assert np.max(np.abs(z)) < 5 and 0.8 < np.std(z) < 1.2, (np.max(np.abs(z)), np.std(z))
    np.testing.assert_allclose(np.median(cannon.s_), NOISE, rtol=0.05)  # no ivar: s = total scatter
    np.testing.assert_allclose(cannon.model_flux(t["y_test"]), t["model"](t["y_test"]), atol=2 * NOISE)


def test_cannon_recovers_test_labels_to_the_noise_limit(cannon_truth):
    t = cannon_truth
    cannon = TheCannon().fit(t["f_train"], t["y_train"])
    pred, sigma, chi2 = cannon.predict_with_uncertainty(t["f_test"])
    check_recovery(pred, sigma, t)
    np.testing.assert_allclose(np.median(chi2), 1.0, atol=0.15)
    np.testing.assert_array_equal(cannon.predict(t["f_test"][:5]), pred[:5])


def test_cannon_with_inverse_variances_and_masked_pixels(cannon_truth):
    t = cannon_truth
    rng = np.random.default_rng(11)
    f_train, f_test = t["f_train"].copy(), t["f_test"].copy()
    iv_train, iv_test = np.full(f_train.shape, NOISE ** -2), np.full(f_test.shape, NOISE ** -2)
    for f, iv in ((f_train, iv_train), (f_test, iv_test)):  # 5 % of pixels without information
        dead = rng.random(f.shape) < 0.05
        f[dead], iv[dead] = 1.0, 0.0
    iv_train[:, 0] = 0.0  # one pixel never observed: ignored
    cannon = TheCannon().fit(f_train, t["y_train"], ivar=iv_train)
    assert np.isinf(cannon.s2_[0]) and np.all(np.isfinite(cannon.s2_[1:]))
    assert np.median(cannon.s_[1:]) < 0.4 * NOISE  # the noise is explained by ivar
    pred, sigma, _ = cannon.predict_with_uncertainty(f_test, ivar=iv_test)
    check_recovery(pred, sigma, t)


def test_cannon_trains_on_complete_rows_only(cannon_truth):
    t = cannon_truth
    y = t["y_train"].copy()
    y[::5, 2] = np.nan  # 20 % of [Fe/H] missing: those rows are left out
    cannon = TheCannon().fit(t["f_train"], y)
    assert cannon.n_train_ == 240
    np.testing.assert_allclose(cannon.pivot_, t["y_train"][np.isfinite(y[:, 2])].mean(axis=0))
    pred = cannon.predict(t["f_test"])
    assert np.all(np.abs(pred - t["y_test"]) / t["crb"] < 8)
    with pytest.raises(ValueError, match="needs more than 10 training spectra with every label present; found 6"):
        TheCannon().fit(t["f_train"][:6], t["y_train"][:6])
