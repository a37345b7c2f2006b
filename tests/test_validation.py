"""Validation tables and inputs (ravecnn_utils.validation) on problems with known answers."""

import numpy as np
import pytest
from astropy.table import Table

from ravecnn_utils import discs, survey, validation
from ravecnn_utils.labels import CORE_LABELS, LABELS
from ravecnn_utils.survey import FILES


def test_expand_places_labels_and_fills_nan():
    out = validation.expand([[1.0, 2.0]], ["m_h", "teff"])
    assert out.shape == (1, 9) and out[0, 0] == 2.0 and out[0, 2] == 1.0
    assert np.isnan(out[0, [1, 3, 4, 5, 6, 7, 8]]).all()


def test_method_table_recovers_scatter_and_bias():
    """Predictions = reference + N(bias, σ) per label: the table gives σ (or the bias); a method given as
    (predictions, its own reference) is measured against that reference."""
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(20_000, 2))
    good = ref + rng.normal([5.0, 0.0], [50.0, 0.1], size=ref.shape)
    other_ref = rng.normal(size=(300, 2))
    table = validation.method_table({"good": good, "other": (other_ref + 0.2, other_ref)}, ref, ["teff", "logg"])
    assert list(table["method"]) == ["good", "other"] and list(table["spectra"]) == [20_000, 300]
    assert abs(table["teff"][0] - 50) < 1.5 and abs(table["logg"][0] - 0.1) < 0.003
    assert table["logg"][1] == pytest.approx(0.0, abs=1e-12)
    bias = validation.method_table({"good": good}, ref, ["teff", "logg"], statistic="bias")
    assert abs(bias["teff"][0] - 5) < 1.5


def test_bound_ratios_of_an_efficient_estimator_are_one():
    """An estimator scattering by exactly each star's bound has ratio ≈ 1 in every SNR bin; a bin with
    too few stars gets NaN; worst_ratio looks only at bins from snr_min up."""
    rng = np.random.default_rng(4)
    n = 60_000
    snr = rng.uniform(10, 100, n)
    crlb = np.column_stack([3000 / snr, 3 / snr])
    truth = rng.normal(size=(n, 2))
    estimate = truth + rng.normal(size=(n, 2)) * crlb
    estimate[:, 1] += rng.normal(size=n) * crlb[:, 1]             # label 2: √2 × the bound
    edges = (10, 30, 50, 100, 1000)
    ratios = validation.bound_ratios(estimate, truth, crlb, snr, ["teff", "logg"], edges, min_stars=10)
    teff, logg = ratios[ratios["label"] == "teff"], ratios[ratios["label"] == "logg"]
    np.testing.assert_allclose(teff["ratio"][:3], 1.0, atol=0.03)
    np.testing.assert_allclose(logg["ratio"][:3], np.sqrt(2), atol=0.05)
    assert teff["spectra"][3] == 0 and np.isnan(teff["ratio"][3])
    worst, label = validation.worst_ratio(ratios, snr_min=50)
    assert label == "logg" and worst == pytest.approx(logg["ratio"][2])


def test_paper_test_set_matches_the_csv_files():
    """The published test set: 9 labels in LABELS order, APOGEE rows matched on RAVE_OBS_ID."""
    pred, sigma, apogee = validation.paper_test_set()
    raw = Table.read(validation.GUIGLION2020_DIR / validation.PAPER_FILES["predicted"], format="ascii.csv")
    ref = Table.read(validation.GUIGLION2020_DIR / validation.PAPER_FILES["apogee"], format="ascii.csv")
    assert pred.shape == sigma.shape == apogee.shape == (len(raw), len(LABELS))
    k = list(ref["RAVE_OBS_ID"]).index(raw["RAVE_OBS_ID"][0])
    assert pred[0, 0] == raw["Teff"][0] and pred[0, 4] == raw["AlphaM"][0] and sigma[0, 8] == raw["eNiFe"][0]
    assert apogee[0, 2] == ref["MH"][k]
    assert np.isfinite(pred).all() and (sigma >= 0).all()


def test_pipeline_labels_and_missing_observation():
    catalogue = Table({"rave_obs_id": ["a", "b"], "teff_cal_madera": [5000.0, 4000.0],
                       "logg_cal_madera": [4.0, 2.0], "m_h_cal_madera": [0.1, -0.5]})
    out = validation.pipeline_labels(Table({"rave_obs_id": ["b", "a"]}), catalogue)
    np.testing.assert_array_equal(out[:, :3], [[4000, 2, -0.5], [5000, 4, 0.1]])
    assert np.isnan(out[:, 3:]).all()
    with pytest.raises(KeyError, match="RAVE catalogue.*'zz'"):
        validation.pipeline_labels(Table({"rave_obs_id": ["zz"]}), catalogue)


def test_repeat_rows_and_best_observation():
    catalogue = Table({"rave_obs_id": list("abcdef"), "id_2mass": ["s1", "s2", "s1", "s3", "s3", ""],
                       "snr_med_sparv": [20.0, 50.0, 40.0, np.nan, 10.0, 99.0]})
    assert validation.repeat_rows(catalogue).tolist() == [0, 2, 3, 4]
    assert len(np.unique(catalogue["id_2mass"][validation.repeat_rows(catalogue, max_stars=1)])) == 1
    assert validation.best_observation(["s1", "s3", "s9"], catalogue).tolist() == [2, 4, -1]


def test_read_truth_of_simulated_observations(smoke_survey):
    """Truth rows follow the table's order; the bound with the abundances known is never larger."""
    from ravecnn_utils.survey import FILES

    obs = Table.read(smoke_survey / FILES["truth"], hdu="OBSERVATIONS")
    stars = Table.read(smoke_survey / FILES["truth"], hdu="STARS")
    obs.convert_bytestring_to_unicode()
    stars.convert_bytestring_to_unicode()
    bounds = Table.read(smoke_survey / FILES["truth"], hdu="FISHER")
    bounds.convert_bytestring_to_unicode()
    kind = dict(zip(stars["id_2mass"], stars["kind"]))
    field = [i for i, s in enumerate(obs["id_2mass"]) if kind[s] == "field"][0]
    crossmatch = [list(obs["rave_obs_id"]).index(o) for o in bounds["rave_obs_id"][[4, 0, 2]]]
    pick = obs[crossmatch[:2] + [field] + crossmatch[2:]]
    table = Table({"rave_obs_id": pick["rave_obs_id"], "apogee_id": pick["id_2mass"]})
    truth = survey.read_truth(smoke_survey, table)
    star_rows = [list(stars["id_2mass"]).index(s) for s in pick["id_2mass"]]
    np.testing.assert_array_equal(truth["labels"][:, 0], stars["teff"][star_rows])
    np.testing.assert_array_equal(truth["snr"], pick["snr"])
    np.testing.assert_array_equal(truth["crlb"][[0, 1, 3]], bounds["crlb"][[4, 0, 2]])
    np.testing.assert_array_equal(truth["fisher"][[0, 1, 3]], bounds["fisher"][[4, 0, 2]])
    assert np.isnan(truth["crlb"][2]).all() and np.isnan(truth["crlb_core"][2]).all()  # a field star: no bound
    assert np.isnan(truth["fisher"][2]).all() and np.isfinite(truth["labels"][2]).all()
    core = [LABELS.index(n) for n in CORE_LABELS]
    assert (truth["crlb_core"][[0, 1, 3]] <= truth["crlb"][[0, 1, 3]][:, core] * (1 + 1e-9)).all()
    with pytest.raises(FileNotFoundError, match="truth"):
        survey.read_truth(smoke_survey / "nowhere", table)


def test_read_truth_of_a_survey_by_older_code(smoke_survey, tmp_path):
    """A truth file without the FISHER extension (older code) is refused with what to do."""
    from astropy.io import fits

    (tmp_path / FILES["truth"]).parent.mkdir(parents=True, exist_ok=True)
    with fits.open(smoke_survey / FILES["truth"]) as hdul:
        fits.HDUList([h.copy() for h in hdul if h.name != "FISHER"]).writeto(tmp_path / FILES["truth"])
    table = Table.read(smoke_survey / FILES["catalogue"])[:2]
    with pytest.raises(ValueError, match="no FISHER extension.*simulate it again"):
        survey.read_truth(tmp_path, table)


def test_disc_sides_against_truth_and_population():
    """Two thin-disc stars, one thick, one bulge: the predicted side of star 2 is wrong."""
    summary, confusion = discs.disc_sides([0.0, 0.0, -0.5, 0.1], [0.0, 0.0, 0.0, 0.0],
                                               [0.0, 0.0, -0.5, 0.1], [0.0, 0.0, 0.3, 0.0],
                                               ["thin", "thin", "thick", "bulge"])
    assert list(summary["spectra"]) == [4, 3]
    assert summary["same side"][0] == pytest.approx(0.75) and summary["same side"][1] == pytest.approx(2 / 3)
    assert list(confusion["network: thin"]) == [1, 1, 2]          # bulge, thick, thin rows


def test_read_truth_finds_the_star_of_each_observation(smoke_survey):
    """Without an apogee_id column the star comes from the observation itself."""
    from ravecnn_utils.survey import FILES

    obs = Table.read(smoke_survey / FILES["truth"], hdu="OBSERVATIONS")
    obs.convert_bytestring_to_unicode()
    with_ids = Table({"rave_obs_id": obs["rave_obs_id"][:4], "apogee_id": obs["id_2mass"][:4]})
    a = survey.read_truth(smoke_survey, with_ids)
    b = survey.read_truth(smoke_survey, Table({"rave_obs_id": obs["rave_obs_id"][:4]}))
    np.testing.assert_array_equal(a["labels"], b["labels"])


def test_best_variant_takes_the_largest_slope_that_keeps_the_accuracy():
    table = Table(rows=[("baseline", 0.3, 0.040, 70.0), ("noisy", 0.9, 0.060, 70.0),  # slope up, α worse
                        ("hot", 0.8, 0.040, 80.0), ("good", 0.5, 0.041, 71.0), ("better", 0.6, 0.039, 69.0),
                        ("broken", np.nan, 0.030, 60.0)],
                  names=("variant", "alpha slope", "alpha scatter", "teff scatter"))
    assert validation.best_variant(table) == "better"
    assert validation.best_variant(table, tolerance=0.5) == "noisy"
    assert validation.best_variant(table[[0, 1, 2]]) == "baseline"
    with pytest.raises(ValueError, match="baseline"):
        validation.best_variant(table[1:])


def test_giants_on_side_counts_only_true_giants_with_high_snr():
    labels = np.zeros((5, len(LABELS)))
    labels[:, LABELS.index("teff")] = [4500, 4500, 4500, 6000, 4500]
    labels[:, LABELS.index("logg")] = [2.5, 2.5, 2.5, 2.5, 4.5]  # star 3 too hot, star 4 a dwarf
    truth = {"labels": labels, "snr": np.array([100, 100, 50, 100, 100]),  # star 2: SNR too low
             "population": np.array(["thick", "thick", "thick", "thick", "thick"])}
    estimate = np.zeros_like(labels)
    estimate[:, LABELS.index("alpha_m")] = [0.3, 0.0, 0.3, 0.3, 0.3]  # thick, thin, …
    assert validation.giants_on_side(estimate, truth) == (0.5, 2)
    assert np.isnan(validation.giants_on_side(estimate, truth, "thin")[0])
