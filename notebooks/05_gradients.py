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
# # 05 — What the network looks at: gradients
#
# **Overview.** A network that returns good numbers for the wrong reasons would not be
# trusted. The derivative of each predicted label with respect to the flux of each pixel,
# ∂label/∂flux, shows which parts of the spectrum move the answer: for a network that learnt
# physics, the Ca II triplet, Fe I, Mg I, Si I and Ti I lines, and the Paschen lines of hot
# stars. The gradients are averaged over populations (cool giants, red clump, dwarfs,
# metal-poor and hot stars) and the strongest peaks are identified against the line list.
# For a simulated survey the forward model knows where the information is — its own
# sensitivity ∂flux/∂label — so we can ask whether the network uses the lines that carry it.
#
# **Learning goals.** After this notebook you will be able to:
#
# * compute ∂label/∂flux of an ensemble by automatic differentiation (a saliency map);
# * read gradient spectra population by population, and tie their strongest peaks to
#   spectral lines;
# * for a simulated survey, compare where the network looks with where the forward model puts
#   the information, and say what a low correlation means.
#
# **Run time** (on 2 cores): smoke profile about 5 s; full profile about 20 s.
#
# **Prerequisites.** Notebooks 02 (`training_set.fits`) and 04 (the ensembles in `models/`).

# %% [markdown]
# ## Imports
#
# NumPy, Matplotlib, Astropy tables, the gradient tools of `ravecnn_utils.gradients`, the
# saved ensembles and the forward model; TensorFlow's C++ start-up messages are silenced
# before it is imported.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # silence TensorFlow's C++ start-up logs

import time
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
from astropy.table import Table, vstack

from ravecnn_utils import gradients, plots, survey
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.ensemble import Ensemble
from ravecnn_utils.labels import LATEX, TEXT, UNITS
from ravecnn_utils.paths import PRODUCT_FILES
from ravecnn_utils.simulation.emulator import Emulator
from ravecnn_utils.simulation.forward import forward_sensitivity
from ravecnn_utils.tables import readable
from ravecnn_utils.trainingset import read_training_set

# %% [markdown]
# The parameters: which ensemble, how many spectra and how many peaks per label. Papermill
# replaces them when the book is built; the book's page *Rerun with your own parameters* lists
# them all.

# %% tags=["parameters"]
# Quick run: the smoke values are in notebooks/profiles.yml; run with: python -m ravecnn_utils.book --profile smoke --only 05_gradients
products_dir = "../data/products"   # reads training_set.fits and models/ (notebooks 02, 04)
survey_dir = "../data/sim/full"     # the simulated survey, for the forward model's sensitivity
network = "slides"                  # which ensemble of notebook 04
n_spectra = 1000                    # training + validation spectra whose gradients are computed
top_n = 5                           # strongest peaks listed per label
seed = 1                            # which spectra are drawn

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "05_gradients")

# %% [markdown]
# ## 1. The network and the spectra
#
# Load the ensemble and draw `n_spectra` spectra from the training and validation sets (never
# the test set).

# %%
products = Path(products_dir)
wave, flux, error, table = read_training_set(products / PRODUCT_FILES["training_set"])
ens = Ensemble.load(products / PRODUCT_FILES["models"] / network, grid=wave)
source = table.meta["provenance"].get("source", "unknown data")
usable = np.flatnonzero(np.isin(table["split"], ["train", "validation"]))  # never the test set
rows = np.sort(np.random.default_rng(seed).choice(usable, min(n_spectra, usable.size), replace=False))
x = ens.inputs(flux[rows], error[rows], table[rows])
print(f"This run uses: {source}")
print(f"{network}: {len(ens)} members, labels {', '.join(ens.labels)}; {rows.size} spectra")

# %% [markdown]
# ## 2. ∂label/∂flux
#
# The gradient of every label with respect to every pixel, averaged over the members and timed;
# then the mean gradient of each population, and how many stars each population has.

# %%
start = time.perf_counter()
grad = gradients.label_gradients(ens, x)
seconds = time.perf_counter() - start
print(f"gradients of {rows.size} spectra × {len(ens.labels)} labels × {wave.size} pixels "
      f"through {len(ens)} members in {seconds:.1f} s")
glued.glue_all(n_spectra=glued.count(rows.size), gradient_time=glued.seconds(seconds))
masks = gradients.population_masks(table[rows])
pop_mean = gradients.mean_gradients(grad, masks)
readable(Table({"population": list(masks), "spectra": [int(m.sum()) for m in masks.values()]}))

# %% [markdown]
# The slides' figure: the mean gradient of each label, per population, in physical units
# (K or dex per unit of normalised flux), with the landmark lines marked.

# %%
fig, axes = plt.subplots(len(ens.labels), 1, figsize=(plots.PAGE_WIDTH, 2.2 * len(ens.labels)), sharex=True)
for j, (ax, label) in enumerate(zip(np.atleast_1d(axes), ens.labels)):
    for k, (name, g) in enumerate(pop_mean.items()):
        ax.plot(wave, g[j], lw=0.8, color=f"C{k}", label=f"{name} ({int(masks[name].sum())})")
    plots.mark_lines(ax)
    ax.set_ylabel(f"∂{LATEX[label]}/∂flux\n[{UNITS[label]}]", fontsize=9)
np.atleast_1d(axes)[0].legend(ncol=3, fontsize=9, loc="lower left", bbox_to_anchor=(0, 1.15))
np.atleast_1d(axes)[-1].set_xlabel("wavelength [Å]")
plots.caption(fig, f"Mean gradients of the {network} ensemble per population, {source}.")
plt.show()

# %% [markdown]
# ## 3. Which lines drive which label
#
# The strongest peaks of |∂label/∂flux| averaged over all the spectra above, named after the
# nearest landmark line of the region (Ca II, Fe I, Mg I, Si I, Ti I, Paschen; the lines
# marked on the figures) within 1.5 Å, which also catches the inner wings of the Ca II lines.
# The full line list is too dense to name a peak by proximity alone: a peak marked "—" lies
# on none of the landmarks.

# %%
mean_all = grad.mean(axis=0)
tables = []
for j, label in enumerate(ens.labels):
    top = gradients.top_lines(mean_all[j], wave, plots.LANDMARKS, n=top_n, window=1.5)
    top.add_column(label, name="label", index=0)
    tables.append(top)
drivers = vstack(tables)
drivers["wavelength_peak"].format = drivers["line_wavelength"].format = ".2f"
drivers["gradient"].format = ".3g"
strongest = drivers[drivers["rank"] == 1]
glued.glue("strongest_lines", "; ".join(
    f"{TEXT[row['label']]}: " + (f"{row['species']} {row['line_wavelength']:.2f} Å" if np.isfinite(row["line_wavelength"])
                                 else f"no landmark line ({row['wavelength_peak']:.2f} Å)") for row in strongest))
readable(drivers)

# %% [markdown]
# ## 4. Does the network use the lines that carry the information?
#
# For a simulated survey, the forward model (the MOOG emulator) gives ∂flux/∂label for the same stars (at their
# true labels). Large |∂flux/∂label| marks the pixels that carry information about a label;
# large |∂label/∂flux| marks the pixels the network reads. The two have inverse units, so we
# compare their shapes: each normalised to its maximum, and their correlation.

# %%
if table.meta["provenance"].get("data_source") == "sim" and survey.read_manifest(survey_dir) is not None:
    true_labels = survey.read_truth(survey_dir, table[rows])["labels"]
    sens = forward_sensitivity(Emulator(), true_labels, wave, label_names=ens.labels)
    fig, axes = plt.subplots(len(ens.labels), 1, figsize=(plots.PAGE_WIDTH, 2 * len(ens.labels)), sharex=True)
    for j, (ax, label) in enumerate(zip(np.atleast_1d(axes), ens.labels)):
        net, fwd = np.abs(mean_all[j]), np.abs(sens[j])
        ax.plot(wave, fwd / fwd.max(), color="0.5", lw=0.8, label="|∂flux/∂label| (forward model)")
        ax.plot(wave, net / net.max(), color="tab:red", lw=0.8, label="|∂label/∂flux| (network)")
        ax.set_ylabel(LATEX[label])
    np.atleast_1d(axes)[0].legend(fontsize=8, loc="upper right")
    np.atleast_1d(axes)[-1].set_xlabel("wavelength [Å]")
    plots.caption(fig, f"Where the information is (grey) and where the network looks (red), {source}.")
    plt.show()
    agreement = gradients.shape_correlation(mean_all, sens, ens.labels)
else:
    agreement = None
    print("real data: the forward model's sensitivity is not the data's; comparison skipped")
if agreement is None:
    glued.glue_sentence("agreement", "Real data have no forward-model sensitivity to compare with, so this run "
                            "does not measure it.")
else:
    low = agreement[np.asarray(agreement["correlation"]) < 0.5]
    glued.glue_sentence("agreement", "The correlation between where the network looks and where the forward model "
               "puts the information is " + ", ".join(f"{TEXT[r['label']]} {r['correlation']:.2f}" for r in agreement)
               + (f"; below 0.5 for {', '.join(TEXT[r['label']] for r in low)}, which the network then predicts "
                  "partly from something other than its own lines (for example from correlations with other "
                  "labels in the training set)." if len(low) else
                  "; above 0.5 for every label."))
readable(agreement)

# %% [markdown]
# ## Summary
#
# * The gradients of {glue:text}`n_spectra` spectra (computed in {glue:text}`gradient_time`)
#   show which lines move each label, population by population. Where the strongest peak of
#   each label lies: {glue:text}`strongest_lines`.
# * {glue:md}`agreement`
#
# ## What's next
#
# Notebook 06 measures the networks on the test set against APOGEE, the truth, the
# best precision any method could reach, and the methods an astronomer would use instead.
#
# ## Resources and references
#
# * Gradients of a network's output with respect to its input as saliency maps:
#   {cite:t}`2013arXiv1312.6034S`.
# * The ensembles are those of notebook 04: the talk's network and the published one of
#   {cite:t}`2020A&A...644A.168G`. The forward model's lines come from VALD
#   {cite:p}`2015PhyS...90e4005R`.
# * Automatic differentiation in TensorFlow {cite:p}`2016arXiv160304467A`:
#   [tf.GradientTape](https://www.tensorflow.org/api_docs/python/tf/GradientTape).
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
