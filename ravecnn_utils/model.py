"""The two CNN architectures, the networks the book trains (``NETWORKS``), the masked loss, and how
to describe a network.

``slides_cnn`` is the talk's network (723 px, kernels of 20, 4 labels, 44,226
parameters); ``paper_cnn`` is Guiglion et al. (2020): 912 px, kernels of 10, 9 labels
and an optional photometry branch (58,549 parameters with it). Both are the same
trunk: three valid, stride-1 Conv1D layers (8, 4, 2 filters) with LeakyReLU, dropout,
then Dense 32 → Dense 16 → one linear output per label. The spectrum input is named
``"spectrum"`` (shape ``(n_pixels, 1)``, continuum-normalised flux) and the output
layer ``"labels"`` (shape ``(len(labels),)``, scaled labels).
"""

import keras
import numpy as np
from astropy.table import Table
from keras import layers, ops

from .labels import CORE_LABELS, LABELS

QUOTED_PARAMETERS = {"slides": 44_226, "paper_photometry": 58_549}
"""Parameter counts as published: the talk's network (723 px, 4 labels) and the paper's with
photometry (912 px, 9 labels, 9 photometric inputs)."""

LEAKY_SLOPE = 0.3
"""Negative slope of every LeakyReLU: the Keras default, as in the authors' code."""


def _conv_trunk(spectrum, kernel_size, dropout):
    """Conv1D(8, 4, 2 filters) + LeakyReLU, dropout, flatten → (batch, 2·(n_pixels − 3(k − 1)))."""
    x = spectrum
    for i, filters in enumerate((8, 4, 2), start=1):
        x = layers.Conv1D(filters, kernel_size, padding="valid", name=f"conv{i}")(x)
        x = layers.LeakyReLU(LEAKY_SLOPE, name=f"conv{i}_lrelu")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    return layers.Flatten(name="flatten")(x)


def _dense(x, units, name):
    """Dense(units) + LeakyReLU, named ``name`` and ``name_lrelu``."""
    x = layers.Dense(units, name=name)(x)
    return layers.LeakyReLU(LEAKY_SLOPE, name=f"{name}_lrelu")(x)


def slides_cnn(n_pixels=723, labels=CORE_LABELS, dropout=0.2, name="slides_cnn"):
    """The slides' CNN: spectrum (batch, n_pixels, 1) → labels (batch, len(labels)).

    Kernels of 20 pixels; 44,226 parameters for 723 pixels and 4 labels.
    """
    spectrum = keras.Input((n_pixels, 1), name="spectrum")
    x = _conv_trunk(spectrum, kernel_size=20, dropout=dropout)
    x = _dense(x, 32, "dense32")
    x = _dense(x, 16, "dense16")
    outputs = layers.Dense(len(labels), name="labels")(x)
    return keras.Model(spectrum, outputs, name=name)


def paper_cnn(
    n_pixels=912, labels=LABELS, photometry=False, n_photometry=9, dropout=0.2, name="paper_cnn"
):
    """Guiglion et al. (2020) CNN: spectrum (batch, n_pixels, 1) [+ photometry (batch, n_photometry)].

    Kernels of 10 pixels. With ``photometry`` the scaled absolute magnitudes go through
    Dense(27) and join the Dense(32) output before Dense(16); the model then takes the
    inputs ``[spectrum, photometry]`` or a dict with those keys. 58,549 parameters for
    912 pixels, 9 labels and 9 photometric inputs; 57,847 without photometry.
    """
    spectrum = keras.Input((n_pixels, 1), name="spectrum")
    inputs = [spectrum]
    x = _conv_trunk(spectrum, kernel_size=10, dropout=dropout)
    x = _dense(x, 32, "dense32")
    if photometry:
        phot = keras.Input((n_photometry,), name="photometry")
        inputs.append(phot)
        x = layers.Concatenate(name="concat")([x, _dense(phot, 27, "dense27")])
    x = _dense(x, 16, "dense16")
    outputs = layers.Dense(len(labels), name="labels")(x)
    return keras.Model(inputs if photometry else spectrum, outputs, name=name)


ARCHITECTURES = {"slides": slides_cnn, "paper": paper_cnn}
"""Builders by architecture name, for :func:`build`."""

NETWORKS = {
    "slides": dict(architecture="slides", labels=CORE_LABELS, photometry=False),
    "paper": dict(architecture="paper", labels=LABELS, photometry=False),
    "paper_photometry": dict(architecture="paper", labels=LABELS, photometry=True),
}
"""The networks the book trains, by name: architecture, labels, and whether photometry is an input."""


def network_spec(name, slides_labels=None, paper_labels=None):
    """The entry ``name`` of ``NETWORKS`` (a copy), with the labels of the slides' or the paper's
    architecture replaced by ``slides_labels`` / ``paper_labels`` when given.

    Raises ValueError naming the known networks for an unknown ``name``.
    """
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; known: {sorted(NETWORKS)}")
    spec = dict(NETWORKS[name])
    override = slides_labels if spec["architecture"] == "slides" else paper_labels
    if override is not None:
        spec["labels"] = tuple(override)
    return spec


def build(architecture, n_pixels, labels, photometry=False, **kwargs):
    """Build ``architecture`` ("slides" or "paper") for a grid of ``n_pixels`` and these labels.

    Extra keyword arguments go to the builder (``dropout``, ``n_photometry``, ``name``).
    Only the paper's network has a photometry branch.
    """
    if architecture not in ARCHITECTURES:
        raise ValueError(
            f"unknown architecture {architecture!r}; known: {', '.join(map(repr, ARCHITECTURES))}"
        )
    if architecture == "paper":
        kwargs["photometry"] = photometry
    elif photometry:
        raise ValueError(f"architecture {architecture!r} has no photometry branch; use 'paper'")
    return ARCHITECTURES[architecture](n_pixels=n_pixels, labels=tuple(labels), **kwargs)


@keras.saving.register_keras_serializable(package="ravecnn")
def masked_mse(y_true, y_pred):
    """Mean of (y_true − y_pred)² over the entries where y_true is not NaN; a scalar.

    Missing labels are NaN in ``y_true`` (batch, n_labels). They add neither to the sum
    nor to the count; a batch with every label missing gives 0 and zero gradients.
    """
    y_pred = ops.convert_to_tensor(y_pred)
    y_true = ops.cast(y_true, y_pred.dtype)
    known = ops.logical_not(ops.isnan(y_true))
    y_true = ops.where(known, y_true, y_pred)  # missing entries: residual exactly 0
    squared = ops.square(y_true - y_pred)
    count = ops.sum(ops.cast(known, y_pred.dtype))
    return ops.sum(squared) / ops.maximum(count, 1.0)


@keras.saving.register_keras_serializable(package="ravecnn")
class WeightedMaskedMSE(keras.losses.Loss):
    """``masked_mse`` with a weight per label, per star: Σ s_i w_j r_ij² / Σ w_j over the known
    entries (r: scaled residual; w: ``label_weights``, one per output, default all 1; s: Keras'
    ``sample_weight``, default 1). With every weight 1 it equals ``masked_mse``.

    Returns one value per star (the per-star sum × batch / Σ w_j), so that Keras' mean over the
    batch, times a ``sample_weight``, gives the weighted mean above: ``masked_mse`` returns a
    scalar, which a sample weight cannot reach star by star.
    """

    def __init__(self, label_weights=None, name="weighted_masked_mse", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_weights = None if label_weights is None else [float(w) for w in label_weights]
        if self.label_weights is not None and not all(w >= 0 for w in self.label_weights):
            raise ValueError(f"label_weights must be ≥ 0, got {self.label_weights}")

    def call(self, y_true, y_pred):
        y_pred = ops.convert_to_tensor(y_pred)
        y_true = ops.cast(y_true, y_pred.dtype)
        known = ops.cast(ops.logical_not(ops.isnan(y_true)), y_pred.dtype)
        weights = known if self.label_weights is None else known * ops.convert_to_tensor(
            np.asarray(self.label_weights, np.float32), y_pred.dtype)
        squared = ops.square(ops.where(known > 0, y_true, y_pred) - y_pred)
        batch = ops.cast(ops.shape(y_pred)[0], y_pred.dtype)
        return ops.sum(weights * squared, axis=-1) * batch / ops.maximum(ops.sum(weights), 1e-12)

    def get_config(self):
        return super().get_config() | {"label_weights": self.label_weights}


def receptive_field(model):
    """Width in pixels of the stretch of spectrum that one unit of the last conv layer sees.

    1 + Σ (kernel − 1) · dilation · (product of earlier strides), over the Conv1D
    layers in order: 58 pixels for the slides' network, 28 for the paper's.
    """
    width, jump = 1, 1
    for layer in model.layers:
        if isinstance(layer, layers.Conv1D):
            width += (layer.kernel_size[0] - 1) * layer.dilation_rate[0] * jump
            jump *= layer.strides[0]
    return width


def network_table(n_pixels, step, dropout=0.2, slides_labels=None, paper_labels=None):
    """One row per network of ``NETWORKS``, built for a grid of ``n_pixels`` pixels of ``step`` Å:
    network, pixels, labels, parameters, receptive field in pixels and in Å (rounded to 0.1 Å).
    ``slides_labels`` / ``paper_labels`` as in :func:`network_spec`."""
    rows = []
    for name in NETWORKS:
        spec = network_spec(name, slides_labels, paper_labels)
        net = build(spec["architecture"], n_pixels, spec["labels"], photometry=spec["photometry"], dropout=dropout)
        rows.append((name, n_pixels, len(spec["labels"]), net.count_params(), receptive_field(net)))
    table = Table(rows=rows, names=("network", "pixels", "labels", "parameters", "receptive field [px]"))
    table["receptive field [Å]"] = np.round(table["receptive field [px]"] * step, 1)
    return table


def layer_table(model):
    """One row per layer: name, class, output shape (str, batch as None) and parameters."""
    rows = [
        (layer.name, type(layer).__name__, str(tuple(layer.output.shape)), layer.count_params())
        for layer in model.layers
    ]
    return Table(rows=rows, names=("layer", "class", "output_shape", "parameters"))
