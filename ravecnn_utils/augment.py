"""What the training sees beyond the training set as written: sample weights that weaken the
labels' correlations, and noise re-drawn every epoch.

Both are options of ``train`` (``decorrelate``, ``noise_per_epoch``), off by default. They are
tried because a network trained on labels that follow each other ([α/M] falls with [M/H] in the
Milky Way) can read [α/M] from the star's [M/H] rather than from its lines (``prior``).
"""

import keras
import numpy as np


def _quantile_bins(values, n_bins):
    """Bin (0 … n_bins − 1) of each finite value among ``n_bins`` bins of equal counts."""
    edges = np.unique(np.quantile(values, np.linspace(0, 1, n_bins + 1)))
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, max(len(edges) - 2, 0))


def decorrelating_weights(m_h, labels, n_bins=8, max_weight=20.0):
    """Importance weights (n,) under which each column of ``labels`` is less correlated with ``m_h``.

    For each column of ``labels`` (n,) or (n, k) (e.g. [α/M] and the [X/Fe], dex) the stars are put
    in cells of ``n_bins`` × ``n_bins`` bins of equal counts in [M/H] and in the label, and a star
    gets the weight p([M/H]) p(label) / p([M/H], label) of its cell (counts): the weight that would
    make the two independent where the cells are occupied. A cell no star occupies stays empty, so
    the weighted sample is as independent as the stars allow, not more. The columns' weights are
    multiplied, capped at ``max_weight`` × their mean, and divided by their mean: finite, > 0,
    mean 1. A star with a NaN [M/H] or label gets the factor 1 for it.

    Trained with these weights (Keras' ``sample_weight``) the loss rewards reading [α/M] and the
    [X/Fe] from the lines more than inferring them from [M/H]. With real APOGEE stars this only
    re-weights the stars that exist: the rare ones (α-rich at high [M/H], α-poor at low [M/H]) count
    more, their noise and APOGEE's errors with them, the effective number of stars falls, and a
    combination no star has (α-poor metal-poor stars, say) stays absent: weights cannot create it.
    A simulation can draw such stars; a real survey cannot.
    """
    m_h = np.asarray(m_h, float)
    labels = np.asarray(labels, float).reshape(len(m_h), -1)
    if n_bins < 1 or max_weight <= 1:
        raise ValueError(f"n_bins={n_bins} must be ≥ 1 and max_weight={max_weight} > 1")
    weights = np.ones(len(m_h))
    for column in labels.T:
        ok = np.isfinite(m_h) & np.isfinite(column)
        if ok.sum() < 2:
            continue
        a, b = _quantile_bins(m_h[ok], n_bins), _quantile_bins(column[ok], n_bins)
        cells = np.zeros((n_bins, n_bins))
        np.add.at(cells, (a, b), 1)
        weights[ok] *= cells.sum(1)[a] * cells.sum(0)[b] / ok.sum() / cells[a, b]
    weights = np.minimum(weights, max_weight * weights.mean())
    return weights / weights.mean()


def noise_sigma(error):
    """The σ (same shape as ``error``, float32) of the noise re-drawn per epoch: the spectrum's own
    error, 0 where it is inf (pixels without information, which the input sets to the continuum)."""
    error = np.asarray(error, np.float32)
    return np.where(np.isfinite(error), error, 0).astype(np.float32)


class NoisyInputs(keras.utils.PyDataset):
    """Training batches whose spectra get fresh Gaussian noise every epoch (data augmentation).

    ``x``: the spectrum input (n, n_pixels, 1), or a dict with ``"spectrum"`` (other inputs, e.g.
    photometry, pass unchanged); ``y`` (n, n_labels); ``sigma`` (n, n_pixels): the noise σ per pixel
    (``noise_sigma``), times ``scale``. The spectra already carry their own noise, so the fed
    spectra have √(1 + scale²) times it: the network sees each star at a new noise draw each epoch
    rather than learning one draw by heart. Batches are shuffled every epoch; noise and order
    depend only on (``seed``, epoch, batch), so a rerun is identical. With ``sample_weight`` (n,)
    every batch also yields its weights. Validation data should stay plain arrays: only the
    training batches come from here.
    """

    def __init__(self, x, y, sigma, batch_size=64, seed=0, scale=1.0, sample_weight=None):
        super().__init__(workers=1, use_multiprocessing=False)
        self.x, self.y, self.sigma = x, np.asarray(y, np.float32), np.asarray(sigma, np.float32)
        spectrum = x["spectrum"] if isinstance(x, dict) else x
        if self.sigma.shape != np.shape(spectrum)[:2] or len(self.y) != len(self.sigma):
            raise ValueError(f"sigma {self.sigma.shape}, spectra {np.shape(spectrum)} and labels "
                             f"{self.y.shape} do not agree")
        self.sample_weight = None if sample_weight is None else np.asarray(sample_weight, np.float32)
        self.batch_size, self.seed, self.scale, self.epoch = int(batch_size), int(seed), float(scale), 0
        self._order()

    def _order(self):
        self.order = np.random.default_rng([self.seed, self.epoch]).permutation(len(self.y))

    def __len__(self):
        return -(-len(self.y) // self.batch_size)

    def __getitem__(self, index):
        rows = np.sort(self.order[index * self.batch_size:(index + 1) * self.batch_size])
        rng = np.random.default_rng([self.seed, self.epoch, index])
        noise = self.scale * self.sigma[rows] * rng.standard_normal(self.sigma[rows].shape, np.float32)
        if isinstance(self.x, dict):
            x = {k: np.asarray(v[rows], np.float32) for k, v in self.x.items()}
            x["spectrum"] = x["spectrum"] + noise[..., None]
        else:
            x = np.asarray(self.x[rows], np.float32) + noise[..., None]
        if self.sample_weight is None:
            return x, self.y[rows]
        return x, self.y[rows], self.sample_weight[rows]

    def on_epoch_end(self):
        self.epoch += 1
        self._order()
