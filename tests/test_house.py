"""The house stays readable: the design map names every module, the import graph has no cycle,
lazy imports say why, and rooms stay a readable size.

These read the source tree (``src/rxrisk`` and ``kernels``) with :mod:`ast`; nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "rxrisk"
KERNELS = ROOT / "kernels"
DESIGN = ROOT / "docs" / "design.md"

#: Largest module and function, in lines (kernels' inner loops are exempt from the function bound).
MAX_MODULE_LINES = 600
MAX_FUNCTION_LINES = 80


def _modules() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the package (kernels as rxrisk.kernels)."""
    found = {}
    for base, prefix in ((SRC, "rxrisk"), (KERNELS, "rxrisk.kernels")):
        for path in sorted(base.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            parts = list(path.relative_to(base).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


MODULES = _modules()


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, inner.end_lineno + 1))
    return lines


def _imports(name: str, path: Path):
    """(target module, line number, inside a function) of each first-party runtime import."""
    tree = ast.parse(path.read_text())
    skip = _type_checking_lines(tree)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    in_function = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    in_function.add(inner.lineno)
    for node in ast.walk(tree):
        if not isinstance(node, (ast.Import, ast.ImportFrom)) or node.lineno in skip:
            continue
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        else:
            base = node.module or ""
            if node.level:
                up = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*up, base] if base else up)
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base for a in node.names
            ]
        for target in targets:
            while target not in MODULES and "." in target:
                target = target.rpartition(".")[0]
            if target in MODULES and target.startswith("rxrisk") and target != name:
                yield target, node.lineno, node.lineno in in_function


def _graph() -> dict[str, set[str]]:
    return {
        name: {target for target, _, _ in _imports(name, path)} for name, path in MODULES.items()
    }


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            part = []
            while True:
                w = stack.pop()
                on.discard(w)
                part.append(w)
                if w == v:
                    break
            if len(part) > 1:
                out.append(sorted(part))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_import_graph_has_no_cycle():
    """Function-local imports count: laziness must not hide a circle."""
    assert _cycles(_graph()) == []


def test_kernels_import_nothing_from_the_package():
    for name, path in MODULES.items():
        if name.startswith("rxrisk.kernels"):
            bad = [t for t, _, _ in _imports(name, path) if not t.startswith("rxrisk.kernels")]
            assert bad == [], f"{path.name} imports {bad}"


def test_engines_never_import_the_api():
    for name, path in MODULES.items():
        if name.startswith("rxrisk.engines"):
            assert "rxrisk.api" not in {t for t, _, _ in _imports(name, path)}, path.name


def test_every_lazy_import_says_why():
    """A first-party import inside a function is there to keep numba / pyarrow.compute / pyspark
    out of ``rxrisk --help``; it says so with a trailing ``# lazy: reason`` comment."""
    missing = []
    for name, path in MODULES.items():
        lines = path.read_text().splitlines()
        for _, lineno, local in _imports(name, path):
            if local and "# lazy:" not in lines[lineno - 1]:
                missing.append(f"{path.relative_to(ROOT)}:{lineno}")
    assert sorted(set(missing)) == []


def test_the_design_map_names_every_module():
    text = DESIGN.read_text()
    unnamed = []
    for path in MODULES.values():
        shown = (
            f"kernels/{path.relative_to(KERNELS)}"
            if path.is_relative_to(KERNELS)
            else str(path.relative_to(SRC))
        )
        if f"`{shown}`" not in text:
            unnamed.append(shown)
    assert unnamed == [], "docs/design.md does not name these modules"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_rooms_are_a_readable_size(name):
    path = MODULES[name]
    text = path.read_text()
    assert len(text.splitlines()) <= MAX_MODULE_LINES, f"{path.name} is over {MAX_MODULE_LINES}"
    if name.startswith("rxrisk.kernels"):
        return  # the kernels' inner loops are written out on purpose
    long = [
        f"{node.name} ({node.end_lineno - node.lineno + 1} lines)"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES
    ]
    assert long == []


def test_licence_is_an_spdx_expression():
    """The licence is given as PEP 639 asks, with a setuptools that reads it that way: the
    table form (``{ text = ... }``) made every build warn that builds would stop being
    supported after 2027-02-18."""
    import tomllib

    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"] == "Apache-2.0"
    assert "setuptools>=77" in meta["build-system"]["requires"]


def test_every_package_ships_in_the_wheel():
    """Each package folder is listed in pyproject.toml (a missing one installs but fails to import)."""
    import tomllib

    listed = set(
        tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    )
    packages = {
        ".".join(["rxrisk", *p.parent.relative_to(SRC).parts])
        for p in SRC.rglob("__init__.py")
        if "__pycache__" not in p.parts
    }
    assert packages - listed == set()
