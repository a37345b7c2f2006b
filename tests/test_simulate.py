"""The simulated survey (ravecnn_utils.simulation.simulate): files, formats, statistics, determinism,
idempotence, parameter checks and the command line.

The smoke survey is simulated once per session (``smoke_survey`` in conftest.py) and is
read-only here; tests that change a survey work on a copy or on a tiny profile.
"""

import json
import re
import shutil

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

from ravecnn_utils import __version__, rave, survey
from ravecnn_utils.simulation import catalogues, simulate
from ravecnn_utils.apogee import APOGEE_COLUMNS
from ravecnn_utils.labels import LABELS
from ravecnn_utils.simulation.simulate import SurveyError, simulate_survey
from ravecnn_utils.survey import FILES

RAVE_OBS_ID = re.compile(r"^\d{8}_\d{4}[mp]\d{2}_\d{3}$")
TWOMASS_ID = re.compile(r"^2M\d{8}[+-]\d{7}$")
TINY = dict(n_field=12, n_crossmatch=8, n_apogee_only=4, n_benchmark=5)
CA_II = 8542.09  # Å (air), the strongest line of the Ca triplet


def _files(folder):
    """Every file under ``folder`` (relative path -> (size, mtime_ns))."""
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def tables(smoke_survey):
    """The smoke survey's tables, read once."""
    truth = smoke_survey / FILES["truth"]
    return {
        "catalogue": Table.read(smoke_survey / FILES["catalogue"], hdu=1),
        "allstar": Table.read(smoke_survey / FILES["allstar"], hdu=1),
        "benchmark": Table.read(smoke_survey / FILES["benchmark"], hdu=1),
        "stars": Table.read(truth, hdu="STARS"),
        "obs": Table.read(truth, hdu="OBSERVATIONS"),
        "fisher": Table.read(truth, hdu="FISHER"),
    }


@pytest.fixture
def tiny_profile(monkeypatch):
    """A few-dozen-star profile ``tiny`` (fast) for tests that write surveys of their own."""
    monkeypatch.setitem(simulate.PROFILES, "tiny", dict(TINY))
    return "tiny"


# ------------------------------------------------------------------ the folder
def test_survey_has_every_file(smoke_survey):
    for key, name in FILES.items():
        assert (smoke_survey / name).exists(), f"{key}: {name} missing"
    assert (smoke_survey / FILES["spectra"]).is_dir()
    assert (smoke_survey / "survey.json").is_file()
    readme = (smoke_survey / "README.txt").read_text()
    assert "SIMULATED" in readme and "seed=2020" in readme
    # nothing temporary left behind, beside or inside
    assert not (smoke_survey.parent / f".{smoke_survey.name}.tmp").exists()
    assert not [p for p in smoke_survey.rglob("*") if ".part" in p.name or p.name.startswith(".")]


def test_one_spectrum_file_per_catalogue_row(smoke_survey, tables):
    files = {p.name for p in (smoke_survey / FILES["spectra"]).iterdir()}
    expected = {rave.spectrum_filename(i) for i in tables["catalogue"]["rave_obs_id"]}
    assert len(expected) == len(tables["catalogue"])
    assert files == expected


def test_manifest(smoke_survey, tables):
    manifest = json.loads((smoke_survey / "survey.json").read_text())
    assert manifest == survey.read_manifest(smoke_survey)
    assert manifest["simulated"] is True
    assert manifest["profile"] == "smoke"
    assert manifest["seed"] == 2020
    assert manifest["version"] == __version__
    assert manifest["labels"] == list(LABELS)
    assert manifest["sizes"] == simulate.PROFILES["smoke"]
    assert manifest["n_observations"] == len(tables["catalogue"]) == len(tables["obs"])
    sizes = simulate.PROFILES["smoke"]
    assert manifest["n_rave_stars"] == sizes["n_field"] + sizes["n_crossmatch"]


def test_read_manifest_of_a_folder_without_one(tmp_path):
    assert survey.read_manifest(tmp_path) is None


# ------------------------------------------------------------------ spectrum files
def test_spectrum_files_format_and_wcs_jitter(smoke_survey):
    crval, cdelt = [], []
    paths = sorted((smoke_survey / FILES["spectra"]).iterdir())
    for path in paths:
        with fits.open(path) as hdul:
            assert hdul[0].header["SIMULATE"] is True
            assert hdul[0].header["ROI"] == path.stem.removeprefix("RAVE_")
            for ext in ("SPECTRUM", "ERROR"):
                hdu = hdul[ext]
                assert isinstance(hdu, fits.ImageHDU)
                assert hdu.data.dtype.kind == "f" and hdu.data.dtype.itemsize == 4, path.name
                assert hdu.data.shape == (simulate.RAVE_GRID["npix"],) == (990,)
                for key in ("CRVAL1", "CDELT1", "CRPIX1"):
                    assert key in hdu.header, f"{path.name}[{ext}] lacks {key}"
            h = hdul["SPECTRUM"].header
            assert h["CRPIX1"] == 1.0
            assert hdul["ERROR"].header["CRVAL1"] == h["CRVAL1"]
            crval.append(h["CRVAL1"])
            cdelt.append(h["CDELT1"])
    crval, cdelt = np.array(crval), np.array(cdelt)
    assert len(np.unique(crval)) == len(paths) and len(np.unique(cdelt)) == len(paths)  # jitter
    assert np.all((crval > 8409.2) & (crval < 8410)), (crval.min(), crval.max())  # always covers 8410 Å
    assert np.all((cdelt > 0.389) & (cdelt < 0.391)), (cdelt.min(), cdelt.max())


def test_spectrum_headers_match_truth(smoke_survey, tables):
    obs = tables["obs"][:20]
    for row in obs:
        header = fits.getheader(smoke_survey / FILES["spectra"] / rave.spectrum_filename(row["rave_obs_id"]),
                                "SPECTRUM")
        assert header["CRVAL1"] == pytest.approx(row["crval1"], abs=1e-9)
        assert header["CDELT1"] == pytest.approx(row["cdelt1"], rel=1e-12)


def test_read_rave_spectrum_wavelengths_from_wcs(smoke_survey, tables):
    path = smoke_survey / FILES["spectra"] / rave.spectrum_filename(tables["obs"]["rave_obs_id"][3])
    wave, flux, rel_error = rave.read_rave_spectrum(path)
    with fits.open(path) as hdul:
        h = hdul["SPECTRUM"].header
        first = h["CRVAL1"] + (1 - h["CRPIX1"]) * h["CDELT1"]  # pixel 1 (FITS counts from 1)
        last = h["CRVAL1"] + (990 - h["CRPIX1"]) * h["CDELT1"]
        np.testing.assert_array_equal(flux, hdul["SPECTRUM"].data)
        np.testing.assert_array_equal(rel_error, hdul["ERROR"].data)
    assert wave.shape == flux.shape == rel_error.shape == (990,)
    assert wave[0] == pytest.approx(first, abs=1e-9)
    assert wave[-1] == pytest.approx(last, abs=1e-9)
    assert np.allclose(np.diff(wave), h["CDELT1"])


def test_ca_line_at_its_wavelength_in_high_snr_spectra(smoke_survey, tables):
    """With the WCS right, the Ca II 8542 core of cool, high-SNR stars falls within 0.5 Å."""
    stars, obs = tables["stars"], tables["obs"]
    teff = dict(zip(stars["id_2mass"], stars["teff"]))
    cool = np.array([teff[i] < 6000 for i in obs["id_2mass"]])
    best = np.flatnonzero(cool)[np.argsort(-np.asarray(obs["snr"])[cool])[:3]]
    assert np.all(obs["snr"][best] > 80)
    for i in best:
        wave, flux, rel_error = rave.read_rave_spectrum(
            smoke_survey / FILES["spectra"] / rave.spectrum_filename(obs["rave_obs_id"][i]))
        window = (wave > CA_II - 6) & (wave < CA_II + 6) & (rel_error < 1)  # no bad pixels
        core = wave[window][np.argmin(flux[window])]
        assert abs(core - CA_II) < 0.5, (obs["rave_obs_id"][i], core)


# ------------------------------------------------------------------ RAVE catalogue
def test_rave_catalogue_columns_and_ids(tables):
    cat = tables["catalogue"]
    for col in ("rave_obs_id", "obsdate", "field", "fibre", "ra_input", "dec_input", "id_2mass",
                "hrv_sparv", "hrv_error_sparv", "snr_med_sparv",
                "teff_cal_madera", "teff_error_madera", "logg_cal_madera", "logg_error_madera",
                "m_h_cal_madera", "m_h_error_madera", "parallax", "parallax_error",
                "phot_g_mean_mag", "phot_bp_mean_mag", "phot_rp_mean_mag",
                "jmag_2mass", "hmag_2mass", "kmag_2mass", "w1mpro", "w2mpro", "av50"):
        assert col in cat.colnames, col
    ids = np.asarray(cat["rave_obs_id"]).astype(str)
    assert len(np.unique(ids)) == len(ids)
    bad = [i for i in ids if not RAVE_OBS_ID.match(i)]
    assert not bad, bad[:5]
    assert np.all(np.asarray(cat["dec_input"]) < 2)  # RAVE: southern sky
    assert np.all((cat["fibre"] >= 1) & (cat["fibre"] <= 150))
    twomass = np.char.strip(np.asarray(cat["id_2mass"]).astype(str))
    assert 0 < np.sum(twomass == "") < 0.1 * len(cat)  # a few without a 2MASS id
    assert all(TWOMASS_ID.match(i) for i in twomass[twomass != ""])
    assert np.all(np.asarray(cat["snr_med_sparv"]) > 0)
    assert str(cat["teff_cal_madera"].unit) == "K"


def test_rave_pipeline_labels_scatter_around_truth(tables):
    cat, stars, obs = tables["catalogue"], tables["stars"], tables["obs"]
    row = {sid: i for i, sid in enumerate(stars["id_2mass"])}
    idx = np.array([row[s] for s in obs["id_2mass"]])  # same row order as the catalogue
    np.testing.assert_array_equal(cat["rave_obs_id"], obs["rave_obs_id"])
    for name in ("teff", "logg", "m_h"):
        z = ((np.asarray(cat[f"{name}_cal_madera"]) - np.asarray(stars[name])[idx])
             / np.asarray(cat[f"{name}_error_madera"]))
        assert 0.7 < np.std(z) < 1.4, name
        assert abs(np.mean(z)) < 0.3, name


# ------------------------------------------------------------------ APOGEE allStar
def test_allstar_columns(smoke_survey, tables):
    with fits.open(smoke_survey / FILES["allstar"]) as hdul:
        assert isinstance(hdul[1], fits.BinTableHDU)
    al = tables["allstar"]
    for col in ("APOGEE_ID", "SNR", "STARFLAG", "ASPCAPFLAG", "EXTRATARG"):
        assert col in al.colnames, col
    assert list(APOGEE_COLUMNS.values())[0] == "TEFF" and list(APOGEE_COLUMNS.values())[-1] == "NI_FE"
    for col in APOGEE_COLUMNS.values():
        for c in (col, f"{col}_ERR", f"{col}_FLAG"):
            assert c in al.colnames, c
    ids = np.asarray(al["APOGEE_ID"]).astype(str)
    bad = [i for i in ids if not TWOMASS_ID.match(i)]
    assert not bad, bad[:5]


def test_allstar_missing_labels_are_nan_and_flagged(tables):
    al = tables["allstar"]
    n_missing = 0
    for col in APOGEE_COLUMNS.values():
        missing = np.isnan(np.asarray(al[col]))
        n_missing += missing.sum()
        assert np.all(np.isnan(np.asarray(al[f"{col}_ERR"])[missing]))
        assert np.all(np.asarray(al[f"{col}_FLAG"])[missing] != 0)
        assert np.all(np.asarray(al[f"{col}_ERR"])[~missing] > 0)
    assert n_missing > 0


def test_allstar_duplicates_carry_extratarg_bit_4(tables):
    al = tables["allstar"]
    ids = np.asarray(al["APOGEE_ID"]).astype(str)
    dup_flag = (np.asarray(al["EXTRATARG"]) & (1 << 4)) != 0
    unique, counts = np.unique(ids, return_counts=True)
    repeated = set(unique[counts > 1])
    assert repeated, "no duplicate APOGEE entries"
    assert set(ids[dup_flag]) == repeated
    for sid, count in zip(unique, counts):  # exactly one entry per star is the primary one
        assert np.sum(~dup_flag[ids == sid]) == 1, sid
        assert np.sum(dup_flag[ids == sid]) == count - 1, sid


def test_southern_apogee_stars_are_in_rave(tables):
    al, cat = tables["allstar"], tables["catalogue"]
    ids = np.asarray(al["APOGEE_ID"]).astype(str)
    dec = np.asarray(al["DEC"])
    rave_ids = set(np.char.strip(np.asarray(cat["id_2mass"]).astype(str)))
    south = np.unique(ids[dec < 2])
    north = np.unique(ids[dec > 5])
    assert south.size > 50 and north.size > 10
    assert np.mean([i in rave_ids for i in south]) > 0.9
    assert not any(i in rave_ids for i in north)


def test_apogee_labels_scatter_with_quoted_errors(tables):
    al, stars = tables["allstar"], tables["stars"]
    row = {sid: i for i, sid in enumerate(stars["id_2mass"])}
    idx = np.array([row[s] for s in np.asarray(al["APOGEE_ID"]).astype(str)])
    good = (al["STARFLAG"] == 0) & (al["ASPCAPFLAG"] == 0) & (al["EXTRATARG"] == 0)
    assert good.sum() > 100
    for name, col in APOGEE_COLUMNS.items():
        z = (np.asarray(al[col], float) - np.asarray(stars[name], float)[idx]) / np.asarray(al[f"{col}_ERR"])
        z = z[np.asarray(good) & np.isfinite(z)]
        assert 0.7 < np.std(z) < 1.4, (name, np.std(z))
        assert abs(np.mean(z)) < 0.3, (name, np.mean(z))


def test_benchmark_table(tables):
    bench, stars = tables["benchmark"], tables["stars"]
    assert 0 < len(bench) <= simulate.PROFILES["smoke"]["n_benchmark"]
    for col in ("id_2mass", "teff", "e_teff", "logg", "e_logg", "m_h", "e_m_h"):
        assert col in bench.colnames, col
    kind = dict(zip(stars["id_2mass"], stars["kind"]))
    assert all(kind[s] != "apogee_only" for s in bench["id_2mass"])  # benchmark stars are RAVE stars


# ------------------------------------------------------------------ truth
def test_truth_stars(tables):
    stars = tables["stars"]
    for col in (*LABELS, "population", "id_2mass", "kind"):
        assert col in stars.colnames, col
    sizes = simulate.PROFILES["smoke"]
    assert len(stars) == sizes["n_field"] + sizes["n_crossmatch"] + sizes["n_apogee_only"]
    assert len(np.unique(stars["id_2mass"])) == len(stars)
    for name in LABELS:
        assert np.all(np.isfinite(np.asarray(stars[name], float))), name


def test_fisher_of_the_crossmatch_stars_observations_only(tables):
    """truth.fits[FISHER] holds one row per observation of a cross-match star, in the order of
    OBSERVATIONS; OBSERVATIONS itself has no Fisher matrices."""
    stars, obs, bounds = tables["stars"], tables["obs"], tables["fisher"]
    kind = dict(zip(np.asarray(stars["id_2mass"]).astype(str), np.asarray(stars["kind"]).astype(str)))
    crossmatch = [o for o, s in zip(np.asarray(obs["rave_obs_id"]).astype(str), np.asarray(obs["id_2mass"]).astype(str))
                  if kind[s] == "crossmatch"]
    assert 0 < len(crossmatch) < len(obs)
    assert np.asarray(bounds["rave_obs_id"]).astype(str).tolist() == crossmatch
    assert "fisher" not in obs.colnames and "crlb" not in obs.colnames


def test_truth_fisher_and_crlb(tables):
    obs = tables["fisher"]
    fisher = np.asarray(obs["fisher"], float)
    assert fisher.shape == (len(obs), 9, 9)
    scale = np.abs(fisher).max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(fisher, np.swapaxes(fisher, 1, 2), rtol=0, atol=1e-9 * scale.max())
    eig = np.linalg.eigvalsh(fisher)
    assert np.all(eig >= -1e-9 * eig.max(axis=1, keepdims=True))
    crlb = np.asarray(obs["crlb"], float)
    assert crlb.shape == (len(obs), 9)
    assert np.all(np.isfinite(crlb)) and np.all(crlb > 0)
    np.testing.assert_allclose(crlb, np.sqrt(np.diagonal(np.linalg.inv(fisher), axis1=1, axis2=2)),
                               rtol=1e-6)


def test_snr_distribution(tables):
    snr = np.asarray(tables["obs"]["snr"])
    assert 25 < np.median(snr) < 60  # the full survey aims at ~40
    assert np.sum(snr > 100) > 0
    assert snr.min() >= 5


def test_about_ten_percent_repeat_observations(tables):
    _, counts = np.unique(np.asarray(tables["obs"]["id_2mass"]).astype(str), return_counts=True)
    assert counts.size == simulate.PROFILES["smoke"]["n_field"] + simulate.PROFILES["smoke"]["n_crossmatch"]
    assert 0.05 < np.mean(counts > 1) < 0.20
    assert counts.max() <= 3


# ------------------------------------------------------------------ determinism
def test_same_seed_gives_identical_files(smoke_survey, tmp_path):
    twin = tmp_path / "twin"
    simulate_survey(twin, profile="smoke", seed=2020, processes=1, progress=False)
    for key in ("catalogue", "allstar", "benchmark", "truth"):
        assert (twin / FILES[key]).read_bytes() == (smoke_survey / FILES[key]).read_bytes(), key
    assert (twin / "survey.json").read_bytes() == (smoke_survey / "survey.json").read_bytes()
    names = sorted(p.name for p in (smoke_survey / FILES["spectra"]).iterdir())
    assert names == sorted(p.name for p in (twin / FILES["spectra"]).iterdir())
    for name in (names[0], names[-1]):
        assert ((twin / FILES["spectra"] / name).read_bytes()
                == (smoke_survey / FILES["spectra"] / name).read_bytes()), name


def test_overwrite_with_another_seed_gives_another_survey(smoke_survey, tmp_path):
    copy = tmp_path / "copy"
    shutil.copytree(smoke_survey, copy)
    manifest = simulate_survey(copy, profile="smoke", seed=2021, processes=1, progress=False, overwrite=True)
    assert manifest["seed"] == 2021 == survey.read_manifest(copy)["seed"]
    assert (copy / FILES["catalogue"]).read_bytes() != (smoke_survey / FILES["catalogue"]).read_bytes()
    new = Table.read(copy / FILES["catalogue"], hdu=1)
    old = Table.read(smoke_survey / FILES["catalogue"], hdu=1)
    assert new["rave_obs_id"].tolist() != old["rave_obs_id"].tolist()
    # the old spectra went with the old survey
    assert {p.name for p in (copy / FILES["spectra"]).iterdir()} == {
        rave.spectrum_filename(i) for i in new["rave_obs_id"]}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["copy"]


# ------------------------------------------------------------------ an existing survey
def test_same_survey_again_is_a_no_op(smoke_survey):
    before = _files(smoke_survey)
    manifest = simulate_survey(smoke_survey, profile="smoke", seed=2020, processes=1, progress=False)
    assert manifest == survey.read_manifest(smoke_survey)
    assert _files(smoke_survey) == before
    assert not (smoke_survey.parent / f".{smoke_survey.name}.tmp").exists()


def test_another_seed_refuses_to_overwrite(smoke_survey):
    before = _files(smoke_survey)
    with pytest.raises(FileExistsError, match=re.escape(str(smoke_survey))) as err:
        simulate_survey(smoke_survey, profile="smoke", seed=2021, processes=1, progress=False)
    assert "overwrite" in str(err.value)
    assert _files(smoke_survey) == before
    assert not (smoke_survey.parent / f".{smoke_survey.name}.tmp").exists()


def test_a_foreign_folder_is_not_overwritten(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="out"):
        simulate_survey(out, profile="smoke", seed=1, processes=1, progress=False)
    assert (out / "precious.txt").read_text() == "keep me"


# ------------------------------------------------------------------ bad parameters
@pytest.mark.parametrize("kwargs, match", [
    (dict(profile="nope"), "nope"),
    (dict(seed=-1), "seed"),
    (dict(seed=1.5), "seed"),
    (dict(emulator_path="nope.npz"), "nope.npz"),
], ids=["unknown-profile", "negative-seed", "float-seed", "missing-emulator"])
def test_bad_parameters_write_nothing(tmp_path, kwargs, match):
    parent = tmp_path / "parent"
    parent.mkdir()
    if "emulator_path" in kwargs:
        kwargs["emulator_path"] = tmp_path / kwargs["emulator_path"]
    with pytest.raises(SurveyError, match=re.escape(match)):
        simulate_survey(parent / "out", **kwargs, processes=1, progress=False)
    assert list(parent.iterdir()) == []  # neither ``out`` nor ``.out.tmp``


def test_survey_error_is_a_value_error():
    assert issubclass(SurveyError, ValueError)


@pytest.mark.parametrize("sizes, match", [
    (dict(TINY, n_field=-5), "n_field"),
    (dict(TINY, n_benchmark=-1), "n_benchmark"),
    (dict(TINY, n_field=0, n_crossmatch=0), "n_field + n_crossmatch"),
], ids=["negative-n_field", "negative-n_benchmark", "no-rave-stars"])
def test_bad_profile_sizes_write_nothing(tmp_path, monkeypatch, sizes, match):
    monkeypatch.setitem(simulate.PROFILES, "bad", sizes)
    with pytest.raises(SurveyError, match=re.escape(match)):
        simulate_survey(tmp_path / "out", profile="bad", processes=1, progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ interruption
def _boom(*args, **kwargs):
    raise RuntimeError("boom")


def test_interrupted_run_leaves_nothing(tmp_path, monkeypatch, tiny_profile):
    monkeypatch.setattr(simulate, "benchmark_table", _boom)
    with pytest.raises(RuntimeError, match="boom"):
        simulate_survey(tmp_path / "out", profile=tiny_profile, seed=1, processes=1, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_interrupted_overwrite_keeps_the_old_survey(tmp_path, monkeypatch, tiny_profile):
    out = tmp_path / "out"
    simulate_survey(out, profile=tiny_profile, seed=1, processes=1, progress=False)
    before = _files(out)
    monkeypatch.setattr(simulate, "benchmark_table", _boom)
    with pytest.raises(RuntimeError, match="boom"):
        simulate_survey(out, profile=tiny_profile, seed=2, processes=1, progress=False, overwrite=True)
    assert _files(out) == before
    assert survey.read_manifest(out)["seed"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["out"]


def test_keyboard_interrupt_leaves_nothing(tmp_path, monkeypatch, tiny_profile):
    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(simulate, "allstar_table", interrupt)
    with pytest.raises(KeyboardInterrupt):
        simulate_survey(tmp_path / "out", profile=tiny_profile, seed=1, processes=1, progress=False)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ command line
def test_cli_unknown_profile_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        simulate.main(["--profile", "nope", "--out", str(tmp_path / "out")])
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert "nope" in captured.err and "error" in captured.err
    assert list(tmp_path.iterdir()) == []


def test_cli_existing_other_survey_exits_2(smoke_survey, capsys):
    with pytest.raises(SystemExit) as exit_:
        simulate.main(["--out", str(smoke_survey), "--seed", "7"])
    assert exit_.value.code == 2
    assert "--overwrite" in capsys.readouterr().err


def test_cli_writes_a_survey(tmp_path, capsys, tiny_profile):
    out = tmp_path / "cli"
    assert simulate.main(["--profile", tiny_profile, "--out", str(out), "--seed", "3", "--processes", "1"]) == 0
    manifest = survey.read_manifest(out)
    assert manifest["profile"] == tiny_profile and manifest["seed"] == 3
    assert f"{manifest['n_observations']} simulated observations" in capsys.readouterr().out


# ------------------------------------------------------------------ ids
def test_twomass_id_of_m31():
    # RA 10.68458° / 15 = 0.7123053 h = 0h 42m 44.299s -> 004244.29 (truncated, as 2MASS does)
    # Dec 41.26917° = 41° 16' 09.01"                  -> +411609.0
    assert catalogues.twomass_id(np.array([10.68458]), np.array([41.26917])).tolist() == ["2M00424429+4116090"]
    assert catalogues.twomass_id(10.68458, 41.26917) == "2M00424429+4116090"


def test_twomass_id_format_and_edges():
    ra = np.array([0.0, 15.0, 359.9999999, 180.0, 123.456])
    dec = np.array([0.0, -0.5, -89.9999999, -1e-7, 12.3456])
    ids = catalogues.twomass_id(ra, dec)
    assert all(TWOMASS_ID.match(i) for i in ids), ids
    assert ids.tolist() == [
        "2M00000000+0000000",
        "2M01000000-0030000",
        "2M23595999-8959599",  # truncated: never 24h or 90°
        "2M12000000-0000000",  # the sign of a small negative declination survives
        "2M08134944+1220441",  # 8.2304 h = 8h 13m 49.44s; 12.3456° = 12° 20' 44.16"
    ]


def test_rave_obs_ids_unique_for_identical_positions():
    n = 500
    made = catalogues.rave_obs_ids(np.full(n, 10.68458), np.full(n, -41.26917), np.random.default_rng(0))
    assert [a.dtype.kind for a in made] == ["S", "S", "S"]  # ASCII bytes: a quarter of numpy's str
    ids, dates, field = (a.astype(str) for a in made)
    assert len(ids) == n and len(set(ids)) == n
    assert all(RAVE_OBS_ID.match(i) for i in ids), ids[:5]
    assert set(field) == {"0042m40"}  # 0.712 h -> 0.7 h = 00h42m; -41.3° -> -40
    assert all(i.startswith(f"{d}_{f}_") for i, d, f in zip(ids, dates, field))
    assert all(1 <= int(i[-3:]) <= 150 for i in ids)
    again, _, _ = catalogues.rave_obs_ids(np.full(n, 10.68458), np.full(n, -41.26917), np.random.default_rng(0))
    assert again.tolist() == made[0].tolist()


def test_two_processes_give_the_same_survey_as_one(tmp_path, monkeypatch):
    """The worker pool (several chunks, 2 processes, run through the CLI with its SIGTERM
    handler) writes the same files as the serial path, and returns."""
    monkeypatch.setattr(simulate, "CHUNK", 100)  # the smoke survey then has 6 chunks, its decorrelated sample 2
    assert simulate.main(["--profile", "smoke", "--out", str(tmp_path / "pool"), "--processes", "2"]) == 0
    simulate.simulate_survey(tmp_path / "serial", "smoke", processes=1, progress=False)
    for name in ("truth.fits", "ravedr6_catalogue.fits", "decorrelated/truth.fits"):
        assert (tmp_path / "pool" / name).read_bytes() == (tmp_path / "serial" / name).read_bytes()
    spectra = sorted((tmp_path / "serial" / "spectra").iterdir())
    for path in spectra[::50]:
        assert (tmp_path / "pool" / "spectra" / path.name).read_bytes() == path.read_bytes()


def test_fingerprint_follows_the_writers_not_the_readers(monkeypatch):
    """The survey's fingerprint changes with the spectrum writer's code, not with a reader's."""
    base = simulate.fingerprint()
    monkeypatch.setattr(simulate.inspect, "getsource",
                        lambda obj: "changed" if obj is rave.write_rave_spectrum else "same")
    with_changed_writer = simulate.fingerprint()
    monkeypatch.setattr(simulate.inspect, "getsource",
                        lambda obj: "changed" if obj is rave.read_rave_spectrum else "same")
    with_changed_reader = simulate.fingerprint()
    assert base != with_changed_writer != with_changed_reader
    monkeypatch.setattr(simulate.inspect, "getsource", lambda obj: "same")
    assert simulate.fingerprint() == with_changed_reader


# ------------------------------------------------------------------ Fisher matrices of some observations
def test_observe_with_fewer_fisher_rows_gives_the_same_spectra():
    """``observe`` with ``fisher_rows`` draws the same random numbers, so the spectra and counts are
    bit-identical; the Fisher matrices of those rows equal the all-rows ones (to rounding: the
    matrix product of fewer rows may sum in another order)."""
    rng = np.random.default_rng(3)
    stars = simulate.draw_stars(dict(n_field=20, n_crossmatch=0, n_apogee_only=0), rng)
    obs = simulate.draw_observations(stars, rng)
    labels = np.column_stack([np.asarray(stars[name], float) for name in LABELS])[obs["star_index"]]
    cols = {k: np.asarray(obs[k]) for k in ("snr", "rv_residual", "crval1", "cdelt1")}
    model = simulate._cached_model(str(simulate.EMULATOR_FILE))
    every = simulate.observe(model, labels, cols, np.random.default_rng(9))
    some = simulate.observe(model, labels, cols, np.random.default_rng(9), [4, 0, 7])
    for a, b in zip(every[:2] + every[3:], some[:2] + some[3:]):
        assert np.array_equal(a, b)
    assert some[2].shape == (3, 9, 9) and every[2].shape == (len(obs), 9, 9)
    np.testing.assert_allclose(some[2], every[2][[4, 0, 7]], rtol=1e-12,
                               atol=1e-12 * np.abs(every[2][[4, 0, 7]]).max())
    none = simulate.observe(model, labels, cols, np.random.default_rng(9), [])
    assert none[2].shape == (0, 9, 9) and np.array_equal(none[0], every[0])


# ------------------------------------------------------------------ profiles
def test_profile_sizes():
    """Each profile's star and observation counts, without simulating it: ``rave`` is RAVE DR6
    (451,783 stars, 518,387 observations) with ``full``'s cross-match sample."""
    rave_stars = {name: p["n_field"] + p["n_crossmatch"] for name, p in simulate.PROFILES.items()}
    assert rave_stars["rave"] == 451_783 and simulate.n_observations(simulate.PROFILES["rave"]) == 518_387
    for key in ("n_crossmatch", "n_apogee_only", "n_benchmark"):
        assert simulate.PROFILES["rave"][key] == simulate.PROFILES["full"][key], key
    assert simulate.n_observations(simulate.PROFILES["smoke"]) == 504
    assert simulate.n_observations(simulate.PROFILES["full"]) == 57_000 + 5_700 + 1_140
    assert simulate.n_observations(simulate.PROFILES["scale_10k"]) == 9_999
    for name, sizes in simulate.PROFILES.items():
        simulate._validate(name, 0, simulate.EMULATOR_FILE)
        # REPEAT_FRACTION rounds down: 892 repeats of scale_10k's 8,929 stars is 0.0999
        assert 0.099 <= simulate.n_repeats(sizes) / rave_stars[name] <= 0.15, name


def test_draw_observations_makes_n_observations(monkeypatch):
    """``n_repeats`` of a profile sets how many RAVE stars are observed again (a fifth of them a
    third time), as ``n_observations`` counts: checked on a small profile with its own count."""
    sizes = dict(n_field=40, n_crossmatch=10, n_apogee_only=5, n_benchmark=0, n_repeats=17)
    rng = np.random.default_rng(1)
    stars = simulate.draw_stars(sizes, rng)
    obs = simulate.draw_observations(stars, rng, simulate.n_repeats(sizes))
    assert len(obs) == simulate.n_observations(sizes) == 50 + 17 + 3
    _, counts = np.unique(obs["star_index"], return_counts=True)
    assert counts.size == 50 and np.sum(counts == 2) == 14 and np.sum(counts == 3) == 3
    monkeypatch.setitem(simulate.PROFILES, "many", sizes | {"n_repeats": 51})
    with pytest.raises(SurveyError, match="profile 'many': n_repeats must be <= n_field"):
        simulate._validate("many", 0, simulate.EMULATOR_FILE)
