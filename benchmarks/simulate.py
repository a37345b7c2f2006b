"""Benchmark: how fast is the simulated survey written? (target: profile `full` in < 5 min on 2 cores)

    python benchmarks/simulate.py [--profile full] [--processes 2]

Prints a table: forward-model throughput (flux, flux + Jacobian), then the whole survey's
wall time, observations per second, peak memory and size on disk.
"""

import argparse
import resource
import shutil
import tempfile
from pathlib import Path

import numpy as np

from ravecnn_utils.simulation.forward import ForwardModel
from ravecnn_utils.simulation.galaxy import draw_field_stars
from ravecnn_utils.labels import LABELS
from ravecnn_utils.simulation.simulate import simulate_survey
from common import timed  # noqa: E402  (benchmarks/common.py)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full")
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    model = ForwardModel()
    stars = draw_field_stars(1000, np.random.default_rng(0))
    labels = np.column_stack([np.asarray(stars[n], float) for n in LABELS])
    _, t_flux = timed(model.flux, labels)
    _, t_jac = timed(model.flux_and_jacobian, labels)

    out = Path(tempfile.mkdtemp()) / args.profile
    try:
        manifest, t_survey = timed(simulate_survey, out, args.profile, processes=args.processes)
        size_mb = sum(f.stat().st_size for f in out.rglob("*") if f.is_file()) / 2**20
    finally:
        shutil.rmtree(out.parent)
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024

    rows = [
        ("forward model: flux of 1,000 stars", f"{t_flux:.2f} s", f"{1000 / t_flux:,.0f} spectra/s"),
        ("forward model: flux + Jacobian, 1,000 stars", f"{t_jac:.2f} s", f"{1000 / t_jac:,.0f} spectra/s"),
        (f"survey '{args.profile}': {manifest['n_observations']:,} observations", f"{t_survey:.1f} s",
         f"{manifest['n_observations'] / t_survey:,.0f} observations/s"),
        ("peak resident memory (largest process)", f"{peak_mb:,.0f} MB", ""),
        ("size on disk", f"{size_mb:,.0f} MB", ""),
    ]
    width = max(len(r[0]) for r in rows)
    print(f"{'what':<{width}}  {'time / size':>12}  rate")
    for what, value, rate in rows:
        print(f"{what:<{width}}  {value:>12}  {rate}")


if __name__ == "__main__":
    main()
