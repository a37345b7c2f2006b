"""The training-set file: round trip, provenance, fingerprint and refusals."""

import numpy as np
import pytest
from astropy.table import MaskedColumn, Table

from ravecnn_utils.labels import LABELS
from ravecnn_utils.trainingset import read_training_set, table_hash, write_training_set

WAVE = 8410.0 + 0.39 * np.arange(12)


def make_table(n=6):
    rng = np.random.default_rng(3)
    table = Table({"rave_obs_id": [f"obs{i}" for i in range(n)], "apogee_id": [f"2M{i}" for i in range(n)],
                   "split": ["train", "train", "train", "validation", "test", "train"][:n]})
    for name in LABELS:
        mask = np.zeros(n, bool)
        mask[1] = name == "al_fe"  # one missing [Al/Fe]
        table[name] = MaskedColumn(rng.normal(size=n), mask=mask)
        table[f"{name}_err"] = MaskedColumn(np.full(n, 0.05), mask=mask)
    return table


def test_round_trip_keeps_spectra_labels_masks_and_provenance(tmp_path):
    """Spectra, grid, labels, missing labels and provenance come back as written."""
    table = make_table()
    flux = np.random.default_rng(0).uniform(0.5, 1, (len(table), WAVE.size))
    error = np.full_like(flux, 0.02)
    error[0, 3] = np.inf
    path = write_training_set(tmp_path / "ts.fits", table, flux, error, WAVE, {"seed": 42, "cuts": {"snr": 70}})
    wave, f, e, back = read_training_set(path)
    np.testing.assert_allclose(wave, WAVE)
    np.testing.assert_allclose(f, flux, rtol=1e-6)
    assert np.isinf(e[0, 3])
    assert list(back["split"]) == list(table["split"]) and isinstance(back["split"][0], str)
    assert np.ma.getmaskarray(back["al_fe"])[1] and not np.ma.getmaskarray(back["teff"])[1]
    np.testing.assert_allclose(back["teff"], table["teff"])
    assert back.meta["provenance"] == {"seed": 42, "cuts": {"snr": 70}}
    assert back.meta["hash"] == table_hash(table)


def test_hash_changes_with_labels_and_split():
    """The fingerprint changes when a label value or a split assignment changes."""
    table = make_table()
    h0 = table_hash(table)
    table["teff"][0] += 1
    h1 = table_hash(table)
    table["split"][0] = "test"
    assert len({h0, h1, table_hash(table)}) == 3


@pytest.mark.parametrize("problem", ["shape", "split", "column"])
def test_refuses_inconsistent_input_and_writes_nothing(tmp_path, problem):
    """Mismatched shapes, an unknown split value or a missing label column raise ValueError; no file."""
    table = make_table()
    flux = np.ones((len(table), WAVE.size))
    if problem == "shape":
        flux = flux[:, :-1]
    elif problem == "split":
        table["split"][0] = "training"
    else:
        table.remove_column("mg_fe")
    with pytest.raises(ValueError, match={"shape": "do not agree", "split": "training", "column": "mg_fe"}[problem]):
        write_training_set(tmp_path / "ts.fits", table, flux, np.ones_like(flux), WAVE, {})
    assert list(tmp_path.iterdir()) == []


def test_missing_extension_is_named(tmp_path):
    """A FITS file without the LABELS extension is refused with its name."""
    from astropy.io import fits
    fits.HDUList([fits.PrimaryHDU(), fits.ImageHDU(np.ones((2, 3)), name="FLUX")]).writeto(tmp_path / "bad.fits")
    with pytest.raises(ValueError, match="bad.fits.*ERROR"):
        read_training_set(tmp_path / "bad.fits")


def test_label_array_fills_missing_with_nan_and_selects_rows():
    """Masked labels become NaN; a boolean row mask selects rows; unknown names are refused."""
    from ravecnn_utils.trainingset import label_array

    table = make_table()
    y = label_array(table, ["teff", "al_fe"])
    assert y.shape == (len(table), 2) and np.isnan(y[1, 1]) and np.isfinite(y[1, 0])
    rows = np.asarray(table["split"]) == "train"
    assert label_array(table, ["teff"], rows).shape == (rows.sum(), 1)
    with pytest.raises(ValueError, match="nope"):
        label_array(table, ["nope"])
