"""Benchmark: which way of training makes the network read [α/M] from the lines (issue 16, point 2)?

    python benchmarks/variants.py [--profile full] [--products-dir data/products]
                                  [--survey-dir data/sim/<profile>] [--network paper_photometry]
                                  [--members 5] [--epochs 100] [--patience 10] [--variants ...]

Needs notebook 02 run on a simulated survey (the training set and its truth). Trains ONE network
(--network, default the one notebook 07 uses) once per variant, same seeds, same split, and
judges each on the test split and on the decorrelated spectra of the test stars (``prior``):

* ``baseline``: the book's recipe (batch 64, patience 10, at most --epochs epochs, the worst
  --drop-worst of the members dropped);
* ``decorrelated``: training stars weighted so that [α/M] and each [X/Fe] are less correlated
  with [M/H] (``augment.decorrelating_weights``; with real APOGEE stars this re-weights the stars
  that exist and cannot create missing combinations);
* ``decorrelated_alpha``: the same for [α/M] alone (milder weights: more effective stars);
* ``noise_per_epoch``: fresh Gaussian noise at each spectrum's own error level every epoch
  (``augment.NoisyInputs``; validation spectra fixed);
* ``alpha_weighted``: [α/M] weighted --alpha-weight times in the loss (``model.WeightedMaskedMSE``);
* ``paper_schedule``: the paper's batch 16 and patience 40 (``train.PAPER_SCHEDULE``), but at most
  --paper-epochs epochs, not its 1,000 (the table says so);
* ``more_members``: --more-members members instead of --members;
* ``combined``: decorrelated + noise_per_epoch + alpha_weighted.

One table, one row per variant: the [α/M] slope at fixed [M/H] on the decorrelated sample (SNR > 80
when at least ``prior.MIN_STARS`` spectra have it, else all) with its standard error, the robust
scatter of [α/M] and Teff against the truth on the test split, the worst scatter / Cramér–Rao
ratio at SNR ≥ 50 (nine labels unknown), and the fraction of true thick-disc giants (true labels,
SNR > 80) placed on the thick side. The last line is ``best_variant=<name> alpha_slope=<s> …``:
the variant with the largest slope whose two scatters stay within 5 % of the baseline's
(``validation.best_variant``). Nothing is written but a temporary spectra cube.
"""

import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from astropy.table import Table  # noqa: E402

from ravecnn_utils import prior, survey, train, validation  # noqa: E402
from ravecnn_utils.labels import LABELS  # noqa: E402
from ravecnn_utils.metrics import bias_and_scatter  # noqa: E402
from ravecnn_utils.rave import read_rave_catalogue  # noqa: E402
from ravecnn_utils.survey import FILES  # noqa: E402

from common import read_simulated, simulated_parser  # noqa: E402  (benchmarks/common.py)


def variant_settings(args):
    """{variant: (train_network keyword arguments, note)} for the command line ``args``."""
    base = {"n_models": args.members, "drop_worst": args.drop_worst, "epochs": args.epochs,
            "patience": args.patience, "batch_size": args.batch_size}
    paper = base | train.PAPER_SCHEDULE | {"epochs": min(args.paper_epochs, train.PAPER_SCHEDULE["epochs"])}
    alpha = {"label_weights": {"alpha_m": args.alpha_weight}}
    settings = {
        "baseline": (base, "the book's recipe"),
        "decorrelated": (base | {"decorrelate": True}, "stars weighted: [α/M], [X/Fe] ⟂ [M/H]"),
        "decorrelated_alpha": (base | {"decorrelate": ["alpha_m"]}, "stars weighted: [α/M] ⟂ [M/H]"),
        "noise_per_epoch": (base | {"noise_per_epoch": True}, "fresh noise each epoch"),
        "alpha_weighted": (base | alpha, f"[α/M] × {args.alpha_weight:g} in the loss"),
        "paper_schedule": (paper, f"batch 16, patience 40, epochs capped at {paper['epochs']} (paper: 1000)"),
        "more_members": (base | {"n_models": args.more_members}, f"{args.more_members} members"),
        "combined": (base | {"decorrelate": True, "noise_per_epoch": True} | alpha,
                     "decorrelated + noise_per_epoch + alpha_weighted"),
    }
    unknown = sorted(set(args.variants) - set(settings))
    if unknown or "baseline" not in args.variants:
        raise SystemExit(f"--variants {args.variants}: unknown {unknown} or no baseline; known: {list(settings)}")
    return {name: settings[name] for name in args.variants}


def main():
    parser = simulated_parser(__doc__.splitlines()[0], "the network trained in every variant")
    parser.add_argument("--members", type=int, default=5, help="ensemble members (default 5, as notebook 04)")
    parser.add_argument("--more-members", type=int, default=None, help="members of more_members (default 2 × --members)")
    parser.add_argument("--drop-worst", type=float, default=0.2, help="fraction of members dropped (notebook 04's)")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--patience", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--paper-epochs", type=int, default=300, help="cap on paper_schedule's 1000 epochs")
    parser.add_argument("--alpha-weight", type=float, default=4.0, help="weight of [α/M] in alpha_weighted")
    parser.add_argument("--seed", type=int, default=42, help="member k uses seed + k (notebook 04's default)")
    parser.add_argument("--processes", type=int, default=2, help="members trained at once")
    parser.add_argument("--variants", nargs="+", default=["baseline", "decorrelated", "decorrelated_alpha",
                                                          "noise_per_epoch", "alpha_weighted", "paper_schedule",
                                                          "more_members", "combined"])
    args = parser.parse_args()
    args.more_members = args.more_members or 2 * args.members
    settings = variant_settings(args)
    survey_dir, wave, flux, error, table = read_simulated(args)
    test = np.flatnonzero(np.asarray(table["split"]) == "test")
    truth = survey.read_truth(survey_dir, table[test])
    catalogue = read_rave_catalogue([survey_dir / FILES["catalogue"]])
    print(f"{table.meta['provenance'].get('source')}: network {args.network}, "
          f"{np.sum(np.asarray(table['split']) == 'train')} training, {len(test)} test spectra")

    ensembles, seconds = {}, {}
    for name, (kwargs, _) in settings.items():
        print(f"\n{name}: {kwargs}")
        start = time.perf_counter()
        ensembles[name] = train.train_network(args.network, flux, error, table, wave, seed=args.seed,
                                              processes=args.processes, **kwargs)
        seconds[name] = time.perf_counter() - start

    pred, _ = validation.network_predictions(ensembles, flux[test], error[test], table[test])
    with tempfile.TemporaryDirectory(prefix="ravecnn-variants-") as scratch:
        _, decor_truth, decor = prior.decorrelated_predictions(
            ensembles, {}, survey_dir, np.unique(table["apogee_id"][test]), Path(scratch) / "decorrelated.fits",
            catalogue)
    rows, which = prior.report_rows(decor_truth["snr"])
    slopes = prior.slope_table(decor, decor_truth, labels=("alpha_m",), rows=rows)

    out = []
    for name, (kwargs, note) in settings.items():
        p, ens = pred[name], ensembles[name]
        scatter = {label: bias_and_scatter(p[:, LABELS.index(label)] - truth["labels"][:, LABELS.index(label)])[1]
                   for label in ("alpha_m", "teff")}
        ratios = validation.bound_ratios(p, truth["labels"], truth["crlb"], truth["snr"], LABELS)
        out.append((name, len(ens), int(np.median(ens.metadata["best_epochs"])),
                    prior.entry(slopes, f"CNN {name}", "alpha_m"), prior.entry(slopes, f"CNN {name}", "alpha_m", "± slope"),
                    scatter["alpha_m"], scatter["teff"], validation.worst_ratio(ratios)[0],
                    validation.giants_on_side(p, truth, "thick")[0], seconds[name], note
                    + (f" (effective stars {ens.metadata['effective_train_fraction']:.0%})"
                       if "effective_train_fraction" in ens.metadata else "")))
    table = Table(rows=out, names=("variant", "members", "best epoch", "alpha slope", "± slope", "alpha scatter",
                                   "teff scatter", "worst crlb ratio", "thick on side", "train s", "note"))
    for col, fmt in (("alpha slope", ".3f"), ("± slope", ".3f"), ("alpha scatter", ".4f"), ("teff scatter", ".1f"),
                     ("worst crlb ratio", ".2f"), ("thick on side", ".3f"), ("train s", ".0f")):
        table[col].format = fmt
    print(f"\n{args.network}, one row per variant. alpha slope: [α/M] estimate against truth at fixed [M/H] on the "
          f"decorrelated spectra of the test stars, {which} (1 = reads the lines, 0 = the prior); scatters: robust σ "
          "against the truth on the test split ([α/M] dex, Teff K); worst crlb ratio: SNR ≥ 50, nine labels unknown; "
          "thick on side: true thick-disc giants (SNR > 80) on the thick side (nan: none)")
    table.pprint_all()
    best = table[list(table["variant"]).index(validation.best_variant(table))]
    baseline = table[list(table["variant"]).index("baseline")]
    print(f"best_variant={best['variant']} alpha_slope={best['alpha slope']:.3f} "
          f"alpha_scatter={best['alpha scatter']:.4f} teff_scatter={best['teff scatter']:.1f} "
          f"worst_crlb_ratio={best['worst crlb ratio']:.2f} thick_on_side={best['thick on side']:.3f} "
          f"baseline_alpha_slope={baseline['alpha slope']:.3f}")


if __name__ == "__main__":
    main()
