"""A mock Milky Way as RAVE saw it: populations, stellar labels, distances, sky, photometry.

Two kinds of star:

* field stars (``draw_field_stars``): thin disc, α-enhanced thick disc, halo and
  bulge, each with its own [M/H], [α/M] and age distribution, on metallicity-
  dependent Teff–log g sequences (main sequence, turn-off and subgiants, red giant
  branch, red clump);
* cross-match stars (``draw_crossmatch_stars``): the stars APOGEE also observed,
  resampled with a small Gaussian jitter from the 3,904 real APOGEE DR16 label
  vectors of the Guiglion et al. (2020) cross-match, so that their joint label
  distribution is the real one.

The individual abundances of field stars follow linear relations in [M/H] and
[α/M] fitted to that same real table (``abundance_relations``).
"""

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table

from ..discs import chemical_population
from ..labels import GUIGLION2020_COLUMNS, LABELS
from ..paths import CROSSMATCH_LABELS_FILE

POPULATIONS = {
    #          fraction, [M/H] mean and sd (dex), age range (Gyr)
    "thin":  dict(fraction=0.76, m_h=(-0.05, 0.22), age=(0.3, 10.0)),
    "thick": dict(fraction=0.18, m_h=(-0.50, 0.30), age=(9.0, 12.5)),
    "halo":  dict(fraction=0.04, m_h=(-1.50, 0.50), age=(11.0, 13.5)),
    "bulge": dict(fraction=0.02, m_h=(-0.05, 0.35), age=(8.0, 12.0)),
}
"""Population fractions of a local magnitude-limited (9 < I < 12) sample, their
metallicity distributions and ages."""

STAGES = ("main_sequence", "turn_off", "red_giant_branch", "red_clump")
STAGE_FRACTIONS = {
    "thin": (0.42, 0.13, 0.30, 0.15),
    "thick": (0.35, 0.15, 0.35, 0.15),
    "halo": (0.25, 0.20, 0.45, 0.10),
    "bulge": (0.00, 0.00, 0.75, 0.25),
}
"""Fractions of each evolutionary stage per population (RAVE: about half giants)."""

ABUNDANCE_TARGETS = ("fe_h", "si_fe", "al_fe", "mg_fe", "ni_fe")


M_H_RANGE = (-2.5, 0.6)
"""[M/H] range (dex) of the field stars."""


def truncated_normal(mean, sd, bounds, n, rng):
    """``n`` draws of N(mean, sd²) restricted to ``bounds`` (redrawn, not clipped: no pile-up at the edges)."""
    out = rng.normal(mean, sd, n)
    bad = (out < bounds[0]) | (out > bounds[1])
    while bad.any():
        out[bad] = rng.normal(mean, sd, bad.sum())
        bad = (out < bounds[0]) | (out > bounds[1])
    return out


def alpha_sequence(population, m_h, rng):
    """[α/M] (dex) of stars of a population at metallicity ``m_h``: thin disc low-α,
    thick disc a high-α plateau with a knee at [M/H] ≈ −0.6, halo α-enhanced."""
    noise = rng.normal(0, 0.03, np.shape(m_h))
    if population == "thin":
        return np.clip(-0.08 * m_h, -0.05, 0.12) + noise
    if population == "thick":
        return np.where(m_h < -0.6, 0.26, 0.26 - 0.22 * (m_h + 0.6)) + noise
    if population == "halo":
        return 0.30 + rng.normal(0, 0.06, np.shape(m_h))
    return np.clip(0.22 - 0.2 * (m_h + 0.3), 0.0, 0.3) + noise


def abundance_relations(path=CROSSMATCH_LABELS_FILE):
    """Linear fits of [Fe/H]−[M/H], [Si/Fe], [Al/Fe], [Mg/Fe], [Ni/Fe] on (1, [M/H], [α/M])
    in the real APOGEE cross-match. Returns {name: (coefficients, residual sd)}."""
    real = read_crossmatch_labels(path)
    x = np.column_stack([np.ones(len(real)), real[:, 2], real[:, 4]])
    out = {}
    for name in ABUNDANCE_TARGETS:
        y = real[:, LABELS.index(name)] - (real[:, 2] if name == "fe_h" else 0)
        coef = np.linalg.lstsq(x, y, rcond=None)[0]
        out[name] = (coef, float(np.std(y - x @ coef)))
    return out


def read_crossmatch_labels(path=CROSSMATCH_LABELS_FILE):
    """The real APOGEE DR16 labels of the Guiglion et al. (2020) cross-match, (3904, 9) in LABELS order."""
    table = Table.read(path, format="ascii.csv")
    missing = [c for c in GUIGLION2020_COLUMNS.values() if c not in table.colnames]
    if missing:
        raise ValueError(f"{path} lacks the label column(s) {missing}")
    values = np.column_stack([np.asarray(table[GUIGLION2020_COLUMNS[n]], float) for n in LABELS])
    return values[np.all(np.isfinite(values), axis=1)]


def _teff_rgb(logg, m_h):
    """Red giant branch Teff (K): cooler up the branch and at higher metallicity."""
    return np.clip(4650 + 230 * (logg - 2.5) - 200 * m_h, 3550, 5600)


def _teff_turn_off(age, m_h):
    """Main-sequence turn-off Teff (K): hot for young and metal-poor populations."""
    return 5850 + 2200 * np.exp(-age / 1.5) - 250 * m_h


def stellar_parameters(stage, age, m_h, rng):
    """Teff (K) and log g (dex) of stars of one evolutionary stage (arrays of equal length)."""
    n = len(m_h)
    t_to = _teff_turn_off(age, m_h)
    if stage == "main_sequence":
        teff = np.maximum(t_to - np.abs(rng.normal(0, 650, n)), 3900)
        logg = 4.44 - 2.3e-4 * (teff - 5777) + rng.normal(0, 0.08, n)
    elif stage == "turn_off":
        s = rng.uniform(0, 1, n)
        logg = 4.05 - 0.6 * s + rng.normal(0, 0.05, n)
        teff = (t_to - 150) * (1 - s) + _teff_rgb(3.5, m_h) * s + rng.normal(0, 60, n)
    elif stage == "red_giant_branch":
        logg = 3.5 - 3.0 * rng.beta(2.0, 2.2, n)
        teff = _teff_rgb(logg, m_h) + rng.normal(0, 70, n)
    elif stage == "red_clump":
        logg = rng.normal(2.45, 0.08, n)
        teff = np.clip(4780 - 300 * m_h, 4500, 5600) + rng.normal(0, 60, n)
    else:
        raise ValueError(f"unknown evolutionary stage {stage!r}; known: {STAGES}")
    return teff, np.clip(logg, 0.0, 5.0)


def draw_field_stars(n, rng, relations=None):
    """``n`` mock Milky Way stars: population, stage, age (Gyr) and the nine labels."""
    relations = relations or abundance_relations()
    names = list(POPULATIONS)
    pop = rng.choice(len(names), n, p=[POPULATIONS[p]["fraction"] for p in names])
    labels = np.zeros((n, len(LABELS)))
    age = np.zeros(n)
    stage = np.empty(n, dtype="U16")
    for i, name in enumerate(names):
        sel = np.flatnonzero(pop == i)
        spec = POPULATIONS[name]
        m_h = truncated_normal(*spec["m_h"], M_H_RANGE, sel.size, rng)
        age[sel] = rng.uniform(*spec["age"], sel.size)
        st = rng.choice(len(STAGES), sel.size, p=STAGE_FRACTIONS[name])
        for j, stage_name in enumerate(STAGES):
            part = sel[st == j]
            stage[part] = stage_name
            labels[part, 0], labels[part, 1] = stellar_parameters(
                stage_name, age[part], m_h[st == j], rng)
        labels[sel, 2] = m_h
        labels[sel, 4] = alpha_sequence(name, m_h, rng)
    x = np.column_stack([np.ones(n), labels[:, 2], labels[:, 4]])
    for name in ABUNDANCE_TARGETS:
        coef, sd = relations[name]
        labels[:, LABELS.index(name)] = x @ coef + rng.normal(0, sd, n)
    labels[:, LABELS.index("fe_h")] += labels[:, 2]
    return Table({"population": np.array(names)[pop], "stage": stage, "age": age,
                  **{name: labels[:, k] for k, name in enumerate(LABELS)}})


def draw_crossmatch_stars(n, rng, path=CROSSMATCH_LABELS_FILE, jitter=0.3):
    """``n`` stars whose labels resample the real APOGEE cross-match with a Gaussian
    jitter of ``jitter`` × the sample covariance (so no real row is copied)."""
    if jitter <= 0:
        raise ValueError(f"jitter must be positive (rows must not be copied), got {jitter}")
    real = read_crossmatch_labels(path)
    chol = np.linalg.cholesky(np.cov(real.T) * jitter**2)
    labels = real[rng.integers(0, len(real), n)] + rng.normal(size=(n, len(LABELS))) @ chol.T
    labels[:, 0] = np.clip(labels[:, 0], 3500, 8000)
    labels[:, 1] = np.clip(labels[:, 1], 0.0, 5.0)
    pop = chemical_population(labels[:, 2], labels[:, 4])
    stage = np.where(labels[:, 1] > 3.8, "main_sequence",
                     np.where(labels[:, 1] > 3.4, "turn_off",
                              np.where(np.abs(labels[:, 1] - 2.45) < 0.12, "red_clump", "red_giant_branch")))
    return Table({"population": pop, "stage": stage, "age": np.full(n, np.nan),
                  **{name: labels[:, k] for k, name in enumerate(LABELS)}})


# ------------------------------------------------------------------ photometry
EXTINCTION_RATIOS = {"G": 0.83, "BP": 1.08, "RP": 0.63, "J": 0.28, "H": 0.18, "K": 0.12, "W1": 0.07, "W2": 0.05}
"""A_band / A_V for the photometric bands (rough, for a K giant)."""


def absolute_magnitudes(teff, logg, mass=1.2):
    """Absolute magnitudes (mag) in G, BP, RP, J, H, K, W1, W2 and I (DENIS-like) from
    Teff (K) and log g (dex), with R² = GM/g and rough colour–Teff relations."""
    theta = 5040.0 / teff
    log_l = np.log10(mass) - (logg - 4.44) + 4 * np.log10(teff / 5777.0)
    m_v = 4.74 - 2.5 * log_l - np.clip(-0.07 - 6.0 * (theta - 0.87) ** 2, -2.5, None)
    v_k = 5.05 * theta - 2.89
    bp_rp = 0.36 * v_k + 0.27
    g = m_v - 0.1 - 0.1 * (bp_rp - 0.8)
    k = m_v - v_k
    bp = g + 0.45 * bp_rp - 0.05
    return {"G": g, "BP": bp, "RP": bp - bp_rp, "J": k + 0.17 * v_k + 0.1, "H": k + 0.03 * v_k + 0.02,
            "K": k, "W1": k - 0.03 * v_k, "W2": k - 0.04 * v_k, "I": bp - bp_rp - 0.1}


def place_stars(population, abs_i, rng, i_range=(9.0, 12.0)):
    """Distances (kpc), Galactic l, b (deg) and A_V (mag) for stars seen at 9 < I < 12 in
    the RAVE footprint (δ < +2°, |b| > 20°; bulge fields at l = ±10°, b = −4…−12°).

    The apparent I magnitude is drawn from counts rising as 10^(0.3 I), which with
    the absolute magnitude fixes the distance; directions are uniform on the
    footprint's sky (a simplification: no population-dependent density law).
    """
    n = len(population)
    a, b = 10 ** (0.3 * i_range[0]), 10 ** (0.3 * i_range[1])
    mag_i = np.log10(a + rng.uniform(size=n) * (b - a)) / 0.3
    dist = 10 ** ((mag_i - abs_i + 5) / 5) / 1000.0
    bulge = population == "bulge"
    dist[bulge] = rng.uniform(6.0, 9.0, bulge.sum())
    lon, lat = np.empty(n), np.empty(n)
    todo = np.arange(n)
    while todo.size:
        m = todo.size
        l_try = rng.uniform(0, 360, m)
        b_try = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(20)), 1, m) * rng.choice([-1, 1], m)))
        is_bulge = bulge[todo]
        l_try[is_bulge] = rng.uniform(-10, 10, is_bulge.sum()) % 360
        b_try[is_bulge] = rng.uniform(-12, -4, is_bulge.sum())
        dec = SkyCoord(l=l_try * u.deg, b=b_try * u.deg, frame="galactic").icrs.dec.deg
        ok = dec < 2.0
        lon[todo[ok]], lat[todo[ok]] = l_try[ok], b_try[ok]
        todo = todo[~ok]
    path = np.minimum(dist, 0.1 / np.sin(np.radians(np.abs(lat))))
    a_v = 0.7 * path * rng.uniform(0.6, 1.4, n)
    return dist, lon, lat, a_v
