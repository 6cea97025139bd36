"""No patient data leaves without its audit line: with the audit log unwritable (a folder in
its place, a full disk, a read-only file system), patient-data requests are 503s carrying
nothing patient-level, readiness says not ready, and both recover when the log does. A bad
access file leaves the real service answering /livez, never a 500."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest
from servers import started_service, write_access
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving import audit as audit_module
from riskstrat.serving.access import UNAUDITED, AccessMiddleware, note
from riskstrat.serving.audit import audit_writable

TOKEN = {"Authorization": "Bearer t-system"}
SCORES = {"records": [{"id": "pt0042", "features": {}}, {"id": "pt0043", "features": {}}]}


async def _score(request: Request) -> JSONResponse:
    """Stands in for /v1/score: notes the ids it shows, then answers with them."""
    ids = [r["id"] for r in (await request.json())["records"]]
    note(patient_ids=ids, model_version="3")
    return JSONResponse({"scores": [{"id": i, "risk": 0.5} for i in ids]})


def _app() -> Starlette:
    return Starlette(
        routes=[
            Route("/v1/score", _score, methods=["POST"]),
            Route("/v1/model", lambda _: JSONResponse({"model": "m"}), methods=["POST"]),
            Route("/readyz", lambda _: PlainTextResponse("ready")),
        ]
    )


def _folder(log: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    kept = log.with_suffix(".kept")
    log.rename(kept)
    log.mkdir()
    return lambda: (log.rmdir(), kept.rename(log))


def _full_disk(log: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Every write fails with ENOSPC, as on a full disk (opening still works)."""
    kept = log.with_suffix(".kept")
    log.rename(kept)
    log.symlink_to("/dev/full")
    return lambda: (log.unlink(), kept.rename(log))


def _read_only(log: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[[], None]:
    """Opening the log for writing, and writing to it through a handle opened before, fail
    with EROFS, as on a file system remounted read-only (the tests may run as root, whom a
    chmod does not stop)."""
    real_open, real_write = os.open, os.write
    refused = OSError(errno.EROFS, os.strerror(errno.EROFS), str(log))

    def refusing_open(path, flags, *args, **kwargs):
        if Path(path) == log and flags & (os.O_WRONLY | os.O_RDWR):
            raise refused
        return real_open(path, flags, *args, **kwargs)

    def refusing_write(handle: int, data: bytes) -> int:
        if os.readlink(f"/proc/self/fd/{handle}") == str(log):
            raise refused
        return real_write(handle, data)

    monkeypatch.setattr(audit_module.os, "open", refusing_open)
    monkeypatch.setattr(audit_module.os, "write", refusing_write)
    return lambda: (
        monkeypatch.setattr(audit_module.os, "open", real_open),
        monkeypatch.setattr(audit_module.os, "write", real_write),
    )


@pytest.fixture
def served(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    access = write_access(tmp_path / "access.toml", {"system": ("system", "t-system", [])})
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    yield TestClient(AccessMiddleware(_app()))


def _lines(log: Path) -> list[dict]:
    return [json.loads(line) for line in log.read_text().splitlines()]


def _ready() -> bool:
    """What BentoML's /readyz asks the service (a model is loaded, as here): ready, or not
    (it raises NotReady with the reasons)."""
    from riskstrat.serving.service import NotReady, RiskService

    loaded = SimpleNamespace(model=object(), _model_problem=lambda: None)
    try:
        return RiskService.inner.__is_ready__(loaded)
    except NotReady:
        return False


@pytest.mark.parametrize("fault", [_folder, _full_disk, _read_only])
def test_no_patient_data_leaves_without_its_audit_line(
    served: TestClient,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    fault: Callable[[Path, pytest.MonkeyPatch], Callable[[], None]],
) -> None:
    log = tmp_path / "audit.jsonl"
    assert served.post("/v1/score", json=SCORES, headers=TOKEN).status_code == 200
    assert _ready() and served.get("/readyz").text == "ready"
    repair = fault(log, monkeypatch)

    answer = served.post("/v1/score", json=SCORES, headers=TOKEN)
    assert answer.status_code == 503 and answer.json() == {"error": UNAUDITED}
    assert "pt004" not in answer.text
    refused = served.post("/v1/score", json=SCORES)  # a 401 that cannot be audited either
    assert refused.status_code == 503 and "pt004" not in refused.text
    assert served.get("/readyz").status_code == 503
    assert not audit_writable() and not _ready()
    assert served.post("/v1/model", headers=TOKEN).json() == {"model": "m"}  # no patient data
    errors = [r for r in caplog.records if r.levelname == "ERROR"]
    assert len(errors) == 1 and str(log) in errors[0].getMessage()
    assert errors[0].exc_info is None  # one line, no traceback

    repair()
    assert served.post("/v1/score", json=SCORES, headers=TOKEN).status_code == 200
    assert served.get("/readyz").text == "ready" and _ready()
    shown = [e for e in _lines(log) if e["status"] == 200]
    assert len(shown) == 2 and shown[-1]["patient_ids"] == ["pt0042", "pt0043"]


def test_the_audit_line_is_written_before_the_answer_starts(
    served: TestClient, tmp_path: Path
) -> None:
    """The order that makes the guarantee: the line is on disk when the first byte leaves."""
    seen: list[int] = []
    middleware = served.app

    async def spying(scope, receive, send):
        async def watched(message):
            if message["type"] == "http.response.start":
                seen.append(len(_lines(tmp_path / "audit.jsonl")))
            await send(message)

        await middleware(scope, receive, watched)

    TestClient(spying).post("/v1/score", json=SCORES, headers=TOKEN)
    assert seen == [1]


# The real service


@pytest.mark.slow
def test_a_running_service_with_a_folder_for_its_audit_log_serves_no_scores(
    champion: RegisteredBundle, tracking_uri: str, tmp_path: Path
) -> None:
    (tmp_path / "audit.jsonl").mkdir()
    environment = {
        "RISKSTRAT_TRACKING_URI": tracking_uri,
        "RISKSTRAT_ACCESS_FILE": str(
            write_access(tmp_path / "access.toml", {"system": ("system", "t-system", [])})
        ),
        "RISKSTRAT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    record = {"id": "pt0042", "features": dict.fromkeys(champion.bundle.feature_names, 0.0)}
    with started_service(environment, ready=False) as server, httpx.Client() as http:
        assert http.get(f"{server.url}/livez").status_code == 200
        ready = http.get(f"{server.url}/readyz")
        assert ready.status_code == 503 and "audit log" in ready.text
        scored = http.post(f"{server.url}/v1/score", json={"records": [record]}, headers=TOKEN)
        assert scored.status_code == 503 and "pt0042" not in scored.text
        assert http.post(f"{server.url}/v1/model", headers=TOKEN).status_code == 200


@pytest.mark.slow
def test_a_running_service_with_a_bad_access_file_answers_probes_without_a_500(
    champion: RegisteredBundle, tracking_uri: str, tmp_path: Path
) -> None:
    access = tmp_path / "access.toml"
    write_access(access, {"north-team": ("locality_team", "t-north", [])})
    environment = {
        "RISKSTRAT_TRACKING_URI": tracking_uri,
        "RISKSTRAT_ACCESS_FILE": str(access),
        "RISKSTRAT_AUDIT_LOG": str(tmp_path / "audit.jsonl"),
    }
    with started_service(environment, ready=False) as server, httpx.Client() as http:
        assert http.get(f"{server.url}/livez").status_code == 200
        assert http.get(f"{server.url}/readyz").status_code == 503
        answer = http.post(f"{server.url}/v1/model", headers={"Authorization": "Bearer t-north"})
        assert answer.status_code == 503 and "restarted" in answer.json()["error"]
