"""How the cost of each stage grows with the survey: wall time and peak memory against size.

``benchmarks/scale.py`` measures the stages (simulate, cube, predict, notebook 07), each in a
fresh process, at several survey sizes and writes ``scale.json``; this module builds, reads and
writes that file, fits the slope of log time against log size, and formats the table, the
summary line and the caption (machine and date, as recorded). ``plots.scaling`` draws it.

``scale.json``::

    {"machine": {"platform": "Linux-…-x86_64", "cpus": 2, "python": "3.11.9"},
     "date": "2026-12-06 01:00 UTC", "members": 10,
     "runs": [{"stage": "simulate", "profile": "full", "spectra": 63840,
               "seconds": 20.9, "peak_rss_mb": 712.0}, …],
     "skipped": {"notebook 07": "why it was not measured"}}

``seconds`` is the stage's own work (interpreter start and imports excluded); ``peak_rss_mb`` is
the peak resident memory of the largest single process of the stage (its workers included).
"""

import json
import math
import os
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from .files import atomic_path

STAGES = ("simulate", "cube", "predict", "notebook 07")
"""The measured stages, in the order of the survey's path."""

RUN_KEYS = ("stage", "profile", "spectra", "seconds", "peak_rss_mb")


class CostsError(ValueError):
    """A ``scale.json`` that cannot be read: the message names the file and what is wrong."""


def machine():
    """The machine that measures: platform string, CPU count and Python version."""
    return {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version()}


def new_results(members, date=None):
    """An empty results dict for ``members`` ensemble members, stamped with this machine and now (UTC)."""
    date = date or datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return {"machine": machine(), "date": date, "members": int(members), "runs": [], "skipped": {}}


def add_run(results, stage, profile, spectra, seconds, peak_rss_mb):
    """Append one measurement (seconds of work, peak RSS in MB) of ``stage`` on ``spectra`` spectra."""
    results["runs"].append({"stage": stage, "profile": profile, "spectra": int(spectra),
                            "seconds": float(seconds), "peak_rss_mb": float(peak_rss_mb)})


def by_stage(results):
    """``{stage: (spectra, seconds, peak_rss_mb)}``, arrays sorted by size; ``STAGES`` first, in order."""
    names = [s for s in STAGES if any(r["stage"] == s for r in results["runs"])]
    names += sorted({r["stage"] for r in results["runs"]} - set(names))
    out = {}
    for name in names:
        runs = sorted((r for r in results["runs"] if r["stage"] == name), key=lambda r: r["spectra"])
        out[name] = tuple(np.array([r[k] for r in runs], float) for k in ("spectra", "seconds", "peak_rss_mb"))
    return out


def log_slope(spectra, seconds):
    """Slope of log(time) against log(size) (least squares; 1 = linear); NaN with fewer than two sizes."""
    spectra, seconds = np.asarray(spectra, float), np.asarray(seconds, float)
    if np.unique(spectra).size < 2:
        return math.nan
    return float(np.polyfit(np.log(spectra), np.log(seconds), 1)[0])


def rss_ratio(spectra, peak_rss_mb):
    """Peak memory at the largest size over that at the second largest; NaN with fewer than two sizes."""
    order = np.argsort(np.asarray(spectra, float), kind="stable")
    if order.size < 2:
        return math.nan
    rss = np.asarray(peak_rss_mb, float)[order]
    return float(rss[-1] / rss[-2])


def stage_fits(results):
    """``{stage: {"slope": …, "rss_ratio": …}}`` (see ``log_slope``, ``rss_ratio``)."""
    return {name: {"slope": log_slope(n, t), "rss_ratio": rss_ratio(n, m)}
            for name, (n, t, m) in by_stage(results).items()}


def summary(results):
    """The benchmark's headline numbers: the largest slope of any stage, the predict stage's seconds
    at the largest size, the largest peak memory (MB) of any run, and the simulation's spectra per
    second at the largest size. NaN where the run is missing."""
    stages = by_stage(results)
    slopes = [f["slope"] for f in stage_fits(results).values() if not math.isnan(f["slope"])]
    largest = {name: (n[-1], t[-1]) for name, (n, t, _) in stages.items()}
    predict = largest.get("predict", (math.nan, math.nan))
    sim_n, sim_t = largest.get("simulate", (math.nan, math.nan))
    rss = [r["peak_rss_mb"] for r in results["runs"]]
    return {"scale_slope_max": max(slopes) if slopes else math.nan, "predict_518k_s": predict[1],
            "peak_rss_mb": max(rss) if rss else math.nan, "sim_spectra_per_s": sim_n / sim_t}


def summary_line(results):
    """``scale_slope_max=<x> predict_518k_s=<s> peak_rss_mb=<m> sim_spectra_per_s=<n>``."""
    s = summary(results)
    return (f"scale_slope_max={s['scale_slope_max']:.2f} predict_518k_s={s['predict_518k_s']:.1f} "
            f"peak_rss_mb={s['peak_rss_mb']:.0f} sim_spectra_per_s={s['sim_spectra_per_s']:.0f}")


def _cell(value, fmt, width):
    return f"{'–':>{width}}" if value is None or math.isnan(value) else f"{value:>{width}{fmt}}"


def table(results):
    """The results as text: one row per stage, seconds and peak RSS (MB) per size, slope, RSS ratio."""
    stages = by_stage(results)
    sizes = sorted({r["spectra"] for r in results["runs"]})
    fits = stage_fits(results)
    width = max([len("stage")] + [len(s) for s in stages])
    head = f"{'stage':<{width}}" + "".join(f"{f'{n:,} s':>12}{'RSS MB':>9}" for n in sizes) \
        + f"{'slope':>8}{'RSS ratio':>11}"
    lines = [head]
    for name, (n, t, m) in stages.items():
        cells = ""
        for size in sizes:
            k = np.flatnonzero(n == size)
            cells += _cell(t[k[0]] if k.size else None, ",.1f", 12) + _cell(m[k[0]] if k.size else None, ",.0f", 9)
        lines.append(f"{name:<{width}}{cells}{_cell(fits[name]['slope'], '.2f', 8)}"
                     f"{_cell(fits[name]['rss_ratio'], '.2f', 11)}")
    if len(sizes) >= 2:
        lines.append(f"(slope: of log time against log size, 1 = linear; RSS ratio: peak at {sizes[-1]:,} "
                     f"over peak at {sizes[-2]:,})")
    for name, why in results.get("skipped", {}).items():
        lines.append(f"{name}: not measured ({why})")
    return "\n".join(lines)


def caption(results):
    """Where and when the results were measured, and with how many members, for a figure's caption."""
    m = results["machine"]
    return (f"Measured by benchmarks/scale.py on {m['platform']} ({m['cpus']} CPUs, Python {m['python']}), "
            f"{results['date']}; predict with a {results['members']}-member ensemble; each stage in a fresh process.")


def write_results(results, path):
    """Write ``results`` as JSON to ``path``, atomically (never half written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=2) + "\n")


def read_results(path):
    """Read a ``scale.json``; CostsError naming the file and the missing or wrong entry."""
    path = Path(path)
    try:
        results = json.loads(path.read_text())
    except FileNotFoundError:
        raise CostsError(f"{path}: no such file; make it with `python benchmarks/scale.py`") from None
    except json.JSONDecodeError as err:
        raise CostsError(f"{path}: not JSON ({err})") from None
    for key in ("machine", "date", "members", "runs"):
        if key not in results:
            raise CostsError(f"{path}: no entry {key!r} (is it benchmarks/scale.py's scale.json?)")
    for i, run in enumerate(results["runs"]):
        missing = [k for k in RUN_KEYS if k not in run]
        if missing:
            raise CostsError(f"{path}: runs[{i}] has no {', '.join(missing)}")
        if not (run["spectra"] > 0 and run["seconds"] > 0):
            raise CostsError(f"{path}: runs[{i}] ({run['stage']}, {run['profile']}) needs spectra > 0 and "
                             f"seconds > 0, got {run['spectra']} and {run['seconds']}")
    results.setdefault("skipped", {})
    return results
