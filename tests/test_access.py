"""Access control: tokens by hash, roles per endpoint, clear refusals, bad access files named."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from servers import write_access
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from serving.access import (
    AccessConfigError,
    AccessMiddleware,
    OutsideScopeError,
    Principal,
    asked_localities,
    identify,
    load_principals,
    refusal,
)
from serving.settings import SettingsError


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


def test_the_middleware_refuses_to_start_without_its_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RISKSTRAT_ACCESS_FILE", raising=False)
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    with pytest.raises(SettingsError, match="set RISKSTRAT_ACCESS_FILE"):
        AccessMiddleware(_pages_everywhere())
