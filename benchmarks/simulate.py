"""Benchmark: where does the simulation's time go, now and before? (target: ≥ 2,000 spectra/s on 2 cores)

    python benchmarks/simulate.py [--profile full] [--sample 2000] [--processes 2] [--workdir data/sim/.bench]

Times each stage of the simulation on a random sample of ``--sample`` observations of the
profile, in this one process and in chunks of ``simulate.CHUNK`` as the workers run them: the
galaxy draw (the whole profile's stars and observations, per observation), the flux (forward
model + resampling onto each file's pixels), the Jacobian and Fisher matrices, the noise, and
the FITS writing. "Before" is the code this replaced, kept here as references: the Jacobian of
every observation (now: only the cross-match stars', ``simulate.fisher_observations``) and
``rave.write_rave_spectrum_with_astropy`` (``HDUList.writeto``; now: the assembled file). Then
the whole survey is simulated with ``--processes`` (``--no-survey`` skips it) in a fresh
process, as ``make simulate`` runs it (interpreter start included), for its wall time, spectra
per second and peak memory.

Files are written under ``--workdir`` (removed afterwards): writing speed depends on the disk,
and a folder under /tmp may be much slower than the repository's. The last line is
``sim_spectra_per_s=<n> stage_speedup=<x>`` (x: all stages before over now, per spectrum).
"""

import argparse
import resource
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np

from ravecnn_utils import rave
from ravecnn_utils.labels import LABELS
from ravecnn_utils.paths import DATA_DIR
from ravecnn_utils.simulation import simulate
from ravecnn_utils.simulation.spectra import add_noise, fisher_matrices, model_flux
from common import timed  # noqa: E402  (benchmarks/common.py)


def write_files(writer, folder, chunk, flux, rel_error):
    """Write a chunk's spectra into ``folder`` with ``writer`` (one of rave's spectrum writers)."""
    for k, obs_id in enumerate(chunk["rave_obs_id"]):
        writer(folder / rave.spectrum_filename(obs_id), flux[k], rel_error[k], chunk["crval1"][k],
               chunk["cdelt1"][k], obs_id)


def stage_times(profile, sample, workdir, seed=0):
    """Seconds per spectrum of each stage, now and before (None where unchanged), and the counts."""
    rng = np.random.default_rng(np.random.SeedSequence([simulate.DEFAULT_SEED, 0]))
    sizes = simulate.PROFILES[profile]

    def draw():
        stars = simulate.draw_stars(sizes, rng)
        return stars, simulate.draw_observations(stars, rng, simulate.n_repeats(sizes))

    (stars, obs), t_draw = timed(draw)
    pick = np.sort(np.random.default_rng(seed).choice(len(obs), min(sample, len(obs)), replace=False))
    labels = np.column_stack([np.asarray(stars[name], float) for name in LABELS])[obs["star_index"][pick]]
    cols = {k: np.asarray(obs[k])[pick] for k in ("rave_obs_id", "snr", "rv_residual", "crval1", "cdelt1")}
    wanted = simulate.fisher_observations(stars, obs)[pick]
    model = simulate._cached_model(str(simulate.EMULATOR_FILE))
    totals = dict.fromkeys(("flux", "fisher now", "fisher before", "noise", "write now", "write before"), 0.0)
    noise_rng = np.random.default_rng(seed)
    for start in range(0, len(pick), simulate.CHUNK):
        part = slice(start, start + simulate.CHUNK)
        chunk = {k: v[part] for k, v in cols.items()}
        (wave, flux), t = timed(model_flux, model, labels[part], chunk)
        totals["flux"] += t
        (observed, rel_error, cont, sigma, _, _), t = timed(add_noise, flux, chunk["snr"], noise_rng)
        totals["noise"] += t
        for key, rows in (("fisher now", np.flatnonzero(wanted[part])), ("fisher before", np.arange(len(flux)))):
            totals[key] += timed(fisher_matrices, model, labels[part], chunk, wave, cont, sigma, rows)[1]
        for key, writer in (("write now", rave.write_rave_spectrum),
                            ("write before", rave.write_rave_spectrum_with_astropy)):
            folder = workdir / key.replace(" ", "_")
            folder.mkdir(parents=True, exist_ok=True)
            totals[key] += timed(write_files, writer, folder, chunk, observed, rel_error)[1]
    n = len(pick)
    rows = [
        (f"galaxy draw (whole profile, {len(obs):,} observations)", t_draw / len(obs), None),
        ("flux (emulator + resampling)", totals["flux"] / n, None),
        (f"Jacobian + Fisher ({wanted.sum()} cross-match of {n} / all)", totals["fisher now"] / n,
         totals["fisher before"] / n),
        ("noise, continuum, bad pixels", totals["noise"] / n, None),
        ("FITS writing (assembled / astropy writeto)", totals["write now"] / n, totals["write before"] / n),
    ]
    return rows, n


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", choices=sorted(simulate.PROFILES))
    parser.add_argument("--sample", type=int, default=2000, help="observations timed stage by stage")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=DATA_DIR / "sim" / ".bench",
                        help="scratch folder (removed afterwards; default data/sim/.bench, git-ignored)")
    parser.add_argument("--no-survey", action="store_true", help="skip simulating the whole survey")
    args = parser.parse_args()

    workdir = args.workdir
    shutil.rmtree(workdir, ignore_errors=True)
    try:
        rows, n = stage_times(args.profile, args.sample, workdir / "stages")
        survey = None
        if not args.no_survey:  # as `make simulate` runs it: a fresh process (this one's state slows forks)
            command = [sys.executable, "-m", "ravecnn_utils.simulation", "--profile", args.profile,
                       "--out", str(workdir / args.profile), "--processes", str(args.processes)]
            _, t_survey = timed(subprocess.run, command, check=True, capture_output=True)
            survey = (simulate.n_observations(simulate.PROFILES[args.profile]), t_survey)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    peak_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024  # Linux: kB

    now = sum(r[1] for r in rows)
    before = sum(r[1] if r[2] is None else r[2] for r in rows)
    width = max(len(r[0]) for r in rows)
    print(f"ms per spectrum, {n:,} observations of profile '{args.profile}' in one process")
    print(f"{'stage':<{width}}  {'now':>7}  {'before':>7}  {'ratio':>6}  share now")
    for what, t_now, t_before in rows:
        extra = (f"{t_before * 1e3:7.3f}  {t_before / t_now:5.1f}×" if t_before is not None else f"{'':7}  {'':6}")
        print(f"{what:<{width}}  {t_now * 1e3:7.3f}  {extra}  {t_now / now:8.0%}")
    print(f"{'all stages':<{width}}  {now * 1e3:7.3f}  {before * 1e3:7.3f}  {before / now:5.1f}×")
    rate = float("nan")
    if survey is not None:
        rate = survey[0] / survey[1]
        print(f"\nwhole survey '{args.profile}' with {args.processes} processes: {survey[0]:,} observations in "
              f"{survey[1]:.1f} s = {rate:,.0f} spectra/s; peak memory (largest process) {peak_mb:,.0f} MB")
    print(f"sim_spectra_per_s={rate:.0f} stage_speedup={before / now:.2f}")


if __name__ == "__main__":
    main()
