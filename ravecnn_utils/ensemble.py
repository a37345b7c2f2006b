"""The trained ensemble as an artefact: its members, what it predicts, on which grid, how its
labels and photometry are scaled, how its spread is calibrated, and the saved folder's format.

A saved ensemble is a folder with ``member_XX.keras`` and ``ensemble.json`` (``ENSEMBLE_FILE``):
labels, units, grid, label scaler, photometry scaler (paper's network with photometry),
calibration factors, the members' median spread on validation, the novelty statistics
(``novelty``: the feature clouds and out-of-domain threshold), and the training provenance.
"""

import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np

from . import __version__
from .inference import DEFAULT_BATCH, compile_model
from .inputs import make_inputs
from .labels import UNITS, require_known
from .metrics import bias_and_scatter
from .novelty import FALSE_ALARM_RATE, Novelty, missing_message
from .files import where
from .photometry import absolute_magnitudes
from .scaling import LabelScaler, as_float_array, plain

ENSEMBLE_FILE = "ensemble.json"
"""Name of the description file inside a saved ensemble folder."""

DESCRIPTION_ENTRIES = ("format", "package_version", "labels", "units", "grid", "scaler", "calibration",
                       "photometry_scaler", "validation_spread", "novelty", "members")
"""The entries of ``ensemble.json`` that ``describe`` writes itself; the others are the metadata."""


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


def member_outputs(model):
    """Number of labels a member network predicts (its last output's width)."""
    return int(model.outputs[0].shape[-1])


def _numbers(value, n, what, path):
    """ValueError naming ``what`` in ``path`` unless ``value`` is a list of ``n`` numbers (null = NaN)."""
    if not isinstance(value, list) or len(value) != n or not all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool)) for v in value):
        raise ValueError(f"{path}: entry {what!r} must be a list of {n} numbers, got {value!r}")


def _per_label(value, labels, what, path):
    if value is None:
        return
    if not isinstance(value, dict) or sorted(value) != sorted(labels):
        raise ValueError(f"{path}: entry {what!r} must map each of the labels {labels} to a number, got {value!r}")
    _numbers(list(value.values()), len(labels), what, path)


def read_description(path):
    """The ``ensemble.json`` at ``path``, checked: ValueError naming the file and the entry at fault
    (not JSON, a missing entry, labels that are not strings, a grid, scaler, photometry scaler,
    calibration or validation spread of the wrong type or length, no members)."""
    try:
        d = json.loads(Path(path).read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{path}: not valid JSON ({err}); the file is damaged or was cut short: "
                         "save the ensemble again (notebook 04)") from None
    if not isinstance(d, dict) or d.get("format") != "ravecnn-ensemble":
        raise ValueError(f"{path}: not a ravecnn ensemble description (no 'format': 'ravecnn-ensemble')")
    missing = [k for k in ("labels", "grid", "scaler", "calibration", "members") if k not in d]
    if missing:
        raise ValueError(f"{path}: entries {missing} missing")
    labels = d["labels"]
    if not isinstance(labels, list) or not labels or not all(isinstance(x, str) for x in labels) \
            or len(set(labels)) != len(labels):
        raise ValueError(f"{path}: entry 'labels' must be a list of distinct label names, got {labels!r}")
    require_known(labels, f"{path}: entry 'labels'")
    grid = d["grid"]
    if grid is not None:
        if not isinstance(grid, dict) or set(grid) != {"start", "step", "n_pixels"}:
            raise ValueError(f"{path}: entry 'grid' must hold start, step (Å) and n_pixels, got {grid!r}")
        _numbers([grid["start"], grid["step"]], 2, "grid", path)
        if not isinstance(grid["n_pixels"], int) or grid["n_pixels"] < 2 or not grid["step"] > 0:
            raise ValueError(f"{path}: entry 'grid' needs a step > 0 and n_pixels >= 2, got {grid!r}")
    for name in ("scaler", "photometry_scaler"):
        scaler = d.get(name)
        if scaler is None and name == "photometry_scaler":
            continue
        if not isinstance(scaler, dict) or "minimum" not in scaler or "scale" not in scaler:
            raise ValueError(f"{path}: entry {name!r} must hold 'minimum' and 'scale', got {scaler!r}")
        n = len(labels) if name == "scaler" else len(scaler["minimum"] or [])
        _numbers(scaler["minimum"], n, f"{name}.minimum", path)
        _numbers(scaler["scale"], n, f"{name}.scale", path)
    _per_label(d["calibration"], labels, "calibration", path)
    _per_label(d.get("validation_spread"), labels, "validation_spread", path)
    members = d["members"]
    if not isinstance(members, list) or not members or not all(isinstance(m, str) for m in members):
        raise ValueError(f"{path}: entry 'members' must list the member files, got {members!r}")
    if d.get("novelty") is not None:
        Novelty.from_dict(d["novelty"], path, len(members))
    return d


def check_grid(trained, given, ensemble_name, given_name):
    """ValueError naming both unless the wavelength grid ``given`` ((start Å, step Å, n), a dict or a
    wavelength array) is the grid ``trained`` an ensemble was trained on (start and step within
    1e-6 Å, the same number of pixels)."""
    want = _grid_tuple(given)
    if (trained is None or want[2] != trained[2]
            or not np.allclose(want[:2], trained[:2], rtol=0, atol=1e-6)):
        raise ValueError(f"{ensemble_name} was trained on the grid (start Å, step Å, n) = {trained}, "
                         f"but {given_name} is on {want}: resample the spectra to the ensemble's grid "
                         "(cube.build_spectra_cube) or use an ensemble trained on theirs")


class Ensemble:
    """Networks trained from different seeds, with everything needed to use them safely.

    Attributes
    ----------
    members : list of keras.Model
    scaler : LabelScaler (labels ↔ the members' scaled outputs; its range is the training range)
    labels : tuple of str
    grid : (start Å, step Å, n_pixels) or None
    photometry_scaler : LabelScaler of the photometric input, or None for a spectra-only network
    calibration : dict label → k (spread multiplier), or None before ``calibrate``
    validation_spread : dict label → median member spread on validation (K, dex), or None before
        ``calibrate`` (the reference of the catalogue's ``members_disagree`` flag)
    novelty : novelty.Novelty (feature clouds, out-of-domain threshold), or None before ``fit_novelty``
    metadata : dict (seeds, histories, best_epochs, training_set_hash, architecture, network…)
    source : the ``ensemble.json`` it was loaded from, or None
    """

    def __init__(self, members, scaler, labels, grid=None, metadata=None, calibration=None,
                 photometry_scaler=None, validation_spread=None, novelty=None):
        if not members:
            raise ValueError("an ensemble needs at least one member")
        self.members = list(members)
        self.scaler = scaler
        self.labels = tuple(labels)
        require_known(self.labels, "Ensemble")
        self.grid = _grid_tuple(grid)
        self.metadata = dict(metadata or {})
        self.calibration = None if calibration is None else dict(calibration)
        self.photometry_scaler = photometry_scaler
        self.validation_spread = None if validation_spread is None else dict(validation_spread)
        self.novelty = novelty
        self.source = None
        self._compiled = (None, [])   # ((batch size, engine), compiled members), built on first predict

    def __len__(self):
        return len(self.members)

    def __repr__(self):
        return (f"Ensemble({len(self)} members, labels={list(self.labels)}, grid={self.grid}, "
                f"photometry={self.takes_photometry}, calibrated={self.calibration is not None})")

    @property
    def takes_photometry(self):
        """True for a network with the photometric second input."""
        return self.photometry_scaler is not None

    @property
    def training_range(self):
        """(lowest, highest) training label of each label, two arrays (n_labels,) in K or dex."""
        return self.scaler.minimum, self.scaler.minimum + self.scaler.scale

    @property
    def calibration_factors(self):
        """The calibration factor k of each label, array (n_labels,); ValueError before ``calibrate``."""
        if self.calibration is None:
            raise ValueError("ensemble not calibrated; call calibrate(x_val, y_val) first")
        return np.array([self.calibration[name] for name in self.labels], float)

    @property
    def validation_spreads(self):
        """Median member spread on validation of each label, array (n_labels,) in K or dex."""
        if self.validation_spread is None:
            raise ValueError("this ensemble has no validation spread: call ensemble.calibrate(x_val, y_val) "
                             "and save it (notebook 04 does)")
        return np.array([self.validation_spread[name] for name in self.labels], float)

    def require_grid(self, wave, what):
        """ValueError unless the wavelengths ``wave`` (Å; or (start, step, n)) of ``what`` (e.g. a
        cube's name) are this ensemble's grid."""
        check_grid(self.grid, wave, f"this ensemble ({self.metadata.get('network', self.members[0].name)})", what)

    def member_predictions(self, x, batch_size=None, engine="auto", features=False):
        """Scaled outputs of every member, (n_members, n, n_labels) float64, through each member's
        compiled inference function (``inference.compile_model``: ``engine`` "auto", "numba" or
        "tensorflow"; ``batch_size`` for TensorFlow; built once per engine and batch size).
        With ``features=True``: (outputs, last hidden layer's activations (n_members, n, k)), one pass."""
        key = (batch_size or DEFAULT_BATCH, engine)
        if self._compiled[0] != key:
            self._compiled = (key, [compile_model(m, engine, key[0]) for m in self.members])
        if not features:
            return np.stack([f(x) for f in self._compiled[1]]).astype(float)
        both = [f(x, features=True) for f in self._compiled[1]]
        return tuple(np.stack(parts).astype(float) for parts in zip(*both))

    def ood_scores(self, features):
        """``ood_score`` (n,) of the members' ``features`` (:meth:`novelty.Novelty.score`); NaN and a
        warning naming the file and how to recalibrate when the ensemble has no novelty statistics."""
        if self.novelty is None:
            warnings.warn(missing_message(self.source or f"this ensemble ({self.metadata.get('network', '?')})"),
                          stacklevel=3)
            return np.full(np.shape(features)[1], np.nan)
        return self.novelty.score(features)

    def predict(self, x, calibrated=False, batch_size=None, engine="auto", scores=False):
        """Mean and spread (std over members) of the predictions, physical units, each (n, n_labels).

        With ``calibrated=True`` the spread is multiplied by the validation factor k of each label.
        With ``scores=True`` also each spectrum's ``ood_score`` (n,) from the same pass
        (:meth:`ood_scores`): (mean, spread, ood_score). ``engine``, ``batch_size``: see
        :meth:`member_predictions`.
        """
        scaled = self.member_predictions(x, batch_size, engine, features=scores)
        if scores:
            scaled, features = scaled
        if scaled.shape[-1] != len(self.labels):
            raise ValueError(f"members predict {scaled.shape[-1]} labels, ensemble has {len(self.labels)}")
        mean = self.scaler.inverse(scaled.mean(axis=0))
        spread = self.scaler.inverse_sigma(scaled.std(axis=0))
        if calibrated:
            spread = spread * self.calibration_factors
        return (mean, spread, self.ood_scores(features)) if scores else (mean, spread)

    def inputs(self, flux, error=None, table=None):
        """The input this ensemble was trained on, built from spectra (and, for a photometry
        ensemble, the catalogue ``table`` with parallax and magnitudes) exactly as in training."""
        if not self.takes_photometry:
            return make_inputs(flux, error)
        if table is None:
            raise ValueError("this ensemble takes photometry: pass the catalogue table (parallax, magnitudes)")
        return make_inputs(flux, error, absolute_magnitudes(table), self.photometry_scaler)

    def calibrate(self, x_val, y_val):
        """Per-label factor k so that (y − mean) / (k · spread) has robust σ = 1 on validation.

        ``y_val`` (n, n_labels) in physical units, NaN/masked = missing. Returns and stores
        ``calibration`` (label → k; NaN when a label has no usable validation entry); also stores
        the median member spread per label on validation in ``validation_spread``.
        """
        if len(self) < 2:
            raise ValueError(f"calibrating needs at least 2 members, this ensemble has {len(self)}: the "
                             "uncertainty is the spread of the members' predictions, and one member has none "
                             "(train with n_models >= 2, and a drop_worst that keeps 2)")
        y_val = as_float_array(y_val)
        mean, spread = self.predict(x_val)
        with np.errstate(divide="ignore", invalid="ignore"):
            z = (y_val - mean) / spread
        self.calibration = {name: bias_and_scatter(z[:, j])[1] for j, name in enumerate(self.labels)}
        with warnings.catch_warnings():  # an all-NaN column gives NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            self.validation_spread = dict(zip(self.labels, np.nanmedian(spread, axis=0)))
        return dict(self.calibration)

    def fit_novelty(self, x_train, x_val, false_alarm_rate=FALSE_ALARM_RATE):
        """Fit the members' feature clouds on the training inputs ``x_train`` and set the
        out-of-domain threshold on the validation inputs ``x_val`` for ``false_alarm_rate``
        (:class:`novelty.Novelty`); stores and returns ``novelty``."""
        train = self.member_predictions(x_train, features=True)[1]
        self.novelty = Novelty.fit(train, self.member_predictions(x_val, features=True)[1], false_alarm_rate)
        return self.novelty

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
            "photometry_scaler": None if self.photometry_scaler is None else self.photometry_scaler.to_dict(),
            "validation_spread": self.validation_spread,
            "novelty": None if self.novelty is None else self.novelty.to_dict(),
            "members": [f"member_{i:02d}.keras" for i in range(len(self))],
        }
        return plain(meta | core)

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
        import keras  # imported when first needed: the rest of the module works without it

        folder = Path(folder)
        path = folder / ENSEMBLE_FILE
        if not path.exists():
            raise FileNotFoundError(f"{where(path)} not found: not a saved ensemble")
        d = read_description(path)
        if labels is not None and list(labels) != d["labels"]:
            raise ValueError(f"ensemble {folder} predicts labels {d['labels']}, expected {list(labels)}")
        saved_grid = _grid_tuple(d["grid"])
        if grid is not None:
            check_grid(saved_grid, grid, f"ensemble {folder}", "the expected grid")
        members = []
        for name in d["members"]:
            member = folder / name
            if not member.is_file():
                raise FileNotFoundError(f"ensemble member {member} is missing")
            try:
                members.append(keras.saving.load_model(member, compile=False))
            except Exception as err:  # a damaged zip, a truncated file, another Keras format …
                raise ValueError(f"{member}: not a readable Keras model ({type(err).__name__}: {err}); "
                                 "the ensemble folder is damaged: train and save it again (notebook 04)") from err
            if member_outputs(members[-1]) != len(d["labels"]):
                raise ValueError(f"{member} predicts {member_outputs(members[-1])} labels, {path} lists "
                                 f"{len(d['labels'])} ({d['labels']})")
        metadata = {k: v for k, v in d.items() if k not in DESCRIPTION_ENTRIES}
        metadata["saved_with_version"] = d["package_version"]

        def numbers(entry):  # JSON null (NaN when saved) back to NaN
            return None if entry is None else {k: (np.nan if v is None else v) for k, v in entry.items()}

        phot = d.get("photometry_scaler")
        novelty = d.get("novelty")
        ensemble = cls(members, LabelScaler.from_dict(d["scaler"]), d["labels"], saved_grid, metadata,
                       numbers(d["calibration"]), None if phot is None else LabelScaler.from_dict(phot),
                       numbers(d.get("validation_spread")),
                       None if novelty is None else Novelty.from_dict(novelty, path, len(members)))
        ensemble.source = path
        return ensemble

