"""The compiled inference path equals Keras' own predict."""

import numpy as np
import pytest

from ravecnn_utils import model as cnn
from ravecnn_utils.inference import CompiledModel


@pytest.fixture(scope="module")
def rng():
    return np.random.default_rng(11)


def test_equals_keras_predict_with_padding(rng):
    """Slides' network, 37 spectra in batches of 16 (the last one padded): equal to
    model.predict within 1e-5."""
    import keras

    keras.utils.set_random_seed(3)
    net = cnn.slides_cnn(n_pixels=200)
    x = rng.normal(1, 0.1, (37, 200, 1)).astype(np.float32)
    fast = CompiledModel(net, batch_size=16)(x)
    assert fast.dtype == np.float32 and fast.shape == (37, 4)
    np.testing.assert_allclose(fast, net.predict(x, verbose=0), atol=1e-5, rtol=0)
    assert CompiledModel(net, batch_size=16)(x[:0]).shape == (0, 4)


def test_two_inputs_by_name(rng):
    """The paper's network with photometry takes a dict; a missing input is named."""
    import keras

    keras.utils.set_random_seed(4)
    net = cnn.paper_cnn(n_pixels=120, photometry=True)
    x = {"spectrum": rng.normal(1, 0.1, (9, 120, 1)), "photometry": rng.uniform(0, 1, (9, 9))}
    f = CompiledModel(net, batch_size=4)
    np.testing.assert_allclose(f(x), net.predict(x, verbose=0), atol=1e-5, rtol=0)
    with pytest.raises(KeyError, match="photometry"):
        f({"spectrum": x["spectrum"]})
    with pytest.raises(TypeError, match="dict"):
        f(x["spectrum"])
