"""Benchmark: how fast is the survey parametrised, and in how much memory?

    python benchmarks/inference.py [--sizes 50000 518387] [--members 10] [--dask-workers 2]
                                   [--workdir DIR] [--keep]

1. One slides network (speed does not depend on the weights) on 50,000 spectra in memory, at
   our grid's 987 px and at the talk's 723 px: Keras' ``model.predict`` against our two engines
   (``inference.CompiledModel``, TensorFlow; ``fastcnn.FastCNN``, numba), same run, and each
   engine's largest difference from ``model.predict``; then where TensorFlow's time goes.
2. For each size, a synthetic spectra cube in the real file format (``cube.write_spectra_cube``)
   goes through ``predict.predict_cube`` with that one network, in a fresh process: wall time
   of the call (the kernel loaded from numba's cache or compiled, reading, flags and writing the
   catalogue included; loading the ensemble timed apart, as ``benchmarks/scale.py`` does) and the
   process's peak memory.
3. The largest cube (518,387 spectra = RAVE DR6) through an ensemble of ``--members`` networks
   (loading the ensemble included).
4. The same run with ``predict.predict_cube_dask`` on a ``distributed.LocalCluster`` of
   ``--dask-workers`` worker processes (one task at a time each, each bound to its share of the
   cores as a batch system binds a job to the cores it booked; its kernel uses those cores), in a
   fresh process, cluster start included: its time against step 3's, the
   overhead in %, and whether the two catalogues are identical.

The last line is ``spectra_per_s_ours=<n> spectra_per_s_keras=<n> disk_spectra_per_s=<n>
peak_rss_mb=<n> ensemble_<size>_s=<s> dask_overhead_pct=<x>`` (one 987-px network, in-memory
rates of step 1 with the default engine; step 2's rate and peak memory on the largest cube;
step 3's time, ensemble loading included; step 4's overhead). Step 2 also runs its largest cube
written without the ``snr`` column (as the code before it wrote cubes) and gives the speed-up of
the column. Needs ≈ 4.1 GB of disk in ``--workdir`` for the full-size cube (deleted at the end
unless ``--keep``).
"""

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ravecnn_utils.cube import common_wavelengths, cube_header, spectrum_snr, write_spectra_cube  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS  # noqa: E402
from ravecnn_utils.model import slides_cnn  # noqa: E402
from ravecnn_utils.ensemble import Ensemble, LabelScaler  # noqa: E402
from common import timed  # noqa: E402  (benchmarks/common.py)

RAVE_DR6_SPECTRA = 518_387
SLIDES_PIXELS = 723
"""Input length of the talk's network (``model.slides_cnn`` default)."""
BLOCK = 20_000


def synthetic_cube(path, n, seed=0, with_snr=True):
    """A cube of ``n`` noisy flat spectra with three Gaussian 'Ca II' lines, streamed in blocks;
    with its ``snr`` column (as ``cube.build_spectra_cube`` writes it) unless ``with_snr`` is False
    (a cube of the code before that column: prediction then computes each SNR itself)."""
    wave = common_wavelengths()
    step = round(float(wave[1] - wave[0]), 9)
    header = cube_header(wave, step, n, sources="synthetic (benchmarks/inference.py)")
    lines = 1 - sum(0.6 * np.exp(-0.5 * ((wave - c) / 1.2) ** 2) for c in (8498.02, 8542.09, 8662.14))

    def pairs():
        rng = np.random.default_rng(seed)
        for start in range(0, n, BLOCK):
            rows = min(BLOCK, n - start)
            snr = rng.uniform(10, 150, (rows, 1))
            noise = rng.normal(0, 1, (rows, wave.size))
            yield lines + noise / snr, np.broadcast_to(1 / snr, (rows, wave.size))

    def blocks(ext):
        return (pair[0 if ext == "FLUX" else 1] for pair in pairs())  # the same draws for FLUX and ERROR

    snr = np.concatenate([spectrum_snr(*pair) for pair in pairs()]) if with_snr else None
    ids = np.array([f"synthetic_{i:07d}" for i in range(n)])
    return write_spectra_cube(path, header, blocks, ids, np.zeros(n, np.int32), snr=snr)


def toy_ensemble(folder, n_members, n_pixels):
    """``n_members`` untrained slides networks with a label scaling, calibration and validation spread."""
    import keras

    members = []
    for seed in range(n_members):
        keras.utils.set_random_seed(seed)
        members.append(slides_cnn(n_pixels=n_pixels))
    scaler = LabelScaler(np.array([3500.0, 0.0, -2.5, -0.2]), np.array([4000.0, 5.5, 3.0, 0.6]))
    ens = Ensemble(members, scaler, CORE_LABELS, grid=common_wavelengths(),
                   calibration=dict.fromkeys(CORE_LABELS, 2.0),
                   metadata={"network": f"slides x{n_members} (untrained)"},
                   validation_spread=dict.fromkeys(CORE_LABELS, 1.0))
    ens.save(folder)
    return folder


def time_per_layer(model, x, batch_size=2048):
    """(layer, µs per spectrum) added by each weighted layer: the network is cut after the layer's
    activation, compiled, and its summed output timed; differences of successive cuts."""
    import keras
    import tensorflow as tf

    names = [layer.name for layer in model.layers]
    cuts = [n for n in ("conv1_lrelu", "conv2_lrelu", "conv3_lrelu", "dense32_lrelu", "dense16_lrelu", "labels")
            if n in names]
    previous, out = 0.0, []
    for name in cuts:
        head = keras.Model(model.inputs, model.get_layer(name).output)
        fn = tf.function(lambda a, head=head: tf.reduce_sum(tf.reshape(head(a, training=False),
                                                                       (tf.shape(a)[0], -1)), 1))
        batches = [tf.constant(x[s:s + batch_size]) for s in range(0, len(x) - batch_size + 1, batch_size)]
        fn(batches[0])
        _, seconds = timed(lambda: [fn(b).numpy() for b in batches])
        micro = seconds / (len(batches) * batch_size) * 1e6
        out.append((name.replace("_lrelu", ""), micro - previous))
        previous = micro
    return out


def child(cube, ensemble_dir, out, dask_workers="0"):
    """Run predict_cube in this (fresh) process, or with ``dask_workers`` > 0 predict_cube_dask on a
    LocalCluster of that many workers (its start timed too); print JSON with the time and peak
    memory (of this process; not the Dask workers')."""
    from ravecnn_utils.predict import predict_cube, predict_cube_dask

    def dask_run():
        from distributed import Client, LocalCluster

        with LocalCluster(n_workers=int(dask_workers), threads_per_worker=1, processes=True,
                          dashboard_address=None) as cluster, Client(cluster) as client:
            bind_workers(client)
            predict_cube_dask(ensemble_dir, cube, out, client=client, progress=False)

    load_seconds = 0.0  # the Dask run's workers load the ensemble within its time
    if int(dask_workers):
        _, seconds = timed(dask_run)
    else:
        ensemble, load_seconds = timed(Ensemble.load, ensemble_dir)
        _, seconds = timed(predict_cube, ensemble, cube, out, progress=False)
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: kB
    print(json.dumps({"seconds": seconds, "load_seconds": load_seconds, "peak_rss_mb": peak_mb}))


def bind_workers(client):
    """Give each Dask worker cores of its own, as a batch system binds each job to the cores it
    booked (the book's cluster recipe): a worker's kernel takes as many threads as it may use
    cores, so unbound workers on one machine would each take all of them and compete."""
    cores = sorted(os.sched_getaffinity(0))
    workers = sorted(client.scheduler_info()["workers"])
    for k, address in enumerate(workers):
        client.run(os.sched_setaffinity, 0, set(cores[k::len(workers)]), workers=[address])


def run_child(cube, ensemble_dir, out, dask_workers=0):
    result = subprocess.run([sys.executable, __file__, "--child", str(cube), str(ensemble_dir), str(out),
                             str(dask_workers)], check=True, capture_output=True, text=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def same_catalogue(a, b):
    """Whether the FITS catalogues ``a`` and ``b`` have the same columns and values (NaN = NaN)."""
    from astropy.table import Table

    ta, tb = Table.read(a), Table.read(b)
    return ta.colnames == tb.colnames and all(
        np.array_equal(ta[c], tb[c], equal_nan=ta[c].dtype.kind == "f") for c in ta.colnames)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[50_000, RAVE_DR6_SPECTRA])
    parser.add_argument("--members", type=int, default=10, help="ensemble size for the whole-survey run")
    parser.add_argument("--dask-workers", type=int, default=2, help="workers of step 4's Dask LocalCluster")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ravecnn_inference_bench"))
    parser.add_argument("--keep", action="store_true", help="keep the synthetic cubes")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return child(*args.child)

    import tensorflow as tf

    from ravecnn_utils.fastcnn import FastCNN, default_threads
    from ravecnn_utils.inference import CompiledModel, compile_model

    args.workdir.mkdir(parents=True, exist_ok=True)
    n_pix = common_wavelengths().size
    threads = tf.config.threading.get_intra_op_parallelism_threads() or "default"
    print(f"CPU cores: {os.cpu_count()}, TensorFlow {tf.__version__}, {threads} intra-op threads")

    # 1. one network, in memory
    print("\n1. one slides network, 50,000 spectra in memory")
    print(f"   {'pixels':>6}  {'path':<36}{'spectra/s':>12}{'max |diff|':>12}")
    rates = {}
    for n_pixels in (n_pix, SLIDES_PIXELS):
        model = slides_cnn(n_pixels=n_pixels)
        x = np.random.default_rng(1).normal(1, 0.05, (50_000, n_pixels, 1)).astype(np.float32)
        engines = {"keras model.predict (batch 256)": lambda a, m=model: m.predict(a, batch_size=256, verbose=0),
                   "CompiledModel (TensorFlow, 2048)": CompiledModel(model),
                   f"FastCNN (numba, {default_threads()} threads)": FastCNN(model)}
        ref = None
        for name, fn in engines.items():
            fn(x[:4096])  # warm up (tracing, compiling)
            out, seconds = timed(fn, x)
            ref = out if ref is None else ref
            rates[n_pixels, name.split()[0]] = len(x) / seconds
            print(f"   {n_pixels:>6}  {name:<36}{len(x) / seconds:>12,.0f}{np.abs(out - ref).max():>12.1e}")
    model = slides_cnn(n_pixels=n_pix)
    x = np.random.default_rng(1).normal(1, 0.05, (20_000, n_pix, 1)).astype(np.float32)
    rate_keras = rates[n_pix, "keras"]
    rate_ours = rates[n_pix, type(compile_model(model)).__name__]  # the engine Ensemble.predict uses
    print(f"\n   where TensorFlow's time goes, {n_pix} px (network cut after each layer, output summed; "
          "µs per spectrum):")
    for layer, micro in time_per_layer(model, x):
        print(f"   {layer:<38}{micro:>12.1f}")

    # 2. synthetic cubes through predict_cube, one network, fresh process each
    print("\n2. predict_cube, one network, synthetic cube on disk (fresh process; 'load s': Ensemble.load, "
          "not in the rate)")
    net = toy_ensemble(args.workdir / "models" / "x1", 1, n_pix)
    kernel = rates[n_pix, "FastCNN"]  # the numba kernel alone, in memory (step 1)
    print(f"   {'spectra':>10}{'cube GB':>9}{'write s':>9}{'load s':>8}{'predict s':>11}{'spectra/s':>11}"
          f"{'× keras':>9}{'% kernel':>10}{'peak RSS MB':>13}")
    cubes, disk_seconds, peak = {}, {}, None
    for n in args.sizes:
        cube = args.workdir / f"cube_{n}.fits"
        _, t_write = timed(synthetic_cube, cube, n)
        r = run_child(cube, net, args.workdir / f"catalogue_{n}.fits")
        cubes[n], disk_seconds[n], peak = cube, r["seconds"], r["peak_rss_mb"]
        print(f"   {n:>10,}{cube.stat().st_size / 1e9:>9.2f}{t_write:>9.0f}{r['load_seconds']:>8.1f}"
              f"{r['seconds']:>11.1f}{n / r['seconds']:>11,.0f}{n / r['seconds'] / rate_keras:>9.2f}"
              f"{100 * n / r['seconds'] / kernel:>10.0f}{r['peak_rss_mb']:>13,.0f}")
    n = max(args.sizes)  # a cube of the code before its snr column: prediction computes every SNR again
    synthetic_cube(args.workdir / "cube_without_snr.fits", n, with_snr=False)
    before = run_child(args.workdir / "cube_without_snr.fits", net, args.workdir / "catalogue_without_snr.fits")
    print(f"   {n:,} spectra from a cube without the snr column (the code before): {before['seconds']:.1f} s, "
          f"{n / before['seconds']:,.0f} spectra/s; with the column {before['seconds'] / disk_seconds[n]:.2f}× faster")

    # 3. the largest cube through the ensemble
    n = n_big = max(args.sizes)
    ens_dir = toy_ensemble(args.workdir / "models" / f"x{args.members}", args.members, n_pix)
    serial_out = args.workdir / "catalogue_ensemble.fits"
    r = run_child(cubes[n], ens_dir, serial_out)
    r["seconds"] += r["load_seconds"]  # the whole run, as the Dask one is timed
    print(f"\n3. {n:,} spectra through a {args.members}-member ensemble: {r['seconds']:.0f} s "
          f"({r['seconds'] / 60:.1f} min, {n * args.members / r['seconds']:,.0f} spectra × members / s; "
          f"loading the ensemble {r['load_seconds']:.1f} s of it), peak RSS {r['peak_rss_mb']:,.0f} MB")

    # 4. the same run on a Dask LocalCluster
    dask_out = args.workdir / "catalogue_dask.fits"
    d = run_child(cubes[n], ens_dir, dask_out, args.dask_workers)
    overhead = 100 * (d["seconds"] / r["seconds"] - 1)
    print(f"\n4. the same run, predict_cube_dask on a LocalCluster of {args.dask_workers} workers (fresh process, "
          "cluster start included)")
    print(f"   {'path':<40}{'seconds':>9}")
    print(f"   {'predict_cube (step 3)':<40}{r['seconds']:>9.1f}")
    print(f"   {'predict_cube_dask, LocalCluster':<40}{d['seconds']:>9.1f}")
    print(f"   overhead {overhead:+.1f} %; catalogues identical: "
          f"{'yes' if same_catalogue(serial_out, dask_out) else 'NO'}")
    if not args.keep:
        shutil.rmtree(args.workdir)
    print(f"spectra_per_s_ours={rate_ours:.0f} spectra_per_s_keras={rate_keras:.0f} "
          f"disk_spectra_per_s={n_big / disk_seconds[n_big]:.0f} peak_rss_mb={peak:.0f} "
          f"ensemble_{n_big}_s={r['seconds']:.1f} dask_overhead_pct={overhead:.1f}")


if __name__ == "__main__":
    main()
