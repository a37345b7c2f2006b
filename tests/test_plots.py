"""The book's figures for people: architecture layout from the model, colour scales, sky map,
spikes in spectra, the 1:1 grid's colourbar, the Cramér–Rao figure's meaning and grids of panels
that fit the page."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import matplotlib  # noqa: E402

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.colors import LogNorm  # noqa: E402
from matplotlib.patches import FancyBboxPatch  # noqa: E402

from ravecnn_utils import model, plots, plots_model, plots_validation  # noqa: E402
from ravecnn_utils.labels import CORE_LABELS  # noqa: E402

pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)


@pytest.fixture(scope="module")
def two_branch():
    """A small paper network with the photometry branch (60 px, 4 labels, 3 magnitudes)."""
    return model.paper_cnn(n_pixels=60, labels=CORE_LABELS, photometry=True, n_photometry=3)


def test_layout_one_box_per_layer_and_the_merge_has_two_arrows(two_branch):
    boxes, edges = plots_model.architecture_layout(two_branch)
    assert [b["name"] for b in boxes] == [layer.name for layer in two_branch.layers]
    into = {name: [src for src, dst in edges if dst == name] for name in (b["name"] for b in boxes)}
    assert sorted(into["concat"]) == ["dense27_lrelu", "dense32_lrelu"]
    assert [n for n, srcs in into.items() if len(srcs) > 1] == ["concat"]
    where = {b["name"]: (b["column"], b["row"]) for b in boxes}
    # the photometry branch is a column of its own that ends just above the merge
    assert {where[n][0] for n in ("photometry", "dense27", "dense27_lrelu")} == {1}
    assert where["dense27_lrelu"][1] == where["concat"][1] - 1
    assert where["spectrum"] == (0, 0) and where["labels"][0] == 0
    conv = next(b for b in boxes if b["name"] == "conv1")
    assert "8 filters, kernel 10" in conv["title"] and "51 × 8" in conv["detail"]


def test_layout_of_a_single_branch_network_is_one_column():
    slides = model.slides_cnn(n_pixels=80)
    boxes, edges = plots_model.architecture_layout(slides)
    assert len(boxes) == len(slides.layers) and len(edges) == len(slides.layers) - 1
    assert {b["column"] for b in boxes} == {0}
    assert [b["row"] for b in boxes] == list(range(len(boxes)))


def test_figure_draws_every_box_legibly(two_branch):
    fig, boxes, edges = plots_model.architecture_figure(two_branch, "test")
    ax = fig.axes[0]
    assert sum(isinstance(p, FancyBboxPatch) for p in ax.patches) == len(two_branch.layers)
    arrows = [c for c in ax.get_children() if isinstance(c, matplotlib.text.Annotation)]
    assert len(arrows) == len(edges)
    assert min(t.get_fontsize() for t in ax.texts) >= 9
    plt.close(fig)


def test_colour_scale_is_one_map_per_meaning():
    snr = plots.colour_scale("snr")
    assert snr["cmap"] == plots.COLOUR_MAPS["snr"] != plots.COLOUR_MAPS["m_h"]
    assert isinstance(snr["norm"], LogNorm) and (snr["norm"].vmin, snr["norm"].vmax) == plots.COLOUR_RANGES["snr"]
    with pytest.raises(ValueError, match="teff"):
        plots.colour_scale("teff")


def test_sky_xy_puts_ra_increasing_to_the_left():
    x, y = plots.sky_xy([0, 30, 330, 180], [0, 45, -45, 0])
    assert x[0] == 0 and x[1] < 0 < x[2]         # 2h left of 0h, 22h right of it
    assert abs(abs(x[3]) - np.pi) < 1e-12         # 12h on the edge
    assert np.allclose(y, np.radians([0, 45, -45, 0]))
    fig = plt.figure()
    ax = plots.sky_map(fig, [10.0], [-30.0])
    labels = [t.get_text() for t in ax.get_xticklabels()]
    assert labels[0] == "10h" and labels[len(labels) // 2] == "0h" and labels[-1] == "14h"
    plt.close(fig)


def test_spikes_finds_bad_pixels_and_cosmic_rays():
    flux = np.ones(50)
    rel_error = np.full(50, 0.01)
    flux[10], rel_error[10] = 0.0, 10.0     # dead pixel
    flux[20] = 1.5                            # cosmic ray
    flux[30] = 0.5                            # an absorption line: neither
    bad, hits = plots.spikes(flux, rel_error)
    assert np.flatnonzero(bad).tolist() == [10] and np.flatnonzero(hits).tolist() == [20]
    fig, ax = plt.subplots()
    assert plots.spectrum_stack(ax, [(np.arange(50.0), flux, "star", rel_error)]) == (1, 1)
    plt.close(fig)


def test_one_to_one_grid_has_a_colourbar_and_skips_empty_labels():
    rng = np.random.default_rng(3)
    ref = rng.normal(size=(40, 3))
    est = ref + rng.normal(0, 0.1, (40, 3))
    est[:, 2] = np.nan
    fig = plots_validation.one_to_one_grid(ref, est, ["teff", "logg", "m_h"], rng.uniform(10, 100, 40), "APOGEE")
    visible = [ax for ax in fig.axes if ax.get_visible() and ax.get_label() != "<colorbar>"]
    assert len(visible) == 2
    assert any(ax.get_label() == "<colorbar>" and ax.get_ylabel() == plots.COLOUR_LABELS["snr"] for ax in fig.axes)
    plt.close(fig)


def test_bound_figure_says_what_the_bound_is():
    rng = np.random.default_rng(4)
    snr = rng.uniform(10, 200, 300)
    bound = np.column_stack([100 / snr, 1 / snr])
    residuals = {"net": rng.normal(size=(300, 2)) * bound * 0.5}
    fig = plots_validation.residuals_and_bounds(snr, residuals, 2 * bound, bound, ["teff", "logg"],
                                                [10, 30, 80, 1000], "net")
    assert any(" ".join(t.get_text().split()) == plots_validation.BOUND_MEANING for t in fig.texts)
    assert "forward model" in plots_validation.BOUND_MEANING and "prior" in plots_validation.BOUND_MEANING
    names = [t.get_text() for t in fig.legends[0].get_texts()]
    assert any("Cramér–Rao bound, all nine" in n for n in names) and any("robust scatter, net" in n for n in names)
    plt.close(fig)


def test_panel_grid_fits_the_page_and_switches_off_spare_cells():
    fig, axes = plots.panel_grid(7, 3, 2.4)
    assert len(axes) == 7
    assert tuple(fig.get_size_inches()) == (plots.PAGE_WIDTH, 3 * 2.4)
    assert [ax.axison for ax in fig.axes] == [True] * 7 + [False] * 2
    plt.close(fig)
    fig, axes = plots.panel_grid(1, 2, 3.0)
    assert len(axes) == 1 and len(fig.axes) == 1
    plt.close(fig)


def test_legend_above_takes_the_panel_with_most_entries_and_leaves_the_panels_free():
    fig, axes = plots.panel_grid(2, 2, 3.0)
    axes[0].plot([0, 1], label="a")
    for name in "abc":
        axes[1].plot([0, 1], label=name)
    legend = plots.legend_above(fig, axes, 3)
    assert [t.get_text() for t in legend.get_texts()] == ["a", "b", "c"]
    assert all(ax.get_legend() is None for ax in axes)
    plt.close(fig)
