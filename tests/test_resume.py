"""Never silently wrong: resumes that notice changed inputs, the cube's grid against the
ensemble's, locks, and leftovers of killed writers (fault injection)."""

import os

import numpy as np
import pytest
from astropy.io import fits
from astropy.table import Table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402

from ravecnn_utils import cube as cubes  # noqa: E402
from ravecnn_utils import files, predict  # noqa: E402
from ravecnn_utils import model as cnn  # noqa: E402
from ravecnn_utils.ensemble import Ensemble, LabelScaler  # noqa: E402
from ravecnn_utils.labels import LABELS  # noqa: E402
from ravecnn_utils.photometry import BANDS, FEATURES, absolute_magnitudes  # noqa: E402
from ravecnn_utils.rave import write_rave_spectrum  # noqa: E402

N, NPIX = 24, 60
WAVE = 8500.0 + 0.5 * np.arange(NPIX)


def _write_cube(path, wave=WAVE, seed=0):
    rng = np.random.default_rng(seed)
    flux = (1 - 0.3 * np.exp(-0.5 * ((wave - wave.mean()) / 2) ** 2) + rng.normal(0, 0.01, (N, wave.size)))
    error = np.full_like(flux, 0.01)
    header = cubes.cube_header(wave, float(wave[1] - wave[0]), N, sources="test")
    blocks = {"FLUX": flux.astype(np.float32), "ERROR": error.astype(np.float32)}
    ids = np.array([f"obs_{i:03d}" for i in range(N)])
    cubes.write_spectra_cube(path, header, lambda ext: [blocks[ext]], ids, np.zeros(N, np.int32))
    return path


def _catalogue(seed=0):
    rng = np.random.default_rng(seed)
    table = Table({"rave_obs_id": [f"obs_{i:03d}" for i in range(N)][::-1],  # not in cube order
                   "parallax": rng.uniform(0.5, 3.0, N), "av50": rng.uniform(0, 0.5, N)})
    for column in BANDS.values():
        table[column] = rng.uniform(9, 12, N)
    return table


@pytest.fixture(scope="module")
def ensemble():
    """Two untrained paper networks with photometry, scaled, calibrated, with a validation spread."""
    members = []
    for seed in (3, 4):
        keras.utils.set_random_seed(seed)
        members.append(cnn.paper_cnn(n_pixels=NPIX, photometry=True))
    rng = np.random.default_rng(1)
    y = np.column_stack([rng.uniform(4000, 6000, 50), rng.uniform(1, 5, 50), *rng.uniform(-1, 0.4, (7, 50))])
    phot_scaler = LabelScaler().fit(absolute_magnitudes(_catalogue()))
    return Ensemble(members, LabelScaler().fit(y), LABELS, grid=WAVE, photometry_scaler=phot_scaler,
                    calibration=dict.fromkeys(LABELS, 1.5), validation_spread=dict.fromkeys(LABELS, 1.0),
                    metadata={"photometry": list(FEATURES)})


def _interrupt_at(monkeypatch, k):
    """Make predict_cube fail on its chunk number k (after saving the chunks before it)."""
    real, calls = predict._predict_rows, []

    def rows(*args, **kwargs):
        calls.append(args[2])
        if len(calls) == k + 1:
            raise RuntimeError("interrupted")
        return real(*args, **kwargs)

    monkeypatch.setattr(predict, "_predict_rows", rows)
    return calls


def test_resume_with_the_same_inputs_reuses_the_saved_chunks(ensemble, tmp_path, monkeypatch):
    cube, out = _write_cube(tmp_path / "cube.fits"), tmp_path / "cat.fits"
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="interrupted"):
        predict.predict_cube(ensemble, cube, out, catalogue=_catalogue(), chunk=5, progress=False)
    monkeypatch.undo()
    calls = _interrupt_at(monkeypatch, 99)
    predict.predict_cube(ensemble, cube, out, catalogue=_catalogue(), chunk=5, progress=False)
    assert calls == [10, 15, 20]  # the chunks starting at 0 and 5 were not computed again


@pytest.mark.parametrize("change", ["catalogue rows", "ensemble", "thresholds", "spectra cube"])
def test_resume_after_a_changed_input_starts_afresh_and_says_so(ensemble, tmp_path, monkeypatch, capsys, change):
    """Interrupted, then one input changed: the catalogue equals a fresh run with the new input,
    and one line names what changed (on today's main the old chunks were kept for the catalogue)."""
    cube, out = _write_cube(tmp_path / "cube.fits"), tmp_path / "cat.fits"
    _interrupt_at(monkeypatch, 3)
    with pytest.raises(RuntimeError, match="interrupted"):
        predict.predict_cube(ensemble, cube, out, catalogue=_catalogue(), chunk=5, progress=False)
    monkeypatch.undo()
    ens, catalogue, thresholds = ensemble, _catalogue(), {}
    if change == "catalogue rows":
        catalogue["parallax"] = catalogue["parallax"] * 1.5       # a corrected parallax column
    elif change == "ensemble":
        ens = Ensemble([m for m in ensemble.members[::-1]], ensemble.scaler, LABELS, grid=WAVE,
                       photometry_scaler=ensemble.photometry_scaler, calibration=ensemble.calibration,
                       validation_spread=ensemble.validation_spread, metadata=ensemble.metadata)
        weights = ens.members[0].get_weights()
        ens.members[0].set_weights([w * 1.01 for w in weights])    # retrained member
    elif change == "thresholds":
        thresholds = {"snr_min": 50.0}
    else:
        _write_cube(cube, seed=1)                                  # the cube was rebuilt
    capsys.readouterr()
    try:
        resumed = Table.read(predict.predict_cube(ens, cube, out, catalogue=catalogue, chunk=5, progress=False,
                                                  **thresholds))
        assert change in capsys.readouterr().out
        fresh = Table.read(predict.predict_cube(ens, cube, tmp_path / "fresh.fits", catalogue=catalogue, chunk=5,
                                                progress=False, **thresholds))
    finally:
        if change == "ensemble":
            ens.members[0].set_weights(weights)
    for name in fresh.colnames:
        np.testing.assert_array_equal(resumed[name], fresh[name], err_msg=name)


def test_a_cube_on_another_grid_is_refused(ensemble, tmp_path):
    """A cube 2 Å off the ensemble's grid (same pixel count) is refused, naming both grids."""
    cube = _write_cube(tmp_path / "cube.fits", wave=WAVE + 2.0)
    with pytest.raises(ValueError, match=r"trained on the grid .*8500\.0.*8502\.0"):
        predict.predict_cube(ensemble, cube, tmp_path / "cat.fits", catalogue=_catalogue(), progress=False)
    wave, flux, error, _ = cubes.read_spectra_cube(cube)
    with pytest.raises(ValueError, match="trained on the grid"):
        predict.predict_spectra(ensemble, flux, error, _catalogue()[::-1], wave=wave)
    assert not (tmp_path / "cat.fits").exists()


def test_an_unknown_threshold_is_refused(ensemble, tmp_path):
    cube = _write_cube(tmp_path / "cube.fits")
    with pytest.raises(ValueError, match=r"unknown threshold\(s\) \['snr_minimum'\]"):
        predict.predict_cube(ensemble, cube, tmp_path / "cat.fits", catalogue=_catalogue(), snr_minimum=50)


def test_a_second_writer_of_the_same_catalogue_is_refused(ensemble, tmp_path):
    cube, out = _write_cube(tmp_path / "cube.fits"), tmp_path / "cat.fits"
    with files.exclusive_lock(out):  # another run is writing cat.fits
        with pytest.raises(files.LockedError, match="being written by another run"):
            predict.predict_cube(ensemble, cube, out, catalogue=_catalogue(), progress=False)
    assert not out.exists()
    predict.predict_cube(ensemble, cube, out, catalogue=_catalogue(), progress=False)  # lock released
    assert len(Table.read(out)) == N


def test_atomic_writes_remove_what_killed_writers_left(tmp_path):
    """The part file of a dead process of this machine is removed by the next write into its
    folder; one of a live process (another writer at work) and one written on another machine
    (a cluster's shared disk, where this machine cannot ask whether its writer lives) are kept."""
    target = tmp_path / "cat.fits"
    dead, alive = files.part_path(target, pid=2**22 + 12345), files.part_path(target, pid=os.getppid())
    elsewhere = tmp_path / f"{files.PART_PREFIX}{2**22 + 12345}@another_node-cat.fits"
    for path in (dead, alive, elsewhere):
        path.write_bytes(b"half a file")
    files.write_table(Table({"a": [1, 2]}), target)
    assert not dead.exists() and alive.exists() and elsewhere.exists() and len(Table.read(target)) == 2


def test_atomic_writes_scan_a_folder_once_per_process(tmp_path, monkeypatch):
    """Writing many files into one folder lists that folder once, not once per file (the full
    simulation's 63,840 spectra took quadratic time when every write listed the folder)."""
    scans = []
    real = files.remove_stale_parts
    monkeypatch.setattr(files, "remove_stale_parts", lambda folder: scans.append(folder) or real(folder))
    for i in range(20):
        with files.atomic_path(tmp_path / f"f{i}.txt") as tmp:
            tmp.write_text(str(i))
    assert scans == [tmp_path.resolve()] and len(list(tmp_path.iterdir())) == 20


def test_cube_resume_rereads_a_spectrum_that_changed(tmp_path, monkeypatch):
    """Interrupted cube build; a file of a finished chunk is rewritten (same path, new flux); the
    resumed cube holds the new flux and equals a fresh build (today's main kept the old flux)."""
    folder = tmp_path / "spectra"
    folder.mkdir()
    paths = []
    for i in range(6):
        path = folder / f"RAVE_obs_{i}.fits"
        write_rave_spectrum(path, np.full(990, 0.9), np.full(990, 0.01), 8409.5, 0.39, f"obs_{i}")
        paths.append(path)
    real, calls = cubes.read_rave_spectrum, []

    def reader(path):
        calls.append(path)
        if len(calls) == 5:
            raise RuntimeError("interrupted")
        return real(path)

    monkeypatch.setattr(cubes, "read_rave_spectrum", reader)
    out = tmp_path / "cube.fits"
    with pytest.raises(RuntimeError, match="interrupted"):
        cubes.build_spectra_cube(paths, out, chunk=2, processes=1, progress=False)
    monkeypatch.undo()
    before = paths[0].stat().st_mtime_ns
    write_rave_spectrum(paths[0], np.full(990, 0.5), np.full(990, 0.01), 8409.5, 0.39, "obs_0")
    os.utime(paths[0], ns=(before + 10**9, before + 10**9))  # same size; a later mtime even on a coarse clock
    cubes.build_spectra_cube(paths, out, chunk=2, processes=1, progress=False)
    _, flux, _, _ = cubes.read_spectra_cube(out)
    np.testing.assert_allclose(flux[0], 0.5)
    fresh = cubes.build_spectra_cube(paths, tmp_path / "fresh.fits", chunk=2, processes=1, progress=False)
    assert fits.getheader(out)["SOURCES"] == fits.getheader(fresh)["SOURCES"]
    np.testing.assert_array_equal(flux, cubes.read_spectra_cube(fresh)[1])


@pytest.mark.slow
def test_dask_resumes_the_serial_run(ensemble, tmp_path, monkeypatch):
    """An interrupted serial run finished by predict_cube_dask (same parts, same key) equals a fresh run."""
    from dask.distributed import Client, LocalCluster

    cube, out = _write_cube(tmp_path / "cube.fits"), tmp_path / "cat.fits"
    folder = ensemble.save(tmp_path / "models" / "toy")
    loaded = Ensemble.load(folder)
    _interrupt_at(monkeypatch, 2)
    with pytest.raises(RuntimeError, match="interrupted"):
        predict.predict_cube(loaded, cube, out, catalogue=_catalogue(), chunk=5, progress=False)
    monkeypatch.undo()
    saved = sorted(p.name for p in (tmp_path / "cat.fits.parts").glob("part_*.npz"))
    assert saved == ["part_00000.npz", "part_00001.npz"]
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster, \
            Client(cluster) as client:
        predict.predict_cube_dask(folder, cube, out, catalogue=_catalogue(), chunk=5, client=client, progress=False)
    fresh = Table.read(predict.predict_cube(loaded, cube, tmp_path / "fresh.fits", catalogue=_catalogue(), chunk=5,
                                            progress=False))
    resumed = Table.read(out)
    for name in fresh.colnames:
        if fresh[name].dtype.kind == "f":
            np.testing.assert_allclose(resumed[name], fresh[name], rtol=1e-6, atol=1e-6)
        else:
            np.testing.assert_array_equal(resumed[name], fresh[name])


# ------------------------------------------------------------------ spectrum headers are read, not assumed
def _spectrum(path, **header):
    hdus = [fits.PrimaryHDU()]
    for name in ("SPECTRUM", "ERROR"):
        hdu = fits.ImageHDU(np.full(100, 0.9 if name == "SPECTRUM" else 0.01, np.float32), name=name)
        hdu.header.update({"CRPIX1": 1.0, "CRVAL1": 8500.0, "CDELT1": 0.4, "CTYPE1": "AWAV", "CUNIT1": "Angstrom"})
        for key, value in header.items():
            if value is None:
                del hdu.header[key]
            else:
                hdu.header[key] = value
        hdus.append(hdu)
    fits.HDUList(hdus).writeto(path)
    return path


def test_air_angstrom_axis_as_rave_writes_it(tmp_path):
    from ravecnn_utils.rave import read_rave_spectrum

    wave, flux, _ = read_rave_spectrum(_spectrum(tmp_path / "s.fits"))
    np.testing.assert_allclose(wave, 8500.0 + 0.4 * np.arange(100))
    no_unit, _, _ = read_rave_spectrum(_spectrum(tmp_path / "u.fits", CUNIT1=None, CTYPE1=None))
    np.testing.assert_allclose(no_unit, wave)


def test_vacuum_and_nanometre_axes_are_converted(tmp_path):
    """WAVE (vacuum) is converted to air: 8544.44 Å in vacuum is the Ca II line at 8542.09 Å in air."""
    from ravecnn_utils.rave import read_rave_spectrum, vacuum_to_air

    np.testing.assert_allclose(vacuum_to_air(np.array([8544.44])), [8542.09], atol=0.01)
    wave, _, _ = read_rave_spectrum(_spectrum(tmp_path / "v.fits", CTYPE1="WAVE"))
    np.testing.assert_allclose(wave, vacuum_to_air(8500.0 + 0.4 * np.arange(100)))
    assert 2.3 < 8500.0 - wave[0] < 2.4
    nm, _, _ = read_rave_spectrum(_spectrum(tmp_path / "n.fits", CRVAL1=850.0, CDELT1=0.04, CUNIT1="nm"))
    np.testing.assert_allclose(nm, 8500.0 + 0.4 * np.arange(100))


@pytest.mark.parametrize("header, message", [
    ({"CTYPE1": "AWAV-LOG"}, "not a linear wavelength axis"),
    ({"CTYPE1": "VRAD"}, "not a linear wavelength axis"),
    ({"CUNIT1": "km/s"}, "not a unit of wavelength"),
    ({"CUNIT1": None, "CRVAL1": 0.85}, "no CUNIT1"),
    ({"CDELT1": None}, r"lacks the wavelength keyword\(s\) \['CDELT1'\]"),
])
def test_axes_that_are_not_read_are_refused_naming_the_file(tmp_path, header, message):
    from ravecnn_utils.rave import read_rave_spectrum

    path = _spectrum(tmp_path / "bad.fits", **header)
    with pytest.raises(ValueError, match=message) as err:
        read_rave_spectrum(path)
    assert "bad.fits" in str(err.value)


def test_a_truncated_file_is_reported_as_truncated(tmp_path):
    from ravecnn_utils.rave import read_rave_spectrum

    data = _spectrum(tmp_path / "s.fits").read_bytes()
    cut = tmp_path / "cut.fits"
    cut.write_bytes(data[: len(data) - 1000])
    with pytest.raises(ValueError, match=r"cut\.fits: truncated or corrupt FITS file"):
        read_rave_spectrum(cut)


# ------------------------------------------------------------------ a damaged ensemble folder names its culprit
@pytest.fixture
def saved(ensemble, tmp_path):
    return ensemble.save(tmp_path / "models" / "toy")


def _edit_description(folder, change):
    import json

    path = folder / "ensemble.json"
    d = json.loads(path.read_text())
    change(d)
    path.write_text(json.dumps(d))
    return path


def test_a_truncated_description_is_reported_naming_the_file(saved):
    path = saved / "ensemble.json"
    path.write_text(path.read_text()[:200])
    with pytest.raises(ValueError, match=r"ensemble\.json: not valid JSON .*cut short"):
        Ensemble.load(saved)


@pytest.mark.parametrize("change, entry", [
    (lambda d: d.update(labels="teff"), "labels"),
    (lambda d: d["scaler"].update(minimum=d["scaler"]["minimum"][:-1]), "scaler.minimum"),
    (lambda d: d.update(grid={"start": 8410.0, "step": -0.39, "n_pixels": 60}), "grid"),
    (lambda d: d["calibration"].pop("teff"), "calibration"),
    (lambda d: d.update(validation_spread={"teff": "wide"}), "validation_spread"),
    (lambda d: d.update(photometry_scaler={"minimum": [1.0]}), "photometry_scaler"),
    (lambda d: d.update(members=[]), "members"),
    (lambda d: d.pop("grid"), r"\['grid'\] missing"),
])
def test_a_wrong_entry_is_named(saved, change, entry):
    _edit_description(saved, change)
    with pytest.raises(ValueError, match=entry) as err:
        Ensemble.load(saved)
    assert "ensemble.json" in str(err.value)


def test_a_renamed_label_list_that_no_longer_fits_the_members_is_refused(saved):
    _edit_description(saved, lambda d: d.update(labels=d["labels"][:4], calibration=None, validation_spread=None,
                                                scaler={"kind": "minmax", "minimum": [0] * 4, "scale": [1] * 4}))
    with pytest.raises(ValueError, match=r"member_00\.keras predicts 9 labels, .* lists 4"):
        Ensemble.load(saved)


def _rename_teff(d):
    d["labels"] = ["Teff" if n == "teff" else n for n in d["labels"]]
    for entry in ("calibration", "validation_spread"):
        if d.get(entry):
            d[entry]["Teff"] = d[entry].pop("teff")


def test_a_renamed_label_is_named_with_a_suggestion(saved):
    """A label renamed consistently through ensemble.json (labels, calibration, spreads) used to load
    and then fail as a bare KeyError: 'Teff' when the catalogue's columns were described."""
    _edit_description(saved, _rename_teff)
    with pytest.raises(ValueError, match=r"ensemble\.json: entry 'labels': unknown label name\(s\) \['Teff'\].*"
                                         r"did you mean 'teff'"):
        Ensemble.load(saved)


def test_training_with_an_unknown_label_is_refused_before_any_training():
    from ravecnn_utils import train

    def build():
        raise AssertionError("no network may be built for an unknown label")

    x, y = np.zeros((4, 10), np.float32), np.zeros((4, 2))
    with pytest.raises(ValueError, match=r"train_ensemble\(labels=...\): unknown label name\(s\) \['TEFF'\]"):
        train.train_ensemble(build, x, y, x, y, labels=("TEFF", "logg"), n_models=2)


def test_a_damaged_member_is_named(saved):
    member = saved / "member_01.keras"
    member.write_bytes(member.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"member_01\.keras: not a readable Keras model"):
        Ensemble.load(saved)


# ------------------------------------------------------------------ other refusals name their culprit
def test_cuts_that_remove_every_star_say_which_cut(smoke_survey):
    from ravecnn_utils import crossmatch, survey

    data = survey.load_survey(smoke_survey)
    apogee, _ = crossmatch.deduplicate_apogee(data["allstar"])
    matched = crossmatch.join_matches(data["catalogue"], apogee, crossmatch.match(data["catalogue"], apogee))
    with pytest.raises(ValueError, match=r"removed every matched observation: the cut 'apogee snr' \(>= 1e\+06\)"):
        crossmatch.apply_cuts(matched, {"apogee_snr_min": 1e6})


def test_a_declination_out_of_range_still_matches_by_2mass_id(smoke_survey):
    from ravecnn_utils import crossmatch, survey

    data = survey.load_survey(smoke_survey)
    apogee, _ = crossmatch.deduplicate_apogee(data["allstar"])
    rave = data["catalogue"].copy()
    good = crossmatch.match(rave, apogee)
    row = int(good["rave_index"][good["method"] == "2mass"][0])
    rave["dec_input"][row] = 123.0  # a corrupt declination
    with pytest.warns(UserWarning, match=r"RAVE catalogue: 1 row\(s\) with a declination outside"):
        pairs = crossmatch.match(rave, apogee)
    hit = pairs[pairs["rave_index"] == row]
    assert len(hit) == 1 and hit["method"][0] == "2mass" and np.isnan(hit["separation_arcsec"][0])


def test_a_relative_path_that_does_not_exist_says_what_it_is_relative_to(tmp_path, monkeypatch):
    from ravecnn_utils import survey
    from ravecnn_utils.apogee import read_allstar

    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=rf"sim/nowhere \(relative to {tmp_path}\)"):
        survey.load_survey("sim/nowhere")
    with pytest.raises(FileNotFoundError, match=rf"allStar\.fits \(relative to {tmp_path}\)"):
        read_allstar("allStar.fits")


def test_an_allstar_extract_without_its_marker_column_needs_its_release(smoke_survey, tmp_path):
    from ravecnn_utils.apogee import read_allstar
    from ravecnn_utils.survey import FILES

    table = Table.read(smoke_survey / FILES["allstar"])
    table.remove_column("GAIAEDR3_SOURCE_ID")
    table.write(tmp_path / "extract.fits")
    with pytest.raises(ValueError, match="release='dr17'"):
        read_allstar(tmp_path / "extract.fits")
    extract = read_allstar(tmp_path / "extract.fits", release="dr17")
    assert extract.meta["release"] == "dr17" and len(extract) == len(table)
    with pytest.raises(ValueError, match="release must be one of"):
        read_allstar(tmp_path / "extract.fits", release="dr18")


def test_the_command_lines_report_a_read_only_folder_as_an_error_line(tmp_path, capsys, monkeypatch):
    """A folder one may not write to ends the simulator and the runner with an `error:` line, not a traceback."""
    from ravecnn_utils.book import notebooks as runner
    from ravecnn_utils.simulation import simulate

    def denied(*args, **kwargs):
        raise PermissionError(13, "Permission denied", str(tmp_path / "sim"))

    monkeypatch.setattr(simulate, "simulate_survey", denied)
    with pytest.raises(SystemExit) as exit_:
        simulate.main(["--profile", "smoke", "--out", str(tmp_path / "sim")])
    assert exit_.value.code == 2 and capsys.readouterr().err == f"error: [Errno 13] Permission denied: '{tmp_path / 'sim'}'\n"
    monkeypatch.setattr(runner, "run_all", denied)
    assert runner.main(["--profile", "smoke", "--out", str(tmp_path / "sim")]) == 1
    assert capsys.readouterr().err.startswith("error: [Errno 13] Permission denied")
