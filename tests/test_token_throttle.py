"""Bearer tokens on the API share the sign-in form's throttle: wrong tokens pause an address
(429, ``Retry-After``, the documented ``{"error": ...}`` body), and a token retried again and
again pauses only itself, so the staff behind one shared address carry on."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from servers import write_access
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from riskstrat.serving import throttle
from riskstrat.serving.access import NO_STATE, AccessMiddleware
from riskstrat.serving.database import connect
from riskstrat.serving.web.gate import PageGate

TOKENS = {"ds": ("data_scientist", "t-ds", []), "system": ("system", "t-system", [])}
GUESSER = ("192.0.2.7", 40000)
TRUST_NAT = ("198.51.100.20", 40000)  # one address for a whole trust's staff


def _shown() -> Starlette:
    """What reaches the app got through the middleware."""
    shown = Route("/{path:path}", lambda _: PlainTextResponse("shown"), methods=["GET", "POST"])
    return Starlette(routes=[shown])


@pytest.fixture
def service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AccessMiddleware:
    """The access middleware and the pages' gate over ``_shown``, with its own state."""
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(write_access(tmp_path / "a.toml", TOKENS)))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return AccessMiddleware(_shown(), pages=PageGate)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def _audited(service: AccessMiddleware) -> list[dict]:
    return [json.loads(line) for line in service.access.audit.path.read_text().splitlines()]


def test_wrong_bearer_tokens_pause_the_address_with_a_429(service: AccessMiddleware) -> None:
    guesser = TestClient(service, client=GUESSER)
    for i in range(throttle.PER_CLIENT):
        assert guesser.get("/v1/model", headers=_bearer(f"guess-{i}")).status_code == 401
    paused = guesser.post("/v1/score", json={"records": []}, headers=_bearer("t-ds"))
    assert paused.status_code == 429  # even the right token is not checked
    assert paused.json() == {"error": paused.json()["error"]}
    assert paused.json()["error"].startswith("Too many wrong access tokens were tried from your")
    assert 0 < int(paused.headers["retry-after"]) <= throttle.WINDOW_SECONDS
    entry = _audited(service)[-1]
    assert (entry["status"], entry["outcome"], entry["client"]) == (429, "throttled", GUESSER[0])
    assert guesser.get("/livez").status_code == 200  # probes need no token
    elsewhere = TestClient(service, client=("192.0.2.8", 40000))
    assert elsewhere.get("/v1/model", headers=_bearer("t-ds")).text == "shown"


def test_a_retried_wrong_token_pauses_only_itself(service: AccessMiddleware) -> None:
    """A script retrying a revoked token behind a trust's NAT does not lock its staff out."""
    trust = TestClient(service, client=TRUST_NAT)
    for _ in range(throttle.PER_TOKEN + 20):
        trust.get("/v1/model", headers=_bearer("revoked"))
    retried = trust.get("/v1/model", headers=_bearer("revoked"))
    assert retried.status_code == 429 and "This access token is wrong" in retried.json()["error"]
    assert trust.get("/v1/model", headers=_bearer("t-system")).text == "shown"
    assert trust.get("/v1/model", headers=_bearer("a-typo")).status_code == 401
    signed_in = trust.post("/ui/login", data={"token": "t-ds"}, follow_redirects=False)
    assert signed_in.status_code == 303 and "riskstrat_session" in signed_in.cookies


def test_sign_in_and_the_api_count_in_one_throttle(service: AccessMiddleware) -> None:
    guesser = TestClient(service, client=GUESSER, follow_redirects=False)
    half = throttle.PER_CLIENT // 2
    for i in range(half):
        assert guesser.post("/ui/login", data={"token": f"form-{i}"}).status_code == 303
    for i in range(throttle.PER_CLIENT - half):
        assert guesser.get("/v1/model", headers=_bearer(f"header-{i}")).status_code == 401
    assert guesser.get("/v1/model", headers=_bearer("t-ds")).status_code == 429
    form = guesser.post("/ui/login", data={"token": "t-ds"})
    assert form.status_code == 429 and "set-cookie" not in form.headers
    assert "retry-after" in form.headers
    page = guesser.get("/ui/", headers=_bearer("t-ds"))  # a bearer header on a page
    assert page.status_code == 429 and "not checked" in page.text


def test_a_lost_database_fails_closed_and_the_next_request_reconnects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_url: str
) -> None:
    monkeypatch.setenv("RISKSTRAT_DATABASE_URL", postgres_url)
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(write_access(tmp_path / "a.toml", TOKENS)))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    (tmp_path / "audit.key").write_text("k" * 64)  # every server's, with a database
    monkeypatch.setenv("RISKSTRAT_AUDIT_KEY_FILE", str(tmp_path / "audit.key"))
    client = TestClient(AccessMiddleware(_shown(), pages=PageGate))
    assert client.get("/v1/model", headers=_bearer("t-ds")).text == "shown"
    with connect(postgres_url) as admin:  # the database server drops every other connection
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    lost = client.get("/v1/model", headers=_bearer("t-ds"))
    assert lost.status_code == 503 and lost.json() == {"error": NO_STATE}
    assert client.get("/v1/model", headers=_bearer("t-ds")).text == "shown"
