"""Is this a spectrum the training survey could have produced? A novelty score in the network's
own feature space, its threshold, and the catalogue's ``ood_score`` and ``out_of_domain`` flag.

**The score.** Every member network maps a spectrum to the activations of its last hidden layer
(``fastcnn.FEATURE_LAYER``: 16 numbers, from which the labels are a linear read-out). Over the
training spectra these features form a cloud; each member's cloud is summarised by its mean and a
regularised covariance, and a spectrum's distance from it is the squared Mahalanobis distance d².
``ood_score`` is d² divided by the number of features k, averaged over the members: dimensionless,
of order 1 for a spectrum like the training ones (a Gaussian cloud of k features has E[d²] = k;
the shrinkage below lowers it), large for one whose features lie where no training spectrum's
did — where the labels are an extrapolation the validation set never checked.

**The threshold.** The validation spectra set neither the weights nor the clouds, so their scores
are those of new spectra from the same survey. The threshold is their conformal (1 − α) quantile:
the ⌈(n + 1)(1 − α)⌉-th smallest of the n validation scores. A new spectrum drawn as the validation
spectra were then exceeds it with probability at most α, the false-alarm rate (``FALSE_ALARM_RATE``,
1 %, unless told). With fewer than 1/α − 1 validation spectra that rank lies beyond n: the
threshold is then the largest validation score, and the false-alarm rate about 1/(n + 1).

**Why this score.** Each member gets its own cloud, as the members' features share no axes;
averaging their d² makes the score steadier than one member's. The covariance is shrunk
(Ledoit–Wolf, on standardised features: towards the diagonal, by an amount estimated from the
data, no knob) since the features of a small network are strongly correlated, and an almost
singular covariance would turn round-off into huge distances. A χ² of the spectrum against a
forward model at the network's labels would also catch foreign spectra, but it needs the
simulation's forward model, which the analysis does not depend on (a real survey has none). The
limit of a feature-space score: it sees only what the network sees. A spectrum that differs from
the training ones only where the network does not look is not flagged — but its labels do not
change either.

The statistics live in the saved ensemble (``ensemble.json``, entry ``novelty``), written when
the ensemble is trained and calibrated (``train.train_networks``, notebook 04).
"""

import math

import numpy as np

from .fastcnn import FEATURE_LAYER

FALSE_ALARM_RATE = 0.01
"""Default fraction of spectra like the validation ones flagged ``out_of_domain``."""

ENTRIES = ("mean", "precision", "threshold", "false_alarm_rate", "n_validation", "n_train")
"""The entries of the saved statistics (``Novelty.to_dict``)."""


def _check_rate(rate):
    if not (isinstance(rate, (int, float)) and not isinstance(rate, bool) and 0 < rate < 1):
        raise ValueError(f"false_alarm_rate must be a number in (0, 1), got {rate!r}")
    return float(rate)


def conformal_threshold(scores, false_alarm_rate=FALSE_ALARM_RATE):
    """The ⌈(n + 1)(1 − α)⌉-th smallest of the n finite ``scores`` (the largest if that rank
    exceeds n), α = ``false_alarm_rate``; ValueError if no score is finite."""
    rate = _check_rate(false_alarm_rate)
    finite = np.sort(np.asarray(scores, float)[np.isfinite(scores)])
    if finite.size == 0:
        raise ValueError("no finite validation score to set the out-of-domain threshold with")
    rank = math.ceil((finite.size + 1) * (1 - rate) - 1e-9)
    return float(finite[min(rank, finite.size) - 1])


def feature_cloud(features):
    """Mean (k,) and precision matrix (k, k) of training features (n, k): Ledoit–Wolf shrinkage on
    the standardised features (a floor of 1e-6 of the largest standard deviation), scaled back."""
    from sklearn.covariance import ledoit_wolf

    features = np.asarray(features, float)
    if features.ndim != 2 or len(features) < 2:
        raise ValueError(f"training features must be (n >= 2, k), got shape {features.shape}")
    if not np.isfinite(features).all():
        raise ValueError("training features hold NaN or inf: a training spectrum the network cannot read")
    mean = features.mean(axis=0)
    std = features.std(axis=0)
    std = np.maximum(std, 1e-6 * std.max() + 1e-30)
    shrunk, _ = ledoit_wolf((features - mean) / std)
    precision = np.linalg.inv(shrunk) / np.outer(std, std)
    return mean, (precision + precision.T) / 2


class Novelty:
    """The feature clouds of an ensemble's members and the out-of-domain threshold.

    Attributes
    ----------
    mean : array (n_members, k) — each member's mean training features
    precision : array (n_members, k, k) — inverse of each member's regularised covariance
    threshold : float — ``ood_score`` above which a spectrum is ``out_of_domain``
    false_alarm_rate : float — the α the threshold was set for
    n_validation, n_train : int — spectra that set the threshold and the clouds
    """

    def __init__(self, mean, precision, threshold, false_alarm_rate, n_validation, n_train):
        self.mean = np.asarray(mean, float)
        self.precision = np.asarray(precision, float)
        m, k = self.mean.shape
        if self.precision.shape != (m, k, k):
            raise ValueError(f"precision of shape {self.precision.shape} for means of shape {(m, k)}")
        self.threshold = float(threshold)
        self.false_alarm_rate = _check_rate(false_alarm_rate)
        self.n_validation, self.n_train = int(n_validation), int(n_train)

    def __repr__(self):
        return (f"Novelty({len(self.mean)} members × {self.mean.shape[1]} features, threshold "
                f"{self.threshold:.3g} for a false-alarm rate of {self.false_alarm_rate:g} "
                f"on {self.n_validation} validation spectra)")

    @classmethod
    def fit(cls, train_features, val_features, false_alarm_rate=FALSE_ALARM_RATE):
        """Clouds from the members' training features and threshold from their validation features,
        each (n_members, n, k) (``Ensemble.member_predictions(x, features=True)[1]``)."""
        rate = _check_rate(false_alarm_rate)
        train_features, val_features = np.asarray(train_features, float), np.asarray(val_features, float)
        if train_features.ndim != 3 or val_features.ndim != 3 or \
                train_features.shape[::2] != val_features.shape[::2]:
            raise ValueError(f"training features {train_features.shape} and validation features "
                             f"{val_features.shape} must be (n_members, n, k) of the same members and k")
        clouds = [feature_cloud(f) for f in train_features]
        novelty = cls([c[0] for c in clouds], [c[1] for c in clouds], np.nan, rate, val_features.shape[1],
                      train_features.shape[1])
        novelty.threshold = conformal_threshold(novelty.score(val_features), rate)
        return novelty

    def score(self, features):
        """``ood_score`` of each spectrum, (n,), from its members' features (n_members, n, k): the
        mean over members of d² / k. NaN features (a spectrum without usable pixels) give NaN."""
        features = np.asarray(features, float)
        if features.ndim != 3 or features.shape[0] != len(self.mean) or features.shape[2] != self.mean.shape[1]:
            raise ValueError(f"features of shape {features.shape}, expected (n_members={len(self.mean)}, n, "
                             f"k={self.mean.shape[1]}): not the members these statistics were fitted to")
        diff = features - self.mean[:, None, :]
        d2 = np.einsum("mni,mij,mnj->mn", diff, self.precision, diff)
        return d2.mean(axis=0) / self.mean.shape[1]

    def flag(self, scores):
        """True where ``scores`` exceed the threshold (NaN: False)."""
        with np.errstate(invalid="ignore"):
            return np.asarray(scores, float) > self.threshold

    def to_dict(self):
        """Plain-JSON statistics (the ensemble's ``novelty`` entry)."""
        return {"layer": FEATURE_LAYER, "mean": self.mean.tolist(), "precision": self.precision.tolist(),
                "threshold": self.threshold, "false_alarm_rate": self.false_alarm_rate,
                "n_validation": self.n_validation, "n_train": self.n_train}

    @classmethod
    def from_dict(cls, entry, path, n_members):
        """The statistics saved in ``entry`` of the file ``path`` for ``n_members`` members;
        ValueError naming the file and what is wrong."""
        if not isinstance(entry, dict) or any(k not in entry for k in ENTRIES):
            raise ValueError(f"{path}: entry 'novelty' must hold {list(ENTRIES)}, got "
                             f"{sorted(entry) if isinstance(entry, dict) else entry!r}")
        try:
            mean = np.array(entry["mean"], float)
            precision = np.array(entry["precision"], float)
            novelty = cls(mean, precision, entry["threshold"], entry["false_alarm_rate"],
                          entry["n_validation"], entry["n_train"])
        except (TypeError, ValueError) as err:
            raise ValueError(f"{path}: entry 'novelty' is damaged ({err}); recalibrate the ensemble "
                             "(Ensemble.fit_novelty, then save) or rerun notebook 04") from None
        if mean.ndim != 2 or len(mean) != n_members or not np.isfinite(novelty.threshold) \
                or not (np.isfinite(mean).all() and np.isfinite(precision).all()):
            raise ValueError(f"{path}: entry 'novelty' must hold finite statistics for each of the "
                             f"{n_members} members, got means of shape {mean.shape}")
        return novelty


def missing_message(where):
    """The warning for an ensemble saved without novelty statistics (``where``: its file)."""
    return (f"{where} has no novelty statistics (entry 'novelty' of ensemble.json: saved by older code, or "
            "never given them): ood_score is NaN and the out_of_domain flag is never set. Recalibrate it: ensemble.fit_novelty(x_train, x_val) "
            "on its training and validation inputs, then ensemble.save(folder) — or rerun notebook 04")
