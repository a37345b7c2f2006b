"""Training the CNN: label scaling, inputs, seeded fits with early stopping, and ensembles.

The recipe follows Guiglion et al. (2020): labels min–max scaled on the training rows, Adam,
a masked mean squared error (missing APOGEE labels are NaN and do not count), early stopping
on the validation set, and an ensemble of networks trained from different seeds whose mean is
the prediction and whose spread (calibrated on the validation set) is the uncertainty.

The test set is never passed to anything here: it is for the final numbers only.
"""

import json
import math
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .labels import UNITS
from .metrics import bias_and_scatter

ENSEMBLE_FILE = "ensemble.json"
"""Name of the description file inside a saved ensemble folder."""


def _as_float_array(y):
    """Float64 copy of ``y`` with masked entries as NaN."""
    return np.asarray(np.ma.filled(np.ma.asarray(y, dtype=float), np.nan), dtype=float)


def _plain(value):
    """``value`` with numpy scalars / arrays turned into plain Python (NaN and inf → None) for JSON."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_plain(v) for v in value]
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return float(value) if math.isfinite(value) else None
    if value is None or isinstance(value, str):
        return value
    return str(value)


class LabelScaler:
    """Min–max scaling of labels to [0, 1] on the training rows: ``(y − min) / (max − min)``.

    NaN (missing) labels are ignored by ``fit`` and stay NaN. A label with a single value (or
    none at all) gets a scale of 1.
    """

    def __init__(self, minimum=None, scale=None):
        self.minimum = None if minimum is None else np.asarray(minimum, float)
        self.scale = None if scale is None else np.asarray(scale, float)

    def fit(self, y):
        """Fit on the training labels ``y`` (n, n_labels), physical units; returns self."""
        y = _as_float_array(y)
        if y.shape[0] == 0:
            raise ValueError("cannot fit the scaling on zero training rows")
        with warnings.catch_warnings():  # an all-missing label is allowed
            warnings.simplefilter("ignore", RuntimeWarning)
            lo, hi = np.nanmin(y, axis=0), np.nanmax(y, axis=0)
        scale = hi - lo
        self.minimum = np.where(np.isfinite(lo), lo, 0.0)
        self.scale = np.where(np.isfinite(scale) & (scale > 0), scale, 1.0)
        return self

    def _check(self):
        if self.minimum is None:
            raise ValueError("LabelScaler is not fitted; call fit(y_train) first")

    def transform(self, y):
        """Physical labels (n, n_labels) → scaled float32, NaN stays NaN."""
        self._check()
        return ((_as_float_array(y) - self.minimum) / self.scale).astype(np.float32)

    def inverse(self, y):
        """Scaled labels (n, n_labels) → physical units (float64)."""
        self._check()
        return np.asarray(y, float) * self.scale + self.minimum

    def inverse_sigma(self, s):
        """Scaled uncertainties (n, n_labels) → physical units (scaled only, not shifted)."""
        self._check()
        return np.asarray(s, float) * self.scale

    def to_dict(self):
        """Plain-JSON description."""
        self._check()
        return {"kind": "minmax", "minimum": _plain(self.minimum), "scale": _plain(self.scale)}

    @classmethod
    def from_dict(cls, d):
        """Inverse of ``to_dict``."""
        if d.get("kind", "minmax") != "minmax":
            raise ValueError(f"unknown scaler kind {d.get('kind')!r}")
        return cls(d["minimum"], d["scale"])


def prepare_inputs(flux, error=None, fill=1.0, max_listed=5):
    """Network input from spectra: float32 (n, n_pixels, 1).

    Pixels whose ``error`` is inf carry no information and get the continuum value ``fill``.
    A NaN or inf in ``flux`` itself is an upstream bug: ValueError naming how many spectra
    and pixels, and the first ``max_listed`` (spectrum, pixel) positions.
    """
    flux = np.array(flux, dtype=np.float32, ndmin=2)
    bad = ~np.isfinite(flux)
    if bad.any():
        rows, cols = np.nonzero(bad)
        first = ", ".join(f"({r}, {c})" for r, c in zip(rows[:max_listed], cols[:max_listed]))
        raise ValueError(
            f"{np.unique(rows).size} spectra have NaN/inf flux in {bad.sum()} pixels in all; "
            f"first (spectrum, pixel): {first}")
    if error is not None:
        error = np.asarray(error)
        if error.shape != flux.shape:
            raise ValueError(f"flux {flux.shape} and error {error.shape} differ in shape")
        flux[np.isinf(error)] = fill
    return flux[..., None]


def make_inputs(flux, error=None, phot=None, phot_scaler=None):
    """The network's input: spectra (n, n_pixels, 1), or with photometry the dict
    ``{"spectrum": …, "photometry": (n, n_features)}``.

    ``phot`` is min–max scaled with ``phot_scaler`` (a LabelScaler fitted on the training rows);
    missing values (e.g. no usable parallax) get the middle of the training range, 0.5.
    """
    x = prepare_inputs(flux, error)
    if phot is None:
        return x
    if phot_scaler is None:
        raise ValueError("photometry given without its scaler (fit a LabelScaler on the training rows)")
    scaled = phot_scaler.transform(np.asarray(phot, float))
    return {"spectrum": x, "photometry": np.where(np.isfinite(scaled), scaled, 0.5).astype(np.float32)}


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow, and make TensorFlow ops deterministic (process-wide)."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def _epoch_timer():
    """Keras callback recording the wall-clock seconds of each epoch in ``.seconds``."""
    import keras

    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def fit_model(build, x_train, y_train, x_val, y_val, epochs=100, batch_size=64,
              learning_rate=1e-3, patience=10, seed=0, verbose=0):
    """Train one network with Adam and the masked MSE, early stopping on the validation set.

    Parameters
    ----------
    build : callable
        ``build()`` returns a fresh, uncompiled keras.Model.
    x_train, x_val : array (n, n_pixels, 1) or dict of arrays (photometry variant)
    y_train, y_val : array (n, n_labels)
        Scaled labels; NaN = missing (does not count in the loss).
    patience : int
        Epochs without improvement of val_loss before stopping; the best weights are restored.

    Returns
    -------
    model, history (dict of lists, e.g. loss / val_loss per epoch),
    info (best_epoch (1-based), best_val_loss, epochs_run, seconds_per_epoch (median s)).
    """
    import keras

    from .model import masked_mse

    set_seed(seed)
    model = build()
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=masked_mse)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                         restore_best_weights=True)
    timer = _epoch_timer()
    fit = model.fit(x_train, np.asarray(y_train, np.float32),
                    validation_data=(x_val, np.asarray(y_val, np.float32)),
                    epochs=epochs, batch_size=batch_size, shuffle=True,
                    callbacks=[stop, timer], verbose=verbose)
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    val_loss = np.asarray(history["val_loss"])
    best = int(np.nanargmin(val_loss)) if np.isfinite(val_loss).any() else 0  # as EarlyStopping
    info = {"best_epoch": best + 1, "best_val_loss": float(val_loss[best]),
            "epochs_run": len(val_loss), "seconds_per_epoch": float(np.median(timer.seconds))}
    return model, history, info


def _grid_tuple(grid):
    """(start Å, step Å, n_pixels) from a tuple, a dict or a regular wavelength array."""
    if grid is None:
        return None
    if isinstance(grid, dict):
        return float(grid["start"]), float(grid["step"]), int(grid["n_pixels"])
    grid = np.asarray(grid, float)
    if grid.ndim == 1 and grid.size > 3:  # a wavelength array: mean step, rounded to 1e-9 Å
        return float(grid[0]), round(float((grid[-1] - grid[0]) / (grid.size - 1)), 9), int(grid.size)
    start, step, n = grid
    return float(start), float(step), int(n)


class Ensemble:
    """Networks trained from different seeds, with their label scaler and provenance.

    Attributes
    ----------
    members : list of keras.Model
    scaler : LabelScaler
    labels : tuple of str
    grid : (start Å, step Å, n_pixels) or None
    metadata : dict (seeds, histories, best_epochs, training_set_hash, architecture, photometry…)
    calibration : dict label → k (spread multiplier), or None before ``calibrate``
    """

    def __init__(self, members, scaler, labels, grid=None, metadata=None, calibration=None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.scaler = scaler
        self.labels = tuple(labels)
        self.grid = _grid_tuple(grid)
        self.metadata = dict(metadata or {})
        self.calibration = None if calibration is None else dict(calibration)
        self._compiled = (None, [])   # ((batch size, engine), compiled members), built on first predict

    def __len__(self):
        return len(self.members)

    def __repr__(self):
        return (f"Ensemble({len(self)} members, labels={list(self.labels)}, grid={self.grid}, "
                f"calibrated={self.calibration is not None})")

    def member_predictions(self, x, batch_size=None, engine="auto"):
        """Scaled outputs of every member, (n_members, n, n_labels) float64, through each member's
        compiled inference function (``inference.compile_model``: ``engine`` "auto", "numba" or
        "tensorflow"; ``batch_size`` for TensorFlow; built once per engine and batch size)."""
        from .inference import DEFAULT_BATCH, compile_model

        key = (batch_size or DEFAULT_BATCH, engine)
        if self._compiled[0] != key:
            self._compiled = (key, [compile_model(m, engine, key[0]) for m in self.members])
        return np.stack([f(x) for f in self._compiled[1]]).astype(float)

    def predict(self, x, calibrated=False, batch_size=None, engine="auto"):
        """Mean and spread (std over members) of the predictions, physical units, each (n, n_labels).

        With ``calibrated=True`` the spread is multiplied by the validation factor k of each label.
        ``engine`` and ``batch_size``: see :meth:`member_predictions`.
        """
        scaled = self.member_predictions(x, batch_size, engine)
        if scaled.shape[-1] != len(self.labels):
            raise ValueError(f"members predict {scaled.shape[-1]} labels, ensemble has {len(self.labels)}")
        mean = self.scaler.inverse(scaled.mean(axis=0))
        spread = self.scaler.inverse_sigma(scaled.std(axis=0))
        if calibrated:
            if self.calibration is None:
                raise ValueError("ensemble not calibrated; call calibrate(x_val, y_val) first")
            k = np.array([self.calibration[name] for name in self.labels], float)
            spread = spread * k
        return mean, spread

    def inputs(self, flux, error=None, table=None):
        """The input this ensemble was trained on, built from spectra (and, for a photometry
        ensemble, the catalogue ``table`` with parallax and magnitudes) exactly as in training."""
        scaler = self.metadata.get("photometry_scaler")
        if scaler is None:
            return make_inputs(flux, error)
        if table is None:
            raise ValueError("this ensemble takes photometry: pass the catalogue table (parallax, magnitudes)")
        from .photometry import absolute_magnitudes
        return make_inputs(flux, error, absolute_magnitudes(table), LabelScaler.from_dict(scaler))

    def calibrate(self, x_val, y_val):
        """Per-label factor k so that (y − mean) / (k · spread) has robust σ = 1 on validation.

        ``y_val`` (n, n_labels) in physical units, NaN/masked = missing. Returns and stores
        ``calibration`` (label → k; NaN when a label has no usable validation entry); also stores
        the median member spread per label on validation in ``metadata["validation_spread"]``
        (the reference of ``predict``'s disagreement flag).
        """
        y_val = _as_float_array(y_val)
        mean, spread = self.predict(x_val)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (y_val - mean) / spread
        self.calibration = {name: bias_and_scatter(z[:, j])[1] for j, name in enumerate(self.labels)}
        with warnings.catch_warnings():  # an all-NaN column gives NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            self.metadata["validation_spread"] = dict(zip(self.labels, np.nanmedian(spread, axis=0)))
        return dict(self.calibration)

    def describe(self):
        """The plain-JSON description written to ``ensemble.json``."""
        meta = {"training_set_hash": None, "seeds": None, "histories": None, "best_epochs": None,
                "architecture": self.members[0].name, "photometry": None} | self.metadata
        core = {
            "format": "ravecnn-ensemble",
            "package_version": __version__,
            "labels": list(self.labels),
            "units": {name: UNITS.get(name) for name in self.labels},
            "grid": None if self.grid is None else dict(zip(("start", "step", "n_pixels"), self.grid)),
            "scaler": self.scaler.to_dict(),
            "calibration": self.calibration,
            "members": [f"member_{i:02d}.keras" for i in range(len(self))],
        }
        return _plain(meta | core)

    def save(self, folder):
        """Write ``folder/member_XX.keras`` and ``folder/ensemble.json`` atomically; returns folder.

        Everything goes into ``<folder>.tmp-<pid>`` first and is renamed at the end, so an
        interrupted save leaves neither a half-written folder nor the temporary one. An existing
        ``folder`` is replaced.
        """
        folder = Path(folder)
        tmp = folder.with_name(f"{folder.name}.tmp-{os.getpid()}")
        old = folder.with_name(f"{folder.name}.old-{os.getpid()}")
        description = self.describe()
        for stale in (tmp, old):
            shutil.rmtree(stale, ignore_errors=True)
        moved = False
        try:
            tmp.mkdir(parents=True)
            with warnings.catch_warnings():  # TensorFlow 2.21 variables vs numpy 2.4, harmless
                warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy",
                                        DeprecationWarning)
                for model, name in zip(self.members, description["members"]):
                    model.save(tmp / name)
            with open(tmp / ENSEMBLE_FILE, "w") as f:
                json.dump(description, f, indent=1, allow_nan=False)
            if folder.exists():
                os.replace(folder, old)
                moved = True
            os.replace(tmp, folder)
        except BaseException:
            if moved and not folder.exists():
                os.replace(old, folder)  # put the previous ensemble back
            raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        return folder

    @classmethod
    def load(cls, folder, grid=None, labels=None):
        """Read a saved ensemble (members are loaded for prediction only, not compiled).

        ``grid`` ((start, step, n), a dict or a wavelength array) and ``labels``, when given, must
        match the saved ones: ValueError naming expected and found otherwise.
        """
        import keras

        folder = Path(folder)
        path = folder / ENSEMBLE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: not a saved ensemble")
        with open(path) as f:
            d = json.load(f)
        if labels is not None and list(labels) != d["labels"]:
            raise ValueError(f"ensemble {folder} predicts labels {d['labels']}, expected {list(labels)}")
        saved_grid = _grid_tuple(d["grid"])
        if grid is not None:
            want = _grid_tuple(grid)
            if (saved_grid is None or want[2] != saved_grid[2]
                    or not np.allclose(want[:2], saved_grid[:2], rtol=0, atol=1e-6)):
                raise ValueError(f"ensemble {folder} was trained on the grid (start Å, step Å, n) = "
                                 f"{saved_grid}, expected {want}")
        members = []
        for name in d["members"]:
            if not (folder / name).exists():
                raise FileNotFoundError(f"ensemble member {folder / name} is missing")
            members.append(keras.saving.load_model(folder / name, compile=False))
        core = {"format", "package_version", "labels", "units", "grid", "scaler", "calibration", "members"}
        metadata = {k: v for k, v in d.items() if k not in core}
        metadata["saved_with_version"] = d["package_version"]
        calibration = d["calibration"]
        if calibration is not None:
            calibration = {k: (np.nan if v is None else v) for k, v in calibration.items()}
        return cls(members, LabelScaler.from_dict(d["scaler"]), d["labels"], saved_grid,
                   metadata, calibration)


def train_ensemble(build, x_train, y_train, x_val, y_val, n_models=5, seeds=None, drop_worst=0.0,
                   labels=None, grid=None, metadata=None, progress=True, **fit_kwargs):
    """Train ``n_models`` networks from different seeds; keep all but the worst ``drop_worst``.

    Parameters
    ----------
    y_train, y_val : array (n, n_labels)
        Physical labels, NaN/masked = missing. The scaler is fitted on ``y_train`` only.
    seeds : sequence of int, default 0 … n_models − 1
    drop_worst : float
        Fraction of members with the highest best val_loss to discard (rounded down; e.g. 0.2).
    labels : sequence of str, default ``label0`` …; grid : (start Å, step Å, n_pixels) or wave array
    metadata : dict, e.g. training_set_hash, photometry (columns); stored with the ensemble.
    **fit_kwargs : epochs, batch_size, learning_rate, patience, verbose (see ``fit_model``).
    """
    from tqdm import tqdm

    seeds = list(range(n_models)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n_models:
        raise ValueError(f"{len(seeds)} seeds for {n_models} models")
    n_drop = int(math.floor(drop_worst * n_models + 1e-9))
    if not 0 <= n_drop < n_models:
        raise ValueError(f"drop_worst={drop_worst} would drop {n_drop} of {n_models} members")
    scaler = LabelScaler().fit(y_train)
    labels = tuple(labels) if labels is not None else tuple(f"label{j}" for j in range(scaler.minimum.size))
    if len(labels) != scaler.minimum.size:
        raise ValueError(f"{len(labels)} label names for {scaler.minimum.size} label columns")
    ys_train, ys_val = scaler.transform(y_train), scaler.transform(y_val)

    runs = []
    for seed in tqdm(seeds, desc="ensemble members", disable=not progress):
        model, history, info = fit_model(build, x_train, ys_train, x_val, ys_val, seed=seed, **fit_kwargs)
        runs.append({"model": model, "seed": seed, "history": history, **info})

    # rank by best val_loss (NaN = worst); stable, so ties keep the seed order
    score = [r["best_val_loss"] if math.isfinite(r["best_val_loss"]) else math.inf for r in runs]
    dropped = set(sorted(range(n_models), key=lambda i: score[i], reverse=True)[:n_drop])
    kept = [r for i, r in enumerate(runs) if i not in dropped]
    meta = {
        "architecture": kept[0]["model"].name,
        "seeds": [r["seed"] for r in kept],
        "histories": [{"loss": r["history"]["loss"], "val_loss": r["history"]["val_loss"]} for r in kept],
        "best_epochs": [r["best_epoch"] for r in kept],
        "best_val_losses": [r["best_val_loss"] for r in kept],
        "seconds_per_epoch": [r["seconds_per_epoch"] for r in kept],
        "dropped": [{"seed": runs[i]["seed"], "best_val_loss": runs[i]["best_val_loss"]} for i in sorted(dropped)],
        "fit": {k: v for k, v in fit_kwargs.items() if k != "verbose"},
        "n_train": int(len(ys_train)), "n_validation": int(len(ys_val)),
    } | dict(metadata or {})
    return Ensemble([r["model"] for r in kept], scaler, labels, grid, meta)
