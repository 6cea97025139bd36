"""The package boundaries, read statically from every module of ours (every import statement,
including those inside functions and under ``TYPE_CHECKING``): no import cycles, and the
dependency direction of the architecture."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
NAMESPACE = "riskstrat"
BARE = ("features", "models", "training", "serving", "impact")
GENERATOR = "riskstrat.sources.synthetic"
# Modules allowed to import the synthetic generator: its own package, the benchmarks, and the
# built-in borough's front door (`riskstrat synth` and `riskstrat demo`).
GENERATOR_USERS = (GENERATOR, "riskstrat.bench", "riskstrat.demo", "riskstrat.cli.synthetic")
# The architecture's layers, bottom first (docs/architecture.md): each may import only the
# layers listed with it.
ALLOWED = {
    "riskstrat.common": ("riskstrat.common",),
    "riskstrat.contract": ("riskstrat.common", "riskstrat.contract"),
    # Sources code their events in the features' clinical vocabulary (condition code lists,
    # potentially avoidable diagnoses).
    "riskstrat.sources": (
        "riskstrat.common",
        "riskstrat.contract",
        "riskstrat.features",
        "riskstrat.sources",
    ),
    "riskstrat.features": ("riskstrat.common", "riskstrat.contract", "riskstrat.features"),
    "riskstrat.models": (
        "riskstrat.common",
        "riskstrat.contract",
        "riskstrat.features",
        "riskstrat.models",
    ),
}
# (importer, imported): modules under the first never import modules under the second.
FORBIDDEN = [
    *(
        (middle, top)
        for middle in ("riskstrat.training", "riskstrat.impact", "riskstrat.serving")
        for top in ("riskstrat.sources", "riskstrat.cli", "riskstrat.bench", "riskstrat.demo")
    ),
    # The impact evaluation reads contract tables and model bundles; the service only reads
    # its finished results.
    *(("riskstrat.impact", other) for other in ("riskstrat.training", "riskstrat.serving")),
    ("riskstrat.training", "riskstrat.serving"),
    ("riskstrat.serving", "riskstrat.training"),
    # API access knows nothing of pages: the pages' gate builds on it, not the reverse.
    ("riskstrat.serving.access", "riskstrat.serving.web"),
]


def package_folders(root: Path) -> dict[str, Path]:
    """Each top-level package of the namespace and the folder it is installed from."""
    mapping = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]
    return {
        NAMESPACE: root / NAMESPACE,
        **{name: root / folder for name, folder in mapping["package-dir"].items()},
    }


def module_name(path: Path, folder: Path, package: str) -> str:
    parts = [package, *path.relative_to(folder).with_suffix("").parts]
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


def module_paths(root: Path) -> dict[str, Path]:
    """Each of our modules, by its installed name, and its file."""
    return {
        module_name(path, folder, package): path
        for package, folder in package_folders(root).items()
        for path in folder.rglob("*.py")
    }


def import_graph(root: Path) -> dict[str, set[str]]:
    """Each of our modules under ``root`` and the modules of ours it imports."""
    paths = module_paths(root)
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
    assert {
        "riskstrat.serving.access",
        "riskstrat.serving.service",
        "riskstrat.features.window",
        "riskstrat.cli",
    } <= set(found)
    return found


def test_no_import_cycles(graph: dict[str, set[str]]) -> None:
    assert cycles(graph) == []


@pytest.mark.parametrize(("importer", "imported_package"), FORBIDDEN)
def test_dependencies_point_one_way(
    graph: dict[str, set[str]], importer: str, imported_package: str
) -> None:
    assert crossings(graph, importer, lambda target: under(target, imported_package)) == []


@pytest.mark.parametrize("layer", sorted(ALLOWED))
def test_the_lower_layers_import_only_what_is_below_them(
    graph: dict[str, set[str]], layer: str
) -> None:
    allowed = ALLOWED[layer]
    assert crossings(graph, layer, lambda t: not any(under(t, a) for a in allowed)) == []


def test_only_benchmarks_tests_and_the_built_in_borough_import_the_generator(
    graph: dict[str, set[str]],
) -> None:
    users = sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if not any(under(module, user) for user in GENERATOR_USERS)
        for target in targets
        if under(target, GENERATOR)
    )
    assert users == []


def test_the_service_reads_only_the_results_of_the_evaluation(
    graph: dict[str, set[str]],
) -> None:
    reads = crossings(
        graph,
        "riskstrat.serving",
        lambda t: under(t, "riskstrat.impact") and t != "riskstrat.impact.results",
    )
    assert reads == []


def test_no_module_imports_a_private_name_of_another_package() -> None:
    """What crosses a package boundary is public (no ``_name``): the reidentification tool
    reaches pseudonymisation through ``riskstrat.contract.pseudonym``'s public names."""
    private = []
    for name, path in module_paths(ROOT).items():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                home = node.module.rpartition(".")[0]
                if under(node.module, NAMESPACE) and not under(name, home):
                    private += [
                        f"{name}: {node.module}.{a.name}"
                        for a in node.names
                        if a.name.startswith("_")
                    ]
    assert private == []


def test_code_and_tests_import_only_the_namespace() -> None:
    """No ``import features`` (and the like) anywhere: in the package, tests or notebooks."""
    files = [*module_paths(ROOT).values(), *(ROOT / "tests").rglob("*.py")]
    bare = [
        f"{path.relative_to(ROOT)}: {target}"
        for path in files
        for target in top_level_imports(ast.parse(path.read_text(), str(path)))
        if target.split(".")[0] in BARE
    ]
    assert bare == []


def test_the_installed_project_exposes_only_its_namespace(tmp_path: Path) -> None:
    """Away from the checkout (``-P``: no current folder on the path), each bare name of the
    old layout is gone and the namespace imports."""
    for name in BARE:
        found = subprocess.run(
            [sys.executable, "-P", "-c", f"import {name}"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
        )
        assert f"No module named '{name}'" in found.stderr
    subprocess.run(
        [sys.executable, "-P", "-c", "import riskstrat.features.window, riskstrat.serving.access"],
        cwd=tmp_path,
        check=True,
    )


def crossings(
    graph: dict[str, set[str]], importer: str, crosses: Callable[[str], bool]
) -> list[str]:
    """The imports of modules under ``importer`` whose target ``crosses``."""
    return sorted(
        f"{module} imports {target}"
        for module, targets in graph.items()
        if under(module, importer)
        for target in targets
        if crosses(target)
    )


def top_level_imports(tree: ast.AST) -> Iterator[str]:
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            yield node.module


def test_the_reader_sees_every_kind_of_import(tmp_path: Path) -> None:
    """A cycle through imports inside a function and under TYPE_CHECKING, and relative ones."""
    (tmp_path / "pyproject.toml").write_text(
        '[tool.setuptools.package-dir]\n"riskstrat.serving" = "serving"\n'
    )
    (tmp_path / NAMESPACE).mkdir()
    package = tmp_path / "serving"
    (package / "web").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "web" / "__init__.py").write_text("")
    (package / "access.py").write_text("def f():\n    from riskstrat.serving.web import render\n")
    (package / "web" / "render.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..access import f\n"
    )
    (package / "web" / "pages.py").write_text(
        "from . import render\nimport riskstrat.serving.web.render\n"
    )
    found = import_graph(tmp_path)
    assert found["riskstrat.serving.access"] == {"riskstrat.serving.web.render"}
    assert found["riskstrat.serving.web.render"] == {"riskstrat.serving.access"}
    assert found["riskstrat.serving.web.pages"] == {"riskstrat.serving.web.render"}
    assert cycles(found) == [["riskstrat.serving.access", "riskstrat.serving.web.render"]]
