"""Training: label scaling, inputs, seeded fits, early stopping, ensembles (save, load, calibrate).

Tiny networks (slides_cnn on 80 px, 2 labels, 64 spectra, 2–3 epochs) keep this file fast.
"""

import inspect
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils import inputs, train  # noqa: E402
from ravecnn_utils.metrics import bias_and_scatter  # noqa: E402
from ravecnn_utils.ensemble import Ensemble, LabelScaler  # noqa: E402

N_PIX = 80
LABELS = ("teff", "logg")
GRID = (8420.0, 0.4, N_PIX)
FIT = {"epochs": 2, "batch_size": 32, "learning_rate": 1e-3, "patience": 2}


def build():
    return cnn.slides_cnn(n_pixels=N_PIX, labels=LABELS)


def spectra(n, seed, teff=(4000, 6500)):
    """Synthetic spectra whose two line depths follow Teff and log g; labels (n, 2) physical."""
    rng = np.random.default_rng(seed)
    y = np.column_stack([rng.uniform(*teff, n), rng.uniform(1.0, 4.8, n)])
    pix = np.arange(N_PIX)
    line1 = np.exp(-0.5 * ((pix - 25) / 2.0) ** 2)
    line2 = np.exp(-0.5 * ((pix - 55) / 3.0) ** 2)
    depth1 = 0.8 - 0.1 * (y[:, :1] - 4000) / 1000
    depth2 = 0.1 + 0.1 * y[:, 1:]
    flux = 1 - depth1 * line1 - depth2 * line2 + rng.normal(0, 0.01, (n, N_PIX))
    return inputs.prepare_inputs(flux), y


@pytest.fixture(scope="module")
def data():
    x_train, y_train = spectra(64, seed=1)
    x_val, y_val = spectra(32, seed=2, teff=(3800, 6800))  # wider than the training rows
    return x_train, y_train, x_val, y_val


@pytest.fixture(scope="module")
def ensemble(data):
    """3 members, the worst dropped (drop_worst=0.34 keeps 2)."""
    x_train, y_train, x_val, y_val = data
    return train.train_ensemble(build, x_train, y_train, x_val, y_val, n_models=3, seeds=[11, 12, 13],
                                drop_worst=0.34, labels=LABELS, grid=GRID, progress=False,
                                metadata={"training_set_hash": "abc123"}, **FIT)


# --- LabelScaler -------------------------------------------------------------------------------

def test_scaler_round_trip_ignores_nan():
    y = np.array([[4000.0, 1.0], [6000.0, np.nan], [5000.0, 3.0]])
    scaler = LabelScaler().fit(y)
    np.testing.assert_allclose(scaler.minimum, [4000, 1])
    np.testing.assert_allclose(scaler.scale, [2000, 2])
    t = scaler.transform(y)
    assert t.dtype == np.float32
    np.testing.assert_allclose(t[:, 0], [0, 1, 0.5])
    assert np.isnan(t[1, 1])
    np.testing.assert_allclose(scaler.inverse(t), y, rtol=1e-6)
    masked = np.ma.masked_invalid(y)
    np.testing.assert_allclose(LabelScaler().fit(masked).scale, scaler.scale)


def test_scaler_all_missing_label_and_dict_round_trip():
    y = np.array([[1.0, np.nan], [3.0, np.nan]])
    scaler = LabelScaler().fit(y)
    assert scaler.scale[1] == 1 and scaler.minimum[1] == 0
    d = json.loads(json.dumps(scaler.to_dict()))
    back = LabelScaler.from_dict(d)
    np.testing.assert_array_equal(back.transform(y), scaler.transform(y))


def test_inverse_sigma_scales_without_shifting():
    scaler = LabelScaler().fit([[4000.0, 1.0], [6000.0, 5.0]])
    np.testing.assert_allclose(scaler.inverse_sigma([[0.01, 0.1]]), [[20.0, 0.4]])
    np.testing.assert_allclose(scaler.inverse([[0.01, 0.1]]), [[4020.0, 1.4]])


def test_unfitted_scaler_refuses():
    with pytest.raises(ValueError, match="not fitted"):
        LabelScaler().transform([[1.0]])


def test_scaler_is_fitted_on_training_rows_only(ensemble, data):
    _, y_train, _, y_val = data
    assert y_val[:, 0].min() < y_train[:, 0].min()
    assert ensemble.scaler.minimum.tolist() == np.min(y_train, axis=0).tolist()
    np.testing.assert_allclose(ensemble.scaler.scale, np.ptp(y_train, axis=0))


# --- prepare_inputs ----------------------------------------------------------------------------

def test_prepare_inputs_fills_pixels_without_information():
    flux = np.full((2, 6), 0.7)
    error = np.full((2, 6), 0.01)
    error[1, 2:4] = np.inf
    x = inputs.prepare_inputs(flux, error)
    assert x.shape == (2, 6, 1) and x.dtype == np.float32
    np.testing.assert_array_equal(x[1, 2:4, 0], 1.0)
    np.testing.assert_allclose(x[0, :, 0], 0.7)
    np.testing.assert_allclose(x[1, [0, 1, 4, 5], 0], 0.7)
    assert flux[1, 2] == 0.7  # input untouched


def test_prepare_inputs_names_bad_flux():
    flux = np.ones((4, 10))
    flux[1, 5] = np.nan
    flux[1, 7] = np.inf
    flux[3, 0] = np.nan
    with pytest.raises(ValueError, match=r"2 spectra.*3 pixels.*\(1, 5\), \(1, 7\), \(3, 0\)"):
        inputs.prepare_inputs(flux, np.full((4, 10), 0.01))


# --- fit_model ---------------------------------------------------------------------------------

def test_missing_labels_train_and_do_not_count(data):
    """A label missing for half the rows trains (finite loss); one missing everywhere gets no gradient."""
    x_train, y_train, x_val, y_val = data
    labels4 = (*LABELS, "m_h", "alpha_m")
    four = lambda: cnn.slides_cnn(n_pixels=N_PIX, labels=labels4)  # noqa: E731
    scaler = LabelScaler().fit(y_train)
    extra = np.random.default_rng(3).uniform(0, 1, (len(y_train), 2)).astype(np.float32)
    extra[::2, 0] = np.nan  # m_h: half missing
    extra[:, 1] = np.nan  # alpha_m: nothing known
    y4 = np.hstack([scaler.transform(y_train), extra])
    v4 = np.hstack([scaler.transform(y_val), np.full((len(y_val), 2), np.nan, np.float32)])
    train.set_seed(5)
    kernel0, bias0 = four().get_layer("labels").get_weights()
    model, history, _ = train.fit_model(four, x_train, y4, x_val, v4, seed=5, **FIT)
    assert np.all(np.isfinite(history["loss"])) and np.all(np.isfinite(history["val_loss"]))
    kernel, bias = model.get_layer("labels").get_weights()
    np.testing.assert_array_equal(kernel[:, 3], kernel0[:, 3])
    assert bias[3] == bias0[3]
    assert not np.array_equal(kernel[:, :3], kernel0[:, :3])


def test_same_seed_same_weights(data):
    x_train, y_train, x_val, y_val = data
    scaler = LabelScaler().fit(y_train)
    args = (build, x_train, scaler.transform(y_train), x_val, scaler.transform(y_val))
    a, hist_a, _ = train.fit_model(*args, seed=7, **FIT)
    b, hist_b, _ = train.fit_model(*args, seed=7, **FIT)
    for wa, wb in zip(a.get_weights(), b.get_weights()):
        np.testing.assert_array_equal(wa, wb)
    assert hist_a == hist_b


def test_different_seeds_give_different_members(ensemble):
    a, b = (m.get_layer("conv1").get_weights()[0] for m in ensemble.members)
    assert not np.array_equal(a, b)


def test_early_stopping_on_validation_restores_best(data):
    assert not any("test" in name for name in inspect.signature(train.fit_model).parameters)
    x_train, y_train, x_val, y_val = data
    scaler = LabelScaler().fit(y_train)
    y_val_s = scaler.transform(y_val)
    fit = FIT | {"epochs": 4, "patience": 1, "learning_rate": 3e-2}  # too fast: val_loss jumps up
    model, history, info = train.fit_model(build, x_train, scaler.transform(y_train), x_val, y_val_s,
                                           seed=3, **fit)
    assert {"loss", "val_loss"} <= set(history)
    n = len(history["val_loss"])
    assert n == info["epochs_run"] < 4  # stopped early
    assert 1 <= info["best_epoch"] < n  # and went back to an earlier epoch
    assert info["best_epoch"] == int(np.argmin(history["val_loss"])) + 1
    assert info["seconds_per_epoch"] > 0
    # restored weights: their validation loss (one batch: 32 rows) is the best epoch's
    pred = model.predict(x_val, verbose=0)
    np.testing.assert_allclose(np.nanmean((pred - y_val_s) ** 2), min(history["val_loss"]), rtol=1e-4)


# --- ensembles ---------------------------------------------------------------------------------

def test_drop_worst_keeps_the_best_members(ensemble):
    assert len(ensemble) == 2
    meta = ensemble.metadata
    assert len(meta["dropped"]) == 1
    worst = meta["dropped"][0]["best_val_loss"]
    assert all(v <= worst for v in meta["best_val_losses"])
    assert sorted(meta["seeds"] + [meta["dropped"][0]["seed"]]) == [11, 12, 13]
    assert [len(h["val_loss"]) for h in meta["histories"]] == [2, 2]


def test_ensemble_predict_shapes(ensemble, data):
    x_val = data[2]
    mean, spread = ensemble.predict(x_val)
    assert mean.shape == spread.shape == (len(x_val), 2)
    assert np.all(spread >= 0) and np.all(np.isfinite(mean))
    with pytest.raises(ValueError, match="not calibrated"):
        ensemble.predict(x_val, calibrated=True)


def test_save_and_load_predict_the_same(ensemble, data, tmp_path):
    x_val, y_val = data[2], data[3]
    ensemble.calibrate(x_val, y_val)
    folder = ensemble.save(tmp_path / "ens")
    assert sorted(p.name for p in folder.iterdir()) == ["ensemble.json", "member_00.keras", "member_01.keras"]
    assert [p.name for p in tmp_path.iterdir()] == ["ens"]  # no temporary folder left behind
    text = (folder / "ensemble.json").read_text()
    d = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert d["labels"] == list(LABELS) and d["units"] == {"teff": "K", "logg": "dex"}
    assert d["grid"] == {"start": 8420.0, "step": 0.4, "n_pixels": N_PIX}
    assert d["training_set_hash"] == "abc123" and d["architecture"] == "slides_cnn"
    assert d["photometry"] is None and len(d["seeds"]) == 2 and len(d["best_epochs"]) == 2
    assert d["package_version"] and set(d["calibration"]) == set(LABELS)

    back = Ensemble.load(folder, grid=GRID, labels=LABELS)
    for calibrated in (False, True):
        for a, b in zip(ensemble.predict(x_val, calibrated), back.predict(x_val, calibrated)):
            np.testing.assert_allclose(a, b, rtol=1e-6)
    assert back.metadata["seeds"] == ensemble.metadata["seeds"]
    ensemble.save(folder)  # overwriting an existing ensemble works
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ens"]


def test_load_refuses_other_grid_labels_or_missing_member(ensemble, tmp_path):
    folder = ensemble.save(tmp_path / "ens")
    with pytest.raises(ValueError, match=r"8420.0, 0.4, 80.*expected grid is on \(8420.0, 0.4, 79\)"):
        Ensemble.load(folder, grid=(8420.0, 0.4, 79))
    with pytest.raises(ValueError, match=r"\['teff', 'logg'\], expected \['teff', 'm_h'\]"):
        Ensemble.load(folder, labels=["teff", "m_h"])
    wave = 8420.0 + 0.4 * np.arange(N_PIX)
    assert Ensemble.load(folder, grid=wave).grid == GRID
    (folder / "member_01.keras").unlink()
    with pytest.raises(FileNotFoundError, match="member_01.keras"):
        Ensemble.load(folder)


def test_interrupted_save_leaves_no_folder(ensemble, tmp_path, monkeypatch):
    def broken(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ensemble.members[1], "save", broken)
    with pytest.raises(KeyboardInterrupt):
        ensemble.save(tmp_path / "ens")
    assert list(tmp_path.iterdir()) == []
    # over an existing ensemble: the old one stays, untouched
    (tmp_path / "ens").mkdir()
    (tmp_path / "ens" / "ensemble.json").write_text("{}")
    with pytest.raises(KeyboardInterrupt):
        ensemble.save(tmp_path / "ens")
    assert [p.name for p in tmp_path.iterdir()] == ["ens"]
    assert (tmp_path / "ens" / "ensemble.json").read_text() == "{}"


# --- calibration -------------------------------------------------------------------------------

def constant_member(values, name):
    """A keras model that predicts ``values`` (scaled labels) whatever the spectrum."""
    inp = keras.Input((4, 1))
    out = keras.layers.Dense(len(values), kernel_initializer="zeros",
                             bias_initializer=keras.initializers.Constant(values))(keras.layers.Flatten()(inp))
    return keras.Model(inp, out, name=name)


def test_calibration_recovers_a_known_factor():
    """Members spread by s, truth scattered by 3 s around their mean: k = 3."""
    scaler = LabelScaler([4000.0, 0.0], [2500.0, 5.0])
    members = [constant_member([0.40, 0.50], "a"), constant_member([0.44, 0.56], "b")]
    ens = Ensemble(members, scaler, LABELS)
    x = np.zeros((4000, 4, 1), np.float32)
    mean, spread = ens.predict(x)
    np.testing.assert_allclose(mean[0], [4000 + 0.42 * 2500, 0.53 * 5])
    np.testing.assert_allclose(spread[0], [0.02 * 2500, 0.03 * 5], rtol=1e-5)
    rng = np.random.default_rng(0)
    y = mean + 3 * spread * rng.normal(size=mean.shape)
    y[::10, 1] = np.nan  # missing labels are ignored
    k = ens.calibrate(x, y)
    assert k == pytest.approx({"teff": 3.0, "logg": 3.0}, rel=0.05)
    _, sigma = ens.predict(x, calibrated=True)
    for j in range(2):
        assert bias_and_scatter((y[:, j] - mean[:, j]) / sigma[:, j])[1] == pytest.approx(1.0, abs=1e-9)


def test_dict_inputs_photometry_variant(data):
    """The photometry network takes a dict of arrays, in fit_model and in Ensemble.predict."""
    x_train, y_train, x_val, y_val = data
    rng = np.random.default_rng(4)
    phot = lambda n: rng.normal(size=(n, 3)).astype(np.float32)  # noqa: E731
    xt = {"spectrum": x_train, "photometry": phot(len(x_train))}
    xv = {"spectrum": x_val, "photometry": phot(len(x_val))}
    net = lambda: cnn.paper_cnn(n_pixels=N_PIX, labels=LABELS, photometry=True, n_photometry=3)  # noqa: E731
    ens = train.train_ensemble(net, xt, y_train, xv, y_val, n_models=1, seeds=[1], labels=LABELS,
                               progress=False, metadata={"photometry": ["g", "bp", "rp"]},
                               **(FIT | {"epochs": 1}))
    mean, spread = ens.predict(xv)
    assert mean.shape == (len(y_val), 2) and np.all(np.isfinite(mean)) and np.all(spread == 0)
    assert ens.describe()["photometry"] == ["g", "bp", "rp"]


def test_make_inputs_scales_photometry_and_fills_missing():
    """Photometry is min–max scaled with the training scaler; missing values become 0.5;
    without photometry the input is the spectra array alone."""
    flux = np.ones((3, 10), np.float32)
    phot = np.array([[1.0, 5.0], [3.0, np.nan], [2.0, 7.0]])
    scaler = LabelScaler().fit(phot)
    x = inputs.make_inputs(flux, None, phot, scaler)
    assert set(x) == {"spectrum", "photometry"} and x["spectrum"].shape == (3, 10, 1)
    np.testing.assert_allclose(x["photometry"], [[0.0, 0.0], [1.0, 0.5], [0.5, 1.0]])
    assert inputs.make_inputs(flux).shape == (3, 10, 1)
    with pytest.raises(ValueError, match="scaler"):
        inputs.make_inputs(flux, None, phot)


def test_members_trained_in_parallel_processes_match_the_serial_ones(data):
    """processes=2 fits each member in a fresh process (one thread each): the same seeds give the
    same initial weights, so the members and their validation losses agree with the serial fit to
    float round-off; the ensemble is ordered by seed and usable as the serial one."""
    from functools import partial

    x_train, y_train, x_val, y_val = data
    build_slides = partial(cnn.build, "slides", N_PIX, LABELS)
    kwargs = dict(n_models=2, seeds=[11, 12], labels=LABELS, grid=GRID, progress=False, **FIT)
    serial = train.train_ensemble(build_slides, x_train, y_train, x_val, y_val, **kwargs)
    parallel = train.train_ensemble(build_slides, x_train, y_train, x_val, y_val, processes=2, **kwargs)
    assert parallel.metadata["seeds"] == [11, 12] and len(parallel) == 2
    np.testing.assert_allclose(parallel.metadata["best_val_losses"], serial.metadata["best_val_losses"], rtol=1e-3)
    for a, b in zip(serial.members, parallel.members):
        for wa, wb in zip(a.get_weights(), b.get_weights()):
            np.testing.assert_allclose(wb, wa, rtol=1e-3, atol=1e-5)
    mean_s, _ = serial.predict(x_val)
    mean_p, _ = parallel.predict(x_val)
    np.testing.assert_allclose(mean_p, mean_s, rtol=1e-3, atol=1e-3)


def test_parallel_training_from_an_unguarded_script_fails_with_advice(tmp_path):
    """Each worker imports the calling script: without `if __name__ == "__main__":` the workers die
    at start-up; that must end in an error that says so, not in a pool that waits for ever."""
    import subprocess
    import sys

    script = tmp_path / "unguarded.py"
    script.write_text(
        "import numpy as np\n"
        "from functools import partial\n"
        "from ravecnn_utils import model, train\n"
        "x, y = np.ones((8, 80, 1), np.float32), np.ones((8, 2))\n"
        "train.train_ensemble(partial(model.build, 'slides', 80, ('teff', 'logg')), x, y, x, y,\n"
        "                     labels=('teff', 'logg'), n_models=2, processes=2, progress=False, epochs=1)\n")
    run = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert run.returncode != 0
    assert 'must sit under `if __name__ == "__main__":`' in run.stderr


def test_networks_trained_in_one_pool_equal_those_trained_one_network_at_a_time(toy_training_set, monkeypatch):
    """train_networks puts both networks' members (2 + 2) into one pool of 2 processes; each member
    comes back to its own network in seed order, weight for weight equal to train_network's."""
    wave, flux, error, table = toy_training_set
    pools = []

    class CountingPool(train.ProcessPoolExecutor):
        def map(self, fn, tasks, **kwargs):
            tasks = list(tasks)
            pools.append([task[2] for task in tasks])  # the seeds, in the order they are handed out
            return super().map(fn, tasks, **kwargs)

    monkeypatch.setattr(train, "ProcessPoolExecutor", CountingPool)
    kwargs = dict(n_models=2, seed=5, progress=False, processes=2, epochs=2, batch_size=16, patience=2)
    pooled = train.train_networks(["paper_photometry", "slides"], flux, error, table, wave, **kwargs)
    assert pools == [[5, 6, 5, 6]]  # one pool for both networks
    assert list(pooled) == ["paper_photometry", "slides"]
    for name, ens in pooled.items():
        alone = train.train_network(name, flux, error, table, wave, **kwargs)
        assert ens.metadata["network"] == name and ens.metadata["seeds"] == alone.metadata["seeds"] == [5, 6]
        assert ens.members[0].name == alone.members[0].name
        for a, b in zip(alone.members, ens.members):
            for wa, wb in zip(a.get_weights(), b.get_weights(), strict=True):
                np.testing.assert_array_equal(wb, wa)
        assert ens.metadata["histories"] == alone.metadata["histories"]
        assert ens.calibration == alone.calibration
        assert (ens.photometry_scaler is None) == (name == "slides")
    assert len(pools) == 3


def test_train_networks_checks_every_network_before_training(toy_training_set, monkeypatch):
    """A bad second network (unknown name, or named twice) stops before the first one trains."""
    wave, flux, error, table = toy_training_set
    monkeypatch.setattr(train, "fit_model", lambda *a, **k: pytest.fail("trained before checking"))
    with pytest.raises(ValueError, match="paper_cnn_9"):
        train.train_networks(["slides", "paper_cnn_9"], flux, error, table, wave, n_models=2, progress=False)
    with pytest.raises(ValueError, match="named twice"):
        train.train_networks(["slides", "slides"], flux, error, table, wave, n_models=2, progress=False)
