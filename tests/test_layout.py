"""The package's layout: no import circles, the analysis apart from the simulation, small modules.

The imports are read from the source (``ast``), not executed, so a test of the structure needs
no TensorFlow. The three areas are those of ``ravecnn_utils/__init__.py``: the analysis (the
package's top level and ``baselines``), ``simulation`` (the embedded default survey) and
``book`` (the papermill runner and generated pages).
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ravecnn_utils"
NAME = PACKAGE.name

SIMULATION_ALLOWED = {
    # analysis module -> the simulation modules it may import, and why
    f"{NAME}.validation": {f"{NAME}.simulation.realism"},  # real spectra through the networks (domain shift)
}
"""The only places where the analysis compares with the forward model on purpose."""

MAX_LINES = 400
"""No module longer than this: one concern each."""


def module_name(path):
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules():
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def imports_of(name, path, known):
    """The package modules that module ``name`` imports (``from . import x`` resolved to ``x``)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = ".".join(base[: len(base) - node.level + 1])
                target = f"{base}.{node.module}" if node.module else base
            else:
                target = node.module
            found.add(target)
            found |= {f"{target}.{alias.name}" for alias in node.names}
    return {m for m in found if m in known and m != name}


def graph():
    known = modules()
    return {name: imports_of(name, path, known) for name, path in known.items()}


def find_cycle(edges):
    """One import circle as a list of modules (first == last), or None."""
    state, stack = {}, []

    def visit(node):
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state:
                found = visit(nxt)
                if found:
                    return found
        stack.pop()
        state[node] = "done"
        return None

    for node in sorted(edges):
        if node not in state:
            found = visit(node)
            if found:
                return found
    return None


def test_the_import_reader_sees_relative_and_absolute_imports(tmp_path):
    known = {"pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.c"}
    source = tmp_path / "c.py"
    source.write_text("from .. import a\nfrom ..b import thing\nimport pkg.sub\nimport numpy\n")
    assert imports_of("pkg.sub.c", source, known) == {"pkg", "pkg.a", "pkg.b", "pkg.sub"}


def test_find_cycle_finds_a_circle_and_only_a_circle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_circle():
    edges = graph()
    assert find_cycle(edges) is None, f"import circle: {' -> '.join(find_cycle(edges))}"


def test_analysis_does_not_import_the_simulation_except_on_purpose():
    offending = []
    for name, targets in graph().items():
        if name.startswith((f"{NAME}.simulation", f"{NAME}.book")) or name == NAME:
            continue
        for target in targets:
            if target.startswith(f"{NAME}.simulation") and target not in SIMULATION_ALLOWED.get(name, set()):
                offending.append(f"{name} imports {target}")
    assert not offending, "analysis modules importing the simulation (add to SIMULATION_ALLOWED only if on purpose): " \
        + "; ".join(offending)


def test_the_allow_list_is_used():
    edges = graph()
    unused = [f"{m} -> {t}" for m, targets in SIMULATION_ALLOWED.items() for t in targets if t not in edges.get(m, ())]
    assert not unused, f"SIMULATION_ALLOWED lists imports the code no longer makes: {unused}"


def test_the_analysis_does_not_import_the_book_tooling():
    offending = [f"{name} imports {t}" for name, targets in graph().items() if not name.startswith(f"{NAME}.book")
                 for t in targets if t.startswith(f"{NAME}.book")]
    assert not offending, "; ".join(offending)


@pytest.mark.parametrize("name", sorted(modules()))
def test_module_is_small(name):
    lines = len(modules()[name].read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines (> {MAX_LINES}): split it by concern"


def test_package_docstring_lists_every_module():
    doc = ast.get_docstring(ast.parse((PACKAGE / "__init__.py").read_text(encoding="utf-8")))
    missing = [name for name in modules() if name != NAME and not name.endswith("__main__")
               and f"``{name.removeprefix(NAME + '.')}``" not in doc
               and f"``{name.rpartition('.')[2]}``" not in doc and f"{name.rpartition('.')[2]}/" not in doc]
    assert not missing, f"ravecnn_utils/__init__.py does not name {missing}"
