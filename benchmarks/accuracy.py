"""Benchmark: how accurate is the CNN, beside its peers and against the Cramér–Rao bound?

    python benchmarks/accuracy.py [--profile full] [--products-dir data/products]
                                  [--survey-dir data/sim/<profile>] [--network paper_photometry]

Needs notebooks 02 and 04 run on a simulated survey (``make book``, or ``make book PROFILE=smoke``
with ``--profile smoke``). On the test set it fits the peers (mean, ridge, PCA + ridge, kNN, The
Cannon) on the training spectra and prints the robust scatter of every method × label against
APOGEE and against the truth (with the RAVE pipeline and the paper's published test residuals),
then, per SNR bin and label, the CNN's scatter against the truth divided by the Cramér–Rao bound
(all nine labels unknown, as in ``truth.fits``; then Teff, log g, [M/H], [α/M] with the abundances
known). Then the test the prior cannot pass: every method on the decorrelated spectra of the test
stars (``prior``; SNR > 80 when at least ``prior.MIN_STARS`` of them, else all), the slope of
estimate against truth at fixed [M/H] per label (1 = reads the spectrum, 0 = returns the prior)
with the scatter and the Cramér–Rao bound; and, on the test set, how many of the true thick-disc
giants (true log g < 3.5, Teff < 5500 K, true SNR > 80) the network puts on the thick side.
The last line is ``worst_crlb_ratio_snr_ge_50=<x> alpha_slope=<s> thick_on_side=<f>`` (nine-label
bound, SNR ≥ 50; the slope of --network's [α/M] on the decorrelated sample; the fraction of those
thick-disc giants of the test set on the thick side, nan when the test set has none).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ravecnn_utils import prior, survey, validation  # noqa: E402
from ravecnn_utils.rave import read_rave_catalogue  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS, LABELS  # noqa: E402
from ravecnn_utils.paths import PRODUCT_FILES  # noqa: E402
from ravecnn_utils.survey import FILES  # noqa: E402
from ravecnn_utils.ensemble import Ensemble  # noqa: E402
from ravecnn_utils.trainingset import label_array  # noqa: E402

from common import read_simulated, simulated_parser  # noqa: E402  (benchmarks/common.py)


def main():
    parser = simulated_parser(__doc__.splitlines()[0], "ensemble compared with the bound")
    parser.add_argument("--networks", nargs="+", default=["slides", "paper_photometry"])
    args = parser.parse_args()
    survey_dir, wave, flux, error, table = read_simulated(args)
    train, test = (np.flatnonzero(np.asarray(table["split"]) == s) for s in ("train", "test"))
    ensembles = {n: Ensemble.load(args.products_dir / PRODUCT_FILES["models"] / n, grid=wave) for n in args.networks}
    if args.network not in ensembles:
        raise SystemExit(f"--network {args.network} is not among --networks {args.networks}")
    y = label_array(table, LABELS)
    truth = survey.read_truth(survey_dir, table[test])
    catalogue = read_rave_catalogue([survey_dir / FILES["catalogue"]])

    pred, _ = validation.network_predictions(ensembles, flux[test], error[test], table[test])
    peer_models = {}
    peers, seconds = validation.fit_peers(flux, error, y, train, test, models=peer_models)
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

    decor, decor_truth, decor_methods = prior.decorrelated_predictions(
        ensembles, peer_models, survey_dir, np.unique(table["apogee_id"][test]),
        args.products_dir / PRODUCT_FILES["decorrelated_cube"], catalogue)
    rows, which = prior.report_rows(decor_truth["snr"])
    slopes = prior.slope_table(decor_methods, decor_truth, rows=rows)
    print(f"\ndecorrelated spectra of {len(decor)} test stars, {which}: slope of estimate against truth at "
          "fixed [M/H] (1 = reads the spectrum, 0 = returns the prior)")
    prior.wide(slopes).pprint_all()
    print("\nrobust scatter against the new truth (K, dex)")
    prior.wide(slopes, "scatter").pprint_all()
    print("\nscatter / Cramér–Rao bound of the same spectra (robust σ of residual / bound, nine labels unknown)")
    prior.wide(slopes, "ratio").pprint_all()
    alpha_slope = prior.entry(slopes, f"CNN {args.network}", "alpha_m")

    thick, n_thick = validation.giants_on_side(p, truth, "thick")
    thin, n_thin = validation.giants_on_side(p, truth, "thin")
    print(f"\ntest set, giants with SNR > 80 (true labels): CNN {args.network} puts {thick:.1%} of the {n_thick} "
          f"true thick-disc spectra on the thick side, {thin:.1%} of the {n_thin} thin-disc ones on the thin side")
    print(f"worst_crlb_ratio_snr_ge_50={worst9:.2f} alpha_slope={alpha_slope:.2f} thick_on_side={thick:.3f}")


if __name__ == "__main__":
    main()
