"""Validation inputs and tables (notebook 06 and ``benchmarks/accuracy.py``): the RAVE pipeline's
labels, the paper's published test residuals, the peers' predictions, the method × label and
bound-ratio tables, the precision from repeat observations, and real spectra through the networks.

The truth and Cramér–Rao bounds of simulated stars come from ``survey.read_truth``."""

import time
from pathlib import Path

import numpy as np
from astropy.table import Table

from tqdm.auto import tqdm

from .baselines import BASELINES
from .cube import read_cube_ids, read_spectra_cube
from .discs import fraction_on_side
from .files import float_column, row_index
from .inputs import prepare_inputs
from .labels import GUIGLION2020_COLUMNS, LABELS
from .metrics import bias_and_scatter, binned_residuals, pair_precision, rms_in_bins
from .paths import GUIGLION2020_DIR
from .predict import select_giants
from .rave import PIPELINE_COLUMNS
from .simulation.realism import read_real_labels, real_on_grid

PAPER_FILES = {"predicted": "res_test_cnn_version_1_True.csv", "apogee": "y_test_cnn_version_1_True.csv"}
"""Guiglion et al. (2020) test set: the CNN's labels (with errors ``e<Label>``) and APOGEE's."""

SNR_EDGES = (10, 20, 30, 50, 80, np.inf)
"""RAVE SNR bins of the Cramér–Rao comparison."""

def expand(values, labels, to=LABELS):
    """(n, len(labels)) values as (n, len(to)) columns in the order of ``to``, NaN where a label of
    ``to`` is not in ``labels`` (a network trained on four labels, compared over all nine)."""
    values = np.asarray(values, float)
    out = np.full((values.shape[0], len(to)), np.nan)
    for j, name in enumerate(labels):
        if name in to:
            out[:, list(to).index(name)] = values[:, j]
    return out


def pipeline_labels(table, catalogue, labels=LABELS):
    """The RAVE pipeline's labels (``PIPELINE_COLUMNS``) of the observations of ``table``,
    (n, k) in the order of ``labels``; NaN for labels the pipeline does not give."""
    rows = row_index(catalogue["rave_obs_id"], table["rave_obs_id"], "RAVE catalogue")
    out = np.full((len(table), len(labels)), np.nan)
    for j, name in enumerate(labels):
        if name in PIPELINE_COLUMNS:
            out[:, j] = float_column(catalogue, PIPELINE_COLUMNS[name], "RAVE catalogue")[rows]
    return out


def paper_test_set(folder=GUIGLION2020_DIR, labels=LABELS):
    """Guiglion et al. (2020)'s own test set: CNN labels, their errors and the APOGEE labels,
    each (n, k) in the order of ``labels``, matched on RAVE_OBS_ID. Returns (predicted, sigma, apogee)."""
    folder = Path(folder)
    pred = Table.read(folder / PAPER_FILES["predicted"], format="ascii.csv")
    ref = Table.read(folder / PAPER_FILES["apogee"], format="ascii.csv")
    ref = ref[row_index(ref["RAVE_OBS_ID"], pred["RAVE_OBS_ID"], folder / PAPER_FILES["apogee"])]

    def pick(t, prefix, what):
        lower = {c.lower(): c for c in t.colnames}
        return np.column_stack([float_column(t, lower.get((prefix + GUIGLION2020_COLUMNS[n]).lower(), "?"), what)
                                for n in labels])

    return (pick(pred, "", PAPER_FILES["predicted"]), pick(pred, "e", PAPER_FILES["predicted"]),
            pick(ref, "", PAPER_FILES["apogee"]))


def network_predictions(ensembles, flux, error, table):
    """Calibrated mean and σ of each ensemble for spectra (n, n_pixels) with their catalogue
    ``table`` (photometry): ({name: (n, 9)}, {name: (n, 9)}) over ``LABELS``, NaN where a
    network does not predict a label."""
    pred, sigma = {}, {}
    for name, ens in ensembles.items():
        mean, spread = ens.predict(ens.inputs(flux, error, table), calibrated=True)
        pred[name], sigma[name] = expand(mean, ens.labels), expand(spread, ens.labels)
    return pred, sigma


def _peer_inputs(flux, error):
    """The peers' input: flux with pixels without information (error inf) at the continuum, and
    the inverse variances (0 there; only The Cannon uses them)."""
    error = np.asarray(error, float)
    ivar = np.where(np.isfinite(error) & (error > 0), 1.0 / np.where(error > 0, error, 1.0) ** 2, 0.0)
    return prepare_inputs(flux, error)[..., 0], ivar


def fit_peers(flux, error, y, train, test, names=None, models=None):
    """Fit each peer of ``baselines.BASELINES`` (or those in ``names``) on the ``train`` rows of the
    spectra and predict the ``test`` rows (``_peer_inputs``). ``models``: a dict that, when given,
    receives each fitted peer by name (to predict other spectra with ``predict_peers``).
    Returns ({name: (n_test, k) predictions}, {name: seconds to fit and predict})."""
    x, ivar = _peer_inputs(flux, error)
    unknown = sorted(set(names or ()) - set(BASELINES))
    if unknown:
        raise ValueError(f"unknown peer(s) {unknown}; known: {sorted(BASELINES)}")
    predictions, seconds = {}, {}
    for name in tqdm(names or list(BASELINES), desc="peers"):
        start = time.perf_counter()
        model = BASELINES[name]().fit(x[train], y[train], ivar[train])
        predictions[name] = model.predict(x[test], ivar[test])
        seconds[name] = time.perf_counter() - start
        if models is not None:
            models[name] = model
    return predictions, seconds


def predict_peers(models, flux, error):
    """Predictions {name: (n, k)} of the fitted peers ``models`` (``fit_peers``) for other spectra."""
    x, ivar = _peer_inputs(flux, error)
    return {name: model.predict(x, ivar) for name, model in models.items()}


def method_table(predictions, reference, labels, statistic="scatter"):
    """One row per method, one column per label: the robust scatter (or, with
    ``statistic="bias"``, the median) of ``prediction − reference``; ``spectra`` is the number of
    test spectra with a finite residual in the first label. ``predictions`` maps a method name to
    (n, k) labels, or to a pair (predictions, reference) for a method on other stars."""
    which = {"bias": 0, "scatter": 1}[statistic]
    rows = []
    for method, pred in predictions.items():
        pred, ref = pred if isinstance(pred, tuple) else (pred, reference)
        diff = np.asarray(pred, float) - np.asarray(ref, float)
        rows.append([method, int(np.isfinite(diff[:, 0]).sum()),
                     *[bias_and_scatter(diff[:, j])[which] for j in range(len(labels))]])
    table = Table(rows=rows, names=("method", "spectra", *labels))
    for name in labels:
        table[name].format = ".0f" if name == "teff" else ".3f"
    return table


def bound_ratios(estimate, truth, crlb, snr, labels, edges=SNR_EDGES, min_stars=10):
    """Scatter of ``estimate − truth`` against the Cramér–Rao bound, per SNR bin and label.

    ``scatter`` is the robust σ of the residuals in the bin and ``bound`` the RMS of the stars'
    bounds (what an unbiased estimator reaching every bound would scatter by). ``ratio`` is the
    robust σ of residual / bound, star by star: 1 for an estimator that reaches every star's bound,
    whatever the spread of bounds within the bin. Returns a Table: snr_lo, snr_hi, label, spectra,
    scatter, bound, ratio (NaN where a bin has fewer than ``min_stars`` spectra).
    """
    rows = []
    snr = np.asarray(snr, float)
    for j, name in enumerate(labels):
        res = np.asarray(estimate, float)[:, j] - np.asarray(truth, float)[:, j]
        bound_j = np.asarray(crlb, float)[:, j]
        binned = binned_residuals(res, snr, edges)
        bound = rms_in_bins(bound_j, snr, edges)
        for b in range(len(edges) - 1):
            n = int(binned["n"][b])
            sel = (snr >= edges[b]) & (snr < edges[b + 1])
            ratio = bias_and_scatter(res[sel] / bound_j[sel])[1] if n >= min_stars else np.nan
            rows.append((edges[b], edges[b + 1], name, n, binned["scatter"][b], bound[b], ratio))
    table = Table(rows=rows, names=("snr_lo", "snr_hi", "label", "spectra", "scatter", "bound", "ratio"))
    for col in ("scatter", "bound", "ratio"):
        table[col].format = ".3g"
    return table


def giants_on_side(estimate, truth, side="thick"):
    """Of the giants of a simulated sample whose true population is ``side`` (true log g < 3.5,
    Teff < 5500 K, true SNR > 80: ``predict.select_giants`` on the truth), the fraction that the
    ``estimate`` (n, 9) over ``LABELS`` puts on that side (``discs.fraction_on_side``).
    ``truth``: ``survey.read_truth`` of the same rows. Returns (fraction, stars); (nan, 0) if none."""
    t, estimate = np.asarray(truth["labels"], float), np.asarray(estimate, float)
    giants = select_giants(Table({"logg": t[:, 1], "teff": t[:, 0], "snr": truth["snr"]}), clean=False)
    return fraction_on_side(estimate[giants, LABELS.index("m_h")], estimate[giants, LABELS.index("alpha_m")],
                            np.asarray(truth["population"])[giants], side)


def best_variant(table, baseline="baseline", tolerance=0.05, slope="alpha slope",
                 accuracy=("alpha scatter", "teff scatter")):
    """The row of ``table`` (one per training variant, ``benchmarks/variants.py``) that raises the
    ``slope`` most without losing accuracy: among the rows whose every ``accuracy`` column (a
    scatter) is at most (1 + ``tolerance``) × the ``baseline`` row's, the one with the largest
    finite slope; the baseline itself when none beats it. Returns the row's ``variant``."""
    names = list(table["variant"])
    if baseline not in names:
        raise ValueError(f"no row {baseline!r} in the variants table ({names})")
    base = table[names.index(baseline)]
    best, best_slope = baseline, float(base[slope]) if np.isfinite(base[slope]) else -np.inf
    for row in table:
        fine = all(float(row[c]) <= (1 + tolerance) * float(base[c]) for c in accuracy)
        if fine and np.isfinite(row[slope]) and float(row[slope]) > best_slope:
            best, best_slope = str(row["variant"]), float(row[slope])
    return best


def worst_ratio(ratios, snr_min=50):
    """The largest scatter / bound ratio over labels and SNR bins with ``snr_lo ≥ snr_min``
    (NaN if none); returns (ratio, label)."""
    sel = ratios[(np.asarray(ratios["snr_lo"]) >= snr_min) & np.isfinite(np.asarray(ratios["ratio"], float))]
    if len(sel) == 0:
        return np.nan, None
    k = int(np.argmax(sel["ratio"]))
    return float(sel["ratio"][k]), str(sel["label"][k])


def top_bin_ratios(ratios, labels):
    """Per label of ``labels`` in a ``bound_ratios`` table, the ratio of its highest SNR bin with
    a finite ratio (NaN if none): {label: ratio}."""
    out = {}
    for name in labels:
        sel = ratios[(np.asarray(ratios["label"]) == name) & np.isfinite(np.asarray(ratios["ratio"], float))]
        out[name] = float(sel["ratio"][np.argmax(sel["snr_lo"])]) if len(sel) else np.nan
    return out


def best_methods(table, labels, skip=()):
    """Per label, the method of a ``method_table`` with the smallest finite value, leaving out the
    methods in ``skip``: {label: (method, value)}; labels no method gives are left out."""
    out = {}
    for name in labels:
        rows = [(float(r[name]), str(r["method"])) for r in table
                if str(r["method"]) not in skip and np.isfinite(float(r[name]))]
        if rows:
            value, method = min(rows)
            out[name] = (method, value)
    return out


def repeat_rows(catalogue, max_stars=None, seed=0, star_column="id_2mass"):
    """Catalogue rows of stars observed at least twice (all their observations), for the
    precision from repeat pairs; at most ``max_stars`` stars, drawn with ``seed``."""
    stars = np.asarray(catalogue[star_column]).astype(str)
    names, counts = np.unique(stars[np.char.strip(stars) != ""], return_counts=True)
    repeated = names[counts >= 2]
    if max_stars is not None and repeated.size > max_stars:
        repeated = np.random.default_rng(seed).choice(repeated, max_stars, replace=False)
    return np.flatnonzero(np.isin(stars, repeated))


def best_observation(keys, catalogue, star_column="id_2mass", snr_column="snr_med_sparv"):
    """For each star of ``keys`` (2MASS ids), the catalogue row of its highest-SNR observation,
    −1 where RAVE did not observe it."""
    stars = np.char.strip(np.asarray(catalogue[star_column]).astype(str))
    snr = float_column(catalogue, snr_column, "RAVE catalogue")
    best = {}
    for i in np.argsort(np.where(np.isfinite(snr), snr, -np.inf)):  # the highest SNR is written last
        best[stars[i]] = i
    return np.array([best.get(str(k).strip(), -1) for k in keys], int)


def predict_observations(ensemble, cube_path, catalogue, rows, batch_size=256):
    """Calibrated predictions of ``ensemble`` for catalogue ``rows``: their spectra are read from the
    spectra cube (notebook 02), their photometry from the catalogue. Returns (mean, sigma), each
    (n, n_labels) in the ensemble's label order."""
    cube = row_index(read_cube_ids(cube_path), np.asarray(catalogue["rave_obs_id"])[rows], f"spectra cube {cube_path}")
    order = np.argsort(cube)                        # read the cube in file order, then undo
    _, flux, error, _ = read_spectra_cube(cube_path, rows=cube[order])
    undo = np.argsort(order)
    x = ensemble.inputs(flux[undo], error[undo], catalogue[rows])
    return ensemble.predict(x, calibrated=True, batch_size=batch_size)


def repeat_precision(ensembles, cube_path, catalogue, rows, star_column="id_2mass"):
    """Precision of each ensemble from repeat observations: for the catalogue ``rows`` (stars
    observed more than once, ``repeat_rows``), the scatter of the differences between two
    observations of a star / √2 (``metrics.pair_precision``) beside the median predicted,
    calibrated σ of the same observations.

    Returns a Table: network, label, pairs, precision from pairs, median predicted σ (K, dex).
    """
    out = []
    stars = catalogue[star_column][rows]
    for name, ens in ensembles.items():
        mean, sigma = predict_observations(ens, cube_path, catalogue, rows)
        for j, label in enumerate(ens.labels):
            precision, n_pairs = pair_precision(mean[:, j], stars)
            out.append((name, label, n_pairs, precision, np.median(sigma[:, j])))
    table = Table(rows=out, names=("network", "label", "pairs", "precision from pairs", "median predicted σ"))
    table["precision from pairs"].format = table["median predicted σ"].format = ".3g"
    return table


DOMAIN_LABELS = ("teff", "logg", "m_h")
"""Labels compared on real spectra: those the forward-model fit gives."""


def domain_shift(ensemble, real_spectra, grid, literature=None):
    """Real spectra of known stars through a network trained on simulated ones.

    Every real spectrum (``simulation.realism.read_real_spectra`` rows) is fitted with the forward
    model (labels, radial velocity), moved to rest, brought to RAVE's resolution and the ensemble's
    ``grid`` (Å) and given to the (spectra-only) ``ensemble``. Returns a Table: star, library, then
    ``<label> fit``, ``<label> network`` and ``<label> sigma`` (its calibrated uncertainty) for the
    ``DOMAIN_LABELS`` the ensemble predicts, the
    literature Teff (K) and log g of the stars in ``literature`` (default
    ``realism.read_real_labels()``; NaN for the others), and the spectrum's ``ood_score`` and
    ``out_of_domain`` (above the ensemble's threshold: :mod:`ravecnn_utils.novelty`; NaN and False,
    with a warning, for an ensemble without novelty statistics).
    """
    if ensemble.takes_photometry:
        raise ValueError("domain_shift needs a spectra-only ensemble (real library spectra have no photometry)")
    fitted, flux = real_on_grid(spectra=real_spectra, grid=grid)
    network, sigma, ood_score = ensemble.predict(ensemble.inputs(flux), calibrated=True, scores=True)
    literature = read_real_labels() if literature is None else literature
    known = {row["name"]: row for row in literature}
    table = Table({"star": fitted["name"], "library": fitted["library"]})
    for label in DOMAIN_LABELS:
        if label in ensemble.labels:
            table[f"{label} fit"] = fitted[label]
            table[f"{label} network"] = network[:, list(ensemble.labels).index(label)]
            table[f"{label} sigma"] = sigma[:, list(ensemble.labels).index(label)]
    for label, column in (("teff", "teff_K"), ("logg", "logg_dex")):
        table[f"{label} literature"] = [known[n][column] if n in known else np.nan for n in fitted["name"]]
    for col in table.colnames[2:]:
        table[col].format = ".0f" if col.startswith("teff") else ".2f"
    table["ood_score"] = ood_score
    table["ood_score"].format = ".3g"
    table["out_of_domain"] = np.zeros(len(table), bool) if ensemble.novelty is None else ensemble.novelty.flag(ood_score)
    return table
