"""Shared fixtures.

``smoke_survey`` simulates the ``smoke`` profile once per test session (a few seconds)
into a temporary folder; tests must treat it as read-only (copy it to modify it).
The notebook smoke test in test_notebooks.py writes its own survey.
"""

import pytest

from ravecnn_utils.simulation.simulate import simulate_survey

SMOKE_SEED = 2020


@pytest.fixture(scope="session")
def smoke_survey(tmp_path_factory):
    """Folder of a ``smoke`` survey simulated with seed 2020 (one process, no progress bar)."""
    out = tmp_path_factory.mktemp("survey") / "smoke"
    simulate_survey(out, profile="smoke", seed=SMOKE_SEED, processes=1, progress=False)
    return out


# --- a toy training set and spectra cubes (test_ensemble_contract.py, test_validation_more.py) ---

TOY_PIXELS = 60
"""Pixels of the toy training set: the paper's network needs >= 28, the slides' >= 58."""

TOY_SPLIT = {"train": 36, "validation": 12, "test": 12}


@pytest.fixture(scope="session")
def toy_training_set():
    """A synthetic training set as ``trainingset.read_training_set`` returns it: (wave Å (60,), flux,
    error (n, 60) float32, Table with rave_obs_id, id_2mass, split, the nine labels and the
    photometry catalogue columns). Line depths follow Teff, log g and [M/H]; the validation and
    test rows have wider label and parallax ranges than the train rows (so a scaler fitted on
    more than the train rows is told apart); ni_fe is masked on a few train rows. Seed 7."""
    import numpy as np
    from astropy.table import MaskedColumn, Table

    from ravecnn_utils.labels import LABELS
    from ravecnn_utils.photometry import BANDS

    rng = np.random.default_rng(7)
    split = np.repeat(list(TOY_SPLIT), list(TOY_SPLIT.values()))
    n = split.size
    train = split == "train"
    wide = np.where(train, 0.0, 1.0)
    teff = rng.uniform(4200, 6000, n) + wide * rng.choice([-500.0, 600.0], n)
    logg = rng.uniform(1.5, 4.5, n) + wide * rng.choice([-0.8, 0.6], n)
    m_h = rng.uniform(-1.0, 0.3, n) - wide * 0.5
    labels = {"teff": teff, "logg": logg, "m_h": m_h, "fe_h": m_h + rng.normal(0, 0.02, n)}
    for name in LABELS[4:]:
        labels[name] = rng.uniform(-0.1, 0.4, n) + wide * 0.2
    pix = np.arange(TOY_PIXELS)
    lines = [np.exp(-0.5 * ((pix - c) / 2.0) ** 2) for c in (15, 30, 45)]
    flux = (1 - (0.8 - 0.1 * (teff[:, None] - 4000) / 1000) * lines[0]
            - (0.1 + 0.08 * logg[:, None]) * lines[1] - (0.3 + 0.2 * m_h[:, None]) * lines[2]
            + rng.normal(0, 0.01, (n, TOY_PIXELS))).astype(np.float32)
    error = np.full((n, TOY_PIXELS), 0.01, np.float32)
    table = Table({"rave_obs_id": [f"toy_{i:03d}" for i in range(n)],
                   "id_2mass": [f"J{i:07d}" for i in range(n)], "split": split})
    for name in LABELS:
        table[name] = labels[name]
    table["ni_fe"] = MaskedColumn(labels["ni_fe"], mask=np.isin(np.arange(n), [1, 4, 9]))
    table["parallax"] = rng.uniform(0.5, 4.0, n) + wide * 3.0
    g = rng.uniform(9.0, 12.5, n) - wide * 1.5
    for k, column in enumerate(BANDS.values()):
        table[column] = g - 0.25 * k + rng.normal(0, 0.05, n)
    table["av50"] = rng.uniform(0.0, 0.6, n) + wide * 0.4
    table.meta["hash"] = "toyhash"
    wave = 8410.0 + 0.39 * pix
    return wave, flux, error, table


@pytest.fixture(scope="session")
def write_cube():
    """``write_cube(path, wave, flux, error, ids, block=5)``: a spectra cube in the survey's file
    format (``cube.write_spectra_cube`` with ``cube.cube_header``), streamed in blocks of ``block``
    rows; returns the path."""
    import numpy as np

    from ravecnn_utils.cube import cube_header, write_spectra_cube

    def write(path, wave, flux, error, ids, block=5):
        header = cube_header(np.asarray(wave), round(float(wave[1] - wave[0]), 9), len(ids), sources="tests")
        arrays = {"FLUX": np.asarray(flux, np.float32), "ERROR": np.asarray(error, np.float32)}

        def blocks(ext):
            for start in range(0, len(ids), block):
                yield arrays[ext][start:start + block]

        return write_spectra_cube(path, header, blocks, np.asarray(ids), np.zeros(len(ids), np.int32))

    return write
