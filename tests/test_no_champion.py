"""A registry without a champion: the service starts, says why it is not ready, answers the
model endpoints with 503 and the reason, and serves the model once one is promoted."""

from __future__ import annotations

import asyncio
import json
import shutil
from pathlib import Path

import httpx
import pytest
from mlflow import MlflowClient
from servers import enable_loggers, started_service, write_access

from riskstrat.models.registry import CHAMPION, MODEL_NAME, RegisteredBundle

TOKEN = "no-champion-token"


def _promote(uri: str, version: str) -> None:
    MlflowClient(tracking_uri=uri, registry_uri=uri).set_registered_model_alias(
        MODEL_NAME, CHAMPION, version
    )


@pytest.fixture
def without_champion(champion: RegisteredBundle, tracking_uri: str, tmp_path: Path) -> str:
    """A copy of the session's registry (its artifacts stay where they are) with no champion."""
    copy = tmp_path / "mlflow.db"
    shutil.copy(tracking_uri.removeprefix("sqlite:///"), copy)
    uri = f"sqlite:///{copy}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).delete_registered_model_alias(
        MODEL_NAME, CHAMPION
    )
    return uri


def test_in_process_the_service_waits_for_a_champion(
    without_champion: str,
    champion: RegisteredBundle,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    from riskstrat.serving.service import FeatureRecord, NotReady, RiskService

    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", without_champion)
    monkeypatch.setenv("RISKSTRAT_RELOAD_SECONDS", "3600")  # this test refreshes by hand
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))  # ready needs one
    service = RiskService()
    assert service.model is None
    with pytest.raises(NotReady, match=r"no model: the registry has no champion for admission"):
        service.__is_ready__()
    features = dict.fromkeys(champion.bundle.feature_names, 0.0) | {"deprivation_decile": None}
    record = FeatureRecord(id="p1", features=features)
    for answer in (asyncio.run(service.score(records=[record])), service.model_info()):
        assert answer.status_code == 503
        assert json.loads(answer.body)["error"].startswith("no model: the registry has no champion")
    assert not service.refresh()

    _promote(without_champion, champion.version)
    assert service.refresh()
    assert service.__is_ready__() and service.model_info().model_version == champion.version
    assert asyncio.run(service.score(records=[record])).scores[0].id == "p1"


@pytest.mark.slow
def test_a_real_server_without_a_champion_answers_and_picks_one_up(
    without_champion: str, champion: RegisteredBundle, tmp_path: Path
) -> None:
    environment = {
        "RISKSTRAT_TRACKING_URI": without_champion,
        "RISKSTRAT_ACCESS_FILE": str(
            write_access(tmp_path / "access.toml", {"system": ("system", TOKEN, [])})
        ),
        "RISKSTRAT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
        "RISKSTRAT_RELOAD_SECONDS": "0.5",
    }
    with started_service(environment, ready=False) as server:
        client = httpx.Client(
            base_url=server.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30
        )
        assert client.get("/livez").status_code == 200
        ready = client.get("/readyz")
        assert ready.status_code == 503 and "no champion for admission-risk" in ready.text
        answer = client.post("/v1/model", json={})
        assert answer.status_code == 503
        assert answer.json()["error"].startswith("no model: the registry has no champion")

        _promote(without_champion, champion.version)
        assert _eventually_ready(client)
        assert client.post("/v1/model", json={}).json()["model_version"] == champion.version


def _eventually_ready(client: httpx.Client, seconds: float = 60) -> bool:
    """Whether /readyz turns 200 within ``seconds`` (the alias is checked every 0.5 s)."""
    import time

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return True
        time.sleep(0.25)
    return False


def test_an_unreachable_registry_is_a_reason_not_a_crash_and_keeps_its_details_private(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from riskstrat.serving.service import NotReady, RiskService

    (tmp_path / "blocker").write_text("a file where the registry's folder should be")
    where = tmp_path / "blocker" / "mlflow.db"
    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", f"sqlite:///{where}")
    monkeypatch.setenv("RISKSTRAT_RELOAD_SECONDS", "3600")
    enable_loggers(monkeypatch, "riskstrat.serving.service")
    service = RiskService()
    with pytest.raises(NotReady, match=r"the champion could not be loaded \(\w+, see the log\)"):
        service.__is_ready__()
    assert str(where.parent) not in service.no_model
    assert str(where.parent) in caplog.text  # the operator's log says what went wrong
