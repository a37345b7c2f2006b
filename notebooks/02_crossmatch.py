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
# # 02 — Cross-match: RAVE × APOGEE and the training set
#
# **Overview.** The network can only learn from stars that both surveys observed. This
# notebook reads the RAVE catalogue and spectra and the APOGEE allStar table with the same
# readers for simulated and real files, matches the two surveys by 2MASS identifier (and by
# sky position where the identifier is missing), applies quality cuts — counting every star
# each cut removes — and splits the matched stars into training, validation and test sets.
# The validation set steers early stopping; the test set is kept for the final numbers.
#
# **Learning goals.** After this notebook you will be able to:
#
# * match two catalogues by identifier and, where it is missing, by sky position, and check the
#   matches by their separations;
# * apply quality cuts to a cross-match, read its cut flow, and mask missing labels instead of
#   dropping the star;
# * put spectra with different wavelength axes onto one common grid, errors included;
# * split stars into training, validation and test sets, star by star and stratified, and see
#   where the training set covers the survey and where a network will have to extrapolate.
#
# **Run time** (on 2 cores): smoke profile about 5 s; full profile about 30 s; `rave` profile
# (518,387 spectrum files into the cube) about 2.5 min.
#
# **Prerequisites.** Notebook 01 (it writes the simulated survey when `data_source = "sim"`),
# or the real RAVE DR6 and APOGEE files (see the book's page *Run on the real data*).
# **Writes** `data/products/spectra_cube.fits` (every RAVE spectrum on one wavelength grid)
# and `data/products/training_set.fits` (the matched spectra, labels and split).

# %% [markdown]
# ## Imports
#
# NumPy, Matplotlib, seaborn and Astropy's `Table`, and from `ravecnn_utils` the survey
# readers, the cross-match, the spectra cube and the training-set writer.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns
from astropy.table import Table

from ravecnn_utils import crossmatch, cube, files, metrics, plots, rave, splits, survey, trainingset
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.labels import CORE_LABELS, LABELS, axis_label
from ravecnn_utils.paths import PRODUCT_FILES
from ravecnn_utils.tables import readable

sns.set_theme(context="notebook", style="ticks")

# %% [markdown]
# The parameters: the data, the match radius, the quality cuts, the split and how the spectra
# are read. Papermill replaces them when the book is built; the book's page *Rerun with your
# own parameters* lists them all.

# %% tags=["parameters"]
# Quick run: the smoke values are in notebooks/profiles.yml; run with: python -m ravecnn_utils.book --profile smoke --only 02_crossmatch
data_source = "sim"                         # "sim" (simulated survey) or "real"
survey_dir = "../data/sim/full"             # the simulated survey (notebook 01); used when data_source is sim
rave_dir = None                             # folder with spectra/RAVE_<rave_obs_id>.fits and the catalogue(s);
                                            #   None: survey_dir
rave_catalogue = None                       # RAVE DR6 table file(s) in rave_dir, joined on rave_obs_id; None: the simulated survey catalogue
allstar_path = None                         # APOGEE allStar file (DR16 or DR17); None: the one in survey_dir
allstar_release = None                      # real data: dr16 or dr17 (an allStar extract without the release marker column); None: from the columns
products_dir = "../data/products"           # where the spectra cube and the training set go
match_radius_arcsec = 1.0                   # sky-match radius where the 2MASS id is missing (arcsec)
apogee_snr_min = 70                         # APOGEE SNR cut
rave_snr_min = 10                           # RAVE SNR cut (snr_med_sparv)
repeats = "keep"                            # RAVE repeat observations: "keep" all, or "best" SNR only
starflag_bad_bits = None                    # APOGEE STARFLAG bits that remove a star; None: apogee.STARFLAG_BAD_BITS
aspcap_star_bad_bit = None                  # APOGEE ASPCAPFLAG bit STAR_BAD; None: apogee.ASPCAP_STAR_BAD_BIT (23)
label_error_max = None                      # {label: largest error (K, dex)}; None: crossmatch.CUTS defaults
split_fractions = [0.8, 0.1, 0.1]           # train, validation, test (fractions of stars)
split_seed = 42                             # seed of the split
processes = 2                               # worker processes reading spectra
chunk = 2000                                # spectra per chunk (memory bound)

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "02_crossmatch")

# %% [markdown]
# ## 1. The two catalogues
#
# Read the RAVE catalogue and the APOGEE allStar table, with the same readers for simulated
# and real files, and count their entries.

# %%
rave_dir, allstar_path = survey.resolve_sources(data_source, survey_dir, rave_dir, allstar_path)
products = Path(products_dir)
products.mkdir(parents=True, exist_ok=True)
data = survey.load_survey(rave_dir, rave_catalogue, allstar_path, allstar_release)
catalogue, allstar = data["catalogue"], data["allstar"]
simulated = data["manifest"] is not None
if data_source == "sim" and not simulated:
    raise FileNotFoundError(f"{rave_dir} holds no simulated survey: run notebook 01 (it simulates it) first")
source = survey.describe(data["manifest"])  # for captions: the data, never a path
print(f"This run uses: {source}, files in {rave_dir}")
print(f"RAVE: {len(catalogue)} observations of {rave.count_stars(catalogue)} positions; "
      f"APOGEE ({allstar.meta['release'].upper()}): {len(allstar)} entries")

# %% [markdown]
# APOGEE lists some stars more than once (EXTRATARG bit 4 marks the duplicate entries); one
# entry per star is kept, the one with the highest SNR.

# %%
apogee, n_dup = crossmatch.deduplicate_apogee(allstar)
print(f"{n_dup} duplicate APOGEE entries dropped ({apogee.meta['deduplicate']}); {len(apogee)} stars remain")

# %% [markdown]
# ## 2. The match
#
# By 2MASS identifier first (RAVE `id_2mass` against APOGEE `APOGEE_ID`); a RAVE observation
# without an identifier, or whose identifier APOGEE does not know, is matched to the nearest
# APOGEE star within `match_radius_arcsec`. The separations of the identifier matches check
# the positions of both catalogues.

# %%
pairs = crossmatch.match(catalogue, apogee, radius_arcsec=match_radius_arcsec)
matched = crossmatch.join_matches(catalogue, apogee, pairs)
print(f"{len(pairs)} RAVE observations matched: {pairs.meta['n_2mass']} by 2MASS id, "
      f"{pairs.meta['n_sky']} on the sky (radius {match_radius_arcsec} arcsec); "
      f"{len(np.unique(matched['apogee_id']))} distinct APOGEE stars")
by_id = np.asarray(pairs["separation_arcsec"])[pairs["method"] == "2mass"]
glued.glue_all(n_matched=glued.count(len(pairs)), n_by_id=glued.count(pairs.meta["n_2mass"]),
               n_by_sky=glued.count(pairs.meta["n_sky"]),
               sep_median=glued.value(np.median(by_id) if by_id.size else np.nan, "arcsec"),
               sep_max=glued.value(np.max(by_id) if by_id.size else np.nan, "arcsec"))

fig, ax = plt.subplots(figsize=(7, 3.5))
sep = np.asarray(pairs["separation_arcsec"])
bins = np.linspace(0, max(match_radius_arcsec, np.nanmax(sep)) * 1.05, 40)
for method, colour in (("2mass", "0.4"), ("sky", "tab:red")):
    ax.hist(sep[pairs["method"] == method], bins=bins, color=colour, alpha=0.8, label=f"matched by {method}")
ax.axvline(match_radius_arcsec, color="k", ls="--", lw=1, label="sky-match radius")
ax.set_xlabel("RAVE – APOGEE separation [arcsec]")
ax.set_ylabel("observations")
ax.set_yscale("log")
ax.legend()
plots.caption(fig, f"Separations of the matched pairs, {source}.")
plt.show()

# %% [markdown]
# ## 3. Quality cuts
#
# Every cut reports how many observations it removed. Labels beyond Teff, log g and [M/H]
# that APOGEE did not measure, or measured with an error above the limit, are *masked*: the
# star stays, and the network's loss will ignore the missing label.

# %%
cuts = crossmatch.cuts_from_parameters(apogee_snr_min, rave_snr_min, repeats, starflag_bad_bits,
                                       aspcap_star_bad_bit, label_error_max)
kept, cutflow = crossmatch.apply_cuts(matched, cuts)
readable(cutflow)

# %% [markdown]
# The cut flow as a bar chart, and how many labels are masked among the observations that
# passed the cuts.

# %%
fig, ax = plt.subplots(figsize=(8, 3.5))
ax.barh(cutflow["cut"][::-1], cutflow["remaining"][::-1], color="0.5")
for y, (n, removed) in enumerate(zip(cutflow["remaining"][::-1], cutflow["removed"][::-1])):
    ax.text(n, y, f" {n} (−{removed})", va="center", fontsize=8)
ax.set_xlabel("observations remaining")
ax.set_xlim(0, cutflow["remaining"][0] * 1.25)
plots.caption(fig, f"Cut flow of the cross-match, {source}.")
plt.show()
missing = Table({name: [int(np.ma.getmaskarray(kept[name]).sum())] for name in LABELS})
print("missing (masked) labels among the kept observations:")
top = int(np.argmax(cutflow["removed"]))
glued.glue_all(n_kept=glued.count(len(kept)), top_cut=str(cutflow["cut"][top]),
               top_removed=glued.count(cutflow["removed"][top]),
               n_masked=glued.count(sum(int(missing[name][0]) for name in LABELS)))
readable(missing)

# %% [markdown]
# ## 4. The spectra on one wavelength grid
#
# Each RAVE spectrum file has its own linear wavelength axis. All of them — not only the
# matched ones, since notebook 07 parametrises the whole survey — are interpolated linearly
# onto one common grid (8410–8795 Å in steps of 0.39 Å), their errors propagated, and cached
# as one FITS cube. Pixels that are not finite get no weight (error = ∞); a spectrum with too
# many of them is flagged. The reading runs in chunks on several processes and resumes after
# an interruption.

# %%
cube_path = products / PRODUCT_FILES["spectra_cube"]
spectrum_files = (survey.spectrum_path(rave_dir, i) for i in catalogue["rave_obs_id"])  # one at a time
cube.build_spectra_cube(spectrum_files, cube_path, chunk=chunk, processes=processes, overwrite=True)
wave = cube.read_spectra_cube_grid(cube_path)
cube_ids = cube.read_cube_table(cube_path)  # one row per spectrum; the spectra stay on disk
print(f"cube: {len(cube_ids)} spectra × {wave.size} pixels, {wave[0]:.2f}–{wave[-1]:.2f} Å; "
      f"{int(np.sum(cube_ids['rejected']))} flagged for too many bad pixels")
glued.glue_all(n_cube=glued.count(len(cube_ids)), n_pixels=glued.count(wave.size),
               n_rejected=glued.count(np.sum(cube_ids["rejected"])))

# %% [markdown]
# ## 5. Training, validation and test sets
#
# The split is made star by star (all observations of a star go to the same part) and
# stratified, so that the rare stars — metal-poor ([M/H] < −1), dwarfs (log g > 3.8) and
# hot stars (Teff > 6200 K) — are in every part.

# %%
kept["split"] = splits.split(kept, fractions=split_fractions, seed=split_seed)
kept["stratum"] = splits.stratum(kept)
index = files.row_index(cube_ids["rave_obs_id"], kept["rave_obs_id"], cube_path)  # cube row of each kept spectrum
readable(splits.split_counts(kept))

# %% [markdown]
# The distributions of Teff, log g, [M/H] and [α/M] in the three parts, to compare their
# shapes.

# %%
fig, axes = plots.panel_grid(len(CORE_LABELS), 2, 2.6)
for ax, name in zip(axes, CORE_LABELS):
    values = np.ma.filled(kept[name].astype(float), np.nan)
    bins = np.linspace(np.nanmin(values), np.nanmax(values), 30)
    for part in splits.PARTS:
        sel = kept["split"] == part
        ax.hist(values[sel], bins=bins, density=True, histtype="step", lw=1.5, label=part)
    ax.set_xlabel(axis_label(name))
plots.caption(fig, f"APOGEE labels of the training, validation and test sets, {source}.")
fig.tight_layout()
plots.legend_above(fig, axes, 3)
plt.show()

# %% [markdown]
# ## 6. Coverage: where the network will have to extrapolate
#
# The whole RAVE survey (Kiel diagram: labels from the RAVE pipeline; [α/M]–[M/H] plane: the
# true labels, for a simulated survey) against the training set (APOGEE labels). Outside the
# training set's region the network's labels are extrapolations.

# %%
fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 4))
axes[0].scatter(catalogue["teff_cal_madera"], catalogue["logg_cal_madera"], s=1, color="0.75", label="RAVE survey",
                rasterized=True)
train = kept[kept["split"] == "train"]
axes[0].scatter(train["teff"], train["logg"], s=3, color="tab:red", label="training set", rasterized=True)
axes[0].set_xlim(8000, 3500)
axes[0].set_ylim(5.5, -0.2)
axes[0].set_xlabel(axis_label("teff"))
axes[0].set_ylabel(axis_label("logg"))
axes[0].legend(markerscale=5)
if simulated:  # RAVE DR6 has no [α/M] from its pipeline: the truth stands in for the survey
    stars = data["truth_stars"][data["truth_stars"]["kind"] != "apogee_only"]
    axes[1].scatter(stars["m_h"], stars["alpha_m"], s=1, color="0.75", label="RAVE survey (truth)",
                    rasterized=True)
axes[1].scatter(train["m_h"], train["alpha_m"], s=3, color="tab:red", label="training set (APOGEE)",
                rasterized=True)
axes[1].set_xlabel(axis_label("m_h"))
axes[1].set_ylabel(axis_label("alpha_m"))
axes[1].legend(markerscale=5)
plots.caption(fig, f"Kiel diagram and [α/M]–[M/H] plane: RAVE survey (RAVE pipeline) and training set, {source}.")
plt.show()

snr_train = np.asarray(kept["snr_med_sparv"])
fig, ax = plt.subplots(figsize=(7, 3.2))
ax.hist(np.asarray(catalogue["snr_med_sparv"]), bins=np.geomspace(4, 300, 40), density=True, histtype="step",
        color="0.4", label="RAVE survey")
ax.hist(snr_train, bins=np.geomspace(4, 300, 40), density=True, histtype="step", color="tab:red",
        label="training + validation + test")
ax.set_xscale("log")
ax.set_xlabel("SNR (snr_med_sparv)")
ax.legend()
plots.caption(fig, f"SNR of the matched spectra against the whole survey, {source}.")
plt.show()

# %% [markdown]
# ## 7. How close are APOGEE's labels to the truth?
#
# Only for a simulated survey: the network learns APOGEE's labels, errors included, so the
# scatter of APOGEE's labels around the truth is a floor for what any comparison with
# APOGEE can show.

# %%
apogee_vs_truth = None
if simulated:
    true_labels = survey.read_truth(rave_dir, kept)["labels"]
    apogee_vs_truth = metrics.residual_table(trainingset.label_array(kept, LABELS), true_labels, LABELS,
                                             what="APOGEE − truth")
else:
    print("real data: no truth to compare with")
readable(apogee_vs_truth)

# %% [markdown]
# ## 8. Write the training set
#
# Write the kept spectra, their labels and split, and the provenance (cuts, cut flow, split) to
# `training_set.fits`. Only the kept spectra's rows are read from the cube: the whole survey's
# spectra would not fit in memory (4 GB for RAVE's 518,387).

# %%
training_path = products / PRODUCT_FILES["training_set"]
provenance = trainingset.provenance(kept, cutflow, allstar, source, data_source, split_fractions, split_seed)
_, flux, error, _ = cube.read_spectra_cube(cube_path, rows=index)
trainingset.write_training_set(training_path, trainingset.training_table(kept), flux, error, wave, provenance)
print(f"wrote {training_path}: {len(kept)} spectra "
      + ", ".join(f"{p} {int(np.sum(kept['split'] == p))}" for p in splits.PARTS))
glued.glue("split_counts", ", ".join(f"{glued.count(np.sum(kept['split'] == p))} {p}" for p in splits.PARTS))

# %% [markdown]
# ## Summary
#
# * {glue:text}`n_matched` RAVE observations were matched to APOGEE: {glue:text}`n_by_id` by
#   2MASS identifier and {glue:text}`n_by_sky` by sky position. The identifier matches lie a
#   median {glue:text}`sep_median` apart (at most {glue:text}`sep_max`).
# * The quality cuts kept {glue:text}`n_kept` observations; the cut that removed most was
#   "{glue:text}`top_cut`" ({glue:text}`top_removed`). Labels APOGEE lacks are masked, not
#   fatal: {glue:text}`n_masked` label values among the kept observations.
# * All {glue:text}`n_cube` RAVE spectra are on one grid of {glue:text}`n_pixels` pixels in
#   `spectra_cube.fits` ({glue:text}`n_rejected` flagged for too many bad pixels); the matched
#   ones, their labels and a stratified, star-by-star split ({glue:text}`split_counts`) are in
#   `training_set.fits`, with the cuts and the split in its header.
#
# ## What's next
#
# Notebook 03 builds the network of the slides and its extended variants; notebook 04
# trains them on this training set.
#
# ## Resources and references
#
# * The quality cuts are those of the paper this book reproduces, {cite:t}`2020A&A...644A.168G`.
# * RAVE DR6 {cite:p}`2020AJ....160...82S,2020AJ....160...83S`; APOGEE
#   {cite:p}`2017AJ....154...94M` and its pipeline ASPCAP {cite:p}`2016AJ....151..144G`, DR16
#   {cite:p}`2020ApJS..249....3A` and DR17 {cite:p}`2022ApJS..259...35A`; the identifiers
#   matched are those of 2MASS {cite:p}`2006AJ....131.1163S`.
# * The columns and flags of the APOGEE table: the
#   [allStar data model](https://data.sdss.org/datamodel/files/APOGEE_ASPCAP/APRED_VERS/ASPCAP_VERS/allStar.html).
# * Astropy {cite:p}`2022ApJ...935..167A`:
#   [matching catalogues on the sky](https://docs.astropy.org/en/stable/coordinates/matchsep.html)
#   and [FITS files](https://docs.astropy.org/en/stable/io/fits/).
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
