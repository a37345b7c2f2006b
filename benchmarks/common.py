"""Helpers shared by the benchmark scripts (run as ``python benchmarks/<name>.py``)."""

import time


def timed(func, *args, **kwargs):
    """Call ``func`` and return (its result, wall-clock seconds)."""
    start = time.perf_counter()
    out = func(*args, **kwargs)
    return out, time.perf_counter() - start
