"""The discriminative peers: the training mean, ridge regression, PCA + ridge, k nearest neighbours."""

import warnings

import numpy as np
from sklearn.decomposition import PCA
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.neighbors import KNeighborsRegressor

from .base import Baseline, PerLabelGroups

ALPHAS = tuple(10.0 ** np.arange(-4.0, 4.01, 0.5))
"""Default ridge penalties (1e-4 … 1e4, 0.5 dex steps); one is chosen per label by leave-one-out."""



def _ridge(alpha):
    """Ridge for one penalty, or RidgeCV (efficient leave-one-out, one penalty per label) for a sequence."""
    if np.ndim(alpha) == 0:
        return Ridge(alpha=float(alpha))
    return RidgeCV(alphas=np.asarray(alpha, float), alpha_per_target=True)


class MeanPredictor(Baseline):
    """Every spectrum gets the training mean of each label (NaN-aware): the floor to beat."""

    def _fit(self, flux, y, ivar):
        with warnings.catch_warnings():  # an all-missing label is allowed: NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            self.mean_ = np.nanmean(y, axis=0)

    def _predict(self, flux, ivar):
        return np.tile(self.mean_, (flux.shape[0], 1))


class RidgeRegression(PerLabelGroups):
    """Linear regression of each label on all pixels with an L2 penalty (scikit-learn ``Ridge``).

    ``alpha`` is the penalty on the squared coefficients (flux is not standardised, so it is in
    units of flux² × spectra): one number, or a sequence from which the best per label is chosen
    by efficient leave-one-out cross-validation (``RidgeCV``; the choice is in ``alpha_``).
    """

    _params = ("alpha",)

    def __init__(self, alpha=ALPHAS):
        super().__init__()
        self.alpha = alpha

    def _estimator(self, n_rows):
        return _ridge(self.alpha)


class PCARidge(PerLabelGroups):
    """Ridge regression (as ``RidgeRegression``) on the first ``n_components`` principal
    components of the flux.

    The PCA is unsupervised, so it is fitted on every training spectrum, including those with
    missing labels; ``n_components`` is capped at min(n_spectra, n_pixels).
    """

    _params = ("n_components", "alpha")

    def __init__(self, n_components=50, alpha=ALPHAS):
        super().__init__()
        self.n_components = n_components
        self.alpha = alpha

    def _features_fit(self, flux):
        n = min(int(self.n_components), *flux.shape)
        self.pca_ = PCA(n_components=n, random_state=0).fit(flux)
        return self.pca_.transform(flux)

    def _features(self, flux):
        return self.pca_.transform(flux)

    def _estimator(self, n_rows):
        return _ridge(self.alpha)


class KNearestNeighbours(PerLabelGroups):
    """Each label is the inverse-distance-weighted mean over the ``k`` nearest training spectra.

    Distances are Euclidean in the space of the first ``n_components`` principal components of
    the flux (not whitened, so they approximate flux distances with most of the pixel noise
    projected out; ``n_components=None`` uses the raw pixels). ``weights`` is ``"distance"``
    (default) or ``"uniform"``. The neighbours of a label are searched among the training rows
    where that label exists; ``k`` is capped at that number of rows.
    """

    _params = ("k", "n_components", "weights")
    min_rows = 1

    def __init__(self, k=10, n_components=30, weights="distance"):
        super().__init__()
        if weights not in ("distance", "uniform"):
            raise ValueError(f"weights must be 'distance' or 'uniform', not {weights!r}")
        self.k = k
        self.n_components = n_components
        self.weights = weights

    def _features_fit(self, flux):
        self.pca_ = None
        if self.n_components is not None:
            n = min(int(self.n_components), *flux.shape)
            self.pca_ = PCA(n_components=n, random_state=0).fit(flux)
            return self.pca_.transform(flux)
        return flux

    def _features(self, flux):
        return flux if self.pca_ is None else self.pca_.transform(flux)

    def _estimator(self, n_rows):
        return KNeighborsRegressor(n_neighbors=min(int(self.k), n_rows), weights=self.weights)
