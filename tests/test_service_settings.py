"""The service settings: validated when built, errors naming the variable, nothing read on
import, the worker count reaching BentoML, and every variable the project reads documented."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
from test_boundaries import module_paths

from riskstrat.serving.settings import FIELDS, ServiceSettings, SettingsError, variable

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def clean(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """An environment without any service setting."""
    for name in FIELDS:
        monkeypatch.delenv(variable(name), raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("name", "value", "problem"),
    [
        ("RISKSTRAT_WORKERS", "two", "RISKSTRAT_WORKERS: Input should be a valid integer"),
        ("RISKSTRAT_WORKERS", "0", "RISKSTRAT_WORKERS: Input should be greater than or equal to 1"),
        ("RISKSTRAT_RELOAD_SECONDS", "-5", "RISKSTRAT_RELOAD_SECONDS: Input should be greater"),
        ("RISKSTRAT_RELOAD_SECONDS", "inf", "RISKSTRAT_RELOAD_SECONDS: Input should be a finite"),
    ],
)
def test_bad_values_are_refused_naming_the_variable(
    clean: pytest.MonkeyPatch, name: str, value: str, problem: str
) -> None:
    clean.setenv(name, value)
    with pytest.raises(SettingsError, match=re.escape(problem)) as refused:
        ServiceSettings.load()
    assert f"(got {value!r})" in str(refused.value) and "\n" not in str(refused.value)


def test_values_come_from_the_environment_and_unset_ones_are_named(
    clean: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    clean.setenv("RISKSTRAT_WEEKLY_DIR", str(tmp_path / "lists"))
    clean.setenv("RISKSTRAT_DATA_DIR", "")  # empty counts as unset
    clean.setenv("riskstrat_workers", "7")  # only the exact name counts
    settings = ServiceSettings.load(audit_log=tmp_path / "audit.jsonl")
    assert settings.weekly_dir == tmp_path / "lists"
    assert (settings.data_dir, settings.workers, settings.reload_seconds) == (None, 2, 30.0)
    assert settings.sessions_file() == tmp_path / "sessions.sqlite"
    with pytest.raises(SettingsError, match="set RISKSTRAT_TRACKING_URI to the MLflow"):
        settings.require("tracking_uri")
    with pytest.raises(SettingsError, match="unknown setting 'weekly_folder'"):
        ServiceSettings.load(weekly_folder=tmp_path)


def test_current_follows_the_environment(clean: pytest.MonkeyPatch, tmp_path: Path) -> None:
    clean.setenv("RISKSTRAT_WEEKLY_DIR", str(tmp_path / "a"))
    assert ServiceSettings.current().weekly_dir == tmp_path / "a"
    clean.setenv("RISKSTRAT_WEEKLY_DIR", str(tmp_path / "b"))
    assert ServiceSettings.current().weekly_dir == tmp_path / "b"
    clean.setenv("RISKSTRAT_WORKERS", "none")
    with pytest.raises(SettingsError, match="RISKSTRAT_WORKERS"):
        ServiceSettings.current()


def test_a_child_server_gets_the_settings_and_bentoml_the_worker_count(
    clean: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    settings = ServiceSettings.load(tracking_uri="sqlite:///m.db", workers=3).or_else(
        tracking_uri="ignored", weekly_dir=tmp_path
    )
    existing = json.dumps({"services": {"riskstrat": {"workers": 9, "backlog": 64}}})
    env = settings.environment({"PATH": "/bin", "BENTOML_CONFIG_OVERRIDES": existing})
    assert env["PATH"] == "/bin"
    assert env["RISKSTRAT_TRACKING_URI"] == "sqlite:///m.db"
    assert env["RISKSTRAT_WEEKLY_DIR"] == str(tmp_path)
    assert "RISKSTRAT_ACCESS_FILE" not in env
    assert json.loads(env["BENTOML_CONFIG_OVERRIDES"]) == {
        "services": {"riskstrat": {"workers": 3, "backlog": 64}}
    }
    with pytest.raises(SettingsError, match="BENTOML_CONFIG_OVERRIDES: not JSON"):
        settings.bentoml_overrides("services.riskstrat.workers=2")


def test_bentoml_starts_the_worker_count_it_is_given(clean: pytest.MonkeyPatch) -> None:
    """BentoML's own resolution of the count (what ``bentoml serve`` spawns), from the
    overrides ``riskstrat serve`` hands it; the browser tests check a real server."""
    from _bentoml_impl.server.allocator import ResourceAllocator

    from riskstrat.serving.service import RiskService

    before = os.environ.get("BENTOML_CONFIG_OVERRIDES")
    try:
        for workers in (1, 3):
            overrides = ServiceSettings.load(workers=workers).bentoml_overrides(before)
            clean.setenv("BENTOML_CONFIG_OVERRIDES", overrides)
            RiskService.inject_config()
            assert ResourceAllocator().get_worker_env(RiskService)[0] == workers
    finally:
        clean.undo()
        RiskService.inject_config()


@pytest.mark.slow
def test_nothing_is_read_on_import(tmp_path: Path) -> None:
    """Importing the service, its middleware and pages with every setting wrong works: the
    settings are read when the service starts or a request needs them."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("RISKSTRAT_")}
    env |= {variable(name): "not valid" for name in ("workers", "reload_seconds")}
    code = (
        "import riskstrat.serving.service, riskstrat.serving.web.gate, "
        "riskstrat.serving.web.app, riskstrat.bench.serve"
    )
    done = subprocess.run([sys.executable, "-c", code], env=env, cwd=ROOT, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()[-2000:]


def _documented_variables() -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    table = text.split("## Environment variables", 1)[1].split("\n## ", 1)[0]
    return set(re.findall(r"^\| `([A-Z_]+)` \|", table, flags=re.MULTILINE))


def test_the_docs_list_every_variable_the_project_reads() -> None:
    """Every ``RISKSTRAT_*`` name in the code, tests and notebooks, every MLflow or BentoML
    variable named in a string there, and every setting's variable has a row."""
    sources = [*module_paths(ROOT).values(), *(ROOT / "tests").rglob("*.py")]
    sources += (ROOT / "notebooks").glob("*.ipynb")
    named = {variable(name) for name in FIELDS}
    for path in sources:
        text = path.read_text()
        named |= set(re.findall(r"\bRISKSTRAT_[A-Z_]*[A-Z]\b", text))
        named |= set(re.findall(r"[\"']((?:MLFLOW|BENTOML)_[A-Z_]*[A-Z])[\"']", text))
    assert {"RISKSTRAT_PSEUDONYM_KEY", "RISKSTRAT_CHROMIUM", "MLFLOW_TRACKING_URI"} <= named
    assert named - _documented_variables() == set()
