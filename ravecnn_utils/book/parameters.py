"""Notebook parameters, checked where they enter: one call right after each ``parameters`` cell.

    check_parameters(globals(), "04_training")

The declared parameters are read from the notebook's own ``parameters`` cell (names, defaults as
written, the comment after each). A value of the wrong type or out of range stops the notebook
with a message naming the parameter (``epochs must be a positive integer, got 'three'``), and
so does a name papermill injected that the notebook does not declare (papermill itself only
warns about it and runs on with the default). Types follow the defaults; ``RULES`` adds ranges
and allowed values, and the types of parameters whose default is None.
"""

from __future__ import annotations

import ast
import difflib
from numbers import Integral, Real
from pathlib import Path

from ..labels import LABELS
from .notebooks import NOTEBOOKS_DIR, parameters_cell, read_notebook

PLAIN = (str, int, float, bool, list, tuple, dict, type(None))
"""Types a papermill parameter can have (YAML values)."""

IPYTHON_NAMES = {"In", "Out", "get_ipython", "exit", "quit"}


class ParameterError(ValueError):
    """A notebook parameter with a wrong type or value, or an unknown one."""


def parameters_table(path) -> list[tuple[str, str, str]]:
    """(name, default as written, description) for each assignment of the notebook's
    ``parameters`` cell. ValueError naming the notebook if it has none."""
    cell = parameters_cell(read_notebook(path))
    if cell is None or cell.cell_type != "code":
        raise ValueError(f"{Path(path).name} has no code cell tagged 'parameters'")
    source = cell.source
    lines = source.splitlines()
    rows = []
    body = ast.parse(source).body
    for k, node in enumerate(body):
        if not isinstance(node, (ast.Assign, ast.AnnAssign)):
            continue
        target = node.targets[0] if isinstance(node, ast.Assign) else node.target
        default = ast.get_source_segment(source, node.value) if node.value is not None else ""
        comment = []
        first = lines[node.end_lineno - 1]
        if "#" in first[len(first.split("#")[0]):]:
            comment.append(first.split("#", 1)[1].strip())
        stop = body[k + 1].lineno - 1 if k + 1 < len(body) else len(lines)
        for line in lines[node.end_lineno:stop]:       # comment-only lines continue the description
            if line.strip().startswith("#"):
                comment.append(line.strip().lstrip("#").strip())
        rows.append((ast.unparse(target), " ".join(default.split()), " ".join(comment)))
    return rows


# ------------------------------------------------------------------ rules: each returns an error or None
def _is_int(v):
    return isinstance(v, Integral) and not isinstance(v, bool)


def _is_number(v):
    return isinstance(v, Real) and not isinstance(v, bool)


def positive_int(v):
    return None if _is_int(v) and v >= 1 else "a positive integer"


def non_negative_int(v):
    return None if _is_int(v) and v >= 0 else "a non-negative integer"


def positive_number(v):
    return None if _is_number(v) and v > 0 else "a positive number"


def number(v):
    return None if _is_number(v) else "a number"


def fraction_below_one(v):
    return None if _is_number(v) and 0 <= v < 1 else "a number in [0, 1)"


def fraction_strictly_between(v):
    return None if _is_number(v) and 0 < v < 1 else "a number in (0, 1)"


def one_of(*choices):
    def rule(v):
        return None if v in choices else f"one of {list(choices)}"
    return rule


def optional(rule):
    def checked(v):
        return None if v is None else rule(v)
    return checked


def text(v):
    return None if isinstance(v, str) and v.strip() else "a non-empty string"


def names_from(choices):
    """A list of distinct names among ``choices()`` (evaluated when checked)."""
    def rule(v):
        known = choices()
        if not isinstance(v, (list, tuple)) or not v or len(set(v)) != len(v) or not set(v) <= set(known):
            return f"a list of distinct names among {sorted(known)}"
        return None
    return rule


def name_from(choices):
    def rule(v):
        known = choices()
        return None if v in known else f"one of {sorted(known)}"
    return rule


def text_list(v):
    """A list of strings (a single string is accepted as a list of one, see ``LIST_OR_TEXT``)."""
    ok = isinstance(v, (list, tuple)) and v and all(isinstance(x, str) and x.strip() for x in v)
    return None if ok else "a list of file names (or one name)"


def int_list(v):
    return None if isinstance(v, (list, tuple)) and all(_is_int(x) and x >= 0 for x in v) else \
        "a list of non-negative integers"


def increasing_numbers(v):
    ok = isinstance(v, (list, tuple)) and len(v) >= 2 and all(_is_number(x) for x in v) \
        and all(a < b for a, b in zip(v, v[1:]))
    return None if ok else "an increasing list of at least two numbers"


def split_fractions(v):
    ok = isinstance(v, (list, tuple)) and len(v) == 3 and all(_is_number(x) and x > 0 for x in v) \
        and abs(sum(v) - 1) < 1e-9
    return None if ok else "three positive fractions (train, validation, test) summing to 1"


def error_limits(v):
    ok = isinstance(v, dict) and set(v) <= set(LABELS) and all(_is_number(x) and x > 0 for x in v.values())
    return None if ok else f"a dict label -> largest error (K, dex) with labels among {list(LABELS)}"


def _labels():
    return LABELS


def _sim_profiles():
    from ..simulation.simulate import PROFILES  # astropy: imported only for the notebook that simulates
    return PROFILES


def _networks():
    from ..model import NETWORKS  # Keras: imported only for the notebooks that name networks
    return NETWORKS


def _peers():
    from ..baselines import BASELINES  # scikit-learn: imported only for the notebook that names peers
    return BASELINES


RULES = {
    "data_source": one_of("sim", "real"), "sim_profile": name_from(_sim_profiles), "repeats": one_of("keep", "best"),
    "survey_dir": text, "products_dir": text, "rave_dir": optional(text), "allstar_path": optional(text),
    "benchmark_path": optional(text), "rave_catalogue": optional(text_list),
    "allstar_release": optional(one_of("dr16", "dr17")),
    "seed": non_negative_int, "split_seed": non_negative_int,
    "n_real_fits": non_negative_int, "n_real": non_negative_int,
    "processes": positive_int, "chunk": positive_int, "n_models": positive_int, "epochs": positive_int,
    "patience": positive_int, "batch_size": positive_int, "n_spectra": positive_int, "top_n": positive_int,
    "n_repeat_stars": positive_int, "dask_workers": positive_int, "slides_pixels": positive_int,
    "paper_pixels": positive_int,
    "match_radius_arcsec": positive_number, "learning_rate": positive_number,
    "apogee_snr_min": optional(number), "rave_snr_min": optional(number), "snr_min": number,
    "logg_max": number, "teff_max": positive_number,
    "dropout": fraction_below_one, "drop_worst": fraction_below_one, "false_alarm_rate": fraction_strictly_between,
    "starflag_bad_bits": optional(int_list), "aspcap_star_bad_bit": optional(non_negative_int),
    "label_error_max": optional(error_limits), "split_fractions": split_fractions,
    "snr_edges": increasing_numbers,
    "slides_labels": optional(names_from(_labels)), "paper_labels": optional(names_from(_labels)),
    "networks": names_from(_networks), "network": name_from(_networks), "main_network": name_from(_networks),
    "peers": names_from(_peers), "scale_results": optional(text),
}
"""Ranges, allowed values and types beyond the defaults', by parameter name (any notebook)."""

LIST_OR_TEXT = {"rave_catalogue"}
"""List parameters for which one string means a list of that one string."""


def _literal(written):
    """The value of a default as written in a parameters cell (None if it is not a literal)."""
    try:
        return ast.literal_eval(written)
    except (ValueError, SyntaxError):
        return None


def _by_default(default):
    """The rule implied by a default value: its type (an int where a float is the default is fine)."""
    if isinstance(default, bool):
        return lambda v: None if isinstance(v, bool) else "True or False"
    if isinstance(default, float):
        return number
    if isinstance(default, int):
        return lambda v: None if _is_int(v) else "an integer"
    if isinstance(default, str):
        return lambda v: None if isinstance(v, str) else "a string"
    if isinstance(default, (list, tuple)):
        return lambda v: None if isinstance(v, (list, tuple)) else "a list"
    if isinstance(default, dict):
        return lambda v: None if isinstance(v, dict) else "a dict"
    return lambda v: None


def check_parameters(namespace, notebook, notebooks_dir=NOTEBOOKS_DIR):
    """Check the parameters of ``notebook`` (stem, e.g. ``"04_training"``) in ``namespace``
    (the notebook's ``globals()``) against its parameters cell; raise ParameterError naming the
    first wrong one, or the names papermill injected that the notebook does not declare.

    A single string where ``LIST_OR_TEXT`` expects a list is turned into a list of one in place.
    Returns None (so that the notebook cell shows nothing).
    """
    path = Path(notebooks_dir) / f"{notebook}.py"
    declared = {name: default for name, default, _ in parameters_table(path)}
    unknown = sorted(name for name, value in namespace.items()
                     if isinstance(value, PLAIN) and not name.startswith("_") and not name.isupper()
                     and name not in IPYTHON_NAMES and name not in declared)
    if unknown:
        hints = [f"{name} (did you mean {close[0]}?)" if (close := difflib.get_close_matches(name, declared, 1))
                 else name for name in unknown]
        raise ParameterError(f"notebook {notebook} has no parameter(s) {', '.join(hints)}; its parameters are "
                             f"{', '.join(declared)}")
    for name, written in declared.items():
        if name not in namespace:
            raise ParameterError(f"notebook {notebook}: parameter {name} is not defined")
        value = namespace[name]
        if name in LIST_OR_TEXT and isinstance(value, str):
            value = namespace[name] = [value]
        rule = RULES.get(name) or _by_default(_literal(written))
        expected = rule(value)
        if expected:
            raise ParameterError(f"notebook {notebook}: {name} must be {expected}, got {value!r}")
