"""Benchmark: how fast are RAVE spectrum files read into the spectra cube, fast reader against astropy's?

    python benchmarks/read_spectra.py [--n 5000] [--chunk 2000] [--processes 2] [--workdir DIR]

Writes ``--n`` synthetic RAVE DR6 files (random flux, per-file CRVAL1/CDELT1) into a temporary
folder (under ``--workdir``; the disk matters), then builds the spectra cube
(``ravecnn_utils.cube.build_spectra_cube``) from them twice on ``--processes`` worker processes,
each time in a fresh Python process (so that peak memory is its own): with the reader the package
uses (``rave.read_rave_spectrum``, whose plain files go through ``plainfits``) and with astropy's
(``rave.read_rave_spectrum_with_astropy``, the code before). Prints wall time, files per second,
peak RSS of the main process and of the workers (MB), the cube's size, the ratio of the two speeds
and whether the two cubes are the same bytes. Last line: ``key=value``.
"""

import argparse
import filecmp
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from ravecnn_utils import cube, rave

READERS = {"fast": rave.read_rave_spectrum, "astropy": rave.read_rave_spectrum_with_astropy}
"""The readers compared: the package's, and astropy's alone (the code before the fast path)."""


def write_files(folder, n, seed=0):
    """``n`` synthetic RAVE files (990 pixels each; CRVAL1 jitters 0.1 Å around 8409.5 Å)."""
    rng = np.random.default_rng(seed)
    for i in range(n):
        flux = 1 - 0.5 * rng.uniform(size=990) ** 6
        rel = rng.uniform(0.005, 0.05, 990)
        obs_id = f"2008{i // 150:04d}_1200m30_{i % 150 + 1:03d}"
        rave.write_rave_spectrum(folder / rave.spectrum_filename(obs_id), flux, rel, 8409.5 + rng.normal(0, 0.1),
                                 0.39 * (1 + rng.normal(0, 3e-4)), obs_id)


def one_run(folder, reader, processes, chunk):
    """Build the cube once (in this process, with ``reader``) and print a JSON line of measurements."""
    cube.read_rave_spectrum = READERS[reader]  # the workers are forked from this process: they use it too
    paths = sorted(Path(folder, "spectra").glob("RAVE_*.fits"))
    out = Path(folder, f"cube_{reader}.fits")
    start = time.perf_counter()
    cube.build_spectra_cube(paths, out, chunk=chunk, processes=processes, progress=False)
    wall = time.perf_counter() - start
    print(json.dumps({
        "reader": reader, "processes": processes, "files": len(paths), "wall_s": wall,
        "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "cube_mb": out.stat().st_size / 2**20,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of synthetic files (default 5000)")
    parser.add_argument("--chunk", type=int, default=2000, help="files per chunk (default 2000)")
    parser.add_argument("--processes", type=int, default=2, help="worker processes (default 2)")
    parser.add_argument("--workdir", default=None, help="folder for the temporary files (default: the system's)")
    parser.add_argument("--one-run", nargs=2, metavar=("FOLDER", "READER"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        one_run(args.one_run[0], args.one_run[1], args.processes, args.chunk)
        return

    folder = Path(tempfile.mkdtemp(prefix="ravecnn-bench-", dir=args.workdir))
    try:
        (folder / "spectra").mkdir()
        start = time.perf_counter()
        write_files(folder / "spectra", args.n)
        print(f"wrote {args.n} synthetic RAVE files in {time.perf_counter() - start:.1f} s")
        rows = {}
        for reader in ("astropy", "fast"):
            done = subprocess.run([sys.executable, __file__, "--chunk", str(args.chunk), "--processes",
                                   str(args.processes), "--one-run", str(folder), reader],
                                  check=True, capture_output=True, text=True)
            rows[reader] = json.loads(done.stdout.strip().splitlines()[-1])
        same = filecmp.cmp(folder / "cube_fast.fits", folder / "cube_astropy.fits", shallow=False)
    finally:
        shutil.rmtree(folder)
    print(f"\nbuild_spectra_cube, {args.n} files, chunk {args.chunk}, {args.processes} processes")
    print(f"{'reader':>8}  {'wall s':>7}  {'files/s':>8}  {'main RSS MB':>11}  {'worker RSS MB':>13}  {'cube MB':>7}")
    for name, r in rows.items():
        print(f"{name:>8}  {r['wall_s']:>7.2f}  {r['files'] / r['wall_s']:>8.0f}  {r['main_mb']:>11.0f}  "
              f"{r['workers_mb']:>13.0f}  {r['cube_mb']:>7.1f}")
    fast, slow = (rows[k]["files"] / rows[k]["wall_s"] for k in ("fast", "astropy"))
    print(f"fast / astropy: {fast / slow:.2f}x; the two cubes are {'the same' if same else 'DIFFERENT'} bytes")
    print(f"read_files_per_s={fast:.0f} astropy_files_per_s={slow:.0f} speedup={fast / slow:.2f} same_cube={same}")


if __name__ == "__main__":
    main()
