"""Shared fixtures.

``smoke_survey`` simulates the ``smoke`` profile once per test session (a few seconds)
into a temporary folder; tests must treat it as read-only (copy it to modify it).
The notebook smoke test in test_notebooks.py writes its own survey.
"""

import pytest

from ravecnn_utils.simulation.simulate import simulate_survey

SMOKE_SEED = 2020


@pytest.fixture(scope="session")
def smoke_survey(tmp_path_factory):
    """Folder of a ``smoke`` survey simulated with seed 2020 (one process, no progress bar)."""
    out = tmp_path_factory.mktemp("survey") / "smoke"
    simulate_survey(out, profile="smoke", seed=SMOKE_SEED, processes=1, progress=False)
    return out
