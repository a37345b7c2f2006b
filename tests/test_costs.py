"""The scaling benchmark's results (ravecnn_utils.costs, plots.scaling): slopes, the RSS ratio, the
table, the summary line, scale.json written and read back, and the figure."""

import json
import math

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from ravecnn_utils import costs, plots  # noqa: E402

SIZES = {"small": 1_000, "medium": 8_000, "large": 64_000}


def synthetic(exponents, rss=None, members=3):
    """Results in which stage ``s`` takes ``0.01 * n ** exponents[s]`` seconds on ``n`` spectra and its
    peak memory is ``rss[s](n)`` MB (default: 100 MB + 1 kB per spectrum)."""
    results = costs.new_results(members, date="2026-01-02 03:04 UTC")
    for stage, p in exponents.items():
        for profile, n in SIZES.items():
            mb = (rss or {}).get(stage, lambda n: 100 + n / 1000)(n)
            costs.add_run(results, stage, profile, n, 0.01 * n**p, mb)
    return results


def test_the_slope_of_log_time_against_log_size_is_the_exponent():
    results = synthetic({"simulate": 1.0, "cube": 1.3, "predict": 0.5})
    fits = costs.stage_fits(results)
    assert fits["simulate"]["slope"] == pytest.approx(1.0)
    assert fits["cube"]["slope"] == pytest.approx(1.3)
    assert fits["predict"]["slope"] == pytest.approx(0.5)
    assert costs.summary(results)["scale_slope_max"] == pytest.approx(1.3)


def test_slope_and_ratio_need_two_sizes():
    assert math.isnan(costs.log_slope([500, 500], [1.0, 2.0]))
    assert math.isnan(costs.rss_ratio([500], [100.0]))


def test_rss_ratio_is_the_largest_size_over_the_second_largest_in_any_order():
    assert costs.rss_ratio([64_000, 1_000, 8_000], [300.0, 50.0, 200.0]) == pytest.approx(1.5)


def test_the_summary_line_takes_the_largest_run_of_each_stage():
    results = synthetic({"simulate": 1.0, "predict": 1.0}, rss={"predict": lambda n: 900 + n / 1e4})
    line = costs.summary_line(results)
    assert line == (f"scale_slope_max=1.00 predict_518k_s={0.01 * 64_000:.1f} peak_rss_mb={900 + 6.4:.0f} "
                    f"sim_spectra_per_s={64_000 / (0.01 * 64_000):.0f}")


def test_the_table_has_a_row_per_stage_in_order_and_says_what_was_skipped():
    results = synthetic({"predict": 1.0, "simulate": 1.0})
    results["skipped"]["notebook 07"] = "no trained ensemble"
    lines = costs.table(results).splitlines()
    assert lines[0].split()[:3] == ["stage", "1,000", "s"]
    assert [line.split()[0] for line in lines[1:3]] == ["simulate", "predict"]  # costs.STAGES order
    assert "64,000 over peak at 8,000" in lines[3]
    assert lines[-1] == "notebook 07: not measured (no trained ensemble)"


def test_a_missing_run_is_a_dash_not_a_number():
    results = synthetic({"simulate": 1.0})
    costs.add_run(results, "cube", "small", 1_000, 2.0, 80.0)
    row = next(line for line in costs.table(results).splitlines() if line.startswith("cube"))
    assert row.split()[1:] == ["2.0", "80"] + ["–"] * 6


def test_results_are_written_and_read_back(tmp_path):
    results = synthetic({"simulate": 1.0, "cube": 1.0})
    path = tmp_path / "deeper" / "scale.json"
    costs.write_results(results, path)
    assert costs.read_results(path) == results
    assert [p.name for p in path.parent.iterdir()] == ["scale.json"]  # no temporary file left


@pytest.mark.parametrize("content, message", [
    ("{not json", "not JSON"),
    (json.dumps({"machine": {}, "date": "x", "runs": []}), "no entry 'members'"),
    (json.dumps({"machine": {}, "date": "x", "members": 1, "runs": [{"stage": "cube"}]}),
     r"runs\[0\] has no profile, spectra, seconds, peak_rss_mb"),
    (json.dumps({"machine": {}, "date": "x", "members": 1, "runs": [
        {"stage": "cube", "profile": "p", "spectra": 10, "seconds": 0, "peak_rss_mb": 1}]}), "seconds > 0"),
])
def test_a_bad_results_file_is_named(tmp_path, content, message):
    path = tmp_path / "scale.json"
    path.write_text(content)
    with pytest.raises(costs.CostsError, match=message) as err:
        costs.read_results(path)
    assert str(path) in str(err.value)


def test_a_missing_results_file_says_how_to_make_it(tmp_path):
    with pytest.raises(costs.CostsError, match="benchmarks/scale.py"):
        costs.read_results(tmp_path / "nowhere.json")


def test_the_caption_names_the_recorded_machine_and_date():
    results = synthetic({"simulate": 1.0})
    results["machine"] = {"platform": "Plan9-amd64", "cpus": 7, "python": "3.99"}
    text = costs.caption(results)
    assert "Plan9-amd64 (7 CPUs" in text and "2026-01-02 03:04 UTC" in text and "3-member" in text


def test_the_scaling_figure_draws_each_stage_its_guide_and_its_memory():
    results = synthetic({"simulate": 1.0, "cube": 1.2, "predict": 0.9, "notebook 07": 0.3})
    fig, axes = plt.subplots(1, 2)
    plots.scaling(results, axes)
    ax_time, ax_rss = axes
    assert ax_time.get_xscale() == ax_time.get_yscale() == "log"
    labels = [t.get_text() for t in ax_time.get_legend().get_texts()]
    assert labels[:2] == ["simulate (slope 1.00)", "cube (slope 1.20)"]
    # each stage: its measurements, then a slope-1 guide through its smallest run
    measured, guide = ax_time.lines[2], ax_time.lines[3]
    np.testing.assert_allclose(measured.get_xdata(), list(SIZES.values()))
    x, y = guide.get_xdata(), guide.get_ydata()
    assert y[1] / y[0] == pytest.approx(x[1] / x[0]) and y[0] == pytest.approx(measured.get_ydata()[0])
    np.testing.assert_allclose(ax_rss.lines[0].get_ydata(), [100 + n / 1000 for n in SIZES.values()])
    assert len(ax_rss.lines) == 4
    plt.close(fig)
