"""Figures shared by the notebooks (matplotlib/seaborn; each function draws on given axes)."""

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter, ScalarFormatter

from .costs import by_stage, stage_fits
from .labels import axis_label

LANDMARKS = {
    "Ca II": (8498.02, 8542.09, 8662.14),
    "Fe I": (8468.4, 8514.1, 8611.8, 8674.7, 8688.6),
    "Mg I": (8736.0,),
    "Si I": (8556.8, 8648.5, 8728.0, 8742.4),
    "Ti I": (8426.5, 8435.0),
    "Pa": (8467.3, 8502.5, 8545.4, 8598.4, 8665.0, 8750.5),
}
"""Lines marked on spectrum figures (Å, air): the landmarks of the RAVE region."""

LANDMARK_COLOURS = {"Ca II": "tab:red", "Fe I": "tab:blue", "Mg I": "tab:green", "Si I": "tab:purple",
                    "Ti I": "tab:orange", "Pa": "tab:cyan"}


def caption(fig, text):
    """Lay the figure out tightly, then write a caption line under it (the data source and profile)."""
    fig.tight_layout()
    fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=9, style="italic", wrap=True)


def mark_lines(ax, species=tuple(LANDMARKS)):
    """Mark the landmark lines of ``species`` with coloured ticks along the top of ``ax``."""
    for sp in species:
        for i, wl in enumerate(LANDMARKS[sp]):
            ax.axvline(wl, ymin=0.93, ymax=1.0, color=LANDMARK_COLOURS[sp], lw=1.5,
                       label=sp if i == 0 else None)


def spectrum_stack(ax, spectra, offset=0.6):
    """Stacked spectra: ``spectra`` is a list of (wave Å, flux, text) from bottom to top."""
    for k, (wave, flux, text) in enumerate(spectra):
        ax.plot(wave, flux + k * offset, lw=0.7, color="k")
        ax.text(wave[-1] + 3, 1 + k * offset, text, va="center", fontsize=8)
    ax.set_xlabel("wavelength [Å]")
    ax.set_ylabel("normalised flux + offset")


def kiel(ax, teff, logg, colour, clabel, **kwargs):
    """Kiel diagram (Teff falling to the right, log g falling upwards) coloured by ``colour``."""
    sc = ax.scatter(teff, logg, c=colour, s=kwargs.pop("s", 2), rasterized=True, **kwargs)
    ax.set_xlim(max(8000, np.nanmax(teff)), min(3500, np.nanmin(teff)))
    ax.set_ylim(5.2, -0.1)
    ax.set_xlabel(axis_label("teff"))
    ax.set_ylabel(axis_label("logg"))
    plt.colorbar(sc, ax=ax, label=clabel)
    return sc


def mollweide_xy(ra, dec):
    """Plot coordinates (rad) of (ra, dec) in degrees on a Mollweide axis, RA increasing to the left."""
    ra, dec = np.asarray(ra, float), np.asarray(dec, float)
    return -np.radians(((ra + 180) % 360) - 180), np.radians(dec)


def sky_map(fig, ra, dec, subplot=111, **kwargs):
    """Mollweide map of (ra, dec) in degrees, RA increasing to the left as on the sky."""
    ax = fig.add_subplot(subplot, projection="mollweide")
    ax.scatter(*mollweide_xy(ra, dec), s=kwargs.pop("s", 0.5), rasterized=True, **kwargs)
    ax.set_xticklabels([f"{h}h" for h in (14, 16, 18, 20, 22, 0, 2, 4, 6, 8, 10)])
    ax.grid(True, alpha=0.3)
    return ax


def architecture_diagram(ax, layers, title):
    """Draw a network as a column of boxes, one per layer: name, output shape and parameters.

    ``layers`` is ``model.layer_table(model)``; activation and reshaping layers are drawn
    smaller than the layers with weights.
    """
    n = len(layers)
    for i, row in enumerate(layers):
        y = n - 1 - i
        weighted = row["parameters"] > 0
        ax.add_patch(plt.Rectangle((0.1, y + 0.1), 0.8, 0.8 if weighted else 0.6,
                                   color="tab:blue" if weighted else "0.85", alpha=0.6 if weighted else 1.0))
        text = f"{row['layer']} ({row['class']})  {row['output_shape']}"
        if weighted:
            text += f"  — {row['parameters']:,} parameters"
        ax.text(0.5, y + 0.45, text, ha="center", va="center", fontsize=7.5)
        if i:
            ax.annotate("", xy=(0.5, y + 0.9), xytext=(0.5, y + 1.1), arrowprops=dict(arrowstyle="->", lw=0.8))
    ax.set_xlim(0, 1)
    ax.set_ylim(0, n)
    ax.axis("off")
    ax.set_title(f"{title}: {int(np.sum(layers['parameters'])):,} parameters", fontsize=10)


def plain_log_ticks(ax, axis="both"):
    """Plain numbers (10, 20, 50, 100 …) instead of 2×10¹ on logarithmic axes; no minor labels."""

    for which in ("x", "y") if axis == "both" else (axis,):
        a = ax.xaxis if which == "x" else ax.yaxis
        a.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
        a.set_major_formatter(ScalarFormatter())
        a.set_minor_formatter(NullFormatter())


def scaling(results, axes=None):
    """Cost against survey size from ``benchmarks/scale.py``'s results (``costs.read_results``).

    Left: wall time of each stage against the number of spectra, log–log, with a dotted slope-1
    (linear) guide through each stage's smallest run and the fitted slope in the legend. Right:
    each stage's peak resident memory (MB) against size. ``axes``: two axes (made if None).
    Returns the axes.
    """
    if axes is None:
        _, axes = plt.subplots(1, 2, figsize=(12, 4.6))
    ax_time, ax_rss = axes
    fits = stage_fits(results)
    for k, (name, (n, t, rss)) in enumerate(by_stage(results).items()):
        colour = f"C{k}"
        slope = fits[name]["slope"]
        label = name if np.isnan(slope) else f"{name} (slope {slope:.2f})"
        ax_time.plot(n, t, "o-", color=colour, lw=1.5, ms=6, label=label)
        guide = np.array([n[0], n[-1] if n[-1] > n[0] else 10 * n[0]])
        ax_time.plot(guide, t[0] * guide / guide[0], ":", color=colour, lw=1.2)
        ax_rss.plot(n, rss, "o-", color=colour, lw=1.5, ms=6, label=name)
    ax_time.plot([], [], "k:", lw=1.2, label="slope 1 (linear), through the smallest run")
    for ax, ylabel, title in ((ax_time, "wall time [s]", "time"), (ax_rss, "peak RSS [MB]", "memory")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("spectra in the survey", fontsize=12)
        ax.set_ylabel(ylabel, fontsize=12)
        ax.set_title(f"{title} of each stage against survey size", fontsize=12)
        ax.tick_params(labelsize=10)
        ax.grid(True, which="major", alpha=0.3)
        plain_log_ticks(ax)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))  # 0.5, 2, 1,000: no ".0"
        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,g}"))
    ax_time.legend(fontsize=9)
    ax_rss.legend(fontsize=9)
    return axes
