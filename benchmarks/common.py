"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import time


def timed(func, *args, **kwargs):
    """Call ``func`` and return (its result, wall-clock seconds)."""
    start = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - start


def simulated_parser(description, network_help):
    """The command line of a benchmark on notebook 02's training set of a simulated survey:
    --profile, --products-dir, --survey-dir (default data/sim/<profile>) and --network."""
    import argparse
    from pathlib import Path

    from ravecnn_utils.paths import REPO_ROOT

    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--profile", default="full", help="simulated survey profile (default full)")
    parser.add_argument("--products-dir", type=Path, default=REPO_ROOT / "data" / "products")
    parser.add_argument("--survey-dir", type=Path, default=None, help="default data/sim/<profile>")
    parser.add_argument("--network", default="paper_photometry", help=network_help)
    return parser


def read_simulated(args):
    """(survey folder, wave Å, flux, error, table) of the training set in ``args.products_dir``;
    SystemExit if it was not made from a simulated survey (which alone has a truth)."""
    from ravecnn_utils.paths import PRODUCT_FILES, REPO_ROOT
    from ravecnn_utils.trainingset import read_training_set

    wave, flux, error, table = read_training_set(args.products_dir / PRODUCT_FILES["training_set"])
    if table.meta["provenance"].get("data_source") != "sim":
        raise SystemExit(f"{args.products_dir}: the training set is not from a simulated survey (no truth)")
    return args.survey_dir or REPO_ROOT / "data" / "sim" / args.profile, wave, flux, error, table
