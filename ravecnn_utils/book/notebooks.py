"""Execute the numbered notebooks with papermill, one parameter set (profile) at a time.

The notebooks live in git as jupytext percent files ``notebooks/NN_name.py``. A profile is a
set of papermill parameters, not a code branch: ``notebooks/profiles.yml`` maps
profile -> notebook stem -> parameters (``{}`` means the notebook's own defaults). Every
notebook must be listed in every profile, so that a profile never silently falls back to
the defaults of another one.

Command line (from the repository root)::

    python -m ravecnn_utils.book --profile smoke --out book/executed
    python -m ravecnn_utils.book --profile smoke --only 01_data -p survey_dir /tmp/sim

``-p NAME VALUE`` values are parsed as YAML (``-p epochs 3`` is an int, ``-p seeds [1, 2]`` a
list). An override applies to every selected notebook whose parameters cell defines NAME.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

import jupytext
import nbformat
import papermill
import yaml

from ..paths import REPO_ROOT

NOTEBOOKS_DIR = REPO_ROOT / "notebooks"
PROFILES_FILE = NOTEBOOKS_DIR / "profiles.yml"
DEFAULT_OUT_DIR = REPO_ROOT / "book" / "executed"
NOTEBOOK_GLOB = "[0-9][0-9]_*.py"

__all__ = [
    "NotebookExecutionError",
    "load_profile",
    "notebook_paths",
    "has_parameters_cell",
    "parameters_cell",
    "read_notebook",
    "parameter_names",
    "clean_outputs",
    "execute_notebook",
    "run_all",
    "main",
]


class NotebookExecutionError(RuntimeError):
    """A notebook failed to execute; the message names it and where its failed copy is."""


def load_profile(profile: str, path: str | os.PathLike = PROFILES_FILE) -> dict[str, dict]:
    """Return ``{notebook stem: parameters}`` for ``profile`` from the profiles file."""
    path = Path(path)
    with open(path, encoding="utf-8") as f:
        profiles = yaml.safe_load(f) or {}
    if not isinstance(profiles, dict):
        raise ValueError(f"{path}: expected a mapping profile -> notebook -> parameters")
    if profile not in profiles:
        known = ", ".join(sorted(map(str, profiles))) or "(none)"
        raise ValueError(f"unknown profile {profile!r} in {path}; known profiles: {known}")
    entries = profiles[profile] or {}
    if not isinstance(entries, dict):
        raise ValueError(f"{path}: profile {profile!r} must map notebook stems to parameters")
    result = {}
    for stem, params in entries.items():
        params = params or {}
        if not isinstance(params, dict):
            raise ValueError(
                f"{path}: profile {profile!r}, notebook {stem!r}: parameters must be a mapping"
            )
        result[str(stem)] = dict(params)
    return result


def notebook_paths(notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR) -> list[Path]:
    """The numbered notebooks ``NN_*.py`` of ``notebooks_dir``, sorted (execution order)."""
    return sorted(p for p in Path(notebooks_dir).glob(NOTEBOOK_GLOB) if p.is_file())


def read_notebook(path):
    """The jupytext notebook at ``path`` as an nbformat notebook."""
    return jupytext.read(path)


def parameters_cell(nb):
    """The cell tagged ``parameters`` of a notebook, or None."""
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            return cell
    return None


def has_parameters_cell(path: str | os.PathLike) -> bool:
    """True if the notebook at ``path`` has a code cell tagged ``parameters``."""
    cell = parameters_cell(read_notebook(path))
    return cell is not None and cell.cell_type == "code"


def parameter_names(path: str | os.PathLike) -> list[str]:
    """The names the ``parameters`` cell of the notebook at ``path`` assigns, in order."""
    cell = parameters_cell(read_notebook(path))
    if cell is None:
        return []
    names: list[str] = []
    for node in ast.parse(cell.source).body:
        targets = []
        if isinstance(node, ast.Assign):
            targets = node.targets
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for t in ast.walk(target):
                if isinstance(t, ast.Name) and t.id not in names:
                    names.append(t.id)
    return names


NOISE = (
    "All log messages before absl::InitializeLog()",  # TensorFlow's C++ start-up lines
    "oneDNN custom operations are on",
    "cpu_feature_guard.cc",
    "To enable the following instructions",
    "TqdmWarning: IProgress not found",              # tqdm.auto without ipywidgets, and its source line
    "from .autonotebook import tqdm as notebook_tqdm",
)
"""Substrings of stderr lines that ``clean_outputs`` drops altogether (not even logged)."""


def _clean_stderr(text: str) -> str:
    """Progress bars reduced to their final state (the text after the last carriage return of a
    line) and the ``NOISE`` lines dropped."""
    lines = [line.rsplit("\r", 1)[-1] for line in text.split("\n")]
    kept = [line for line in lines if line.strip() and not any(n in line for n in NOISE)]
    return "\n".join(kept) + ("\n" if kept else "")


def clean_outputs(nb) -> list[tuple[int, str]]:
    """Take every stderr stream output out of an executed notebook (in place): a reader's page
    shows no progress bars, TensorFlow start-up lines or warnings. Returns what was worth
    keeping, for the log: ``(cell index, text)`` with progress bars reduced to their final
    state and the ``NOISE`` lines dropped. Errors (tracebacks) are not streams and stay."""
    removed = []
    for k, cell in enumerate(nb.cells):
        outputs = cell.get("outputs")
        if not outputs:
            continue
        stderr = [o for o in outputs if o.get("output_type") == "stream" and o.get("name") == "stderr"]
        if not stderr:
            continue
        text = _clean_stderr("".join(o["text"] for o in stderr))
        if text:
            removed.append((k, text))
        cell["outputs"] = [o for o in outputs if not any(o is e for e in stderr)]
    return removed


@contextlib.contextmanager
def _quiet_progress():
    """``TQDM_DISABLE=1`` for the kernels started inside: tqdm bars that leave ``disable`` to
    its default are not drawn at all (``clean_outputs`` removes the others)."""
    before = os.environ.get("TQDM_DISABLE")
    os.environ["TQDM_DISABLE"] = "1"
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TQDM_DISABLE", None)
        else:
            os.environ["TQDM_DISABLE"] = before


def _error_summary(exc: BaseException) -> str:
    ename, evalue = getattr(exc, "ename", None), getattr(exc, "evalue", None)
    if ename:
        cell = getattr(exc, "exec_count", None)
        where = f" in cell [{cell}]" if cell is not None else ""
        return f"{ename}: {evalue}{where}"
    return f"{type(exc).__name__}: {exc}"


def execute_notebook(
    path: str | os.PathLike,
    out_dir: str | os.PathLike,
    parameters: Mapping | None = None,
    cwd: str | os.PathLike | None = None,
    progress_bar: bool = True,
) -> Path:
    """Execute the jupytext notebook ``path`` into ``out_dir/<stem>.ipynb`` and return that path.

    The kernel runs in ``cwd`` (default: the notebook's folder, so ``../data`` works). The
    output is written atomically: to a temporary file first, renamed on success. On failure
    the executed notebook is kept as ``<stem>.failed.ipynb``, any older ``<stem>.ipynb`` is
    removed (it would be stale), and :class:`NotebookExecutionError` names the notebook.
    Progress bars are off in the kernel where tqdm allows it; every stderr output is taken off
    the page (:func:`clean_outputs`) and printed on this process's stderr instead.
    """
    path = Path(path)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cwd = Path(cwd) if cwd is not None else path.parent
    final = out_dir / f"{path.stem}.ipynb"
    failed = out_dir / f"{path.stem}.failed.ipynb"

    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=".ipynb", dir=out_dir)
    os.close(fd)
    tmp = Path(tmp_name)
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o666 & ~umask)  # mkstemp makes it private; give it ordinary permissions
    try:
        with _quiet_progress():
            papermill.execute_notebook(
                read_notebook(path),
                str(tmp),
                parameters=dict(parameters or {}),
                kernel_name="python3",
                language="python",
                cwd=str(cwd),
                progress_bar=progress_bar,
            )
    except BaseException as exc:
        final.unlink(missing_ok=True)
        if tmp.exists() and tmp.stat().st_size > 0:
            os.replace(tmp, failed)
            kept = f"; the executed notebook is kept as {failed}"
        else:
            tmp.unlink(missing_ok=True)
            kept = ""
        if not isinstance(exc, Exception):  # KeyboardInterrupt, SystemExit: do not wrap
            raise
        raise NotebookExecutionError(
            f"notebook {path.name} failed: {_error_summary(exc)}{kept}"
        ) from exc
    nb = nbformat.read(tmp, as_version=4)
    for k, text in clean_outputs(nb):
        print(f"[ravecnn] {path.stem}, cell {k}, stderr (not on the page):\n{text}", end="", file=sys.stderr)
    nbformat.write(nb, tmp)
    os.replace(tmp, final)
    failed.unlink(missing_ok=True)
    return final


def _select(paths: list[Path], only: Iterable[str] | str | None) -> list[Path]:
    if only is None:
        return paths
    if isinstance(only, str):
        only = [only]
    by_key = {}
    for p in paths:
        by_key[p.stem] = p
        by_key[p.name] = p
        by_key.setdefault(p.stem.split("_", 1)[0], p)
    chosen = []
    for key in only:
        if key not in by_key:
            known = ", ".join(p.stem for p in paths) or "(none)"
            raise ValueError(f"unknown notebook {key!r}; known notebooks: {known}")
        if by_key[key] not in chosen:
            chosen.append(by_key[key])
    return sorted(chosen)


def run_all(
    profile: str,
    out_dir: str | os.PathLike = DEFAULT_OUT_DIR,
    only: Iterable[str] | str | None = None,
    overrides: Mapping | None = None,
    notebooks_dir: str | os.PathLike = NOTEBOOKS_DIR,
    profiles_path: str | os.PathLike = PROFILES_FILE,
    progress_bar: bool = True,
) -> list[Path]:
    """Execute the notebooks (all, or those named in ``only``) in order with ``profile``.

    ``overrides`` (name -> value) go to every selected notebook whose parameters cell defines
    the name. Profile parameters and overrides must name real parameters, and every selected
    notebook must be listed in the profile; otherwise a ValueError says which. Stops at the
    first failing notebook. Returns the executed notebooks' paths.
    """
    notebooks_dir = Path(notebooks_dir)
    params_by_stem = load_profile(profile, profiles_path)
    all_paths = notebook_paths(notebooks_dir)
    if not all_paths:
        raise ValueError(f"no notebooks matching {NOTEBOOK_GLOB} in {notebooks_dir}")
    stems = {p.stem for p in all_paths}
    unknown = sorted(set(params_by_stem) - stems)
    if unknown:
        raise ValueError(
            f"profile {profile!r} in {profiles_path} names notebooks that do not exist in "
            f"{notebooks_dir}: {', '.join(unknown)}"
        )
    selected = _select(all_paths, only)
    overrides = dict(overrides or {})

    plan = []
    used_overrides = set()
    for path in selected:
        if path.stem not in params_by_stem:
            raise ValueError(
                f"profile {profile!r} in {profiles_path} has no entry for notebook {path.stem}; "
                f"add `{path.stem}: {{}}` to use its defaults"
            )
        names = parameter_names(path)
        params = dict(params_by_stem[path.stem])
        bad = sorted(set(params) - set(names))
        if bad:
            raise ValueError(
                f"profile {profile!r}, notebook {path.stem}: not in its parameters cell: "
                f"{', '.join(bad)} (it defines: {', '.join(names) or 'nothing'})"
            )
        for name, value in overrides.items():
            if name in names:
                params[name] = value
                used_overrides.add(name)
        plan.append((path, params))
    unused = sorted(set(overrides) - used_overrides)
    if unused:
        raise ValueError(
            f"overridden parameters defined by none of the selected notebooks: {', '.join(unused)}"
        )

    out = []
    for path, params in plan:
        print(f"[ravecnn] executing {path.name} (profile {profile}) -> {out_dir}", file=sys.stderr)
        out.append(
            execute_notebook(path, out_dir, params, cwd=notebooks_dir, progress_bar=progress_bar)
        )
    return out


def _parse_args(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m ravecnn_utils.book",
        description="Execute the numbered notebooks with papermill for one profile.",
    )
    parser.add_argument("--profile", default="full", help="profile in notebooks/profiles.yml (default: full)")
    parser.add_argument("--out", default=str(DEFAULT_OUT_DIR), help="folder for the executed .ipynb files")
    parser.add_argument(
        "--only", nargs="+", action="extend", metavar="NOTEBOOK",
        help="run only these notebooks (stem like 01_data, or its number 01)",
    )
    parser.add_argument(
        "-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
        help="override a parameter (value parsed as YAML); repeatable",
    )
    parser.add_argument("--notebooks-dir", default=str(NOTEBOOKS_DIR), help=argparse.SUPPRESS)
    parser.add_argument("--profiles", default=str(PROFILES_FILE), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    """Command-line entry point; returns the exit status."""
    args = _parse_args(argv)
    overrides = {name: yaml.safe_load(value) for name, value in args.parameter}
    try:
        done = run_all(
            args.profile, args.out, only=args.only, overrides=overrides,
            notebooks_dir=args.notebooks_dir, profiles_path=args.profiles,
        )
    except (ValueError, NotebookExecutionError, PermissionError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    for p in done:
        print(p)
    return 0

