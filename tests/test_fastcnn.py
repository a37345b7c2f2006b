"""The numba engine equals Keras' own predict, and says which networks it cannot run."""

import shutil
from pathlib import Path

import numpy as np
import pytest

from ravecnn_utils import model as cnn
from ravecnn_utils.fastcnn import FastCNN, check_supported
from ravecnn_utils.inference import CompiledModel, compile_model


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(21)


def _net(builder, seed, **kwargs):
    import keras

    keras.utils.set_random_seed(seed)
    return builder(**kwargs)


@pytest.mark.parametrize("threads", [1, 3])
def test_slides_network_equals_keras(rng, threads):
    """Kernels of 20 px: equal to model.predict within 1e-5, whatever the number of threads."""
    net = _net(cnn.slides_cnn, 5, n_pixels=150)
    x = rng.normal(1, 0.1, (41, 150, 1)).astype(np.float32)
    out = FastCNN(net, threads=threads)(x)
    assert out.dtype == np.float32 and out.shape == (41, 4)
    np.testing.assert_allclose(out, net.predict(x, verbose=0), atol=1e-5, rtol=0)
    np.testing.assert_array_equal(FastCNN(net, threads=threads)(x[:, :, 0]), out)  # (n, n_pixels) too


@pytest.mark.parametrize("photometry", [False, True])
def test_paper_network_equals_keras(rng, photometry):
    """Kernels of 10 px, with and without the photometry branch (a dict input)."""
    net = _net(cnn.paper_cnn, 6, n_pixels=90, photometry=photometry)
    spectra = rng.normal(1, 0.1, (13, 90, 1)).astype(np.float32)
    x = {"spectrum": spectra, "photometry": rng.normal(0, 1, (13, 9))} if photometry else spectra
    out = FastCNN(net, threads=2)(x)
    assert out.shape == (13, 9)
    np.testing.assert_allclose(out, net.predict(x, verbose=0), atol=1e-5, rtol=0)


def test_nan_pixel_gives_nan_labels_for_that_spectrum_only(rng):
    net = _net(cnn.slides_cnn, 7, n_pixels=120)
    x = rng.normal(1, 0.1, (4, 120)).astype(np.float32)
    x[2, 60] = np.nan
    out = FastCNN(net, threads=2)(x)
    assert np.isnan(out[2]).all() and np.isfinite(out[[0, 1, 3]]).all()
    assert np.isnan(net.predict(x[:, :, None], verbose=0)[2]).all()  # as Keras does


def test_input_errors(rng):
    net = _net(cnn.paper_cnn, 8, n_pixels=60, photometry=True)
    f = FastCNN(net)
    spectra = rng.normal(1, 0.1, (3, 60, 1))
    with pytest.raises(KeyError, match="photometry"):
        f({"spectrum": spectra})
    with pytest.raises(ValueError, match="photometry of shape"):
        f({"spectrum": spectra, "photometry": np.zeros((3, 4))})
    with pytest.raises(ValueError, match="takes 60 pixels"):
        f({"spectrum": spectra[:, :59], "photometry": np.zeros((3, 9))})
    assert f({"spectrum": spectra[:0], "photometry": np.zeros((0, 9))}).shape == (0, 9)


def test_other_networks_are_refused_by_name_and_auto_falls_back():
    """A 'same'-padded convolution is not what the kernel computes: refused with the layer named;
    compile_model('auto') then uses TensorFlow, compile_model('numba') raises."""
    import keras

    net = _net(cnn.slides_cnn, 9, n_pixels=80)
    assert check_supported(net) == pytest.approx(cnn.LEAKY_SLOPE)
    same = keras.Sequential([keras.Input((80, 1), name="spectrum"),
                             keras.layers.Conv1D(8, 20, padding="same", name="conv1"),
                             keras.layers.LeakyReLU(name="conv1_lrelu")])
    with pytest.raises(ValueError, match="conv2"):
        check_supported(same)
    assert isinstance(compile_model(net), FastCNN)
    assert isinstance(compile_model(net, engine="tensorflow"), CompiledModel)
    assert isinstance(compile_model(same), CompiledModel)
    with pytest.raises(ValueError):
        compile_model(same, engine="numba")
    with pytest.raises(ValueError, match="unknown engine"):
        compile_model(net, engine="jax")


def test_changed_layer_is_named():
    """Right names, but conv2 has its own ReLU inside: the layer at fault is named."""
    import keras

    net = _net(cnn.slides_cnn, 10, n_pixels=80)
    cfg = net.get_config()
    for layer in cfg["layers"]:
        if layer["config"]["name"] == "conv2":
            layer["config"]["activation"] = "relu"
    changed = keras.Model.from_config(cfg)
    with pytest.raises(ValueError, match="'conv2'"):
        check_supported(changed)


@pytest.mark.parametrize("photometry", [False, True])
def test_features_equal_keras_last_hidden_layer(rng, photometry):
    """features=True: the kernel's and the TensorFlow engine's last hidden layer (dense16 after its
    LeakyReLU) equal Keras' own activations of that layer within 1e-5, and the labels are unchanged."""
    import keras

    from ravecnn_utils.fastcnn import FEATURE_LAYER

    net = _net(cnn.paper_cnn, 12, n_pixels=70, photometry=photometry)
    spectra = rng.normal(1, 0.1, (23, 70, 1)).astype(np.float32)
    x = {"spectrum": spectra, "photometry": rng.uniform(0, 1, (23, 9))} if photometry else spectra
    hidden = keras.Model(net.inputs, net.get_layer(FEATURE_LAYER).output).predict(x, verbose=0)
    assert hidden.shape == (23, 16) and np.ptp(hidden) > 0.1
    for engine in (FastCNN(net, threads=2), CompiledModel(net, batch_size=8)):
        labels, features = engine(x, features=True)
        np.testing.assert_allclose(features, hidden, atol=1e-5, rtol=0)
        np.testing.assert_array_equal(labels, engine(x))
    empty = {k: v[:0] for k, v in x.items()} if photometry else spectra[:0]
    assert [a.shape for a in CompiledModel(net)(empty, features=True)] == [(0, 9), (0, 16)]


def test_features_of_a_network_without_the_layer_are_refused_by_name():
    import keras

    other = keras.Sequential([keras.Input((30, 1), name="spectrum"), keras.layers.Flatten(),
                              keras.layers.Dense(2, name="labels")])
    with pytest.raises(ValueError, match="dense16_lrelu"):
        CompiledModel(other)(np.ones((2, 30, 1)), features=True)


def test_spectra_input_masks_like_numpy_whatever_the_byte_order(rng):
    """One pass equals the numpy masking (bad: flux not finite, error not finite or <= 0 → 1) for
    native, big-endian (a FITS memory map), mixed and float64 arrays, on 1 or 3 threads."""
    from ravecnn_utils.fastcnn import spectra_input

    flux = rng.normal(1, 0.1, (37, 50)).astype(np.float32)
    error = rng.uniform(0.01, 0.1, (37, 50)).astype(np.float32)
    for array, value, fraction in ((flux, np.nan, 0.05), (flux, -np.inf, 0.02), (error, np.inf, 0.05),
                                   (error, 0.0, 0.02), (error, -0.1, 0.02), (error, np.nan, 0.02)):
        array[rng.random(array.shape) < fraction] = value
    error[3] = np.inf                                   # a spectrum without any usable pixel
    bad = ~np.isfinite(flux) | ~(error > 0) | ~np.isfinite(error)
    expected = np.where(bad, np.float32(1), flux)
    for f, e in ((flux, error), (flux.astype(">f4"), error.astype(">f4")), (flux, error.astype(">f4")),
                 (flux.astype(float), error.astype(float)), (np.asfortranarray(flux), error)):
        for threads in (1, 3):
            x, n_bad = spectra_input(f, e, threads=threads)
            assert x.dtype == np.float32 and x.dtype.isnative and n_bad.dtype == np.int32
            np.testing.assert_array_equal(x, expected)
            np.testing.assert_array_equal(n_bad, bad.sum(axis=1))
    assert n_bad[3] == 50 and 0 < n_bad.sum() < bad.size
    with pytest.raises(ValueError, match=r"flux \(37, 50\) and error \(37, 49\)"):
        spectra_input(flux, error[:, :49])


KERNEL_RUN = """
import numpy as np
from ravecnn_utils import fastcnn
rng = np.random.default_rng(0)
w = [rng.normal(0, 0.3, s).astype(np.float32) for s in [(10, 1, 8), 8, (10, 8, 4), 4, (10, 4, 2), 2, (32, 2 * 23), 32,
     (0, 0), 0, (16, 32), 16, (4, 16), 4]]
out, features = np.zeros((5, 4), np.float32), np.zeros((5, 16), np.float32)
forward = fastcnn.kernel(10)
forward(rng.normal(1, 0.1, (5, 50)).astype(np.float32), np.zeros((5, 0), np.float32), *w, np.float32(0.3), 0, 5,
        out, features)
print(forward.py_func.__code__.co_filename, len(forward.stats.cache_hits), out.sum())
"""


def test_kernel_is_compiled_once_then_loaded_from_its_cache(tmp_path):
    """The first process writes the kernel module into $XDG_CACHE_HOME/ravecnn and compiles it; a
    second one loads numba's cached code (a cache hit, no compiling) and computes the same."""
    import os
    import subprocess
    import sys

    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path))
    runs = [subprocess.run([sys.executable, "-c", KERNEL_RUN], env=env, capture_output=True, text=True,
                           check=True).stdout.split() for _ in range(2)]
    assert runs[0][0] == runs[1][0] and runs[0][0].startswith(str(tmp_path / "ravecnn" / "ravecnn_fastcnn_w10_"))
    assert (runs[0][1], runs[1][1]) == ("0", "1")      # compiled, then loaded
    assert runs[0][2] == runs[1][2]
    assert list((tmp_path / "ravecnn" / "__pycache__").glob("*.nbi"))


def test_kernel_falls_back_to_a_temporary_folder(tmp_path, monkeypatch):
    """A cache folder one may not create (here: below a file) gives way to a temporary one."""
    from ravecnn_utils import fastcnn

    (tmp_path / "file").write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "file"))
    forward = fastcnn.kernel.__wrapped__(10)  # past the per-process cache
    path = Path(forward.py_func.__code__.co_filename)
    assert path.parent.name.startswith("ravecnn-kernel-") and path.read_text() == fastcnn.kernel_source(10)
    shutil.rmtree(path.parent)


def test_spectra_input_builds_in_a_given_array(rng):
    """``out``: the input is built in its first n rows (the array a survey run reuses from chunk to
    chunk); an array of the wrong kind is refused by name."""
    from ravecnn_utils.fastcnn import spectra_input

    flux, error = rng.normal(1, 0.1, (6, 20)).astype(np.float32), np.full((6, 20), 0.05, np.float32)
    error[2, 5] = np.inf
    out = np.zeros((9, 20), np.float32)
    x, n_bad = spectra_input(flux, error, out=out)
    assert np.shares_memory(x, out) and x.shape == (6, 20)
    np.testing.assert_array_equal(out[:6], np.where(np.isinf(error), np.float32(1), flux))
    assert (out[6:] == 0).all() and n_bad.tolist() == [0, 0, 1, 0, 0, 0]
    for wrong in (np.zeros((5, 20), np.float32), np.zeros((9, 20)), np.zeros((9, 20), ">f4"), np.zeros((20, 9)).T):
        with pytest.raises(ValueError, match="out: "):
            spectra_input(flux, error, out=wrong)
