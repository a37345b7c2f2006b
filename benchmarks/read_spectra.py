"""Benchmark: how fast are RAVE spectrum files read into the spectra cube?

    python benchmarks/read_spectra.py [--n 5000] [--chunk 2000]

Writes ``--n`` synthetic RAVE DR6 files (random flux, per-file CRVAL1/CDELT1) into a
temporary folder, then times ``ravecnn_utils.cube.build_spectra_cube`` with 1 and 2 worker
processes, each in a fresh Python process (so that peak memory is its own), and prints a
table: wall time, files per second, peak RSS of the main process and of the workers (MB),
and the cube's size on disk.
"""

import argparse
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


def write_files(folder, n, seed=0):
    """``n`` synthetic RAVE files (990 pixels each; CRVAL1 jitters 0.1 Å around 8409.5 Å)."""
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        flux = 1 - 0.5 * rng.uniform(size=990) ** 6
        rel = rng.uniform(0.005, 0.05, 990)
        obs_id = f"2008{i // 150:04d}_1200m30_{i % 150 + 1:03d}"
        path = folder / rave.spectrum_filename(obs_id)
        rave.write_rave_spectrum(path, flux, rel, 8409.5 + rng.normal(0, 0.1), 0.39 * (1 + rng.normal(0, 3e-4)),
                               obs_id)
        paths.append(path)
    return paths


def one_run(folder, processes, chunk):
    """Build the cube once (in this process) and print a JSON line of measurements."""
    paths = sorted(Path(folder, "spectra").glob("RAVE_*.fits"))
    out = Path(folder, f"cube_p{processes}.fits")
    start = time.perf_counter()
    cube.build_spectra_cube(paths, out, chunk=chunk, processes=processes, progress=False)
    wall = time.perf_counter() - start
    print(json.dumps({
        "processes": processes, "files": len(paths), "wall_s": wall,
        "main_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "workers_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024,
        "cube_mb": out.stat().st_size / 2**20,
    }))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=5000, help="number of synthetic files (default 5000)")
    parser.add_argument("--chunk", type=int, default=2000, help="files per chunk (default 2000)")
    parser.add_argument("--one-run", nargs=2, metavar=("FOLDER", "PROCESSES"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one_run:
        one_run(args.one_run[0], int(args.one_run[1]), args.chunk)
        return

    folder = Path(tempfile.mkdtemp(prefix="ravecnn-bench-"))
    try:
        (folder / "spectra").mkdir()
        start = time.perf_counter()
        write_files(folder / "spectra", args.n)
        print(f"wrote {args.n} synthetic RAVE files in {time.perf_counter() - start:.1f} s")
        rows = []
        for processes in (1, 2):
            done = subprocess.run([sys.executable, __file__, "--chunk", str(args.chunk), "--one-run", str(folder),
                                   str(processes)], check=True, capture_output=True, text=True)
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        shutil.rmtree(folder)
    print(f"\nbuild_spectra_cube, {args.n} files, chunk {args.chunk}")
    print(f"{'processes':>9}  {'wall s':>7}  {'files/s':>8}  {'main RSS MB':>11}  {'worker RSS MB':>13}  "
          f"{'cube MB':>7}")
    for r in rows:
        print(f"{r['processes']:>9}  {r['wall_s']:>7.1f}  {r['files'] / r['wall_s']:>8.0f}  {r['main_mb']:>11.0f}  "
              f"{r['workers_mb']:>13.0f}  {r['cube_mb']:>7.1f}")


if __name__ == "__main__":
    main()
