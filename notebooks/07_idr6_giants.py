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
# # 07 — The whole survey, and the iDR6 giants
#
# **Overview.** The point of the network is the whole survey: the paper parametrised 420,165
# RAVE spectra, and the slides show 4,600 giants of the internal DR6 with SNR > 80 in the
# [α/M]–[M/H] plane, where the thin and thick discs separate. Here the calibrated ensemble
# streams every spectrum of the spectra cube, chunk by chunk, into one FITS catalogue (labels,
# calibrated uncertainties, member spread, SNR and flags); we then select the giants with
# SNR > 80 and look at their Kiel diagram, their chemistry and where they are on the sky. For a
# simulated survey, the true populations say how often a giant lands on the right side of the
# thin/thick disc boundary.
#
# **Learning goals.** After this notebook you will be able to:
#
# * stream a whole survey through a calibrated ensemble, chunk by chunk, into one FITS
#   catalogue that an interrupted run resumes, on one machine or a Dask cluster;
# * read the catalogue's columns and flags;
# * select giants by SNR, log g and Teff, and look at their Kiel diagram, their [α/M]–[M/H]
#   plane and where they are on the sky;
# * for a simulated survey, count how often the network puts a giant on the same side of the
#   thin/thick disc boundary as its true labels and its true population.
#
# **Run time** (on 2 cores): smoke profile about 10 s; full profile about 15 s; `rave` profile
# (518,387 spectra) about 40 s.
#
# **Prerequisites.** Notebook 02 (`spectra_cube.fits`), notebook 04 (the ensembles in
# `models/`), the RAVE catalogue (photometry for the paper's network). **Writes**
# `catalogue_<network>.fits` in `products_dir`.

# %% [markdown]
# ## Imports
#
# NumPy, Matplotlib, seaborn and Astropy's `Table`, and from `ravecnn_utils` the catalogue
# writer (`predict`), the disc boundary (`discs`) and the saved ensembles; TensorFlow's C++
# start-up messages are silenced before it is imported.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # silence TensorFlow's C++ start-up logs

import time
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns
from astropy.table import Table

from ravecnn_utils import costs, discs, files, plots, predict, survey
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.ensemble import Ensemble
from ravecnn_utils.labels import LATEX, axis_label
from ravecnn_utils.paths import PRODUCT_FILES
from ravecnn_utils.tables import readable

sns.set_theme(context="notebook", style="ticks")

# %% [markdown]
# The parameters: the data, the network, the chunk size, the giants' cuts and the optional Dask
# cluster. Papermill replaces them when the book is built; the book's page *Rerun with your
# own parameters* lists them all.

# %% tags=["parameters"]
# Quick run: the smoke values are in notebooks/profiles.yml; run with: python -m ravecnn_utils.book --profile smoke --only 07_idr6_giants
products_dir = "../data/products"           # spectra_cube.fits and models/ (notebooks 02, 04); the catalogue goes here
survey_dir = "../data/sim/full"             # the simulated survey (truth.fits for the population check)
rave_dir = None                             # folder with the RAVE catalogue(s); None: survey_dir
rave_catalogue = None                       # RAVE DR6 table file(s) in rave_dir, joined on rave_obs_id; None: the simulated survey catalogue
network = "paper_photometry"                # ensemble of notebook 04 that parametrises the survey
chunk = 20000                               # spectra per chunk (memory ∝ chunk, not the survey)
snr_min = 80                                # giants: spectrum SNR above this (the slides' cut)
logg_max = 3.5                              # giants: predicted log g below this (dex)
teff_max = 5500                             # giants: predicted Teff below this (K)
use_dask = False                            # True: run the chunks on a local Dask cluster
dask_workers = 2                            # workers of that cluster
scale_results = None                        # scale.json of benchmarks/scale.py for section 6 (None: how to make it)

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "07_idr6_giants")

# %% [markdown]
# ## 1. Parametrise every spectrum
#
# `predict.predict_cube` reads the memory-mapped cube `chunk` spectra at a time, so memory does
# not grow with the survey; finished chunks are kept in `<catalogue>.parts/`, so an interrupted
# run resumes, and the catalogue is written to a temporary file and renamed, so it is never
# half written. With `use_dask=True` the same chunks become tasks of a Dask cluster
# (`predict.predict_cube_dask`); on a real cluster pass its `Client`.

# %%
products = Path(products_dir)
ens_dir = products / PRODUCT_FILES["models"] / network
ens = Ensemble.load(ens_dir)
rave_dir = survey.rave_folder(survey_dir, rave_dir)
rave = survey.read_catalogue(rave_dir, rave_catalogue, columns=predict.CATALOGUE_COLUMNS)  # + ids, sky, SNR
cube = products / PRODUCT_FILES["spectra_cube"]
out = products / f"catalogue_{network}.fits"
start = time.perf_counter()
if use_dask:
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=dask_workers, threads_per_worker=1, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        predict.predict_cube_dask(ens_dir, cube, out, catalogue=rave, chunk=chunk, client=client)
else:
    predict.predict_cube(ens, cube, out, catalogue=rave, chunk=chunk)
seconds = time.perf_counter() - start
cat = Table.read(out)
manifest = survey.read_manifest(rave_dir)
simulated = manifest is not None
source = survey.describe(manifest)  # for captions: the data, never a path
print(f"This run uses: {source}, files in {rave_dir}")
print(f"{len(cat):,} spectra through {len(ens)} members of {network} in {seconds:.0f} s "
      f"({len(cat) / seconds:,.0f} spectra/s, reading and writing included) -> {out}")
glued.glue_all(n_catalogue=glued.count(len(cat)), n_members=glued.count(len(ens)), network=network,
               predict_time=glued.seconds(seconds), predict_rate=glued.count(len(cat) / seconds))

# %% [markdown]
# ## 2. The catalogue
#
# Load it with `astropy.table.Table.read("…/catalogue_<network>.fits")`. Its columns:

# %%
readable(predict.column_descriptions(ens.labels))

# %% [markdown]
# How many spectra each flag concerns (a spectrum may carry several). `out_of_domain` marks
# spectra whose `ood_score` lies above the threshold notebook 04 set on the validation spectra:
# of spectra like those, the stated false-alarm rate would be flagged (resolved only to about one
# in the number of validation spectra: in a quick run the threshold is their largest score); the
# survey holds more than the cross-match stars (dwarfs, lower SNR), so more may be.

# %%
display(readable(Table({  # noqa: F821 (IPython)
    "flag": list(predict.FLAGS), "bit": list(predict.FLAGS.values()),
    "spectra": [int(((cat["flag"] & bit) > 0).sum()) for bit in predict.FLAGS.values()],
    "fraction": np.round([((cat["flag"] & bit) > 0).mean() for bit in predict.FLAGS.values()], 3)})))
glued.glue_all(n_flagged=glued.count(np.sum(cat["flag"] > 0)), flagged=glued.percent(np.mean(cat["flag"] > 0), 1))
if ens.novelty is not None:
    print(f"out_of_domain: {np.mean((cat['flag'] & predict.FLAGS['out_of_domain']) > 0):.1%} of the spectra; "
          f"{ens.novelty.false_alarm_rate:.0%} expected of spectra like the validation ones "
          f"(threshold {ens.novelty.threshold:.3g} on {ens.novelty.n_validation} validation spectra)")

# %% [markdown]
# ## 3. The giants with SNR > 80
#
# Giants by the network's own labels (log g and Teff cuts in the parameters), with a spectrum
# SNR above `snr_min` and no flag set. Left: every unflagged spectrum; right: the selection.

# %%
giant = predict.select_giants(cat, snr_min, logg_max, teff_max)
clean = np.asarray(cat["flag"]) == 0
g = cat[giant]
print(f"{giant.sum():,} giants with SNR > {snr_min} and no flag, of {clean.sum():,} unflagged spectra")
glued.glue_all(n_giants=glued.count(giant.sum()), n_clean=glued.count(clean.sum()), snr_min=f"{snr_min:g}")
fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 4), sharey=True)
for ax, t, title in ((axes[0], cat[clean], "all unflagged spectra"), (axes[1], g, f"giants, SNR > {snr_min}")):
    sc = plots.kiel(ax, t["teff"], t["logg"], t["m_h"], LATEX["m_h"], s=1, **plots.colour_scale("m_h"))
    ax.set_title(f"{title} ({len(t):,})")
axes[1].set_ylabel("")
plots.caption(fig, f"Kiel diagrams from the {network} catalogue, coloured by [M/H]; {source}.")
plt.show()

# %% [markdown]
# ## 4. The [α/M]–[M/H] plane: thin and thick discs
#
# The dashed line is the boundary of `discs.chemical_population`, the one the simulation names
# its populations by ([α/M] = 0.10 − 0.08 [M/H], halo below [M/H] = −1.2: `discs.ALPHA_BOUNDARY`,
# `discs.HALO_M_H_MAX`): stars above it are called thick disc, below it thin disc.

# %%
fig, ax = plt.subplots(figsize=(7, 5))
ax.hexbin(g["m_h"], g["alpha_m"], gridsize=60, bins="log", cmap="Greys", mincnt=1, extent=(-2.0, 0.6, -0.2, 0.5))
m = np.linspace(discs.HALO_M_H_MAX, 0.6, 10)
ax.plot(m, discs.boundary_alpha_m(m), "r--", lw=1.2, label="thin / thick boundary")
ax.axvline(discs.HALO_M_H_MAX, color="r", lw=0.8, ls=":")
ax.set_xlabel(axis_label("m_h"))
ax.set_ylabel(axis_label("alpha_m"))
ax.legend(loc="upper right")
plots.caption(fig, f"[α/M] against [M/H] of {len(g):,} giants with SNR > {snr_min} ({network}); {source}.")
plt.show()

# %% [markdown]
# For a simulated survey we know each star's true labels and the population it was drawn from.
# Two questions: does the network put a giant on the same side of the boundary as its **true
# labels** do (the network's accuracy), and on the side of its **true population** (which also
# counts the overlap of the populations in this plane)?

# %%
if simulated:
    truth = survey.read_truth(rave_dir, g, labels=["m_h", "alpha_m"])
    true = Table(truth["labels"], names=["m_h", "alpha_m"])
    population = truth["population"]
    summary, confusion = discs.disc_sides(g["m_h"], g["alpha_m"], true["m_h"], true["alpha_m"], population)
    display(readable(summary))  # noqa: F821 (IPython)
    display(readable(confusion))  # noqa: F821 (IPython)
    glued.glue("same_side", glued.percent(summary["same side"][0]))
    glued.glue_sentence("discs", discs.separation_sentence(*discs.fraction_on_side(g["m_h"], g["alpha_m"], population)))
    fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 4), sharex=True, sharey=True)
    for ax, (mh, am), title in ((axes[0], (true["m_h"], true["alpha_m"]), "true labels"),
                                (axes[1], (g["m_h"], g["alpha_m"]), f"{network}")):
        for k, p in enumerate(np.unique(population)):
            sel = population == p
            ax.scatter(np.asarray(mh)[sel], np.asarray(am)[sel], s=2, alpha=0.5, color=f"C{k}", label=p)
        ax.plot(m, discs.boundary_alpha_m(m), "k--", lw=1)
        ax.set_title(title)
        ax.set_xlabel(axis_label("m_h"))
    axes[0].set_ylabel(axis_label("alpha_m"))
    axes[0].legend(markerscale=4, fontsize=9)
    plots.caption(fig, "The same giants at their true labels and as the network sees them, coloured by "
                       f"true population; {source}.")
    plt.show()
else:
    print("real data: no true populations; the comparison needs a simulated survey")
    glued.glue("same_side", "n/a (real data: no true labels)")
    glued.glue_sentence("discs", "Real data have no true populations: whether the discs stay apart is read from "
                                 "the figure alone.")

# %% [markdown]
# ## 5. On the sky, and the label distributions
#
# The selected giants on the sky, coloured by [M/H]; then the distribution of each label for
# the giants and for every unflagged spectrum.

# %%
rows = files.row_index(rave["rave_obs_id"], g["rave_obs_id"], "RAVE catalogue")  # the giants' catalogue rows
fig = plt.figure(figsize=(plots.PAGE_WIDTH, 4.5))
ax = plots.sky_map(fig, rave["ra_input"][rows], rave["dec_input"][rows], c=np.asarray(g["m_h"]), cmap="viridis",
                   vmin=-1.5, vmax=0.5, s=2)
fig.colorbar(ax.collections[0], ax=ax, shrink=0.6, label=axis_label("m_h"))
plots.caption(fig, f"Giants with SNR > {snr_min} on the sky (equatorial), coloured by [M/H]; {source}.")
plt.show()

fig, axes = plots.panel_grid(len(ens.labels), 3, 2.3)
for ax, label in zip(axes, ens.labels):
    values = np.asarray(cat[label])[clean]
    bins = np.linspace(*np.nanpercentile(values, [0.5, 99.5]), 40)
    ax.hist(values, bins=bins, histtype="step", color="0.4", density=True, label="all unflagged")
    ax.hist(np.asarray(g[label]), bins=bins, histtype="step", color="C3", density=True, label="giants")
    ax.set_xlabel(axis_label(label))
    ax.set_yticks([])
    ax.locator_params(axis="x", nbins=4)
plots.legend_above(fig, axes, 2)
plots.caption(fig, f"Label distributions of the {network} catalogue; {source}.")
plt.show()

# %% [markdown]
# ## 6. The whole survey: how the cost grows
#
# Does the path of this book — simulate, read every spectrum file into the cube, predict,
# this notebook — stay linear up to RAVE's 518,387 spectra? `benchmarks/scale.py` runs each
# stage in a fresh process at 9,999, 63,840 and 518,387 spectra and records its wall time and
# peak memory in `scale.json`; the parameter `scale_results` points to that file (the `rave`
# profile sets it). Left: time against size, log–log, with a dotted slope-1 guide per stage
# (a stage on its guide costs the same per spectrum at every size). Right: the peak memory of
# the stage's largest process, which a chunked stage keeps flat.

# %%
if scale_results is None or not Path(scale_results).exists():
    glued.glue("scaling", "this run has no scaling results (the parameter scale_results)")
    print(f"No scaling results ({'scale_results not given' if scale_results is None else scale_results + ' does not exist'}). "
          "Make them from the repository with\n"
          "    python benchmarks/scale.py --products data/products\n"
          "(about 10 min and 11 GB of disk on 2 cores), then rerun this notebook with "
          "-p scale_results ../data/scale/scale.json")
else:
    scale = costs.read_results(scale_results)
    print(costs.table(scale))
    print(costs.summary_line(scale))
    headline = costs.summary(scale)
    glued.glue("scaling", f"the steepest stage grows as the size to the power {glued.value(headline['scale_slope_max'])}, "
                          f"predict takes {glued.seconds(headline['predict_518k_s'])} at the largest size and no "
                          f"process needs more than {glued.count(headline['peak_rss_mb'])} MB")
    fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 4))
    plots.scaling(scale, axes)
    plots.caption(fig, costs.caption(scale))
    plt.show()

# %% [markdown]
# ## Summary
#
# * The {glue:text}`n_catalogue` spectra went through the {glue:text}`n_members` members of
#   {glue:text}`network` in {glue:text}`predict_time` ({glue:text}`predict_rate` spectra per
#   second, reading and writing included); the catalogue holds every label with its calibrated
#   uncertainty, the member spread, the SNR and the flags, and loads with `Table.read`.
#   {glue:text}`n_flagged` spectra ({glue:text}`flagged`) carry a flag.
# * {glue:text}`n_giants` of the {glue:text}`n_clean` unflagged spectra are giants with SNR
#   above {glue:text}`snr_min`. The network puts {glue:text}`same_side` of them on the side of
#   the thin/thick boundary their true labels are on. {glue:md}`discs`
# * Section 6: {glue:text}`scaling`.
#
# ## What's next
#
# Point the book at the real RAVE DR6 and APOGEE files ("Run on the real data"), or rerun
# this notebook with another network or other cuts through papermill's parameters.
#
# ## Resources and references
#
# * {cite:t}`2020A&A...644A.168G` parametrised 420,165 spectra of RAVE DR6
#   {cite:p}`2020AJ....160...82S,2020AJ....160...83S` with their network.
# * Astropy {cite:p}`2022ApJ...935..167A`:
#   [reading and writing tables](https://docs.astropy.org/en/stable/table/io.html); the
#   chunks on a cluster: [Dask distributed](https://distributed.dask.org/en/stable/).
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
