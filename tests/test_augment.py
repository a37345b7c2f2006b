"""The training variants of issue 16: decorrelating weights, noise re-drawn per epoch, loss weights.

Toy samples and one-layer models with fixed seeds keep this file fast.
"""

import os
from functools import partial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ravecnn_utils import augment, train  # noqa: E402
from ravecnn_utils.model import WeightedMaskedMSE, masked_mse  # noqa: E402

N_PIX = 20


def weighted_corr(a, b, w):
    """Pearson correlation of a and b with weights w."""
    w = w / w.sum()
    da, db = a - np.sum(w * a), b - np.sum(w * b)
    return np.sum(w * da * db) / np.sqrt(np.sum(w * da**2) * np.sum(w * db**2))


def toy_stars(n=4000, seed=3):
    """[M/H] and an [α/M] that falls with it (the Milky Way's trend), plus a second [X/Fe]."""
    rng = np.random.default_rng(seed)
    m_h = rng.normal(-0.2, 0.4, n)
    alpha = np.clip(0.1 - 0.25 * m_h + rng.normal(0, 0.05, n), -0.2, 0.5)
    x_fe = 0.5 * alpha + rng.normal(0, 0.05, n)
    return m_h, np.column_stack([alpha, x_fe])


def test_decorrelating_weights_weaken_the_correlation_and_stay_sane():
    m_h, labels = toy_stars()
    w = augment.decorrelating_weights(m_h, labels)
    assert np.all(np.isfinite(w)) and np.all(w > 0)
    assert np.mean(w) == pytest.approx(1.0)
    ones = np.ones_like(w)
    for j in range(labels.shape[1]):
        before = abs(weighted_corr(m_h, labels[:, j], ones))
        after = abs(weighted_corr(m_h, labels[:, j], w))
        assert before > 0.6
        assert after < before - 0.2


def test_decorrelating_weights_neutral_on_missing_and_flat_samples():
    m_h, labels = toy_stars(500)
    labels[:10, 0] = np.nan
    m_h[10:20] = np.nan
    w = augment.decorrelating_weights(m_h, labels[:, 0])
    assert np.all(np.isfinite(w)) and np.all(w > 0) and np.mean(w) == pytest.approx(1.0)
    # labels already independent of [M/H] (every combination equally common) get weights 1
    grid_m_h, grid_label = np.meshgrid(np.arange(8.0), np.arange(8.0))
    assert np.allclose(augment.decorrelating_weights(grid_m_h.ravel(), grid_label.ravel()), 1.0)
    with pytest.raises(ValueError, match="max_weight"):
        augment.decorrelating_weights(m_h, labels, max_weight=1.0)


def toy_spectra(n=48, seed=1):
    rng = np.random.default_rng(seed)
    y = rng.uniform(0, 1, (n, 2)).astype(np.float32)
    line = np.exp(-0.5 * ((np.arange(N_PIX) - 10) / 2.0) ** 2)
    flux = 1 - 0.5 * y[:, :1] * line + rng.normal(0, 0.01, (n, N_PIX))
    error = np.full((n, N_PIX), 0.02, np.float32)
    error[:, :3] = np.inf  # no information: no noise either
    return flux[..., None].astype(np.float32), y, error


def test_noisy_inputs_redraw_every_epoch_and_only_where_there_is_information():
    x, y, error = toy_spectra()
    phot = np.arange(len(y) * 2, dtype=np.float32).reshape(-1, 2)
    data = augment.NoisyInputs({"spectrum": x, "photometry": phot}, y, augment.noise_sigma(error),
                               batch_size=len(y), seed=5)
    first, labels = data[0]
    again, _ = data[0]
    np.testing.assert_array_equal(first["spectrum"], again["spectrum"])  # same epoch: same draw
    assert not np.allclose(first["spectrum"], x)  # noise added …
    np.testing.assert_array_equal(first["spectrum"][:, :3], x[:, :3])  # … but not where σ is inf
    np.testing.assert_array_equal(first["photometry"], phot)
    np.testing.assert_array_equal(labels, y)
    assert np.std(first["spectrum"] - x) == pytest.approx(0.02 * np.sqrt(17 / 20), rel=0.1)  # 17 of 20 px
    data.on_epoch_end()
    second, _ = data[0]
    assert not np.allclose(second["spectrum"], first["spectrum"])  # a new epoch: new noise


def dense_build():
    inp = keras.Input((N_PIX, 1), name="spectrum")
    return keras.Model(inp, keras.layers.Dense(2, name="labels")(keras.layers.Flatten()(inp)))


def test_noise_per_epoch_changes_training_but_not_the_validation_data():
    x, y, error = toy_spectra()
    x_val, y_val, _ = toy_spectra(16, seed=2)
    kept = x_val.copy()
    fit = dict(epochs=4, batch_size=16, patience=4, seed=3, learning_rate=0.01)
    model, history, info = train.fit_model(dense_build, x, y, x_val, y_val,
                                           noise_sigma=augment.noise_sigma(error), **fit)
    _, plain, _ = train.fit_model(dense_build, x, y, x_val, y_val, **fit)
    assert history["loss"] != plain["loss"]  # the training inputs differed
    np.testing.assert_array_equal(x_val, kept)
    # the restored model scores on the plain validation set what early stopping saw as its best
    assert model.evaluate(x_val, y_val, verbose=0) == pytest.approx(info["best_val_loss"], rel=1e-4)


def test_weighted_masked_mse_equals_masked_mse_with_unit_weights():
    rng = np.random.default_rng(0)
    y_true = rng.normal(size=(8, 3)).astype(np.float32)
    y_true[0, 1] = y_true[5, 2] = np.nan
    y_pred = rng.normal(size=(8, 3)).astype(np.float32)
    plain = float(masked_mse(y_true, y_pred))
    assert float(WeightedMaskedMSE()(y_true, y_pred)) == pytest.approx(plain, rel=1e-5)
    assert float(WeightedMaskedMSE([1, 1, 1])(y_true, y_pred, sample_weight=np.ones(8))) == \
        pytest.approx(plain, rel=1e-5)
    # a star of weight 0 drops out of the numerator
    sw = np.ones(8, np.float32)
    sw[3] = 0
    assert float(WeightedMaskedMSE()(y_true, y_pred, sample_weight=sw)) < plain
    assert WeightedMaskedMSE.from_config(WeightedMaskedMSE([2, 1, 1]).get_config()).label_weights == [2, 1, 1]


def shared_build(initializer="glorot_uniform"):
    """One weight w shared by two outputs: ŷ = (w·x, w·x). Against y = (x, 3x) the fit of w is the
    loss-weighted compromise (w₁ + 3 w₂)/(w₁ + w₂): 2 unweighted, 2.8 with weights (1, 9)."""
    inp = keras.Input((1,), name="spectrum")
    out = keras.layers.Dense(1, use_bias=False, kernel_initializer=initializer, name="w")(inp)
    return keras.Model(inp, keras.layers.Concatenate(name="labels")([out, out]))


@pytest.mark.parametrize("weights, expected", [(None, 2.0), ([1.0, 9.0], 2.8)])
def test_label_weights_reach_the_compiled_loss(weights, expected):
    rng = np.random.default_rng(4)
    x = rng.uniform(-1, 1, (64, 1)).astype(np.float32)
    y = np.column_stack([x[:, 0], 3 * x[:, 0]]).astype(np.float32)
    model, _, _ = train.fit_model(shared_build, x, y, x, y, epochs=60, batch_size=16, patience=60,
                                  learning_rate=0.05, seed=0, label_weights=weights)
    assert isinstance(model.loss, WeightedMaskedMSE) == (weights is not None)
    assert float(model.get_layer("w").get_weights()[0][0, 0]) == pytest.approx(expected, abs=0.05)


def test_sample_weights_reach_the_fit():
    """Two groups of stars disagree on the label (0 and 1); weighting the second group by 7 pulls
    the fit from their mean 0.5 to 7/8. (w starts at 0 and the validation stars, unweighted, have
    label 10, so that early stopping keeps the largest w, where the climb ends.)"""
    x = np.ones((40, 1), np.float32)
    y = np.concatenate([np.zeros(20), np.ones(20)]).astype(np.float32)[:, None].repeat(2, axis=1)
    sw = np.concatenate([np.full(20, 0.25), np.full(20, 1.75)])
    fit = dict(epochs=20, batch_size=8, patience=20, learning_rate=0.02, seed=0)
    results = [float(train.fit_model(partial(shared_build, "zeros"), x, y, x[:4], np.full((4, 2), 10.0), sample_weight=weights,
                                     **fit)[0].get_layer("w").get_weights()[0][0, 0]) for weights in (None, sw)]
    assert results == pytest.approx([0.5, 0.875], abs=0.05)


VARIANTS = dict(decorrelate=True, noise_per_epoch=True, label_weights={"alpha_m": 4.0})


def test_train_network_passes_the_variants_to_every_member(toy_training_set, monkeypatch):
    wave, flux, error, table = toy_training_set
    seen = []
    fit_model = train.fit_model
    monkeypatch.setattr(train, "fit_model", lambda *a, **k: seen.append(k) or fit_model(*a, **k))
    ens = train.train_network("slides", flux, error, table, wave, n_models=2, progress=False, epochs=1,
                              batch_size=16, patience=1, **VARIANTS)
    n_train = int(np.sum(np.asarray(table["split"]) == "train"))
    for kwargs in seen:
        assert kwargs["label_weights"] == [1.0, 1.0, 1.0, 4.0]  # teff, logg, m_h, alpha_m
        assert kwargs["sample_weight"].shape == (n_train,) and np.mean(kwargs["sample_weight"]) == pytest.approx(1)
        assert kwargs["noise_sigma"].shape == (n_train, len(wave))
    assert len(seen) == 2
    assert ens.metadata["decorrelated"] == list(train.DECORRELATED) and ens.metadata["noise_per_epoch"]
    assert 0 < ens.metadata["effective_train_fraction"] <= 1
    assert ens.metadata["fit"]["label_weights"] == [1.0, 1.0, 1.0, 4.0]
    with pytest.raises(ValueError, match="fe_h"):
        train.train_network("slides", flux, error, table, wave, n_models=2, label_weights={"fe_h": 2.0})


def test_the_variants_reach_members_trained_in_processes(toy_training_set):
    """Two processes (the per-row weights and noise σ travel as files) give the serial members to
    round-off; without the variants the members differ by far more."""
    wave, flux, error, table = toy_training_set
    kwargs = dict(n_models=2, seed=5, progress=False, epochs=1, batch_size=16, patience=1)
    pooled = train.train_network("slides", flux, error, table, wave, processes=2, **kwargs, **VARIANTS)
    serial = train.train_network("slides", flux, error, table, wave, processes=1, **kwargs, **VARIANTS)
    plain = train.train_network("slides", flux, error, table, wave, processes=1, **kwargs)
    for a, b, c in zip(pooled.members, serial.members, plain.members):
        wa, wb, wc = (np.concatenate([w.ravel() for w in m.get_weights()]) for m in (a, b, c))
        assert np.max(np.abs(wa - wb)) < 1e-4 < np.max(np.abs(wc - wb))
