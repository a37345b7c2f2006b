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
# # 03 — The network: the slides' CNN and the paper's
#
# **Overview.** Two architectures, both small one-dimensional convolutional networks. The
# talk's network reads a 723-pixel RAVE spectrum through three convolutions (8, 4 and 2
# filters of 20 pixels) and three dense layers, and returns Teff, log g, [M/H] and [α/Fe]:
# 44,226 trainable parameters. The published network {cite:p}`2020A&A...644A.168G` uses kernels of
# 10 pixels, returns nine labels, and can take a second input — absolute magnitudes from Gaia
# parallaxes and photometry — that joins the spectrum's features before the last dense
# layers. This notebook builds both, checks their parameter counts against the slides and
# the paper, and shows what each part sees.
#
# **Learning goals.** After this notebook you will be able to:
#
# * build the talk's CNN and the published one with `ravecnn_utils.model`, and check their
#   parameter counts against the slides and the paper;
# * follow how valid convolutions shorten a spectrum, and how the input length changes a
#   network's size;
# * work out a network's receptive field and see it on a real spectrum;
# * say what each piece is for: convolutions, LeakyReLU, dropout, dense layers, the photometric
#   branch and the loss that ignores missing labels.
#
# **Run time** (on 2 cores): smoke profile about 5 s; full profile about 5 s
# (the smoke profile changes nothing here).
#
# **Prerequisites.** None to build the networks; the grid of our spectra comes from
# `ravecnn_utils.cube.COMMON_GRID` (the one notebook 02 resampled every spectrum to).

# %% [markdown]
# ## Imports
#
# Matplotlib and the network builders of `ravecnn_utils.model`; TensorFlow's C++ start-up
# messages are silenced before it is imported.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # silence TensorFlow's C++ start-up logs

import matplotlib.pyplot as plt

from ravecnn_utils import cube, model, photometry, plots, plots_model
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.labels import LABELS
from ravecnn_utils.simulation.realism import read_real_spectra
from ravecnn_utils.tables import readable

# %% [markdown]
# The parameters: the input lengths of the two networks, the talk's labels and the dropout
# rate. Papermill replaces them when the book is built; the book's page *Rerun with your own
# parameters* lists them all.

# %% tags=["parameters"]
# Quick run: the smoke profile of notebooks/profiles.yml keeps these defaults; run with: python -m ravecnn_utils.book --profile smoke --only 03_architecture
slides_pixels = 723          # input length of the talk's network (pixels)
paper_pixels = 912           # input length of the published network (pixels)
slides_labels = None         # the talk's labels; None: labels.CORE_LABELS (Teff, log g, [M/H], [α/M])
dropout = 0.2                # dropout rate after the convolutions

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "03_architecture")

# %% [markdown]
# ## 1. The slides' network, exactly
#
# Valid padding and stride 1 shorten the spectrum by 19 pixels per convolution
# (723 → 704 → 685 → 666); the two filters of the last convolution give 2 × 666 = 1,332
# features, which the dense layers reduce to 32, 16 and finally the four labels. The diagram is
# drawn from the Keras model itself (`plots_model.architecture_figure`): one box per layer, with
# its filters and kernel or units, its output shape (pixels × channels) and its parameters.

# %%
slides = model.slides_cnn(n_pixels=slides_pixels, labels=model.network_spec("slides", slides_labels)["labels"],
                          dropout=dropout)
fig, _, _ = plots_model.architecture_figure(slides, "slides' network (talk)")
plots.caption(fig, "The slides' network as built by ravecnn_utils.model; shapes leave out the batch axis.")
plt.show()

# %% [markdown]
# Its total number of parameters, beside the count the talk quotes.

# %%
quoted = model.QUOTED_PARAMETERS
print(f"slides' network: {slides.count_params():,} parameters (the talk quotes {quoted['slides']:,})")

glued.glue_all(slides_params=glued.count(slides.count_params()),
               slides_match=glued.matches(slides.count_params(), quoted["slides"]))

# %% [markdown]
# ## 2. The paper's network, with and without photometry
#
# Build the published network twice, with the photometric input and without it, print both
# parameter counts beside the paper's, and draw the first: the photometry enters as a second
# input, goes through its own dense layer and joins the spectrum's branch before Dense(16).

# %%
paper = model.paper_cnn(n_pixels=paper_pixels, labels=LABELS, photometry=True, dropout=dropout)
paper_spectra_only = model.paper_cnn(n_pixels=paper_pixels, labels=LABELS, photometry=False, dropout=dropout)
print(f"paper's network with photometry ({len(photometry.FEATURES)} inputs: "
      f"{', '.join(photometry.FEATURES)}): {paper.count_params():,} parameters "
      f"(the paper quotes {quoted['paper_photometry']:,})")
print(f"paper's network, spectra only: {paper_spectra_only.count_params():,} parameters")
glued.glue_all(paper_params=glued.count(paper.count_params()),
               paper_match=glued.matches(paper.count_params(), quoted["paper_photometry"]),
               paper_spectra_params=glued.count(paper_spectra_only.count_params()))
fig, _, _ = plots_model.architecture_figure(paper, "paper's network, with photometry")
plots.caption(fig, "The paper's network as built by ravecnn_utils.model: the photometry branch (right) "
                   "merges into the dense layers.")
plt.show()

# %% [markdown]
# ## 3. On our wavelength grid
#
# Our spectra are resampled to 8410–8795 Å in steps of 0.39 Å, which is longer than either
# network's input. The builders take any length; the parameter counts change only through
# the first dense layer.

# %%
wave = cube.common_wavelengths()
counts = model.network_table(wave.size, wave[1] - wave[0], dropout, slides_labels)
glued.glue_all(grid_pixels=glued.count(wave.size),
               grid_counts="; ".join(f"{row['network']} {glued.count(row['parameters'])}" for row in counts))
readable(counts)

# %% [markdown]
# ## 4. What one feature of the last convolution sees
#
# Each output of the third convolution depends on a window of the spectrum: the receptive
# field, 1 + Σ (kernel − 1) pixels. For the slides' network that is wide enough to hold a
# whole Ca II line with its wings; for the paper's, about half as wide. The dense layers
# then combine features from the whole spectrum.

# %%
star = read_real_spectra()
star = star[star["name"] == "HD161096"][0]
fig, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 3.5))
ax.plot(star["wave"], star["flux"], color="k", lw=0.7, label="HD 161096 (real K giant, DEIMOS)")
for (name, colour), row in zip((("slides", "tab:red"), ("paper", "tab:blue")), counts[:2]):
    half = row["receptive field [Å]"] / 2
    ax.axvspan(8542.09 - half, 8542.09 + half, color=colour, alpha=0.25,
               label=f"receptive field, {name}: {row['receptive field [Å]']} Å")
plots.mark_lines(ax, ("Ca II", "Fe I"))
ax.set_xlim(8490, 8600)
ax.set_xlabel("wavelength [Å]")
ax.set_ylabel("normalised flux")
ax.legend(loc="lower left", fontsize=8)
plots.caption(fig, "Receptive fields of the two networks on a real spectrum (Ca II 8542 Å); "
                   "the networks themselves are not trained yet.")
plt.show()

# %% [markdown]
# ## Why each piece is there
#
# * **Convolutions** share weights along the spectrum: a filter that learns the shape of an
#   absorption line finds it wherever it is, which also absorbs small radial-velocity
#   residuals. Few filters (8, 4, 2) keep the network small enough for a few thousand
#   training stars.
# * **LeakyReLU** keeps a small gradient for negative inputs, so no unit dies.
# * **Dropout** after the convolutions regularises the 1,332-feature flatten layer, which
#   holds most of the parameters.
# * **Dense layers** mix information from lines far apart — the gravity-sensitive Ca II
#   wings with the temperature-sensitive Fe I lines.
# * **The photometric branch** gives the network the star's luminosity (absolute magnitudes
#   from parallaxes) and colours, which constrain log g and Teff independently of the
#   spectrum.
# * **A loss that ignores missing labels** (`model.masked_mse`) lets stars with, say, no
#   APOGEE [Al/Fe] still teach the other eight labels.
#
# ## Summary
#
# * The slides' network has {glue:text}`slides_params` parameters, {glue:text}`slides_match`
#   in the talk; the paper's with photometry has {glue:text}`paper_params`,
#   {glue:text}`paper_match` in the paper, and {glue:text}`paper_spectra_params` without it.
# * On our grid of {glue:text}`grid_pixels` pixels only the first dense layer grows:
#   {glue:text}`grid_counts` parameters (section 3).
#
# ## What's next
#
# Notebook 04 trains ensembles of both networks on the training set of notebook 02.
#
# ## Resources and references
#
# * The published network is that of {cite:t}`2020A&A...644A.168G`; its photometric input
#   combines Gaia {cite:p}`2021A&A...649A...1G` and 2MASS {cite:p}`2006AJ....131.1163S`. The
#   smaller network is the one of the talk's slides.
# * The layers, in Keras on TensorFlow {cite:p}`2016arXiv160304467A`:
#   [Conv1D](https://keras.io/api/layers/convolution_layers/convolution1d/),
#   [LeakyReLU](https://keras.io/api/layers/activation_layers/leaky_relu/),
#   [Dropout](https://keras.io/api/layers/regularization_layers/dropout/),
#   [Dense](https://keras.io/api/layers/core_layers/dense/); two inputs are joined with
#   [the functional API](https://keras.io/guides/functional_api/).
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
