"""What a hostile prober found, each refused at its root: header bytes that are not UTF-8
(a 400 in the documented shape at once, API and pages), request fields of a type other than
the description's (``top_k: false``, ``week: null``), ``age: NaN``, and forwarded headers
believed from a client when no proxy is trusted (on a real server: the web server's own
handling of them is what believed them)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from servers import InProcessService, started_service, write_access
from starlette.testclient import TestClient

from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving import throttle

TOKEN = "edges-token"  # a system token of the in-process service


@pytest.fixture(scope="module")
def client(in_process_service: InProcessService) -> Iterator[TestClient]:
    patch = pytest.MonkeyPatch()
    for key, value in in_process_service.environment.items():
        patch.setenv(key, value)
    yield in_process_service.client(headers={"Authorization": f"Bearer {TOKEN}"})
    patch.undo()


def _error(answer: httpx.Response) -> str:
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert list(body) == ["error"], body
    return body["error"]


@pytest.mark.parametrize("path", ["/v1/model", "/v1/weekly-list", "/ui/", "/ui/login", "/readyz"])
def test_a_header_that_is_not_utf8_is_a_400_at_once(
    real_server: tuple[str, Path], path: str
) -> None:
    url, _ = real_server
    for value in (b"\xff\xfe", b"caf\xe9", b"ok\xc3"):  # bytes, Latin-1 text, a cut-off one
        answer = httpx.post(
            url + path,
            json={},
            headers={"Authorization": "Bearer ds-token", "X-Note": value},
            timeout=5,
        )
        assert answer.status_code == 400, (path, value)
        assert _error(answer) == "the request header 'x-note' is not UTF-8 text"
    fine = {"Authorization": "Bearer ds-token", "X-Note": "café".encode()}
    assert httpx.post(url + path, json={}, headers=fine, timeout=5).status_code != 400


def _record(champion: RegisteredBundle, age: str) -> str:
    features = dict.fromkeys(champion.bundle.feature_names, 0.0)
    features |= {"age": 80.0, "deprivation_decile": None}
    body = json.dumps({"records": [{"id": "p1", "features": features}]})
    return body.replace('"age": 80.0', f'"age": {age}')


@pytest.mark.parametrize("age", ["NaN", "Infinity", "-Infinity", "1e999"])
def test_age_nan_is_refused_like_infinity(
    client: TestClient, champion: RegisteredBundle, age: str
) -> None:
    answer = client.post(
        "/v1/score", content=_record(champion, age), headers={"content-type": "application/json"}
    )
    assert answer.status_code == 400
    assert _error(answer).startswith("records[0].features.age: Input should be a finite number")
    headers = {"content-type": "application/json"}
    answer = client.post("/v1/score", content=_record(champion, "80"), headers=headers)
    assert answer.status_code == 200, answer.text


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/score-history", {"top_k": False}, "top_k"),
        ("/v1/score", {"top_k": True}, "top_k"),
        ("/v1/score", {"top_k": 2.0}, "top_k"),
        ("/v1/weekly-list", {"week": None}, "week"),
        ("/v1/referrals", {"week": None}, "week"),
        ("/v1/weekly-list", {"limit": False}, "limit"),
        ("/v1/weekly-list", {"new_only": 1}, "new_only"),
    ],
)
def test_fields_keep_to_the_types_the_description_gives(
    client: TestClient, champion: RegisteredBundle, path: str, body: dict, field: str
) -> None:
    person = {"id": "p1", "birth_month": "1950-01-01", "sex": "F", "events": []}
    complete = {
        "/v1/score": {"records": [json.loads(_record(champion, "80"))["records"][0]]},
        "/v1/score-history": {"people": [person], "as_of": "2025-01-01"},
    }.get(path, {})
    answer = client.post(path, json=complete | body)
    assert answer.status_code == 400, answer.text
    assert _error(answer).startswith(f"{field}: ")


@pytest.fixture(scope="module")
def real_server(
    champion: RegisteredBundle, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """A real server on loopback with RISKSTRAT_TRUSTED_PROXIES unset (no proxy trusted)."""
    folder = tmp_path_factory.mktemp("no-proxies")
    environment = {
        "RISKSTRAT_TRACKING_URI": tracking_uri,
        "RISKSTRAT_ACCESS_FILE": str(
            write_access(folder / "access.toml", {"ds": ("data_scientist", "ds-token", [])})
        ),
        "RISKSTRAT_AUDIT_LOG": str(folder / "audit.jsonl"),
        "RISKSTRAT_TRUSTED_PROXIES": "0",
    }
    with started_service(environment, ready=False) as server:
        yield server.url, folder / "audit.jsonl"


def test_claimed_addresses_are_not_believed_without_trusted_proxies(
    real_server: tuple[str, Path],
) -> None:
    url, audit = real_server
    before = len(audit.read_text().splitlines()) if audit.exists() else 0
    with httpx.Client(base_url=url, follow_redirects=False, timeout=30) as browser:
        for i in range(throttle.PER_CLIENT + 1):
            claimed = f"203.0.113.{i}"
            answer = browser.post(
                "/ui/login",
                data={"token": f"guess-{i}"},
                headers={
                    "X-Forwarded-For": claimed,
                    "Forwarded": f"for={claimed};proto=https",
                    "X-Forwarded-Proto": "https",
                },
            )
    assert answer.status_code == 429, answer.text  # one address: the connection's
    lines = [json.loads(line) for line in audit.read_text().splitlines()[before:]]
    assert {e["client"] for e in lines} == {"127.0.0.1"}
    assert lines[-1]["status"] == 429 and {e["status"] for e in lines} == {401, 429}


def test_the_description_says_which_bodies_are_required(real_server: tuple[str, Path]) -> None:
    """A body with required fields is required (schemathesis sent none, by the description)."""
    url, _ = real_server
    paths = httpx.get(f"{url}/docs.json", timeout=30).json()["paths"]
    bodies = {p: item.get("post", {}).get("requestBody", {}) for p, item in paths.items()}
    required = {p for p, body in bodies.items() if body.get("required")}
    assert required == {"/v1/score", "/v1/score-history", "/v1/evaluation"}
