"""RAVE × APOGEE cross-match and quality cuts (the training / validation / test split: ``splits``).

The notebook runs one call per step::

    apogee, n_dup = deduplicate_apogee(allstar)        # one allStar row per star
    pairs = match(rave, apogee, radius_arcsec=1.0)     # one row per matched RAVE observation
    joined = join_matches(rave, apogee, pairs)         # RAVE columns + lower-case APOGEE columns
    kept, cutflow = apply_cuts(joined)                 # quality cuts, with the cut flow

then ``splits.split(kept)`` shares the stars out into training, validation and test sets.

The APOGEE flag bits are those of ``apogee`` (``STARFLAG_BAD_BITS``, ``ASPCAP_STAR_BAD_BIT``,
``EXTRATARG_DUPLICATE_BIT``); bits are tested on int64 with numpy bitwise operations.
"""

import copy
import re
import warnings

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import MaskedColumn, Table

from .apogee import APOGEE_COLUMNS, ASPCAP_STAR_BAD_BIT, EXTRATARG_DUPLICATE_BIT, STARFLAG_BAD_BITS
from .files import as_float, require_columns
from .labels import LABELS, UNITS

CUTS = dict(
    apogee_snr_min=70,
    starflag_bad_bits=STARFLAG_BAD_BITS,
    aspcap_star_bad_bit=ASPCAP_STAR_BAD_BIT,
    rave_snr_min=10,
    label_error_max={"teff": 150, "logg": 0.2, "m_h": 0.1, "fe_h": 0.1, "alpha_m": 0.08,
                     "si_fe": 0.1, "al_fe": 0.15, "mg_fe": 0.1, "ni_fe": 0.1},
    required_labels=("teff", "logg", "m_h"),
    repeats="keep",
)
"""Default quality cuts of :func:`apply_cuts` (K for Teff, dex otherwise).

``apogee_snr_min`` / ``rave_snr_min``: keep rows with SNR >= the value (None: no cut).
``label_error_max``: largest accepted error per label; a required label over its limit
removes the row, any other label over its limit is masked. ``repeats``: ``"keep"`` every
RAVE observation of a star, or ``"best"`` only its highest-SNR one (``snr_med_sparv``).
"""

_PREFIX = re.compile(r"^(?:2MASS\s*J|2MASS\s*|2M|J)(?=\d)", re.IGNORECASE)


# ------------------------------------------------------------------ helpers
def _bits_set(column, bits):
    """True where any of ``bits`` is set (masked flags count as 0)."""
    values = np.ma.filled(np.ma.asarray(column), 0).astype(np.int64)
    mask = np.int64(0)
    for bit in bits:
        mask |= np.int64(1) << np.int64(bit)
    return (values & mask) != 0


def _degrees(column):
    """Column of angles as a float array in degrees (degrees assumed when it has no unit)."""
    values = as_float(column)
    unit = getattr(column, "unit", None)
    return values if unit is None else (values * u.Unit(unit)).to_value(u.deg)


def _maskedas_float(column):
    """Float MaskedColumn masked where the input is masked or not finite (name, unit kept)."""
    values = as_float(column)
    return MaskedColumn(values, mask=~np.isfinite(values), name=column.name,
                        unit=getattr(column, "unit", None), description=getattr(column, "description", None))


def _usable_positions(ra, dec, survey, columns, table, id_column):
    """Rows whose position can be used on the sky: finite, and |Dec| <= 90 deg. Others (a corrupt
    or mistyped value) cannot be matched on the sky or get a separation; a warning names how many,
    the columns and the first ids (they may still match by 2MASS id)."""
    finite = np.isfinite(ra) & np.isfinite(dec)
    valid = finite & (np.abs(np.where(finite, dec, 0.0)) <= 90)
    bad = np.flatnonzero(finite & ~valid)
    if bad.size:
        ids = [str(x) for x in np.asarray(table[id_column])[bad[:3]]] if id_column in table.colnames else []
        warnings.warn(f"{survey} catalogue: {bad.size} row(s) with a declination outside ±90 deg in ({columns}), "
                      f"e.g. {ids}; they are matched by 2MASS id only", stacklevel=3)
    return valid


def _best_per_group(keys, score):
    """Boolean mask keeping, per key, the row of highest ``score`` (NaN lowest; ties: first row)."""
    score = np.where(np.isfinite(score), score, -np.inf)
    order = np.lexsort((np.arange(len(keys)), -score, keys))  # by key, then score desc, then row
    first = np.ones(len(order), bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    keep = np.zeros(len(keys), bool)
    keep[order[first]] = True
    return keep


# ------------------------------------------------------------------ ids
def normalise_2mass(ids):
    """2MASS designations reduced to ``HHMMSSss±DDMMSSs``.

    Strips surrounding whitespace and a leading ``2M`` (APOGEE), ``J``, ``2MASS J`` or
    ``2MASS`` (only when digits follow, so non-2MASS ids are left alone). Masked, None and
    blank entries become ``''`` (no id). A single string gives a string; anything else an
    array of str.
    """
    if isinstance(ids, (str, bytes)):
        return normalise_2mass([ids])[0]
    data = np.asarray(np.ma.getdata(ids), dtype=object).ravel()
    mask = np.ma.getmaskarray(ids).ravel() if np.ma.isMaskedArray(ids) else np.zeros(data.size, bool)
    out = []
    for value, masked in zip(data, mask):
        if value is None or masked:
            out.append("")
            continue
        if isinstance(value, bytes):
            value = value.decode("ascii", "replace")
        out.append(_PREFIX.sub("", str(value).strip()).strip())
    return np.array(out, dtype=str) if out else np.array([], dtype="U1")


def deduplicate_apogee(allstar):
    """One allStar row per star: drop ``EXTRATARG`` bit-4 rows, then keep the highest-SNR row
    of each remaining ``APOGEE_ID``.

    Returns ``(table, n_removed)``; the kept rows stay in their original order and
    ``table.meta["deduplicate"]`` holds the number removed by each step.
    """
    require_columns(allstar, ("APOGEE_ID", "SNR", "EXTRATARG"), "deduplicate_apogee")
    duplicate = _bits_set(allstar["EXTRATARG"], (EXTRATARG_DUPLICATE_BIT,))
    table = allstar[~duplicate]
    keys = np.array([str(x).strip() for x in np.ma.filled(np.ma.asarray(table["APOGEE_ID"]), "")])
    keep = _best_per_group(keys, as_float(table["SNR"]))
    out = table[keep]
    out.meta = dict(allstar.meta)
    n_extratarg, n_snr = int(duplicate.sum()), int((~keep).sum())
    out.meta["deduplicate"] = {"extratarg_bit4": n_extratarg, "lower_snr": n_snr}
    return out, n_extratarg + n_snr


# ------------------------------------------------------------------ match
def match(rave, apogee, radius_arcsec=1.0):
    """Match RAVE observations to APOGEE stars.

    First by normalised 2MASS id (RAVE ``id_2mass`` against ``APOGEE_ID``); RAVE rows with
    no id, or an id APOGEE does not have, fall back to the nearest APOGEE star on the sky
    (``SkyCoord.match_to_catalog_sky``) if it lies within ``radius_arcsec``.

    Returns a Table with one row per matched RAVE observation, sorted by RAVE row:
    ``rave_index``, ``apogee_index`` (row numbers in the inputs), ``method`` (``"2mass"`` or
    ``"sky"``) and ``separation_arcsec`` (RAVE ``ra_input, dec_input`` to APOGEE ``RA, DEC``;
    NaN where a position is missing). Several RAVE observations may match one APOGEE star
    (repeat observations). The APOGEE table must hold one row per star
    (:func:`deduplicate_apogee`). Raises ValueError if nothing matches.
    """
    require_columns(rave, ("ra_input", "dec_input"), "match (RAVE)")
    require_columns(apogee, ("APOGEE_ID", "RA", "DEC"), "match (APOGEE)")
    if radius_arcsec is None or not radius_arcsec > 0:
        raise ValueError(f"radius_arcsec must be > 0, got {radius_arcsec!r}")
    apogee_ids = normalise_2mass(apogee["APOGEE_ID"])
    named = apogee_ids[apogee_ids != ""]
    if len(np.unique(named)) < len(named):
        raise ValueError(f"APOGEE table has {len(named) - len(np.unique(named))} repeated APOGEE_ID(s); "
                         "call deduplicate_apogee first")
    rave_ids = (normalise_2mass(rave["id_2mass"]) if "id_2mass" in rave.colnames
                else np.full(len(rave), "", dtype="U1"))
    lookup = {name: i for i, name in enumerate(apogee_ids) if name}
    apogee_index = np.array([lookup.get(name, -1) if name else -1 for name in rave_ids], dtype=np.int64)
    method = np.where(apogee_index >= 0, "2mass", "")

    rave_ra, rave_dec = _degrees(rave["ra_input"]), _degrees(rave["dec_input"])
    ap_ra, ap_dec = _degrees(apogee["RA"]), _degrees(apogee["DEC"])
    rave_ok = _usable_positions(rave_ra, rave_dec, "RAVE", "ra_input, dec_input", rave, "rave_obs_id")
    ap_valid = _usable_positions(ap_ra, ap_dec, "APOGEE", "RA, DEC", apogee, "APOGEE_ID")
    ap_ok = np.flatnonzero(ap_valid)
    todo = np.flatnonzero((apogee_index < 0) & rave_ok)
    if todo.size and ap_ok.size:
        catalogue = SkyCoord(ra=ap_ra[ap_ok] * u.deg, dec=ap_dec[ap_ok] * u.deg)
        coords = SkyCoord(ra=rave_ra[todo] * u.deg, dec=rave_dec[todo] * u.deg)
        nearest, sep, _ = coords.match_to_catalog_sky(catalogue)
        close = sep.to_value(u.arcsec) <= radius_arcsec
        apogee_index[todo[close]] = ap_ok[nearest[close]]
        method[todo[close]] = "sky"

    matched = np.flatnonzero(apogee_index >= 0)
    if matched.size == 0:
        raise ValueError(f"no RAVE observation matched an APOGEE star (by 2MASS id, or on the sky within "
                         f"radius_arcsec={radius_arcsec}) among {len(rave)} RAVE rows and "
                         f"{len(apogee)} APOGEE rows")
    j = apogee_index[matched]
    sep = np.full(matched.size, np.nan)
    ok = rave_ok[matched] & ap_valid[j]
    if ok.any():
        a = SkyCoord(ra=rave_ra[matched[ok]] * u.deg, dec=rave_dec[matched[ok]] * u.deg)
        b = SkyCoord(ra=ap_ra[j[ok]] * u.deg, dec=ap_dec[j[ok]] * u.deg)
        sep[ok] = a.separation(b).to_value(u.arcsec)
    pairs = Table({"rave_index": matched.astype(np.int64), "apogee_index": j,
                   "method": method[matched].astype("U5"), "separation_arcsec": sep})
    pairs["separation_arcsec"].unit = u.arcsec
    pairs.meta["radius_arcsec"] = float(radius_arcsec)
    pairs.meta["n_2mass"] = int(np.sum(pairs["method"] == "2mass"))
    pairs.meta["n_sky"] = int(np.sum(pairs["method"] == "sky"))
    return pairs


def join_matches(rave, apogee, pairs):
    """The per-observation table of the matched pairs: every RAVE column, then every APOGEE
    column lower-cased, then ``method`` and ``separation_arcsec``.

    APOGEE labels are named as in ``labels.LABELS`` (``TEFF`` → ``teff``), their errors
    ``<label>_err`` and flags ``<label>_flag``; label and error columns are float
    MaskedColumns masked where missing (masked or not finite). An APOGEE column whose
    lower-case name is already a RAVE column gets the prefix ``apogee_`` (e.g. ``field``).
    """
    require_columns(pairs, ("rave_index", "apogee_index", "method", "separation_arcsec"), "join_matches (pairs)")
    rename = {}
    for label, col in APOGEE_COLUMNS.items():
        rename[col], rename[f"{col}_ERR"], rename[f"{col}_FLAG"] = label, f"{label}_err", f"{label}_flag"
    out = rave[np.asarray(pairs["rave_index"], dtype=np.int64)]  # a copy
    ap = apogee[np.asarray(pairs["apogee_index"], dtype=np.int64)]
    for name in ap.colnames:
        new = rename.get(name, name.lower())
        if new in out.colnames:
            new = f"apogee_{new}"
        column = ap[name]
        if name in rename and not name.endswith("_FLAG"):
            column = _maskedas_float(column)
        out[new] = column
        if new == "apogee_id":
            out[new] = np.array([str(x).strip() for x in np.ma.filled(np.ma.asarray(column), "")])
    out["method"] = pairs["method"]
    out["separation_arcsec"] = pairs["separation_arcsec"]
    out.meta = {k: v for k, v in pairs.meta.items()}
    return out


# ------------------------------------------------------------------ cuts
def _cuts(cuts):
    merged = copy.deepcopy(CUTS)  # the caller may edit what it gets back; CUTS stays as it is
    if cuts is not None:
        unknown = sorted(set(cuts) - set(CUTS))
        if unknown:
            raise ValueError(f"unknown cut(s) {unknown}; known: {sorted(CUTS)}")
        merged.update(cuts)
    if merged["repeats"] not in ("keep", "best"):
        raise ValueError(f"repeats must be 'keep' or 'best', got {merged['repeats']!r}")
    unknown = sorted(set(merged["label_error_max"]) - set(LABELS))
    unknown += sorted(set(merged["required_labels"]) - set(LABELS))
    if unknown:
        raise ValueError(f"unknown label(s) {unknown}; labels are {LABELS}")
    return merged


def _limits(names, limits):
    return ", ".join(f"{n} <= {limits[n]:g}{' K' if UNITS[n] == 'K' else ''}" for n in names) or "none"


def cuts_from_parameters(apogee_snr_min, rave_snr_min, repeats, starflag_bad_bits=None,
                         aspcap_star_bad_bit=None, label_error_max=None):
    """The ``cuts`` of :func:`apply_cuts` from notebook 02's parameters (same names as in ``CUTS``).

    ``starflag_bad_bits``, ``aspcap_star_bad_bit`` and ``label_error_max`` left at None keep their
    ``CUTS`` defaults (the APOGEE bits of ``apogee``, the error limits above); the SNR limits are
    taken as given (None: no cut).
    """
    cuts = {"apogee_snr_min": apogee_snr_min, "rave_snr_min": rave_snr_min, "repeats": repeats}
    optional = {"starflag_bad_bits": starflag_bad_bits, "aspcap_star_bad_bit": aspcap_star_bad_bit,
                "label_error_max": label_error_max}
    cuts.update({name: value for name, value in optional.items() if value is not None})
    return _cuts(cuts)


def apply_cuts(table, cuts=None):
    """Apply the quality cuts to the joined per-observation table (:func:`join_matches`).

    ``cuts`` updates :data:`CUTS` key by key (a ``label_error_max`` given replaces the whole
    dict: labels absent from it have no error limit). In order:

    ``starflag`` (any bad bit set: removed), ``aspcapflag`` (STAR_BAD bit: removed),
    ``apogee snr`` / ``rave snr`` (SNR below the minimum or missing: removed),
    ``required labels`` (a required label missing: removed), ``required label errors``
    (a required label's error over its limit, or missing: removed), ``label errors``
    (any other label whose error is over its limit or missing: its value is masked, the
    row kept; already-missing labels stay masked), ``repeats`` (``"best"``: keep the
    highest-``snr_med_sparv`` observation of each ``apogee_id``).

    Returns ``(kept, cutflow)``: a copy of the surviving rows (the input is not changed) and
    a Table with columns ``cut``, ``parameter`` (str), ``removed``, ``remaining``,
    ``masked_values``, one row per step after a first row ``matched``.
    """
    c = _cuts(cuts)
    with_limit = [n for n in LABELS if n in c["label_error_max"]]
    required = list(c["required_labels"])
    needed = ["starflag", "aspcapflag", "snr", "snr_med_sparv", *required,
              *(f"{n}_err" for n in with_limit), *with_limit]
    if c["repeats"] == "best":
        needed.append("apogee_id")
    require_columns(table, dict.fromkeys(needed), "apply_cuts")

    out = Table(table, copy=True)
    for name in LABELS:
        for col in (name, f"{name}_err"):
            if col in out.colnames:
                out[col] = _maskedas_float(out[col])
    rows = []

    def step(cut, parameter, bad, masked_values=0):
        nonlocal out
        bad = np.asarray(bad, bool)
        out = out[~bad]
        rows.append((cut, parameter, int(bad.sum()), len(out), int(masked_values)))

    radius = table.meta.get("radius_arcsec")
    rows.append(("matched", f"radius {radius:g} arcsec" if radius is not None else "", 0, len(out), 0))
    bits = tuple(c["starflag_bad_bits"] or ())
    step("starflag", "bits " + ",".join(str(b) for b in bits) if bits else "none",
         _bits_set(out["starflag"], bits))
    bit = c["aspcap_star_bad_bit"]
    step("aspcapflag", f"bit {bit}" if bit is not None else "none",
         _bits_set(out["aspcapflag"], (bit,) if bit is not None else ()))
    for cut, col, key in (("apogee snr", "snr", "apogee_snr_min"), ("rave snr", "snr_med_sparv", "rave_snr_min")):
        limit = c[key]
        bad = np.zeros(len(out), bool) if limit is None else ~(as_float(out[col]) >= limit)
        step(cut, f">= {limit:g}" if limit is not None else "none", bad)
    bad = np.zeros(len(out), bool)
    for name in required:
        bad |= np.ma.getmaskarray(out[name])
    step("required labels", ",".join(required) or "none", bad)
    req_limited = [n for n in required if n in c["label_error_max"]]
    bad = np.zeros(len(out), bool)
    for name in req_limited:
        bad |= ~(as_float(out[f"{name}_err"]) <= c["label_error_max"][name])
    step("required label errors", _limits(req_limited, c["label_error_max"]), bad)
    optional = [n for n in with_limit if n not in required]
    n_masked = 0
    for name in optional:
        over = ~(as_float(out[f"{name}_err"]) <= c["label_error_max"][name]) & ~np.ma.getmaskarray(out[name])
        out[name].mask |= over
        n_masked += int(over.sum())
    step("label errors", _limits(optional, c["label_error_max"]), np.zeros(len(out), bool), n_masked)
    if c["repeats"] == "best":
        keys = np.asarray(out["apogee_id"]).astype(str)
        bad = ~_best_per_group(keys, as_float(out["snr_med_sparv"]))
    else:
        bad = np.zeros(len(out), bool)
    step("repeats", c["repeats"], bad)

    cutflow = Table(rows=rows, names=("cut", "parameter", "removed", "remaining", "masked_values"),
                    dtype=(str, str, np.int64, np.int64, np.int64))
    if len(out) == 0:
        last = next(r for r in rows if r[3] == 0)
        raise ValueError(f"the quality cuts removed every matched observation: the cut {last[0]!r} "
                         f"({last[1]}) removed the last {last[2]}; loosen it. Cut flow: "
                         + "; ".join(f"{r[0]} -{r[2]} -> {r[3]}" for r in rows))
    out.meta["cuts"] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in c.items()}
    return out, cutflow
