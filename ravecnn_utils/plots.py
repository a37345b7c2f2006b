"""Figures shared by the notebooks (matplotlib/seaborn; each function draws on given axes)."""

import astropy.units as u
import matplotlib.pyplot as plt
import numpy as np
from astropy.coordinates import Longitude, SkyCoord
from matplotlib.colors import LogNorm, Normalize
from matplotlib.layout_engine import ConstrainedLayoutEngine, TightLayoutEngine
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

LANDMARK_COLOURS = {"Ca II": "#e7298a", "Fe I": "#1b9e77", "Mg I": "#66a61e", "Si I": "#7570b3",
                    "Ti I": "#e6ab02", "Pa": "#d95f02"}
"""One colour per species (ColorBrewer Dark2), none of them a population's colour."""

POPULATION_COLOURS = {"thin": "tab:blue", "thick": "tab:red", "halo": "0.2", "bulge": "tab:brown"}
"""One colour per Galactic population, in every figure that separates them."""

COLOUR_MAPS = {"snr": "plasma", "m_h": "viridis"}
"""One colour map per meaning across the book: SNR is always ``plasma``, [M/H] always ``viridis``."""

COLOUR_RANGES = {"snr": (10, 200), "m_h": (-1.5, 0.5)}
"""The range each colour map spans: SNR 10–200 per pixel (log scale), [M/H] −1.5 to +0.5 dex."""

PAGE_WIDTH = 8.5
"""Widest figure (inches; saved at 100 dpi): the book's text column is 688 px wide, so a wider
figure is shrunk and its 10-pt text read smaller (``book.checks.MAX_FIGURE_SHRINK``)."""

COLOUR_LABELS = {"snr": "RAVE SNR per pixel", "m_h": "[M/H] [dex]"}
"""The colourbar's label for each meaning."""


def panel_grid(n, ncols, row_height, width=PAGE_WIDTH, **kwargs):
    """A figure of ``n`` panels in rows of at most ``ncols``, ``width`` inches wide and
    ``row_height`` inches per row (``kwargs`` go to ``plt.subplots``); the cells left over are
    switched off. Returns the figure and the ``n`` axes in reading order."""
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(width, row_height * nrows), squeeze=False, **kwargs)
    for ax in axes.flat[n:]:
        ax.axis("off")
    return fig, axes.flat[:n]


def legend_above(fig, axes, ncol):
    """One legend for the whole figure, above it in ``ncol`` columns, with the entries of the
    panel of ``axes`` that has the most (so no panel's data lies under a legend)."""
    handles, labels = max((ax.get_legend_handles_labels() for ax in axes), key=lambda hl: len(hl[1]))
    return fig.legend(handles, labels, loc="lower center", bbox_to_anchor=(0.5, 1), ncol=ncol, fontsize=9,
                      frameon=False)


def colour_scale(meaning):
    """``cmap`` and ``norm`` keyword arguments that colour points by ``meaning`` ('snr', 'm_h')
    the same way in every figure (SNR on a log scale)."""
    if meaning not in COLOUR_MAPS:
        raise ValueError(f"colour_scale: unknown meaning {meaning!r}; known: {', '.join(COLOUR_MAPS)}")
    lo, hi = COLOUR_RANGES[meaning]
    return dict(cmap=COLOUR_MAPS[meaning], norm=LogNorm(lo, hi) if meaning == "snr" else Normalize(lo, hi))


def colourbar(fig, mappable, ax, meaning, label=None):
    """A colourbar beside ``ax`` (one axes or several) for points coloured by ``meaning``."""
    bar = fig.colorbar(mappable, ax=ax, label=label or COLOUR_LABELS[meaning], shrink=0.7, aspect=30, pad=0.02)
    if meaning == "snr":
        lo, hi = COLOUR_RANGES["snr"]
        bar.set_ticks([t for t in (10, 20, 50, 100, 200, 500) if lo <= t <= hi])
        bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
        bar.ax.yaxis.set_minor_formatter(NullFormatter())
    return bar


def caption(fig, text):
    """Lay the figure out tightly (unless it has a layout engine of its own), then write a caption
    line under it (the data source and profile)."""
    if not isinstance(fig.get_layout_engine(), (ConstrainedLayoutEngine, TightLayoutEngine)):
        fig.tight_layout()
    fig.text(0.5, 0.0, text, ha="center", va="top", fontsize=9, style="italic", wrap=True)


def mark_lines(ax, species=tuple(LANDMARKS)):
    """Mark the landmark lines of ``species`` with coloured ticks along the top of ``ax``."""
    for sp in species:
        for i, wl in enumerate(LANDMARKS[sp]):
            ax.axvline(wl, ymin=0.93, ymax=1.0, color=LANDMARK_COLOURS[sp], lw=1.5,
                       label=sp if i == 0 else None)


def spikes(flux, rel_error, nsigma=6.0):
    """Pixels a reader would see as spikes: ``bad`` (flux ≤ 0 or relative error ≥ 1, the way RAVE
    and the simulation flag a dead pixel) and ``hits`` (flux more than ``nsigma`` σ above the
    continuum at 1, as a cosmic ray leaves it). Returns two boolean arrays shaped like ``flux``."""
    flux, rel_error = np.asarray(flux, float), np.asarray(rel_error, float)
    bad = (flux <= 0) | (rel_error >= 1) | ~np.isfinite(flux)
    hits = ~bad & (flux - 1 > nsigma * rel_error * np.abs(flux))
    return bad, hits


def spectrum_stack(ax, spectra, offset=0.6):
    """Stacked spectra: ``spectra`` is a list of (wave Å, flux, text) or (wave, flux, text,
    rel_error) from bottom to top. With the relative error, bad pixels (``spikes``) are left out
    of the line and marked ×, cosmic-ray hits marked ▲ at the continuum; returns the number of each."""
    counts = np.zeros(2, int)
    for k, (wave, flux, text, *rest) in enumerate(spectra):
        flux = np.array(flux, float)
        if rest:
            for j, (mask, marker, what) in enumerate(zip(spikes(flux, rest[0]), "x^", ("bad pixel", "cosmic-ray hit"))):
                ax.plot(wave[mask], np.full(mask.sum(), 1.12 + k * offset), marker, color="k", ms=6, mew=1.2,
                        label=f"{what} (left out of the line)" if mask.any() and not counts[j] else None)
                counts[j] += mask.sum()
                flux[mask] = np.nan
        ax.plot(wave, flux + k * offset, lw=0.7, color="k")
        ax.text(wave[-1] + 3, 1 + k * offset, text, va="center", fontsize=10)
    ax.set_xlabel("wavelength [Å]")
    ax.set_ylabel("normalised flux + offset")
    return tuple(int(c) for c in counts)


def kiel(ax, teff, logg, colour, clabel, **kwargs):
    """Kiel diagram (Teff falling to the right, log g falling upwards) coloured by ``colour``."""
    sc = ax.scatter(teff, logg, c=colour, s=kwargs.pop("s", 2), rasterized=True, **kwargs)
    ax.set_xlim(max(8000, np.nanmax(teff)), min(3500, np.nanmin(teff)))
    ax.set_ylim(5.2, -0.1)
    ax.set_xlabel(axis_label("teff"))
    ax.set_ylabel(axis_label("logg"))
    plt.colorbar(sc, ax=ax, label=clabel)
    return sc


def sky_xy(ra, dec):
    """Plot coordinates (rad) on a Mollweide or Aitoff axis of (ra, dec) in degrees: RA wrapped
    at 180° (astropy ``Longitude``) and mirrored, so that it increases to the LEFT as on the sky."""
    lon = Longitude(np.asarray(ra, float) * u.deg).wrap_at(180 * u.deg).radian
    return -lon, np.radians(np.asarray(dec, float))


def sky_map(fig, ra, dec, subplot=111, **kwargs):
    """Mollweide map of (ra, dec) in degrees (equatorial), RA increasing to the left (0h in the
    middle, 12h at both edges), the Galactic plane drawn dashed. Returns the axes."""
    ax = fig.add_subplot(subplot, projection="mollweide")
    ax.scatter(*sky_xy(ra, dec), s=kwargs.pop("s", 0.5), rasterized=True, **kwargs)
    ticks = np.radians(np.arange(-150, 151, 30))
    ax.set_xticks(ticks)
    ax.set_xticklabels([f"{int(round(np.degrees(-t) % 360 / 15))}h" for t in ticks], fontsize=9)
    plane = SkyCoord(l=np.linspace(0, 360, 721) * u.deg, b=np.zeros(721) * u.deg, frame="galactic").icrs
    x, y = sky_xy(plane.ra.deg, plane.dec.deg)
    order = np.argsort(x)
    ax.plot(x[order], y[order], "--", color="tab:green", lw=1, label="Galactic plane")
    ax.grid(True, alpha=0.3)
    return ax


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
        _, axes = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 4))
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
