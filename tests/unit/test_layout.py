"""The package layout stays readable: every module has a package, and no imports go in circles.

Imports are read from the source with ``ast`` (every ``import``, at any depth, TYPE_CHECKING
ones included), so a circle hidden inside a function counts as one too.
"""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import slipway

SOURCE = Path(slipway.__file__).parent
TOP_LEVEL_ALLOWED = {"__init__.py", "config.py"}


def module_name(path: Path) -> str:
    parts = path.relative_to(SOURCE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, modules: set[str]) -> set[str]:
    """The slipway modules a file imports, resolved to modules (not packages' names)."""
    this = module_name(path)
    package = this if path.name == "__init__.py" else this.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = importlib.util.resolve_name("." * node.level + (node.module or ""), package)
            names = [f"{base}.{alias.name}" for alias in node.names] + [base]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            # A package's __init__ is left out: importing slipway.x.y runs it, but
            # slipway.x's docstring-only __init__ is not a dependency of anything.
            if name and name != this and name.startswith("slipway."):
                found.add(name)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(SOURCE.rglob("*.py"))
    modules = {module_name(path) for path in paths}
    return {module_name(path): imported_modules(path, modules) for path in paths}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Each strongly connected group of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        on_stack.add(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in on_stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


def test_no_import_circles() -> None:
    found = circles(import_graph())
    assert found == [], "modules that import each other, directly or through others: " + "; ".join(
        " <-> ".join(group) for group in found
    )


def test_circle_finder_sees_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_module_sits_in_a_package() -> None:
    loose = sorted(p.name for p in SOURCE.glob("*.py") if p.name not in TOP_LEVEL_ALLOWED)
    assert loose == [], f"modules outside a package: {loose}"


def test_every_package_says_what_it_is() -> None:
    undocumented = [
        module_name(init)
        for init in sorted(SOURCE.rglob("__init__.py"))
        if not ast.get_docstring(ast.parse(init.read_text()))
    ]
    assert undocumented == []


def test_test_folders_are_named_after_packages() -> None:
    tests = Path(__file__).parents[1]
    packages = {p.parent.name for p in SOURCE.glob("*/__init__.py")}
    folders = {
        folder.name
        for kind in ("unit", "integration")
        for folder in (tests / kind).iterdir()
        if folder.is_dir() and folder.name != "__pycache__"
    }
    assert sorted(folders - packages) == [], "test folders that name no package of slipway"
