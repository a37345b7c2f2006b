"""A test the prior cannot pass (issue 16): the slope metric on toys whose answer is known, the
simulation's decorrelated sample (same Teff, log g, [M/H] as the star, [α/M] no longer following
[M/H], the survey's other files unchanged), its reader, its spectra on the grid and its table."""

import os

import numpy as np
import pytest

from ravecnn_utils import discs, metrics, prior, survey, validation
from ravecnn_utils.cube import common_wavelengths, resample_spectrum
from ravecnn_utils.labels import LABELS
from ravecnn_utils.rave import read_rave_spectrum
from ravecnn_utils.simulation import catalogues, simulate
from ravecnn_utils.survey import FILES

TINY = dict(n_field=10, n_crossmatch=40, n_apogee_only=3, n_benchmark=4)
FIXED = ("teff", "logg", "m_h", "fe_h")


def _toy(n=3000, seed=3, correlated=False):
    """True [M/H] and [α/M] (dex): [α/M] drawn independently of [M/H], or following it."""
    rng = np.random.default_rng(seed)
    m_h = rng.normal(-0.2, 0.4, n)
    alpha = (-0.2 * m_h + rng.normal(0, 0.03, n)) if correlated else rng.uniform(-0.05, 0.35, n)
    return rng, m_h, alpha


def _prior(m_h):
    """A predictor that reads nothing but [M/H]: the thin-disc sequence, curved."""
    return 0.05 - 0.2 * m_h + 0.05 * m_h**2


# --- the slope metric -----------------------------------------------------------------------------

def test_a_predictor_that_copies_the_prior_has_slope_zero():
    _, m_h, alpha = _toy()
    slope, error, n = metrics.slope_at_fixed(_prior(m_h), alpha, m_h)
    assert n == len(alpha)
    assert abs(slope) < 0.02 and abs(slope) < 4 * error


def test_a_perfect_predictor_has_slope_one_and_a_noisy_reader_about_one():
    rng, m_h, alpha = _toy()
    assert metrics.slope_at_fixed(alpha, alpha, m_h)[0] == pytest.approx(1, abs=1e-9)
    slope, error, _ = metrics.slope_at_fixed(alpha + rng.normal(0, 0.05, alpha.size), alpha, m_h)
    assert abs(slope - 1) < 4 * error < 0.1
    half = 0.5 * alpha + 0.5 * _prior(m_h)  # reads half the spectrum, half the prior
    assert metrics.slope_at_fixed(half, alpha, m_h)[0] == pytest.approx(0.5, abs=0.02)


def test_the_trap_a_prior_looks_perfect_without_the_fixed_metallicity():
    """On a sample drawn from the prior itself, the plain slope of the prior is about 1: only the
    fit at fixed [M/H] (or the decorrelated sample) tells it from a method that reads the lines."""
    _, m_h, alpha = _toy(correlated=True)
    assert metrics.slope_at_fixed(_prior(m_h), alpha, None)[0] > 0.9
    assert abs(metrics.slope_at_fixed(_prior(m_h), alpha, m_h)[0]) < 0.1


def test_slope_skips_missing_rows_and_needs_enough_of_them():
    _, m_h, alpha = _toy(n=50)
    pred = alpha.copy()
    pred[:10] = np.nan
    assert metrics.slope_at_fixed(pred, alpha, m_h)[2] == 40
    assert np.isnan(metrics.slope_at_fixed(alpha[:3], alpha[:3], m_h[:3])[0])
    assert np.isnan(metrics.slope_at_fixed(alpha, np.full(50, 0.1), m_h)[0])  # no spread in the truth


def test_slope_table_and_report_rows():
    rng, m_h, alpha = _toy(n=400)
    labels = np.column_stack([rng.normal(0, 1, (400, 2)), m_h, m_h, alpha, rng.normal(0, 0.1, (400, 4))])
    truth = {"labels": labels, "crlb": np.full(labels.shape, 0.05), "snr": np.linspace(10, 200, 400)}
    prior_pred = labels.copy()
    prior_pred[:, 4] = _prior(m_h)
    four = np.full(labels.shape, np.nan)
    four[:, :5] = labels[:, :5]
    rows, words = prior.report_rows(truth["snr"])
    assert rows.sum() == np.sum(truth["snr"] > 80) and "SNR > 80" in words
    assert prior.report_rows(truth["snr"], min_stars=1000)[0].all()
    table = prior.slope_table({"reads": labels, "prior": prior_pred, "four": four}, truth, rows=rows)
    assert len(table) == 9 + 9 + 5   # no rows for labels a method does not give
    assert prior.entry(table, "reads", "alpha_m") == pytest.approx(1)
    assert abs(prior.entry(table, "prior", "alpha_m")) < 0.1
    assert prior.entry(table, "reads", "m_h") == pytest.approx(1)  # [M/H] itself: the plain slope
    assert np.isnan(prior.entry(table, "four", "ni_fe"))
    row = table[(table["method"] == "prior") & (table["label"] == "alpha_m")][0]
    assert row["stars"] == rows.sum() and row["bound"] == pytest.approx(0.05)
    assert row["scatter"] > 0.05 and row["ratio"] == pytest.approx(row["scatter"] / 0.05)


def test_fraction_on_side():
    population = np.array(["thick", "thick", "thin", "thick", "halo"])
    m_h = np.zeros(5)
    alpha = np.array([0.3, 0.0, 0.3, 0.25, 0.3])  # the boundary is at 0.10 for [M/H] = 0
    assert discs.fraction_on_side(m_h, alpha, population) == (pytest.approx(2 / 3), 3)
    assert discs.fraction_on_side(m_h, alpha, population, "thin") == (0.0, 1)
    assert np.isnan(discs.fraction_on_side(m_h, alpha, population, "bulge")[0])


# --- the sample ------------------------------------------------------------------------------------

def test_decorrelated_sample_shuffles_the_abundances_and_keeps_the_rest():
    rng = np.random.default_rng(5)
    stars = simulate.draw_stars(dict(n_field=30, n_crossmatch=1500, n_apogee_only=20), rng)
    obs = simulate.draw_observations(stars, rng, 150)
    twins, twin_obs = catalogues.decorrelated_sample(stars, obs, np.random.default_rng(6))
    cross = np.flatnonzero(stars["kind"] == "crossmatch")
    assert len(twins) == len(twin_obs) == cross.size
    original = stars[np.asarray(obs["star_index"])[np.searchsorted(obs["star_index"], cross)]]
    assert list(twins["id_2mass"]) == list(original["id_2mass"])
    for name in FIXED:
        np.testing.assert_array_equal(twins[name], original[name])
    for name in catalogues.DECORRELATED_LABELS:
        assert not np.array_equal(twins[name], original[name])
        np.testing.assert_array_equal(np.sort(twins[name]), np.sort(original[name]))  # same values
        assert abs(np.corrcoef(twins["m_h"], twins[name])[0, 1]) < 0.08, name
    assert abs(np.corrcoef(original["m_h"], original["alpha_m"])[0, 1]) > 0.5  # the prior it breaks
    assert abs(np.corrcoef(twins["alpha_m"], twins["mg_fe"])[0, 1]) < 0.08  # each by its own shuffle
    # each star's first observation: its id, SNR and wavelength axis
    first = [np.flatnonzero(obs["star_index"] == i)[0] for i in cross]
    assert list(twin_obs["rave_obs_id"]) == list(obs["rave_obs_id"][first])
    np.testing.assert_array_equal(twin_obs["snr"], obs["snr"][first])
    np.testing.assert_array_equal(twin_obs["star_index"], np.arange(cross.size))
    assert set(twins["population"]) <= set(discs.SIDES)


@pytest.fixture(scope="module")
def tiny_survey(tmp_path_factory):
    """A tiny survey with its decorrelated sample, and the same survey simulated without it."""
    out = tmp_path_factory.mktemp("prior")
    with pytest.MonkeyPatch.context() as mp:
        mp.setitem(simulate.PROFILES, "tiny_prior", dict(TINY))
        simulate.simulate_survey(out / "with", "tiny_prior", seed=11, processes=1, progress=False)
        mp.setattr(simulate, "write_decorrelated", lambda *args, **kwargs: 0)
        simulate.simulate_survey(out / "without", "tiny_prior", seed=11, processes=1, progress=False)
    return out


def test_the_sample_leaves_every_other_file_byte_for_byte(tiny_survey):
    with_, without = tiny_survey / "with", tiny_survey / "without"
    old = sorted(p.relative_to(without) for p in without.rglob("*") if p.is_file())
    new = sorted(p.relative_to(with_) for p in with_.rglob("*") if p.is_file())
    extra = {p for p in new if p.parts[0] == FILES["decorrelated"]}
    assert set(new) - extra == set(old) and len(extra) == TINY["n_crossmatch"] + 1
    assert survey.read_manifest(with_)["n_decorrelated"] == TINY["n_crossmatch"]
    for path in old:
        if path.name != survey.MANIFEST:  # the manifest lists the files
            assert (with_ / path).read_bytes() == (without / path).read_bytes(), path


def test_flat_prior_shuffles_only_the_crossmatch_abundances():
    """The flat_prior profile's cross-match stars lose the [α/M]–[M/H] relation; the field and
    APOGEE-only stars, and every star's Teff, log g, [M/H], are those of the same draw."""
    stars = simulate.draw_stars(dict(n_field=300, n_crossmatch=1500, n_apogee_only=50), np.random.default_rng(5))
    flat = catalogues.flatten_crossmatch_prior(stars, np.random.default_rng(6))
    cross = np.asarray(stars["kind"]).astype(str) == "crossmatch"  # draw_stars: strings as ASCII bytes
    assert abs(np.corrcoef(stars["m_h"][cross], stars["alpha_m"][cross])[0, 1]) > 0.5
    assert abs(np.corrcoef(flat["m_h"][cross], flat["alpha_m"][cross])[0, 1]) < 0.08
    for name in catalogues.DECORRELATED_LABELS:
        np.testing.assert_array_equal(np.sort(flat[name][cross]), np.sort(stars[name][cross]))
    for name in (*LABELS, "population", "id_2mass"):
        np.testing.assert_array_equal(flat[name][~cross], stars[name][~cross])
    for name in FIXED:
        np.testing.assert_array_equal(flat[name], stars[name])
    assert simulate.PROFILES["flat_prior"] == simulate.PROFILES["full"] | {"flat_prior": 1}


def test_read_decorrelated_keeps_teff_logg_metallicity_and_the_snr(tiny_survey):
    folder, table, truth = survey.read_decorrelated(tiny_survey / "with")
    assert len(table) == TINY["n_crossmatch"] == len(np.unique(table["id_2mass"]))
    star = survey.read_truth(tiny_survey / "with", table)  # the star's own truth, first observation
    for name in FIXED:
        j = LABELS.index(name)
        np.testing.assert_array_equal(truth["labels"][:, j], star["labels"][:, j])
    for name in catalogues.DECORRELATED_LABELS:
        j = LABELS.index(name)
        assert not np.array_equal(truth["labels"][:, j], star["labels"][:, j])
        assert abs(np.corrcoef(truth["labels"][:, 2], truth["labels"][:, j])[0, 1]) < 3 / np.sqrt(len(table))
    np.testing.assert_array_equal(truth["snr"], star["snr"])
    assert np.all(np.isfinite(truth["crlb"])) and np.all(truth["crlb"] > 0)
    assert truth["fisher"].shape == (len(table), 9, 9)
    # a new spectrum, not the survey's: the lines move with the new abundances, the noise is new
    wave, flux, _ = read_rave_spectrum(survey.spectrum_path(folder, table["rave_obs_id"][0]))
    wave0, flux0, _ = read_rave_spectrum(survey.spectrum_path(tiny_survey / "with", table["rave_obs_id"][0]))
    np.testing.assert_array_equal(wave, wave0)
    assert not np.array_equal(flux, flux0)


def test_read_decorrelated_names_a_survey_without_it(tiny_survey):
    with pytest.raises(FileNotFoundError, match="decorrelated"):
        survey.read_decorrelated(tiny_survey / "without")


def test_decorrelated_spectra_are_resampled_like_the_cube(tiny_survey, tmp_path):
    folder, table, _ = survey.read_decorrelated(tiny_survey / "with")
    stars = list(table["id_2mass"][::-3])  # a subset, in another order
    sub, truth, wave, flux, error = prior.decorrelated_spectra(tiny_survey / "with", stars, tmp_path / "cube.fits")
    assert sorted(sub["id_2mass"]) == sorted(stars) and len(truth["labels"]) == len(sub) == len(flux)
    np.testing.assert_array_equal(wave, common_wavelengths())
    for k in (0, len(sub) - 1):
        f, e, _ = resample_spectrum(*read_rave_spectrum(survey.spectrum_path(folder, sub["rave_obs_id"][k])))
        np.testing.assert_array_equal(flux[k], f.astype(np.float32))
        np.testing.assert_array_equal(error[k], e.astype(np.float32))
    with pytest.raises(ValueError, match="none of the 1 stars"):
        prior.decorrelated_spectra(tiny_survey / "with", ["2M00000000+0000000"], tmp_path / "none.fits")


def test_fitted_peers_predict_other_spectra(toy_training_set):
    _, flux, error, table = toy_training_set
    y = np.column_stack([table["teff"], table["logg"]])
    train, test = np.asarray(table["split"]) == "train", np.asarray(table["split"]) == "test"
    models = {}
    pred, _ = validation.fit_peers(flux, error, y, train, test, names=["mean", "ridge"], models=models)
    assert list(models) == ["mean", "ridge"]
    again = validation.predict_peers(models, flux[test], error[test])
    for name in models:
        np.testing.assert_allclose(again[name], pred[name])


def test_decorrelated_predictions_of_networks_and_peers(tiny_survey, tmp_path):
    """Every method on the decorrelated spectra, rows in the sample's order; a network trained on
    another grid is refused. The networks are untrained: only the plumbing is under test."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras

    from ravecnn_utils import model as cnn
    from ravecnn_utils.ensemble import Ensemble, LabelScaler

    survey_dir = tiny_survey / "with"
    catalogue = survey.read_catalogue(survey_dir)
    _, table, _ = survey.read_decorrelated(survey_dir)
    stars = table["id_2mass"][:7]
    wave = common_wavelengths()
    keras.utils.set_random_seed(1)
    members = [cnn.slides_cnn(n_pixels=wave.size, labels=("teff", "alpha_m")) for _ in range(2)]
    ens = Ensemble(members, LabelScaler([3500.0, -0.2], [3000.0, 0.6]), ("teff", "alpha_m"), grid=wave,
                   calibration={"teff": 1.0, "alpha_m": 1.0})
    rng = np.random.default_rng(2)
    models = {}
    validation.fit_peers(1 + 0.01 * rng.normal(size=(30, wave.size)), np.full((30, wave.size), 0.01),
                         rng.normal(size=(30, 9)), np.arange(20), np.arange(20, 30), ["mean"], models=models)
    sub, truth, methods = prior.decorrelated_predictions({"toy": ens}, models, survey_dir, stars,
                                                         tmp_path / "cube.fits", catalogue)
    assert list(sub["id_2mass"]) == list(stars) and list(methods) == ["CNN toy", "mean"]
    _, _, _, flux, error = prior.decorrelated_spectra(survey_dir, stars, tmp_path / "cube.fits")
    mean, _ = ens.predict(ens.inputs(flux, error))
    np.testing.assert_allclose(methods["CNN toy"][:, [0, 4]], mean)
    assert np.all(np.isnan(methods["CNN toy"][:, [1, 2, 3, 5, 6, 7, 8]]))
    assert methods["mean"].shape == (7, 9) and len(truth["labels"]) == 7
    other = Ensemble(members, ens.scaler, ens.labels, grid=wave[:-1], calibration=ens.calibration)
    with pytest.raises(ValueError, match="decorrelated spectra"):
        prior.decorrelated_predictions({"other": other}, {}, survey_dir, stars, tmp_path / "cube.fits", catalogue)


def test_prior_limited_slope_is_the_posterior_mean_slope():
    """A Gaussian prior of width σ_p at fixed [M/H] and spectra at a bound σ_i give the slope
    σ_p² / (σ_p² + σ_i²): 0.5 where the two are equal, near 1 where the prior is wide."""
    rng = np.random.default_rng(3)
    n = 200_000
    labels = np.zeros((n, len(LABELS)))
    m_h = rng.uniform(-1, 0.4, n)
    labels[:, LABELS.index("m_h")] = m_h
    labels[:, LABELS.index("alpha_m")] = 0.1 - 0.25 * m_h + 0.1 * m_h**2 + rng.normal(0, 0.05, n)
    labels[:, LABELS.index("teff")] = rng.normal(4800, 400, n)
    crlb = np.full((50, len(LABELS)), np.nan)
    crlb[:, LABELS.index("alpha_m")] = 0.05
    crlb[:, LABELS.index("teff")] = 40.0
    out = prior.prior_limited_slope(labels, crlb, ["alpha_m", "teff", "logg"])
    assert out["alpha_m"][1] == pytest.approx(0.05, rel=0.01)
    assert out["alpha_m"][0] == pytest.approx(0.5, abs=0.01)
    assert out["teff"][0] == pytest.approx(400**2 / (400**2 + 40**2), abs=0.002)
    assert np.isnan(out["logg"][0])  # no bound for it
