"""The out-of-domain check (ravecnn_utils.novelty): the threshold's rank, the feature clouds, the
false-alarm rate on held-out spectra of the training survey, the flag on foreign spectra, and the
statistics in the saved ensemble and the catalogue.

A tiny slides network (80 px, 2 labels, 2 members, 3 epochs) on synthetic spectra with three
lines whose depths follow Teff and log g; seeds fixed.
"""

import json
import os
import warnings

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from scipy import stats  # noqa: E402

from ravecnn_utils import inputs, predict, train  # noqa: E402
from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils.ensemble import ENSEMBLE_FILE, Ensemble  # noqa: E402
from ravecnn_utils.novelty import FALSE_ALARM_RATE, Novelty, conformal_threshold, feature_cloud  # noqa: E402

N_PIX = 80
LABELS = ("teff", "logg")
WAVE = 8420.0 + 0.4 * np.arange(N_PIX)
LINES = (20, 40, 60)
N_VAL, N_HELD_OUT = 2000, 4000


def survey(n, seed):
    """Spectra (n, N_PIX) of the toy survey: three lines at ``LINES`` whose depths follow Teff and
    log g, noise 0.01; labels (n, 2)."""
    rng = np.random.default_rng(seed)
    y = np.column_stack([rng.uniform(4000, 6500, n), rng.uniform(1.0, 4.8, n)])
    pix = np.arange(N_PIX)
    line = [np.exp(-0.5 * ((pix - c) / 2.0) ** 2) for c in LINES]
    flux = (1 - (0.8 - 0.1 * (y[:, :1] - 4000) / 1000) * line[0] - (0.1 + 0.1 * y[:, 1:]) * line[1]
            - 0.3 * line[2] + rng.normal(0, 0.01, (n, N_PIX)))
    return flux.astype(np.float32), y


@pytest.fixture(scope="module")
def ensemble():
    """Two members trained on 800 toy spectra; novelty fitted on them and 2000 validation spectra
    for the default false-alarm rate."""
    flux, y = survey(800, seed=1)
    flux_val, y_val = survey(N_VAL, seed=2)
    x, x_val = inputs.prepare_inputs(flux), inputs.prepare_inputs(flux_val)
    ens = train.train_ensemble(lambda: cnn.slides_cnn(n_pixels=N_PIX, labels=LABELS), x, y, x_val, y_val,
                               labels=LABELS, n_models=2, seeds=[5, 6], grid=WAVE, progress=False,
                               epochs=3, batch_size=32, patience=3)
    ens.calibrate(x_val, y_val)
    ens.fit_novelty(x, x_val)
    return ens


def scores(ens, flux):
    return ens.predict(ens.inputs(flux), scores=True)[2]


# --- the pieces -----------------------------------------------------------------------------------

def test_conformal_threshold_takes_the_stated_rank():
    values = np.arange(1.0, 100.0)                             # 99 scores: 1 … 99
    assert conformal_threshold(values, 0.01) == 99.0          # ⌈100 · 0.99⌉ = 99th smallest
    assert conformal_threshold(values, 0.1) == 90.0           # ⌈100 · 0.9⌉ = 90th
    assert conformal_threshold(np.r_[values[:10], np.nan], 0.01) == 10.0  # too few: the largest
    with pytest.raises(ValueError, match="no finite"):
        conformal_threshold([np.nan], 0.01)
    for bad in (0, 1, 1.5, "1%"):
        with pytest.raises(ValueError, match="false_alarm_rate"):
            conformal_threshold(values, bad)


def test_gaussian_cloud_gives_chi_square_distances():
    """Features drawn from a correlated Gaussian: the score (d² / k) of new draws has mean 1 and
    the χ²_k / k distribution; a point 6σ off along the thinnest direction scores far above."""
    rng = np.random.default_rng(3)
    k = 4
    a = rng.normal(size=(k, k))
    cov = a @ a.T + 0.05 * np.eye(k)
    draw = lambda n: rng.multivariate_normal(np.arange(k), cov, n)  # noqa: E731
    mean, precision = feature_cloud(draw(20_000))
    np.testing.assert_allclose(mean, np.arange(k), atol=0.1)
    novelty = Novelty([mean], [precision], 1.0, 0.01, 1, 20_000)
    s = novelty.score(draw(20_000)[None])
    assert abs(s.mean() - 1) < 0.03
    assert stats.kstest(s * k, stats.chi2(k).cdf).statistic < 0.02
    w, v = np.linalg.eigh(cov)
    assert novelty.score((np.arange(k) + 6 * np.sqrt(w[0]) * v[:, 0])[None, None]) > 30 / k


# --- the trained network ----------------------------------------------------------------------------

def test_false_alarm_rate_on_held_out_survey_spectra(ensemble):
    """Held-out spectra of the training survey are flagged at the nominal rate: within the
    binomial 99.9 % interval of the held-out count, widened by the threshold's own scatter."""
    nov = ensemble.novelty
    assert nov.false_alarm_rate == FALSE_ALARM_RATE and nov.n_validation == N_VAL and nov.n_train == 800
    flagged = nov.flag(scores(ensemble, survey(N_HELD_OUT, seed=4)[0])).mean()
    sigma = np.sqrt(FALSE_ALARM_RATE * (1 - FALSE_ALARM_RATE) * (1 / N_HELD_OUT + 1 / N_VAL))
    assert abs(flagged - FALSE_ALARM_RATE) < 3.3 * sigma, flagged


def test_foreign_spectra_are_flagged(ensemble):
    """Spectra the toy survey cannot produce — another wavelength region (the lines elsewhere), a
    featureless continuum, a hot star with only broad Paschen-like lines, and the survey's spectra
    reversed — all score above the threshold; the survey's own spectra mostly do not."""
    own, _ = survey(50, seed=8)
    pix = np.arange(N_PIX)
    elsewhere = 1 - 0.5 * np.exp(-0.5 * ((pix - np.array([[8], [33], [70]])) / 2.0) ** 2).sum(0)
    paschen = 1 - 0.3 * np.exp(-0.5 * ((pix - np.arange(5, N_PIX, 15)[:, None]) / 5.0) ** 2).sum(0)
    foreign = np.vstack([elsewhere, np.ones(N_PIX), paschen, own[:5, ::-1]]).astype(np.float32)
    s = scores(ensemble, foreign)
    assert ensemble.novelty.flag(s).all(), s
    assert ensemble.novelty.flag(scores(ensemble, own)).mean() < 0.1


def test_catalogue_column_and_flag_bit(ensemble):
    """predict_spectra writes ood_score and sets out_of_domain exactly where it exceeds the
    threshold; a spectrum without usable pixels has NaN and no such bit."""
    flux = np.vstack([survey(6, seed=9)[0], np.ones((1, N_PIX)), np.full((1, N_PIX), np.nan)])
    cols = predict.predict_spectra(ensemble, flux, np.full(flux.shape, 0.01), wave=WAVE)
    bit = predict.FLAGS["out_of_domain"]
    ood = cols["ood_score"]
    np.testing.assert_array_equal((cols["flag"] & bit) > 0, ood > ensemble.novelty.threshold)
    assert cols["flag"][6] & bit and np.isnan(ood[7]) and not cols["flag"][7] & bit
    np.testing.assert_allclose(ood[:7], scores(ensemble, flux[:7]), rtol=1e-5)
    assert "ood_score" in predict.column_descriptions(LABELS)["column"]


def test_saved_statistics_survive_and_older_ensembles_warn(ensemble, tmp_path):
    """Saving keeps the statistics (equal scores after loading); an ensemble saved without them
    predicts with ood_score NaN, no out_of_domain bit, and a warning naming its file and the fix;
    a damaged entry is refused naming the file."""
    flux = survey(8, seed=10)[0]
    loaded = Ensemble.load(ensemble.save(tmp_path / "ens"))
    assert loaded.novelty.threshold == ensemble.novelty.threshold
    np.testing.assert_allclose(scores(loaded, flux), scores(ensemble, flux), rtol=1e-6)
    path = tmp_path / "ens" / ENSEMBLE_FILE
    d = json.loads(path.read_text())
    d["novelty"] = None
    path.write_text(json.dumps(d))
    older = Ensemble.load(tmp_path / "ens")
    with pytest.warns(UserWarning, match=rf"{ENSEMBLE_FILE}.*no novelty statistics.*fit_novelty"):
        cols = predict.predict_spectra(older, flux, np.full(flux.shape, 0.01), wave=WAVE)
    assert np.isnan(cols["ood_score"]).all() and not (cols["flag"] & predict.FLAGS["out_of_domain"]).any()
    d["novelty"] = {"mean": [[0.0]], "precision": [[[1.0]]], "threshold": 1.0}
    path.write_text(json.dumps(d))
    with pytest.raises(ValueError, match=rf"{ENSEMBLE_FILE}: entry 'novelty' must hold"):
        Ensemble.load(tmp_path / "ens")
    with warnings.catch_warnings():
        warnings.simplefilter("error")                          # an ensemble with statistics: no warning
        predict.predict_spectra(ensemble, flux, np.full(flux.shape, 0.01), wave=WAVE)
