"""Physics and numerics of the forward model (ravecnn_utils.simulation.forward).

Reference stars: a solar-metallicity red-clump-like giant and a solar-like dwarf.
Every physics test compares spectra that differ in one label only.
"""

import numpy as np
import pytest

from ravecnn_utils.crlb import cramer_rao_bound, fisher_information
from ravecnn_utils.labels import LABELS
from ravecnn_utils.simulation import realism
from ravecnn_utils.simulation.forward import DEFAULT_CALIBRATION, SPEED_OF_LIGHT_KMS, ForwardModel, resample
from ravecnn_utils.simulation.linelist import read_linelist

IDX = {name: i for i, name in enumerate(LABELS)}
GIANT = np.array([4800.0, 2.5, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
DWARF = np.array([5800.0, 4.4, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
REFERENCE = {"giant": GIANT, "dwarf": DWARF}

CA_8542 = 8542.09
FE_8688 = 8688.623
MG_8736 = 8736.016
AL_LINES = (8772.865, 8773.896)
PASCHEN = (8598.396, 8750.476)
RAVE_GRID = 8410.0 + 0.39 * np.arange(987)


def with_labels(base, **changes):
    """Copy of a label vector with some labels changed."""
    out = np.array(base, float)
    for name, value in changes.items():
        out[IDX[name]] = value
    return out


@pytest.fixture(scope="module")
def lines():
    return read_linelist()


@pytest.fixture(scope="module")
def model(lines):
    return ForwardModel(lines=lines)


def depth(model, labels, centre, half_width=0.5):
    """1 − minimum flux within ±half_width Å of ``centre``."""
    flux = model.flux(labels)[0]
    near = np.abs(model.wavelengths - centre) <= half_width
    return 1.0 - flux[near].min()


def centre_depression(model, labels, centre):
    """1 − flux at ``centre`` (linear interpolation on the model grid)."""
    return 1.0 - np.interp(centre, model.wavelengths, model.flux(labels)[0])


# ------------------------------------------------------------------ Ca II wings
def _ca_wing_and_total(model, logg):
    """Depression integrated 3–10 Å from the 8542 line centre (both sides) and within ±10 Å."""
    wave = model.wavelengths
    dep = 1.0 - model.flux(with_labels(GIANT, teff=5000.0, logg=logg))[0]
    step = wave[1] - wave[0]
    off = np.abs(wave - CA_8542)
    return dep[(off >= 3) & (off <= 10)].sum() * step, dep[off <= 10].sum() * step


@pytest.mark.parametrize("only_ca", [False, True], ids=["full_list", "ca_only"])
def test_ca_ii_damping_wings_broaden_with_gravity(lines, model, only_ca):
    """At 5000 K, the Ca II 8542 wings (3–10 Å from the core) are deeper at log g 4.5 than at
    2.0, also as a fraction of the line's whole depression (a width, not only a strength),
    and grow monotonically with log g; true for the Ca II line alone too (pressure broadening
    of the line itself, not of blends)."""
    m = ForwardModel(lines=lines[lines["species"] == "Ca II"]) if only_ca else model
    loggs = (1.0, 2.0, 3.0, 4.0, 4.5)
    wing, total = np.array([_ca_wing_and_total(m, g) for g in loggs]).T
    frac = wing / total
    lo, hi = loggs.index(2.0), loggs.index(4.5)
    assert wing[hi] > 1.5 * wing[lo]
    assert frac[hi] > frac[lo] + 0.05
    assert np.all(np.diff(wing) > 0) and np.all(np.diff(frac) > 0)


# ------------------------------------------------------------------------ Fe I
@pytest.mark.parametrize("star", ["giant", "dwarf"])
def test_fe_i_strengthens_with_iron_abundance(model, star):
    """Fe I 8688.6 deepens monotonically with [Fe/H] = −1, 0, +0.3 (all other labels fixed),
    by a clear margin over the full range (the line is saturated, so less than ∝ abundance)."""
    ref = REFERENCE[star]
    depths = [depth(model, with_labels(ref, fe_h=fe), FE_8688) for fe in (-1.0, 0.0, 0.3)]
    assert depths[0] < depths[1] < depths[2]
    assert depths[2] > 1.4 * depths[0]


@pytest.mark.parametrize("star", ["giant", "dwarf"])
def test_fe_i_weakens_with_temperature(model, star):
    """Fe I 8688.6 (a neutral line of a mostly ionised element) weakens from 5000 K to 6500 K."""
    ref = REFERENCE[star]
    teffs = (5000.0, 5500.0, 6000.0, 6500.0)
    depths = [depth(model, with_labels(ref, teff=t), FE_8688) for t in teffs]
    assert np.all(np.diff(depths) < 0)
    assert depths[-1] < 0.8 * depths[0]


# --------------------------------------------------------------------- Paschen
def test_paschen_lines_only_in_hot_stars(lines, model):
    """At log g 4 the Paschen lines Pa 8598.4 and 8750.5 add < 0.01 to the depression at 4500 K
    (compared with the same model without H lines) and are strong at 7500 K (> 0.3); they grow
    monotonically from 5000 to 7000 K, and the hot-star depression vanishes without the H lines."""
    cool, hot = with_labels(DWARF, teff=4500.0, logg=4.0), with_labels(DWARF, teff=7500.0, logg=4.0)
    no_h = ForwardModel(lines=lines[lines["element"] != "H"])
    for centre in PASCHEN:
        assert centre_depression(model, cool, centre) - centre_depression(no_h, cool, centre) < 0.01
        assert centre_depression(model, hot, centre) > 0.3
        assert centre_depression(no_h, hot, centre) < 0.01
        ladder = [centre_depression(model, with_labels(hot, teff=t), centre)
                  for t in (5000.0, 5500.0, 6000.0, 6500.0, 7000.0)]
        assert np.all(np.diff(ladder) > 0)


# --------------------------------------------------- individual abundances
@pytest.mark.parametrize("star", ["giant", "dwarf"])
def test_mg_line_follows_mg_not_ni(model, star):
    """Mg I 8736 deepens with [Mg/Fe] (by > 10 % per +0.3 dex; partly saturated)
    and does not move at all with [Ni/Fe]."""
    ref = REFERENCE[star]
    d = [depth(model, with_labels(ref, mg_fe=x), MG_8736) for x in (-0.3, 0.0, 0.3)]
    assert d[0] < d[1] < d[2]
    assert 1.1 < d[2] / d[1] < 2.5
    d_ni = [depth(model, with_labels(ref, ni_fe=x), MG_8736) for x in (-0.3, 0.3)]
    assert abs(d_ni[1] - d_ni[0]) < 1e-9


@pytest.mark.parametrize("star", ["giant", "dwarf"])
def test_al_lines_follow_al(model, star):
    """Both Al I 8773 lines deepen with [Al/Fe]; Mg I 8736 does not react to [Al/Fe]."""
    ref = REFERENCE[star]
    for centre in AL_LINES:
        d = [centre_depression(model, with_labels(ref, al_fe=x), centre) for x in (-0.3, 0.0, 0.3)]
        assert d[0] < d[1] < d[2]
    d_mg = [depth(model, with_labels(ref, al_fe=x), MG_8736) for x in (-0.3, 0.3)]
    assert abs(d_mg[1] - d_mg[0]) < 1e-9


@pytest.mark.parametrize("star", ["giant", "dwarf"])
def test_ni_lines_follow_ni(lines, model, star):
    """Raising [Ni/Fe] deepens the spectrum at every Ni I line and nowhere else: the change is
    largest within 0.3 Å of a Ni line and vanishes > 3 Å from all Ni lines."""
    ref = REFERENCE[star]
    change = model.flux(ref)[0] - model.flux(with_labels(ref, ni_fe=0.5))[0]
    wave = model.wavelengths
    ni = np.asarray(lines["wavelength"][lines["element"] == "Ni"], float)
    assert len(ni) >= 3
    for centre in ni:
        assert np.interp(centre, wave, change) > 1e-5
    assert np.min(np.abs(ni - wave[np.argmax(change)])) < 0.3
    far = np.min(np.abs(wave[:, None] - ni[None, :]), axis=1) > 3.0
    assert np.abs(change[far]).max() < 1e-6 * change.max()


# --------------------------------------------------------------- flux bounds
def test_flux_bounded_and_continuum_far_from_lines(lines):
    """For stars across the label space the flux lies in (0, 1]; on a grid extended to
    9800 Å the flux returns to the continuum (depression < 1e-3 beyond 9500 Å) and the
    depression keeps falling away from the lines."""
    wave = np.arange(8395.0, 9800.0, 0.13)
    m = ForwardModel(lines=lines, wavelengths=wave)
    stars = np.array([
        GIANT, DWARF,
        with_labels(GIANT, teff=3500.0, logg=0.5, m_h=0.6, fe_h=0.6, alpha_m=0.4, mg_fe=0.5),
        with_labels(DWARF, teff=7500.0, logg=5.0, m_h=-2.5, fe_h=-2.5),
        with_labels(DWARF, teff=8000.0, logg=3.0, m_h=0.5, fe_h=0.5, al_fe=0.8, ni_fe=0.5),
    ])
    flux = m.flux(stars)
    assert np.all(flux > 0) and np.all(flux <= 1)
    dep = 1 - flux
    assert dep[:, wave > 9500].max() < 1e-3
    beyond = wave > 8900
    assert np.all(np.diff(dep[:, beyond], axis=1) <= 0)
    assert dep.max() > 0.3  # the test is not vacuous: lines are there


# ------------------------------------------------------------------- Jacobian
def test_jacobian_matches_finite_differences(model):
    """∂flux/∂label from flux_and_jacobian equals central differences of flux (per label,
    to 1e-3 of that label's largest derivative), and the returned flux equals flux()."""
    labels = np.array([GIANT, with_labels(DWARF, m_h=-0.4, fe_h=-0.45, alpha_m=0.1, mg_fe=0.15)])
    flux, jac = model.flux_and_jacobian(labels)
    np.testing.assert_allclose(flux, model.flux(labels), rtol=0, atol=1e-12)
    assert jac.shape == (2, len(LABELS), len(model.wavelengths))
    for k, name in enumerate(LABELS):
        h = np.zeros(len(LABELS))
        h[k] = 2.0 if name == "teff" else 2e-3
        fd = (model.flux(labels + h) - model.flux(labels - h)) / (2 * h[k])
        scale = np.abs(fd).max(axis=1, keepdims=True)
        assert np.all(scale > 0), name
        assert np.all(np.abs(jac[:, k] - fd) <= 1e-3 * scale), name


def test_flux_alone_is_bit_identical_to_flux_and_jacobian(model):
    """The simulation's flux-only path (``flux``, and ``jacobian`` of some rows with their optical
    depth) gives exactly the arrays of ``flux_and_jacobian``: the spectra do not change when the
    Jacobian is computed for fewer stars."""
    stars = np.array([GIANT, DWARF, with_labels(GIANT, teff=4300.0, m_h=-1.2), with_labels(DWARF, logg=4.0)])
    flux, jac = model.flux_and_jacobian(stars)
    tau = model.optical_depth(stars)
    assert np.array_equal(model.flux(stars), flux) and np.array_equal(model.flux(stars, tau), flux)
    assert np.array_equal(model.jacobian(stars, tau), jac)
    rows = [3, 1]
    np.testing.assert_allclose(model.jacobian(stars[rows], tau[rows]), jac[rows], rtol=1e-12,
                               atol=1e-12 * np.abs(jac).max())


# --------------------------------------------------------- Fisher information
def test_fisher_information_of_resampled_spectrum(model):
    """F = Jᵀ Σ⁻¹ J from fisher_information(resample(Jacobian), σ) matches a hand-built F from
    finite differences of the full pipeline (model → Doppler shift → RAVE grid), σ = √flux/SNR
    with SNR 50; the Cramér–Rao bounds agree too."""
    labels = GIANT[None]
    v = 23.0
    snr = 50.0
    flux = resample(model.flux(labels), model.wavelengths, RAVE_GRID, v)[0]
    sigma = np.sqrt(flux) / snr
    j_fd = np.empty((len(LABELS), RAVE_GRID.size))
    for k, name in enumerate(LABELS):
        h = np.zeros(len(LABELS))
        h[k] = 2.0 if name == "teff" else 2e-3
        up = resample(model.flux(labels + h), model.wavelengths, RAVE_GRID, v)[0]
        down = resample(model.flux(labels - h), model.wavelengths, RAVE_GRID, v)[0]
        j_fd[k] = (up - down) / (2 * h[k])
    f_hand = (j_fd / sigma**2) @ j_fd.T

    _, jac = model.flux_and_jacobian(labels)
    f = fisher_information(resample(jac, model.wavelengths, RAVE_GRID, v), sigma[None])
    assert f.shape == (1, len(LABELS), len(LABELS))
    norm = np.sqrt(np.outer(np.diag(f_hand), np.diag(f_hand)))
    assert np.all(np.abs(f[0] - f_hand) <= 2e-3 * norm)
    np.testing.assert_allclose(f[0], f[0].T, rtol=1e-12)
    np.testing.assert_allclose(cramer_rao_bound(f)[0], cramer_rao_bound(f_hand[None])[0], rtol=0.05)


def test_fisher_of_straight_line_fit():
    """For y = a + b·x with constant σ, F = [[Σ1, Σx], [Σx, Σx²]]/σ², and the Cramér–Rao bounds
    are the textbook least-squares errors σ_b = σ/√Σ(x−x̄)², σ_a = σ√(Σx²/(N Σ(x−x̄)²)).
    Pixels with σ = 0, inf or NaN carry no information."""
    x = np.linspace(-3.0, 5.0, 41)
    s = 0.2
    jac = np.stack([np.ones_like(x), x])[None]
    f = fisher_information(jac, np.full((1, x.size), s))[0]
    np.testing.assert_allclose(f, np.array([[x.size, x.sum()], [x.sum(), (x**2).sum()]]) / s**2)
    sxx = np.sum((x - x.mean()) ** 2)
    crb = cramer_rao_bound(f[None])[0]
    np.testing.assert_allclose(crb, [s * np.sqrt(np.sum(x**2) / (x.size * sxx)), s / np.sqrt(sxx)])

    bad = np.full((1, x.size + 3), s)
    bad[0, -3:] = [0.0, np.inf, np.nan]
    jac_bad = np.concatenate([jac, np.full((1, 2, 3), 7.0)], axis=2)
    np.testing.assert_allclose(fisher_information(jac_bad, bad)[0], f)


def test_cramer_rao_of_diagonal_fisher():
    """For a diagonal Fisher matrix the Cramér–Rao bound is 1/√diag(F)."""
    diag = np.array([[1e-4, 25.0, 400.0, 100.0, 1e3, 50.0, 4.0, 9.0, 0.25]])
    f = np.einsum("ni,ij->nij", diag, np.eye(9))
    np.testing.assert_allclose(cramer_rao_bound(f), 1 / np.sqrt(diag), rtol=1e-12)


# -------------------------------------------------------------------- resample
def test_resample_linear_function_exact():
    """Linear interpolation reproduces a + b·λ exactly, at rest and with a Doppler shift
    (read at λ/(1 + v/c)), for several spectra and for extra leading axes."""
    model_wave = 8395.0 + 0.13 * np.arange(3300)
    target = np.stack([8420.0 + 0.37 * np.arange(900), 8431.3 + 0.41 * np.arange(900)])
    values = np.stack([2.0 + 1e-3 * model_wave, -1.0 + 5e-4 * model_wave])
    v = np.array([0.0, -120.0])
    out = resample(values, model_wave, target, v)
    rest = target / (1 + v[:, None] / SPEED_OF_LIGHT_KMS)
    np.testing.assert_allclose(out, np.stack([2.0 + 1e-3 * rest[0], -1.0 + 5e-4 * rest[1]]), rtol=1e-12)
    stacked = resample(np.stack([values, 3 * values], axis=1), model_wave, target, v)
    assert stacked.shape == (2, 2, 900)
    np.testing.assert_allclose(stacked[:, 1], 3 * out, rtol=1e-12)


@pytest.mark.parametrize("v", [-150.0, 40.0, 250.0])
def test_resample_doppler_shift_moves_line_centre(v):
    """A line at λ₀ observed at velocity v appears at λ₀(1 + v/c): its depression-weighted
    centroid on a fine target grid moves by λ₀v/c (red for v > 0)."""
    model_wave = 8395.0 + 0.13 * np.arange(3155)
    lam0 = 8600.0
    values = (1 - 0.6 * np.exp(-0.5 * ((model_wave - lam0) / 0.45) ** 2))[None]
    target = np.arange(8580.0, 8620.0, 0.01)[None]

    def centroid(vel):
        dep = 1 - resample(values, model_wave, target, vel)[0]
        return np.sum(target[0] * dep) / np.sum(dep)

    shift = centroid(v) - centroid(0.0)
    assert abs(centroid(0.0) - lam0) < 1e-3
    np.testing.assert_allclose(shift, lam0 * v / SPEED_OF_LIGHT_KMS, atol=5e-3)


def test_resample_outside_grid_raises(model):
    """Target wavelengths (after removing the Doppler shift) outside the model grid raise ValueError."""
    flux = model.flux(GIANT)
    with pytest.raises(ValueError, match="outside the model grid"):
        resample(flux, model.wavelengths, np.linspace(8380.0, 8700.0, 100))
    with pytest.raises(ValueError, match="outside the model grid"):
        resample(flux, model.wavelengths, np.linspace(8500.0, 8810.0, 100))
    with pytest.raises(ValueError, match="outside the model grid"):
        resample(flux, model.wavelengths, RAVE_GRID, 2000.0)  # 8794.5 Å / (1 + v/c) fine, 8410 not
    resample(flux, model.wavelengths, RAVE_GRID, 300.0)  # the RAVE grid fits for |v| ≤ 300 km/s
    resample(flux, model.wavelengths, RAVE_GRID, -300.0)


# ---------------------------------------------------------------- parameters
@pytest.mark.parametrize("resolution", [-1, 0])
def test_bad_resolution_raises(lines, resolution):
    """A non-positive resolving power raises ValueError naming it."""
    with pytest.raises(ValueError, match=f"resolution.*{resolution}"):
        ForwardModel(lines=lines, resolution=resolution)


def test_unknown_calibration_key_raises(lines):
    """An unknown calibration constant raises ValueError naming the key; a known one is applied."""
    with pytest.raises(ValueError, match="log_c_typo"):
        ForwardModel(lines=lines, calibration={"log_c_typo": 11.0})
    m = ForwardModel(lines=lines, calibration={"max_depth": 0.5})
    assert m.calibration["max_depth"] == 0.5
    assert 1 - m.flux(GIANT).min() < 0.5


def test_calibration_is_reproducible():
    """realism.calibrate() started from the defaults returns DEFAULT_CALIBRATION for the
    calibrated constants (within 0.02 dex or depth), with a per-star RMS below 0.05."""
    best, rms = realism.calibrate()
    assert set(best) == set(realism.CALIBRATED)
    for key in realism.CALIBRATED:
        assert abs(best[key] - DEFAULT_CALIBRATION[key]) < 0.02, (key, best[key], DEFAULT_CALIBRATION[key])
    assert len(rms) == 2 and np.all(np.asarray(rms) < 0.05)


def test_cramer_rao_of_gaussian_line_centre():
    """One-parameter toy: the centre μ of a Gaussian absorption line 1 − d·exp(−(x−μ)²/2s²),
    sampled every Δx with noise σ. Analytically F = Σ (∂f/∂μ)²/σ² → d²√π/(2 s Δx σ²) (sum → integral),
    so σ_μ = σ √(2 s Δx / √π) / d. The Jacobian is taken by finite differences of the line."""
    d, s, dx, sigma, mu = 0.4, 0.8, 0.05, 0.01, 0.3
    x = np.arange(-20.0, 20.0, dx)

    def line(centre):
        return 1 - d * np.exp(-((x - centre) ** 2) / (2 * s**2))

    h = 1e-6
    jac = ((line(mu + h) - line(mu - h)) / (2 * h))[None, None, :]
    f = fisher_information(jac, np.full((1, x.size), sigma))
    analytic = sigma * np.sqrt(2 * s * dx / np.sqrt(np.pi)) / d
    np.testing.assert_allclose(cramer_rao_bound(f)[0, 0], analytic, rtol=1e-6)


def test_cramer_rao_with_known_labels():
    """Fixing correlated labels can only shrink the bound: with F = [[1, ρ], [ρ, 1]] the free bound on
    label 0 is 1/√(1−ρ²); with label 1 known it is 1."""
    rho = 0.8
    f = np.array([[[1.0, rho], [rho, 1.0]]])
    np.testing.assert_allclose(cramer_rao_bound(f)[0, 0], 1 / np.sqrt(1 - rho**2))
    np.testing.assert_allclose(cramer_rao_bound(f, free=[0]), [[1.0]])
    np.testing.assert_allclose(cramer_rao_bound(f, free=[1, 0])[0], [1 / np.sqrt(1 - rho**2)] * 2)
