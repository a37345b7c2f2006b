"""A test the prior cannot pass: the methods on the simulation's decorrelated sample.

A regression trained on labels that follow each other ([α/M] falls with [M/H] in the Milky Way)
can score well on a test set drawn from the same distribution while reading [α/M] from the
star's [M/H], not from its lines. The simulated survey holds one more spectrum of every
cross-match star with [α/M] and each [X/Fe] shuffled among the stars at the star's own Teff,
log g, [M/H] and [Fe/H] (``survey.read_decorrelated``). On it, the slope of the estimate against
the true label at fixed [M/H] (``metrics.slope_at_fixed``) is 1 for a method that reads the
spectrum and 0 for one that returns the prior.
"""

import numpy as np
from astropy.table import Table

from .cube import build_spectra_cube, read_spectra_cube
from .files import row_index
from .labels import LABELS
from .metrics import bias_and_scatter, slope_at_fixed
from .survey import read_decorrelated, spectrum_path
from .validation import network_predictions, predict_peers

SNR_MIN = 80.0
"""The slides' cut: the decorrelated test is reported for spectra with SNR above this…"""

MIN_STARS = 20
"""…when at least this many have it; otherwise for all of the sample's spectra."""


def decorrelated_spectra(survey_dir, stars, cube_path, grid=None, processes=1, progress=False):
    """The decorrelated sample of the stars ``stars`` (2MASS ids, e.g. the test split's
    ``apogee_id``), its spectra resampled onto ``grid`` (default the common grid) exactly as the
    survey's: written as a spectra cube at ``cube_path`` (``cube.build_spectra_cube``, replaced
    when made from other files) and read back.

    Returns (table, truth, wave, flux, error), the same rows in the same order: ``table``
    (rave_obs_id of the star's first observation, whose catalogue row holds its photometry;
    id_2mass; snr), ``truth`` (``survey.read_truth`` of the sample: labels, crlb, snr …), the
    grid's wavelengths (Å), flux and error on it.
    """
    folder, table, truth = read_decorrelated(survey_dir)
    wanted = {str(s).strip() for s in stars}
    keep = np.array([str(s).strip() in wanted for s in table["id_2mass"]], bool)
    if not keep.any():
        raise ValueError(f"{folder}: none of the {len(wanted)} stars given is in the decorrelated sample")
    table, truth = table[keep], {key: value[keep] for key, value in truth.items()}
    build_spectra_cube((spectrum_path(folder, i) for i in table["rave_obs_id"]), cube_path, grid=grid,
                       processes=processes, progress=progress, overwrite=True)
    wave, flux, error, ids = read_spectra_cube(cube_path)
    order = row_index(ids["rave_obs_id"], table["rave_obs_id"], f"spectra cube {cube_path}")
    return table, truth, wave, flux[order], error[order]


def decorrelated_predictions(ensembles, peer_models, survey_dir, stars, cube_path, catalogue):
    """Every method's estimates for the decorrelated spectra of ``stars`` (``decorrelated_spectra``):
    each network of ``ensembles`` ({name: Ensemble}; ``validation.network_predictions``, photometry
    from the catalogue row of the star's first observation) as ``"CNN <name>"``, and each fitted peer
    of ``peer_models`` (``validation.fit_peers``' models; ``validation.predict_peers``). The spectra
    are on the common grid, as the survey's cube: ValueError if a network was trained on another.
    Returns (table, truth, {method: (n, 9) over LABELS}), the rows of ``decorrelated_spectra``."""
    table, truth, wave, flux, error = decorrelated_spectra(survey_dir, stars, cube_path)
    for ens in ensembles.values():
        ens.require_grid(wave, f"the decorrelated spectra ({cube_path})")
    rows = row_index(catalogue["rave_obs_id"], table["rave_obs_id"], "RAVE catalogue")
    pred, _ = network_predictions(ensembles, flux, error, catalogue[rows])
    methods = {f"CNN {name}": values for name, values in pred.items()}
    return table, truth, methods | predict_peers(peer_models, flux, error)


def report_rows(snr, snr_min=SNR_MIN, min_stars=MIN_STARS):
    """Which spectra to report: those with ``snr`` > ``snr_min`` if at least ``min_stars`` of them,
    else all. Returns (boolean mask, a few words saying which)."""
    snr = np.asarray(snr, float)
    high = snr > snr_min
    if high.sum() >= min_stars:
        return high, f"SNR > {snr_min:g} ({int(high.sum())} spectra)"
    return np.ones(snr.size, bool), (f"all SNR ({snr.size} spectra; only {int(high.sum())} have SNR > "
                                     f"{snr_min:g}, fewer than {min_stars})")


def slope_table(predictions, truth, labels=LABELS, rows=None):
    """Per method and label, on the decorrelated sample: the slope of estimate against truth at
    fixed true [M/H] (``metrics.slope_at_fixed``; for [M/H] itself the plain slope) with its
    standard error, the robust scatter of estimate − truth, the RMS Cramér–Rao bound of the same
    spectra (all nine labels unknown) and their ratio (robust σ of residual / bound, star by star).

    ``predictions``: {method: (n, len(LABELS))} over ``LABELS`` (NaN where a method does not give a
    label); ``truth``: ``survey.read_truth`` of the sample (labels and crlb over ``LABELS``);
    ``rows``: boolean mask of the spectra to use (``report_rows``; default all). Methods without
    a finite estimate of a label get no row for it.
    """
    true = np.asarray(truth["labels"], float)
    crlb = np.asarray(truth["crlb"], float)
    rows = np.ones(len(true), bool) if rows is None else np.asarray(rows, bool)
    true, crlb = true[rows], crlb[rows]
    m_h = true[:, LABELS.index("m_h")]
    out = []
    for method, estimate in predictions.items():
        estimate = np.asarray(estimate, float)[rows]
        for name in labels:
            j = LABELS.index(name)
            residual = estimate[:, j] - true[:, j]
            if not np.isfinite(residual).any():
                continue
            fixed = None if name == "m_h" else m_h
            slope, slope_error, n = slope_at_fixed(estimate[:, j], true[:, j], fixed)
            scatter = bias_and_scatter(residual)[1]
            finite = crlb[np.isfinite(crlb[:, j]), j]
            bound = float(np.sqrt(np.mean(finite**2))) if finite.size else np.nan
            ratio = bias_and_scatter(residual / crlb[:, j])[1]
            out.append((method, name, n, slope, slope_error, scatter, bound, ratio))
    table = Table(rows=out, names=("method", "label", "stars", "slope", "± slope", "scatter", "bound", "ratio"))
    for col in ("slope", "± slope", "scatter", "bound", "ratio"):
        table[col].format = ".3g"
    return table


def wide(table, column="slope"):
    """A ``slope_table`` as one row per method and one column per label: its ``column``."""
    methods = list(dict.fromkeys(table["method"]))
    labels = [name for name in LABELS if name in set(table["label"])]
    out = Table({"method": methods})
    for name in labels:
        out[name] = [entry(table, method, name, column) for method in methods]
        out[name].format = ".3g"
    return out


def entry(table, method, label, column="slope"):
    """The ``column`` of ``method`` for ``label`` in a ``slope_table`` (NaN if it has no such row)."""
    sel = (np.asarray(table["method"]) == method) & (np.asarray(table["label"]) == label)
    return float(table[column][sel][0]) if sel.any() else np.nan


def prior_limited_slope(training_labels, crlb, labels=LABELS):
    """Per label, the slope at fixed [M/H] that an ideal estimator trained on ``training_labels``
    would show on the decorrelated sample: one that knows the training labels' spread at fixed
    [M/H] (σ_p: the RMS residual of a quadratic in [M/H]; a Gaussian prior) and reads each spectrum
    at its Cramér–Rao bound σ_i (a Gaussian likelihood). Its estimate is the posterior mean, whose
    slope is σ_p² / (σ_p² + σ_i²); returned is its mean over the spectra.

    ``training_labels`` (n, len(LABELS)) in ``LABELS`` order (NaN allowed); ``crlb`` (m, len(LABELS)):
    the bounds of the reported spectra. Returns {label: (slope, σ_p)}; [M/H] itself has no fixed
    [M/H] and gets its plain spread. A network that learnt its training labels' prior cannot be
    expected above this slope; 1 needs a prior as wide as the truth's range (a flat prior).
    """
    training_labels = np.asarray(training_labels, float)
    crlb = np.asarray(crlb, float)
    m_h = training_labels[:, LABELS.index("m_h")]
    out = {}
    for name in labels:
        j = LABELS.index(name)
        y = training_labels[:, j]
        ok = np.isfinite(y) & np.isfinite(m_h)
        if name == "m_h":
            spread = np.std(y[ok])
        else:
            coeffs = np.polyfit(m_h[ok], y[ok], 2)
            spread = np.sqrt(np.mean((y[ok] - np.polyval(coeffs, m_h[ok])) ** 2))
        bound = crlb[np.isfinite(crlb[:, j]), j]
        out[name] = (float(np.mean(spread**2 / (spread**2 + bound**2))) if bound.size else np.nan, float(spread))
    return out
