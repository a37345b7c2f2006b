"""Saliency: ∂label/∂flux of networks and ensembles, population masks, peak identification,
and the forward model's own sensitivity (ravecnn_utils.gradients).

Linear networks (Dense on the flattened spectrum, no bias) have a known gradient: their weights.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.table import Table  # noqa: E402

from ravecnn_utils import gradients as grad  # noqa: E402
from ravecnn_utils.simulation.forward import ForwardModel, forward_sensitivity  # noqa: E402
from ravecnn_utils.labels import LABELS  # noqa: E402
from ravecnn_utils.simulation.linelist import read_linelist  # noqa: E402
from ravecnn_utils.ensemble import Ensemble, LabelScaler  # noqa: E402

N_PIX = 30
N_LAB = 3
RAVE_WAVE = 8410.0 + 0.39 * np.arange(987)


def linear_model(weights, name="linear"):
    """spectrum (n, N_PIX, 1) → flatten → Dense(no bias) with kernel ``weights`` (N_PIX, n_labels)."""
    spectrum = keras.Input((weights.shape[0], 1), name="spectrum")
    x = keras.layers.Flatten()(spectrum)
    out = keras.layers.Dense(weights.shape[1], use_bias=False, name="labels")(x)
    model = keras.Model(spectrum, out, name=name)
    model.get_layer("labels").set_weights([weights.astype(np.float32)])
    return model


def random_weights(seed):
    return np.random.default_rng(seed).normal(0, 1, (N_PIX, N_LAB)).astype(np.float32)


def spectra(n, seed=0):
    return np.random.default_rng(seed).normal(1, 0.1, (n, N_PIX, 1)).astype(np.float32)


# --- label_gradients ---------------------------------------------------------------------------

def test_linear_model_gradient_is_its_weights():
    w = random_weights(1)
    g = grad.label_gradients(linear_model(w), spectra(7))
    assert g.shape == (7, N_LAB, N_PIX)
    np.testing.assert_allclose(g, np.broadcast_to(w.T, g.shape), rtol=0, atol=1e-6)


def test_two_dimensional_spectra_are_accepted():
    w = random_weights(2)
    g = grad.label_gradients(linear_model(w), spectra(4)[..., 0])
    np.testing.assert_allclose(g[2], w.T, rtol=0, atol=1e-6)


def test_ensemble_gradient_is_member_mean_in_physical_units():
    w1, w2 = random_weights(3), random_weights(4)
    scaler = LabelScaler(minimum=[3500.0, 0.0, -2.5], scale=[3500.0, 5.0, 3.0])
    ens = Ensemble([linear_model(w1, "a"), linear_model(w2, "b")], scaler, ("teff", "logg", "m_h"))
    g = grad.label_gradients(ens, spectra(5))
    expected = 0.5 * (w1 + w2).T * scaler.scale[:, None]
    np.testing.assert_allclose(g, np.broadcast_to(expected, g.shape), rtol=1e-6, atol=1e-6)


def test_batching_gives_the_same_as_one_batch():
    """A non-linear network (the slides' CNN), so each spectrum has its own gradient."""
    from ravecnn_utils.model import slides_cnn

    keras.utils.set_random_seed(0)
    model = slides_cnn(n_pixels=80, labels=("teff", "logg"))
    x = np.random.default_rng(5).normal(1, 0.1, (23, 80, 1)).astype(np.float32)
    one = grad.label_gradients(model, x, batch_size=64)
    assert one.shape == (23, 2, 80)
    np.testing.assert_allclose(grad.label_gradients(model, x, batch_size=5), one, rtol=1e-5, atol=1e-7)
    assert not np.allclose(one[0], one[1])  # non-linear: the maps differ between spectra
    with pytest.raises(ValueError, match="batch_size"):
        grad.label_gradients(model, x, batch_size=0)


def test_photometry_input_is_held_fixed():
    """Two-input network: only the spectrum's weights appear in the gradient."""
    w = random_weights(6)
    spectrum = keras.Input((N_PIX, 1), name="spectrum")
    phot = keras.Input((4,), name="photometry")
    s = keras.layers.Dense(N_LAB, use_bias=False, name="spec_dense")(keras.layers.Flatten()(spectrum))
    p = keras.layers.Dense(N_LAB, use_bias=False, name="phot_dense")(phot)
    model = keras.Model([spectrum, phot], keras.layers.Add(name="labels")([s, p]))
    model.get_layer("spec_dense").set_weights([w])
    model.get_layer("phot_dense").set_weights([np.full((4, N_LAB), 7.0, np.float32)])
    x = {"spectrum": spectra(6), "photometry": np.ones((6, 4), np.float32)}
    g = grad.label_gradients(model, x, batch_size=4)
    np.testing.assert_allclose(g, np.broadcast_to(w.T, g.shape), rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="spectrum"):
        grad.label_gradients(model, {"photometry": x["photometry"]})


def test_no_spectra_gives_an_empty_array():
    g = grad.label_gradients(linear_model(random_weights(7)), np.zeros((0, N_PIX, 1), np.float32))
    assert g.shape == (0, N_LAB, N_PIX)


# --- populations -------------------------------------------------------------------------------

def test_population_boundaries():
    names = ("teff", "logg", "m_h")
    rows = np.array([
        [4500, 2.0, 0.0],    # cool giant
        [4600, 2.0, 0.0],    # on the 4600 K boundary: neither cool giant nor red clump
        [4800, 2.5, 0.0],    # red clump
        [4800, 2.2, 0.0],    # on the log g boundary: not red clump
        [5500, 4.4, 0.0],    # dwarf
        [5500, 3.8, 0.0],    # on the log g boundary: not a dwarf
        [6500, 4.2, 0.0],    # hot star, not a dwarf
        [5000, 4.5, -1.5],   # metal-poor dwarf
        [4500, np.nan, -1.0],  # missing log g: no giant/dwarf; [M/H] = −1 exactly: not metal-poor
    ])
    masks = grad.population_masks(rows, names)
    assert set(masks) == set(grad.POPULATIONS)
    expected = {
        "cool giants": [0],
        "red clump": [2],
        "dwarfs": [4, 7],
        "metal-poor": [7],
        "hot stars": [6],
    }
    for name, idx in expected.items():
        assert np.flatnonzero(masks[name]).tolist() == idx, name
    # the same from a table, with a masked entry as missing
    table = Table(rows, names=names, masked=True)
    table["logg"].mask[4] = True
    from_table = grad.population_masks(table)
    assert np.flatnonzero(from_table["dwarfs"]).tolist() == [7]
    assert np.flatnonzero(from_table["red clump"]).tolist() == [2]
    # documented boundaries
    assert grad.POPULATIONS["red clump"] == {"teff": (4600.0, 5100.0), "logg": (2.2, 2.7)}
    assert grad.POPULATIONS["hot stars"] == {"teff": (6200.0, None)}


def test_population_without_its_label_is_left_out():
    masks = grad.population_masks(np.array([[4500.0, 2.0]]), ("teff", "logg"))
    assert "metal-poor" not in masks and masks["cool giants"].tolist() == [True]


def test_mean_gradients_per_population():
    g = np.arange(4 * 2 * 3, dtype=float).reshape(4, 2, 3)
    masks = {"a": np.array([1, 0, 1, 0], bool), "empty": np.zeros(4, bool)}
    out = grad.mean_gradients(g, masks)
    assert set(out) == {"a"}
    np.testing.assert_allclose(out["a"], (g[0] + g[2]) / 2)


# --- top_lines ---------------------------------------------------------------------------------

def test_top_lines_finds_planted_peaks_and_names_the_nearest_line():
    wave = RAVE_WAVE
    lines = Table({"wavelength": [8498.02, 8542.09, 8542.5, 8600.0, 8688.62],
                   "species": ["Ca II", "Ca II", "Fe I", "Ti I", "Fe I"]})
    g = np.zeros_like(wave)
    planted = [(8542.2, -5.0), (8688.6, 3.0), (8700.0, 2.0), (8498.0, 1.0)]  # 8700: no line near
    for centre, amp in planted:
        g += amp * np.exp(-0.5 * ((wave - centre) / 0.6) ** 2)
    i = np.argmin(np.abs(wave - 8542.2))
    g[i + 2] = 1.05 * g[i + 1]  # a wiggle: a local maximum 2 px from the main peak, suppressed
    table = grad.top_lines(g, wave, lines, n=4)
    assert table.colnames == ["rank", "wavelength_peak", "gradient", "species", "line_wavelength"]
    assert table["rank"].tolist() == [1, 2, 3, 4]
    np.testing.assert_allclose(table["wavelength_peak"], [8542.2, 8688.6, 8700.0, 8498.0], atol=0.39)
    assert table["species"].tolist() == ["Ca II", "Fe I", grad.NO_LINE, "Ca II"]
    assert table["line_wavelength"][0] == 8542.09 and np.isnan(table["line_wavelength"][2])
    assert table["gradient"][0] < 0 and table["gradient"][1] > 0  # signed
    # a dict such as plots.LANDMARKS works too
    from ravecnn_utils.plots import LANDMARKS

    assert grad.top_lines(g, wave, LANDMARKS, n=1)["species"][0] == "Ca II"


def test_top_lines_separates_peaks_by_more_than_two_pixels():
    wave = 8500.0 + 0.39 * np.arange(50)
    g = np.zeros(50)
    g[[10, 12, 13, 30]] = [5.0, 4.0, 4.5, 1.0]  # 12 is not a local max; 13 is 3 px from 10: kept
    table = grad.top_lines(g, wave, {"X": [wave[10]]}, n=5)
    assert table["wavelength_peak"].tolist() == pytest.approx(wave[[10, 13, 30]].tolist())
    g[[11, 13]] = [0.0, 4.5]
    g[12] = 4.8  # 12: local max but 2 px from 10: suppressed
    g[13] = 0.0
    table = grad.top_lines(g, wave, {"X": [wave[10]]}, n=5)
    assert table["wavelength_peak"].tolist() == pytest.approx(wave[[10, 30]].tolist())


# --- forward_sensitivity -----------------------------------------------------------------------

@pytest.fixture(scope="module")
def forward_model():
    return ForwardModel(lines=read_linelist())


def test_forward_sensitivity_shape_and_ca_triplet(forward_model):
    giant = [4800.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    dwarf = [5800.0, 4.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
    rows = np.array([giant, dwarf, [np.nan] * 9])  # the NaN row is left out
    sens = forward_sensitivity(forward_model, rows, RAVE_WAVE)
    assert sens.shape == (len(LABELS), RAVE_WAVE.size)
    near = np.abs(RAVE_WAVE - 8542.09) < 2.0
    for name in ("teff", "logg"):
        assert np.abs(sens[LABELS.index(name), near]).max() > 1e-5, name
    # label selection and order; a table gives the same
    sub = forward_sensitivity(forward_model, rows[:2], RAVE_WAVE, label_names=("logg", "teff"))
    np.testing.assert_allclose(sub, sens[[1, 0]])
    table = Table(rows[:2], names=LABELS)
    np.testing.assert_allclose(forward_sensitivity(forward_model, table, RAVE_WAVE), sens)
    # the mean of the two stars' own sensitivities
    one = forward_sensitivity(forward_model, giant, RAVE_WAVE)
    two = forward_sensitivity(forward_model, dwarf, RAVE_WAVE)
    np.testing.assert_allclose(sens, (one + two) / 2, rtol=1e-10, atol=1e-14)
    with pytest.raises(ValueError, match="unknown label"):
        forward_sensitivity(forward_model, rows[:2], RAVE_WAVE, label_names=("vmic",))
