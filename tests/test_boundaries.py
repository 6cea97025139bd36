"""The package boundaries, read statically from every module of ours (every import statement,
including those inside functions and under ``TYPE_CHECKING``): no import cycles, and the
dependency direction of the architecture."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("features", "models", "impact", "training", "serving", "riskstrat")
# (importer, imported): modules under the first never import modules under the second.
FORBIDDEN = [
    *(
        (low, high)
        for low in ("features", "models")
        for high in ("impact", "training", "serving", "riskstrat")
    ),
    # The impact evaluation reads contract tables and model bundles; the service only reads
    # its finished results.
    *(("impact", high) for high in ("training", "serving", "riskstrat")),
    ("training", "serving"),
    ("serving", "training"),
    # API access knows nothing of pages: the pages' gate builds on it, not the reverse.
    ("serving.access", "serving.web"),
]


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported(tree: ast.AST, name: str, is_package: bool, known: set[str]) -> Iterator[str]:
    """The modules of ours that ``tree`` (module ``name``) imports, anywhere in it."""
    package = name if is_package else name.rpartition(".")[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from pkg import sub`` imports the submodule when there is one.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:  # ``import a.b.c`` of a name inside a.b
                target = target.rpartition(".")[0]
            if target and target != name:
                yield target


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each of our modules under ``root`` and the modules of ours it imports."""
    paths = {module_name(p, root): p for pkg in PACKAGES for p in (root / pkg).rglob("*.py")}
    known = set(paths)
    return {
        name: set(
            imported(ast.parse(path.read_text(), str(path)), name, path.stem == "__init__", known)
        )
        for name, path in paths.items()
    }


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The import cycles (Tarjan's strongly connected components of more than one module)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    found = import_graph(ROOT)
    assert {"serving.access", "serving.service", "features.window", "riskstrat.cli"} <= set(found)
    return found


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


@pytest.mark.parametrize(("importer", "imported_package"), FORBIDDEN)
def test_dependencies_point_one_way(
    graph: dict[str, set[str]], importer: str, imported_package: str
) -> None:
    crossing = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if under(module, importer)
        for target in targets
        if under(target, imported_package)
    )
    assert crossing == []


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A cycle through imports inside a function and under TYPE_CHECKING, and relative ones."""
    package = tmp_path / "serving"
    (package / "web").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "web" / "__init__.py").write_text("")
    (package / "access.py").write_text("def f():\n    from serving.web import render\n")
    (package / "web" / "render.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..access import f\n"
    )
    (package / "web" / "pages.py").write_text("from . import render\nimport serving.web.render\n")
    for name in PACKAGES:
        (tmp_path / name).mkdir(exist_ok=True)
    found = import_graph(tmp_path)
    assert found["serving.access"] == {"serving.web.render"}
    assert found["serving.web.render"] == {"serving.access"}
    assert found["serving.web.pages"] == {"serving.web.render"}
    assert cycles(found) == [["serving.access", "serving.web.render"]]
