"""What the network looks at: gradients of the predicted labels with respect to the input flux.

``label_gradients`` differentiates every predicted label with respect to every pixel of the
spectrum (∂label/∂flux, one map per spectrum and label). For an :class:`~ravecnn_utils.ensemble.Ensemble`
the maps are averaged over the members and given in physical units (K per unit of normalised
flux for Teff, dex per unit flux otherwise). ``population_masks`` and ``mean_gradients`` average
the maps over groups of stars (cool giants, red clump, dwarfs, metal-poor, hot stars);
``top_lines`` names the lines under the strongest peaks of a map; ``forward_sensitivity`` gives
the forward model's own ∂flux/∂label on the same pixels, i.e. where the information actually is.

The two derivatives answer different questions and have inverse units: the network's
∂label/∂flux says which pixels move the prediction, the forward model's ∂flux/∂label which
pixels move with the label. Compare where they are large, not their values.
"""

import weakref

import numpy as np
import tensorflow as tf
from astropy.table import Table

from .ensemble import Ensemble

POPULATIONS = {
    "cool giants": {"teff": (None, 4600.0), "logg": (None, 3.0)},
    "red clump": {"teff": (4600.0, 5100.0), "logg": (2.2, 2.7)},
    "dwarfs": {"teff": (None, 6200.0), "logg": (3.8, None)},
    "metal-poor": {"m_h": (None, -1.0)},
    "hot stars": {"teff": (6200.0, None)},
}
"""Boundaries of the populations of ``population_masks``: label → (low, high), both strict
(``low < value < high``), None = unbounded. Teff in K, log g in dex (cgs), [M/H] in dex.
A star with a missing (NaN) label that a population needs is not in it. The populations
overlap (a metal-poor star is also a giant or a dwarf); a star exactly on a boundary
(e.g. Teff = 4600 K) belongs to neither side."""

NO_LINE = "—"
"""Species written by ``top_lines`` for a peak with no line within the window."""

_COMPILED = weakref.WeakKeyDictionary()  # keras model → {input signature: tf.function}


def _gradient_function(model, spectrum_shape, other_inputs):
    """A traced function (spectrum[, other inputs]) → ∂output/∂spectrum, (batch, n_labels, n_pixels).

    One forward pass per batch on a persistent tape, then one ``tape.gradient`` per label of the
    summed output column: the spectra of a batch are independent (inference mode, no batch
    statistics), so the gradient of the column sum is each spectrum's own gradient. This was the
    fastest of (label loop, ``batch_jacobian``, tiled batch) on the slides network on CPU.
    The function is cached per model (weakly: it goes when the model does) and input signature.
    """
    key = (tuple(spectrum_shape), tuple((name, tuple(shape)) for name, shape in other_inputs))
    try:
        cache = _COMPILED.setdefault(model, {})
    except TypeError:  # a model that cannot be weakly referenced: no caching
        cache = {}
    if key in cache:
        return cache[key]

    ref = weakref.ref(model)  # the traced graph keeps the variables, not the model
    n_labels = int(np.prod(model.outputs[0].shape[1:]))
    names = [name for name, _ in other_inputs]
    signature = [tf.TensorSpec((None,) + tuple(spectrum_shape), tf.float32)]
    signature += [tf.TensorSpec((None,) + tuple(shape), tf.float32) for _, shape in other_inputs]

    @tf.function(input_signature=signature)
    def gradients(spectrum, *others):
        with tf.GradientTape(persistent=True) as tape:
            tape.watch(spectrum)
            x = dict(zip(["spectrum"] + names, (spectrum,) + others)) if names else spectrum
            y = ref()(x, training=False)
            y = tf.reshape(y, (-1, n_labels))
            columns = [tf.reduce_sum(y[:, j]) for j in range(n_labels)]
        maps = [tf.reshape(tape.gradient(c, spectrum), (tf.shape(spectrum)[0], -1)) for c in columns]
        del tape
        return tf.stack(maps, axis=1)

    cache[key] = gradients
    return gradients


def _split_inputs(x):
    """(spectrum float32 (n, n_pixels, 1), [(name, float32 array)] of the other inputs)."""
    if isinstance(x, dict):
        if "spectrum" not in x:
            raise ValueError(f"input dict has no 'spectrum' entry (keys: {sorted(x)})")
        others = [(k, np.asarray(v, np.float32)) for k, v in x.items() if k != "spectrum"]
        spectrum = x["spectrum"]
    else:
        spectrum, others = x, []
    spectrum = np.asarray(spectrum, np.float32)
    if spectrum.ndim == 2:
        spectrum = spectrum[..., None]
    if spectrum.ndim != 3:
        raise ValueError(f"spectra must be (n, n_pixels) or (n, n_pixels, 1), got shape {spectrum.shape}")
    for name, value in others:
        if len(value) != len(spectrum):
            raise ValueError(f"input {name!r} has {len(value)} rows, the spectra {len(spectrum)}")
    return spectrum, others


def _model_gradients(model, spectrum, others, batch_size, out, weight):
    """Add ``weight`` · ∂output/∂spectrum of one keras model into ``out`` (n, n_labels, n_pixels)."""
    fn = _gradient_function(model, spectrum.shape[1:], [(k, v.shape[1:]) for k, v in others])
    for start in range(0, len(spectrum), batch_size):
        stop = start + batch_size
        g = fn(tf.constant(spectrum[start:stop]), *(tf.constant(v[start:stop]) for _, v in others))
        g = g.numpy()
        if g.shape[1:] != out.shape[1:]:
            raise ValueError(f"model {model.name!r} gives gradients of shape {g.shape[1:]}, "
                             f"expected (n_labels, n_pixels) = {out.shape[1:]}")
        out[start:stop] += weight * g


def label_gradients(model_or_ensemble, x, batch_size=256):
    """∂label/∂flux of every spectrum, label and pixel: array (n, n_labels, n_pixels), float32.

    Parameters
    ----------
    model_or_ensemble : keras.Model or Ensemble
        A keras model gives the derivative of its raw output (scaled labels for the package's
        networks). An Ensemble gives the mean over its members converted to physical units:
        K per unit of normalised flux for Teff, dex per unit flux otherwise (the scaled
        derivative times ``scaler.scale`` of the label).
    x : array (n, n_pixels[, 1]) or dict
        The network input as built by ``Ensemble.inputs`` / ``inputs.make_inputs``. For a
        photometry network, a dict with ``"spectrum"`` and ``"photometry"``: only the
        spectrum is differentiated, the photometry is held fixed.
    batch_size : int
        Spectra per tape. Memory is about batch_size × n_pixels × (conv filters) floats.

    The network runs in inference mode (dropout off). The result holds n × n_labels × n_pixels
    float32 values (1,000 spectra × 9 labels × 912 px ≈ 33 MB); for very large samples call it
    on chunks and average with ``mean_gradients``.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    spectrum, others = _split_inputs(x)
    if isinstance(model_or_ensemble, Ensemble):
        members, n_labels = model_or_ensemble.members, len(model_or_ensemble.labels)
        scale = model_or_ensemble.scaler.scale
    else:
        members, scale = [model_or_ensemble], None
        n_labels = int(np.prod(model_or_ensemble.outputs[0].shape[1:]))
    out = np.zeros((len(spectrum), n_labels, spectrum.shape[1]), np.float32)
    if len(spectrum) == 0:
        return out
    for member in members:
        _model_gradients(member, spectrum, others, int(batch_size), out, 1.0 / len(members))
    if scale is not None:
        out *= np.asarray(scale, np.float32)[None, :, None]
    return out


def _label_columns(labels, label_names, wanted):
    """{name: float64 column (NaN = missing)} of the ``wanted`` labels found in a table or array."""
    if isinstance(labels, Table) or (hasattr(labels, "dtype") and labels.dtype.names):
        names = labels.colnames if isinstance(labels, Table) else labels.dtype.names
        return {name: np.asarray(np.ma.filled(np.ma.asarray(labels[name], dtype=float), np.nan))
                for name in wanted if name in names}
    array = np.asarray(np.ma.filled(np.ma.asarray(labels, dtype=float), np.nan))
    array = np.atleast_2d(array)
    if label_names is None:
        raise ValueError("label_names is needed to read the columns of a plain array")
    label_names = list(label_names)
    if array.shape[1] != len(label_names):
        raise ValueError(f"{array.shape[1]} label columns but {len(label_names)} label names")
    return {name: array[:, label_names.index(name)] for name in wanted if name in label_names}


def population_masks(labels, label_names=None, populations=POPULATIONS):
    """Boolean mask of each population (see ``POPULATIONS``): dict name → (n,) bool.

    Parameters
    ----------
    labels : astropy Table (columns teff, logg, m_h…) or array (n, n_labels)
        Physical units. Masked or NaN entries count as missing.
    label_names : sequence of str
        Column names of an array (ignored for a table), e.g. ``ensemble.labels``.
    populations : dict
        Name → {label: (low, high)}; default ``POPULATIONS``.

    A population whose labels are not all present (e.g. metal-poor without m_h) is left out.
    """
    wanted = sorted({name for bounds in populations.values() for name in bounds})
    columns = _label_columns(labels, label_names, wanted)
    n = len(next(iter(columns.values()))) if columns else len(labels)
    masks = {}
    for pop, bounds in populations.items():
        if any(name not in columns for name in bounds):
            continue
        mask = np.ones(n, bool)
        with np.errstate(invalid="ignore"):
            for name, (low, high) in bounds.items():
                if low is not None:
                    mask &= columns[name] > low
                if high is not None:
                    mask &= columns[name] < high
        masks[pop] = mask
    return masks


def mean_gradients(gradients, masks):
    """Mean gradient map of each population: dict name → (n_labels, n_pixels); empty masks skipped."""
    gradients = np.asarray(gradients)
    out = {}
    for name, mask in masks.items():
        mask = np.asarray(mask, bool)
        if mask.shape != gradients.shape[:1]:
            raise ValueError(f"mask {name!r} has shape {mask.shape}, gradients have {len(gradients)} spectra")
        if mask.any():
            out[name] = gradients[mask].mean(axis=0, dtype=np.float64)
    return out


def _as_line_table(lines):
    """(wavelengths Å, species) of a line list Table or a {species: wavelengths} dict (e.g. LANDMARKS)."""
    if isinstance(lines, dict):
        pairs = [(float(w), sp) for sp, waves in lines.items() for w in np.atleast_1d(waves)]
        return np.array([p[0] for p in pairs], float), np.array([p[1] for p in pairs], dtype=object)
    return np.asarray(lines["wavelength"], float), np.asarray(lines["species"], dtype=object)


def _peaks(values, min_separation):
    """Indices of the local maxima of ``values``, strongest first, kept only when more than
    ``min_separation`` pixels from every stronger one already kept."""
    v = np.asarray(values, float)
    if v.size == 0:
        return np.array([], int)
    left = np.r_[-np.inf, v[:-1]]
    right = np.r_[v[1:], -np.inf]
    candidates = np.flatnonzero((v >= left) & (v >= right) & ((v > left) | (v > right)) & (v > 0))
    if candidates.size == 0 and v.max() > 0:  # a flat map: its first maximum
        candidates = np.array([int(np.argmax(v))])
    kept = []
    for i in candidates[np.argsort(-v[candidates], kind="stable")]:
        if all(abs(i - k) > min_separation for k in kept):
            kept.append(i)
    return np.array(kept, int)


def top_lines(gradient_1d, wave, lines, n=5, window=0.6, min_separation=2):
    """The ``n`` strongest peaks of |gradient| and the line under each.

    Parameters
    ----------
    gradient_1d : array (n_pixels,)
        One gradient map (one label, e.g. a population mean).
    wave : array (n_pixels,)
        Wavelength of each pixel (Å).
    lines : Table with ``wavelength`` and ``species`` (``read_linelist``), or a dict
        species → wavelengths such as ``plots.LANDMARKS``.
    n : int
        Number of peaks.
    window : float
        A peak is identified with the nearest line within this many Å; otherwise its species
        is ``NO_LINE`` ("—") and its line wavelength NaN.
    min_separation : int
        Peaks are local maxima of |gradient| more than this many pixels apart (the stronger wins).

    Returns
    -------
    astropy.table.Table
        ``rank`` (1 = strongest), ``wavelength_peak`` (Å), ``gradient`` (signed value at the
        peak), ``species``, ``line_wavelength`` (Å). Fewer than ``n`` rows if the map has fewer peaks.
    """
    g = np.asarray(gradient_1d, float)
    wave = np.asarray(wave, float)
    if g.ndim != 1 or g.shape != wave.shape:
        raise ValueError(f"gradient {g.shape} and wave {wave.shape} must be 1-d and of one length")
    line_wave, line_species = _as_line_table(lines)
    peaks = _peaks(np.abs(np.nan_to_num(g)), min_separation)[:n]
    species, matched = [], []
    for i in peaks:
        if line_wave.size:
            j = int(np.argmin(np.abs(line_wave - wave[i])))
            if abs(line_wave[j] - wave[i]) <= window:
                species.append(str(line_species[j]))
                matched.append(line_wave[j])
                continue
        species.append(NO_LINE)
        matched.append(np.nan)
    table = Table({
        "rank": np.arange(1, len(peaks) + 1),
        "wavelength_peak": wave[peaks],
        "gradient": g[peaks],
        "species": np.array(species, dtype=str) if species else np.array([], dtype=str),
        "line_wavelength": np.array(matched, float),
    })
    table["wavelength_peak"].unit = "Angstrom"
    table["line_wavelength"].unit = "Angstrom"
    return table


def shape_correlation(network, forward, labels):
    """Where the network looks against where the forward model puts the information, per label:
    the correlation of |∂label/∂flux| (``network``, (n_labels, n_pixels), e.g. the mean of
    ``label_gradients``) with |∂flux/∂label| (``forward``, same shape, the forward model's
    sensitivity). The two have inverse units, so only their shapes are compared.

    Returns a Table: label, correlation (1 = the same pixels, 0 = unrelated).
    """
    network, forward = np.abs(np.asarray(network, float)), np.abs(np.asarray(forward, float))
    if network.shape != forward.shape or network.shape[0] != len(labels):
        raise ValueError(f"network {network.shape} and forward {forward.shape} gradients must both be "
                         f"(n_labels = {len(labels)}, n_pixels)")
    table = Table({"label": list(labels),
                   "correlation": [np.corrcoef(n, f)[0, 1] for n, f in zip(network, forward)]})
    table["correlation"].format = ".2f"
    return table
