"""The simulated survey's tables, in the real releases' formats: the RAVE DR6 catalogue, the
APOGEE allStar table, the high-resolution benchmark sample and the truth.

Each function takes the drawn stars (and observations) and a random generator, and returns an
astropy Table with the columns, units and conventions of the real files that ``rave`` and
``apogee`` read.
"""

from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.io import fits
from astropy.table import Column, Table

from ..apogee import APOGEE_COLUMNS, ASPCAP_STAR_BAD_BIT, EXTRATARG_DUPLICATE_BIT, STARFLAG_BAD_BITS
from ..crlb import cramer_rao_bound
from ..discs import chemical_population
from ..files import ascii_bytes
from ..fitstable import Rows, Spool, write_fits
from ..labels import LABELS
from . import galaxy


class SurveyError(ValueError):
    """A bad parameter of the simulated survey."""


# ------------------------------------------------------------------ helpers
def twomass_id(ra, dec):
    """2MASS-style designations ``2MHHMMSSss±DDMMSSs`` from ICRS ra, dec (deg).

    As in the 2MASS catalogues the sexagesimal coordinates are truncated, not
    rounded (so RA never reads 24h and the designation's cell contains the star).
    """
    scalar = np.ndim(ra) == 0 and np.ndim(dec) == 0
    ra, dec = np.atleast_1d(np.asarray(ra, float)), np.atleast_1d(np.asarray(dec, float))
    ra_cs = np.floor(np.mod(ra, 360) / 15 * 360_000 + 1e-6).astype(np.int64) % (24 * 360_000)
    dec_ds = np.floor(np.abs(dec) * 36_000 + 1e-6).astype(np.int64)  # 0.1 arcsec
    out = np.array([
        f"2M{r // 360_000:02d}{r // 6000 % 60:02d}{r % 6000:04d}"
        f"{'-' if d < 0 else '+'}{a // 36_000:02d}{a // 600 % 60:02d}{a % 600:03d}"
        for r, d, a in zip(ra_cs, dec, dec_ds)])
    return out[0] if scalar else out


def is_kind(stars, kind):
    """Which ``stars`` are of ``kind`` ("field", "crossmatch" or "apogee_only"), a boolean mask,
    whether their ``kind`` column holds str or ASCII bytes (``draw_stars`` keeps bytes)."""
    return np.asarray(stars["kind"]).astype(str) == kind


BLOCK = 50_000
"""Observations whose ids are formatted at once (Python strings: a few hundred bytes each)."""


def unique_twomass_ids(stars):
    """The 2MASS designations of ``stars`` (ASCII bytes, formatted ``BLOCK`` stars at a time), made
    unique: of two stars in one 0.01 s cell, the later one is nudged (its ra + 1e-4 deg, in ``stars``)."""
    ra, dec = np.asarray(stars["ra"]), np.asarray(stars["dec"])
    ids = np.concatenate([ascii_bytes(twomass_id(ra[s:s + BLOCK], dec[s:s + BLOCK])) for s in range(0, ra.size, BLOCK)])
    while len(np.unique(ids)) < len(ids):
        _, first = np.unique(ids, return_index=True)
        dup = np.setdiff1d(np.arange(len(ids)), first)
        stars["ra"][dup] += 1e-4
        ids[dup] = twomass_id(np.asarray(stars["ra"][dup]), np.asarray(stars["dec"][dup]))
    return ids


def rave_obs_ids(ra, dec, rng):
    """Unique RAVE-style observation ids ``YYYYMMDD_HHMMsDD_FFF`` (date, field centre, fibre), the
    dates and the fields, as ASCII bytes (``ascii_bytes``)."""
    days = rng.integers(0, 3640, len(ra))
    fibres = rng.integers(1, 151, len(ra))
    out, dates, field = (np.concatenate(parts) for parts in zip(*(
        _obs_id_block(days[s:s + BLOCK], fibres[s:s + BLOCK], ra[s:s + BLOCK], dec[s:s + BLOCK])
        for s in range(0, len(ra), BLOCK))))
    ordered, first = np.unique(out, return_index=True)
    dup = np.setdiff1d(np.arange(len(out)), first)
    added = set()
    for i in dup:  # rare: same night, field and fibre; move to a free fibre
        for fibre in range(1, 151):
            cand = dates[i] + b"_" + field[i] + f"_{fibre:03d}".encode()
            k = np.searchsorted(ordered, cand)
            if cand not in added and not (k < ordered.size and ordered[k] == cand):
                out[i] = cand
                added.add(cand)
                break
    return out, dates, field


def _obs_id_block(days, fibres, ra, dec):
    """(ids, dates, fields) of some observations, as ASCII bytes (``rave_obs_ids``)."""
    dates = (np.datetime64("2003-04-12") + days).astype(str)
    dates = np.char.replace(dates, "-", "")
    field_ra = np.floor(ra / 15 * 10) / 10  # field centres on a 6-minute grid in RA
    hh = np.floor(field_ra).astype(int)
    mm = np.round((field_ra - hh) * 60).astype(int)
    sign = np.where(dec < 0, "m", "p")
    field = [f"{h:02d}{m:02d}{s}{abs(int(d)):02d}" for h, m, s, d in zip(hh, mm, sign, np.round(dec / 5) * 5)]
    ids = np.array([f"{d}_{f}" for d, f in zip(dates, field)])
    out = np.char.add(np.char.add(ids, "_"), np.char.zfill(fibres.astype(str), 3))
    return ascii_bytes(out), ascii_bytes(dates), ascii_bytes(np.array(field))


def rave_catalogue(stars, obs, rng, columns):
    """RAVE DR6-like catalogue, one row per observation (columns of dr6_obsdata, dr6_sparv,
    dr6_madera and the Gaia/2MASS/WISE cross-matches), given to ``columns.add(name, values)`` one
    column at a time, in order (``fitstable.Spool``: 518k rows are big); returns ``columns``."""
    def s(name):  # the star's column for each observation
        return stars[name][obs["star_index"]]

    n = len(obs)
    snr = np.asarray(obs["snr"])
    e_teff = np.hypot(90, 3000 / snr)
    e_logg = np.hypot(0.2, 8 / snr)
    e_mh = np.hypot(0.1, 4 / snr)
    id_2mass = np.asarray(s("id_2mass")).astype("S20")  # as FITS 20A, like U20: bytes are a quarter the size
    id_2mass[rng.uniform(size=n) < 0.02] = b""  # no 2MASS id: sky-position match needed
    for name in ("rave_obs_id", "obsdate", "field", "fibre"):
        columns.add(name, obs[name])
    columns.add("ra_input", s("ra"))
    columns.add("dec_input", s("dec"))
    columns.add("id_2mass", id_2mass)
    del id_2mass
    columns.add("hrv_sparv", s("hrv") + obs["rv_residual"] * u.km / u.s)
    columns.add("hrv_error_sparv", np.hypot(0.8, 40 / snr) * u.km / u.s)
    columns.add("snr_med_sparv", snr * (1 + rng.normal(0, 0.05, n)))
    columns.add("teff_cal_madera", Column(s("teff") + rng.normal(0, e_teff), unit=u.K))
    columns.add("teff_error_madera", e_teff * u.K)
    columns.add("logg_cal_madera", s("logg") + rng.normal(0, e_logg))
    columns.add("logg_error_madera", e_logg)
    columns.add("m_h_cal_madera", s("m_h") + rng.normal(0, e_mh))
    columns.add("m_h_error_madera", e_mh)
    plx = 1 / np.asarray(s("distance"))
    e_plx = 0.02 + 0.01 * 10 ** (0.2 * (np.asarray(s("mag_G")) - 12))
    columns.add("parallax", (plx + rng.normal(0, e_plx)) * u.mas)
    columns.add("parallax_error", e_plx * u.mas)
    for band, col in (("G", "phot_g_mean_mag"), ("BP", "phot_bp_mean_mag"), ("RP", "phot_rp_mean_mag"),
                      ("J", "jmag_2mass"), ("H", "hmag_2mass"), ("K", "kmag_2mass"),
                      ("W1", "w1mpro"), ("W2", "w2mpro")):
        columns.add(col, (np.asarray(s(f"mag_{band}")) + rng.normal(0, 0.02, n)) * u.mag)
    columns.add("av50", np.clip(np.asarray(s("a_v")) + rng.normal(0, 0.05, n), 0, None) * u.mag)
    return columns


ASPCAP_ERRORS = {"teff": 55.0, "logg": 0.06, "m_h": 0.02, "fe_h": 0.02, "alpha_m": 0.015,
                 "si_fe": 0.03, "al_fe": 0.05, "mg_fe": 0.03, "ni_fe": 0.03}
"""Typical ASPCAP uncertainties at SNR 100 (K, dex); they scale as 100/SNR with a floor of half."""

MISSING_FRACTION = {"teff": 0.003, "logg": 0.003, "m_h": 0.005, "fe_h": 0.005, "alpha_m": 0.01,
                    "si_fe": 0.015, "al_fe": 0.04, "mg_fe": 0.015, "ni_fe": 0.02}
"""Fraction of stars whose label APOGEE did not deliver (NaN in DR17)."""


def allstar_table(stars, rng, release="dr17"):
    """APOGEE allStar-like table for the cross-match and APOGEE-only stars.

    ``release`` "dr17" (default: missing labels NaN, Gaia EDR3 ids in GAIAEDR3_SOURCE_ID) or
    "dr16" (missing labels −9999, Gaia DR2 ids in GAIA_SOURCE_ID), as in the real files.
    """
    if release not in ("dr16", "dr17"):
        raise SurveyError(f"unknown APOGEE release {release!r}; known: 'dr16', 'dr17'")
    sel = np.flatnonzero(~is_kind(stars, "field"))
    dup = rng.choice(sel, int(0.04 * sel.size), replace=False)  # stars observed twice by APOGEE
    rows = np.concatenate([sel, dup])
    s = stars[rows]
    n = len(rows)
    snr = np.clip(150 * rng.lognormal(0, 0.6, n), 20, 1500)
    snr[sel.size:] *= 0.5  # the duplicate entry is the poorer one
    extratarg = np.zeros(n, np.int32)
    extratarg[sel.size:] = 1 << EXTRATARG_DUPLICATE_BIT
    starflag = np.where(rng.uniform(size=n) < 0.04, 1 << rng.choice(STARFLAG_BAD_BITS, n), 0).astype(np.int64)
    star_bad = rng.uniform(size=n) < 0.03
    aspcapflag = np.where(star_bad, 1 << ASPCAP_STAR_BAD_BIT, 0).astype(np.int64)
    table = Table({
        "APOGEE_ID": np.asarray(s["id_2mass"]).astype("U18"),
        "TELESCOPE": np.where(np.asarray(s["dec"]) < -10, "lco25m", "apo25m"),
        "FIELD": np.char.add("F", np.round(np.asarray(s["glon"])).astype(int).astype(str)),
        "RA": (np.asarray(s["ra"]) + rng.normal(0, 3e-5, n)) * u.deg,
        "DEC": (np.asarray(s["dec"]) + rng.normal(0, 3e-5, n)) * u.deg,
        "GLON": s["glon"], "GLAT": s["glat"], "SNR": snr.astype(np.float32),
        "STARFLAG": starflag, "ASPCAPFLAG": aspcapflag, "EXTRATARG": extratarg,
        "GAIAEDR3_SOURCE_ID" if release == "dr17" else "GAIA_SOURCE_ID":
            rng.integers(10**17, 7 * 10**18, n, dtype=np.int64),
    })
    missing_value = np.nan if release == "dr17" else -9999.0
    scale = np.maximum(100 / snr, 0.5) * np.where(star_bad, 4.0, 1.0)
    for name, col in APOGEE_COLUMNS.items():
        err = ASPCAP_ERRORS[name] * scale
        value = np.asarray(s[name], float) + rng.normal(0, err)
        missing = rng.uniform(size=n) < MISSING_FRACTION[name]
        value[missing], err[missing] = missing_value, missing_value
        table[col] = value.astype(np.float32)
        table[f"{col}_ERR"] = err.astype(np.float32)
        table[f"{col}_FLAG"] = np.where(missing, 1, 0).astype(np.int32)
    table["TEFF"].unit = table["TEFF_ERR"].unit = u.K
    return table


def benchmark_table(stars, n, rng):
    """High-resolution benchmark sample: ``n`` RAVE stars spread over the HR diagram
    (equal numbers per evolutionary stage) with labels good to 40 K / 0.05 / 0.04 dex."""
    rave = np.flatnonzero(~is_kind(stars, "apogee_only"))
    stages = np.asarray(stars["stage"])[rave].astype(str)
    picks = []
    for st in galaxy.STAGES:
        pool = rave[stages == st]
        picks.append(rng.choice(pool, min(pool.size, n // len(galaxy.STAGES)), replace=False))
    idx = np.sort(np.concatenate(picks))
    s = stars[idx]
    errs = {"teff": 40.0, "logg": 0.05, "m_h": 0.04, "fe_h": 0.04, "alpha_m": 0.03}
    table = Table({"id_2mass": s["id_2mass"]})
    for name, err in errs.items():
        table[name] = np.asarray(s[name]) + rng.normal(0, err, len(s))
        table[f"e_{name}"] = np.full(len(s), err)
    table["teff"].unit = table["e_teff"].unit = u.K
    return table


DECORRELATED_LABELS = ("alpha_m", "si_fe", "al_fe", "mg_fe", "ni_fe")
"""Labels the decorrelated sample re-draws; Teff, log g, [M/H] and [Fe/H] stay the star's own."""


def shuffle_abundances(stars, rng):
    """A copy of ``stars`` with [α/M] and each [X/Fe] (``DECORRELATED_LABELS``) shuffled among its
    rows, each label by its own permutation, so that they no longer follow [M/H] (nor each other);
    Teff, log g, [M/H] and [Fe/H] stay each star's own, ``population`` follows the new labels
    (``discs.chemical_population``)."""
    stars = stars.copy()
    for name in DECORRELATED_LABELS:
        stars[name] = rng.permutation(np.asarray(stars[name]))
    stars["population"] = chemical_population(stars["m_h"], stars["alpha_m"])
    return stars


def flatten_crossmatch_prior(stars, rng):
    """``stars`` with the cross-match stars' abundances shuffled among them (``shuffle_abundances``);
    the other stars unchanged. The ``flat_prior`` profile's survey: its training labels carry no
    [α/M]–[M/H] relation, to ask how far a network then reads [α/M] from the lines. Real APOGEE
    stars cannot be shuffled; with them the nearest thing is weighting the rare combinations
    (``augment.decorrelating_weights``)."""
    crossmatch = is_kind(stars, "crossmatch")
    shuffled = shuffle_abundances(stars[crossmatch], rng)
    stars = stars.copy()
    for name in (*DECORRELATED_LABELS, "population"):
        column = np.array(stars[name])
        column[crossmatch] = shuffled[name]
        stars[name] = column
    return stars


def decorrelated_sample(stars, obs, rng):
    """The decorrelated test sample: one more spectrum of every cross-match star, with its
    abundances shuffled among those stars (``shuffle_abundances``). Returns (stars, observations)
    shaped like the survey's: the stars' rows with the new labels and a copy of each star's first
    observation (its rave_obs_id, SNR, wavelength axis and velocity residual), ``star_index``
    pointing into the new stars."""
    star_index = np.asarray(obs["star_index"])
    _, first = np.unique(star_index, return_index=True)  # each observed star's first observation
    first = first[is_kind(stars, "crossmatch")[star_index[first]]]
    twins = shuffle_abundances(stars[star_index[first]], rng)
    twin_obs = obs[first]
    twin_obs["star_index"] = np.arange(len(first))
    return twins, twin_obs


def truth_tables(stars, obs, n_bad, n_cosmic, with_fisher, fisher):
    """The truth: STARS (every label, population, distance…), OBSERVATIONS (per spectrum) and
    FISHER (the Fisher matrix and Cramér–Rao bound of the observations ``with_fisher``, bool over
    ``obs``; ``fisher`` holds their matrices in that order)."""
    star_cols = ["id_2mass", "kind", "population", "stage", "age", *LABELS, "ra", "dec", "glon", "glat",
                 "distance", "a_v", "hrv"] + [c for c in stars.colnames if c.startswith("mag_")]
    truth_obs = Table({
        "rave_obs_id": obs["rave_obs_id"], "id_2mass": stars["id_2mass"][obs["star_index"]],
        "snr": obs["snr"], "rv_residual": obs["rv_residual"] * u.km / u.s,
        "crval1": obs["crval1"] * u.AA, "cdelt1": obs["cdelt1"] * u.AA,
        "n_bad_pixels": n_bad, "n_cosmic_rays": n_cosmic,
    }, copy=False)
    truth_fisher = Table({"rave_obs_id": obs["rave_obs_id"][np.asarray(with_fisher, bool)],
                          "fisher": fisher, "crlb": cramer_rao_bound(fisher)})
    return Table([stars[c] for c in star_cols], meta=stars.meta, copy=False), truth_obs, truth_fisher


def write_truth(stars, obs, fisher, path):
    """``truth.fits``: the tables of ``truth_tables`` as HDUs STARS, OBSERVATIONS and FISHER,
    written a block of rows at a time (``fitstable``)."""
    primary = fits.PrimaryHDU()
    primary.header["SIMULATE"] = True
    primary.header["LABELS"] = ",".join(LABELS)
    write_fits(path, [Rows(stars, "STARS"), Rows(obs, "OBSERVATIONS"), Rows(fisher, "FISHER")], primary)


def write_rave_catalogue(stars, obs, rng, path):
    """``rave_catalogue`` written to ``path`` a block of rows at a time, its columns waiting on
    disk meanwhile (``fitstable.Spool``, in a folder beside ``path``, removed after)."""
    path = Path(path)
    spool = Spool(path.with_name(f".{path.name}.columns"))
    try:
        write_fits(path, [rave_catalogue(stars, obs, rng, spool)])
    finally:
        spool.close()
