"""No import cycles inside any package of the workspace.

Every import a module makes counts, wherever it sits: at the top, inside a function, or under
``if TYPE_CHECKING:`` (a type needed only for checking is still a dependency, and a cycle through
it is a cycle in the design). Imports are read from the source with :mod:`ast`, nothing is
imported, so the check is fast and sees modules that need optional extras. Implicit imports of
parent packages (``a.b.c`` runs ``a/__init__`` and ``a/b/__init__``) are not counted: a package's
``__init__`` re-exporting its own modules is not a cycle.
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Every import package of the workspace and where its source lives.
PACKAGES = {
    "xtts_core": ROOT / "packages/xtts-core/src/xtts_core",
    "xtts_balancer": ROOT / "packages/xtts-balancer/src/xtts_balancer",
    "xtts_broker": ROOT / "packages/xtts-broker/src/xtts_broker",
    "xtts_cli": ROOT / "packages/xtts-cli/src/xtts_cli",
}


def module_names(package: str, source: Path) -> dict[str, Path]:
    """Every module of the package rooted at ``source``, by dotted name."""
    modules: dict[str, Path] = {}
    for path in sorted(source.rglob("*.py")):
        parts = [package, *path.relative_to(source).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def imported_names(module: str, path: Path, modules: Collection[str]) -> Iterator[str]:
    """The dotted names ``module`` imports. ``from a import b`` imports the module ``a.b`` when
    there is one, else the name ``b`` of ``a``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[: len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                submodule = f"{base}.{alias.name}"
                yield submodule if submodule in modules else base


def import_graph(package: str, source: Path) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (names outside the package are dropped)."""
    modules = module_names(package, source)
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets = {name for name in imported_names(module, path, modules) if name in modules}
        graph[module] = targets - {module}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return sorted(found)


@pytest.mark.parametrize(
    "package",
    [
        "xtts_core",
        "xtts_balancer",
        "xtts_broker",
        "xtts_cli",
    ],
)
def test_no_import_cycle(package: str) -> None:
    found = cycles(import_graph(package, PACKAGES[package]))
    assert found == [], f"import cycles in {package}: " + "; ".join(" <-> ".join(c) for c in found)


def test_every_package_is_checked() -> None:
    sources = {p.name for p in (ROOT / "packages").glob("*/src/*") if (p / "__init__.py").exists()}
    assert sources == set(PACKAGES)


def _write(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / "pkg" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root / "pkg"


def test_checker_finds_a_planted_cycle(tmp_path: Path) -> None:
    source = _write(
        tmp_path,
        {
            "__init__.py": "from pkg.a import A\n",
            "a.py": "from pkg import b\nA = 1\n",
            "b.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.c import C\n",
            "c.py": "def f():\n    from .a import A\n    return A\nC = 2\n",
            "sub/__init__.py": "",
            "sub/d.py": "from .. import e\n",
            "e.py": "import pkg.sub.d\n",
            "leaf.py": "import os\nfrom pkg.a import A\n",
        },
    )
    graph = import_graph("pkg", source)
    assert graph["pkg.leaf"] == {"pkg.a"}
    assert cycles(graph) == [["pkg.a", "pkg.b", "pkg.c"], ["pkg.e", "pkg.sub.d"]]


def test_checker_passes_a_layered_package(tmp_path: Path) -> None:
    source = _write(
        tmp_path,
        {
            "__init__.py": "from pkg.app import app\n",
            "state.py": "import json\n",
            "routes.py": "from pkg.state import *\n",
            "app.py": "from pkg import routes, state\napp = 1\n",
        },
    )
    assert cycles(import_graph("pkg", source)) == []
