# ---
# jupyter:
#   jupytext:
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 06 — How good is it really? Validation against APOGEE, the truth, the bound and the peers
#
# **Overview.** The test set (10 % of the cross-match stars, never seen in training or early
# stopping) gives the networks' accuracy against the APOGEE labels. For a simulated survey we
# also know the truth, and the simulation's Fisher information gives the **Cramér–Rao bound**:
# the smallest scatter any unbiased method could reach from these spectra. We then look at the
# high-resolution benchmark stars, residual trends with SNR, Teff and [M/H], the precision from
# repeat observations, whether the predicted uncertainties are calibrated, and a single table
# that puts the networks beside the methods an astronomer would use instead (ridge regression,
# PCA + ridge, k nearest neighbours, The Cannon of {cite:t}`2015ApJ...808...16N`), the RAVE pipeline and the paper's own
# published test residuals. A test the training labels' correlations cannot pass follows: the
# test stars' spectra re-simulated with [α/M] and the abundances shuffled among the stars, on
# which a method that reads the lines keeps up and one that reads the prior does not. Finally,
# real spectra of known stars go through the networks that were trained on simulated spectra:
# the domain shift, shown as it is, and whether the networks' out-of-domain check sees it.
#
# **Learning goals.** After this notebook you will be able to:
#
# * measure a network on a held-out test set by bias, robust scatter and outlier fraction,
#   against APOGEE and, for a simulated survey, against the truth;
# * use the Cramér–Rao bound to ask how close a method comes to the best possible precision,
#   and explain how a network can beat the bound with all labels unknown;
# * check residual trends, the precision from repeat observations and whether the predicted
#   uncertainties are calibrated;
# * compare the CNN with simpler methods, the RAVE pipeline and the paper's published test
#   residuals in one table;
# * tell a method that reads a label from the spectrum from one that returns what its training
#   labels' correlations expect (the prior), by the slope at fixed [M/H] on a decorrelated sample;
# * recognise the domain shift when networks trained on simulated spectra meet real ones, and
#   read a spectrum's out-of-domain score against the threshold set on the validation set.
#
# **Run time** (on 2 cores): smoke profile about 15 s; full profile about 50 s.
#
# **Prerequisites.** Notebook 02 (`training_set.fits`, `spectra_cube.fits`) and notebook 04
# (the ensembles in `models/`); the RAVE catalogue; for a simulated survey, its `truth.fits`
# and `benchmark_highres.fits`.

# %% [markdown]
# ## Imports
#
# NumPy, Matplotlib, seaborn, Astropy tables, and the validation tools, metrics and saved
# ensembles of `ravecnn_utils`; TensorFlow's C++ start-up messages are silenced before it is
# imported.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # silence TensorFlow's C++ start-up logs

from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns
from astropy.table import Table, vstack

from ravecnn_utils import metrics, plots, plots_validation, prior, survey, validation
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.ensemble import Ensemble
from ravecnn_utils.labels import CORE_LABELS, LABELS, LATEX, TEXT, UNITS, axis_label
from ravecnn_utils.paths import PRODUCT_FILES
from ravecnn_utils.simulation import realism
from ravecnn_utils.survey import FILES
from ravecnn_utils.tables import readable
from ravecnn_utils.trainingset import label_array, read_training_set

sns.set_theme(context="notebook", style="ticks")

# %% [markdown]
# The parameters: the data, the networks, the peers and the sizes of the samples. Papermill
# replaces them when the book is built; the book's page *Rerun with your own parameters* lists
# them all.

# %% tags=["parameters"]
# Quick run: the smoke values are in notebooks/profiles.yml; run with: python -m ravecnn_utils.book --profile smoke --only 06_validation
products_dir = "../data/products"           # training_set.fits, spectra_cube.fits, models/ (notebooks 02, 04)
survey_dir = "../data/sim/full"             # the simulated survey: truth.fits, benchmark_highres.fits
rave_dir = None                             # folder with the RAVE catalogue(s); None: survey_dir
rave_catalogue = None                       # RAVE DR6 table file(s) in rave_dir, joined on rave_obs_id; None: the simulated survey catalogue
benchmark_path = None                       # high-resolution labels (id_2mass, teff, logg, m_h, …);
                                            #   None: benchmark_highres.fits in survey_dir, if there
networks = ["slides", "paper_photometry"]   # ensembles of notebook 04 to validate
main_network = "paper_photometry"           # the one shown in the detailed figures
peers = ["mean", "ridge", "pca_ridge", "knn", "cannon"]  # baselines.BASELINES trained on the same split
snr_edges = [10, 20, 30, 50, 80, 1000]      # RAVE SNR bins (Cramér–Rao comparison, trends)
n_repeat_stars = 2000                       # stars with repeat observations used for the precision
n_real = 46                                 # real spectra of known stars pushed through the networks
seed = 1                                    # draws the stars of the repeat-pair sample

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "06_validation")

# %% [markdown]
# ## 1. The test set and the networks' predictions
#
# Read the test set, load the ensembles of notebook 04 and predict the test spectra with each;
# the table lists the networks.

# %%
products = Path(products_dir)
wave, flux, error, table = read_training_set(products / PRODUCT_FILES["training_set"])
source = table.meta["provenance"].get("source", "unknown data")
simulated = table.meta["provenance"].get("data_source") == "sim"
parts = {name: np.flatnonzero(np.asarray(table["split"]) == name) for name in ("train", "test")}
test = table[parts["test"]]
apogee = label_array(table, LABELS, parts["test"])
apogee_err = label_array(table, [f"{n}_err" for n in LABELS], parts["test"])
print(f"This run uses: {source}")
print(f"test set: {len(test)} spectra of {len(np.unique(test['apogee_id']))} stars")
glued.glue_all(n_test=glued.count(len(test)), n_test_stars=glued.count(len(np.unique(test["apogee_id"]))),
               main_network=main_network)

ensembles = {name: Ensemble.load(products / PRODUCT_FILES["models"] / name, grid=wave) for name in networks}
if main_network not in ensembles:
    raise ValueError(f"main_network={main_network!r} is not among networks={networks}")
pred, sigma = validation.network_predictions(ensembles, flux[parts["test"]], error[parts["test"]], test)
main_labels = ensembles[main_network].labels
readable(Table({"network": list(ensembles), "members": [len(e) for e in ensembles.values()],
                "labels": [", ".join(e.labels) for e in ensembles.values()]}))

# %% [markdown]
# ## 2. Residuals against APOGEE and against the truth
#
# Bias = median residual, scatter = robust σ (1.4826 × median absolute deviation), outlier
# fraction = residuals more than 3 robust σ from the bias (0.3 % for a Gaussian). For a
# simulated survey the APOGEE labels are themselves noisy draws around the truth, so the
# scatter against the truth is the network's own error.

# %%
truth = None
if simulated:
    truth = survey.read_truth(survey_dir, test)
tables = []
for name in ensembles:
    for ref_name, ref in (("APOGEE", apogee), ("truth", None if truth is None else truth["labels"])):
        if ref is None:
            continue
        t = metrics.residual_table(pred[name], ref, LABELS, what="network − reference")
        t.add_columns([name, ref_name], names=["network", "reference"], indexes=[0, 0])
        tables.append(t[t["spectra"] > 0])
core_main = [LABELS.index(n) for n in CORE_LABELS if n in main_labels]


def core_scatter(reference):
    """The main network's robust scatter against ``reference`` for its core labels, as text."""
    diff = pred[main_network][:, core_main] - reference[:, core_main]
    return glued.labelled({LABELS[j]: metrics.bias_and_scatter(diff[:, k])[1] for k, j in enumerate(core_main)})


glued.glue_all(scatter_apogee=core_scatter(apogee),
               scatter_truth="no truth to compare with (real data)" if truth is None else core_scatter(truth["labels"]))
readable(vstack(tables))

# %% [markdown]
# The main network against APOGEE, label by label, coloured by the RAVE SNR; each panel's
# title gives the bias ± scatter and the number of spectra.

# %%
shown = [LABELS.index(n) for n in main_labels]
fig = plots_validation.one_to_one_grid(apogee[:, shown], pred[main_network][:, shown], main_labels,
                                       test["snr_med_sparv"], "APOGEE")
plots.caption(fig, f"{main_network} on the test set against APOGEE, coloured by the RAVE SNR; {source}.")
plt.show()

# %% [markdown]
# ## 3. The Cramér–Rao bound: how close to the best possible?
#
# For every observation of a cross-match star (the test set's stars), `truth.fits` holds the
# Fisher information of its nine labels (from the forward model's Jacobian and the observation's
# noise). Its inverse gives the
# Cramér–Rao bound σ_min of each label with **all nine labels unknown**; inverting the 4 × 4
# block of Teff, log g, [M/H], [α/M] gives the bound when the five abundances are **known**.
# The figure draws each test spectrum's residual (network − truth) against its SNR and, over
# the same points, ± the networks' robust scatter and ± the RMS of the bounds in each SNR bin;
# the table gives the ratio star by star: the robust σ of (network − truth) / bound, which
# is 1 for a method that reaches every star's bound.
#
# A network can beat the all-unknown bound: it is not unbiased, it has learnt the training
# set's label distribution (a prior). In the simulation the abundances follow [M/H] and
# [α/M] closely, so the network effectively knows them; the 4-label bound is then the fairer
# yardstick for the core labels. Labels whose lines are weak in this wavelength range
# ([Al/Fe], [Ni/Fe]) have bounds far larger than their whole range: there the network can only
# return the training set's typical value for the star's population.

# %%
if truth is not None:
    ratio_tables, core = {}, [LABELS.index(n) for n in CORE_LABELS]
    for name in ensembles:
        r9 = validation.bound_ratios(pred[name], truth["labels"], truth["crlb"], truth["snr"], LABELS, snr_edges)
        r4 = validation.bound_ratios(pred[name][:, core], truth["labels"][:, core], truth["crlb_core"],
                                     truth["snr"], CORE_LABELS, snr_edges)
        ratio_tables[name] = (r9[r9["spectra"] > 0], r4[r4["spectra"] > 0])
    residuals = {name: pred[name][:, core] - truth["labels"][:, core] for name in ensembles}
    fig = plots_validation.residuals_and_bounds(truth["snr"], residuals, truth["crlb"][:, core], truth["crlb_core"],
                                                CORE_LABELS, snr_edges, main_network)
    plots.caption(fig, f"Test-set residuals against the truth and the Cramér–Rao bounds per SNR bin; {source}.")
    plt.show()
    worst9 = validation.worst_ratio(ratio_tables[main_network][0])
    worst4 = validation.worst_ratio(ratio_tables[main_network][1])
    print(f"{main_network}, SNR ≥ 50: worst scatter / bound = {worst9[0]:.2f} ({worst9[1]}) with all nine "
          f"labels unknown; {worst4[0]:.2f} ({worst4[1]}) with the abundances known")
    display(readable(ratio_tables[main_network][1]))  # noqa: F821 (IPython)
    top9 = validation.top_bin_ratios(ratio_tables[main_network][0], CORE_LABELS)
    top4 = validation.top_bin_ratios(ratio_tables[main_network][1], CORE_LABELS)
    below = [TEXT[n] for n, r in top9.items() if r < 1]
    measured = np.isfinite(list(top9.values())).any()
    glued.glue_all(
        bound_all=", ".join(f"{TEXT[n]} {glued.value(r)}" for n, r in top9.items()),
        bound_core=", ".join(f"{TEXT[n]} {glued.value(r)}" for n, r in top4.items()))
    if below:
        verdict = (f"Below 1 ({', '.join(below)}), the network does better than any unbiased method could with "
                   "all nine labels unknown: it has learnt the label correlations of the training set.")
    elif measured:
        verdict = "No ratio with all nine labels unknown is below 1."
    else:
        verdict = "(n/a: this test set has too few spectra per SNR bin to measure a ratio.)"
    glued.glue_sentence("bound_verdict", verdict)
else:
    print("real data: no truth, no Fisher information; the Cramér–Rao comparison needs a simulated survey")
    glued.glue_all(bound_all="n/a (real data)", bound_core="n/a (real data)")
    glued.glue_sentence("bound_verdict", "Real data have no Fisher information: this run does not measure the bound.")

# %% [markdown]
# ## 4. Residual trends with SNR, Teff and [M/H]
#
# The running bias (line) and scatter (band) of network − APOGEE in bins; a flat line at zero
# with a narrow band is what we want.

# %%
trend_x = {"RAVE SNR": (np.asarray(test["snr_med_sparv"], float), snr_edges),
           "APOGEE Teff [K]": (apogee[:, 0], np.arange(3500, 7001, 500)),
           "APOGEE [M/H] [dex]": (apogee[:, 2], np.arange(-2.0, 0.61, 0.4))}
fig, axes = plt.subplots(len(main_labels), 3, figsize=(plots.PAGE_WIDTH, 1.9 * len(main_labels)), sharex="col")
for i, label in enumerate(main_labels):
    j = LABELS.index(label)
    res = pred[main_network][:, j] - apogee[:, j]
    for k, (xname, (x, edges)) in enumerate(trend_x.items()):
        ax = axes[i, k]
        ax.scatter(x, res, s=2, color="0.6", alpha=0.4)
        b = metrics.binned_residuals(res, x, edges)
        ok = b["n"] >= 5
        ax.plot(b["x_median"][ok], b["bias"][ok], "o-", color="C3", ms=3)
        ax.fill_between(b["x_median"][ok], (b["bias"] - b["scatter"])[ok], (b["bias"] + b["scatter"])[ok],
                        color="C3", alpha=0.2)
        ax.axhline(0, color="k", lw=0.6)
        lim = 4 * np.nanmax(b["scatter"][ok]) if ok.any() else 1
        ax.set_ylim(-lim, lim)
        if k == 0:
            ax.set_ylabel(f"Δ{LATEX[label]} [{UNITS[label]}]", fontsize=8)
        if i == len(main_labels) - 1:
            ax.set_xlabel(xname)
axes[0, 0].set_xscale("log")
plots.plain_log_ticks(axes[0, 0], "x")
fig.tight_layout()
plots.caption(fig, f"{main_network} − APOGEE on the test set: bias (line) ± scatter (band) in bins; {source}.")
plt.show()

# %% [markdown]
# ## 5. The high-resolution benchmark sample
#
# Stars with independent high-resolution labels, observed by RAVE but not part of the
# cross-match. Their RAVE spectra come from the spectra cube (the best-SNR observation of
# each star). The figure shows the main network against the benchmark labels, the table
# every network's bias and scatter.

# %%
rave_dir = survey.rave_folder(survey_dir, rave_dir)
catalogue = survey.read_catalogue(rave_dir, rave_catalogue)
cube_path = products / PRODUCT_FILES["spectra_cube"]
bench_path = Path(benchmark_path) if benchmark_path else Path(survey_dir) / FILES["benchmark"]
benchmark_table = None
if bench_path.is_file():
    bench = Table.read(bench_path)
    rows = validation.best_observation(bench["id_2mass"], catalogue)
    seen = rows >= 0
    bench, rows = bench[seen], rows[seen]
    bench_labels = [n for n in LABELS if n in bench.colnames]
    bench_ref = validation.expand(np.column_stack([np.asarray(bench[n], float) for n in bench_labels]), bench_labels)
    tables, bench_pred = [], {}
    for name, ens in ensembles.items():
        mean, _ = validation.predict_observations(ens, cube_path, catalogue, rows)
        bench_pred[name] = validation.expand(mean, ens.labels)
        t = metrics.residual_table(bench_pred[name], bench_ref, LABELS, what="network − benchmark")
        t.add_column(name, name="network", index=0)
        tables.append(t[t["spectra"] > 0])
    benchmark_table = vstack(tables)
    print(f"{len(bench)} benchmark stars observed by RAVE ({bench_path.name})")
    fig = plots_validation.one_to_one_grid(bench_ref, bench_pred[main_network], LABELS,
                                           catalogue["snr_med_sparv"][rows], "benchmark")
    plots.caption(fig, f"{main_network} against the high-resolution labels of the benchmark stars (best-SNR "
                       f"observation of each), coloured by the RAVE SNR; {source}.")
    plt.show()
else:
    print(f"no benchmark file at {bench_path}: section skipped")
readable(benchmark_table)

# %% [markdown]
# ## 6. Precision from repeat observations
#
# Stars RAVE observed more than once give pairs of independent spectra of the same star: the
# scatter of the differences / √2 is the precision of one measurement, without any reference
# labels. It is compared with the median predicted (calibrated) uncertainty of the same
# observations.

# %%
rep = validation.repeat_rows(catalogue, n_repeat_stars, seed)
repeats = validation.repeat_precision(ensembles, cube_path, catalogue, rep)
print(f"{len(rep)} observations of {len(np.unique(catalogue['id_2mass'][rep]))} stars observed twice or more")
main_rep = repeats[(repeats["network"] == main_network) & np.isin(repeats["label"], CORE_LABELS)]
glued.glue("repeat_precision", ", ".join(
    f"{TEXT[r['label']]} {glued.value(r['precision from pairs'], UNITS[r['label']])} "
    f"(predicted {glued.value(r['median predicted σ'], UNITS[r['label']])})" for r in main_rep) or "n/a")
readable(repeats)

# %% [markdown]
# ## 7. Are the uncertainties calibrated?
#
# z = (network − APOGEE) / √(σ_network² + σ_APOGEE²) on the test set, with σ_network the
# ensemble spread calibrated on the validation set (notebook 04). Calibrated uncertainties
# give a z scatter of 1 and 68 % of stars within |z| < 1.

# %%
rows = []
fig, axes = plots.panel_grid(len(ensembles), 2, 3.4)
zgrid = np.linspace(-5, 5, 201)
for ax, name in zip(axes, ensembles):
    for label in ensembles[name].labels:
        j = LABELS.index(label)
        total = np.hypot(sigma[name][:, j], np.nan_to_num(apogee_err[:, j]))
        z = metrics.zscores(pred[name][:, j] - apogee[:, j], total)
        rows.append((name, label, *metrics.z_summary(z)))
        ax.hist(z[np.isfinite(z)], bins=zgrid[::8], histtype="step", density=True, label=LATEX[label],
                color=f"C{j % 10}")
    ax.plot(zgrid, np.exp(-zgrid**2 / 2) / np.sqrt(2 * np.pi), "k--", lw=1, label="N(0, 1)")
    ax.set_xlabel("z")
    ax.set_title(name)
fig.tight_layout()
plots.legend_above(fig, axes, 5)
plots.caption(fig, f"Normalised test-set residuals; {source}.")
plt.show()
calibration = Table(rows=rows, names=("network", "label", "robust σ of z", "fraction |z| < 1"))
calibration["robust σ of z"].format = calibration["fraction |z| < 1"].format = ".2f"
z_main = calibration[calibration["network"] == main_network]
glued.glue_all(z_sigma_min=glued.value(np.nanmin(z_main["robust σ of z"])),
               z_sigma_max=glued.value(np.nanmax(z_main["robust σ of z"])),
               z_within_min=glued.percent(np.nanmin(z_main["fraction |z| < 1"])),
               z_within_max=glued.percent(np.nanmax(z_main["fraction |z| < 1"])))
readable(calibration)

# %% [markdown]
# ## 8. Every method, every label
#
# The peers are trained on the same training spectra (pixels without information set to the
# continuum, inverse variances for The Cannon) with the same labels and predict the same test
# spectra. The RAVE pipeline's calibrated Teff, log g and [M/H] of the same observations come
# from the catalogue. The last row is computed from the paper's published test-set files
# {cite:p}`2020A&A...644A.168G` (`data/guiglion2020/`): the real RAVE DR6 × APOGEE DR16 test stars,
# so it is a different sample, shown for scale.

# %%
peer_models = {}  # the fitted peers, kept for section 9
peer_pred, peer_seconds = validation.fit_peers(flux, error, label_array(table, LABELS), parts["train"],
                                              parts["test"], peers, models=peer_models)
methods = {f"CNN {name}": pred[name] for name in ensembles} | peer_pred
methods["RAVE pipeline"] = validation.pipeline_labels(test, catalogue)
paper_pred, paper_sigma, paper_apogee = validation.paper_test_set()
vs_apogee = validation.method_table(methods | {"Guiglion+2020 (published, real)": (paper_pred, paper_apogee)},
                                    apogee, LABELS)
print("robust scatter of method − APOGEE on the test set (K for Teff, dex otherwise):")
best = validation.best_methods(vs_apogee, CORE_LABELS, skip=["Guiglion+2020 (published, real)"])
glued.glue("best_methods", "; ".join(f"{TEXT[n]}: {m} ({glued.value(v, UNITS[n])})" for n, (m, v) in best.items()))
readable(vs_apogee)

# %% [markdown]
# For a simulated survey, the same table against the truth; then the time each peer took to
# fit and predict.

# %%
if truth is not None:
    print("robust scatter of method − truth on the test set (K for Teff, dex otherwise):")
    display(readable(validation.method_table(methods, truth["labels"], LABELS)))  # noqa: F821 (IPython)
readable(Table({"peer": list(peer_seconds), "fit + predict [s]": np.round(list(peer_seconds.values()), 1)}))

# %% [markdown]
# ## 9. A test the prior cannot pass: the decorrelated sample
#
# The test set is drawn from the same label distribution as the training set, in which [α/M]
# falls with [M/H] and the abundances follow both. A method can then score a small scatter by
# returning, for a star's [M/H], the [α/M] its training labels expect there (the prior),
# without reading the Ca, Ti, Mg and Si lines; and a sample selected on [α/M], such as the thick
# disc, would come out wrong. For a simulated survey, the simulation wrote one more spectrum of
# every test star, at its own Teff, log g, [M/H] and [Fe/H] and at the SNR of its first
# observation, with [α/M] and each [X/Fe] shuffled among the stars: in this sample they no longer
# follow [M/H]. On it we fit, per label, estimate = a + b·truth + c·[M/H] (for [M/H] itself,
# without the last term). The **slope b** is 1 for a method that reads the label from the
# spectrum and 0 for one that returns the prior whatever the lines say; between the two, it
# reads the spectrum for that fraction and fills in the rest from [M/H]. A slope near 0 with a
# small test-set scatter (section 8) means the label is the training set's correlation, not a
# measurement. Beside it: the robust scatter against the new truth, the RMS Cramér–Rao bound of
# these very spectra (all nine labels unknown) and the ratio of the two, star by star, as in
# section 3. Teff, log g, [M/H] and [Fe/H] were not re-drawn: their slopes are a plain check. The
# numbers are for the spectra with SNR > 80 (the slides' giants) when there are enough of them,
# else for all; the line above the table says which.
#
# How high can the slope be for a method that learnt from these training labels? An ideal one
# knows their spread at fixed [M/H] (a Gaussian prior of width σ_p) and reads each spectrum at
# its Cramér–Rao bound σ (a Gaussian likelihood); its estimate, the posterior mean, has the slope
# σ_p² / (σ_p² + σ²) (`prior.prior_limited_slope`). A network near that line has learnt both
# the prior and the lines; reaching one needs training labels whose [α/M] does not follow [M/H]
# (the `flat_prior` profile asks what that gives).

# %%
decorrelated = None
if truth is not None:
    decor, decor_truth, decor_methods = prior.decorrelated_predictions(
        ensembles, peer_models, survey_dir, np.unique(test["apogee_id"]),
        products / PRODUCT_FILES["decorrelated_cube"], catalogue)
    decor_rows, which = prior.report_rows(decor_truth["snr"])
    decorrelated = prior.slope_table(decor_methods, decor_truth, rows=decor_rows)
    print(f"decorrelated spectra of {len(decor)} test stars; reported: {which}")
    print("slope of estimate against truth at fixed [M/H] (1 = reads the spectrum, 0 = returns the prior):")
    display(readable(prior.wide(decorrelated)))  # noqa: F821 (IPython)
    slopes = {m: (prior.entry(decorrelated, m, "alpha_m"), prior.entry(decorrelated, m, "alpha_m", "± slope"))
              for m in dict.fromkeys(decorrelated["method"]) if m.startswith("CNN ")}
    glued.glue_all(decor_sample=which, alpha_slopes=", ".join(
        f"{m} {glued.value(b)} ± {glued.value(e, digits=1)}" for m, (b, e) in slopes.items() if np.isfinite(b))
        or "n/a (no network gives [α/M])")
    ideal = prior.prior_limited_slope(label_array(table, LABELS, parts["train"]), decor_truth["crlb"][decor_rows])
    print("slope of an ideal estimator with the training labels' prior, reading these spectra at their bound: "
          + ", ".join(f"{TEXT[name]} {b:.2f}" for name, (b, _) in ideal.items() if np.isfinite(b)))
    glued.glue_all(alpha_slope_ideal=glued.value(ideal["alpha_m"][0]),
                   alpha_prior_spread=glued.value(ideal["alpha_m"][1], "dex"))
else:
    print("real data: no decorrelated sample (it needs a simulated survey); section skipped")
    glued.glue_all(decor_sample="no decorrelated sample (real data)", alpha_slopes="n/a (real data)",
                   alpha_slope_ideal="n/a (real data)", alpha_prior_spread="n/a")

# %% [markdown]
# The estimated [α/M] of each network against the new truth, coloured by the star's [M/H]: a
# method that reads the lines follows the diagonal; one that reads the prior draws a band sorted
# by colour, flat along the truth. Then the whole table: slope with its standard error, scatter,
# bound and their ratio, per method and label.

# %%
if decorrelated is not None:
    j = LABELS.index("alpha_m")
    cnns = [m for m, v in decor_methods.items() if m.startswith("CNN ") and np.isfinite(v[:, j]).any()]
    x, colour = decor_truth["labels"][decor_rows, j], decor_truth["labels"][decor_rows, LABELS.index("m_h")]
    if cnns:
        fig, axes = plots.panel_grid(len(cnns), 2, 3.6)
        for ax, method in zip(axes, cnns):
            y = decor_methods[method][decor_rows, j]
            points = ax.scatter(x, y, s=8, c=colour, **plots.colour_scale("m_h"))
            lims = np.nanpercentile(np.r_[x, y], [0, 100])
            ax.plot(lims, lims, color="0.3", lw=0.8)
            ax.set_title(f"{method}: slope {prior.entry(decorrelated, method, 'alpha_m'):.2f} ± "
                         f"{prior.entry(decorrelated, method, 'alpha_m', '± slope'):.2f}", fontsize=9)
            ax.set_xlabel(f"true {axis_label('alpha_m')}")
            ax.set_ylabel(f"estimated {axis_label('alpha_m')}")
        fig.colorbar(points, ax=axes[-1], label=f"true {axis_label('m_h')}")
        plots.caption(fig, f"[α/M] on the decorrelated sample ({which}); {source}.")
        plt.show()
readable(decorrelated)

# %% [markdown]
# ## 10. Real spectra through networks trained on simulated ones
#
# The real Ca II triplet spectra of `data/real_cat_spectra/` (Indo-US and Keck/DEIMOS
# libraries) are fitted with the forward model (labels and radial velocity), moved to rest,
# brought to RAVE's resolution and grid, and given to the spectra-only network. We compare the
# network's labels with the forward-model fit of the same spectrum and, for the Gaia FGK
# benchmark stars among them, with their literature labels. Any disagreement is the domain
# shift between our simulated spectra and real ones: the reason the real analysis must train
# on real RAVE spectra.

# %%
spectra_only = [name for name, ens in ensembles.items() if not ens.takes_photometry]
if spectra_only and n_real > 0:
    ens = ensembles[spectra_only[0]]
    domain = validation.domain_shift(ens, realism.read_real_spectra()[:n_real], wave)
    fig, axes = plt.subplots(1, len(validation.DOMAIN_LABELS), figsize=(plots.PAGE_WIDTH, 3.2))
    for ax, label in zip(axes, validation.DOMAIN_LABELS):
        ax.scatter(domain[f"{label} fit"], domain[f"{label} network"], s=14, label="network vs forward-model fit")
        if f"{label} literature" in domain.colnames:
            has = np.isfinite(domain[f"{label} literature"])
            ax.scatter(domain[f"{label} literature"][has], domain[f"{label} network"][has], marker="*", s=120,
                       color="C3", label="network vs literature (Gaia FGK benchmarks)")
        lims = np.nanpercentile(np.r_[domain[f"{label} fit"], domain[f"{label} network"]], [0, 100])
        ax.plot(lims, lims, color="0.4", lw=0.8)
        ax.set_xlabel(f"reference {axis_label(label)}")
        ax.set_ylabel(f"network {axis_label(label)}")
    fig.tight_layout()
    plots.legend_above(fig, axes, 2)
    plots.caption(fig, f"REAL spectra ({len(domain)} stars) through the {spectra_only[0]} network "
                       f"trained on: {source}.")
    plt.show()
    display(readable(domain[[c for c in domain.colnames if not c.endswith(" sigma")]]))  # noqa: F821 (IPython); σ: benchmarks/realism.py
else:
    print("no spectra-only network among networks (or n_real = 0): section skipped")

# %% [markdown]
# ### Would the training survey have produced these spectra?
#
# The network answers for any spectrum, foreign or not. Its out-of-domain check
# (`ravecnn_utils.novelty`, set up in notebook 04) asks whether the spectrum looks to the
# members like their training spectra: `ood_score` is the squared Mahalanobis distance of the
# spectrum's last-hidden-layer activations from those of the training spectra, per activation,
# averaged over the members. The histogram is the score of the validation spectra (simulated,
# like the training ones); the red line is the threshold set on them for the stated false-alarm
# rate; the ticks in the strip above are the real spectra, stars mark those with literature
# labels. A real spectrum right of the line is one the simulated survey could not have produced,
# in the eyes of the network — its labels are flagged `out_of_domain` in a catalogue. One left
# of the line is not proven in domain: the check sees only what the network's features see.

# %%
if spectra_only and n_real > 0 and ens.novelty is not None:
    nov = ens.novelty
    val_rows = np.asarray(table["split"]) == "validation"
    _, _, val_score = ens.predict(ens.inputs(flux[val_rows], error[val_rows]), scores=True)
    real_score = np.asarray(domain["ood_score"], float)
    known = np.isfinite(np.asarray(domain["teff literature"], float))
    fig, (top, ax) = plt.subplots(2, 1, figsize=(7, 4.4), sharex=True, gridspec_kw={"height_ratios": [1, 3]})
    every = np.r_[val_score, real_score, nov.threshold]
    bins = np.geomspace(every.min() / 1.2, every.max() * 1.2, 40)
    ax.hist(val_score, bins=bins, color="0.7", label=f"validation spectra ({val_rows.sum()}, simulated)")
    top.axvline(nov.threshold, color="C3", lw=1.5)
    ax.axvline(nov.threshold, color="C3", lw=1.5,
               label=f"threshold {nov.threshold:.3g} (false-alarm rate {nov.false_alarm_rate:.0%})")
    top.plot(real_score, np.zeros(real_score.size), "|", ms=18, mew=1.5, color="C0",
             label=f"real spectra ({real_score.size})")
    if known.any():
        top.plot(real_score[known], np.zeros(known.sum()), "*", ms=13, color="C1", label="real, with literature labels")
    for k, (name, x) in enumerate(zip(domain["star"][known], real_score[known])):
        top.annotate(str(name), (x, 0), xytext=(0, 12 + 10 * (k % 2)), textcoords="offset points", ha="center",
                     fontsize=7)
    top.set_ylim(-1, 2.5)
    top.set_yticks([])
    top.legend(fontsize=8, loc="center left", bbox_to_anchor=(1.01, 0.5))
    ax.set_xscale("log")
    plots.plain_log_ticks(ax, "x")
    ax.set_xlabel("ood_score (dimensionless)")
    ax.set_ylabel("validation spectra")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    plots.caption(fig, f"Out-of-domain score of the {spectra_only[0]} network: validation spectra ({source}) "
                       "and REAL spectra.")
    plt.show()
    flagged = np.asarray(domain["out_of_domain"], bool)
    print(f"threshold {nov.threshold:.3g}, set on {nov.n_validation} validation spectra for a false-alarm rate "
          f"of {nov.false_alarm_rate:.0%}; validation spectra above it: {np.mean(val_score > nov.threshold):.1%}")
    glued.glue("real_ood", f"the out-of-domain check of {spectra_only[0]} flags {glued.count(flagged.sum())} of the "
               f"{glued.count(flagged.size)} real spectra (its threshold set for a false-alarm rate of "
               f"{glued.percent(nov.false_alarm_rate)})")
    print(f"real spectra out of domain: {flagged.sum()} of {flagged.size}; their median ood_score "
          f"{np.median(real_score):.3g}, that of the validation spectra {np.median(val_score):.3g}")
    for row in domain[known]:
        print(f"{row['star']} (literature labels; the network's are in the table above): ood_score "
              f"{row['ood_score']:.3g} -> {'out of domain' if row['out_of_domain'] else 'not flagged'}")
else:
    glued.glue("real_ood", "this run has no out-of-domain check of real spectra (no spectra-only network with "
                           "out-of-domain statistics, or n_real = 0)")
    if spectra_only and n_real > 0:
        print(f"the {spectra_only[0]} ensemble has no out-of-domain statistics (saved by older code): rerun notebook 04")

# %% [markdown]
# ## Summary
#
# * On the {glue:text}`n_test` test spectra ({glue:text}`n_test_stars` stars), the robust
#   scatter of {glue:text}`main_network` is {glue:text}`scatter_apogee` against APOGEE, and
#   {glue:text}`scatter_truth` against the truth (section 2). Of every method of section 8
#   (the published network aside: other stars), the smallest scatter against APOGEE is
#   {glue:text}`best_methods`.
# * Section 9 asks whether each label is read from the spectrum or from the training labels'
#   correlations: on the decorrelated sample a slope near one means the former, near zero
#   the latter. For [α/M] the networks' slopes are {glue:text}`alpha_slopes`, measured on
#   {glue:text}`decor_sample`. An ideal estimator that knew the training labels' prior
#   ([α/M] spread {glue:text}`alpha_prior_spread` at fixed [M/H]) and read the lines at the
#   Cramér–Rao bound would reach {glue:text}`alpha_slope_ideal`.
# * Section 3 measures how close the networks come to the Cramér–Rao bound: in the highest SNR
#   bin, {glue:text}`main_network`'s scatter / bound is {glue:text}`bound_all` with all nine
#   labels unknown, and {glue:text}`bound_core` with the abundances known.
#   {glue:md}`bound_verdict`
# * The repeat pairs (section 6) give a precision of {glue:text}`repeat_precision`; the
#   robust σ of z (section 7) lies between {glue:text}`z_sigma_min` and {glue:text}`z_sigma_max`
#   (one when the uncertainties are calibrated), with {glue:text}`z_within_min` to
#   {glue:text}`z_within_max` of the spectra within |z| < 1. On real spectra (section 10),
#   {glue:text}`real_ood`.
#
# ## What's next
#
# Notebook 07 runs the calibrated ensemble over the whole survey and looks at the giants.
#
# ## Resources and references
#
# * The published network and its test residuals (`data/guiglion2020/`):
#   {cite:t}`2020A&A...644A.168G`.
# * The peers: The Cannon {cite:p}`2015ApJ...808...16N`, and scikit-learn's
#   [Ridge](https://scikit-learn.org/stable/modules/generated/sklearn.linear_model.Ridge.html),
#   [PCA](https://scikit-learn.org/stable/modules/generated/sklearn.decomposition.PCA.html) and
#   [KNeighborsRegressor](https://scikit-learn.org/stable/modules/generated/sklearn.neighbors.KNeighborsRegressor.html);
#   the RAVE pipeline's labels are those of RAVE DR6 {cite:p}`2020AJ....160...83S`.
# * The reference labels: APOGEE {cite:p}`2017AJ....154...94M` with ASPCAP
#   {cite:p}`2016AJ....151..144G`.
# * The real spectra of section 10: the Indo-US library {cite:p}`2004ApJS..152..251V`, the
#   Keck/DEIMOS templates {cite:p}`2012MNRAS.426.1475U` and the Gaia FGK benchmark stars
#   {cite:p}`2024A&A...682A.145S`.
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
