"""Access control: tokens by hash, roles per endpoint, clear refusals, bad access files named."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from servers import write_access
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from riskstrat.serving.access import (
    ASKED_BYTES,
    UNCHECKED,
    AccessConfigError,
    AccessMiddleware,
    OutsideScopeError,
    Principal,
    asked_localities,
    client_address,
    identify,
    load_principals,
    refusal,
    token_digest,
)


def _entry(role: str, token: str, extra: str = "") -> str:
    digest = hashlib.sha256(token.encode()).hexdigest()
    return f'[[token]]\nname = "{role}"\nrole = "{role}"\nsha256 = "{digest}"\n{extra}\n'


def test_tokens_are_matched_by_hash(tmp_path: Path) -> None:
    path = tmp_path / "access.toml"
    path.write_text(
        _entry("system", "abc") + _entry("locality_team", "xyz", 'localities = ["North"]')
    )
    principals = load_principals(path)
    assert "abc" not in path.read_text()
    assert identify(principals, "Bearer abc") == Principal("system", "system")
    assert identify(principals, "Bearer xyz").localities == ("North",)
    assert identify(principals, "Bearer nope") is None
    assert identify(principals, "abc") is None
    assert identify(principals, None) is None


@pytest.mark.parametrize(
    ("role", "path", "expected"),
    [
        (None, "/v1/score", 401),
        (None, "/livez", None),
        (None, "/metrics", None),
        ("system", "/v1/score", None),
        ("data_scientist", "/v1/score-history", None),
        ("locality_team", "/v1/score", 403),
        ("social_prescriber", "/v1/score-history", 403),
        ("social_prescriber", "/v1/model", None),
        ("system", "/v1/unknown", 403),
    ],
)
def test_who_may_call_what(role: str | None, path: str, expected: int | None) -> None:
    principal = Principal("someone", role) if role else None
    answer = refusal(principal, path)
    assert (answer[0] if answer else None) == expected


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[[token]]\nrole = "admin"\nsha256 = "' + "a" * 64 + '"\n', "role 'admin' is not one of"),
        ('[[token]]\nrole = "system"\nsha256 = "short"\n', "needs a 64-character sha256"),
        ('[[token]]\nrole = "locality_team"\nsha256 = "' + "a" * 64 + '"\n', "without localities"),
        ("not toml [", "cannot read the access file"),
    ],
)
def test_bad_access_files_are_named(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "access.toml"
    path.write_text(text)
    with pytest.raises(AccessConfigError, match=message):
        load_principals(path)


def test_locality_scope_of_list_requests() -> None:
    team = Principal("north-team", "locality_team", ("North",))
    assert asked_localities(b'{"localities": ["North", "South"]}') == ["North", "South"]
    assert asked_localities(b'{"criteria": {"localities": "South, Central"}}') == [
        "South",
        "Central",
    ]
    assert asked_localities(b"not json") == asked_localities(b"[1]") == []
    assert team.localities_for(["North"]) == team.localities_for() == ("North",)
    with pytest.raises(OutsideScopeError) as refused:
        team.localities_for(["North", "South"])
    assert str(refused.value) == "north-team may not see locality South (allowed: North)"
    assert refused.value.outside == ("South",)
    everyone = Principal("system", "system")
    assert everyone.localities_for(["South"]) == ("South",)
    assert everyone.localities_for() == ()  # every locality


def _pages_everywhere() -> Starlette:
    """An app that would show anything to anyone: what reaches it got through."""
    shown = Route("/{path:path}", lambda _: PlainTextResponse("shown"), methods=["GET", "POST"])
    return Starlette(routes=[shown])


def test_without_a_page_gate_pages_are_refused_like_unknown_endpoints(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = write_access(tmp_path / "access.toml", {"ds": ("data_scientist", "t-ds", [])})
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    client = TestClient(AccessMiddleware(_pages_everywhere()))
    assert client.get("/ui/").status_code == 401
    refused = client.get("/ui/patient", headers={"Authorization": "Bearer t-ds"})
    assert refused.status_code == 403 and refused.json()["error"] == "no role may call /ui/patient"
    assert client.post("/v1/model", headers={"Authorization": "Bearer t-ds"}).text == "shown"


def _serving(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, access: Path) -> TestClient:
    """The middleware over ``_pages_everywhere``, with ``access`` and an audit log."""
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    return TestClient(AccessMiddleware(_pages_everywhere()))


def test_without_its_files_the_middleware_refuses_all_but_liveness(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("RISKSTRAT_ACCESS_FILE", raising=False)
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    client = TestClient(AccessMiddleware(_pages_everywhere()))
    assert "set RISKSTRAT_ACCESS_FILE" in caplog.text
    assert client.get("/livez").text == "shown"
    for path in ("/readyz", "/v1/model", "/v1/score", "/ui/"):
        answer = client.post(path, headers={"Authorization": "Bearer anything"})
        assert answer.status_code == 503, path
        assert answer.json()["error"] == UNCHECKED


def test_a_bad_access_file_is_named_at_start_and_no_probe_is_a_500(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """What `riskstrat token --role locality_team` without --locality used to write."""
    access = tmp_path / "access.toml"
    access.write_text(
        _entry("system", "abc")
        + '[[token]]\nname = "north-team"\nrole = "locality_team"\nsha256 = "'
        + "b" * 64
        + '"\n'
    )
    client = _serving(tmp_path, monkeypatch, access)
    (logged,) = [r for r in caplog.records if r.levelname == "ERROR"]
    assert f"{access}: token[1] (north-team): is a locality team without localities" in (
        logged.getMessage()
    )
    assert client.get("/livez").status_code == 200
    assert client.get("/readyz").status_code == 503
    answer = client.post("/v1/score", headers={"Authorization": "Bearer abc"})
    assert answer.status_code == 503 and "restarted" in answer.json()["error"]
    assert not (tmp_path / "audit.jsonl").exists() or not (tmp_path / "audit.jsonl").read_text()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            _entry("system", "a", 'locality = ["North"]'),
            "token[0] (system): unknown field 'locality'",
        ),
        (_entry("system", "a", 'localities = [""]'), "localities must be a list of locality"),
        (_entry("system", "a") + _entry("data_scientist", "a"), "the same token as system"),
        ('[[token]]\nrole = "system"\nsha256 = "' + "g" * 64 + '"\n', "64-character sha256"),
    ],
)
def test_an_entry_the_service_would_misread_is_refused(
    tmp_path: Path, text: str, message: str
) -> None:
    """A misspelt ``locality`` would otherwise give a team every locality."""
    path = tmp_path / "access.toml"
    path.write_text(text)
    with pytest.raises(AccessConfigError, match=re.escape(message)):
        load_principals(path)


# Refusals say what they asked for, and every audit line whose client it came from


def _audited(tmp_path: Path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]


def test_refused_requests_are_audited_with_what_they_asked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tokens = {"north": ("locality_team", "t-north", ["North"]), "ds": ("data_scientist", "t", [])}
    client = _serving(tmp_path, monkeypatch, write_access(tmp_path / "access.toml", tokens))
    north = {"Authorization": "Bearer t-north"}
    scores = {"records": [{"id": "pt0042", "features": {}}, {"id": "pt0043", "features": {}}]}
    assert client.post("/v1/score", json=scores, headers=north).status_code == 403
    assert client.post("/v1/score", json=scores).status_code == 401
    wider = {"localities": ["North", "South"], "week": "2026-10-26"}
    assert client.post("/v1/weekly-list", json=wider, headers=north).status_code == 403
    referral = {"criteria": {"localities": "South"}}
    assert client.post("/v1/referrals", json=referral, headers=north).status_code == 403
    role, anonymous, scope, criteria = _audited(tmp_path)
    assert (role["who"], role["status"], role["patients"]) == ("north", 403, 0)
    assert role["asked"] == anonymous["asked"] == {"ids": ["pt0042", "pt0043"]}
    assert (anonymous["who"], anonymous["status"]) == (None, 401)
    assert scope["asked"] == {"localities": ["North", "South"], "week": "2026-10-26"}
    assert criteria["asked"] == {"localities": ["South"]}


def test_a_huge_refused_body_is_not_read_to_the_end(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = _serving(tmp_path, monkeypatch, write_access(tmp_path / "access.toml", {}))
    body = b'{"records": [' + b'{"id": "x", "features": {}},' * 50_000 + b"]}"
    assert len(body) > ASKED_BYTES
    assert client.post("/v1/score", content=body).status_code == 401
    assert _audited(tmp_path)[-1]["asked"] == {"unread": f"a body of more than {ASKED_BYTES} bytes"}


def test_audit_lines_name_the_client_and_trust_forwarded_for_only_when_told(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    access = write_access(tmp_path / "access.toml", {"ds": ("data_scientist", "t", [])})
    forwarded = {"X-Forwarded-For": "6.6.6.6, 10.1.2.3"}
    _serving(tmp_path, monkeypatch, access).post("/v1/score", json={}, headers=forwarded)
    monkeypatch.setenv("RISKSTRAT_TRUSTED_PROXIES", "1")
    behind_proxy = TestClient(AccessMiddleware(_pages_everywhere()), client=("10.9.9.9", 4000))
    behind_proxy.post("/v1/score", json={}, headers=forwarded)
    behind_proxy.post("/v1/score", json={})  # the proxy did not say: its own address
    assert [e["client"] for e in _audited(tmp_path)] == ["testclient", "10.1.2.3", "10.9.9.9"]
    two_proxies = {"x-forwarded-for": "6.6.6.6, 10.1.2.3"}
    assert client_address({"client": ("1.2.3.4", 5)}, two_proxies, proxies=2) == "6.6.6.6"


def _token(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    """Exit code and output of ``riskstrat token argv`` (standard error when it fails)."""
    from riskstrat.cli import main

    try:
        main(["token", *argv])
    except SystemExit as stopped:
        return int(stopped.code or 0), capsys.readouterr().err
    return 0, capsys.readouterr().out


def test_token_refuses_an_entry_the_service_would_refuse(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A locality team without --locality used to be written, then took the service down."""
    access = tmp_path / "access.toml"
    code, printed = _token(
        capsys, "--name", "n", "--role", "locality_team", "--access", str(access)
    )
    assert code == 2 and len(printed.splitlines()) == 1
    assert printed.startswith(f"[riskstrat] error: {access}: token[0] (n): is a locality team")
    assert "nothing was added" in printed and not access.exists()
    broken = '[[token]]\nrole = "system"\nsha256 = "short"\n'
    access.write_text(broken)
    code, printed = _token(capsys, "--name", "me", "--role", "system", "--access", str(access))
    assert code == 2 and "token[0]: needs a 64-character sha256" in printed
    assert access.read_text() == broken
    access.unlink()
    code, printed = _token(
        capsys,
        "--name",
        "n",
        "--role",
        "locality_team",
        "--locality",
        "North",
        "--access",
        str(access),
    )
    assert code == 0 and load_principals(access)[token_digest(printed.splitlines()[-1])] == (
        Principal("n", "locality_team", ("North",))
    )
