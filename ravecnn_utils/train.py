"""Training the CNN: seeded fits with early stopping, ensembles, and the project's networks end to end.

The recipe follows Guiglion et al. (2020): labels min–max scaled on the training rows, Adam,
a masked mean squared error (missing APOGEE labels are NaN and do not count), early stopping
on the validation set, and an ensemble of networks trained from different seeds whose mean is
the prediction and whose spread (calibrated on the validation set) is the uncertainty.

The test set is never passed to anything here: it is for the final numbers only.
"""

import math
import multiprocessing
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from functools import partial
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf
from tqdm import tqdm

from .augment import NoisyInputs, decorrelating_weights, noise_sigma
from .ensemble import Ensemble
from .inputs import make_inputs
from .labels import require_known
from .model import WeightedMaskedMSE, build, masked_mse, network_spec
from .novelty import FALSE_ALARM_RATE
from .photometry import FEATURES, absolute_magnitudes
from .scaling import LabelScaler
from .trainingset import label_array

LEARNING_RATE = 1e-3
"""Adam's learning rate unless told otherwise (Keras' default)."""

PAPER_SCHEDULE = {"batch_size": 16, "patience": 40, "epochs": 1000}
"""Guiglion et al. (2020)'s schedule, for ``train_networks(**PAPER_SCHEDULE)``: batches of 16,
early stopping after 40 epochs without improvement, at most 1,000 epochs (the book's defaults are
64, 10 and 100: about 10× less training time)."""

DECORRELATED = ("alpha_m", "si_fe", "al_fe", "mg_fe", "ni_fe")
"""Labels whose correlation with [M/H] ``decorrelate=True`` weakens (``augment.decorrelating_weights``)."""


def set_seed(seed):
    """Seed Python, NumPy and TensorFlow, and make TensorFlow ops deterministic (process-wide)."""
    keras.utils.set_random_seed(int(seed))
    tf.config.experimental.enable_op_determinism()


def _epoch_timer():
    """Keras callback recording the wall-clock seconds of each epoch in ``.seconds``."""
    class EpochTimer(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.seconds = []

        def on_epoch_begin(self, epoch, logs=None):
            self._start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds.append(time.perf_counter() - self._start)

    return EpochTimer()


def _new_model(build, seed, learning_rate, label_weights=None, weighted=False):
    """``build()`` after seeding with ``seed``, compiled with Adam and the masked MSE; with
    ``label_weights`` or ``weighted`` (sample weights to come) ``model.WeightedMaskedMSE``."""
    set_seed(seed)
    model = build()
    loss = masked_mse if label_weights is None and not weighted else WeightedMaskedMSE(label_weights)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate), loss=loss)
    return model


def fit_model(build, x_train, y_train, x_val, y_val, epochs=100, batch_size=64,
              learning_rate=LEARNING_RATE, patience=10, seed=0, verbose=0, label_weights=None,
              sample_weight=None, noise_sigma=None, noise_scale=1.0):
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
    label_weights : sequence of float, one per label, or None
        Weight of each label in the loss (``model.WeightedMaskedMSE``; also in val_loss).
    sample_weight : array (n_train,) or None
        Weight of each training star in the loss (e.g. ``augment.decorrelating_weights``); the
        validation loss, which early stopping watches, stays unweighted.
    noise_sigma : array (n_train, n_pixels) or None
        Noise σ per pixel (``augment.noise_sigma``): each epoch the training spectra get fresh
        Gaussian noise of ``noise_scale`` × σ (``augment.NoisyInputs``); the validation set does not.

    Returns
    -------
    model, history (dict of lists, e.g. loss / val_loss per epoch),
    info (best_epoch (1-based), best_val_loss, epochs_run, seconds_per_epoch (median s)).
    """
    model = _new_model(build, seed, learning_rate, label_weights, sample_weight is not None)
    stop = keras.callbacks.EarlyStopping(monitor="val_loss", patience=patience,
                                         restore_best_weights=True)
    timer = _epoch_timer()
    y_train = np.asarray(y_train, np.float32)
    if noise_sigma is None:
        data = {"x": x_train, "y": y_train, "batch_size": batch_size, "shuffle": True, "sample_weight": sample_weight}
    else:  # a PyDataset sets its own batches, order and weights
        data = {"x": NoisyInputs(x_train, y_train, noise_sigma, batch_size, seed, noise_scale, sample_weight)}
    fit = model.fit(**data, validation_data=(x_val, np.asarray(y_val, np.float32)), epochs=epochs,
                    callbacks=[stop, timer], verbose=verbose)
    history = {key: [float(v) for v in values] for key, values in fit.history.items()}
    val_loss = np.asarray(history["val_loss"])
    best = int(np.nanargmin(val_loss)) if np.isfinite(val_loss).any() else 0  # as EarlyStopping
    info = {"best_epoch": best + 1, "best_val_loss": float(val_loss[best]),
            "epochs_run": len(val_loss), "seconds_per_epoch": float(np.median(timer.seconds))}
    return model, history, info



def n_dropped(n_models, drop_worst):
    """Members that ``drop_worst`` (a fraction, rounded down) drops from an ensemble of ``n_models``."""
    return int(math.floor(drop_worst * n_models + 1e-9))


def _save_arrays(folder, **arrays):
    """Write each array (or dict of arrays, e.g. spectrum + photometry inputs) as .npy files in ``folder``."""
    for name, value in arrays.items():
        for key, array in (value.items() if isinstance(value, dict) else [(None, value)]):
            np.save(Path(folder) / (f"{name}.{key}.npy" if key else f"{name}.npy"), np.asarray(array))


def _load_arrays(folder, name):
    """The array (or dict of arrays) ``_save_arrays`` wrote as ``name``, memory-mapped."""
    files = sorted(Path(folder).glob(f"{name}.*npy"))
    if len(files) == 1 and files[0].name == f"{name}.npy":
        return np.load(files[0], mmap_mode="r")
    return {f.name[len(name) + 1:-4]: np.load(f, mmap_mode="r") for f in files}


def _init_trainer(threads):
    """Worker start: TensorFlow gets ``threads`` threads, before its first operation."""
    tf.config.threading.set_intra_op_parallelism_threads(threads)
    tf.config.threading.set_inter_op_parallelism_threads(threads)


def _fit_member(task):
    """Worker of ``_fit_members``: fit one member, return its weights and history."""
    build, folder, seed, fit_kwargs, extras = task
    x_train, y_train, x_val, y_val = (_load_arrays(folder, name) for name in ("x_train", "y_train", "x_val", "y_val"))
    extras = {name: _load_arrays(folder, name) for name in extras}
    model, history, info = fit_model(build, x_train, y_train, x_val, y_val, seed=seed, **fit_kwargs, **extras)
    return model.get_weights(), history, info


def _fit_members(jobs, processes, progress):
    """Fit the members of every job (a dict with ``build``, ``arrays`` = (x_train, y_train, x_val,
    y_val), ``seeds``, ``fit_kwargs`` and optionally ``extras``, per-row arrays for ``fit_model``
    such as ``sample_weight``): for each job, its (model, history, info) in seed order.

    With ``processes`` > 1 all the jobs' members share one pool of ``processes`` processes, spawned
    for this call, ``cpu_count // processes`` threads each; a process takes the next member when it
    is done (two ensembles of 5 members on 2 processes: 5 rounds). Each member is seeded afresh.
    """
    tasks = [(k, seed) for k, job in enumerate(jobs) for seed in job["seeds"]]  # job by job, seed by seed
    bar = tqdm(total=len(tasks), desc="ensemble members", disable=not progress)
    if processes <= 1:
        fits = []
        for k, seed in tasks:
            fits.append(fit_model(jobs[k]["build"], *jobs[k]["arrays"], seed=seed, **jobs[k]["fit_kwargs"],
                                  **jobs[k].get("extras", {})))
            bar.update()
        bar.close()
        return _per_job(jobs, fits)
    workers = min(processes, len(tasks))
    threads = max(1, (os.cpu_count() or 1) // workers)
    results = []
    with tempfile.TemporaryDirectory(prefix="ravecnn-train-") as folder:
        folders = [Path(folder) / f"job{k}" for k in range(len(jobs))]
        for job, sub in zip(jobs, folders):
            sub.mkdir()
            _save_arrays(sub, **dict(zip(("x_train", "y_train", "x_val", "y_val"), job["arrays"])), **job.get("extras", {}))
        # spawn, as TensorFlow does not survive fork; a worker that dies breaks the pool loudly
        pool = ProcessPoolExecutor(workers, multiprocessing.get_context("spawn"), _init_trainer, (threads,))
        try:  # map gives the results in the order of the tasks
            for result in pool.map(_fit_member, [(jobs[k]["build"], str(folders[k]), seed, jobs[k]["fit_kwargs"],
                                                  list(jobs[k].get("extras", {}))) for k, seed in tasks]):
                results.append(result)
                bar.update()
        except BrokenProcessPool as err:
            raise RuntimeError(
                "the processes that train the members died before they finished; if this runs from a "
                "script, its top-level code must sit under `if __name__ == \"__main__\":` (each worker "
                "imports the script); or train with processes=1") from err
        finally:  # an interrupt stops the members at once, not when they finish
            for process in getattr(pool, "_processes", {}).values():  # (no public API before 3.14)
                process.terminate()
            pool.shutdown(wait=True, cancel_futures=True)
    bar.close()
    fits = []
    for (k, seed), (weights, history, info) in zip(tasks, results):
        kw = jobs[k]["fit_kwargs"]
        model = _new_model(jobs[k]["build"], seed, kw.get("learning_rate", LEARNING_RATE), kw.get("label_weights"))
        model.set_weights(weights)
        fits.append((model, history, info))
    return _per_job(jobs, fits)


def _per_job(jobs, fits):
    """``fits`` (all the jobs' members, job by job) split into one list per job."""
    out, start = [], 0
    for job in jobs:
        out.append(fits[start:start + len(job["seeds"])])
        start += len(job["seeds"])
    return out


def _ensemble_job(build, x_train, y_train, x_val, y_val, labels, n_models, seeds, drop_worst, fit_kwargs):
    """Check ``train_ensemble``'s arguments and fit its label scaler: the job ``_fit_members`` trains
    (``arrays`` hold the scaled labels) and ``_finish_ensemble`` turns into an Ensemble."""
    labels = tuple(labels)
    require_known(labels, "train_ensemble(labels=...)")
    seeds = list(range(n_models)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != n_models:
        raise ValueError(f"{len(seeds)} seeds for {n_models} models")
    n_drop = n_dropped(n_models, drop_worst)
    if not 0 <= n_drop < n_models:
        raise ValueError(f"drop_worst={drop_worst} would drop {n_drop} of {n_models} members")
    scaler = LabelScaler().fit(y_train)
    if len(labels) != scaler.minimum.size:
        raise ValueError(f"{len(labels)} label names for {scaler.minimum.size} label columns")
    arrays = (x_train, scaler.transform(y_train), x_val, scaler.transform(y_val))
    fit_kwargs = dict(fit_kwargs)  # per-row arrays travel beside the settings (which the metadata keeps)
    extras = {k: fit_kwargs.pop(k) for k in ("sample_weight", "noise_sigma") if fit_kwargs.get(k) is not None}
    return {"build": build, "arrays": arrays, "seeds": seeds, "fit_kwargs": fit_kwargs, "labels": labels,
            "scaler": scaler, "n_drop": n_drop, "extras": extras}


def _finish_ensemble(job, fits, grid, metadata):
    """The Ensemble of a job's members (``fits`` in seed order), the worst ``n_drop`` dropped."""
    runs = [{"model": model, "seed": seed, "history": history, **info}
            for seed, (model, history, info) in zip(job["seeds"], fits)]
    # rank by best val_loss (NaN = worst); stable, so ties keep the seed order
    score = [r["best_val_loss"] if math.isfinite(r["best_val_loss"]) else math.inf for r in runs]
    dropped = set(sorted(range(len(runs)), key=lambda i: score[i], reverse=True)[:job["n_drop"]])
    kept = [r for i, r in enumerate(runs) if i not in dropped]
    meta = {
        "architecture": kept[0]["model"].name,
        "seeds": [r["seed"] for r in kept],
        "histories": [{"loss": r["history"]["loss"], "val_loss": r["history"]["val_loss"]} for r in kept],
        "best_epochs": [r["best_epoch"] for r in kept],
        "best_val_losses": [r["best_val_loss"] for r in kept],
        "seconds_per_epoch": [r["seconds_per_epoch"] for r in kept],
        "dropped": [{"seed": runs[i]["seed"], "best_val_loss": runs[i]["best_val_loss"]} for i in sorted(dropped)],
        "fit": {k: v for k, v in job["fit_kwargs"].items() if k != "verbose"},
        "n_train": int(len(job["arrays"][1])), "n_validation": int(len(job["arrays"][3])),
    } | dict(metadata or {})
    return Ensemble([r["model"] for r in kept], job["scaler"], job["labels"], grid, meta)


def train_ensemble(build, x_train, y_train, x_val, y_val, labels, n_models=5, seeds=None, drop_worst=0.0,
                   grid=None, metadata=None, progress=True, processes=1, **fit_kwargs):
    """Train ``n_models`` networks from different seeds; keep all but the worst ``drop_worst``.

    Parameters
    ----------
    y_train, y_val : array (n, n_labels)
        Physical labels, NaN/masked = missing. The scaler is fitted on ``y_train`` only.
    seeds : sequence of int, default 0 … n_models − 1
    drop_worst : float
        Fraction of members with the highest best val_loss to discard (rounded down; e.g. 0.2).
    labels : sequence of str, names of ``labels.LABELS``; grid : (start Å, step Å, n_pixels) or wave array
    metadata : dict, e.g. training_set_hash, photometry (columns); stored with the ensemble.
    processes : int
        Members trained at once, each in a process of its own (``build`` must then be picklable,
        e.g. a ``functools.partial`` of ``model.build``). The networks are small, so one member
        barely uses a second core: two processes on two cores train about twice as fast
        (``benchmarks/training.py``). A member then runs on fewer threads, which splits its float
        sums differently: its weights equal the serial ones to round-off at first, and over many
        epochs the members drift apart as any two runs on different machines would (same seeds,
        same recipe; with as many threads per process as the serial path they are bit-identical,
        but two processes then share the cores and gain only about 1.5×). A script that uses this
        must keep its top-level code under ``if __name__ == "__main__":``.
    **fit_kwargs : epochs, batch_size, learning_rate, patience, verbose, label_weights,
        sample_weight, noise_sigma, noise_scale (see ``fit_model``).
    """
    job = _ensemble_job(build, x_train, y_train, x_val, y_val, labels, n_models, seeds, drop_worst, fit_kwargs)
    [fits] = _fit_members([job], processes, progress)
    return _finish_ensemble(job, fits, grid, metadata)


def train_network(name, flux, error, table, grid, n_models=5, seed=0, slides_labels=None,
                  paper_labels=None, progress=True, **kwargs):
    """Train, calibrate and return the ensemble of the network ``name`` (``model.NETWORKS``).

    ``flux``, ``error`` (n, n_pixels) on the wavelength ``grid`` (Å) and ``table`` (n rows with
    ``split``, the labels and, for a photometry network, the catalogue columns of
    ``photometry.COLUMNS``) are a training set (``trainingset.read_training_set``); only its
    ``train`` rows are fitted and its ``validation`` rows steer early stopping and the
    calibration; the novelty statistics (``Ensemble.fit_novelty``: feature clouds of the train
    rows, out-of-domain threshold on the validation rows for ``false_alarm_rate``, a keyword
    argument, default ``novelty.FALSE_ALARM_RATE``) are fitted last. The photometry scaler is fitted on the training rows and kept by the ensemble.
    Members use the seeds ``seed``, ``seed + 1`` …; ``kwargs`` go to ``train_ensemble``
    (``drop_worst``, ``epochs``, ``batch_size``, ``learning_rate``, ``patience``, ``processes``).
    """
    return train_networks([name], flux, error, table, grid, n_models, seed, slides_labels, paper_labels,
                          progress, **kwargs)[name]


def _network_job(name, flux, error, table, grid, n_models, seed, slides_labels, paper_labels, kwargs):
    """The ensemble job of the network ``name`` (see ``_ensemble_job``), with its validation inputs
    and labels (for the calibration), photometry scaler and metadata."""
    spec = network_spec(name, slides_labels, paper_labels)
    kwargs = dict(kwargs)
    drop_worst = kwargs.pop("drop_worst", 0.0)
    decorrelate, noise_per_epoch = kwargs.pop("decorrelate", None), kwargs.pop("noise_per_epoch", False)
    if kwargs.get("label_weights") is not None:  # {label: weight}, unnamed labels 1
        unknown = sorted(set(kwargs["label_weights"]) - set(spec["labels"]))
        if unknown:
            raise ValueError(f"label_weights name(s) {unknown} not among the labels of {name}: {spec['labels']}")
        kwargs["label_weights"] = [float(kwargs["label_weights"].get(n, 1.0)) for n in spec["labels"]]
    kept = n_models - n_dropped(n_models, drop_worst)
    if kept < 2:
        raise ValueError(f"n_models={n_models} with drop_worst={drop_worst} keeps {kept} member(s); "
                         "an ensemble needs at least 2: its uncertainties are the spread of its members")
    parts = {part: np.asarray(table["split"]) == part for part in ("train", "validation")}
    phot = phot_scaler = None
    meta = {"training_set_hash": table.meta.get("hash"), "network": name}
    if decorrelate:
        decorrelate = DECORRELATED if decorrelate is True else tuple(decorrelate)
        kwargs["sample_weight"] = decorrelating_weights(label_array(table, ["m_h"], parts["train"])[:, 0],
                                                        label_array(table, decorrelate, parts["train"]))
        meta["decorrelated"] = list(decorrelate)  # and the weighted sample's effective size / its size:
        meta["effective_train_fraction"] = float(1 / np.mean(kwargs["sample_weight"] ** 2))
    if noise_per_epoch:
        kwargs["noise_sigma"] = noise_sigma(error[parts["train"]])
        meta["noise_per_epoch"] = True
    if spec["photometry"]:
        phot = absolute_magnitudes(table)
        phot_scaler = LabelScaler().fit(phot[parts["train"]])
        meta["photometry"] = list(FEATURES)

    def inputs(rows):
        return make_inputs(flux[rows], error[rows], None if phot is None else phot[rows], phot_scaler)

    def labels(rows):
        return label_array(table, spec["labels"], rows)

    x_val, y_val = inputs(parts["validation"]), labels(parts["validation"])
    job = _ensemble_job(
        partial(build, spec["architecture"], len(grid), spec["labels"], photometry=spec["photometry"]),
        inputs(parts["train"]), labels(parts["train"]), x_val, y_val, spec["labels"], n_models,
        [seed + k for k in range(n_models)], drop_worst, kwargs)
    return job | {"x_val": x_val, "y_val": y_val, "photometry_scaler": phot_scaler, "metadata": meta}


def train_networks(names, flux, error, table, grid, n_models=5, seed=0, slides_labels=None,
                   paper_labels=None, progress=True, processes=1, false_alarm_rate=FALSE_ALARM_RATE, **kwargs):
    """Train and calibrate the ensembles of the networks ``names``: {name: Ensemble}, in that order.

    As ``train_network`` for each name (same arguments, seeds and results), but with ``processes``
    > 1 the members of all the networks share one pool of workers: two networks of 5 members on
    2 processes train in 5 rounds, not 3 + 3. Every network's arguments are checked before any
    training. ``kwargs``: ``drop_worst``, ``epochs``, ``batch_size``, ``learning_rate``, ``patience``,
    ``verbose`` (``PAPER_SCHEDULE``: the paper's), and the variants of issue 16, all off by default:
    ``decorrelate`` (True: the labels of ``DECORRELATED``, or a list of names: training stars
    weighted by ``augment.decorrelating_weights`` within [M/H] bins), ``noise_per_epoch`` (True:
    fresh noise at each spectrum's own error every epoch, ``augment.NoisyInputs``; ``noise_scale``),
    ``label_weights`` ({label: weight}, others 1: ``model.WeightedMaskedMSE``).
    """
    names = list(names)
    if len(set(names)) != len(names):
        raise ValueError(f"train_networks(names={names}): a network is named twice")
    jobs = [_network_job(name, flux, error, table, grid, n_models, seed, slides_labels, paper_labels, kwargs)
            for name in names]
    ensembles = {}
    for name, job, fits in zip(names, jobs, _fit_members(jobs, processes, progress)):
        ensemble = _finish_ensemble(job, fits, grid, job["metadata"])
        ensemble.photometry_scaler = job["photometry_scaler"]
        ensemble.calibrate(job["x_val"], job["y_val"])
        ensemble.fit_novelty(job["arrays"][0], job["x_val"], false_alarm_rate)
        ensembles[name] = ensemble
    return ensembles
