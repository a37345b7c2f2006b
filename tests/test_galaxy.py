"""The mock Milky Way (ravecnn_utils.simulation.galaxy): populations, label sequences, the resampled
APOGEE cross-match, sky placement and photometry."""

import numpy as np
import pytest
from astropy import units as u
from astropy.coordinates import SkyCoord

from ravecnn_utils.simulation import galaxy
from ravecnn_utils.labels import LABELS

N_FIELD = 20_000


@pytest.fixture(scope="module")
def relations():
    return galaxy.abundance_relations()


@pytest.fixture(scope="module")
def field(relations):
    return galaxy.draw_field_stars(N_FIELD, np.random.default_rng(20240611), relations)


@pytest.fixture(scope="module")
def real():
    return galaxy.read_crossmatch_labels()


def _labels(table):
    return np.column_stack([np.asarray(table[name], float) for name in LABELS])


# --------------------------------------------------------------- field stars
def test_field_stars_deterministic_for_a_seed(relations):
    """The same seed gives the identical table; another seed a different one."""
    a = galaxy.draw_field_stars(500, np.random.default_rng(7), relations)
    b = galaxy.draw_field_stars(500, np.random.default_rng(7), relations)
    c = galaxy.draw_field_stars(500, np.random.default_rng(8), relations)
    assert a.colnames == ["population", "stage", "age", *LABELS]
    for name in a.colnames:
        assert np.array_equal(a[name], b[name]), name
    assert not np.array_equal(a["teff"], c["teff"])
    assert np.all(np.isfinite(_labels(a)))


def test_population_fractions(field):
    """Each population's share of 20,000 stars lies within 3 binomial σ of POPULATIONS."""
    for name, spec in galaxy.POPULATIONS.items():
        p = spec["fraction"]
        observed = np.mean(field["population"] == name)
        assert abs(observed - p) < 3 * np.sqrt(p * (1 - p) / N_FIELD), name


def test_thick_disc_alpha_enhanced(field):
    """At the same metallicity (−0.6 < [M/H] < 0) the thick disc has a higher median [α/M]
    than the thin disc, by more than 0.1 dex."""
    in_range = (field["m_h"] > -0.6) & (field["m_h"] < 0.0)
    thin = np.median(field["alpha_m"][in_range & (field["population"] == "thin")])
    thick = np.median(field["alpha_m"][in_range & (field["population"] == "thick")])
    assert thick > thin + 0.1


def test_giant_branch_sequence(field):
    """Red-giant-branch stars have log g < 3.6 and get cooler up the branch (lower log g),
    both in the median per log g bin and in the correlation."""
    rgb = field[field["stage"] == "red_giant_branch"]
    assert len(rgb) > 1000
    assert rgb["logg"].max() < 3.6
    medians = [np.median(rgb["teff"][(rgb["logg"] > lo) & (rgb["logg"] < lo + 1)]) for lo in (0.5, 1.5, 2.5)]
    assert np.all(np.diff(medians) > 100)
    assert np.corrcoef(rgb["logg"], rgb["teff"])[0, 1] > 0.5


def test_metal_poor_giants_are_hotter(field):
    """At fixed log g, metal-poor ([M/H] < −0.8) giants are hotter than metal-rich ([M/H] > 0)
    ones, by more than 150 K (the giant branch shifts blue at low metallicity)."""
    rgb = field[field["stage"] == "red_giant_branch"]
    for lo in (1.0, 2.0, 2.8):
        g = (rgb["logg"] > lo) & (rgb["logg"] < lo + 0.6)
        poor, rich = g & (rgb["m_h"] < -0.8), g & (rgb["m_h"] > 0.0)
        assert poor.sum() > 30 and rich.sum() > 30
        assert np.median(rgb["teff"][poor]) > np.median(rgb["teff"][rich]) + 150


def test_main_sequence_gravity(field):
    """Main-sequence stars are dwarfs: log g > 3.9 for all but a noise tail (≥ 99.9 %, none
    below 3.7), median near the solar 4.44."""
    logg = np.asarray(field["logg"][field["stage"] == "main_sequence"])
    assert np.mean(logg > 3.9) >= 0.999
    assert logg.min() > 3.7
    assert 4.3 < np.median(logg) < 4.6


def test_unknown_stage_names_it():
    """stellar_parameters with an unknown evolutionary stage raises ValueError naming it."""
    with pytest.raises(ValueError, match="horizontal_branch"):
        galaxy.stellar_parameters("horizontal_branch", np.ones(3), np.zeros(3), np.random.default_rng(0))


# ----------------------------------------------------------- cross-match stars
def test_crossmatch_stars_reproduce_real_distribution(real):
    """Resampled cross-match stars have the real table's label means (within 0.05 σ) and
    standard deviations inflated by √(1 + jitter²) as designed (within 3 %)."""
    jitter = 0.3
    drawn = _labels(galaxy.draw_crossmatch_stars(20_000, np.random.default_rng(11), jitter=jitter))
    mean, sd = real.mean(axis=0), real.std(axis=0)
    assert np.all(np.abs(drawn.mean(axis=0) - mean) < 0.05 * sd)
    ratio = drawn.std(axis=0) / sd
    np.testing.assert_allclose(ratio, np.sqrt(1 + jitter**2), rtol=0.03)
    assert np.all(np.abs(ratio - 1) < 0.10)


def test_crossmatch_stars_copy_no_real_row(real):
    """No drawn label vector equals a real one: not even one Teff value is copied."""
    drawn = galaxy.draw_crossmatch_stars(5000, np.random.default_rng(12))
    assert not np.any(np.isin(np.asarray(drawn["teff"]), real[:, 0]))
    assert not np.any(np.isin(np.asarray(drawn["m_h"]), real[:, 2]))


def test_crossmatch_table_and_stages():
    """Cross-match stars carry the population/stage columns; stages follow log g."""
    t = galaxy.draw_crossmatch_stars(2000, np.random.default_rng(13))
    assert t.colnames == ["population", "stage", "age", *LABELS]
    assert set(t["population"]) <= {"thin", "thick", "halo"}
    assert np.all(t["logg"][t["stage"] == "main_sequence"] > 3.8)
    assert np.all(t["logg"][t["stage"] == "red_giant_branch"] <= 3.4)


@pytest.mark.parametrize("jitter", [0.0, -0.1])
def test_non_positive_jitter_raises(jitter):
    """jitter ≤ 0 would copy real rows: ValueError."""
    with pytest.raises(ValueError, match="jitter"):
        galaxy.draw_crossmatch_stars(10, np.random.default_rng(0), jitter=jitter)


# ------------------------------------------------------------------- the sky
@pytest.fixture(scope="module")
def placed(field):
    sub = field[:4000]
    abs_i = galaxy.absolute_magnitudes(np.asarray(sub["teff"]), np.asarray(sub["logg"]))["I"]
    pop = np.asarray(sub["population"])
    return (pop, abs_i, *galaxy.place_stars(pop, abs_i, np.random.default_rng(5)))


def test_place_stars_footprint(placed):
    """Every star is at δ < +2°; non-bulge stars at |b| > 20°; bulge stars in their
    fields (|l| ≤ 10°, −12° ≤ b ≤ −4°) at 6–9 kpc."""
    pop, _, dist, lon, lat, _ = placed
    dec = SkyCoord(l=lon * u.deg, b=lat * u.deg, frame="galactic").icrs.dec.deg
    assert np.all(dec < 2.0)
    bulge = pop == "bulge"
    assert bulge.sum() > 0
    assert np.all(np.abs(lat[~bulge]) > 20.0)
    assert np.all((lat[bulge] >= -12) & (lat[bulge] <= -4))
    assert np.all(np.minimum(lon[bulge], 360 - lon[bulge]) <= 10)
    assert np.all((dist[bulge] >= 6) & (dist[bulge] <= 9))


def test_place_stars_distances_and_extinction(placed):
    """Distances are positive and, through the distance modulus, put every non-bulge star at
    9 ≤ I ≤ 12 with counts rising as 10^(0.3 I) (median I ≈ 11.17); A_V ≥ 0 and grows
    towards the plane."""
    pop, abs_i, dist, _, lat, a_v = placed
    assert np.all(dist > 0) and np.all(a_v >= 0)
    nb = pop != "bulge"
    mag_i = abs_i[nb] + 5 * np.log10(dist[nb] * 1000.0) - 5
    assert np.all((mag_i >= 9.0 - 1e-9) & (mag_i <= 12.0 + 1e-9))
    expected_median = np.log10((10**2.7 + 10**3.6) / 2) / 0.3
    assert abs(np.median(mag_i) - expected_median) < 0.06
    far = nb & (dist > 1.0)
    low, high = far & (np.abs(lat) < 30), far & (np.abs(lat) > 60)
    assert np.median(a_v[low]) > np.median(a_v[high])


# ---------------------------------------------------------------- photometry
def test_absolute_magnitudes_sun():
    """A 1 M☉, 5777 K, log g 4.44 star has the Sun's M_G ≈ 4.67 and BP−RP ≈ 0.82 (±0.1 mag)."""
    mags = galaxy.absolute_magnitudes(np.array([5777.0]), np.array([4.44]), mass=1.0)
    assert abs(mags["G"][0] - 4.67) < 0.1
    assert abs(mags["BP"][0] - mags["RP"][0] - 0.82) < 0.1


def test_giants_brighter_and_cool_stars_redder():
    """At the same Teff a giant (log g 2.5) is brighter than a dwarf (log g 4.5) in every band,
    by 5 mag for 2 dex in g at fixed mass; BP−RP and V−K-like colours redden as Teff falls."""
    teff = np.linspace(3800.0, 7000.0, 17)
    giant = galaxy.absolute_magnitudes(teff, np.full_like(teff, 2.5))
    dwarf = galaxy.absolute_magnitudes(teff, np.full_like(teff, 4.5))
    for band in giant:
        assert np.all(giant[band] < dwarf[band]), band
    np.testing.assert_allclose(dwarf["G"] - giant["G"], 5.0, atol=1e-9)
    bp_rp = dwarf["BP"] - dwarf["RP"]
    assert np.all(np.diff(bp_rp) < 0)  # Teff increasing → bluer
    assert np.all(np.diff(dwarf["G"] - dwarf["K"]) < 0)
