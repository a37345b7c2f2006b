"""Make the emulator: MOOG syntheses over the label space, then the network that reproduces them.

``python -m ravecnn_utils.simulation.emulator_build --moog PATH/MOOGSILENT --kurucz FOLDER``
(``make emulator MOOG=... KURUCZ=...``) writes ``data/emulator/emulator.npz`` (the weights
``emulator.Emulator`` reads, with their provenance) and ``data/emulator/syntheses_test.npz`` (a
few held-out MOOG spectra the tests compare the emulator with). The syntheses are cached in
``data/emulator/grid/`` (not committed): a rerun resumes them. Training uses Keras; reading the
emulator needs only numpy.
"""

import argparse
import datetime
import subprocess
from pathlib import Path

import numpy as np

from ..files import atomic_path
from ..labels import LABELS
from ..paths import DATA_DIR, EMULATOR_FILE, EMULATOR_TEST_FILE
from .forward import model_wavelengths
from .synthgrid import compute_grid, design_labels, domain_bounds

HIDDEN = 256
"""Neurons of each of the two hidden layers."""

COMPONENTS = 100
"""Principal components of the syntheses the network predicts (the first 100 leave an RMS of
about 3 × 10⁻⁵ in flux: far below the emulation error)."""


def split(n, seed, validation_fraction=0.1):
    """Indices (training, validation) of ``n`` syntheses, a seeded random split."""
    order = np.random.default_rng(seed).permutation(n)
    n_val = max(1, int(round(n * validation_fraction)))
    return np.sort(order[n_val:]), np.sort(order[:n_val])


def principal_components(flux, n_components=COMPONENTS):
    """Mean spectrum and the leading ``n_components`` principal components (rows, orthonormal)."""
    mean = flux.mean(axis=0)
    _, _, vt = np.linalg.svd(flux - mean, full_matrices=False)
    return mean, vt[:n_components]


def fit_network(labels, flux, train, val, seed=2020, epochs=200, steps_per_epoch=500, batch_size=128, verbose=0):
    """Train the emulator network on the syntheses ``train`` (indices), stopping on ``val``; returns
    its weights as the dict ``emulator.Emulator`` reads (without the grid entries) and the Keras
    history. The network predicts the syntheses' principal-component coefficients: its loss is
    the mean squared flux error (the components are orthonormal), over ``COMPONENTS``. An
    "epoch" is ``steps_per_epoch`` batches drawn from the shuffled, repeated training set."""
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    lo, hi = domain_bounds()
    x = (2 * (labels - lo) / (hi - lo) - 1).astype(np.float32)
    mean, basis = principal_components(flux[train].astype(np.float64))
    y = ((flux - mean) @ basis.T).astype(np.float32)
    batches = (tf.data.Dataset.from_tensor_slices((x[train], y[train]))
               .shuffle(len(train), seed=seed).repeat().batch(batch_size))
    inputs = keras.Input((len(LABELS),))
    h = keras.layers.Dense(HIDDEN, activation="silu")(inputs)
    h = keras.layers.Dense(HIDDEN, activation="silu")(h)
    model = keras.Model(inputs, keras.layers.Dense(len(basis))(h))
    model.compile(optimizer=keras.optimizers.Adam(1e-3), loss="mse")
    callbacks = [keras.callbacks.ReduceLROnPlateau(factor=0.5, patience=6, min_lr=1e-6),
                 keras.callbacks.EarlyStopping(patience=20, restore_best_weights=True)]
    history = model.fit(batches, steps_per_epoch=steps_per_epoch, validation_data=(x[val], y[val]),
                        epochs=epochs, callbacks=callbacks, verbose=verbose, shuffle=False)
    (w1, b1), (w2, b2), (w3, b3) = (layer.get_weights() for layer in model.layers[1:])
    weights = dict(w1=w1, b1=b1, w2=w2, b2=b2, w3=w3, b3=b3, basis=basis, mean_flux=mean, label_lo=lo, label_hi=hi)
    return {k: np.asarray(v, np.float32) for k, v in weights.items()}, history


def emulation_errors(emulator, labels, flux):
    """|emulator − MOOG| per pixel over held-out syntheses: (median, 99th percentile) of all pixels."""
    diff = np.abs(emulator.flux(labels) - flux)
    return float(np.median(diff)), float(np.percentile(diff, 99))


def _commit():
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              cwd=Path(__file__).parent).stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def build(moog, kurucz, n=6000, seed=2020, processes=2, grid_dir=DATA_DIR / "emulator" / "grid",
          out=EMULATOR_FILE, test_out=EMULATOR_TEST_FILE, n_test=12, epochs=200, verbose=2):
    """Syntheses (cached), network, and the two files; returns the emulation errors on the
    validation syntheses (median, 99th percentile of |Δflux|)."""
    from .emulator import Emulator
    from .kurucz import KuruczGrid

    grid = KuruczGrid(kurucz)
    labels, flux = compute_grid(design_labels(n, grid, seed), grid_dir, moog, kurucz, processes=processes)
    train, val = split(len(labels), seed)
    weights, history = fit_network(labels, flux, train, val, seed, epochs, verbose=verbose)
    about = {
        "about_moog": f"MOOG NOV2019 (Sneden 1973), MOOGSILENT at {moog}",
        "about_atmospheres": f"Castelli & Kurucz (2003) ATLAS9 a[mp]XXk2 grids from {kurucz}, interpolated by ravecnn_utils.simulation.kurucz",
        "about_linelist": "data/linelist/linelist_cat.csv (VALD3), Ca II triplet as strong lines, Barklem damping (also for the triplet: trudamp 1)",
        "about_grid": f"{len(labels)} syntheses (synthgrid.design_labels seed {seed}: half survey-like, half flat in BOX), "
                      f"{len(train)} training, {len(val)} validation",
        "about_training": f"{len(history.history['loss'])} epochs, best validation MSE (per component) "
                          f"{min(history.history['val_loss']):.3g}",
        "about_made": f"{datetime.date.today().isoformat()} by ravecnn_utils.simulation.emulator_build, commit {_commit()}",
    }
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, **weights, wavelengths=model_wavelengths(), resolution=7500.0, **about)
    errors = emulation_errors(Emulator(out), labels[val], flux[val])
    test = val[np.linspace(0, len(val) - 1, n_test).astype(int)]
    with atomic_path(test_out) as tmp:
        with open(tmp, "wb") as handle:
            np.savez_compressed(handle, labels=labels[test], flux=flux[test].astype(np.float32),
                                about=f"MOOG syntheses held out of the emulator's training ({about['about_made']})")
    return errors


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--moog", required=True, help="the MOOGSILENT executable")
    parser.add_argument("--kurucz", required=True, help="folder of the ATLAS9 grid files a[mp]XXk2.dat")
    parser.add_argument("--n", type=int, default=6000, help="number of syntheses (default 6000)")
    parser.add_argument("--seed", type=int, default=2020)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=200, help="at most this many epochs of 500 batches")
    args = parser.parse_args(argv)
    median, p99 = build(args.moog, args.kurucz, args.n, args.seed, args.processes, epochs=args.epochs)
    print(f"emulator written to {EMULATOR_FILE}; |emulator − MOOG| on the validation syntheses: "
          f"median {median:.4f}, 99th percentile {p99:.4f}")


if __name__ == "__main__":
    main()
