"""Two service instances on one PostgreSQL server, as behind a load balancer: a session opened
through one continues through the other, the token throttle counts across both, and MLflow's
tracking store lives in the same server (``postgresql+psycopg://``), where a promotion moves
both instances to the new champion while they serve."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mlflow import MlflowClient
from postgres import PostgresServer
from servers import started_service, write_access

from riskstrat.models.registry import CHALLENGER, CHAMPION, MODEL_NAME, RegisteredBundle
from riskstrat.serving import throttle
from riskstrat.serving.audit_chain import read_key
from riskstrat.serving.audit_db import verify_table
from riskstrat.training.promote import promote
from riskstrat.training.tracking import log_training

TOKEN = "two-servers-token"
GUESSER = {"X-Forwarded-For": "192.0.2.50"}  # the address the (one trusted) proxy saw
pytestmark = pytest.mark.slow  # two real servers and an MLflow registry made in PostgreSQL


def _mlflow_uri(database_url: str) -> str:
    """The same database for MLflow's SQLAlchemy store, through psycopg 3."""
    return database_url.replace("postgresql://", "postgresql+psycopg://", 1)


@pytest.fixture(scope="module")
def registry(
    postgres_server: PostgresServer,
    champion: RegisteredBundle,
    tmp_path_factory: pytest.TempPathFactory,
) -> str:
    """An MLflow registry in PostgreSQL (its tables made by MLflow on first use) holding the
    session's model twice: version 1 the champion, version 2 (the same artifacts, registered
    again) the challenger; the artifacts in a folder both servers read."""
    uri = _mlflow_uri(postgres_server.create_database())
    artifacts = tmp_path_factory.mktemp("shared-artifacts")
    bundle = champion.bundle
    logged = log_training(
        tracking_uri=uri,
        artifact_root=artifacts,
        bundle=bundle,
        params={},
        metrics={},
        example=pd.DataFrame([dict.fromkeys(bundle.feature_names, 0.0)]),
        report_dir=None,
        datasets={},
    )
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    first = client.get_model_version(MODEL_NAME, logged.model_version)
    second = client.create_model_version(MODEL_NAME, first.source, run_id=logged.run_id)
    client.set_registered_model_alias(MODEL_NAME, CHAMPION, first.version)
    client.set_registered_model_alias(MODEL_NAME, CHALLENGER, second.version)
    return uri


@pytest.fixture(scope="module")
def shared_state(
    postgres_server: PostgresServer, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, Path]:
    """The database both instances share, and the audit key both hold."""
    key = tmp_path_factory.mktemp("audit-key") / "audit.key"
    key.write_text("two servers, one audit chain, one key: " + "k" * 32)
    return postgres_server.create_database(), key


@pytest.fixture(scope="module")
def servers(
    shared_state: tuple[str, Path], registry: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[httpx.Client, httpx.Client]]:
    """Two instances, each with its own files and BentoML home, sharing one database."""
    folder = tmp_path_factory.mktemp("two-servers")
    database, key = shared_state
    shared = {
        "RISKSTRAT_AUDIT_KEY_FILE": str(key),
        "RISKSTRAT_TRACKING_URI": registry,
        "RISKSTRAT_DATABASE_URL": database,
        "RISKSTRAT_ACCESS_FILE": str(
            write_access(folder / "access.toml", {"system": ("system", TOKEN, [])})
        ),
        "RISKSTRAT_RELOAD_SECONDS": "0.5",
        "RISKSTRAT_TRUSTED_PROXIES": "1",
        "RISKSTRAT_WORKERS": "1",
    }
    with ExitStack() as stack:
        clients = []
        for name in ("a", "b"):
            own = {
                "RISKSTRAT_AUDIT_LOG": str(folder / name / "audit.jsonl"),
                "BENTOML_HOME": str(folder / name / "bentoml"),
            }
            server = stack.enter_context(started_service({**shared, **own}, TOKEN))
            clients.append(stack.enter_context(httpx.Client(base_url=server.url, timeout=30)))
        yield clients[0], clients[1]


def test_a_session_opened_on_one_server_continues_on_the_other(
    servers: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = servers
    signed_in = first.post("/ui/login", data={"token": TOKEN})
    assert signed_in.status_code == 303
    cookie = {"riskstrat_session": signed_in.cookies["riskstrat_session"]}
    assert second.get("/ui/evaluations", cookies=cookie).status_code == 200
    assert second.post("/ui/logout", cookies=cookie).status_code == 303
    assert first.get("/ui/evaluations", cookies=cookie).status_code == 303  # ended on both


def test_the_token_throttle_counts_across_both_servers(
    servers: tuple[httpx.Client, httpx.Client],
) -> None:
    first, second = servers
    for i in range(throttle.PER_CLIENT):
        wrong = {**GUESSER, "Authorization": f"Bearer guess-{i}"}
        assert servers[i % 2].post("/v1/model", json={}, headers=wrong).status_code == 401
    right = {**GUESSER, "Authorization": f"Bearer {TOKEN}"}
    for client in (first, second):
        paused = client.post("/v1/model", json={}, headers=right)
        assert paused.status_code == 429 and "retry-after" in paused.headers
        assert paused.json()["error"].startswith("Too many wrong access tokens")
    assert second.post(
        "/v1/model", json={}, headers={"Authorization": f"Bearer {TOKEN}"}
    ).is_success


def _versions(servers: tuple[httpx.Client, httpx.Client]) -> list[str]:
    headers = {"Authorization": f"Bearer {TOKEN}"}
    return [c.post("/v1/model", json={}, headers=headers).json()["model_version"] for c in servers]


def test_a_promotion_switches_both_servers(
    servers: tuple[httpx.Client, httpx.Client], registry: str, validated: Path
) -> None:
    assert _versions(servers) == ["1", "1"]
    decision = promote(validated, registry, resamples=20)
    assert decision.promoted and (decision.champion_version, decision.challenger_version) == (
        "1",
        "2",
    )
    deadline = time.monotonic() + 60
    while _versions(servers) != ["2", "2"] and time.monotonic() < deadline:
        time.sleep(0.25)
    assert _versions(servers) == ["2", "2"]


def test_both_servers_append_to_one_audit_chain_that_verifies(
    servers: tuple[httpx.Client, httpx.Client], shared_state: tuple[str, Path]
) -> None:
    database, key_file = shared_state
    key = read_key(key_file)
    before = verify_table(database, key).lines
    for i, client in enumerate(servers * 3):
        refused = client.post(
            "/v1/score",
            json={},
            headers={"X-Forwarded-For": f"198.51.100.{i}", "Authorization": "Bearer no-such"},
        )
        assert refused.status_code == 401  # a refused request for patient data is audited
    assert verify_table(database, key).lines == before + 6
