"""Where the project's committed data live (inside the repository's ``data/``)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = REPO_ROOT / "data"
LINELIST_FILE = DATA_DIR / "linelist" / "linelist_cat.csv"
GUIGLION2020_DIR = DATA_DIR / "guiglion2020"
CROSSMATCH_LABELS_FILE = GUIGLION2020_DIR / "training_sample_labels.csv"
REAL_SPECTRA_FILE = DATA_DIR / "real_cat_spectra" / "spectra.fits"
REAL_LABELS_FILE = DATA_DIR / "real_cat_spectra" / "labels.csv"
EMULATOR_FILE = DATA_DIR / "emulator" / "emulator.npz"
EMULATOR_TEST_FILE = DATA_DIR / "emulator" / "syntheses_test.npz"

PRODUCT_FILES = {
    "spectra_cube": "spectra_cube.fits",    # notebook 02: every RAVE spectrum on the common grid
    "training_set": "training_set.fits",    # notebook 02: matched spectra, labels, split
    "models": "models",                     # notebook 04: one folder per trained ensemble
    "decorrelated_cube": "decorrelated_cube.fits",  # notebook 06: the decorrelated sample's test stars on the grid
}
"""Names of what the notebooks write in their ``products_dir`` (``data/products`` by default)."""
