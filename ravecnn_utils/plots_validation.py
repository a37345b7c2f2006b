"""Notebook 06's figures: estimates against reference labels (1:1, coloured by SNR) and the
residuals beside the Cramér–Rao bound."""

import textwrap

import matplotlib.pyplot as plt
import numpy as np

from .labels import LATEX, UNITS, axis_label
from .metrics import bias_and_scatter, binned_residuals, rms_in_bins
from .plots import colour_scale, colourbar, plain_log_ticks

BOUND_MEANING = (
    "Cramér–Rao bound: the smallest scatter an UNBIASED estimator could reach from these spectra, "
    "computed from the simulator's own forward model (its derivatives and each spectrum's noise). "
    "The network is not unbiased: it has learnt the training set's labels (a prior), in which the "
    "abundances follow [M/H] and [α/M]. Its scatter can therefore sit below the bound with all nine "
    "labels unknown (log g's, for one); the bound with the abundances known is the fairer yardstick."
)
"""What the bound means, written on the figure that draws it (notebook 06, section 3)."""


def one_to_one_grid(reference, estimate, labels, snr, reference_name, ncols=3, panel=2.4):
    """One panel per label: ``estimate`` against ``reference`` ((n, len(labels)) arrays) with
    the 1:1 line, points coloured by ``snr`` (``plots.colour_scale('snr')``) and one colourbar
    for all panels; each title gives the bias ± robust scatter (estimate − reference), and the
    number of stars. Labels without a finite pair are left out. Returns the figure."""
    reference, estimate = np.asarray(reference, float), np.asarray(estimate, float)
    shown = [j for j in range(len(labels)) if (np.isfinite(reference[:, j]) & np.isfinite(estimate[:, j])).any()]
    if not shown:
        raise ValueError(f"one_to_one_grid: no label of {list(labels)} has a finite reference and estimate")
    ncols = 2 if len(shown) in (2, 4) else min(ncols, len(shown))
    nrows = int(np.ceil(len(shown) / ncols))
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel * ncols + 1.2, panel * nrows), squeeze=False,
                             layout="constrained")
    points = None
    for ax, j in zip(axes.flat, shown):
        name = labels[j]
        ok = np.isfinite(reference[:, j]) & np.isfinite(estimate[:, j])
        points = ax.scatter(reference[ok, j], estimate[ok, j], c=np.asarray(snr, float)[ok], s=10,
                            alpha=0.8, rasterized=True, **colour_scale("snr"))
        lo, hi = np.nanpercentile(np.r_[reference[ok, j], estimate[ok, j]], [0.5, 99.5])
        lims = (lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo))
        ax.plot(lims, lims, color="0.3", lw=0.8)
        ax.set_xlim(lims)
        ax.set_ylim(lims)
        bias, scatter = bias_and_scatter(estimate[ok, j] - reference[ok, j])
        ax.set_title(f"{LATEX[name]}: {bias:+.3g} ± {scatter:.3g} {UNITS[name]} ({ok.sum()})", fontsize=10)
        ax.set_xlabel(f"{reference_name} {axis_label(name)}", fontsize=10)
        ax.set_ylabel("network", fontsize=10)
        ax.tick_params(labelsize=9)
    for ax in axes.flat[len(shown):]:
        ax.set_visible(False)
    colourbar(fig, points, axes, "snr")
    return fig


def residuals_and_bounds(snr, residuals, bound_free, bound_known, labels, edges, main, min_spectra=5):
    """The Cramér–Rao figure, one panel per label: each spectrum's residual (estimate − truth)
    of the network ``main`` against its SNR (grey points), ± the robust scatter of every network
    per SNR bin with at least ``min_spectra`` spectra (steps), and ± the RMS Cramér–Rao bound per
    bin with all nine labels unknown (dashed) and with the abundances known (dotted), drawn over
    the same residuals; ``BOUND_MEANING`` is written under the panels.

    ``residuals``: {network: (n, len(labels))}; ``bound_free``, ``bound_known``: (n, len(labels))
    per-spectrum bounds; ``snr`` (n,); ``edges`` the SNR bins. Returns the figure.
    """
    snr = np.asarray(snr, float)
    ncols = 2 if len(labels) > 1 else 1
    nrows = int(np.ceil(len(labels) / ncols))
    height = 3.0 * nrows + 2.2
    fig, axes = plt.subplots(nrows, ncols, figsize=(8, height), squeeze=False, sharex=True)
    top = min(edges[-1], np.nanmax(snr) * 1.3)
    stairs_x = np.minimum(np.asarray(edges, float), top)
    for j, (ax, name) in enumerate(zip(axes.flat, labels)):
        res = np.asarray(residuals[main], float)[:, j]
        ax.scatter(snr, res, s=5, color="0.6", alpha=0.6, rasterized=True, label=f"{main} − truth, each spectrum")
        biggest = []
        for k, (network, r) in enumerate(residuals.items()):
            binned = binned_residuals(np.asarray(r, float)[:, j], snr, edges)
            scatter = np.where(binned["n"] >= min_spectra, binned["scatter"], np.nan)
            for sign in (1, -1):
                ax.stairs(sign * scatter, stairs_x, baseline=None, color=f"C{k}", lw=2,
                          label=f"± robust scatter, {network}" if sign > 0 else None)
            biggest.append(np.nanmax(scatter, initial=0))
        for bound, style, what in ((bound_free, "--", "all nine labels unknown"),
                                   (bound_known, ":", "abundances known")):
            rms = rms_in_bins(np.asarray(bound, float)[:, j], snr, edges)
            for sign in (1, -1):
                ax.stairs(sign * rms, stairs_x, baseline=None, color="k", ls=style, lw=1.5,
                          label=f"± Cramér–Rao bound, {what}" if sign > 0 else None)
            biggest.append(np.nanmax(rms, initial=0))
        ax.axhline(0, color="k", lw=0.5)
        lim = 1.3 * max(biggest) if max(biggest) > 0 else 1.0
        ax.set_ylim(-lim, lim)
        ax.set_xscale("log")
        ax.set_xlim(edges[0], top)
        plain_log_ticks(ax, "x")
        ax.set_title(f"{LATEX[name]} [{UNITS[name]}]", fontsize=11)
        ax.set_ylabel(f"estimate − truth [{UNITS[name]}]", fontsize=10)
        ax.tick_params(labelsize=9)
    for ax in axes.flat[len(labels):]:
        ax.set_visible(False)
    for ax in axes[-1]:
        ax.set_xlabel("true SNR per pixel", fontsize=10)
    handles, names = axes.flat[0].get_legend_handles_labels()
    fig.set_layout_engine("tight", rect=(0, 1.85 / height, 1, 1))   # room below for the legend and the text
    fig.legend(handles, names, loc="lower center", bbox_to_anchor=(0.5, 1.2 / height), ncol=2, fontsize=9,
               markerscale=3, frameon=False)
    fig.text(0.5, 1.12 / height, textwrap.fill(BOUND_MEANING, 100), ha="center", va="top", fontsize=9.5,
             bbox=dict(boxstyle="round", facecolor="#fff7e0", edgecolor="0.6"))
    return fig
