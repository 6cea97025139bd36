"""The project's wheel holds only the `riskstrat` namespace, with its templates, code lists and
pages; `bentoml build` packs that wheel and the locked requirements into a Bento."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from test_boundaries import module_paths

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def wheel() -> Path:
    """The wheel `make wheel` builds (part of `make test`) from this checkout."""
    built = sorted((ROOT / "dist").glob("riskstrat-*.whl"))
    assert built, "no wheel in dist/: run `make wheel` (make test does)"
    return built[-1]


@pytest.mark.slow
def test_the_wheel_installs_one_namespace_with_its_data(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert {name.split("/")[0] for name in names} == {
        "riskstrat",
        f"{wheel.name.split('-')[0]}-{wheel.name.split('-')[1]}.dist-info",
    }
    for expected in (
        "riskstrat/serving/service.py",
        "riskstrat/features/window.py",
        "riskstrat/serving/web/templates/list.html",
        "riskstrat/serving/web/static/nhsuk/nhsuk-frontend.min.css",
        "riskstrat/serving/weekly/pathways.toml",
        "riskstrat/impact/plans/risk_list_actions.toml",
        "riskstrat/training/templates/model_card.html",
    ):
        assert expected in names
    assert any(name.startswith("riskstrat/sources/ingest/codes/") for name in names)


@pytest.mark.slow
def test_the_wheel_holds_every_module_of_the_checkout(wheel: Path) -> None:
    """A package folder missing from pyproject's list would work in the editable install and
    be absent from every real one."""
    names = set(zipfile.ZipFile(wheel).namelist())
    modules = {name.replace(".", "/") for name in module_paths(ROOT)}
    assert (
        sorted(m for m in modules if f"{m}.py" not in names and f"{m}/__init__.py" not in names)
        == []
    )


@pytest.mark.slow
def test_bentoml_build_produces_a_bento_with_the_wheel_and_a_dockerfile(
    wheel: Path,
) -> None:
    env = {**os.environ, "BENTOML_DO_NOT_TRACK": "True"}
    subprocess.run(
        [sys.executable, "-m", "bentoml", "build", "--output", "tag"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    bentos = Path(os.environ["BENTOML_HOME"]) / "bentos" / "riskstrat"
    (bento,) = [p for p in bentos.iterdir() if p.is_dir() and p.name != "latest"]
    assert (bento / "env" / "docker" / "Dockerfile").exists()
    assert list((bento / "env" / "python" / "wheels").glob("riskstrat-*.whl"))
    assert "lightgbm==" in (bento / "env" / "python" / "requirements.txt").read_text()
