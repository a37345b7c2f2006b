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
# # 04 — Training: ensembles of both networks
#
# **Overview.** Each network is trained several times from different random seeds; the
# spread of the members' predictions is the ensemble's uncertainty. Labels are min–max
# scaled on the training stars only; the loss ignores labels APOGEE did not measure; early
# stopping watches the **validation** set (never the test set, which the published code
# used for this). The worst members by validation loss can be dropped, as in the paper.
# Since an ensemble's spread is known to be too small (the paper's by 2–7×), each
# ensemble's uncertainties are calibrated on the validation set: one factor per label so
# that the validation residuals divided by the uncertainties have unit scatter. Each ensemble
# also learns what its training spectra look like to it, so that it can later say when a
# spectrum is foreign (out of domain).
#
# **Learning goals.** After this notebook you will be able to:
#
# * train an ensemble of networks from different seeds, with early stopping on the validation
#   set and the worst members dropped;
# * read learning curves and tell which epoch's weights were kept;
# * compare each label's predictions with APOGEE on the validation set (bias and robust
#   scatter);
# * turn an ensemble's spread into calibrated uncertainties, and save the ensemble with what is
#   needed to use it safely;
# * set the threshold of an out-of-domain check on the validation set for a stated false-alarm
#   rate.
#
# **Run time** (on 2 cores): smoke profile about 40 s; full profile about 7 min with
# `processes = 2` (about 21 min with `processes = 1`, members one after another).
#
# **Prerequisites.** Notebook 02 (`data/products/training_set.fits`). **Writes** one
# folder per ensemble in `data/products/models/` (`member_NN.keras` + `ensemble.json` with
# labels, units, grid, scaling, calibration, out-of-domain statistics, training-set hash, seeds
# and histories).

# %% [markdown]
# ## Imports
#
# NumPy, Matplotlib and Astropy's `Table`, and the training code of `ravecnn_utils.train`;
# TensorFlow's C++ start-up messages are silenced before it is imported.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # silence TensorFlow's C++ start-up logs

from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
from astropy.table import Table

from ravecnn_utils import metrics, plots, train
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.labels import CORE_LABELS, axis_label
from ravecnn_utils.paths import PRODUCT_FILES
from ravecnn_utils.tables import readable
from ravecnn_utils.trainingset import label_array, read_training_set

# %% [markdown]
# The parameters: which networks, how many members, and the training settings. Papermill
# replaces them when the book is built; the book's page *Rerun with your own parameters* lists
# them all.

# %% tags=["parameters"]
# Quick run: the smoke values are in notebooks/profiles.yml; run with: python -m ravecnn_utils.book --profile smoke --only 04_training
products_dir = "../data/products"      # reads training_set.fits (notebook 02); writes models/<name>/
networks = ["slides", "paper_photometry"]  # any of model.NETWORKS: slides, paper, paper_photometry
slides_labels = None                   # labels of the slides' network; None: labels.CORE_LABELS (4)
paper_labels = None                    # labels of the paper's networks; None: labels.LABELS (9)
n_models = 5                           # ensemble members per network
drop_worst = 0.2                       # fraction of members (worst validation loss) dropped
epochs = 100                           # maximum epochs per member
patience = 10                          # early stopping: epochs without validation improvement
batch_size = 64                         # spectra per gradient step (Adam)
learning_rate = 1e-3                   # Adam
seed = 42                              # member k uses seed + k
processes = 2                          # members trained at once, one process each (1: one after another)
false_alarm_rate = 0.01                # out-of-domain check: fraction of validation-like spectra flagged

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "04_training")

# %% [markdown]
# ## 1. The training set
#
# Read the training set of notebook 02 and mark its training and validation rows.

# %%
products = Path(products_dir)
wave, flux, error, table = read_training_set(products / PRODUCT_FILES["training_set"])
source = table.meta["provenance"].get("source", "unknown data")
parts = {name: np.asarray(table["split"]) == name for name in ("train", "validation")}
print(f"This run uses: {source}")
print(f"{len(table)} spectra × {wave.size} pixels; train {parts['train'].sum()}, "
      f"validation {parts['validation'].sum()} (the test set is not touched here)")


# %% [markdown]
# ## 2. Train
#
# Train and calibrate the ensemble of each network (`train.train_networks`; member k uses the
# seed `seed + k`) and save it to `models/<network>/`. With `processes = 2` two members train
# at once, each in a process of its own: the networks are small, so one member alone barely
# uses a second core. The members of all the networks share these processes, so two ensembles
# of 5 members take 5 rounds of two, not 3 + 3; the ensembles are the same as when each network
# is trained on its own.

# %%
ensembles = train.train_networks(
    networks, flux, error, table, wave, n_models=n_models, seed=seed, slides_labels=slides_labels,
    paper_labels=paper_labels, drop_worst=drop_worst, epochs=epochs, batch_size=batch_size,
    learning_rate=learning_rate, patience=patience, processes=processes, false_alarm_rate=false_alarm_rate)
for name, ensemble in ensembles.items():
    ensemble.save(products / PRODUCT_FILES["models"] / name)
    print(f"{name}: {ensemble}")

# %% [markdown]
# ## 3. Learning curves
#
# Training and validation loss (masked MSE on min–max-scaled labels) of every kept member;
# the dot marks the epoch whose weights were kept (the best validation loss).

# %%
fig, axes = plots.panel_grid(len(ensembles), 2, 3.8)
for ax, (name, ens) in zip(axes, ensembles.items()):
    for k, (hist, best) in enumerate(zip(ens.metadata["histories"], ens.metadata["best_epochs"])):
        colour = f"C{k}"
        epochs_run = np.arange(1, len(hist["loss"]) + 1)
        ax.plot(epochs_run, hist["loss"], color=colour, lw=0.8, ls="--")
        ax.plot(epochs_run, hist["val_loss"], color=colour, lw=1.2, label=f"seed {ens.metadata['seeds'][k]}")
        ax.plot(best, hist["val_loss"][best - 1], "o", color=colour)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss (dashed: training, solid: validation)")
    ax.set_title(f"{name}: {len(ens)} members kept, {len(ens.metadata['dropped'])} dropped")
    ax.legend(fontsize=8)
plots.caption(fig, f"Learning curves, {source}.")
plt.show()

timing = Table(rows=[(name, len(ens), ", ".join(map(str, ens.metadata["best_epochs"])),
                      np.mean(ens.metadata["seconds_per_epoch"]), ens.members[0].count_params())
                     for name, ens in ensembles.items()],
               names=("network", "members", "chosen epochs", "seconds per epoch", "parameters"))
timing["seconds per epoch"].format = ".2f"
glued.glue("training_runs", "; ".join(
    f"{name}: {len(ens)} members kept of {len(ens) + len(ens.metadata['dropped'])}, best epochs "
    f"{', '.join(map(str, ens.metadata['best_epochs']))}, {glued.seconds(np.mean(ens.metadata['seconds_per_epoch']))} "
    "per epoch" for name, ens in ensembles.items()))
readable(timing)

# %% [markdown]
# ## 4. The validation set, label by label
#
# Network against APOGEE for the validation stars, with the calibrated uncertainties. The
# numbers in each panel are the bias and robust scatter of (network − APOGEE).

# %%
rows = []
for name, ens in ensembles.items():
    x_val = ens.inputs(flux[parts["validation"]], error[parts["validation"]], table[parts["validation"]])
    mean, sigma = ens.predict(x_val, calibrated=True)
    _, spread = ens.predict(x_val)
    truth = label_array(table, ens.labels, parts["validation"])
    fig, axes = plots.panel_grid(len(ens.labels), 3, 2.8)
    for j, (ax, label) in enumerate(zip(axes, ens.labels)):
        ok = np.isfinite(truth[:, j])
        bias, scatter = metrics.bias_and_scatter(mean[ok, j] - truth[ok, j])
        ax.errorbar(truth[ok, j], mean[ok, j], yerr=sigma[ok, j], fmt=".", ms=2, lw=0.3, alpha=0.5,
                    color="tab:blue", rasterized=True)
        lo, hi = np.nanpercentile(truth[ok, j], [0.5, 99.5])
        ax.plot([lo, hi], [lo, hi], color="k", lw=0.8)
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
        ax.set_xlabel(f"APOGEE {axis_label(label)}", fontsize=8)
        ax.set_ylabel("network", fontsize=8)
        ax.text(0.04, 0.96, f"bias {bias:+.3g}\nσ {scatter:.3g}", transform=ax.transAxes, va="top", fontsize=8)
        rows.append((name, label, ok.sum(), bias, scatter, np.nanmedian(spread[ok, j]),
                     ens.calibration[label]))
    fig.suptitle(f"{name}: validation set", fontsize=11)
    plots.caption(fig, f"Validation stars of the {source}; error bars: calibrated ensemble σ.")
    plt.show()

# %% [markdown]
# The calibration factor k multiplies the raw ensemble spread; k > 1 means the members agree
# with each other more closely than they agree with APOGEE.

# %%
summary = Table(rows=rows, names=("network", "label", "validation spectra", "bias", "robust scatter",
                                  "median raw spread", "calibration k"))
for col in ("bias", "robust scatter", "median raw spread", "calibration k"):
    summary[col].format = ".3g"
glued.glue_all(
    validation_scatter="; ".join(
        f"{name}: " + glued.labelled({row["label"]: row["robust scatter"] for row in summary
                                      if row["network"] == name and row["label"] in CORE_LABELS})
        for name in ensembles),
    k_min=glued.value(np.min(summary["calibration k"])), k_max=glued.value(np.max(summary["calibration k"])))
readable(summary)

# %% [markdown]
# ## 5. Would the training survey have produced this spectrum?
#
# A network answers for any input, even one unlike every training spectrum, and its members may
# agree on the answer. So each ensemble also keeps, per member, the mean and (regularised)
# covariance of its last hidden layer's 16 activations over the training spectra
# (`ravecnn_utils.novelty`). A spectrum's `ood_score` is its squared Mahalanobis distance from
# them per feature, averaged over the members; above a threshold the catalogue flags it
# `out_of_domain`. The threshold is set on the validation spectra, which shaped neither the
# weights nor the clouds, so that a fraction `false_alarm_rate` of spectra like them is flagged.
# The table gives, per network, the spectra behind the clouds and the threshold, the threshold,
# and the fraction of validation spectra above it: at most the rate asked, by construction; with
# fewer than 1 / `false_alarm_rate` validation spectra the threshold is their largest score.

# %%
novelty_rows = []
for name, ens in ensembles.items():
    x_val = ens.inputs(flux[parts["validation"]], error[parts["validation"]], table[parts["validation"]])
    _, _, score = ens.predict(x_val, scores=True)
    nov = ens.novelty
    novelty_rows.append((name, nov.n_train, nov.n_validation, np.median(score), nov.threshold,
                         nov.false_alarm_rate, nov.flag(score).mean()))
novelty_table = Table(rows=novelty_rows, names=("network", "training spectra", "validation spectra",
                                                "median validation ood_score", "threshold",
                                                "false-alarm rate asked", "validation spectra flagged"))
for col in ("median validation ood_score", "threshold", "validation spectra flagged"):
    novelty_table[col].format = ".3g"
glued.glue_all(false_alarm=glued.percent(false_alarm_rate, 1), ood_flagged="; ".join(
    f"{row['network']} {glued.percent(row['validation spectra flagged'], 1)} of "
    f"{glued.count(row['validation spectra'])}" for row in novelty_table))
readable(novelty_table)

# %% [markdown]
# ## Summary
#
# * The ensembles were trained with early stopping on the validation set
#   ({glue:text}`training_runs`).
# * On the validation stars the robust scatter of network − APOGEE is
#   {glue:text}`validation_scatter`. The raw ensemble spread is rescaled by the calibration
#   factor k, here between {glue:text}`k_min` and {glue:text}`k_max`, saved with the ensemble.
# * Each ensemble keeps the statistics of its training spectra's features and an out-of-domain
#   threshold set on the validation spectra for a false-alarm rate of {glue:text}`false_alarm`;
#   of the validation spectra it flags {glue:text}`ood_flagged`. Notebook 06 puts real spectra
#   against it, notebook 07 flags the survey's spectra with it.
# * The ensembles are in `data/products/models/`, each with the metadata needed to use it
#   safely: a loader refuses a grid or label set other than the one it was trained on.
#
# ## What's next
#
# Notebook 05 asks which spectral lines the networks use (gradients); notebook 06 measures
# them on the test set, against the truth and the best possible precision.
#
# ## Resources and references
#
# * The recipe — min–max scaled labels, Adam, a loss that ignores missing labels, ensembles
#   from different seeds with the worst members dropped — follows {cite:t}`2020A&A...644A.168G`;
#   early stopping here watches the validation set, not the test set.
# * The optimiser is Adam {cite:p}`2014arXiv1412.6980K`, in Keras on TensorFlow
#   {cite:p}`2016arXiv160304467A`: [Model.fit](https://keras.io/api/models/model_training_apis/),
#   [EarlyStopping](https://keras.io/api/callbacks/early_stopping/),
#   [Adam](https://keras.io/api/optimizers/adam/) and
#   [saving models](https://keras.io/api/models/model_saving_apis/).
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
