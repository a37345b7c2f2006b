"""The notebooks and their papermill runner (ravecnn_utils.book.notebooks).

The smoke test executes every notebook, in order, with the ``smoke`` profile, in this one
pytest process; the other tests use tiny throwaway notebooks and are fast.
"""

import json
import os
import textwrap

import jupytext
import nbformat
import pytest
import yaml
from jupyter_client.kernelspec import KernelSpecManager

from ravecnn_utils.book import notebooks as nbrun

NOTEBOOKS = nbrun.notebook_paths()


def _error_outputs(ipynb):
    nb = nbformat.read(ipynb, as_version=4)
    return [
        f"cell {i}: {out.get('ename')}: {out.get('evalue')}"
        for i, cell in enumerate(nb.cells)
        for out in cell.get("outputs", [])
        if out.get("output_type") == "error"
    ]


# --- the project's notebooks --------------------------------------------------------------

def test_there_are_notebooks():
    assert NOTEBOOKS, f"no notebooks matching {nbrun.NOTEBOOK_GLOB} in {nbrun.NOTEBOOKS_DIR}"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_has_parameters_cell(path):
    assert nbrun.has_parameters_cell(path), f"{path.name} has no code cell tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_is_stored_as_jupyterlab_saves_it(path):
    """Saving a notebook in JupyterLab (jupytext, with the project's kernel) must not be a diff:
    the file is what jupytext writes, and its kernelspec is the installed python3 kernel's."""
    text = path.read_text(encoding="utf-8")
    assert jupytext.writes(jupytext.read(path), fmt="py:percent") == text, \
        f"{path.name}: not in the form jupytext writes; run jupytext --to py:percent on it"
    spec = KernelSpecManager().get_kernel_spec("python3")
    kernelspec = jupytext.read(path).metadata["kernelspec"]
    assert kernelspec == {"display_name": spec.display_name, "language": spec.language, "name": "python3"}


@pytest.mark.parametrize("profile", ["smoke", "full", "rave"])
def test_profiles_list_every_notebook(profile):
    listed = set(nbrun.load_profile(profile))
    assert listed == {p.stem for p in NOTEBOOKS}


@pytest.fixture(scope="session")
def smoke_dirs(tmp_path_factory):
    """Session-wide scratch folders for the smoke run: the survey and the executed notebooks."""
    root = tmp_path_factory.mktemp("smoke")
    return {"survey": root / "sim", "products": root / "products", "executed": root / "executed"}


@pytest.mark.slow
def test_smoke_profile_executes_every_notebook(smoke_dirs):
    assert NOTEBOOKS
    declared = {name for p in NOTEBOOKS for name in nbrun.parameter_names(p)}
    overrides = {"survey_dir": str(smoke_dirs["survey"])}
    if "products_dir" in declared:  # keep the repository's data/products untouched
        overrides["products_dir"] = str(smoke_dirs["products"])
    executed = nbrun.run_all(
        "smoke", smoke_dirs["executed"], overrides=overrides, progress_bar=False
    )
    assert [p.name for p in executed] == [f"{p.stem}.ipynb" for p in NOTEBOOKS]
    for ipynb in executed:
        assert ipynb.exists()
        assert _error_outputs(ipynb) == [], ipynb.name


# --- the runner, on tiny throwaway notebooks -----------------------------------------------

GOOD = """\
# %% [markdown]
# # A tiny notebook

# %% tags=["parameters"]
x = 1
label: str = "a"

# %%
y = x + 1
print(label, y)
"""

BAD = """\
# %% tags=["parameters"]
x = 1

# %%
raise ValueError("boom")
"""


@pytest.fixture
def tiny(tmp_path):
    """A notebooks folder with two tiny notebooks and a profiles file."""
    nbdir = tmp_path / "notebooks"
    nbdir.mkdir()
    (nbdir / "01_good.py").write_text(GOOD)
    (nbdir / "02_bad.py").write_text(BAD)
    (nbdir / "helper.py").write_text("z = 0\n")  # not numbered: not a notebook
    profiles = nbdir / "profiles.yml"
    profiles.write_text(textwrap.dedent("""\
        smoke:
          01_good: {x: 41}
          02_bad: {}
        full:
          01_good: {}
          02_bad:
    """))
    return nbdir, profiles


def test_load_profile(tiny):
    _, profiles = tiny
    assert nbrun.load_profile("smoke", profiles) == {"01_good": {"x": 41}, "02_bad": {}}
    assert nbrun.load_profile("full", profiles) == {"01_good": {}, "02_bad": {}}


def test_unknown_profile_names_it_and_lists_known(tiny):
    _, profiles = tiny
    with pytest.raises(ValueError, match=r"'nope'.*known profiles: full, smoke"):
        nbrun.load_profile("nope", profiles)


def test_repository_profiles_file_parses():
    assert {"smoke", "full"} <= set(yaml.safe_load(nbrun.PROFILES_FILE.read_text()))


def test_notebook_paths_sorted_and_numbered_only(tiny):
    nbdir, _ = tiny
    assert [p.name for p in nbrun.notebook_paths(nbdir)] == ["01_good.py", "02_bad.py"]


def test_parameters_cell_detection(tiny, tmp_path):
    nbdir, _ = tiny
    assert nbrun.has_parameters_cell(nbdir / "01_good.py")
    assert nbrun.parameter_names(nbdir / "01_good.py") == ["x", "label"]
    plain = tmp_path / "plain.py"
    plain.write_text("# %%\nx = 1\n")
    assert not nbrun.has_parameters_cell(plain)
    assert nbrun.parameter_names(plain) == []


def test_execute_injects_parameters_atomically(tiny, tmp_path):
    nbdir, _ = tiny
    out = tmp_path / "out"
    result = nbrun.execute_notebook(nbdir / "01_good.py", out, {"x": 41}, progress_bar=False)
    assert result == out / "01_good.ipynb"
    assert sorted(p.name for p in out.iterdir()) == ["01_good.ipynb"]  # no temporary left
    text = json.dumps(nbformat.read(result, as_version=4).cells[-1]["outputs"])
    assert "a 42" in text


def test_failing_notebook_leaves_no_output_and_names_it(tiny, tmp_path):
    nbdir, _ = tiny
    out = tmp_path / "out"
    out.mkdir()
    (out / "02_bad.ipynb").write_text("{}")  # a stale result from an earlier run
    with pytest.raises(nbrun.NotebookExecutionError, match=r"02_bad\.py.*ValueError: boom"):
        nbrun.execute_notebook(nbdir / "02_bad.py", out, {}, progress_bar=False)
    assert sorted(p.name for p in out.iterdir()) == ["02_bad.failed.ipynb"]
    assert _error_outputs(out / "02_bad.failed.ipynb")


def test_run_all_only_and_overrides(tiny, tmp_path):
    nbdir, profiles = tiny
    out = tmp_path / "out"
    done = nbrun.run_all(
        "smoke", out, only=["01"], overrides={"label": "b"},
        notebooks_dir=nbdir, profiles_path=profiles, progress_bar=False,
    )
    assert done == [out / "01_good.ipynb"]
    assert "b 42" in json.dumps(nbformat.read(done[0], as_version=4).cells[-1]["outputs"])


def test_run_all_stops_at_failing_notebook(tiny, tmp_path):
    nbdir, profiles = tiny
    with pytest.raises(nbrun.NotebookExecutionError, match="02_bad"):
        nbrun.run_all("full", tmp_path / "out", notebooks_dir=nbdir, profiles_path=profiles,
                      progress_bar=False)
    assert (tmp_path / "out" / "01_good.ipynb").exists()
    assert not (tmp_path / "out" / "02_bad.ipynb").exists()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"only": ["03_missing"]}, r"unknown notebook '03_missing'.*01_good, 02_bad"),
        ({"overrides": {"nope": 1}}, r"defined by none of the selected notebooks: nope"),
    ],
)
def test_run_all_rejects_unknown_names(tiny, tmp_path, kwargs, message):
    nbdir, profiles = tiny
    with pytest.raises(ValueError, match=message):
        nbrun.run_all("smoke", tmp_path / "out", notebooks_dir=nbdir, profiles_path=profiles, **kwargs)
    assert not (tmp_path / "out").exists()  # checked before anything runs


def test_run_all_rejects_profile_parameter_not_in_notebook(tiny, tmp_path):
    nbdir, profiles = tiny
    profiles.write_text("smoke:\n  01_good: {typo: 1}\n  02_bad: {}\n")
    with pytest.raises(ValueError, match=r"01_good: not in its parameters cell: typo"):
        nbrun.run_all("smoke", tmp_path / "out", notebooks_dir=nbdir, profiles_path=profiles)


def test_run_all_requires_every_notebook_in_profile(tiny, tmp_path):
    nbdir, profiles = tiny
    profiles.write_text("smoke:\n  01_good: {}\n")
    with pytest.raises(ValueError, match=r"no entry for notebook 02_bad"):
        nbrun.run_all("smoke", tmp_path / "out", notebooks_dir=nbdir, profiles_path=profiles)


def test_cli_parses_yaml_values(tiny, tmp_path, capsys):
    nbdir, profiles = tiny
    rc = nbrun.main([
        "--profile", "smoke", "--out", str(tmp_path / "out"), "--only", "01_good",
        "-p", "x", "10", "--notebooks-dir", str(nbdir), "--profiles", str(profiles),
    ])
    assert rc == 0
    nb = nbformat.read(tmp_path / "out" / "01_good.ipynb", as_version=4)
    assert "a 11" in json.dumps(nb.cells[-1]["outputs"])
    assert nbrun.main(["--profile", "nope", "--profiles", str(profiles),
                       "--notebooks-dir", str(nbdir)]) == 1
    assert "known profiles: full, smoke" in capsys.readouterr().err


@pytest.mark.slow
def test_real_data_path_runs_on_files_in_the_real_schemas(smoke_survey, tmp_path):
    """Notebooks 01 and 02 with data_source="real" read files laid out as the real releases
    (RAVE TAP tables as CSV / FITS / VOTable, a DR16 allStar with −9999) and say so."""
    from real_layout import write_real_layout

    params = write_real_layout(smoke_survey, tmp_path / "real")
    overrides = {"data_source": "real", "products_dir": str(tmp_path / "products"), **params}
    executed = nbrun.run_all("smoke", tmp_path / "executed", only=["01", "02"], overrides=overrides,
                             progress_bar=False)
    for ipynb in executed:
        assert _error_outputs(ipynb) == [], ipynb.name
    text = (tmp_path / "executed" / "02_crossmatch.ipynb").read_text()
    assert "real RAVE DR6 / APOGEE data" in text and "SIMULATED" not in text
    assert (tmp_path / "products" / "training_set.fits").is_file()


def test_clean_outputs_takes_stderr_off_the_page():
    """Every stderr output leaves the notebook; what is returned for the log keeps a progress
    bar's final state and real warnings, not TensorFlow's start-up lines; stdout stays."""
    nb = nbformat.v4.new_notebook()
    out = nbformat.v4.new_output
    nb.cells = [nbformat.v4.new_code_cell("x"), nbformat.v4.new_code_cell("y"), nbformat.v4.new_code_cell("z")]
    nb.cells[0].outputs = [
        out("stream", name="stderr", text="WARNING: All log messages before absl::InitializeLog() is called\n"),
        out("stream", name="stdout", text="result 42\n"),
        out("stream", name="stderr", text="\rpeers:   0%|   | 0/5"),
        out("stream", name="stderr", text="\rpeers: 100%|███| 5/5\n"),
        out("stream", name="stderr", text="UserWarning: something real\n"),
    ]
    nb.cells[1].outputs = [out("stream", name="stderr", text="I0000 port.cc:153] oneDNN custom operations are on.\n")]
    nb.cells[2].outputs = [out("stream", name="stdout", text="only stdout\n")]
    logged = nbrun.clean_outputs(nb)
    assert logged == [(0, "peers: 100%|███| 5/5\nUserWarning: something real\n")]
    assert [(o["name"], o["text"]) for o in nb.cells[0].outputs] == [("stdout", "result 42\n")]
    assert nb.cells[1].outputs == []
    assert [o["text"] for o in nb.cells[2].outputs] == ["only stdout\n"]


def test_kernels_start_without_progress_bars():
    """Inside the runner's context tqdm's default is off, and the variable is restored after."""
    before = os.environ.get("TQDM_DISABLE")
    with nbrun._quiet_progress():
        assert os.environ["TQDM_DISABLE"] == "1"
    assert os.environ.get("TQDM_DISABLE") == before
