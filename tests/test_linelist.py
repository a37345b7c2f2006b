"""The line list reader (ravecnn_utils.simulation.linelist): merging of components and input checks."""

import numpy as np
import pytest
from astropy.table import Table

from ravecnn_utils.simulation.linelist import (
    IONISATION_EV,
    LOG_PARTITION,
    REQUIRED_COLUMNS,
    SOLAR_LOG_EPS,
    read_linelist,
)
from ravecnn_utils.paths import LINELIST_FILE

CA_TRIPLET = (8498.02, 8542.09, 8662.14)


@pytest.fixture(scope="module")
def raw():
    return Table.read(LINELIST_FILE, format="ascii.csv")


@pytest.fixture(scope="module")
def lines():
    return read_linelist()


def _write_csv(path, rows, names):
    Table(rows=rows, names=names).write(path, format="ascii.csv")
    return path


def test_ca_triplet_is_three_merged_lines(raw, lines):
    """The Ca II triplet's 17 hyperfine/isotopic entries become exactly three lines at the
    laboratory wavelengths, each with gf equal to the sum of its components' gf."""
    ca = lines[lines["species"] == "Ca II"]
    assert len(ca) == 3
    np.testing.assert_allclose(np.sort(ca["wavelength"]), CA_TRIPLET, atol=0.02)
    raw_ca = raw[raw["species"] == "Ca II"]
    for line in ca:
        comp = raw_ca[np.abs(raw_ca["wavelength_air_A"] - line["wavelength"]) < 0.5]
        assert len(comp) >= 5  # really merged, not just the strongest component kept
        gf_sum = np.sum(10.0 ** np.asarray(comp["loggf"], float))
        np.testing.assert_allclose(10.0 ** line["loggf"], gf_sum, rtol=1e-9)
        # the merged wavelength is the gf-weighted mean, so it lies within the components
        assert comp["wavelength_air_A"].min() <= line["wavelength"] <= comp["wavelength_air_A"].max()


def test_merging_conserves_total_gf_per_species(raw, lines):
    """Merging only regroups components: the summed gf of every species is unchanged,
    and there are fewer lines than raw entries."""
    assert len(lines) < len(raw)
    for species in np.unique(raw["species"]):
        before = np.sum(10.0 ** np.asarray(raw["loggf"][raw["species"] == species], float))
        after = np.sum(10.0 ** np.asarray(lines["loggf"][lines["species"] == species], float))
        np.testing.assert_allclose(after, before, rtol=1e-9)


def test_output_sorted_with_units_and_known_constants(lines):
    """Rows are sorted by wavelength, carry units, lie in the RAVE window, and every
    element/ion stage has a solar abundance, ionisation potential and partition function."""
    wave = np.asarray(lines["wavelength"])
    assert np.all(np.diff(wave) >= 0)
    assert 8395 < wave.min() and wave.max() < 8805
    assert str(lines["wavelength"].unit) == "Angstrom"
    assert str(lines["chi"].unit) == "eV"
    for el, stage in zip(lines["element"], lines["ion_stage"]):
        assert el in SOLAR_LOG_EPS and el in IONISATION_EV
        assert (el, int(stage)) in LOG_PARTITION
    # the eight Paschen lines Pa12–Pa19 are kept as they are (one entry each)
    assert np.sum(lines["element"] == "H") == 8


def test_components_with_different_excitation_are_not_merged(tmp_path):
    """Two entries of one species within merge_tol and with the same χ become one line at
    the gf-weighted mean wavelength with the summed gf; a neighbour with another χ stays apart."""
    rows = [
        (8600.00, "Fe I", "Fe", 1, 2.0, -1.0),
        (8600.10, "Fe I", "Fe", 1, 2.0, -1.0 + np.log10(3)),  # same χ: merged
        (8600.25, "Fe I", "Fe", 1, 4.0, -2.0),                # other χ: separate
        (8605.00, "Fe I", "Fe", 1, 2.0, -1.0),                # same χ but far: separate
    ]
    out = read_linelist(_write_csv(tmp_path / "l.csv", rows, REQUIRED_COLUMNS))
    assert len(out) == 3
    merged = out[(out["chi"] == 2.0) & (out["wavelength"] < 8601)][0]
    np.testing.assert_allclose(merged["wavelength"], 8600.075, atol=1e-9)  # (1·8600 + 3·8600.1)/4
    np.testing.assert_allclose(merged["loggf"], np.log10(0.1 + 0.3), atol=1e-12)


def test_interleaved_components_are_merged(tmp_path):
    """Same-χ components within merge_tol merge even when a different-χ line lies between them."""
    rows = [
        (8600.00, "Fe I", "Fe", 1, 2.0, -1.0),
        (8600.05, "Fe I", "Fe", 1, 4.0, -2.0),
        (8600.10, "Fe I", "Fe", 1, 2.0, -1.0),
    ]
    out = read_linelist(_write_csv(tmp_path / "l.csv", rows, REQUIRED_COLUMNS))
    assert len(out) == 2


def test_missing_file_names_the_path(tmp_path):
    """A missing line-list file raises FileNotFoundError that names the path."""
    missing = tmp_path / "no_such_linelist.csv"
    with pytest.raises(FileNotFoundError, match="no_such_linelist.csv"):
        read_linelist(missing)


def test_missing_column_names_the_column(tmp_path):
    """A CSV without a required column raises ValueError naming that column."""
    names = [c for c in REQUIRED_COLUMNS if c != "chi_eV"]
    path = _write_csv(tmp_path / "l.csv", [(8600.0, "Fe I", "Fe", 1, -1.0)], names)
    with pytest.raises(ValueError, match="chi_eV"):
        read_linelist(path)


def test_unknown_element_names_it(tmp_path):
    """An element with no solar abundance raises ValueError naming the element."""
    rows = [(8600.0, "Fe I", "Fe", 1, 2.0, -1.0), (8610.0, "Zr I", "Zr", 1, 1.0, -1.0)]
    path = _write_csv(tmp_path / "l.csv", rows, REQUIRED_COLUMNS)
    with pytest.raises(ValueError, match="Zr"):
        read_linelist(path)
