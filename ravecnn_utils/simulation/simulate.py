"""The simulated survey: a RAVE DR6 × APOGEE look-alike written in the real releases' formats.

``simulate_survey(out_dir, profile="smoke")`` writes, deterministically from one seed:

=====================================  ====================================================
``spectra/RAVE_<rave_obs_id>.fits``    one file per observation (SPECTRUM, ERROR; linear WCS
                                       whose CRVAL1/CDELT1 jitter from file to file)
``ravedr6_catalogue.fits``             RAVE DR6-like catalogue: ids, sky position, 2MASS id,
                                       SNR, radial velocity, the RAVE pipeline's own Teff,
                                       log g, [M/H] with RAVE-like errors, photometry, parallax
``allStar-dr17-synspec_rev1.fits``     APOGEE DR17 allStar-like table (HDU 1; NaN = missing):
                                       its own selection, ASPCAP-like errors, flags, duplicates
``benchmark_highres.fits``             ~200 stars with high-resolution labels
``truth.fits``                         the true labels (STARS); per observation
                                       (OBSERVATIONS) the true SNR, velocity residual, bad
                                       pixels; the Fisher matrix and Cramér–Rao bound of the
                                       cross-match stars' observations (FISHER), the only
                                       ones validation compares with the bound
``decorrelated/``                      the decorrelated test sample: a survey-shaped folder
                                       (``spectra/``, ``truth.fits`` with a FISHER row for
                                       every spectrum) of one more spectrum per cross-match
                                       star, named by the star's first observation (same
                                       SNR, wavelength axis, velocity residual; new noise,
                                       bad pixels, cosmic rays), its [α/M] and each [X/Fe]
                                       shuffled among those stars (``write_decorrelated``)
``survey.json``                        profile, seed, sizes, package version
=====================================  ====================================================

The decorrelated sample is a test the prior cannot pass: Teff, log g, [M/H] and [Fe/H] are the
star's own, so a network that reads [α/M] from its training labels' [M/H]–[α/M] correlation, not
from the lines, misses the new values. Its random streams are its own ([seed, 2] labels, [seed, 3]
spectra): the survey's other files are byte for byte those of a survey without it.

Command line: ``python -m ravecnn_utils.simulation --profile smoke --out data/sim/smoke``.
The file names are ``survey.FILES`` (the readers' side of the same layout); the tables are made
in ``catalogues``.
The folder appears only when complete (it is built under a temporary name).
"""

import argparse
import hashlib
import inspect
import json
import multiprocessing
import shutil
import signal
import sys
from contextlib import contextmanager, nullcontext
from pathlib import Path

import numpy as np
from astropy import units as u
from astropy.coordinates import SkyCoord
from astropy.table import Table, vstack
from tqdm import tqdm

from .. import __version__, apogee, discs, files, fitsbytes, fitstable, rave
from ..crlb import fisher_information
from ..files import ascii_bytes, write_table
from ..labels import LABELS
from ..paths import CROSSMATCH_LABELS_FILE, EMULATOR_FILE
from ..rave import spectrum_filename, write_rave_spectrum
from ..survey import FILES, MANIFEST, read_manifest
from . import galaxy
from .catalogues import (SurveyError, allstar_table, benchmark_table, decorrelated_sample, flatten_crossmatch_prior,
                         is_kind, rave_obs_ids, truth_tables, unique_twomass_ids, write_rave_catalogue, write_truth)
from .emulator import Emulator
from .spectra import RAVE_GRID, observe

PROFILES = {
    "smoke": dict(n_field=300, n_crossmatch=150, n_apogee_only=60, n_benchmark=40),
    "full": dict(n_field=52_000, n_crossmatch=5_000, n_apogee_only=3_000, n_benchmark=200),
    "scale_10k": dict(n_field=8_148, n_crossmatch=781, n_apogee_only=469, n_benchmark=31),
    "rave": dict(n_field=446_783, n_crossmatch=5_000, n_apogee_only=3_000, n_benchmark=200, n_repeats=55_504),
    "flat_prior": dict(n_field=52_000, n_crossmatch=5_000, n_apogee_only=3_000, n_benchmark=200, flat_prior=1),
}
"""Survey sizes: field stars (RAVE only), cross-match stars (RAVE and APOGEE),
APOGEE-only stars (northern sky), the high-resolution benchmark sample and, optionally, the
number of RAVE stars observed more than once (``n_repeats``; default ``REPEAT_FRACTION``).
``rave`` is RAVE DR6's size: 451,783 stars and 518,387 observations (``n_observations``),
with the cross-match sample of ``full``. ``scale_10k`` (9,999 observations, about ``full``/6.4)
exists for the scaling benchmark (``benchmarks/scale.py``), as its smallest size.
``flat_prior`` is ``full`` with the cross-match stars' abundances shuffled among them
(``catalogues.flatten_crossmatch_prior``): every other draw is ``full``'s."""

DEFAULT_SEED = 2020
REPEAT_FRACTION = 0.10
"""Fraction of stars observed twice by RAVE (a fifth of those three times)."""


def n_repeats(sizes):
    """RAVE stars observed twice or more (a fifth of them three times) in a profile's ``sizes``."""
    return sizes.get("n_repeats", int(REPEAT_FRACTION * (sizes["n_field"] + sizes["n_crossmatch"])))


def n_observations(sizes):
    """RAVE observations of a profile's ``sizes``: one per RAVE star, plus the repeats."""
    repeats = n_repeats(sizes)
    return sizes["n_field"] + sizes["n_crossmatch"] + repeats + repeats // 5

SNR_MEDIAN = 40.0
SNR_RANGE = (5.0, 250.0)
"""Median and range of the RAVE SNR per pixel (continuum)."""
CHUNK = 1000


def _validate(profile, seed, emulator_path):
    if profile not in PROFILES:
        raise SurveyError(f"unknown profile {profile!r}; known profiles: {sorted(PROFILES)}")
    for key, value in PROFILES[profile].items():
        if value < 0:
            raise SurveyError(f"profile {profile!r}: {key} must be >= 0, got {value}")
    if PROFILES[profile]["n_field"] + PROFILES[profile]["n_crossmatch"] < 1:
        raise SurveyError(f"profile {profile!r}: n_field + n_crossmatch must be >= 1 (RAVE needs stars)")
    if n_repeats(PROFILES[profile]) > PROFILES[profile]["n_field"] + PROFILES[profile]["n_crossmatch"]:
        raise SurveyError(f"profile {profile!r}: n_repeats must be <= n_field + n_crossmatch (the RAVE stars)")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise SurveyError(f"seed must be a non-negative integer, got {seed!r}")
    if not Path(emulator_path).is_file():
        raise SurveyError(f"emulator file not found: {emulator_path} (made by `make emulator`)")


# ------------------------------------------------------------------ stars
def draw_stars(sizes, rng):
    """The survey's stars (field + cross-match + APOGEE-only), positions, photometry; strings as bytes."""
    relations = galaxy.abundance_relations()
    parts = []
    for kind, n in (("field", sizes["n_field"]), ("crossmatch", sizes["n_crossmatch"]),
                    ("apogee_only", sizes["n_apogee_only"])):
        part = (galaxy.draw_field_stars(n, rng, relations) if kind == "field"
                else galaxy.draw_crossmatch_stars(n, rng))
        for name in ("population", "stage"):
            part[name] = ascii_bytes(part[name])
        part["kind"] = np.full(len(part), kind.encode())
        parts.append(part)
    stars = vstack(parts)
    del parts  # memory: copied into stars
    teff, logg = np.asarray(stars["teff"]), np.asarray(stars["logg"])
    absmag = galaxy.absolute_magnitudes(teff, logg)
    dist, lon, lat, a_v = galaxy.place_stars(np.asarray(stars["population"]).astype(str), absmag["I"], rng)
    north = is_kind(stars, "apogee_only")  # APOGEE's own stars: move to the northern sky
    c = SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic").icrs
    ra, dec = c.ra.deg, c.dec.deg
    del c  # memory: the frames hold more arrays of every star
    dec[north] = np.degrees(np.arcsin(rng.uniform(np.sin(np.radians(5)), 1, north.sum())))
    stars["ra"], stars["dec"] = ra, dec
    gal = SkyCoord(ra=ra * u.deg, dec=dec * u.deg).galactic
    stars["glon"], stars["glat"] = gal.l.deg, gal.b.deg
    del gal
    stars["distance"], stars["a_v"] = dist, a_v
    stars["hrv"] = rng.normal(0, np.where(np.asarray(stars["population"]) == b"halo", 150, 45))
    for band in list(absmag):
        ext = galaxy.EXTINCTION_RATIOS.get(band, 0.55) * a_v
        stars[f"mag_{band}"] = absmag.pop(band) + 5 * np.log10(dist * 100) + ext
    stars["id_2mass"] = unique_twomass_ids(stars)
    for col, unit in (("teff", u.K), ("ra", u.deg), ("dec", u.deg), ("glon", u.deg), ("glat", u.deg),
                      ("distance", u.kpc), ("a_v", u.mag), ("hrv", u.km / u.s), ("age", u.Gyr)):
        stars[col].unit = unit
    return stars


def draw_observations(stars, rng, repeats=None):
    """One RAVE observation per southern star, a second for ``repeats`` of them (default
    ``REPEAT_FRACTION``), a third for a fifth of those; the strings as ASCII bytes."""
    rave = np.flatnonzero(~is_kind(stars, "apogee_only"))
    repeats = int(REPEAT_FRACTION * rave.size) if repeats is None else repeats
    repeat = rng.choice(rave, repeats, replace=False)
    third = repeat[: repeat.size // 5]
    star_index = np.sort(np.concatenate([rave, repeat, third]))
    ra, dec = np.asarray(stars["ra"])[star_index], np.asarray(stars["dec"])[star_index]
    obs_id, dates, field = rave_obs_ids(ra, dec, rng)
    mag_i = np.asarray(stars["mag_I"])[star_index]
    snr = np.empty(star_index.size)
    todo = np.arange(star_index.size)
    while todo.size:  # lognormal scatter, redrawn (not clipped) outside SNR_RANGE
        snr[todo] = SNR_MEDIAN * 10 ** (-0.2 * (mag_i[todo] - 11.2)) * rng.lognormal(0, 0.35, todo.size)
        todo = todo[(snr[todo] < SNR_RANGE[0]) | (snr[todo] > SNR_RANGE[1])]
    n = star_index.size
    fibre = np.array([int(s.rsplit(b"_", 1)[-1]) for s in obs_id], dtype=np.int64)
    return Table({
        "rave_obs_id": obs_id, "star_index": star_index, "obsdate": dates, "field": field, "fibre": fibre,
        "snr": snr,
        "rv_residual": rng.normal(0, 1.5, n),
        "crval1": RAVE_GRID["crval1"] + rng.uniform(-0.2, 0.2, n),
        "cdelt1": RAVE_GRID["cdelt1"] * (1 + rng.normal(0, 3e-4, n)),
    }, copy=False)


# ------------------------------------------------------------------ spectra
def _simulate_chunk(args):
    """Worker: simulate and write the spectra of one chunk (own random stream)."""
    labels, obs, spectra_dir, emulator_path, seed_seq = args
    rng = np.random.default_rng(seed_seq)
    flux, rel_error, fisher, n_bad, n_cosmic = observe(_cached_model(emulator_path), labels, obs, rng,
                                                       np.flatnonzero(obs["fisher"]))
    for i, obs_id in enumerate(obs["rave_obs_id"].astype(str)):
        write_rave_spectrum(Path(spectra_dir) / spectrum_filename(obs_id), flux[i], rel_error[i],
                            obs["crval1"][i], obs["cdelt1"][i], obs_id)
    return fisher, n_bad, n_cosmic


_MODELS = {}


def _default_sigterm():
    """Pool workers die on SIGTERM as usual (the CLI turns SIGTERM into SystemExit in the parent)."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _cached_model(emulator_path):
    """The emulator of an emulator file, read once per process."""
    if emulator_path not in _MODELS:
        _MODELS.clear()
        _MODELS[emulator_path] = Emulator(emulator_path)
    return _MODELS[emulator_path]


def fisher_observations(stars, obs):
    """Which observations (bool, in the order of ``obs``) get a Fisher matrix: the cross-match
    stars', the only ones validation compares with the Cramér–Rao bound."""
    return is_kind(stars, "crossmatch")[obs["star_index"]]


@contextmanager
def worker_pool(processes):
    """``processes`` worker processes (None for one process), forked when this is entered: enter it
    before the survey's tables exist, so that each worker holds only its chunk (a forked worker
    maps all of its parent's memory)."""
    if processes <= 1:
        yield None
        return
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_default_sigterm)
    try:
        yield pool
        pool.close()
    finally:
        pool.terminate()
        pool.join()


def write_spectra(stars, obs, spectra_dir, seed, emulator_path=EMULATOR_FILE, processes=2, progress=True,
                  with_fisher=None, pool=None, stream=1):
    """Simulate every observation's spectrum into ``spectra_dir``; returns the Fisher matrices of
    the observations ``with_fisher`` (bool over ``obs``; default ``fisher_observations``), and
    the bad-pixel and cosmic-ray counts of all (arrays in the order of ``obs``). ``pool``: the
    ``worker_pool`` to use (default: one of ``processes`` made here); ``stream``: the random
    stream, ``SeedSequence([seed, stream])`` (1: the survey's spectra)."""
    star_index = np.asarray(obs["star_index"])
    cols = {k: np.asarray(obs[k]) for k in ("rave_obs_id", "snr", "rv_residual", "crval1", "cdelt1")}
    cols["fisher"] = fisher_observations(stars, obs) if with_fisher is None else np.asarray(with_fisher, bool)
    starts = range(0, len(obs), CHUNK)
    seeds = np.random.SeedSequence([seed, stream]).spawn(len(starts))
    tasks = ((np.column_stack([np.asarray(stars[name], float)[star_index[s:s + CHUNK]] for name in LABELS]),
              {k: v[s:s + CHUNK] for k, v in cols.items()}, str(spectra_dir), str(emulator_path), ss)
             for s, ss in zip(starts, seeds))  # made as the workers take them: memory holds a few chunks
    bar = tqdm(total=len(obs), desc="spectra", unit="spec", disable=not progress)
    results = []
    if processes > 1 and len(starts) > 1:
        with nullcontext(pool) if pool is not None else worker_pool(processes) as workers:
            for res in workers.imap(_simulate_chunk, tasks):
                results.append(res)
                bar.update(len(res[1]))
    else:
        for task in tasks:
            results.append(_simulate_chunk(task))
            bar.update(len(results[-1][1]))
    bar.close()
    if not results:  # no observation
        return np.empty((0, len(LABELS), len(LABELS))), np.empty(0, int), np.empty(0, int)
    return tuple(np.concatenate(parts) for parts in zip(*results))


def write_decorrelated(stars, obs, out_dir, seed, emulator_path=EMULATOR_FILE, processes=2, progress=True,
                       pool=None):
    """The decorrelated test sample (``catalogues.decorrelated_sample``) into ``out_dir``: its
    spectra in ``spectra/`` and its ``truth.fits``, every spectrum with its Fisher matrix; random
    streams [seed, 2] (labels) and [seed, 3] (spectra), apart from the survey's. Returns its size."""
    twins, twin_obs = decorrelated_sample(stars, obs, np.random.default_rng(np.random.SeedSequence([seed, 2])))
    every = np.ones(len(twin_obs), bool)
    (Path(out_dir) / FILES["spectra"]).mkdir(parents=True)
    fisher, n_bad, n_cosmic = write_spectra(twins, twin_obs, Path(out_dir) / FILES["spectra"], seed, emulator_path,
                                            processes, progress, every, pool, stream=3)
    write_truth(*truth_tables(twins, twin_obs, n_bad, n_cosmic, every, fisher), Path(out_dir) / FILES["truth"])
    return len(twin_obs)


# ------------------------------------------------------------------ the survey
def fingerprint(emulator_path=EMULATOR_FILE):
    """SHA-256 of what the survey is made from: the simulation's source code, what it uses from
    the analysis (the writers, not the readers; the disc boundary; the APOGEE flag bits and label
    columns; the file names), the emulator's weights and the real cross-match labels.

    Stored in ``survey.json``; a survey whose fingerprint differs is out of date.
    """
    digest = hashlib.sha256()
    here = Path(__file__).parent
    for module in ("simulate", "spectra", "catalogues", "forward", "emulator", "galaxy"):
        digest.update((here / f"{module}.py").read_bytes())
    for used in (files.atomic_path, files.write_table, files.ascii_bytes, rave.spectrum_filename,
                 rave.write_rave_spectrum, rave.write_rave_spectrum_with_astropy, rave._spectrum_cards,
                 rave._spectrum_hdus, rave._templates, fitsbytes, fitstable, fisher_information,
                 discs.boundary_alpha_m, discs.chemical_population):
        digest.update(inspect.getsource(used).encode())
    digest.update(repr((apogee.APOGEE_COLUMNS, apogee.STARFLAG_BAD_BITS, apogee.ASPCAP_STAR_BAD_BIT,
                        apogee.EXTRATARG_DUPLICATE_BIT, discs.ALPHA_BOUNDARY, discs.HALO_M_H_MAX,
                        FILES, MANIFEST)).encode())
    for path in (Path(emulator_path), CROSSMATCH_LABELS_FILE):
        digest.update(path.read_bytes())
    return digest.hexdigest()


def simulate_survey(out_dir, profile="smoke", seed=DEFAULT_SEED, emulator_path=EMULATOR_FILE,
                    processes=2, progress=True, overwrite=False):
    """Write the simulated survey to ``out_dir`` (see the module docstring); returns its manifest.

    A folder that already holds a survey of the same profile, seed, package version and
    ``fingerprint`` is left as it is; one of the same profile and seed made by other code
    is simulated again. Nothing is written until every parameter is checked, and the
    folder appears only when complete.
    """
    _validate(profile, seed, emulator_path)
    out_dir = Path(out_dir)
    wanted = {"profile": profile, "seed": int(seed), "version": __version__,
              "fingerprint": fingerprint(emulator_path)}
    existing = read_manifest(out_dir)
    if existing is not None and not overwrite:
        if {k: existing.get(k) for k in wanted} == wanted:
            return existing
        if (existing.get("profile"), existing.get("seed")) == (profile, int(seed)):
            print(f"{out_dir}: made by other code or another emulator; simulating it again")
            overwrite = True
    if out_dir.exists() and not overwrite:
        raise FileExistsError(
            f"{out_dir} exists but does not hold a {profile!r} survey with seed {seed} "
            f"(found {existing and {k: existing.get(k) for k in ('profile', 'seed')}}); pass "
            f"overwrite=True (--overwrite) to replace it")
    sizes = PROFILES[profile]
    tmp = out_dir.with_name(f".{out_dir.name}.tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / FILES["spectra"]).mkdir(parents=True)
    try:
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0]))
        with worker_pool(processes) as pool:
            stars = draw_stars(sizes, rng)
            if sizes.get("flat_prior"):  # its own random stream: every other draw stays full's
                stars = flatten_crossmatch_prior(stars, np.random.default_rng(np.random.SeedSequence([seed, 3])))
            n_outside = _cached_model(str(emulator_path)).count_outside(  # said, and kept in survey.json
                np.column_stack([np.asarray(stars[name], float) for name in LABELS]))
            obs = draw_observations(stars, rng, n_repeats(sizes))
            with_fisher = fisher_observations(stars, obs)
            fisher, n_bad, n_cosmic = write_spectra(stars, obs, tmp / FILES["spectra"], seed, emulator_path,
                                                    processes, progress, with_fisher, pool)
            n_decorrelated = write_decorrelated(stars, obs, tmp / FILES["decorrelated"], seed, emulator_path,
                                                processes, progress, pool)
        write_rave_catalogue(stars, obs, rng, tmp / FILES["catalogue"])
        write_table(allstar_table(stars, rng), tmp / FILES["allstar"])
        write_table(benchmark_table(stars, sizes["n_benchmark"], rng), tmp / FILES["benchmark"])
        write_truth(*truth_tables(stars, obs, n_bad, n_cosmic, with_fisher, fisher), tmp / FILES["truth"])
        manifest = wanted | {
            "simulated": True, "labels": list(LABELS), "files": FILES, "sizes": sizes,
            "n_observations": len(obs), "n_rave_stars": int(np.sum(~is_kind(stars, "apogee_only"))),
            "n_decorrelated": n_decorrelated, "n_stars_outside_emulator": n_outside,
            "rave_grid": RAVE_GRID,
        }
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        (tmp / "README.txt").write_text(
            "SIMULATED survey written by ravecnn_utils.simulation (not real RAVE or APOGEE data).\n"
            f"profile={profile} seed={seed} version={__version__}\n")
        if out_dir.exists():
            shutil.rmtree(out_dir)
        tmp.rename(out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return manifest


def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m ravecnn_utils.simulation", description="Write the simulated RAVE × APOGEE survey.")
    parser.add_argument("--profile", default="smoke", help=f"one of {sorted(PROFILES)} (default smoke)")
    parser.add_argument("--out", required=True, help="output folder, e.g. data/sim/smoke")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED)
    parser.add_argument("--emulator", default=str(EMULATOR_FILE), help="the emulator's weights (.npz)")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--overwrite", action="store_true", help="replace an existing, different survey")
    args = parser.parse_args(argv)
    # a `kill` (SIGTERM) becomes SystemExit, so the temporary folder is removed as on Ctrl-C
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    try:
        manifest = simulate_survey(args.out, args.profile, args.seed, args.emulator, args.processes,
                                   overwrite=args.overwrite)
    except (SurveyError, FileExistsError, PermissionError) as err:
        parser.exit(2, f"error: {err}\n")
    print(f"{args.out}: {manifest['n_observations']} simulated observations "
          f"(profile {manifest['profile']}, seed {manifest['seed']})")
    return 0

