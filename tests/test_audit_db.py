"""The audit chain in PostgreSQL, on a real server: an append-only table that several
writers (servers, workers) append to at once as one chain, refused UPDATE and DELETE,
checked on start and by ``riskstrat audit verify --database``."""

from __future__ import annotations

import contextlib
import io
import multiprocessing
from pathlib import Path

import psycopg
import pytest
from servers import write_access
from starlette.applications import Starlette
from starlette.testclient import TestClient

from riskstrat.cli import app as cli
from riskstrat.cli import run
from riskstrat.serving.access import AccessMiddleware
from riskstrat.serving.audit import AuditError, audit_writable
from riskstrat.serving.audit_chain import ChainBrokenError, entry_of
from riskstrat.serving.audit_db import DatabaseAuditLog, verify_table
from riskstrat.serving.database import connect
from riskstrat.serving.settings import ServiceSettings

KEY = b"d" * 32


def _entry(n: int, writer: int = 0) -> dict:
    return {"when": "2026-03-02T10:00:00.000+00:00", "who": f"w{writer}", "n": n}


def _append_many(url: str, writer: int, count: int) -> None:
    log = DatabaseAuditLog(url, KEY)
    log.start()
    for n in range(count):
        log.write(_entry(n, writer))


def _rows(url: str) -> list[dict]:
    with connect(url) as connection:
        lines = connection.execute("SELECT line FROM audit_log ORDER BY seq").fetchall()
    return [entry_of(bytes(line)) for (line,) in lines]


def test_two_writers_appending_at_once_make_one_verifying_chain(postgres_url: str) -> None:
    context = multiprocessing.get_context("fork")
    writers = [context.Process(target=_append_many, args=(postgres_url, w, 40)) for w in (1, 2)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(60)
        assert writer.exitcode == 0
    verified = verify_table(postgres_url, KEY)
    assert verified.lines == 80 and verified.head.seq == 80
    assert sorted((e["who"], e["n"]) for e in _rows(postgres_url)) == sorted(
        (f"w{w}", n) for w in (1, 2) for n in range(40)
    )


def test_the_table_refuses_update_delete_and_truncate(postgres_url: str) -> None:
    log = DatabaseAuditLog(postgres_url, KEY)
    log.start()
    log.write(_entry(1))
    with connect(postgres_url) as connection:
        for statement in (
            "UPDATE audit_log SET line = line",
            "DELETE FROM audit_log",
            "TRUNCATE audit_log",
        ):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                connection.execute(statement)
    assert verify_table(postgres_url, KEY).lines == 1


def _tamper(url: str, statement: str) -> None:
    """What only the table's owner could do: switch the triggers off and change a row."""
    with connect(url) as connection:
        connection.execute("ALTER TABLE audit_log DISABLE TRIGGER USER")
        connection.execute(statement)
        connection.execute("ALTER TABLE audit_log ENABLE TRIGGER USER")


def _verify_database(url: str, key_file: Path) -> tuple[int, str]:
    said = io.StringIO()
    args = ["audit", "verify", "--database", url, "--key-file", str(key_file)]
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
        try:
            run(cli, args)
        except SystemExit as exc:
            return int(exc.code or 0), said.getvalue()
    return 0, said.getvalue()


def test_verify_finds_a_deleted_or_edited_row_and_the_service_will_not_start(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY)
    log = DatabaseAuditLog(postgres_url, KEY)
    log.start()
    for n in range(4):
        log.write(_entry(n))
    code, said = _verify_database(postgres_url, key_file)
    assert code == 0 and "4 audit lines verify (records 1-4)" in said

    _tamper(
        postgres_url,
        "UPDATE audit_log SET line = convert_to(replace(convert_from(line, 'UTF8'), "
        "'\"n\":2', '\"n\":7'), 'UTF8') WHERE seq = 3",
    )
    code, said = _verify_database(postgres_url, key_file)
    assert code == 2 and "row seq=3 (record 3) was edited" in said
    _tamper(postgres_url, "DELETE FROM audit_log WHERE seq = 2")
    code, said = _verify_database(postgres_url, key_file)
    assert code == 2 and "row seq=3: record 2 is missing before it" in said

    with pytest.raises(ChainBrokenError, match="row seq=3: record 2 is missing"):
        DatabaseAuditLog(postgres_url, KEY).start()
    access = write_access(tmp_path / "access.toml", {"system": ("system", "t-system", [])})
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    monkeypatch.setenv("RISKSTRAT_DATABASE_URL", postgres_url)
    monkeypatch.setenv("RISKSTRAT_AUDIT_KEY_FILE", str(key_file))
    client = TestClient(AccessMiddleware(Starlette()))
    assert client.post("/v1/model", headers={"Authorization": "Bearer t-system"}).status_code == 503
    assert "record 2 is missing" in caplog.text


def test_the_service_audits_into_the_database_when_it_is_set(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key_file = tmp_path / "audit.key"
    key_file.write_bytes(KEY)
    access = write_access(tmp_path / "access.toml", {"system": ("system", "t-system", [])})
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("RISKSTRAT_DATABASE_URL", postgres_url)
    monkeypatch.setenv("RISKSTRAT_AUDIT_KEY_FILE", str(key_file))
    servers = [TestClient(AccessMiddleware(Starlette())) for _ in range(2)]
    for server in servers:  # two servers behind one load balancer, anonymous patient requests
        assert server.post("/v1/score", json={"records": [{"id": "pt1"}]}).status_code == 401
    assert [e["asked"] for e in _rows(postgres_url)] == [{"ids": ["pt1"]}] * 2
    assert verify_table(postgres_url, KEY).lines == 2
    assert not (tmp_path / "audit.jsonl").exists()
    assert audit_writable(ServiceSettings.load())


def test_the_database_key_must_be_named_and_an_unreachable_database_is_a_503(
    postgres_url: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match="RISKSTRAT_AUDIT_KEY_FILE"):
        from riskstrat.serving.audit import audit_key

        audit_key(ServiceSettings.load(database_url=postgres_url, audit_log=tmp_path / "a"))
    gone = postgres_url.rsplit(":", 1)[0] + ":1/nothing"
    log = DatabaseAuditLog(gone, KEY)
    assert log.start() is None
    with pytest.raises(AuditError, match="cannot append to the audit log"):
        log.write(_entry(1))
    assert log.problem() and "last write failed" in log.problem()
