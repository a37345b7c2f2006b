"""Value tests of the small functions the notebooks call: cut parameters, star counts, the
training table and its provenance, table look-ups, z-scores, gradient shapes, the networks'
specs and table, the disc boundary, and the truth of a simulated survey's rows."""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from astropy.table import MaskedColumn, Table  # noqa: E402

from ravecnn_utils import crossmatch, discs, files, gradients, metrics, rave, survey, trainingset  # noqa: E402
from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils.apogee import ASPCAP_STAR_BAD_BIT, STARFLAG_BAD_BITS  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS, LABELS  # noqa: E402
from ravecnn_utils.photometry import COLUMNS as PHOTOMETRY_COLUMNS  # noqa: E402


# --- crossmatch.cuts_from_parameters -------------------------------------------------------------

def test_cuts_from_parameters_keeps_the_defaults_left_at_none():
    cuts = crossmatch.cuts_from_parameters(70, 10, "keep")
    assert set(cuts) == set(crossmatch.CUTS)
    assert cuts["starflag_bad_bits"] == STARFLAG_BAD_BITS == (0, 3, 4, 18, 22)
    assert cuts["aspcap_star_bad_bit"] == ASPCAP_STAR_BAD_BIT == 23
    assert cuts["label_error_max"] == crossmatch.CUTS["label_error_max"]
    assert cuts["label_error_max"]["teff"] == 150
    assert cuts["required_labels"] == ("teff", "logg", "m_h")
    assert (cuts["apogee_snr_min"], cuts["rave_snr_min"], cuts["repeats"]) == (70, 10, "keep")
    cuts["label_error_max"]["teff"] = 1.0                  # editing what came back …
    assert crossmatch.CUTS["label_error_max"]["teff"] == 150  # … leaves the module's defaults alone


def test_cuts_from_parameters_given_values_win():
    cuts = crossmatch.cuts_from_parameters(50, 5, "best", starflag_bad_bits=(1, 2), aspcap_star_bad_bit=7,
                                           label_error_max={"teff": 100})
    assert (cuts["apogee_snr_min"], cuts["rave_snr_min"], cuts["repeats"]) == (50, 5, "best")
    assert cuts["starflag_bad_bits"] == (1, 2) and cuts["aspcap_star_bad_bit"] == 7
    assert cuts["label_error_max"] == {"teff": 100}        # replaces the whole dict
    assert crossmatch.CUTS["label_error_max"]["logg"] == 0.2  # the defaults are untouched
    assert crossmatch.CUTS["starflag_bad_bits"] == STARFLAG_BAD_BITS


def test_cuts_from_parameters_snr_none_means_no_cut_and_bad_values_are_refused():
    cuts = crossmatch.cuts_from_parameters(None, None, "keep")
    assert cuts["apogee_snr_min"] is None and cuts["rave_snr_min"] is None
    with pytest.raises(ValueError, match="repeats"):
        crossmatch.cuts_from_parameters(70, 10, "all")
    with pytest.raises(ValueError, match="unknown label"):
        crossmatch.cuts_from_parameters(70, 10, "keep", label_error_max={"vsini": 5})


# --- rave.count_stars ---------------------------------------------------------------------------

def test_count_stars_counts_repeat_observations_once():
    catalogue = Table({"ra_input": [10.0, 10.0, 10.0000001, 10.0, 200.5, 200.5],
                       "dec_input": [-5.0, -5.0, -5.0, -5.1, 30.0, 30.0]})
    # star 1 three times (one position 1e-7 deg off), star 2 (same RA, other Dec), star 3 twice
    assert rave.count_stars(catalogue) == 3
    assert rave.count_stars(catalogue[:1]) == 1
    assert rave.count_stars(catalogue[[0, 3]]) == 2
    apart = Table({"ra_input": [10.0, 10.00001], "dec_input": [-5.0, -5.0]})   # 0.036″ apart: two stars
    assert rave.count_stars(apart) == 2


# --- trainingset.training_table and provenance --------------------------------------------------

def kept_table(with_photometry=("parallax", "av50", "phot_g_mean_mag")):
    rng = np.random.default_rng(0)
    columns = {name: rng.normal(size=4) for name in trainingset.TABLE_COLUMNS}
    columns |= {"extra": np.arange(4), "ra": rng.uniform(size=4)}
    columns |= {name: rng.uniform(size=4) for name in with_photometry}
    names = list(columns)
    rng.shuffle(names)                                   # columns in any order
    return Table({name: columns[name] for name in names})


def test_training_table_keeps_its_columns_then_the_photometry_present():
    kept = kept_table()
    out = trainingset.training_table(kept)
    phot = [c for c in PHOTOMETRY_COLUMNS if c in ("parallax", "av50", "phot_g_mean_mag")]
    assert phot == ["parallax", "phot_g_mean_mag", "av50"]          # photometry.COLUMNS' order
    assert out.colnames == [*trainingset.TABLE_COLUMNS, *phot]
    assert len(out) == 4
    for name in out.colnames:
        np.testing.assert_array_equal(out[name], kept[name])
    assert trainingset.training_table(kept_table(())).colnames == list(trainingset.TABLE_COLUMNS)


def test_training_table_names_a_missing_column():
    kept = kept_table()
    kept.remove_columns(["stratum", "ni_fe_err"])
    with pytest.raises(ValueError, match=r"\['stratum', 'ni_fe_err'\]"):
        trainingset.training_table(kept)


def test_provenance_from_the_cuts_and_the_allstar_file():
    kept = Table({"x": [1]})
    cuts = crossmatch.cuts_from_parameters(70, None, "best")
    kept.meta["cuts"] = cuts
    allstar = Table({"APOGEE_ID": ["a"]}, meta={"source": "/data/allStar.fits", "release": "dr17"})
    cutflow = Table({"cut": ["starflag", "rave snr"], "parameter": ["bits", "none"], "removed": [3, 0],
                     "remaining": [97, 97]})
    prov = trainingset.provenance(kept, cutflow, allstar, "simulated smoke", "sim", (0.7, 0.15, 0.15), 42)
    assert set(prov) == {"source", "data_source", "allstar", "allstar_release", "cuts", "split", "cutflow"}
    assert prov["source"] == "simulated smoke" and prov["data_source"] == "sim"
    assert prov["allstar"] == "/data/allStar.fits" and prov["allstar_release"] == "dr17"
    assert prov["cuts"] == cuts and prov["cuts"]["rave_snr_min"] is None and prov["cuts"]["repeats"] == "best"
    assert prov["split"] == {"fractions": [0.7, 0.15, 0.15], "seed": 42, "group": "apogee_id"}
    assert prov["cutflow"] == [{"cut": "starflag", "parameter": "bits", "removed": "3", "remaining": "97"},
                               {"cut": "rave snr", "parameter": "none", "removed": "0", "remaining": "97"}]
    assert json.loads(json.dumps(prov))["split"]["seed"] == 42          # JSON-serialisable


# --- files.row_index and float_column -----------------------------------------------------------

def test_row_index_follows_the_wanted_order_and_strips():
    keys = np.array(["a", "b ", " c", "d"])
    np.testing.assert_array_equal(files.row_index(keys, ["d", "a", "c", "b", "a"], "cat"), [3, 0, 2, 1, 0])
    assert files.row_index(keys, [], "cat").size == 0
    assert files.row_index([101, 102], ["102"], "cat").tolist() == [1]   # keys compared as text


def test_row_index_allow_missing_gives_minus_one():
    assert files.row_index(["a", "b "], ["b", "x", "a"], "cat", allow_missing=True).tolist() == [1, -1, 0]


def test_row_index_names_what_and_the_missing_ids():
    with pytest.raises(KeyError, match=r"RAVE catalogue: 4 identifiers not found, e\.g\. \['x', 'y', 'z'\]"):
        files.row_index(["a", "b"], ["a", "x", "y", "z", "w"], "RAVE catalogue")


def test_float_column_masked_to_nan_and_missing_column_named():
    table = Table({"snr": MaskedColumn([10, 20, 30], mask=[False, True, False]), "name": ["a", "b", "c"]})
    values = files.float_column(table, "snr", "cat")
    assert values.dtype == np.float64
    np.testing.assert_array_equal(values, [10.0, np.nan, 30.0])
    with pytest.raises(KeyError, match=r"allStar: no column 'SNR' \(columns: snr, name\)"):
        files.float_column(table, "SNR", "allStar")


# --- metrics.zscores ----------------------------------------------------------------------------

def test_zscores_divide_and_give_nan_without_sigma():
    z = metrics.zscores([2.0, -3.0, 1.0, np.nan, 1.0], [0.5, 1.5, np.nan, 1.0, 0.0])
    np.testing.assert_array_equal(z[:2], [4.0, -2.0])
    assert np.isnan(z[2]) and np.isnan(z[3])             # a missing residual or σ
    assert np.isnan(z[4])                                # σ = 0: "NaN where … σ is 0" (docstring)
    np.testing.assert_array_equal(metrics.zscores([[1.0, 2.0]], [[2.0, 4.0]]), [[0.5, 0.5]])


# --- gradients.shape_correlation ----------------------------------------------------------------

def test_shape_correlation_of_identical_and_unrelated_shapes():
    rng = np.random.default_rng(1)
    forward = rng.normal(size=(3, 50))
    network = np.vstack([forward[0], -forward[1] * 1e-3, rng.normal(size=50)])
    table = gradients.shape_correlation(network, forward, ["teff", "logg", "m_h"])
    assert list(table["label"]) == ["teff", "logg", "m_h"]
    assert table["correlation"][0] == pytest.approx(1.0, abs=1e-12)     # identical
    assert table["correlation"][1] == pytest.approx(1.0, abs=1e-12)     # sign (abs; else −1) and units ignored
    expected = np.corrcoef(np.abs(network[2]), np.abs(forward[2]))[0, 1]
    assert table["correlation"][2] == pytest.approx(expected) and abs(expected) < 0.5


def test_shape_correlation_refuses_other_shapes():
    with pytest.raises(ValueError, match=r"\(2, 10\).*\(2, 11\)"):
        gradients.shape_correlation(np.ones((2, 10)), np.ones((2, 11)), ["teff", "logg"])
    with pytest.raises(ValueError, match="n_labels = 3"):
        gradients.shape_correlation(np.ones((2, 10)), np.ones((2, 10)), ["teff", "logg", "m_h"])


# --- model.network_spec and network_table -------------------------------------------------------

def test_network_spec_overrides_per_architecture_and_copies():
    spec = cnn.network_spec("slides", slides_labels=["teff", "logg"], paper_labels=["m_h"])
    assert spec == {"architecture": "slides", "labels": ("teff", "logg"), "photometry": False}
    paper = cnn.network_spec("paper_photometry", slides_labels=["teff"], paper_labels=("teff", "m_h"))
    assert paper == {"architecture": "paper", "labels": ("teff", "m_h"), "photometry": True}
    assert cnn.network_spec("paper")["labels"] == LABELS and cnn.network_spec("slides")["labels"] == CORE_LABELS
    spec = cnn.network_spec("paper")
    assert spec is not cnn.NETWORKS["paper"]
    spec["labels"] = ("x",)
    spec["photometry"] = True
    assert cnn.NETWORKS["paper"] == {"architecture": "paper", "labels": LABELS, "photometry": False}
    with pytest.raises(ValueError, match=r"unknown network 'cannon'.*\['paper', 'paper_photometry', 'slides'\]"):
        cnn.network_spec("cannon")


def test_network_table_rows_parameters_and_receptive_fields():
    table = cnn.network_table(60, 0.39)
    assert list(table["network"]) == list(cnn.NETWORKS) == ["slides", "paper", "paper_photometry"]
    assert list(table["pixels"]) == [60] * 3 and list(table["labels"]) == [4, 9, 9]
    for row in table:
        spec = cnn.NETWORKS[row["network"]]
        built = cnn.build(spec["architecture"], 60, spec["labels"], photometry=spec["photometry"])
        assert row["parameters"] == built.count_params()
    assert list(table["receptive field [px]"]) == [58, 28, 28]
    np.testing.assert_array_equal(table["receptive field [Å]"], [22.6, 10.9, 10.9])   # 58 × 0.39, 28 × 0.39
    # the published counts: the slides' network on 723 px, the paper's on 912 px
    assert cnn.network_table(723, 0.39)["parameters"][0] == 44_226
    assert list(cnn.network_table(912, 0.39)["parameters"][1:]) == [57_847, 58_549]
    two = cnn.network_table(60, 0.39, slides_labels=["teff", "logg"])
    assert list(two["labels"]) == [2, 9, 9] and two["parameters"][0] < table["parameters"][0]


# --- discs --------------------------------------------------------------------------------------

def test_boundary_and_chemical_population():
    assert discs.boundary_alpha_m(0) == pytest.approx(0.10)
    np.testing.assert_allclose(discs.boundary_alpha_m([-1.0, 0.5]), [0.18, 0.06])
    m_h = np.array([0.0, 0.0, -1.0, -1.0, -1.3, -1.3, -1.2, 0.0])
    alpha = np.array([0.2, 0.05, 0.2, 0.15, 0.3, 0.0, 0.0, 0.10])
    assert list(discs.chemical_population(m_h, alpha)) == ["thick", "thin", "thick", "thin", "halo", "halo",
                                                           "thin", "thin"]  # -1.2 is not halo; on the line: thin


def test_disc_sides_counts_with_halo_stars():
    # predicted: thick, thin, halo, thin, thin; true labels: thick, thick, halo, thin, halo
    summary, confusion = discs.disc_sides([0.0, 0.0, -1.5, 0.0, 0.0], [0.3, 0.0, 0.3, 0.0, 0.0],
                                          [0.0, 0.0, -2.0, 0.0, -1.5], [0.3, 0.3, 0.3, 0.0, 0.3],
                                          ["thick", "thick", "halo", "thin", "bulge"])
    assert list(summary["spectra"]) == [5, 4]
    assert summary["same side"][0] == pytest.approx(3 / 5)           # stars 0, 2, 3
    assert summary["same side"][1] == pytest.approx(3 / 4)           # bulge left out; star 1 wrong
    assert list(confusion["true population"]) == ["bulge", "halo", "thick", "thin"]
    assert list(confusion["network: thin"]) == [1, 0, 1, 1]
    assert list(confusion["network: thick"]) == [0, 0, 1, 0]
    assert list(confusion["network: halo"]) == [0, 1, 0, 0]


# --- survey.read_truth --------------------------------------------------------------------------

def test_read_truth_of_smoke_rows_in_any_label_order(smoke_survey):
    obs = Table.read(smoke_survey / survey.FILES["truth"], hdu="OBSERVATIONS")
    stars = Table.read(smoke_survey / survey.FILES["truth"], hdu="STARS")
    obs.convert_bytestring_to_unicode()
    stars.convert_bytestring_to_unicode()
    pick = [9, 2, 4]
    table = Table({"rave_obs_id": obs["rave_obs_id"][pick]})
    full = survey.read_truth(smoke_survey, table)
    two = survey.read_truth(smoke_survey, table, labels=("logg", "teff"))
    star_rows = [list(stars["id_2mass"]).index(s) for s in obs["id_2mass"][pick]]
    assert full["labels"].shape == full["crlb"].shape == (3, 9) and full["fisher"].shape == (3, 9, 9)
    assert two["labels"].shape == two["crlb"].shape == (3, 2) and full["crlb_core"].shape == (3, 4)
    np.testing.assert_array_equal(two["labels"][:, 0], stars["logg"][star_rows])
    np.testing.assert_array_equal(two["labels"][:, 1], full["labels"][:, 0])
    np.testing.assert_array_equal(two["crlb"], full["crlb"][:, [1, 0]])
    np.testing.assert_array_equal(full["population"], stars["population"][star_rows])
    bounds = Table.read(smoke_survey / survey.FILES["truth"], hdu="FISHER")
    bounds.convert_bytestring_to_unicode()
    row = {o: i for i, o in enumerate(bounds["rave_obs_id"])}
    for k, i in enumerate(pick):  # a cross-match star's observation has its Fisher matrix, others NaN
        expected = bounds["fisher"][row[obs["rave_obs_id"][i]]] if obs["rave_obs_id"][i] in row else np.nan
        np.testing.assert_array_equal(full["fisher"][k], np.broadcast_to(expected, (9, 9)))
    np.testing.assert_array_equal(full["snr"], obs["snr"][pick])
    with pytest.raises(KeyError, match="OBSERVATIONS.*no_such_obs"):
        survey.read_truth(smoke_survey, Table({"rave_obs_id": ["no_such_obs"]}))
