"""The peers a user would pick instead of the CNN, behind one interface.

Every method is a class with ``fit(flux, y, ivar=None)`` (returns self) and
``predict(flux, ivar=None) -> (n, n_labels)``:

* ``flux`` (n, n_pixels): continuum-normalised spectra (dimensionless, continuum = 1), pixels
  with no information already replaced by 1.0; NaN/inf flux is a ValueError;
* ``y`` (n, n_labels): labels in physical units (K, dex), NaN = missing;
* ``ivar`` (n, n_pixels): optional pixel inverse variances (1/σ², σ in flux units, 0 = no
  information). Only ``TheCannon`` uses them; the others accept and ignore them so that a
  notebook can loop over ``BASELINES`` with the same call.

Missing labels. The discriminative methods (ridge, PCA + ridge, kNN) fit each label on the
rows where that label exists: labels that are present on the same rows share one
multi-output fit, which is column-by-column independent, so a missing value in one label
never changes the predictions of another. ``MeanPredictor`` takes the mean of the present
values. ``TheCannon`` needs complete label vectors: it trains on the rows where every label
is present (labels with no value at all are dropped first). A label without any training
value is predicted as NaN by every method.

``BASELINES`` maps a short name to a factory with sensible defaults:
``{name: factory() for name, factory in BASELINES.items()}`` gives fresh, unfitted models.
"""

from .base import Baseline, NotFittedError
from .cannon import TheCannon
from .regression import ALPHAS, KNearestNeighbours, MeanPredictor, PCARidge, RidgeRegression

__all__ = ["ALPHAS", "BASELINES", "Baseline", "KNearestNeighbours", "MeanPredictor", "NotFittedError",
           "PCARidge", "RidgeRegression", "TheCannon"]

BASELINES = {
    "mean": MeanPredictor,
    "ridge": RidgeRegression,
    "pca_ridge": lambda: PCARidge(n_components=50),
    "knn": lambda: KNearestNeighbours(k=10, n_components=30, weights="distance"),
    "cannon": lambda: TheCannon(regularisation=0.0),
}
"""Short name → factory of a fresh, unfitted model with the defaults used in the book."""
