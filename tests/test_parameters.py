"""Parameters are checked where they enter (ravecnn_utils.book.parameters): wrong types, values
out of range and misspelled names stop a notebook with a message naming the parameter, through the
project's runner and through raw papermill."""

import jupytext
import papermill
import pytest

from ravecnn_utils.book import notebooks as nbrun
from ravecnn_utils.book.parameters import ParameterError, check_parameters, parameters_table


def defaults(stem):
    """The namespace a notebook has right after its parameters cell, with the defaults."""
    namespace = {"np": object(), "LABELS": ("teff",), "In": [], "Out": {}, "_i1": "source"}
    exec("\n".join(f"{name} = {default}" for name, default, _ in parameters_table(nbrun.NOTEBOOKS_DIR /
                                                                                  f"{stem}.py")), namespace)
    namespace.pop("__builtins__")
    return namespace


@pytest.mark.parametrize("path", nbrun.notebook_paths(), ids=lambda p: p.stem)
def test_every_notebook_checks_its_parameters_right_after_the_cell(path):
    nb = jupytext.read(path)
    index = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    following = [c for c in nb.cells[index + 1:] if c.cell_type == "code"][0]
    assert following.source.strip() == f'check_parameters(globals(), "{path.stem}")'
    assert check_parameters(defaults(path.stem), path.stem) is None  # the defaults pass, silently


@pytest.mark.parametrize("stem, name, value, message", [
    ("04_training", "epochs", "three", "epochs must be a positive integer, got 'three'"),
    ("04_training", "n_models", 0, "n_models must be a positive integer, got 0"),
    ("04_training", "drop_worst", 1.5, r"drop_worst must be a number in \[0, 1\)"),
    ("04_training", "networks", "slides", "networks must be a list of distinct names among"),
    ("04_training", "networks", ["slides", "cnn"], "networks must be a list of distinct names among"),
    ("04_training", "learning_rate", True, "learning_rate must be a positive number, got True"),
    ("02_crossmatch", "split_fractions", [0.8, 0.1], "split_fractions must be three positive fractions"),
    ("02_crossmatch", "repeats", "all", r"repeats must be one of \['keep', 'best'\]"),
    ("02_crossmatch", "label_error_max", {"vsini": 1}, "label_error_max must be a dict label"),
    ("01_data", "data_source", "simulated", r"data_source must be one of \['sim', 'real'\]"),
    ("06_validation", "snr_edges", [10, 5, 80], "snr_edges must be an increasing list"),
    ("06_validation", "peers", ["ridge", "svm"], "peers must be a list of distinct names among"),
    ("07_idr6_giants", "use_dask", "yes", "use_dask must be True or False, got 'yes'"),
    ("05_gradients", "survey_dir", 3, "survey_dir must be a non-empty string, got 3"),
])
def test_a_wrong_value_names_the_parameter(stem, name, value, message):
    namespace = defaults(stem) | {name: value}
    with pytest.raises(ParameterError, match=message):
        check_parameters(namespace, stem)


def test_a_misspelled_parameter_is_refused_with_a_suggestion():
    namespace = defaults("04_training") | {"epoch": 3}
    with pytest.raises(ParameterError, match=r"no parameter\(s\) epoch \(did you mean epochs\?\)"):
        check_parameters(namespace, "04_training")


def test_one_catalogue_name_is_a_list_of_one():
    namespace = defaults("06_validation") | {"rave_catalogue": "dr6_obsdata.csv"}
    check_parameters(namespace, "06_validation")
    assert namespace["rave_catalogue"] == ["dr6_obsdata.csv"]


def test_ints_where_a_float_is_the_default_and_none_where_allowed():
    namespace = defaults("02_crossmatch") | {"match_radius_arcsec": 2, "apogee_snr_min": None,
                                             "starflag_bad_bits": [0, 3], "label_error_max": {"teff": 100}}
    check_parameters(namespace, "02_crossmatch")


@pytest.mark.slow
def test_the_runner_stops_on_a_wrong_type(tmp_path):
    with pytest.raises(nbrun.NotebookExecutionError, match="dropout must be a number in"):
        nbrun.run_all(profile="smoke", out_dir=tmp_path, only=["03_architecture"], overrides={"dropout": "high"})


@pytest.mark.slow
def test_raw_papermill_stops_on_a_misspelled_parameter(tmp_path):
    """papermill only warns about an unknown parameter and exits 0 with the defaults; the check cell
    turns that into an error naming it."""
    source = tmp_path / "03.ipynb"
    jupytext.write(jupytext.read(nbrun.NOTEBOOKS_DIR / "03_architecture.py"), source)
    with pytest.raises(papermill.PapermillExecutionError, match=r"no parameter\(s\) dropuot \(did you mean dropout\?\)"):
        papermill.execute_notebook(str(source), str(tmp_path / "out.ipynb"), parameters={"dropuot": 0.3},
                                   kernel_name="python3", cwd=str(nbrun.NOTEBOOKS_DIR), progress_bar=False)


@pytest.mark.parametrize("path", nbrun.notebook_paths(), ids=lambda p: p.stem)
def test_papermill_reads_every_parameter_of_the_cell(path, tmp_path, caplog):
    """No comment in a parameters cell may trip papermill's parser (it would then warn that a
    correct parameter is unknown)."""
    ipynb = tmp_path / f"{path.stem}.ipynb"
    jupytext.write(jupytext.read(path), ipynb)
    found = papermill.inspect_notebook(str(ipynb))
    assert list(found) == [name for name, _, _ in parameters_table(path)]
    assert "Unable to parse" not in caplog.text


@pytest.mark.parametrize("profile", ["smoke", "full", "rave"])
def test_every_profiles_parameters_pass_the_checks(profile):
    """Each book profile's parameters (notebooks/profiles.yml) pass every notebook's checks, and a
    profile that names a simulated survey profile (sim_profile) reads that survey's folder
    (data/sim/<sim_profile>) in every notebook that takes survey_dir."""
    from ravecnn_utils.simulation.simulate import PROFILES

    params = nbrun.load_profile(profile)
    for stem, values in params.items():
        namespace = defaults(stem) | values
        assert check_parameters(namespace, stem) is None, stem
    sim_profile = defaults("01_data")["sim_profile"] if "sim_profile" not in params["01_data"] \
        else params["01_data"]["sim_profile"]
    assert sim_profile in PROFILES
    for stem in params:
        survey_dir = (defaults(stem) | params[stem]).get("survey_dir")
        assert survey_dir is None or survey_dir == f"../data/sim/{sim_profile}", stem
