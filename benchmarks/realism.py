"""Benchmark: do the simulated spectra respond to their labels as real stars' spectra do?

    python benchmarks/realism.py [--products-dir data/products] [--networks slides paper]

For each labelled real star of ``data/real_cat_spectra`` (Gaia FGK benchmark stars): its
literature labels, the least-squares fit of the survey's model of spectra (the MOOG emulator; Teff,
log g, [Fe/H], radial velocity, linear continuum, from a giant's and a dwarf's start) and, when
notebook 04 has trained them, each spectra-only ensemble's prediction ± its calibrated
uncertainty σ, z = (network − literature) / σ, and whether the spectrum is flagged out of
domain. Then the RMS flux residual over all real spectra, at the best fit and (labelled stars) at
the literature labels, for the emulator and for the hand-built model it replaced. Nothing is tuned on the real spectra. The last line is
``realism_worst_logg_dex=<x> realism_worst_teff_K=<y> cnn_worst_teff_K=<z>`` (largest |fit −
literature| over the labelled stars; ``cnn_worst_teff_K`` over the ensembles found, nan if none).
"""

import argparse
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402

from ravecnn_utils.cube import common_wavelengths  # noqa: E402
from ravecnn_utils.ensemble import Ensemble  # noqa: E402
from ravecnn_utils.paths import PRODUCT_FILES, REPO_ROOT  # noqa: E402
from ravecnn_utils.simulation import realism  # noqa: E402
from ravecnn_utils.simulation.emulator import Emulator  # noqa: E402
from ravecnn_utils.simulation.forward import ForwardModel  # noqa: E402
from ravecnn_utils.validation import domain_shift  # noqa: E402


def fits(model, spectra, literature):
    """Best fit of every spectrum, and the RMS at the literature labels of the labelled ones."""
    table = realism.fit_all(model, spectra)
    at_literature = realism.benchmark_comparison(model, spectra, literature)
    return table, at_literature


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products-dir", type=Path, default=REPO_ROOT / "data" / "products")
    parser.add_argument("--networks", nargs="+", default=["slides", "paper"])
    args = parser.parse_args()
    spectra, literature = realism.read_real_spectra(), realism.read_real_labels()
    models = {"MOOG emulator": Emulator(resolution=realism.COMMON_RESOLUTION),
              "hand-built model": ForwardModel(resolution=realism.COMMON_RESOLUTION)}
    results = {name: fits(model, spectra, literature) for name, model in models.items()}

    print("Labelled real stars: literature labels and the fit of each model (Teff K, log g, [Fe/H] dex)")
    print(f"{'star':10s} {'model':18s} {'Teff':>6s} {'log g':>6s} {'[Fe/H]':>7s} {'RMS':>6s}")
    worst = {"teff": 0.0, "logg": 0.0}
    for lit in literature:
        print(f"{lit['name']:10s} {'literature':18s} {lit['teff_K']:6.0f} {lit['logg_dex']:6.2f} {lit['feh_dex']:+7.2f}")
        for name, (table, at_lit) in results.items():
            row = table[table["name"] == lit["name"]][0]
            rms_lit = at_lit[at_lit["name"] == lit["name"]][0]["rms"]
            print(f"{'':10s} {name:18s} {row['teff']:6.0f} {row['logg']:6.2f} {row['m_h']:+7.2f} {row['rms']:6.3f}"
                  f"   (RMS at the literature labels {rms_lit:.3f})")
            if name == "MOOG emulator":
                worst["teff"] = max(worst["teff"], abs(row["teff"] - lit["teff_K"]))
                worst["logg"] = max(worst["logg"], abs(row["logg"] - lit["logg_dex"]))

    cnn_worst = np.nan
    labelled = np.isin(spectra["name"], literature["name"])
    for network in args.networks:
        folder = args.products_dir / PRODUCT_FILES["models"] / network
        if not folder.is_dir():
            print(f"\n{network}: no trained ensemble in {folder} (notebook 04 trains the networks of its "
                  f"`networks` parameter: `make rerun NOTEBOOK=04_training PARAMS='-p networks \"[{network}]\"'`)")
            continue
        ens = Ensemble.load(folder, grid=common_wavelengths())
        table = domain_shift(ens, spectra[labelled], common_wavelengths(), literature)
        print(f"\n{network}: the network on the labelled real spectra")
        for row in table:
            row_lit = literature[literature["name"] == row["star"]][0]
            z = {k: (row[f"{k} network"] - row[f"{k} literature"]) / row[f"{k} sigma"] for k in ("teff", "logg")}
            z["m_h"] = (row["m_h network"] - row_lit["feh_dex"]) / row["m_h sigma"]
            print(f"  {row['star']:10s} Teff {row['teff network']:6.0f} ± {row['teff sigma']:3.0f} "
                  f"(literature {row['teff literature']:.0f}, z {z['teff']:+.1f})  "
                  f"log g {row['logg network']:5.2f} ± {row['logg sigma']:.2f} "
                  f"(literature {row['logg literature']:.2f}, z {z['logg']:+.1f})  "
                  f"[M/H] {row['m_h network']:+.2f} ± {row['m_h sigma']:.2f} "
                  f"(literature [Fe/H] {row_lit['feh_dex']:+.2f}, z {z['m_h']:+.1f})  "
                  f"ood_score {row['ood_score']:.3g}{'  FLAGGED out of domain' if row['out_of_domain'] else ''}")
            error = abs(row["teff network"] - row["teff literature"])
            cnn_worst = error if np.isnan(cnn_worst) else max(cnn_worst, error)

    print("\nRMS flux residual (R = 4,000) over every real spectrum")
    for name, (table, at_lit) in results.items():
        print(f"  {name:18s} best fit: median {np.median(table['rms']):.4f} "
              f"(16–84 %: {np.percentile(table['rms'], 16):.4f}–{np.percentile(table['rms'], 84):.4f}, "
              f"{len(table)} spectra); at the literature labels (labelled stars): "
              + ", ".join(f"{r['name']} {r['rms']:.4f}" for r in at_lit))
    print(f"realism_worst_logg_dex={worst['logg']:.2f} realism_worst_teff_K={worst['teff']:.0f} "
          f"cnn_worst_teff_K={cnn_worst:.0f}")


if __name__ == "__main__":
    main()
