"""Benchmark: how does the cost of each stage grow with the survey, from 10k to 518k spectra?

    python benchmarks/scale.py [--profiles scale_10k full rave] [--workdir data/scale]
                               [--products data/products] [--members 10] [--keep]

For each simulation profile (``scale_10k`` 9,999, ``full`` 63,840 and ``rave`` 518,387
observations by default), four stages run one after the other, each in a fresh process of this
Python, and their wall time and peak resident memory (largest single process, workers included)
are recorded:

1. simulate: ``simulation.simulate_survey`` writes the survey;
2. cube: ``cube.build_spectra_cube`` reads every spectrum file of it into the spectra cube;
3. predict: ``predict.predict_cube`` puts the cube through ``--members`` untrained slides
   networks (the weights do not change the speed), catalogue written;
4. notebook 07, executed by the book's runner (``ravecnn_utils.book``) on that survey and cube with
   the trained ensemble ``--network`` of a ``make book`` (``--products``); skipped, and said so,
   when there is none.

Prints one table (seconds and peak RSS per size, the slope of log time against log size per
stage, the RSS ratio of the two largest sizes) and writes it as JSON (``costs``; default
``<workdir>/scale.json``, drawn by notebook 07 with ``scale_results``). Each survey is removed
after it is measured unless ``--keep``; the RAVE-sized one takes about 11 GB while it exists.
For a quick run: ``--profiles smoke``. The last line is
``scale_slope_max=<x> predict_518k_s=<s> peak_rss_mb=<m> sim_spectra_per_s=<n>``
(``predict_518k_s``: the predict stage at the largest size measured).
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
from pathlib import Path

from tqdm import tqdm

from ravecnn_utils import costs
from ravecnn_utils.paths import DATA_DIR, PRODUCT_FILES
from common import timed  # noqa: E402  (benchmarks/common.py)

DEFAULT_PROFILES = ["scale_10k", "full", "rave"]


def peak_rss_mb():
    """Peak resident memory (MB) of the largest single process so far: this one or a finished child."""
    return max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
               resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024  # Linux: kB


def child(stage, job):
    """Run one stage in this (fresh) process; print JSON: spectra, seconds of work, peak RSS (MB)."""
    survey_dir, products = Path(job["survey"]), Path(job["products"])
    cube_path = products / PRODUCT_FILES["spectra_cube"]
    if stage == "ensemble":  # not measured: the untrained members for the predict stage
        from inference import toy_ensemble  # benchmarks/inference.py
        from ravecnn_utils.cube import common_wavelengths

        toy_ensemble(Path(job["ensemble"]), job["members"], common_wavelengths().size)
        n, seconds = 0, 0.0
    elif stage == "simulate":
        from ravecnn_utils.simulation.simulate import simulate_survey

        manifest, seconds = timed(simulate_survey, survey_dir, job["profile"], processes=job["processes"],
                                  progress=False, overwrite=True)
        n = manifest["n_observations"]
    elif stage == "cube":
        from astropy.io import fits

        from ravecnn_utils import cube, fitstable, survey

        # the catalogue's id column read a block at a time (plain reads: a memory-mapped column keeps
        # every page of the table resident), the paths one at a time as notebook 02 passes them: the
        # peak is the builder's own, not the catalogue's (which notebook 02 holds anyway, for the
        # cross-match)
        catalogue = survey_dir / survey.FILES["catalogue"]
        paths = (survey.spectrum_path(survey_dir, i) for block in fitstable.iter_columns(catalogue, ["rave_obs_id"])
                 for i in block["rave_obs_id"])
        products.mkdir(parents=True, exist_ok=True)
        _, seconds = timed(cube.build_spectra_cube, paths, cube_path, processes=job["processes"], progress=False,
                           overwrite=True)
        n = fits.getheader(catalogue, 1)["NAXIS2"]
    elif stage == "predict":
        from ravecnn_utils.ensemble import Ensemble
        from ravecnn_utils.predict import predict_cube

        ens = Ensemble.load(job["ensemble"])
        _, seconds = timed(predict_cube, ens, cube_path, products / f"catalogue_x{len(ens)}.fits", progress=False)
        n = job["spectra"]
    elif stage == "notebook 07":
        from ravecnn_utils.book.notebooks import run_all

        params = {"products_dir": str(products.resolve()), "survey_dir": str(survey_dir.resolve()),
                  "network": job["network"]}
        _, seconds = timed(run_all, job["book_profile"], products.parent / "executed", only=["07_idr6_giants"],
                           overrides=params, progress_bar=False)
        n = job["spectra"]
    else:
        raise ValueError(f"unknown stage {stage!r}")
    print(json.dumps({"spectra": int(n), "seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def run_child(stage, job):
    """Run ``stage`` in a fresh process; its JSON line, or SystemExit naming the stage and its error."""
    done = subprocess.run([sys.executable, __file__, "--child", stage, json.dumps(job)],
                          capture_output=True, text=True)
    if done.returncode:
        tail = "\n".join((done.stderr or done.stdout).strip().splitlines()[-15:])
        raise SystemExit(f"stage {stage!r} of profile {job.get('profile')!r} failed "
                         f"(exit {done.returncode}; --keep keeps its files):\n{tail}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profiles", nargs="+", default=DEFAULT_PROFILES,
                        help=f"simulation profiles, one size each (default {' '.join(DEFAULT_PROFILES)})")
    parser.add_argument("--workdir", type=Path, default=DATA_DIR / "scale",
                        help="where the surveys, cubes and catalogues go (default data/scale, git-ignored)")
    parser.add_argument("--out", type=Path, help="the results file (default <workdir>/scale.json)")
    parser.add_argument("--products", type=Path, default=DATA_DIR / "products",
                        help="a `make book`'s products: notebook 07 uses models/<network> (default data/products)")
    parser.add_argument("--network", default="paper_photometry", help="the trained ensemble for notebook 07")
    parser.add_argument("--book-profile", default="full",
                        help="notebook 07's parameters from this profile of notebooks/profiles.yml (default full)")
    parser.add_argument("--members", type=int, default=10, help="untrained members for the predict stage")
    parser.add_argument("--processes", type=int, default=2, help="processes for simulate and cube")
    parser.add_argument("--keep", action="store_true", help="keep each survey, cube and catalogue")
    parser.add_argument("--child", nargs=2, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None):
    args = parse_args(argv)
    if args.child:
        return child(args.child[0], json.loads(args.child[1]))
    from ravecnn_utils.simulation.simulate import PROFILES

    unknown = [p for p in args.profiles if p not in PROFILES]
    if unknown:
        raise SystemExit(f"--profiles: unknown {unknown}; known profiles: {sorted(PROFILES)}")
    out = args.out or args.workdir / "scale.json"
    models = args.products / PRODUCT_FILES["models"]
    results = costs.new_results(args.members)
    stages = list(costs.STAGES)
    if not (models / args.network).is_dir():
        why = f"no trained ensemble {models / args.network}: run `make book` first, or pass --products DIR"
        print(f"notebook 07 is skipped: {why}")
        results["skipped"]["notebook 07"] = why
        stages.remove("notebook 07")

    args.workdir.mkdir(parents=True, exist_ok=True)
    ensemble = args.workdir / "models" / f"x{args.members}"
    shutil.rmtree(ensemble, ignore_errors=True)
    run_child("ensemble", {"survey": "", "products": "", "ensemble": str(ensemble), "members": args.members})
    bar = tqdm(total=len(args.profiles) * len(stages), desc="scale", unit="stage")
    try:
        for profile in args.profiles:
            base = args.workdir / profile
            shutil.rmtree(base, ignore_errors=True)  # every stage starts from nothing
            job = {"profile": profile, "survey": str(base / "survey"), "products": str(base / "products"),
                   "ensemble": str(ensemble), "processes": args.processes, "network": args.network,
                   "book_profile": args.book_profile}
            try:
                for stage in stages:
                    bar.set_postfix_str(f"{profile}: {stage}")
                    if stage == "notebook 07":
                        (base / "products" / PRODUCT_FILES["models"]).symlink_to(models.resolve())
                    r = run_child(stage, job)
                    job["spectra"] = job.get("spectra", r["spectra"])
                    costs.add_run(results, stage, profile, job["spectra"], r["seconds"], r["peak_rss_mb"])
                    costs.write_results(results, out)  # a failure later keeps what was measured
                    bar.write(f"{profile:>10} {job['spectra']:>9,} {stage:<12} {r['seconds']:>8.1f} s "
                              f"{r['peak_rss_mb']:>8,.0f} MB")
                    bar.update()
            finally:
                if not args.keep:
                    shutil.rmtree(base, ignore_errors=True)
    finally:
        bar.close()
        if not args.keep:
            shutil.rmtree(args.workdir / "models", ignore_errors=True)
    print()
    print(costs.table(results))
    print(f"results: {out}")
    print(costs.summary_line(results))


if __name__ == "__main__":
    main()
