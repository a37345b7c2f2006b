"""Benchmark: the paths that must never be silently wrong, run end to end on the smoke profile.

    python benchmarks/faults.py [--workdir /tmp/ravecnn_faults]

Simulates the smoke survey, cross-matches it and trains two tiny ensembles (2 members, 1 epoch)
through the library, then injects one fault per scenario — an interrupted run resumed after an
input changed, a cube on another grid, two writers of one catalogue, a writer killed with
SIGKILL, a damaged ensemble folder, a renamed label, a spectrum file renamed to another
observation, crafted spectrum headers, wrong and misspelled notebook
parameters (through the project's runner and through raw papermill) … — and prints one row per
scenario: scenario, expected, observed, ok. The last line is ``faults_ok=<n>/<total>``.
"""

import argparse
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
from astropy.io import fits  # noqa: E402
from astropy.table import Table  # noqa: E402

from ravecnn_utils import crossmatch, cube, files, predict, splits, survey, train, trainingset  # noqa: E402
from ravecnn_utils.book import notebooks as runner  # noqa: E402
from ravecnn_utils.ensemble import Ensemble  # noqa: E402
from ravecnn_utils.rave import read_rave_spectrum  # noqa: E402
from ravecnn_utils.simulation.simulate import simulate_survey  # noqa: E402

FIT = dict(epochs=1, batch_size=32, patience=1, drop_worst=0.0)


def setup(workdir):
    """The smoke survey, its cube, the training table and two 2-member ensembles (slides, paper_photometry)."""
    sim = workdir / "sim"
    simulate_survey(sim, profile="smoke", progress=False)
    data = survey.load_survey(sim)
    catalogue = data["catalogue"]
    cube_path = cube.build_spectra_cube([survey.spectrum_path(sim, i) for i in catalogue["rave_obs_id"]],
                                        workdir / "cube.fits", processes=1, progress=False)
    apogee, _ = crossmatch.deduplicate_apogee(data["allstar"])
    matched = crossmatch.join_matches(catalogue, apogee, crossmatch.match(catalogue, apogee))
    kept, _ = crossmatch.apply_cuts(matched)
    kept["split"] = splits.split(kept)
    kept["stratum"] = splits.stratum(kept)
    wave, flux, error, ids = cube.read_spectra_cube(cube_path)
    rows = files.row_index(ids["rave_obs_id"], kept["rave_obs_id"], cube_path)
    table = trainingset.training_table(kept)
    ensembles = {name: train.train_network(name, flux[rows], error[rows], table, wave, n_models=2, progress=False,
                                           **FIT) for name in ("slides", "paper_photometry")}
    return dict(sim=sim, data=data, catalogue=catalogue, cube=cube_path, wave=wave, flux=flux[rows],
                error=error[rows], table=table, ensembles=ensembles, kept=matched)


def interrupted(ctx, out, ensemble, catalogue, at=2):
    """Start predict_cube and stop it at chunk ``at`` (the chunks before are saved)."""
    real, calls = predict._predict_rows, []

    def rows(*args, **kwargs):
        calls.append(1)
        if len(calls) > at:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    predict._predict_rows = rows
    try:
        predict.predict_cube(ensemble, ctx["cube"], out, catalogue=catalogue, chunk=100, progress=False)
    except KeyboardInterrupt:
        pass
    finally:
        predict._predict_rows = real


def error_of(func, *args, **kwargs):
    """The message of what ``func`` raises (or warns) — '(no error)' when it does not."""
    try:
        func(*args, **kwargs)
    except Exception as err:  # noqa: BLE001 (the point is to see every refusal)
        return f"{type(err).__name__}: {err}"
    return "(no error)"


def captured(func, *args, **kwargs):
    """What ``func`` prints on stdout, and its result."""
    import contextlib
    import io

    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        result = func(*args, **kwargs)
    return buffer.getvalue(), result


# ------------------------------------------------------------------ the scenarios
def resume_after_catalogue_change(ctx, work):
    ens, out = ctx["ensembles"]["paper_photometry"], work / "cat.fits"
    interrupted(ctx, out, ens, ctx["catalogue"])
    corrected = ctx["catalogue"].copy()
    corrected["parallax"] = corrected["parallax"] * 1.1
    said, _ = captured(predict.predict_cube, ens, ctx["cube"], out, catalogue=corrected, chunk=100, progress=False)
    fresh = predict.predict_cube(ens, ctx["cube"], work / "fresh.fits", catalogue=corrected, chunk=100, progress=False)
    same = all(np.array_equal(Table.read(out)[c], Table.read(fresh)[c], equal_nan=True) for c in ("teff", "logg"))
    return "stale chunks discarded, says 'catalogue rows'", f"{said.strip()[-70:]}; equals fresh run: {same}", \
        "catalogue rows" in said and same


def resume_with_same_inputs(ctx, work):
    ens, out = ctx["ensembles"]["slides"], work / "cat.fits"
    interrupted(ctx, out, ens, None, at=3)
    saved = len(list((work / "cat.fits.parts").glob("part_*.npz")))
    said, _ = captured(predict.predict_cube, ens, ctx["cube"], out, chunk=100, progress=False)
    return "the 3 saved chunks reused, nothing said", f"{saved} chunks were saved; said {said.strip()!r}", \
        saved == 3 and said == ""


def cube_on_another_grid(ctx, work):
    _, flux, error, ids = cube.read_spectra_cube(ctx["cube"])
    wave = ctx["wave"] + 2.0
    header = cube.cube_header(wave, float(wave[1] - wave[0]), len(ids), sources="shifted")
    shifted = cube.write_spectra_cube(work / "shifted.fits", header, lambda e: [flux if e == "FLUX" else error],
                                      np.asarray(ids["rave_obs_id"]), ids["n_bad_pixels"])
    message = error_of(predict.predict_cube, ctx["ensembles"]["slides"], shifted, work / "cat.fits", progress=False)
    return "refused: another grid", message[:90], "trained on the grid" in message


def two_writers(ctx, work):
    with files.exclusive_lock(work / "cat.fits"):
        message = error_of(predict.predict_cube, ctx["ensembles"]["slides"], ctx["cube"], work / "cat.fits",
                           progress=False)
    return "the second is refused, naming the file", message[:90], "being written by another run" in message


def killed_writer(ctx, work):
    """A process killed (SIGKILL) inside atomic_path leaves its .part file; the next write removes it."""
    target = work / "table.fits"
    code = textwrap.dedent(f"""
        import os, signal
        from ravecnn_utils.files import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            open(tmp, "wb").write(b"x" * 10_000)
            os.kill(os.getpid(), signal.SIGKILL)
    """)
    subprocess.run([sys.executable, "-c", code], check=False)
    left = list(work.glob(f"{files.PART_PREFIX}*-table.fits"))
    files.write_table(Table({"a": [1]}), target)
    after = list(work.glob(f"{files.PART_PREFIX}*-table.fits"))
    return "leftover removed by the next write", f"{len(left)} leftover(s) before, {len(after)} after", \
        len(left) == 1 and not after


def changed_spectrum_during_cube_resume(ctx, work):
    paths = sorted((ctx["sim"] / "spectra").glob("RAVE_*.fits"))[:6]
    spectra = work / "spectra"
    spectra.mkdir()
    for p in paths:
        shutil.copy2(p, spectra / p.name)
    paths = sorted(spectra.glob("*.fits"))
    real, calls = cube.read_rave_spectrum, []

    def reader(path):
        calls.append(path)
        if len(calls) == 5:
            raise KeyboardInterrupt
        return real(path)

    cube.read_rave_spectrum = reader
    try:
        cube.build_spectra_cube(paths, work / "c.fits", chunk=2, processes=1, progress=False)
    except KeyboardInterrupt:
        pass
    finally:
        cube.read_rave_spectrum = real
    with fits.open(paths[0], mode="update") as hdul:
        hdul["SPECTRUM"].data = hdul["SPECTRUM"].data * 0.5
    os.utime(paths[0], ns=(paths[0].stat().st_mtime_ns + 10**9,) * 2)
    cube.build_spectra_cube(paths, work / "c.fits", chunk=2, processes=1, progress=False)
    new = cube.read_spectra_cube(work / "c.fits")[1][0]
    fresh = cube.read_spectra_cube(cube.build_spectra_cube(paths, work / "f.fits", chunk=2, processes=1,
                                                           progress=False))[1][0]
    return "the changed file is read again", f"resumed cube equals a fresh build: {np.array_equal(new, fresh)}", \
        np.array_equal(new, fresh)


def one_member(ctx, work):
    message = error_of(train.train_network, "slides", ctx["flux"], ctx["error"], ctx["table"], ctx["wave"],
                       n_models=1, progress=False, **FIT)
    return "refused before training: no spread", message[:90], "at least 2" in message


def damaged_ensemble(ctx, work):
    folder = ctx["ensembles"]["slides"].save(work / "models" / "slides")
    json_path = folder / "ensemble.json"
    json_path.write_text(json_path.read_text()[:300])
    truncated = error_of(Ensemble.load, folder)
    folder = ctx["ensembles"]["slides"].save(work / "models" / "slides")
    member = folder / "member_00.keras"
    member.write_bytes(member.read_bytes()[:400])
    corrupt = error_of(Ensemble.load, folder)
    return "both named: truncated JSON, damaged member", \
        f"{truncated[truncated.find('ensemble.json'):][:40]} | {corrupt[corrupt.find('member_00'):][:45]}", \
        "not valid JSON" in truncated and "member_00.keras: not a readable Keras model" in corrupt


def crafted_headers(ctx, work):
    source = sorted((ctx["sim"] / "spectra").glob("RAVE_*.fits"))[0]
    results = {}
    for name, change in (("vacuum", {"CTYPE1": "WAVE"}), ("velocity", {"CTYPE1": "VRAD"}), ("nm", None)):
        path = work / f"{name}.fits"
        shutil.copy(source, path)
        with fits.open(path, mode="update") as hdul:
            for ext in ("SPECTRUM", "ERROR"):
                if change is None:
                    hdul[ext].header.update(CUNIT1="nm", CRVAL1=hdul[ext].header["CRVAL1"] / 10,
                                            CDELT1=hdul[ext].header["CDELT1"] / 10)
                else:
                    hdul[ext].header.update(change)
        results[name] = path
    air = read_rave_spectrum(source)[0]
    vac = read_rave_spectrum(results["vacuum"])[0]
    nm = read_rave_spectrum(results["nm"])[0]
    velocity = error_of(read_rave_spectrum, results["velocity"])
    truncated = work / "cut.fits"
    truncated.write_bytes(source.read_bytes()[:-500])
    cut = error_of(read_rave_spectrum, truncated)
    ok = (2.0 < (air - vac).mean() < 2.6 and np.allclose(nm, air) and "not a linear wavelength axis" in velocity
          and "truncated" in cut)
    return "vacuum→air, nm→Å, velocity refused, truncation named", \
        f"vac shift {np.mean(air - vac):.2f} Å; {velocity[-40:]}; {cut[-45:]}", ok


def wrong_parameters(ctx, work):
    typed = error_of(runner.run_all, "smoke", work / "nb", only=["03_architecture"], overrides={"dropout": "high"},
                     progress_bar=False)
    ipynb = work / "03.ipynb"
    subprocess.run([sys.executable, "-m", "jupytext", "--to", "ipynb", "-o", str(ipynb),
                    str(runner.NOTEBOOKS_DIR / "03_architecture.py")], check=True, capture_output=True)
    raw = subprocess.run([sys.executable, "-m", "papermill", str(ipynb), str(work / "out.ipynb"), "-k", "python3",
                          "--cwd", str(runner.NOTEBOOKS_DIR), "-p", "dropuot", "0.3"], capture_output=True, text=True)
    said = raw.stderr + raw.stdout
    observed = (f"runner: {typed[typed.find('dropout must'):][:40]} | papermill exit {raw.returncode}: "
                f"{said[max(said.rfind('did you mean') - 30, 0):][:50]}")
    return "both stop, naming the parameter", observed, \
        "dropout must be a number" in typed and raw.returncode != 0 and "did you mean dropout" in said


def cuts_remove_everything(ctx, work):
    message = error_of(crossmatch.apply_cuts, ctx["kept"], {"apogee_snr_min": 1e6})
    return "the cut at fault named", message[:90], "the cut 'apogee snr'" in message


def no_usable_pixel(ctx, work):
    ens = ctx["ensembles"]["slides"]
    flux = ctx["flux"][:3].copy()
    flux[1] = np.nan
    cols = predict.predict_spectra(ens, flux, ctx["error"][:3], wave=ctx["wave"])
    ok = np.isnan(cols["teff"][1]) and np.isfinite(cols["teff"][[0, 2]]).all() and cols["flag"][1] & 4
    return "NaN labels and the bad-pixel flag", f"teff {cols['teff'][1]}, flag {cols['flag'][1]}", bool(ok)


def renamed_label(ctx, work):
    import json

    folder = ctx["ensembles"]["slides"].save(work / "models" / "slides")
    path = folder / "ensemble.json"
    d = json.loads(path.read_text())
    d["labels"] = ["Teff" if n == "teff" else n for n in d["labels"]]
    for entry in ("calibration", "validation_spread"):
        d[entry]["Teff"] = d[entry].pop("teff")
    path.write_text(json.dumps(d))
    message = error_of(Ensemble.load, folder)
    return "the file, the entry and the name", message[message.find("ensemble.json"):][:90], \
        "entry 'labels': unknown label name(s) ['Teff']" in message and "did you mean 'teff'" in message


def renamed_spectrum_file(ctx, work):
    sources = sorted((ctx["sim"] / "spectra").glob("RAVE_*.fits"))[:2]
    night = work / "spectra" / sources[0].name[5:13]  # the archive's layout: a folder per night
    night.mkdir(parents=True)
    shutil.copy(sources[0], night / sources[0].name)
    found = survey.spectrum_path(work, sources[0].name[5:-5]) == night / sources[0].name
    swapped = work / sources[1].name
    shutil.copy(sources[0], swapped)  # another observation's content under this name
    message = error_of(read_rave_spectrum, swapped)
    return "per-night folder found; a swapped file refused", f"found={found}; {message[-70:]}", \
        found and "its header ROI" in message


SCENARIOS = [resume_after_catalogue_change, resume_with_same_inputs, cube_on_another_grid, two_writers,
             killed_writer, changed_spectrum_during_cube_resume, one_member, damaged_ensemble, crafted_headers,
             wrong_parameters, cuts_remove_everything, no_usable_pixel, renamed_label, renamed_spectrum_file]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/ravecnn_faults"))
    args = parser.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    args.workdir.mkdir(parents=True)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    ctx = setup(args.workdir)
    print(f"{'scenario':<38} {'expected':<48} {'ok':<3} observed")
    n_ok = 0
    for scenario in SCENARIOS:
        work = args.workdir / scenario.__name__
        work.mkdir()
        try:
            expected, observed, ok = scenario(ctx, work)
        except Exception as err:  # noqa: BLE001 (a scenario that crashes is a failed row, not a crashed table)
            expected, observed, ok = "(see the code)", f"crashed: {type(err).__name__}: {err}"[:120], False
        n_ok += bool(ok)
        print(f"{scenario.__name__:<38} {expected:<48} {'yes' if ok else 'NO':<3} {observed}")
    print(f"faults_ok={n_ok}/{len(SCENARIOS)}")
    return 0 if n_ok == len(SCENARIOS) else 1


if __name__ == "__main__":
    sys.exit(main())
