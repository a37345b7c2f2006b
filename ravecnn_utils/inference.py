"""Fast inference: a Keras model as one compiled TensorFlow function over fixed-size batches.

Keras' ``model.predict`` builds a data pipeline and calls a per-step function with Python
callbacks around it; for a network this small that overhead is a large share of the time.
``CompiledModel`` traces the model once, in inference mode, for one batch shape (the last
batch is padded), takes float32 input as it is and returns float32: the same arithmetic
as ``model.predict`` (equal to ~1e-7), faster (``benchmarks/inference.py``). On CPU, XLA
(``jit_compile``) was measured slower for these 1-D convolutions, so it is off.
"""

import numpy as np

DEFAULT_BATCH = 2048
"""Spectra per call: large enough to amortise the call, small enough for the cache (≈ 60 MB
of activations for the slides' network)."""


class CompiledModel:
    """``model`` (a Keras model) as a callable ``f(x) -> (n, n_outputs)`` float32 array.

    ``x`` is an array (n, …) for a one-input model, or a dict ``{input name: array}`` (e.g.
    ``spectrum`` and ``photometry``) in the shapes of the model's inputs.
    """

    def __init__(self, model, batch_size=DEFAULT_BATCH):
        import tensorflow as tf

        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.model, self.batch_size = model, int(batch_size)
        self.names = [t.name for t in model.inputs]
        specs = [tf.TensorSpec((self.batch_size, *t.shape[1:]), tf.float32, name=t.name) for t in model.inputs]
        single = len(self.names) == 1

        def forward(*xs):
            inputs = xs[0] if single else dict(zip(self.names, xs))
            return model(inputs, training=False)

        self._fn = tf.function(forward, input_signature=specs)

    def _arrays(self, x):
        if isinstance(x, dict):
            missing = [name for name in self.names if name not in x]
            if missing:
                raise KeyError(f"input(s) {missing} missing; the model takes {self.names}")
            arrays = [np.asarray(x[name], np.float32) for name in self.names]
        elif len(self.names) == 1:
            arrays = [np.asarray(x, np.float32)]
        else:
            raise TypeError(f"the model takes several inputs {self.names}: pass a dict")
        if len({len(a) for a in arrays}) != 1:
            raise ValueError(f"inputs {self.names} have different numbers of rows")
        return arrays

    def __call__(self, x):
        arrays = self._arrays(x)
        n, bs = len(arrays[0]), self.batch_size
        out = []
        for start in range(0, n, bs):
            part = [a[start:start + bs] for a in arrays]
            short = bs - len(part[0])
            if short:  # pad the last batch to the traced shape; the padding rows are dropped
                part = [np.concatenate([p, np.zeros((short, *p.shape[1:]), np.float32)]) for p in part]
            out.append(self._fn(*part).numpy()[: bs - short])
        if not out:
            return np.zeros((0, self.model.outputs[0].shape[-1]), np.float32)
        return np.concatenate(out)
