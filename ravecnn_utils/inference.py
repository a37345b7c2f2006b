"""Fast inference: :func:`compile_model` turns a Keras model into a fast callable.

Two engines, both equal to ``model.predict`` to float32 round-off and timed by
``benchmarks/inference.py``:

* ``"numba"`` (:class:`ravecnn_utils.fastcnn.FastCNN`): the networks of
  :mod:`ravecnn_utils.model` through a compiled CPU kernel, one spectrum at a time in cache;
  about 2.4× the TensorFlow engine on the slides' network.
* ``"tensorflow"`` (:class:`CompiledModel`): any Keras model, traced once in inference mode as
  one TensorFlow function for one batch shape (the last batch is padded). Keras'
  ``model.predict`` builds a data pipeline and calls a per-step function with Python callbacks
  around it; for a network this small that overhead is a large share of the time. On CPU, XLA
  (``jit_compile``) was measured slower for these 1-D convolutions, so it is off.

``"auto"`` takes numba when the network is one it serves and no GPU is visible to TensorFlow
(on a GPU, TensorFlow is the faster engine), TensorFlow otherwise.
"""

import numpy as np

from .fastcnn import FEATURE_LAYER, FastCNN
from .inputs import named_inputs

DEFAULT_BATCH = 2048
"""Spectra per call: large enough to amortise the call, small enough for the cache (≈ 60 MB
of activations for the slides' network)."""


ENGINES = ("auto", "numba", "tensorflow")


def compile_model(model, engine="auto", batch_size=DEFAULT_BATCH):
    """``model`` as a callable ``f(x) -> (n, n_outputs)`` float32 array, by ``engine`` (see above);
    ``f(x, features=True)`` also returns the last hidden layer's activations (``FEATURE_LAYER``).

    ``batch_size`` is the TensorFlow engine's batch; the numba engine has none.
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}; choose from {ENGINES}")
    if engine == "numba" or (engine == "auto" and not _gpu_visible()):
        try:
            return FastCNN(model)
        except (ValueError, ImportError):  # another network, or numba not installed
            if engine == "numba":
                raise
    return CompiledModel(model, batch_size)


def _gpu_visible():
    import tensorflow as tf  # imported when first needed: importing this module stays cheap

    return bool(tf.config.list_physical_devices("GPU"))


class CompiledModel:
    """``model`` (a Keras model) as a callable ``f(x) -> (n, n_outputs)`` float32 array;
    ``f(x, features=True)`` returns (outputs, activations of the layer ``FEATURE_LAYER``), traced
    as a second function when first asked for.

    ``x`` is an array (n, …) for a one-input model, or a dict ``{input name: array}`` (e.g.
    ``spectrum`` and ``photometry``) in the shapes of the model's inputs.
    """

    def __init__(self, model, batch_size=DEFAULT_BATCH):
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size = model, int(batch_size)
        self.names = [t.name for t in model.inputs]
        self._fns = {False: self._trace(model)}

    def _trace(self, model):
        """One TensorFlow function of ``model`` (inference mode) for a batch of ``batch_size``."""
        import tensorflow as tf

        specs = [tf.TensorSpec((self.batch_size, *t.shape[1:]), tf.float32, name=t.name) for t in model.inputs]
        single = len(self.names) == 1

        def forward(*xs):
            out = model(xs[0] if single else dict(zip(self.names, xs)), training=False)
            return tuple(out) if isinstance(out, (list, tuple)) else (out,)

        return tf.function(forward, input_signature=specs)

    def _with_features(self):
        import keras

        names = [layer.name for layer in self.model.layers]
        if FEATURE_LAYER not in names:
            raise ValueError(f"model {self.model.name!r} has no layer {FEATURE_LAYER!r}: it has no features to return")
        both = keras.Model(self.model.inputs, [self.model.outputs[0], self.model.get_layer(FEATURE_LAYER).output])
        return self._trace(both)

    def __call__(self, x, features=False):
        features = bool(features)
        if features not in self._fns:
            self._fns[features] = self._with_features()
        arrays = named_inputs(self.names, x)
        n, bs = len(arrays[0]), self.batch_size
        out = []
        for start in range(0, n, bs):
            part = [a[start:start + bs] for a in arrays]
            short = bs - len(part[0])
            if short:  # pad the last batch to the traced shape; the padding rows are dropped
                part = [np.concatenate([p, np.zeros((short, *p.shape[1:]), np.float32)]) for p in part]
            out.append([t.numpy()[: bs - short] for t in self._fns[features](*part)])
        if not out:
            widths = [self.model.outputs[0].shape[-1]]
            if features:
                widths.append(self.model.get_layer(FEATURE_LAYER).output.shape[-1])
            out = [[np.zeros((0, w), np.float32) for w in widths]]
        results = [np.concatenate(column) for column in zip(*out)]
        return tuple(results) if features else results[0]
