"""A survey folder as the notebooks see it (ravecnn_utils.survey)."""

import shutil

import numpy as np
import pytest

from ravecnn_utils import survey
from ravecnn_utils.survey import FILES


@pytest.fixture(scope="module")
def loaded(smoke_survey):
    return survey.load_survey(smoke_survey)


def test_load_survey_tables(loaded, smoke_survey):
    assert {"catalogue", "allstar", "benchmark", "truth_stars", "truth_obs", "manifest"} <= set(loaded)
    assert loaded["manifest"]["profile"] == "smoke" and loaded["manifest"]["simulated"] is True
    assert len(loaded["catalogue"]) == loaded["manifest"]["n_observations"] == len(loaded["truth_obs"])
    assert "APOGEE_ID" in loaded["allstar"].colnames
    assert "teff" in loaded["benchmark"].colnames
    assert "population" in loaded["truth_stars"].colnames
    assert "fisher" not in loaded["truth_obs"].colnames  # the cross-match stars' are in truth.fits[FISHER]


def test_load_survey_accepts_a_string(smoke_survey):
    assert len(survey.load_survey(str(smoke_survey))["catalogue"]) > 0


def test_load_survey_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="nowhere"):
        survey.load_survey(tmp_path / "nowhere")


def test_load_survey_missing_allstar(smoke_survey, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_survey, copy, ignore=shutil.ignore_patterns("spectra"))
    (copy / FILES["allstar"]).unlink()
    with pytest.raises(FileNotFoundError, match="allStar-dr17-synspec_rev1.fits"):
        survey.load_survey(copy)


def test_real_survey_has_no_truth(smoke_survey, tmp_path):
    """A folder without survey.json is read as real data: no truth tables are loaded."""
    copy = tmp_path / "real"
    shutil.copytree(smoke_survey, copy, ignore=shutil.ignore_patterns("spectra", "survey.json", "truth.fits"))
    loaded = survey.load_survey(copy)
    assert loaded["manifest"] is None
    assert "truth_stars" not in loaded and "truth_obs" not in loaded
    assert "real" in survey.describe(loaded["manifest"])


def test_describe(loaded):
    text = survey.describe(loaded["manifest"])
    assert "SIMULATED" in text and "smoke" in text and "2020" in text
    real = survey.describe(None)
    assert "real" in real and "SIMULATED" not in real


def test_resolve_sources_simulated_and_real(tmp_path):
    sim = tmp_path / "sim"
    assert survey.resolve_sources("sim", sim) == (sim, sim / survey.FILES["allstar"])
    assert survey.resolve_sources("sim", sim, allstar_path=tmp_path / "a.fits") == (sim, tmp_path / "a.fits")
    real = survey.resolve_sources("real", sim, rave_dir=str(tmp_path / "rave"), allstar_path=str(tmp_path / "a.fits"))
    assert real == (tmp_path / "rave", tmp_path / "a.fits")
    with pytest.raises(ValueError, match="rave_dir and allstar_path"):
        survey.resolve_sources("real", sim, rave_dir=tmp_path / "rave")
    with pytest.raises(ValueError, match="'sim' or 'real'"):
        survey.resolve_sources("simulated", sim)


def test_rave_folder_prefers_rave_dir(tmp_path):
    assert survey.rave_folder(tmp_path / "sim") == tmp_path / "sim"
    assert survey.rave_folder(tmp_path / "sim", tmp_path / "rave") == tmp_path / "rave"
    assert survey.rave_folder(str(tmp_path / "sim"), None) == tmp_path / "sim"


def test_read_catalogue_takes_a_name_or_a_list(smoke_survey, loaded):
    one = survey.read_catalogue(smoke_survey, survey.FILES["catalogue"])
    listed = survey.read_catalogue(smoke_survey, [survey.FILES["catalogue"]])
    assert one["rave_obs_id"].tolist() == listed["rave_obs_id"].tolist() == loaded["catalogue"]["rave_obs_id"].tolist()


def test_spectrum_path(smoke_survey, loaded):
    obs_id = loaded["catalogue"]["rave_obs_id"][0]
    path = survey.spectrum_path(smoke_survey, obs_id)
    assert path.is_file() and path.name == f"RAVE_{obs_id}.fits"


def test_spectrum_path_in_the_archive_layout(tmp_path):
    """The RAVE archive serves spectra one folder per night (spectra/<YYYYMMDD>/RAVE_<id>.fits)."""
    obs_id = "20100313_0823m14_113"
    night = tmp_path / "spectra" / "20100313"
    night.mkdir(parents=True)
    (night / f"RAVE_{obs_id}.fits").touch()
    assert survey.spectrum_path(tmp_path, obs_id) == night / f"RAVE_{obs_id}.fits"
    (tmp_path / "spectra" / f"RAVE_{obs_id}.fits").touch()  # both: the flat file wins
    assert survey.spectrum_path(tmp_path, obs_id) == tmp_path / "spectra" / f"RAVE_{obs_id}.fits"
    missing = survey.spectrum_path(tmp_path, "20040403_1042m11_024")
    assert missing == tmp_path / "spectra" / "RAVE_20040403_1042m11_024.fits" and not missing.exists()


def test_gallery_selection_boxes(loaded):
    stars, obs = loaded["truth_stars"], loaded["truth_obs"]
    picks = survey.gallery_selection(stars, obs)
    assert len(picks) >= 3
    boxes = {name: box for name, *box in survey.GALLERY_BOXES}
    assert len({name for name, _ in picks}) == len(picks)
    row = {sid: i for i, sid in enumerate(stars["id_2mass"])}
    star = np.array([row[s] for s in obs["id_2mass"]])
    teff, logg, m_h = (np.asarray(stars[c])[star] for c in ("teff", "logg", "m_h"))
    snr = np.asarray(obs["snr"])
    for name, i in picks:
        (t0, t1), (g0, g1), (m0, m1) = boxes[name]
        assert t0 <= teff[i] < t1, name
        assert g0 <= logg[i] < g1, name
        assert m0 <= m_h[i] < m1, name
        inside = (teff >= t0) & (teff < t1) & (logg >= g0) & (logg < g1) & (m_h >= m0) & (m_h < m1)
        assert snr[i] == snr[inside].max(), name  # the highest-SNR observation in its box
