"""The audit log as a tamper-evident chain: lines deleted, edited, moved or cut short are
found by ``riskstrat audit verify`` (naming the line); a torn tail is set aside when the
service starts; a broken chain stops the service; rotation keeps the chain; a full disk
leaves no half line; several processes append to one chain."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import multiprocessing
import os
import resource
import signal
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import write_access
from starlette.applications import Starlette
from starlette.testclient import TestClient

from riskstrat.cli import app as cli
from riskstrat.cli import run
from riskstrat.serving.access import AccessMiddleware
from riskstrat.serving.audit import AuditError, AuditLog, audit_key, rotated_files
from riskstrat.serving.audit_chain import entry_of, verify_files
from riskstrat.serving.rotation import MIB, Rotation
from riskstrat.serving.settings import ServiceSettings

KEY = b"k" * 32


def _entry(n: int, when: str = "2026-03-02T10:00:00.000+00:00") -> dict:
    return {"when": when, "who": "north-team", "endpoint": "/v1/score", "patient_ids": [f"p{n}"]}


def _log(folder: Path, lines: int = 0, rotation: Rotation | None = None) -> AuditLog:
    log = AuditLog(folder / "audit.jsonl", KEY, rotation)
    for n in range(lines):
        log.write(_entry(n))
    return log


def _verify(*files: Path, key_file: Path) -> tuple[int, str]:
    """``riskstrat audit verify FILE... --key-file KEY``: exit code and what it said (on
    either stream)."""
    said = io.StringIO()
    args = ["audit", "verify", *map(str, files), "--key-file", str(key_file)]
    with contextlib.redirect_stderr(said), contextlib.redirect_stdout(said):
        try:
            run(cli, args)
        except SystemExit as exc:
            return int(exc.code or 0), said.getvalue()
    return 0, said.getvalue()


@pytest.fixture
def key_file(tmp_path: Path) -> Path:
    path = tmp_path / "keys" / "audit.key"
    path.parent.mkdir()
    path.write_bytes(KEY + b"\n")
    return path


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


# verify


def test_a_whole_chain_verifies_and_says_how_long_it_is(tmp_path: Path, key_file: Path) -> None:
    log = _log(tmp_path, 5)
    code, said = _verify(log.path, key_file=key_file)
    assert code == 0 and "5 audit lines verify (records 1-5)" in said
    assert [entry_of(line)["patient_ids"] for line in _lines(log.path)] == [
        [f"p{n}"] for n in range(5)
    ]


@pytest.mark.parametrize(
    ("tamper", "found"),
    [
        (lambda lines: lines[:2] + lines[3:], "line 3: record 3 is missing before it"),
        (lambda lines: lines[:1], None),  # the end cut off: only the head tells (see below)
        (
            lambda lines: [*lines[:2], lines[2].replace(b"p2", b"p9"), *lines[3:]],
            "line 3 (record 3) was edited, or sealed with another key",
        ),
        (
            lambda lines: [lines[0], lines[2], lines[1], *lines[3:]],
            "line 2: record 2 is missing before it",
        ),
        (lambda lines: [*lines[:3], lines[2], *lines[3:]], "line 4 is record 3 after record 3"),
        (lambda lines: lines[1:], "line 1 is record 2 but does not start a file"),
        (lambda lines: [*lines[:4], lines[4][:-9]], "line 5 is torn"),
        (lambda lines: [*lines[:2], b'{"who":"x"}\n', *lines[2:]], "line 3 is not a sealed"),
    ],
    ids=["deleted", "end cut", "edited", "reordered", "repeated", "start cut", "torn", "added"],
)
def test_verify_names_the_first_line_deleted_edited_or_moved(
    tmp_path: Path, key_file: Path, tamper, found: str | None
) -> None:
    log = _log(tmp_path, 5)
    log.path.write_bytes(b"".join(tamper(_lines(log.path))))
    code, said = _verify(log.path, key_file=key_file)
    if found is None:
        assert code == 0 and "1 audit lines verify (records 1-1)" in said
    else:
        assert code == 2 and said.count("\n") == 1 and f"{log.path} {found}" in said


def test_lines_sealed_with_another_key_do_not_verify(tmp_path: Path) -> None:
    log = _log(tmp_path, 2)
    other = tmp_path / "other.key"
    other.write_bytes(b"o" * 32)
    code, said = _verify(log.path, key_file=other)
    assert code == 2 and "line 1 (record 1) was edited, or sealed with another key" in said
    other.write_bytes(b"short")
    code, said = _verify(log.path, key_file=other)
    assert code == 2 and "has 5 bytes; it needs at least 32" in said


# Starting: a torn tail set aside, a broken chain refused


def test_a_torn_tail_is_set_aside_on_start_and_never_glued_to_the_next_line(
    tmp_path: Path, key_file: Path, caplog: pytest.LogCaptureFixture
) -> None:
    log = _log(tmp_path, 3)
    whole = log.path.read_bytes()
    torn = json.dumps(_entry(3))[:40].encode()  # what a write cut short by a crash leaves
    with log.path.open("ab") as handle:
        handle.write(torn)

    restarted = AuditLog(log.path, KEY)
    assert restarted.start().lines == 3
    aside = list(tmp_path.glob("audit.jsonl.torn-*"))
    assert len(aside) == 1 and aside[0].read_bytes() == torn
    assert log.path.read_bytes() == whole
    assert str(aside[0]) in caplog.text and "torn" in caplog.text
    restarted.write(_entry(4))
    code, said = _verify(log.path, key_file=key_file)
    assert code == 0 and "4 audit lines verify" in said


def test_a_last_line_that_does_not_parse_is_set_aside_too(tmp_path: Path) -> None:
    log = _log(tmp_path, 2)
    with log.path.open("ab") as handle:
        handle.write(b"\x00\x00\x00\n")  # blocks of zeros after a power cut
    assert AuditLog(log.path, KEY).start().lines == 2
    assert [p.read_bytes() for p in tmp_path.glob("audit.jsonl.torn-*")] == [b"\x00\x00\x00\n"]


def _middleware(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> TestClient:
    access = write_access(tmp_path / "access.toml", {"system": ("system", "t-system", [])})
    monkeypatch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    monkeypatch.setenv("RISKSTRAT_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    monkeypatch.setenv("RISKSTRAT_AUDIT_KEY_FILE", str(tmp_path / "keys" / "audit.key"))
    return TestClient(AccessMiddleware(Starlette()))


def test_the_service_refuses_to_start_on_a_broken_chain_naming_the_line(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch, caplog
) -> None:
    log = _log(tmp_path, 4)
    lines = _lines(log.path)
    log.path.write_bytes(b"".join([lines[0], lines[1].replace(b"p1", b"p7"), *lines[2:]]))
    client = _middleware(tmp_path, monkeypatch)
    answer = client.post("/v1/model", headers={"Authorization": "Bearer t-system"})
    assert answer.status_code == 503 and "restarted" in answer.json()["error"]
    assert client.get("/readyz").status_code == 503
    assert f"{log.path} line 2 (record 2) was edited" in caplog.text

    access = tmp_path / "access.toml"
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as stopped:
        run(cli, ["serve", "--access", str(access), "--workdir", str(tmp_path)])
    assert stopped.value.code == 2


def test_a_good_chain_starts_and_goes_on(
    tmp_path: Path, key_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _log(tmp_path, 2)
    client = _middleware(tmp_path, monkeypatch)
    answer = client.post("/v1/score", json={"records": []}, headers={"Authorization": "Bearer x"})
    assert answer.status_code == 401
    assert verify_files([tmp_path / "audit.jsonl"], KEY).head.seq == 3


def test_the_default_key_is_made_once_beside_the_log_for_its_owner_only(tmp_path: Path) -> None:
    settings = ServiceSettings.load(audit_log=tmp_path / "audit.jsonl")
    key = audit_key(settings)
    made = tmp_path / "audit.key"
    assert stat.S_IMODE(made.stat().st_mode) == 0o600 and len(key) == 64
    assert audit_key(settings) == key
    given = ServiceSettings.load(audit_log=tmp_path / "audit.jsonl", audit_key_file=tmp_path / "k")
    with pytest.raises(ValueError, match="cannot read the audit key"):
        audit_key(given)  # a key file named but missing is never made up


# Rotation


def test_rotation_by_size_keeps_one_chain_across_files(tmp_path: Path, key_file: Path) -> None:
    log = _log(tmp_path, 12, Rotation(max_bytes=700))
    files = [*rotated_files(log.path), log.path]
    assert len(files) >= 3
    assert all(path.stat().st_size <= 700 for path in files)
    code, said = _verify(*files, key_file=key_file)
    assert code == 0 and "12 audit lines verify (records 1-12)" in said
    code, said = _verify(*files[1:], key_file=key_file)
    assert code == 0 and "chains to record" in said  # a later file checks on its own
    code, said = _verify(files[0], *files[2:], key_file=key_file)
    assert code == 2 and f"{files[2]} line 1: record" in said and "missing" in said
    code, said = _verify(files[1], files[0], key_file=key_file)
    assert code == 2 and "moved or repeated" in said


def test_rotation_by_date_starts_a_file_each_day(tmp_path: Path) -> None:
    log = AuditLog(tmp_path / "audit.jsonl", KEY, Rotation.parse("daily"))
    for day in (1, 1, 2, 3, 3):
        log.write(_entry(day, f"2026-03-0{day}T23:59:59.000+00:00"))
    files = [*rotated_files(log.path), log.path]
    assert [len(_lines(f)) for f in files] == [2, 1, 2]
    assert verify_files(files, KEY).head.seq == 5


def test_a_log_lost_after_rotation_chains_on_from_the_rotated_file(tmp_path: Path) -> None:
    """A crash between the rename and the next line leaves no log: the chain goes on."""
    log = _log(tmp_path, 3, Rotation(max_bytes=MIB))
    log.path.rename(tmp_path / "audit.jsonl.000000000001")
    _log(tmp_path, 2)
    assert verify_files([*rotated_files(log.path), log.path], KEY).head.seq == 5


def test_rotation_settings_are_checked() -> None:
    assert Rotation.parse("64MiB") == Rotation(max_bytes=64 * MIB)
    with pytest.raises(ValueError, match="RISKSTRAT_AUDIT_ROTATE"):
        ServiceSettings.load(audit_rotate="weekly")


# Whole lines only, under a full disk and several writers


def _append_capped(path: str, cap: int) -> str:
    """In a child: append one line with the file size capped at ``cap`` bytes (as on a
    disk that fills part-way through the write); what happened."""
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (cap, cap))
    try:
        AuditLog(Path(path), KEY).write(_entry(99))
    except AuditError as exc:
        return str(exc)
    return "written"


def test_a_write_cut_short_by_a_full_disk_leaves_nothing_behind(tmp_path: Path) -> None:
    log = _log(tmp_path, 2)
    before = log.path.read_bytes()
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        said = pool.apply(_append_capped, (str(log.path), len(before) + 30))
    assert "cannot append to the audit log" in said
    assert log.path.read_bytes() == before  # the 30 bytes that fitted were taken back
    log.write(_entry(3))
    log.close()  # its files are kept open between lines; the disk is unmounted next
    assert verify_files([log.path], KEY).head.seq == 3


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 64 KiB file system (tmpfs), where mounting is allowed (root)."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def test_on_a_really_full_disk_no_half_line_stays(tiny_disk: Path) -> None:
    log = _log(tiny_disk, 2)
    before = log.path.read_bytes()
    filler = tiny_disk / "filler"
    handle = os.open(filler, os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while os.write(handle, b"x" * 512):
            pass
    os.close(handle)
    with pytest.raises(AuditError, match="only part of the line was written"):
        log.write({**_entry(9), "patient_ids": [f"p{n}" for n in range(2000)]})
    assert log.path.read_bytes() == before
    filler.unlink()
    log.write(_entry(3))
    log.close()  # its files are kept open between lines; the disk is unmounted next
    assert verify_files([log.path], KEY).head.seq == 3


def _append_many(path: str, writer: int, count: int) -> None:
    log = AuditLog(Path(path), KEY, Rotation(max_bytes=4096))
    for n in range(count):
        log.write({**_entry(n), "writer": writer})


def test_several_processes_append_to_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("spawn" if sys.platform == "darwin" else "fork")
    workers = [context.Process(target=_append_many, args=(str(path), w, 60)) for w in range(3)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    files = [*rotated_files(path), path]
    verified = verify_files(files, KEY)
    assert verified.lines == 180 and verified.head.seq == 180 and len(files) > 1
    writers = [entry_of(line)["writer"] for f in files for line in _lines(f)]
    assert sorted(writers) == sorted([0, 1, 2] * 60)


def test_no_file_descriptor_is_left_open(tmp_path: Path) -> None:
    log = _log(tmp_path, 1)
    before = len(os.listdir("/proc/self/fd"))
    for n in range(20):
        log.write(_entry(n))
    assert len(os.listdir("/proc/self/fd")) == before


def test_the_log_says_where_the_chain_stands_when_it_starts(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    _log(tmp_path, 3)
    with caplog.at_level(logging.INFO, logger="riskstrat.serving.audit"):
        AuditLog(tmp_path / "audit.jsonl", KEY).start()
    assert "3 audit lines verify (records 1-3); head MAC " in caplog.text
