"""Benchmark: training throughput of the book's two networks, against the machine's arithmetic limit.

    python benchmarks/training.py [--n-train 20000] [--n-val 5000] [--epochs 4] [--processes 2]

Trains 2-member ensembles of the slides network (723 px) and the paper network with photometry
(912 px) on synthetic spectra of the book's sizes, once with today's serial path (members one
after the other, ``processes=1``) and once with ``processes`` members at a time in processes of
their own, and prints spectra × epochs per second (the median epoch after the first, validation
included; both members' rates added when they run at once) for each, their ratio, the wall time
of the whole ensemble (process start-up and tracing included), and the fraction of the arithmetic limit: float32 FLOPs of one
training step per spectrum (forward + backward ≈ 3 × forward) against the machine's measured
float32 matrix-product speed on all cores. A second table says where one training step's time
goes, layer by layer (forward and backward of each layer alone, batch 64).
The last line is ``train_speedup_min=<x> slides_per_s=<n> paper_per_s=<n>``.
"""

import argparse
import os
import time
from functools import partial

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils import train  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS, LABELS  # noqa: E402

NETWORKS = {"slides": dict(architecture="slides", n_pixels=723, labels=CORE_LABELS, photometry=False),
            "paper_photometry": dict(architecture="paper", n_pixels=912, labels=LABELS, photometry=True)}


def synthetic(spec, n, seed):
    """Inputs (continuum-like flux, photometry when the network takes it) and scaled labels in [0, 1]."""
    rng = np.random.default_rng(seed)
    flux = (1 - 0.2 * rng.random((n, spec["n_pixels"], 1))).astype(np.float32)
    x = {"spectrum": flux, "photometry": rng.random((n, 9)).astype(np.float32)} if spec["photometry"] else flux
    return x, rng.random((n, len(spec["labels"]))).astype(np.float32)


def flops_per_spectrum(model):
    """Float32 operations of one training step per spectrum: 3 × the forward pass's 2·MACs."""
    macs = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv1D):
            kernel = layer.kernel.shape  # (k, c_in, c_out)
            macs += layer.output.shape[1] * kernel[0] * kernel[1] * kernel[2]
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.kernel.shape[0] * layer.kernel.shape[1]
    return 3 * 2 * macs


def matmul_gflops(n=2048, repeats=5):
    """The machine's float32 matrix-product speed (GFLOP/s, all cores, numpy's BLAS)."""
    a = np.random.default_rng(0).random((n, n), np.float32)
    a @ a
    start = time.perf_counter()
    for _ in range(repeats):
        a @ a
    return 2 * n ** 3 * repeats / (time.perf_counter() - start) / 1e9


def throughput(spec, n_train, n_val, epochs, processes):
    """Spectra × epochs per second of one 2-member ensemble (median epoch after the first)."""
    x, y = synthetic(spec, n_train, 1)
    xv, yv = synthetic(spec, n_val, 2)
    build = partial(cnn.build, spec["architecture"], spec["n_pixels"], spec["labels"], photometry=spec["photometry"])
    start = time.perf_counter()
    ens = train.train_ensemble(build, x, y, xv, yv, labels=spec["labels"], n_models=2, seeds=[1, 2],
                               progress=False, processes=processes, epochs=epochs, patience=epochs,
                               batch_size=64)
    wall = time.perf_counter() - start
    per_member = n_train / np.asarray(ens.metadata["seconds_per_epoch"])  # each member's own rate
    members_at_once = min(processes, 2)
    return float(per_member.mean() * members_at_once), wall


def layer_times(spec, batch=64, repeats=30):
    """Seconds of forward + backward of each weighted layer alone, for one batch."""
    model = cnn.build(spec["architecture"], spec["n_pixels"], spec["labels"], photometry=spec["photometry"])
    rows = []
    inputs = {id(t) for t in model.inputs}
    for layer in model.layers:
        if not layer.weights:
            continue
        x = tf.random.uniform((batch,) + tuple(layer.input.shape[1:]))
        needs_input_gradient = id(layer.input) not in inputs  # as in training: none for the data

        @tf.function
        def step(x, layer=layer, watch=needs_input_gradient):
            with tf.GradientTape() as tape:
                if watch:
                    tape.watch(x)
                loss = tf.reduce_sum(tf.square(layer(x)))
            return tape.gradient(loss, ([x] if watch else []) + list(layer.trainable_weights))

        step(x)
        start = time.perf_counter()
        for _ in range(repeats):
            step(x)
        rows.append((layer.name, (time.perf_counter() - start) / repeats))
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n-train", type=int, default=20000)
    parser.add_argument("--n-val", type=int, default=5000)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    peak = matmul_gflops()
    print(f"machine: {os.cpu_count()} cores, float32 matrix product {peak:.0f} GFLOP/s (numpy BLAS)")
    print(f"{'network':<18} {'path':<14} {'spectra·epochs/s':>16} {'ratio':>6} {'limit/s':>9} {'of limit':>8} "
          f"{'wall s':>7}")
    rates, speedups = {}, []
    for name, spec in NETWORKS.items():
        model = cnn.build(spec["architecture"], spec["n_pixels"], spec["labels"], photometry=spec["photometry"])
        limit = peak * 1e9 / flops_per_spectrum(model)
        base, base_wall = throughput(spec, args.n_train, args.n_val, args.epochs, processes=1)
        new, new_wall = throughput(spec, args.n_train, args.n_val, args.epochs, processes=args.processes)
        for path, rate, wall in (("serial", base, base_wall), (f"{args.processes} processes", new, new_wall)):
            print(f"{name:<18} {path:<14} {rate:>16.0f} {rate / base:>6.2f} {limit:>9.0f} {rate / limit:>8.1%} "
                  f"{wall:>7.1f}")
        rates[name] = new
        speedups.append(new / base)

    print("\nwhere one training step goes (forward + backward of each layer alone, batch 64):")
    for name, spec in NETWORKS.items():
        rows = layer_times(spec)
        total = sum(t for _, t in rows)
        print(f"  {name}: " + ", ".join(f"{layer} {t * 1e3:.1f} ms ({t / total:.0%})" for layer, t in rows))
    print(f"train_speedup_min={min(speedups):.2f} slides_per_s={rates['slides']:.0f} "
          f"paper_per_s={rates['paper_photometry']:.0f}")


if __name__ == "__main__":
    main()
