"""The synthesis chain behind the survey: ATLAS9 grids, MOOG's inputs and output, the emulator."""

import numpy as np
import pytest

from ravecnn_utils.labels import LABELS
from ravecnn_utils.paths import EMULATOR_FILE, EMULATOR_TEST_FILE
from ravecnn_utils.simulation import kurucz, moog, synthgrid
from ravecnn_utils.simulation.emulator import Emulator
from ravecnn_utils.simulation.emulator_build import split
from ravecnn_utils.simulation.synthgrid import DOMAIN, compute_grid, design_labels

SUN = np.array([5777.0, 4.44, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])


def _grid_file(path, m_h, models, drop_first_char=False):
    """A tiny ATLAS9-like grid file: models {(teff, logg): (n_depth, 5) array}."""
    lines = []
    for (teff, logg), deck in models.items():
        lines += [f"TEFF   {teff:.0f}.  GRAVITY {logg:.5f} LTE", f"TITLE [{m_h:+.1f}]",
                  f"READ DECK6 {len(deck)} RHOX,T,P,XNE,ABROSS,ACCRAD,VTURB"]
        lines += [" ".join(f"{v:.6E}" for v in row) + " 1.0E+00 2.0E+05" for row in deck]
        lines.append("PRADK 1.0")
    if drop_first_char:
        lines = [line[1:] for line in lines]
    path.write_text("\n".join(lines) + "\n")


def _deck(scale):
    return np.array([[1e-3 * scale, 4000.0 * scale, 10.0 * scale, 1e10 * scale, 1e-2 * scale],
                     [1e-1 * scale, 6000.0 * scale, 1e3 * scale, 1e12 * scale, 1.0 * scale]])


@pytest.fixture
def tiny_grid(tmp_path):
    for m_h, name, drop in ((0.0, "ap00k2.dat", False), (-0.5, "am05k2.dat", True)):
        models = {(t, g): _deck((1 + (t - 5000) / 1e4) * (1 + g / 10) * (1 + m_h / 10))
                  for t in (5000.0, 5250.0) for g in (4.0, 4.5)}
        _grid_file(tmp_path / name, m_h, models, drop_first_char=drop)
    return kurucz.KuruczGrid(tmp_path)


def test_grid_files_read_with_either_spelling(tiny_grid):
    assert list(tiny_grid.metallicities) == [-0.5, 0.0]
    assert set(tiny_grid.models[-0.5]) == {(5000.0, 4.0), (5000.0, 4.5), (5250.0, 4.0), (5250.0, 4.5)}
    assert kurucz.metallicity_of("am25k2.dat") == -2.5 and kurucz.metallicity_of("ap05k2.dat") == 0.5
    with pytest.raises(ValueError, match="not an ATLAS9"):
        kurucz.metallicity_of("model.dat")


def test_interpolation_is_exact_at_nodes_and_loglinear_between(tiny_grid):
    node = tiny_grid.interpolate(5250.0, 4.5, 0.0)
    np.testing.assert_allclose(node, tiny_grid.models[0.0][(5250.0, 4.5)], rtol=1e-12)
    mid = tiny_grid.interpolate(5125.0, 4.5, 0.0)
    a, b = tiny_grid.models[0.0][(5000.0, 4.5)], tiny_grid.models[0.0][(5250.0, 4.5)]
    np.testing.assert_allclose(mid[:, 1], (a[:, 1] + b[:, 1]) / 2)          # temperature: linear
    np.testing.assert_allclose(mid[:, 2], np.sqrt(a[:, 2] * b[:, 2]))      # pressure: in log


def test_interpolation_outside_or_with_a_missing_model_is_refused(tiny_grid):
    with pytest.raises(ValueError, match="Teff = 5400"):
        tiny_grid.interpolate(5400.0, 4.2, 0.0)
    del tiny_grid.models[0.0][(5250.0, 4.0)]
    assert not tiny_grid.covers(5100.0, 4.2, -0.2)
    with pytest.raises(ValueError, match="no ATLAS9 model at Teff 5250 K, log g 4.0"):
        tiny_grid.interpolate(5100.0, 4.2, -0.2)


def test_labels_set_the_abundances_as_the_forward_model_maps_them():
    lab = dict(zip(LABELS, SUN))
    lab |= {"m_h": -0.5, "fe_h": -0.6, "alpha_m": 0.3, "mg_fe": 0.25, "ni_fe": -0.1}
    ab = moog.abundances(np.array([lab[name] for name in LABELS]))
    assert ab["Ca"] == pytest.approx(moog.SOLAR["Ca"] - 0.5 + 0.3)
    assert ab["Mg"] == pytest.approx(moog.SOLAR["Mg"] - 0.6 + 0.25)
    assert ab["Ni"] == pytest.approx(moog.SOLAR["Ni"] - 0.6 - 0.1)
    assert ab["Fe"] == pytest.approx(moog.SOLAR["Fe"] - 0.6)
    text = moog.model_text(_deck(1.0), np.array([lab[name] for name in LABELS]))
    assert text.startswith("KURUCZ\n") and "NATOMS     11   -0.500" in text
    assert f"      12.0    {ab['Mg']:.3f}" in text


def test_line_lists_put_the_calcium_triplet_in_the_strong_list():
    weak, strong = moog.linelist_texts()
    strong_rows = strong.strip().splitlines()
    assert len(strong_rows) >= 3 and all("20.1" in row for row in strong_rows)
    assert "20.1" not in weak and "26.0" in weak


def test_batch_gives_the_triplet_barklem_damping():
    """MOOG's default old formulae for the Ca II triplet (``trudamp``) are switched off in the batch file,
    and Barklem damping is on."""
    keys = dict(line.split(None, 1) for line in moog.BATCH.splitlines() if len(line.split()) == 2)
    assert keys["trudamp"] == "1" and keys["damping"] == "1"


def test_raw_output_is_read_and_a_short_one_refused(tmp_path):
    out = tmp_path / "out2"
    out.write_text("ALL abundances NOT listed below differ from solar by  -0.03 dex\nMODEL: x\n"
                   "   8400.000   8400.080      0.020      2.000\n  0.0000  0.1000  0.2500  0.1000  0.0000\n")
    wave, flux = moog.read_raw_spectrum(out)
    np.testing.assert_allclose(wave, [8400.0, 8400.02, 8400.04, 8400.06, 8400.08])
    np.testing.assert_allclose(flux, [1.0, 0.9, 0.75, 0.9, 1.0])
    out.write_text("MODEL: x\n   8400.000   8401.000      0.020      2.000\n  0.0000\n")
    with pytest.raises(ValueError, match="wrote 1 of 51"):
        moog.read_raw_spectrum(out)


def test_missing_moog_is_named(tmp_path, tiny_grid):
    with pytest.raises(FileNotFoundError, match="MOOGSILENT"):
        moog.MoogSynthesis(tmp_path / "MOOGSILENT", tiny_grid)


class _Everywhere:
    def covers(self, teff, logg, m_h):
        return logg > 1.0


def test_design_covers_the_domain_flat_half_and_survey_half():
    labels = design_labels(400, _Everywhere(), seed=1)
    again = design_labels(400, _Everywhere(), seed=1)
    np.testing.assert_array_equal(labels, again)
    lo, hi = np.array([DOMAIN[name] for name in LABELS]).T
    assert np.all((labels >= lo) & (labels <= hi)) and np.all(labels[:, 1] > 1.0)
    flat, survey = labels[:200], labels[200:]
    m_h, alpha = LABELS.index("m_h"), LABELS.index("alpha_m")
    assert abs(np.corrcoef(flat[:, m_h], flat[:, alpha])[0, 1]) < 0.2       # flat: no [α/M]–[M/H] relation
    assert np.corrcoef(survey[:, m_h], survey[:, alpha])[0, 1] < -0.4       # survey-like: the discs' relation


def test_a_cached_chunk_of_other_labels_is_refused(tmp_path):
    labels = np.tile(SUN, (3, 1))
    np.savez(tmp_path / "chunk_0000.npz", labels=labels + 1, flux=np.ones((3, 5)))
    with pytest.raises(ValueError, match="chunk_0000.npz holds syntheses of other labels"):
        compute_grid(labels, tmp_path, "/nonexistent/MOOGSILENT", tmp_path, chunk=3)


def test_split_is_seeded_and_disjoint():
    train, val = split(100, seed=3)
    assert len(val) == 10 and not set(train) & set(val) and len(train) + len(val) == 100
    np.testing.assert_array_equal(val, split(100, seed=3)[1])


# ---------------------------------------------------------------- the committed emulator
@pytest.fixture(scope="module")
def emulator():
    return Emulator()


def test_emulator_reproduces_held_out_moog_syntheses(emulator):
    with np.load(EMULATOR_TEST_FILE) as saved:
        labels, flux = saved["labels"], saved["flux"]
    diff = np.abs(emulator.flux(labels) - flux)
    # The survey's noise per pixel is 1/SNR: 0.01 at SNR 100, 0.005 at SNR 200.
    assert np.median(diff) < 0.003, f"median emulation error {np.median(diff):.4f}"
    assert np.percentile(diff, 99) < 0.02, f"99th percentile {np.percentile(diff, 99):.4f}"
    assert np.all(np.abs(emulator.flux(labels + 0) - emulator.flux(labels[::-1])[::-1]) < 1e-12)


def test_emulator_jacobian_matches_finite_differences(emulator):
    star = SUN.copy()
    flux, jac = emulator.flux_and_jacobian(star)
    np.testing.assert_allclose(flux, emulator.flux(star))
    for k, step in enumerate([1.0] + [1e-3] * 8):
        up, down = star.copy(), star.copy()
        up[k] += step
        down[k] -= step
        numeric = (emulator.flux(up) - emulator.flux(down)) / (2 * step)
        np.testing.assert_allclose(jac[0, k], numeric[0], atol=1e-6 * max(1.0, np.abs(numeric).max()) + 1e-7)


def test_calcium_triplet_is_stronger_in_a_giant_than_in_a_dwarf(emulator):
    """The luminosity effect of the Ca II triplet (Jones, Alloin & Jones 1984; Díaz et al. 1989):
    at the same Teff and abundances, the lines are stronger at low gravity."""
    near = np.abs(emulator.wavelengths - 8542.1) < 15
    dwarf, giant = emulator.flux([[5800, 4.5, 0, 0, 0, 0, 0, 0, 0], [5800, 2.0, 0, 0, 0, 0, 0, 0, 0]])
    assert (1 - giant[near]).sum() > 1.1 * (1 - dwarf[near]).sum()


LINES = {"mg_fe": 8736.0, "si_fe": 8742.4, "al_fe": 8773.9, "ni_fe": 8770.7}
"""A line of each element with an [X/Fe] label: Mg I, Si I, Al I, Ni I (Å, air)."""


@pytest.mark.parametrize("label", sorted(LINES))
def test_each_abundance_moves_its_own_line(emulator, label):
    """+0.2 dex in [X/Fe] deepens the line of X (depth change > 0.004 for a 4,800 K giant) and
    moves the other elements' lines by less than a tenth of that."""
    base = np.array([4800.0, 2.5, 0, 0, 0, 0, 0, 0, 0])
    more = base.copy()
    more[LABELS.index(label)] += 0.2
    change = emulator.flux(more)[0] - emulator.flux(base)[0]
    pixel = {name: np.argmin(np.abs(emulator.wavelengths - wave)) for name, wave in LINES.items()}
    own = change[pixel[label]]
    assert own < -0.004
    for other, i in pixel.items():
        if other != label:
            assert abs(change[i]) < 0.1 * abs(own), other


def test_emulator_resolution_and_range_are_checked(emulator):
    with pytest.raises(ValueError, match="resolution must be"):
        Emulator(EMULATOR_FILE, resolution=20000)
    low = Emulator(EMULATOR_FILE, resolution=4000)
    assert low.flux(SUN).min() > emulator.flux(SUN).min()       # broader lines are shallower
    assert list(emulator.outside([SUN, SUN * [1, 1, 1, 1, 1, 1, 1, 1, 1] + [0, 0, 5, 0, 0, 0, 0, 0, 0]])) == [False, True]
    with pytest.raises(ValueError, match="9 "):
        emulator.flux([5000, 2.5])


def test_labels_outside_the_emulator_are_counted_and_said(emulator, capsys):
    """A star outside the training range is counted and reported (its spectrum is extrapolated),
    never silently; the survey keeps the count in survey.json."""
    far = SUN.copy()
    far[LABELS.index("m_h")] = -3.5
    assert emulator.count_outside([SUN, far]) == 1
    assert "1 of 2 stars have a label outside the emulator's training range" in capsys.readouterr().out
    assert emulator.count_outside([SUN]) == 0 and capsys.readouterr().out == ""


def test_a_missing_moog_is_named_before_any_worker_starts(tmp_path, tiny_grid):
    """compute_grid checks MOOG and the atmospheres in the parent: a wrong path fails at once,
    naming it, instead of killing pool workers one after another."""
    with pytest.raises(FileNotFoundError, match="MOOG executable not found"):
        compute_grid(np.tile(SUN, (2, 1)), tmp_path / "grid", tmp_path / "MOOGSILENT", tiny_grid.folder, chunk=2)
    assert not list((tmp_path / "grid").glob("chunk_*"))


class _FakeSynthesis:
    """Stands in for MOOG: flux = a constant ``depth`` below 1 plus a trace of Teff."""

    def __init__(self, depth):
        self.depth = depth

    def flux(self, labels):
        labels = np.atleast_2d(labels)
        return 1.0 - self.depth + 1e-6 * labels[:, :1] * np.ones((1, 4))


def test_a_cached_chunk_of_another_recipe_is_refused(tmp_path, monkeypatch):
    """A resumed grid keeps chunks of its own recipe and refuses those another recipe computed
    (e.g. other damping constants), naming the chunk."""
    labels = np.tile(SUN, (4, 1))
    recipe = {"depth": 0.1}
    monkeypatch.setattr(synthgrid, "_init", lambda *args: setattr(synthgrid, "_SYNTH", _FakeSynthesis(recipe["depth"])))
    _, first = compute_grid(labels, tmp_path, "MOOGSILENT", tmp_path, processes=1, chunk=2)
    _, again = compute_grid(labels, tmp_path, "MOOGSILENT", tmp_path, processes=1, chunk=2)
    np.testing.assert_array_equal(first, again)
    recipe["depth"] = 0.2
    with pytest.raises(ValueError, match="chunk_0000.npz was computed by another synthesis recipe"):
        compute_grid(labels, tmp_path, "MOOGSILENT", tmp_path, processes=1, chunk=2)


def test_a_cached_chunk_without_a_recipe_fingerprint_is_refused(tmp_path):
    path = tmp_path / "chunk_0000.npz"
    np.savez(path, labels=np.tile(SUN, (2, 1)), flux=np.ones((2, 4)))
    with pytest.raises(ValueError, match="another synthesis recipe"):
        synthgrid.check_recipe(path, np.ones(4))
