"""The CNN builders, the masked loss, and the layer summaries."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from ravecnn_utils.labels import LABELS  # noqa: E402
from ravecnn_utils.model import (  # noqa: E402
    build,
    layer_table,
    masked_mse,
    paper_cnn,
    receptive_field,
    slides_cnn,
)

# Raised inside Keras/TensorFlow (tf variables → numpy when saving) under numpy 2, not by our code.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def slides():
    """The slides' network at its published size (723 px, 4 labels)."""
    return slides_cnn()


@pytest.fixture(scope="module")
def paper():
    """The paper's network with photometry (912 px, 9 labels, 9 magnitudes)."""
    return paper_cnn(photometry=True)


def test_slides_parameter_count_and_shapes(slides):
    """44,226 parameters, as printed in the slides; (n, 723, 1) → (n, 4)."""
    assert slides.count_params() == 44_226
    assert slides.get_layer("conv3").output.shape == (None, 666, 2)
    assert slides.get_layer("flatten").output.shape == (None, 1332)
    assert slides.predict(np.ones((3, 723, 1), "float32"), verbose=0).shape == (3, 4)


def test_layer_names(slides, paper):
    """Readable names: conv1..3, dense32, dense16, labels; dense27 + concat with photometry."""
    names = {layer.name for layer in slides.layers}
    assert {"spectrum", "conv1", "conv2", "conv3", "dropout", "flatten"} <= names
    assert {"dense32", "dense16", "labels"} <= names
    assert {"photometry", "dense27", "concat"} <= {layer.name for layer in paper.layers}


def test_paper_parameter_count_with_and_without_photometry(paper):
    """58,549 with the photometry branch (paper); 57,847 without (58,549 − 270 − 960 + 528)."""
    assert paper.count_params() == 58_549
    assert [t.name for t in paper.inputs] == ["spectrum", "photometry"]
    alone = paper_cnn(photometry=False)
    assert alone.count_params() == 57_847
    assert [t.name for t in alone.inputs] == ["spectrum"]


def test_paper_takes_list_or_dict_inputs(paper):
    """Same prediction from [spectrum, photometry] and from a dict keyed by input name."""
    rng = np.random.default_rng(0)
    spec = rng.normal(1, 0.1, (2, 912, 1)).astype("float32")
    phot = rng.uniform(0, 1, (2, 9)).astype("float32")
    as_list = paper.predict([spec, phot], verbose=0)
    as_dict = paper.predict({"photometry": phot, "spectrum": spec}, verbose=0)
    assert as_list.shape == (2, 9)
    np.testing.assert_array_equal(as_list, as_dict)


@pytest.mark.parametrize("architecture", ["slides", "paper"])
def test_other_grids_and_label_counts(architecture):
    """987 pixels and 2 labels: the flatten width and the output follow."""
    model = build(architecture, 987, ("teff", "logg"))
    k = 20 if architecture == "slides" else 10
    assert model.get_layer("flatten").output.shape == (None, 2 * (987 - 3 * (k - 1)))
    assert model.output.shape == (None, 2)


def test_build_dispatch_and_errors():
    """build() forwards options; unknown names and photometry on the slides net are refused."""
    model = build("paper", 912, LABELS, photometry=True, n_photometry=4, dropout=0.1)
    assert model.count_params() == 58_549 - 5 * 27
    assert model.get_layer("dropout").rate == 0.1
    with pytest.raises(ValueError, match=r"'resnet'.*'slides', 'paper'"):
        build("resnet", 912, LABELS)
    with pytest.raises(ValueError, match="photometry"):
        build("slides", 723, LABELS[:4], photometry=True)


def _labels_with_gaps():
    """y_true (6, 4) with three NaN entries and y_pred (6, 4), float32."""
    rng = np.random.default_rng(1)
    y_true = rng.normal(0, 1, (6, 4)).astype("float32")
    y_pred = rng.normal(0, 1, (6, 4)).astype("float32")
    y_true[0, 1] = y_true[3, 0] = y_true[3, 3] = np.nan
    return y_true, y_pred


def test_masked_mse_is_keras_mse_without_gaps():
    """Nothing missing: identical (to float32 rounding) to keras' MeanSquaredError."""
    y_true, y_pred = _labels_with_gaps()
    y_true = np.nan_to_num(y_true)
    expected = keras.losses.MeanSquaredError()(y_true, y_pred)
    np.testing.assert_allclose(float(masked_mse(y_true, y_pred)), float(expected), rtol=1e-6)


def test_masked_mse_ignores_missing_entries():
    """NaN entries are left out of both the sum and the count (hand computation in numpy)."""
    y_true, y_pred = _labels_with_gaps()
    known = ~np.isnan(y_true)
    expected = np.sum((y_true[known] - y_pred[known]) ** 2) / known.sum()
    assert known.sum() == 21
    np.testing.assert_allclose(float(masked_mse(y_true, y_pred)), expected, rtol=1e-6)


def test_masked_mse_all_missing_gives_zero_and_finite_gradients():
    """A batch without any label: loss 0, gradients finite (zero) for every weight."""
    keras.utils.set_random_seed(0)
    model = slides_cnn(n_pixels=80, labels=("teff", "logg"))
    x = np.random.default_rng(2).normal(1, 0.1, (4, 80, 1)).astype("float32")
    y = np.full((4, 2), np.nan, "float32")
    with tf.GradientTape() as tape:
        loss = masked_mse(y, model(x, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert float(loss) == 0.0
    assert all(np.all(np.isfinite(g)) and not np.any(g) for g in grads)


def test_compiled_model_saves_and_reloads(tmp_path):
    """A model compiled with masked_mse (and trained a step with gaps) reloads and predicts alike."""
    keras.utils.set_random_seed(0)
    model = slides_cnn(n_pixels=80, labels=("teff", "logg"))
    model.compile(optimizer="adam", loss=masked_mse)
    x = np.random.default_rng(3).normal(1, 0.1, (8, 80, 1)).astype("float32")
    y = np.random.default_rng(4).uniform(0, 1, (8, 2)).astype("float32")
    y[::3, 1] = np.nan
    model.fit(x, y, epochs=1, batch_size=4, verbose=0)
    path = tmp_path / "model.keras"
    model.save(path)
    again = keras.saving.load_model(path)
    np.testing.assert_array_equal(again.predict(x, verbose=0), model.predict(x, verbose=0))
    assert np.isfinite(again.evaluate(x, y, verbose=0))
    assert again.loss is masked_mse


def test_receptive_field():
    """1 + 3 × (kernel − 1): 58 pixels (slides, kernel 20), 28 pixels (paper, kernel 10)."""
    assert receptive_field(slides_cnn(n_pixels=80, labels=("teff",))) == 58
    assert receptive_field(paper_cnn(n_pixels=80, labels=("teff",))) == 28


def test_layer_table(slides, paper):
    """One row per layer, shapes as text, parameters summing to count_params()."""
    for model in (slides, paper):
        table = layer_table(model)
        assert len(table) == len(model.layers)
        assert table["parameters"].sum() == model.count_params()
    table = layer_table(slides)
    row = table[list(table["layer"]).index("conv1")]
    assert (row["class"], row["output_shape"], row["parameters"]) == ("Conv1D", "(None, 704, 8)", 168)
