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
# # 01 — The data: RAVE spectra and APOGEE labels
#
# **Overview.** The network of {cite:t}`2020A&A...644A.168G` reads medium-resolution RAVE spectra
# of the Ca II triplet region (8410–8795 Å, R ≈ 7,500) and returns the labels that the
# high-resolution APOGEE survey measured for the same stars. This notebook looks at the
# data before anything is learnt from them: the files, a gallery of spectra across the
# Hertzsprung–Russell diagram, the signal-to-noise ratios, the stars' labels, and how
# closely the simulated spectra resemble real spectra of known stars.
#
# By default the book runs on a **simulated survey** written by `ravecnn_utils.simulation.simulate`
# in the file formats of RAVE DR6 and APOGEE DR17, because the real files cannot be
# downloaded where the book is built. Every figure says which data it shows.
#
# **Learning goals.** After this notebook you will be able to:
#
# * find your way around a survey folder in the RAVE DR6 and APOGEE formats: the spectrum
#   files, the RAVE catalogue, the APOGEE allStar table and the benchmark sample;
# * read a RAVE spectrum and recognise its landmark lines: the Ca II triplet, Fe I, Mg I, Si I,
#   Ti I and the Paschen lines of hydrogen;
# * describe a survey by its signal-to-noise ratios, its Kiel diagram and its [α/M]–[M/H] plane;
# * judge how closely the simulated spectra resemble real spectra of known stars, and what the
#   forward model leaves out.
#
# **Run time** (on 2 cores): smoke profile about 10 s; full profile about 25 s once the
# survey is on disk (writing the full simulated survey first takes about 20–30 s more; the
# `rave` profile's 518,387 spectra about 2–2.5 min).
#
# **Prerequisites.** None: if the survey folder is missing it is simulated here
# (`python -m ravecnn_utils.simulation.simulate` does the same from a shell). To run on the real
# releases, set `data_source = "real"`, `rave_dir`, `rave_catalogue` and `allstar_path`
# (see the book's page *Run on the real data*).

# %% [markdown]
# ## Imports
#
# NumPy, Matplotlib, seaborn and Astropy's `Table`, and from `ravecnn_utils` the survey
# readers, the plots and the simulation, which writes the survey if it is missing.
# `book.glued` glues the numbers this run measures into the text (the Summary quotes them).

# %%
from pathlib import Path

import numpy as np
import matplotlib.pyplot as plt
import seaborn as sns
from astropy.table import Table

from ravecnn_utils import plots, rave, survey
from ravecnn_utils.apogee import APOGEE_COLUMNS
from ravecnn_utils.book import glued
from ravecnn_utils.book.parameters import check_parameters
from ravecnn_utils.labels import LABELS, TEXT, axis_label
from ravecnn_utils.simulation import realism
from ravecnn_utils.simulation.galaxy import read_crossmatch_labels
from ravecnn_utils.simulation.linelist import read_linelist
from ravecnn_utils.simulation.simulate import simulate_survey
from ravecnn_utils.tables import readable

sns.set_theme(context="notebook", style="ticks")

# %% [markdown]
# The parameters: which data to read, or which survey to simulate. Papermill replaces them
# when the book is built; the book's page *Rerun with your own parameters* lists them all.

# %% tags=["parameters"]
# Quick run: the smoke values are in notebooks/profiles.yml; run with: python -m ravecnn_utils.book --profile smoke --only 01_data
data_source = "sim"              # "sim" (simulated survey) or "real" (RAVE DR6 + APOGEE files)
survey_dir = "../data/sim/full"  # the simulated survey (written here if absent)
sim_profile = "full"             # profile of the simulated survey ("smoke", "full" or "rave")
seed = 2020                      # seed of the simulated survey
rave_dir = None                  # real data: folder with spectra/ and the RAVE table file(s); None: survey_dir
rave_catalogue = None                        # RAVE DR6 table file(s) in rave_dir, joined on rave_obs_id; None: the simulated survey catalogue
allstar_path = None              # real data: APOGEE allStar file (DR16 or DR17); None: the one in survey_dir
allstar_release = None           # real data: dr16 or dr17 (an allStar extract without the release marker column); None: from the columns
n_real_fits = 46                 # real spectra fitted with the forward model (the first n, plus the labelled stars)

# %% [markdown]
# Every parameter is checked before anything runs: a wrong type, a value out of range or a
# misspelled name stops here with a message that names it.

# %%
check_parameters(globals(), "01_data")

# %% [markdown]
# ## 1. The survey on disk
#
# Find the RAVE and APOGEE files, simulate the survey first if `data_source = "sim"` and it is
# not on disk yet, and read its tables.

# %%
rave_dir, allstar_path = survey.resolve_sources(data_source, survey_dir, rave_dir, allstar_path)
if data_source == "sim":
    simulate_survey(survey_dir, profile=sim_profile, seed=seed)
data = survey.load_survey(rave_dir, rave_catalogue, allstar_path, allstar_release)
source = survey.describe(data["manifest"])
catalogue, allstar = data["catalogue"], data["allstar"]
simulated = data["manifest"] is not None
print(f"This run uses: {source}")

# %% [markdown]
# The folder holds one FITS file per RAVE observation, the RAVE catalogue (one row per
# observation), the APOGEE allStar table and a high-resolution benchmark sample.

# %%
readable(Table({
    "file": ["spectra/RAVE_<rave_obs_id>.fits", ", ".join(Path(f).name for f in catalogue.meta["source"]),
             allstar_path.name, "benchmark_highres.fits"],
    "rows": [len(catalogue), len(catalogue), len(allstar),
             0 if data["benchmark"] is None else len(data["benchmark"])],
    "what": ["spectrum (SPECTRUM, ERROR extensions)", "RAVE observations",
             f"APOGEE entries ({allstar.meta['release'].upper()})", "stars with high-resolution labels"],
}))

# %% [markdown]
# ## 2. Spectra across the HR diagram
#
# One spectrum per region of the Kiel diagram, read from its file with the same reader
# that serves real RAVE DR6 files. Coloured ticks mark the landmark lines: the Ca II
# triplet, Fe I, Mg I, Si I, Ti I and the Paschen lines of hydrogen. Like real RAVE spectra,
# the simulated ones have bad pixels (flux 0, with a huge error) and cosmic-ray hits (a
# single bright pixel); the figure marks them instead of drawing them as spikes.

# %%
truth_stars, truth_obs = (data["truth_stars"], data["truth_obs"]) if simulated else (None, None)
if simulated:
    picks = survey.gallery_selection(truth_stars, truth_obs)
    star_row = {sid: i for i, sid in enumerate(truth_stars["id_2mass"])}
    gallery = []
    for name, i in picks:
        s = truth_stars[star_row[truth_obs["id_2mass"][i]]]
        wave, flux, rel_error = rave.read_rave_spectrum(survey.spectrum_path(rave_dir, truth_obs["rave_obs_id"][i]))
        text = f"{name}\n{s['teff']:.0f} K, {s['logg']:.1f}, {s['m_h']:+.1f}\nSNR {truth_obs['snr'][i]:.0f}"
        gallery.append((wave, flux, text, rel_error))
else:
    order = np.argsort(catalogue["snr_med_sparv"])[::-1][:6]
    gallery = []
    for i in order:
        wave, flux, rel_error = rave.read_rave_spectrum(survey.spectrum_path(rave_dir, catalogue["rave_obs_id"][i]))
        gallery.append((wave, flux, f"{catalogue['rave_obs_id'][i]}\nSNR {catalogue['snr_med_sparv'][i]:.0f}",
                        rel_error))

fig, ax = plt.subplots(figsize=(plots.PAGE_WIDTH, 1.3 * len(gallery) + 1.5))
n_bad, n_hits = plots.spectrum_stack(ax, gallery)
plots.mark_lines(ax)
ax.set_xlim(8400, 8900)
ax.legend(loc="lower left", ncol=4, fontsize=9, bbox_to_anchor=(0, 1.01), frameon=False)
marks = [text for n, text in ((n_bad, "× a bad pixel (flux 0, flagged by its error)"),
                               (n_hits, "▲ a cosmic-ray hit (more than 6σ above the continuum)")) if n]
spike_note = (f" {'; '.join(marks)}: left out of the drawn line"
              + (", spikes the simulation puts in as a real detector has them." if simulated else ".") if marks else "")
plots.caption(fig, f"Spectra from the {source}; labels are the true Teff, log g, [M/H].{spike_note}")
plt.show()

# %% [markdown]
# ## 3. Signal-to-noise ratio
#
# The distribution of the RAVE catalogue's signal-to-noise ratio per pixel (`snr_med_sparv`),
# with its median and the SNR 80 cut of the slides' iDR6 giants, and a count of the repeat
# observations.

# %%
snr = np.asarray(catalogue["snr_med_sparv"])
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(snr, bins=np.geomspace(4, 300, 50), color="0.4")
ax.set_xscale("log")
ax.axvline(np.median(snr), color="tab:red", label=f"median {np.median(snr):.0f}")
ax.axvline(80, color="tab:blue", ls="--", label="SNR 80 (the slides' iDR6 giants)")
ax.set_xlabel("SNR per pixel (snr_med_sparv)")
ax.set_ylabel("observations")
ax.legend()
plots.caption(fig, f"RAVE observations of the {source}.")
plt.show()
n_repeat = len(catalogue) - rave.count_stars(catalogue)
print(f"{len(catalogue)} observations; median SNR {np.median(snr):.1f}; "
      f"{np.mean(snr > 80):.1%} above SNR 80; {n_repeat} repeat observations")
glued.glue_all(n_obs=glued.count(len(catalogue)), median_snr=glued.value(np.median(snr)),
               above_snr80=glued.percent(np.mean(snr > 80)), n_repeat=glued.count(n_repeat))

# %% [markdown]
# ## 4. Who the stars are: Kiel diagram and the [α/M]–[M/H] plane
#
# On the left the labels the RAVE pipeline itself derived from these spectra (with its
# errors of 100–300 K and 0.2–0.4 dex); on the right, for a simulated survey, the truth.

# %%
fig, axes = plt.subplots(1, 2, figsize=(plots.PAGE_WIDTH, 4), sharey=True)
plots.kiel(axes[0], catalogue["teff_cal_madera"], catalogue["logg_cal_madera"],
           catalogue["m_h_cal_madera"], "[M/H] (RAVE pipeline)", **plots.colour_scale("m_h"))
axes[0].set_title("RAVE pipeline")
if simulated:
    plots.kiel(axes[1], truth_stars["teff"], truth_stars["logg"], truth_stars["m_h"], "[M/H] (truth)",
               **plots.colour_scale("m_h"))
    axes[1].set_title("truth")
plots.caption(fig, f"All RAVE stars of the {source}.")
plt.show()

# %% [markdown]
# For a simulated survey, the true [α/M] against [M/H] of every star, coloured by the
# population it was drawn from.

# %%
if simulated:
    fig, ax = plt.subplots(figsize=(7, 4.5))
    sns.scatterplot(x=np.asarray(truth_stars["m_h"]), y=np.asarray(truth_stars["alpha_m"]),
                    hue=np.asarray(truth_stars["population"]), s=4, linewidth=0, alpha=0.6, ax=ax,
                    hue_order=list(plots.POPULATION_COLOURS), palette=plots.POPULATION_COLOURS, rasterized=True)
    ax.set_xlabel(axis_label("m_h"))
    ax.set_ylabel(axis_label("alpha_m"))
    ax.set_xlim(-2.5, 0.7)
    ax.legend(title="population", markerscale=4)
    plots.caption(fig, f"True labels of the {source}: the α-rich thick disc lies above the thin disc.")
    plt.show()

# %% [markdown]
# ## 5. The stars APOGEE observed
#
# The network learns from the stars both surveys observed. In the simulation their labels
# are drawn from the real RAVE DR6 × APOGEE DR16 cross-match of {cite:t}`2020A&A...644A.168G`
# (3,904 stars, `data/guiglion2020/`), resampled with a small jitter. The histograms
# compare the simulated APOGEE catalogue with those real labels.

# %%
real_labels = read_crossmatch_labels()
shift = {}  # |median of this run − median of the real labels| / their standard deviation, per label
fig, axes = plots.panel_grid(len(LABELS), 3, 2.4)
for ax, name in zip(axes, LABELS):
    values = np.ma.filled(allstar[APOGEE_COLUMNS[name]].astype(float), np.nan)
    real = real_labels[:, LABELS.index(name)]
    shift[name] = abs(np.nanmedian(values) - np.nanmedian(real)) / np.nanstd(real)
    bins = np.linspace(*np.nanpercentile(real_labels[:, LABELS.index(name)], [0.5, 99.5]), 40)
    ax.hist(real_labels[:, LABELS.index(name)], bins=bins, density=True, histtype="step", color="k",
            label="real cross-match (Guiglion+2020)")
    ax.hist(values[np.isfinite(values)], bins=bins, density=True, histtype="step", color="tab:red",
            label="APOGEE table of this run")
    ax.set_xlabel(axis_label(name))
plots.legend_above(fig, axes, 2)
plots.caption(fig, f"APOGEE labels of the {source} against the real cross-match labels.")
fig.tight_layout()
plt.show()
in_rave = np.isin(allstar["APOGEE_ID"], catalogue["id_2mass"])
print(f"{len(allstar)} APOGEE entries; {in_rave.sum()} share a 2MASS id with a RAVE observation")
worst = max(shift, key=shift.get)
glued.glue_all(n_apogee=glued.count(len(allstar)), n_shared=glued.count(in_rave.sum()),
               median_shift=glued.value(shift[worst]), median_shift_label=TEXT[worst])

# %% [markdown]
# ## 6. Does the simulation look like real stars?
#
# The simulated spectra come from the survey's forward model: an emulator of LTE syntheses
# computed with MOOG {cite:p}`1973PhDT.......180S` over ATLAS9 model atmospheres
# {cite:p}`2003IAUS..210P.A20C` with the VALD lines of the region (`data/emulator/README.md`
# says how it is made and what the physics leaves out). Nothing in it was fitted to real spectra;
# one choice was made after looking at the labelled giant below: the Ca II triplet's van der
# Waals damping is Barklem's, not MOOG's older default formulae for these three lines, which
# left its wings too weak (`ravecnn_utils/simulation/moog.py`).
# `data/real_cat_spectra/` holds real, observed spectra of this region (Indo-US library
# and Keck/DEIMOS templates). Two of them are Gaia FGK benchmark stars with accurate
# labels: HD 39587 (a solar-type dwarf) and HD 161096 (a K giant). Real and simulated
# spectra are compared at a common resolution (R = 4,000), after fitting each real
# spectrum's radial velocity and a linear continuum: first at the stars' literature labels.

# %%
bench = realism.benchmark_comparison()
fig, axes = plt.subplots(len(bench), 1, figsize=(8, 2.8 * len(bench)), sharex=True)
for ax, row in zip(np.atleast_1d(axes), bench):
    ax.plot(row["wave"], row["real"], color="k", lw=0.8, label=f"real ({row['library']})")
    ax.plot(row["wave"], row["simulated"], color="tab:red", lw=0.8, label="forward model")
    ax.plot(row["wave"], row["real"] - row["simulated"] + 0.3, color="0.5", lw=0.6, label="residual + 0.3")
    ax.set_title(f"{row['name']}: Teff {row['teff']:.0f} K, log g {row['logg']:.2f}, "
                 f"[Fe/H] {row['fe_h']:+.2f} — RMS {row['rms']:.3f}", fontsize=10)
    ax.set_ylabel("flux")
    ax.legend(fontsize=8, loc="lower right", ncol=3)
np.atleast_1d(axes)[-1].set_xlabel("wavelength [Å]")
plots.caption(fig, "Real spectra (black) and the forward model at the stars' benchmark labels (red), "
                   "both at R = 4,000.")
plt.show()
glued.glue("n_lines", glued.count(len(read_linelist())))  # the forward model's lines
glued.glue("bench_rms", " and ".join(f"{row['rms']:.3f} ({row['name']})" for row in bench))
readable(bench["name", "library", "teff", "logg", "fe_h", "velocity", "rms"])

# %% [markdown]
# The syntheses know only the {glue:text}`n_lines` strongest lines of the region (atomic and Paschen) and no
# molecular lines, so the many weak lines of real spectra stay in the residual.
#
# Then the other way round, as a spectroscopist would: Teff, log g and [Fe/H] (with the
# radial velocity and the continuum) fitted to every real spectrum, from a giant's and a
# dwarf's start. For the two labelled stars the fitted labels stand beside the literature
# ones; for all spectra, the RMS of the best fit measures how far real spectra are from any
# simulated one. The other stars' literature labels were deliberately not looked up: they stay
# an independent test.

# %%
literature = realism.read_real_labels()
fits_all = realism.fit_all(spectra=realism.spectra_to_fit(realism.read_real_spectra(), literature, n_real_fits))
recovered = realism.fit_beside_literature(fits_all, literature)
readable(recovered)
fig, ax = plt.subplots(figsize=(7, 3.5))
ax.hist(fits_all["rms"], bins=20, color="0.4")
ax.set_xlabel("RMS flux residual of the best fit (R = 4,000)")
ax.set_ylabel("real spectra")
plots.caption(fig, f"Best forward-model fit to {len(fits_all)} real spectra (Indo-US, DEIMOS).")
plt.show()
print(f"median RMS over {len(fits_all)} real spectra: {np.median(fits_all['rms']):.3f} "
      f"(16–84 %: {np.percentile(fits_all['rms'], 16):.3f}–{np.percentile(fits_all['rms'], 84):.3f})")
glued.glue_all(n_real_fits=glued.count(len(fits_all)), median_fit_rms=f"{np.median(fits_all['rms']):.3f}",
               fit_labelled="; ".join(f"{r['star']} Teff {r['Teff fit [K]']:.0f} K, log g {r['log g fit']:.2f}, "
                                      f"[Fe/H] {r['[Fe/H] fit']:+.2f} (literature {r['Teff literature [K]']:.0f} K, "
                                      f"{r['log g literature']:.2f}, {r['[Fe/H] literature']:+.2f})" for r in recovered))

# %% [markdown]
# ## 7. Where the stars are
#
# The sky positions of the RAVE observations and of the APOGEE stars RAVE did not observe,
# in equatorial coordinates (Mollweide projection, RA increasing to the left as on the sky,
# with the Galactic plane).

# %%
fig = plt.figure(figsize=(8.5, 4.8))
ax = plots.sky_map(fig, catalogue["ra_input"], catalogue["dec_input"], color="0.3", s=2, label="RAVE")
apogee_only = ~np.isin(allstar["APOGEE_ID"], catalogue["id_2mass"])
ax.scatter(*plots.sky_xy(allstar["RA"][apogee_only], allstar["DEC"][apogee_only]), s=2, color="tab:red",
           label="APOGEE only", rasterized=True)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.04), ncol=3, markerscale=4, fontsize=9, frameon=False)
where = (" The simulation puts the APOGEE-only stars in the northern sky (Dec > 5°), where RAVE did not look."
         if simulated else "")
plots.caption(fig, f"Sky positions (equatorial, Mollweide; RA increases to the left) of the {source}: "
                   f"RAVE observed the southern sky.{where}")
plt.show()

# %% [markdown]
# ## Summary
#
# * The survey folder holds {glue:text}`n_obs` RAVE-format spectra with their RAVE catalogue,
#   an APOGEE allStar table of {glue:text}`n_apogee` entries ({glue:text}`n_shared` of them
#   share a 2MASS identifier with a RAVE observation) and a benchmark sample; the same readers
#   serve real files.
# * The spectra show the Ca II triplet, Fe I, Mg I, Si I and Ti I lines and, in hot stars,
#   the Paschen series. Their median SNR is {glue:text}`median_snr`; {glue:text}`above_snr80`
#   of the observations have SNR > 80, and {glue:text}`n_repeat` are repeat observations.
# * The labels of the stars APOGEE observed are drawn from the real cross-match's: the
#   medians of this run's APOGEE table lie within {glue:text}`median_shift` standard deviations
#   of the real labels' medians (the largest offset is in {glue:text}`median_shift_label`).
# * The forward model (MOOG syntheses, nothing tuned on real stars) reproduces the real spectra
#   of the two benchmark stars at their literature labels to an RMS of {glue:text}`bench_rms`.
#   Fitted freely, it gives them {glue:text}`fit_labelled`. Its best fits to
#   {glue:text}`n_real_fits` real spectra leave a median RMS of {glue:text}`median_fit_rms`,
#   and the residuals of section 6 show the weak and molecular lines it lacks.
#
# ## What's next
#
# Notebook 02 cross-matches RAVE and APOGEE, applies quality cuts and builds the
# training, validation and test sets.
#
# ## Resources and references
#
# * The network this book reproduces: {cite:t}`2020A&A...644A.168G`; the real cross-match
#   labels of section 5 are theirs (`data/guiglion2020/`).
# * RAVE DR6: the survey and its spectra {cite:p}`2020AJ....160...82S`, the pipeline's labels
#   of section 4 {cite:p}`2020AJ....160...83S`.
# * APOGEE {cite:p}`2017AJ....154...94M`, its pipeline ASPCAP {cite:p}`2016AJ....151..144G`,
#   and its data releases DR16 {cite:p}`2020ApJS..249....3A` and DR17 {cite:p}`2022ApJS..259...35A`.
# * The real spectra of section 6: the Indo-US library {cite:p}`2004ApJS..152..251V`, the
#   Keck/DEIMOS templates {cite:p}`2012MNRAS.426.1475U` and the Gaia FGK benchmark stars
#   {cite:p}`2024A&A...682A.145S`; the forward model's lines come from VALD
#   {cite:p}`2015PhyS...90e4005R`.
# * Astropy {cite:p}`2022ApJ...935..167A`: [tables](https://docs.astropy.org/en/stable/table/)
#   and [FITS files](https://docs.astropy.org/en/stable/io/fits/).
# * Running the notebooks: [papermill](https://papermill.readthedocs.io/en/latest/usage-parameterize.html)
#   executes them with the values of `notebooks/profiles.yml`, and
#   [jupytext](https://jupytext.readthedocs.io/en/latest/formats-scripts.html) keeps them as the
#   percent-format `.py` files of `notebooks/`.
