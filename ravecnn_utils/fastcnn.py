"""The project's CNN on the CPU through a numba-compiled kernel, at over twice TensorFlow's speed.

TensorFlow (oneDNN) evaluates convolutions of 1–8 channels at a small fraction of the CPU's
arithmetic peak, and every layer streams a whole batch of activations through memory.
Here each spectrum goes through the whole network while its activations (≈ 60 kB) stay in
the core's cache, one spectrum after another; threads take contiguous slices of the rows.
The convolution's inner loop is written out for the kernel width (10 or 20 pixels) so that
the compiler keeps the taps in registers and vectorises along the spectrum.

It serves the networks of :mod:`ravecnn_utils.model` (three valid, stride-1 ``Conv1D`` with
LeakyReLU, then ``dense32`` [+ ``dense27`` on photometry, concatenated], ``dense16`` and the
linear ``labels``); :func:`check_supported` says why another network is not. The result equals
``model.predict`` to float32 round-off (~1e-7 in scaled labels; tested within 1e-5); NaN pixels
give NaN labels, as in Keras. ``benchmarks/inference.py`` measures the speed.

On request (``features=True``) it also returns each spectrum's activations of the last hidden
layer (``FEATURE_LAYER``, Dense 16 + LeakyReLU), the network's own features that
:mod:`ravecnn_utils.novelty` scores; the kernel writes them on its way to the labels.

The compiled kernel is kept on disk (``kernel_folder``): only the first process on a machine
compiles it (a few seconds); the others load it in a tenth of a second. :func:`spectra_input`
builds the spectrum input from flux and error arrays as they lie in a FITS memory map
(big-endian) in one pass, on the same threads.
"""

import hashlib
import importlib.util
import inspect
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from functools import lru_cache
from pathlib import Path

import numpy as np

from .files import atomic_path
from .inputs import named_inputs

CONV_LAYERS = ("conv1", "conv2", "conv3")
DENSE_LAYERS = ("dense32", "dense16", "labels")
PHOTOMETRY_LAYER = "dense27"
FEATURE_LAYER = "dense16_lrelu"
"""The last hidden layer, whose activations are the network's features (:mod:`ravecnn_utils.novelty`)."""
FASTMATH = {"reassoc", "contract"}
"""Reordered sums and fused multiply-adds, but NaN and inf kept (no ``nnan``/``ninf``)."""
PARTIAL_SUMS = 4
"""Independent partial sums per convolution output, so the multiply-adds do not wait on each other."""


def check_supported(model):
    """Raise ValueError naming what in ``model`` the kernel cannot evaluate; else return the
    LeakyReLU slope shared by all hidden layers.

    Supported: the networks of :mod:`ravecnn_utils.model` (layer names ``conv1``–``conv3``,
    ``dense32``, optional ``dense27`` on a ``photometry`` input, ``dense16``, ``labels``).
    """
    import keras

    names = {layer.name: layer for layer in model.layers}
    wanted = CONV_LAYERS + DENSE_LAYERS
    missing = [name for name in wanted if name not in names]
    if missing:
        raise ValueError(f"model {model.name!r} has no layer(s) {missing}: not a ravecnn_utils.model network")
    convs = [names[n] for n in CONV_LAYERS]
    extra = [layer.name for layer in model.layers if isinstance(layer, keras.layers.Conv1D) and layer not in convs]
    if extra:
        raise ValueError(f"model {model.name!r} has convolution layers {extra} beyond {CONV_LAYERS}")
    for conv in convs:
        cfg = conv.get_config()
        if (cfg["padding"] != "valid" or tuple(cfg["strides"]) != (1,) or tuple(cfg["dilation_rate"]) != (1,)
                or cfg["activation"] != "linear" or not cfg["use_bias"] or cfg.get("groups", 1) != 1):
            raise ValueError(f"layer {conv.name!r}: only valid, stride-1, undilated, linear Conv1D with bias")
    widths = {conv.kernel_size[0] for conv in convs}
    if len(widths) != 1:
        raise ValueError(f"convolutions of different widths {sorted(widths)}: one width per network")
    dense = [names[n] for n in DENSE_LAYERS + (PHOTOMETRY_LAYER,) if n in names]
    for layer in dense:
        if layer.get_config()["activation"] != "linear" or not layer.get_config()["use_bias"]:
            raise ValueError(f"layer {layer.name!r}: only linear Dense layers with bias")
    slopes = set()
    for layer in convs + [layer for layer in dense if layer.name != "labels"]:  # every hidden layer
        after = names.get(f"{layer.name}_lrelu")
        if not isinstance(after, keras.layers.LeakyReLU):
            raise ValueError(f"layer {layer.name!r} is not followed by LeakyReLU {layer.name + '_lrelu'!r}")
        slopes.add(float(after.get_config()["negative_slope"]))
    if len(slopes) != 1:
        raise ValueError(f"LeakyReLU slopes differ between layers: {sorted(slopes)}")
    inputs = [t.name for t in model.inputs]
    expected = ["spectrum", "photometry"] if PHOTOMETRY_LAYER in names else ["spectrum"]
    if sorted(inputs) != sorted(expected):
        raise ValueError(f"model inputs {inputs}, expected {expected}")
    spectrum = model.inputs[inputs.index("spectrum")]
    if len(spectrum.shape) != 3 or spectrum.shape[2] != 1:
        raise ValueError(f"spectrum input of shape {tuple(spectrum.shape)}, expected (None, n_pixels, 1)")
    return slopes.pop()


def _conv_source(width):
    """Python source of ``conv(h, w, b, slope, out)`` for kernels of ``width`` pixels.

    ``h`` (c_in, L_in) channel-major activations, ``w`` (width, c_in, c_out), ``b`` (c_out,),
    ``out`` (c_out, L_in − width + 1) gets LeakyReLU(conv + b). The taps are spelt out in
    ``PARTIAL_SUMS`` interleaved sums so the loop over output pixels vectorises.
    """
    taps = "\n".join(f"            w{j} = w[{j}, ci, co]" for j in range(width))
    groups = [range(g, width, PARTIAL_SUMS) for g in range(min(PARTIAL_SUMS, width))]
    terms = " + ".join("(" + " + ".join(f"w{j} * hc[t + {j}]" for j in group) + ")" for group in groups)
    return f'''
def conv(h, w, b, slope, out):
    n_out = out.shape[1]
    for co in range(out.shape[0]):
        acc = out[co]
        for t in range(n_out):
            acc[t] = b[co]
        for ci in range(h.shape[0]):
            hc = h[ci]
{taps}
            for t in range(n_out):
                acc[t] += {terms}
        for t in range(n_out):
            s = acc[t]
            acc[t] = s if s > 0 else s * slope
'''


def _dense(x, w, b, slope, out):
    """out = LeakyReLU(w · x + b); ``w`` (n_out, n_in) (transposed Keras kernel); slope 1: linear."""
    for u in range(w.shape[0]):
        s = np.float32(0.0)
        row = w[u]
        for p in range(x.size):
            s += row[p] * x[p]
        s += b[u]
        out[u] = s if s > 0 else s * slope


def _forward(spectra, photometry, w1, b1, w2, b2, w3, b3, d1, e1, dp, ep, d2, e2, d3, e3,
             slope, start, stop, out, features):
    """The whole network for rows ``start:stop`` of ``spectra`` into ``out``, the last hidden
    layer's activations into ``features`` (serial; no GIL). Compiled in the kernel module, where
    ``conv``, ``dense`` and ``WIDTH`` are defined (:func:`kernel_source`); a constant width, not
    ``w1.shape[0]``, lets the compiler prove the convolutions' reads in bounds (about 5 % faster)."""
    width = WIDTH  # noqa: F821
    n1 = spectra.shape[1] - width + 1
    n2, n3 = n1 - width + 1, n1 - 2 * (width - 1)
    h1 = np.empty((w1.shape[2], n1), np.float32)
    h2 = np.empty((w2.shape[2], n2), np.float32)
    h3 = np.empty((w3.shape[2], n3), np.float32)
    joined = np.empty(d1.shape[0] + dp.shape[0], np.float32)
    one = np.float32(1.0)
    for i in range(start, stop):
        conv(spectra[i:i + 1], w1, b1, slope, h1)  # noqa: F821
        conv(h1, w2, b2, slope, h2)  # noqa: F821
        conv(h2, w3, b3, slope, h3)  # noqa: F821
        dense(h3.reshape(-1), d1, e1, slope, joined[:d1.shape[0]])  # noqa: F821
        dense(photometry[i], dp, ep, slope, joined[d1.shape[0]:])  # noqa: F821
        dense(joined, d2, e2, slope, features[i])  # noqa: F821
        dense(features[i], d3, e3, one, out[i])  # noqa: F821


def kernel_source(width):
    """Python source of the kernel module for convolutions ``width`` pixels wide: ``conv``
    (:func:`_conv_source`), ``_dense`` and ``_forward`` compiled with numba's on-disk cache."""
    jit = f"fastmath={{{', '.join(map(repr, sorted(FASTMATH)))}}}, cache=True"
    return "\n".join(["import numpy as np", "from numba import njit", f"WIDTH = {int(width)}",
                      _conv_source(width), inspect.getsource(_dense), inspect.getsource(_forward),
                      f'conv = njit({jit}, inline="always")(conv)',
                      f'dense = njit({jit}, inline="always")(_dense)',
                      f"forward = njit({jit}, nogil=True)(_forward)", ""])


def kernel_folder():
    """Where the kernel modules and numba's machine code for them are kept:
    ``$XDG_CACHE_HOME/ravecnn`` (default ``~/.cache/ravecnn``)."""
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ravecnn"


@lru_cache(maxsize=None)
def kernel(width):
    """The compiled forward function for convolutions ``width`` pixels wide.

    Its source is written once into ``kernel_folder()`` (named by its digest, so other versions of
    the code keep their own file) and numba keeps the compiled code beside it: the first process
    on a machine compiles (a few seconds), the others load it. A folder one may not write to
    gives way to a temporary one (compiled in every process).
    """
    source = kernel_source(width)
    name = f"ravecnn_fastcnn_w{width}_{hashlib.sha1(source.encode()).hexdigest()[:12]}"
    path = kernel_folder() / f"{name}.py"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.is_file():
            with atomic_path(path) as tmp:
                tmp.write_text(source)
    except OSError:
        path = Path(tempfile.mkdtemp(prefix="ravecnn-kernel-")) / f"{name}.py"
        path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # numba's cache finds the module of a function by its name
    spec.loader.exec_module(module)
    return module.forward


def _mask_rows(flux, error, swap_flux, swap_error, start, stop, out, n_bad):
    """Rows ``start:stop``: ``out`` = flux, or 1 (the continuum) where the pixel has no information
    (flux not finite, error not finite or ≤ 0); ``n_bad`` = such pixels. ``flux`` and ``error``
    hold float32 bits as uint32, byte-swapped first where ``swap_flux`` / ``swap_error``."""
    n = flux.shape[1]
    f_bits, e_bits = np.empty(n, np.uint32), np.empty(n, np.uint32)
    f, e = f_bits.view(np.float32), e_bits.view(np.float32)
    for i in range(start, stop):
        for j in range(n):
            a, b = flux[i, j], error[i, j]
            if swap_flux:
                a = ((a & 0xFF) << 24) | ((a & 0xFF00) << 8) | ((a >> 8) & 0xFF00) | (a >> 24)
            if swap_error:
                b = ((b & 0xFF) << 24) | ((b & 0xFF00) << 8) | ((b >> 8) & 0xFF00) | (b >> 24)
            f_bits[j], e_bits[j] = a, b
        count = 0
        for j in range(n):
            bad = not (np.isfinite(f[j]) and np.isfinite(e[j]) and e[j] > 0)
            out[i, j] = np.float32(1.0) if bad else f[j]
            count += bad
        n_bad[i] = count


@lru_cache(maxsize=None)
def _masker():
    from numba import njit

    return njit(nogil=True, cache=True)(_mask_rows)


def _bits(array):
    """The float32 bits of ``array`` as uint32 and whether they are of the other byte order (to be
    swapped): C-contiguous float32, such as rows of a FITS memory map (big-endian), is viewed as
    it lies; anything else is first made native float32."""
    array = np.asarray(array)
    if array.dtype.kind != "f" or array.itemsize != 4 or not array.flags.c_contiguous:
        array = np.ascontiguousarray(array, np.float32)
    return array.view(np.uint32), not array.dtype.isnative


def in_slices(function, n, threads):
    """Call ``function(start, stop)`` on ``threads`` contiguous slices of ``range(n)`` at once."""
    edges = np.linspace(0, n, min(threads, n) + 1).astype(int)
    with ThreadPoolExecutor(max(len(edges) - 1, 1)) as pool:
        list(pool.map(function, edges[:-1], edges[1:]))


def spectra_input(flux, error, threads=None, out=None):
    """The networks' spectrum input from ``flux`` and its absolute ``error`` (n, n_pixels), in one
    pass on ``threads`` threads (default: all cores): (x, n_bad), x float32 (n, n_pixels) with
    flux where the pixel has information and the continuum 1 where it has none (flux not
    finite, error not finite or ≤ 0), n_bad (n,) int32 the number of such pixels.

    The arrays may be float32 of either byte order (a FITS memory map is read as it lies,
    big-endian, with no swapped copy) or anything numpy turns into float32. ``out``: a native
    float32 C-contiguous array of at least n rows whose first n become x (one array reused from
    chunk to chunk spares the page faults of fresh memory), else x is a new array.
    """
    (f, swap_flux), (e, swap_error) = _bits(flux), _bits(error)
    if f.shape != e.shape or f.ndim != 2:
        raise ValueError(f"flux {np.shape(flux)} and error {np.shape(error)} must both be (n, n_pixels)")
    if out is None:
        x = np.empty(f.shape, np.float32)
    elif (out.dtype != np.float32 or not out.dtype.isnative or not out.flags.c_contiguous
          or out.shape[1:] != f.shape[1:] or len(out) < len(f)):
        raise ValueError(f"out: {out.dtype} {out.shape}, needs native float32 (>= {len(f)}, {f.shape[1]}), C order")
    else:
        x = out[:len(f)]
    n_bad = np.empty(len(f), np.int32)
    mask = _masker()
    in_slices(lambda start, stop: mask(f, e, swap_flux, swap_error, start, stop, x, n_bad), len(f),
              int(threads or default_threads()))
    return x, n_bad


def default_threads():
    """CPU cores this process may use."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


class FastCNN:
    """``model`` (a :mod:`ravecnn_utils.model` network) as a callable ``f(x) -> (n, n_labels)``
    float32 array, evaluated by :func:`kernel` on ``threads`` threads (default: all cores);
    ``f(x, features=True)`` returns (labels, ``FEATURE_LAYER`` activations (n, 16)).

    ``x``: spectra (n, n_pixels[, 1]), or a dict ``{"spectrum": …, "photometry": (n, n_phot)}``
    for a network with photometry. Raises ValueError (from :func:`check_supported`) for
    networks of another shape; ``inference.compile_model`` then falls back to TensorFlow.
    """

    def __init__(self, model, threads=None):
        slope = check_supported(model)
        self.names = [t.name for t in model.inputs]
        self.n_pixels = int(model.inputs[self.names.index("spectrum")].shape[1])
        self.threads = int(threads or default_threads())
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        convs = [model.get_layer(n).get_weights() for n in CONV_LAYERS]
        self.width = convs[0][0].shape[0]
        d1, e1 = model.get_layer("dense32").get_weights()
        channels = convs[-1][0].shape[2]
        # Keras flattens (pixel, channel) pixel-major; the kernel holds the activations channel-major
        d1 = d1.reshape(-1, channels, d1.shape[1]).transpose(1, 0, 2).reshape(d1.shape)
        if "photometry" in self.names:
            dp, ep = model.get_layer(PHOTOMETRY_LAYER).get_weights()
        else:  # no photometry branch: an empty one adds nothing to the concatenation
            dp, ep = np.zeros((0, 0), np.float32), np.zeros(0, np.float32)
        self.n_photometry = dp.shape[0]
        dense = [(d1, e1), (dp, ep)] + [model.get_layer(n).get_weights() for n in DENSE_LAYERS[1:]]
        f32 = lambda a: np.ascontiguousarray(a, np.float32)  # noqa: E731
        self.weights = [f32(a) for w, b in convs for a in (w, b)]
        self.weights += [f32(a) for w, b in dense for a in (w.T, b)]
        self.n_outputs = self.weights[-1].shape[0]
        self.n_features = self.weights[-3].shape[0]  # units of dense16 (its bias)
        self.slope = np.float32(slope)
        self._forward = kernel(self.width)  # compiled here, so a missing numba shows at once

    def _arrays(self, x):
        """(spectra (n, n_pixels), photometry (n, n_phot)) float32, C-contiguous."""
        arrays = dict(zip(self.names, named_inputs(self.names, x)))
        spectra = arrays["spectrum"]
        n = len(spectra)
        if spectra.shape[1:] not in ((self.n_pixels,), (self.n_pixels, 1)):
            raise ValueError(f"spectra of shape {spectra.shape}: the network takes {self.n_pixels} pixels, "
                             f"as (n, {self.n_pixels}) or (n, {self.n_pixels}, 1)")
        spectra = np.ascontiguousarray(spectra.reshape(n, self.n_pixels))
        if "photometry" not in arrays:
            return spectra, np.zeros((n, 0), np.float32)
        photometry = np.ascontiguousarray(arrays["photometry"])
        expected = (n, self.n_photometry)
        if photometry.shape != expected:
            raise ValueError(f"photometry of shape {photometry.shape}, expected {expected}")
        return spectra, photometry

    def __call__(self, x, features=False):
        spectra, photometry = self._arrays(x)
        n = len(spectra)
        out = np.empty((n, self.n_outputs), np.float32)
        hidden = np.empty((n, self.n_features), np.float32)

        def run(start, stop):
            self._forward(spectra, photometry, *self.weights, self.slope, start, stop, out, hidden)

        in_slices(run, n, self.threads)  # one row slice per thread
        return (out, hidden) if features else out
