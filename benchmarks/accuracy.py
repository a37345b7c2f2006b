"""Benchmark: how accurate is the CNN, beside its peers and against the Cramér–Rao bound?

    python benchmarks/accuracy.py [--profile full] [--products-dir data/products]
                                  [--survey-dir data/sim/<profile>] [--network paper_photometry]

Needs notebooks 02 and 04 run on a simulated survey (``make book``, or ``make book PROFILE=smoke``
with ``--profile smoke``). On the test set it fits the peers (mean, ridge, PCA + ridge, kNN, The
Cannon) on the training spectra and prints the robust scatter of every method × label against
APOGEE and against the truth (with the RAVE pipeline and the paper's published test residuals),
then, per SNR bin and label, the CNN's scatter against the truth divided by the Cramér–Rao bound
(all nine labels unknown, as in ``truth.fits``; then Teff, log g, [M/H], [α/M] with the abundances
known). The last line is ``worst_crlb_ratio_snr_ge_50=<x>`` (nine-label bound, SNR ≥ 50).
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ravecnn_utils import survey, validation  # noqa: E402
from ravecnn_utils.rave import read_rave_catalogue  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS, LABELS  # noqa: E402
from ravecnn_utils.paths import PRODUCT_FILES, REPO_ROOT  # noqa: E402
from ravecnn_utils.survey import FILES  # noqa: E402
from ravecnn_utils.ensemble import Ensemble  # noqa: E402
from ravecnn_utils.trainingset import label_array, read_training_set  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", default="full", help="simulated survey profile (default full)")
    parser.add_argument("--products-dir", type=Path, default=REPO_ROOT / "data" / "products")
    parser.add_argument("--survey-dir", type=Path, default=None, help="default data/sim/<profile>")
    parser.add_argument("--network", default="paper_photometry", help="ensemble compared with the bound")
    parser.add_argument("--networks", nargs="+", default=["slides", "paper_photometry"])
    args = parser.parse_args()
    survey_dir = args.survey_dir or REPO_ROOT / "data" / "sim" / args.profile

    wave, flux, error, table = read_training_set(args.products_dir / PRODUCT_FILES["training_set"])
    if table.meta["provenance"].get("data_source") != "sim":
        raise SystemExit(f"{args.products_dir}: the training set is not from a simulated survey (no truth)")
    train, test = (np.flatnonzero(np.asarray(table["split"]) == s) for s in ("train", "test"))
    ensembles = {n: Ensemble.load(args.products_dir / PRODUCT_FILES["models"] / n, grid=wave) for n in args.networks}
    if args.network not in ensembles:
        raise SystemExit(f"--network {args.network} is not among --networks {args.networks}")
    y = label_array(table, LABELS)
    truth = survey.read_truth(survey_dir, table[test])
    catalogue = read_rave_catalogue([survey_dir / FILES["catalogue"]])

    pred, _ = validation.network_predictions(ensembles, flux[test], error[test], table[test])
    peers, seconds = validation.fit_peers(flux, error, y, train, test)
    methods = {f"CNN {n}": p for n, p in pred.items()} | peers
    methods["RAVE pipeline"] = validation.pipeline_labels(table[test], catalogue)
    paper_pred, _, paper_apogee = validation.paper_test_set()
    print(f"{table.meta['provenance'].get('source')}: {len(train)} training, {len(test)} test spectra\n")
    print("robust scatter, method − APOGEE (K, dex); last row: the paper's published test set (real data)")
    validation.method_table(methods | {"Guiglion+2020": (paper_pred, paper_apogee)}, y[test], LABELS).pprint_all()
    print("\nrobust scatter, method − truth (K, dex)")
    validation.method_table(methods, truth["labels"], LABELS).pprint_all()
    print("\npeer fit + predict time: " + ", ".join(f"{k} {v:.1f} s" for k, v in seconds.items()))

    core = [LABELS.index(n) for n in CORE_LABELS]
    p = pred[args.network]
    r9 = validation.bound_ratios(p, truth["labels"], truth["crlb"], truth["snr"], LABELS)
    r4 = validation.bound_ratios(p[:, core], truth["labels"][:, core], truth["crlb_core"], truth["snr"],
                                 CORE_LABELS)
    print(f"\nCNN {args.network} − truth per SNR bin against the Cramér–Rao bound, all nine labels unknown")
    r9[r9["spectra"] > 0].pprint_all()
    print("\nthe same, Teff, log g, [M/H], [α/M] with the five abundances known")
    r4.pprint_all()
    worst4, label4 = validation.worst_ratio(r4)
    worst9, label9 = validation.worst_ratio(r9)
    print(f"\nworst ratio at SNR >= 50: {worst4:.2f} ({label4}) against the 4-label bound; "
          f"{worst9:.2f} ({label9}) against the 9-label bound")
    print(f"worst_crlb_ratio_snr_ge_50={worst9:.2f}")


if __name__ == "__main__":
    main()
