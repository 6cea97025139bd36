"""The service's audit log: append-only JSON lines, one per request that touches patient data
or reads an evaluation (written by ``serving.access`` and the pages' gate), sealed into a
chain (``serving.audit_chain``), and whether it can be written now (readiness depends on it).

Each line is written whole or not at all: one ``write`` of the complete line on an
``O_APPEND`` file, undone if only part of it went (a full disk), and flushed (``fdatasync``)
before the answer it records leaves. Several worker processes append to one log: an
``fcntl`` lock on ``<log>.lock`` (and a thread lock within a process) covers reading the
chain's head and appending the next line; the flush comes after the lock is let go, shared
by the lines written meanwhile and run by a flushing process of each worker's
(``serving.audit_flush``), so that one disk flush serves many requests and the event loop
never waits for the disk. The service appends on its event loop when the lock is free at
once (it is held for microseconds), and from a thread when it is not. When the service
starts, a torn last line (no newline, or not a sealed line: a power cut during a write) is
moved aside to ``<log>.torn-<time>`` and reported, and the current file must verify, or the
service refuses every request and says which line breaks the chain.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import logging
import os
import re
import secrets
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

from riskstrat.common.atomic import sync_folder
from riskstrat.serving.audit_chain import (
    AuditKeyError,
    Chain,
    ChainBrokenError,
    Head,
    Verified,
    lines_of,
    read_key,
    seal,
    unseal,
)
from riskstrat.serving.audit_flush import Flushed, Flusher, in_thread
from riskstrat.serving.rotation import DEFAULT, Rotation
from riskstrat.serving.settings import ServiceSettings

logger = logging.getLogger(__name__)
# The audit log's disk needs at least this much free space to count as writable.
AUDIT_FREE_BYTES = 1 << 20
# After a failed audit write, readiness stays false this long (then the next request retries).
AUDIT_RETRY_SECONDS = 30.0
_BLOCK = 1 << 16  # read backwards from the end this much at a time to find the last line


class AuditError(RuntimeError):
    """An audit line could not be written; names the log and why."""


# The last failed write to each audit log in this process, by its name: (monotonic time, why).
_failures: dict[str, tuple[float, str]] = {}


def recent_failure(name: str) -> str | None:
    """Why the last write to the audit log ``name`` failed, if that was in the last
    ``AUDIT_RETRY_SECONDS`` (a fault the other checks cannot see, such as a quota)."""
    failed = _failures.get(name)
    if failed and time.monotonic() - failed[0] < AUDIT_RETRY_SECONDS:
        return f"{name}: the last write failed ({failed[1]})"
    return None


@contextlib.contextmanager
def recording_failures(name: str) -> Iterator[None]:
    """Around one audit write to the log ``name``: a failure (an ``OSError``, a broken
    chain, or a database's ``StoreWriteError``) becomes an ``AuditError``, logged once
    when writing starts to fail and once when it works again."""
    try:
        yield
    except WRITE_FAILURES as exc:
        why = (exc.strerror if isinstance(exc, OSError) else None) or str(exc)
        if name not in _failures:
            logger.error(
                "audit log %s cannot be written (%s): requests for patient data answer "
                "503 until it can",
                name,
                why,
            )
        _failures[name] = (time.monotonic(), why)
        raise AuditError(f"{name}: cannot append to the audit log ({why})") from exc
    if _failures.pop(name, None):
        logger.warning("audit log %s is written again", name)


class StoreWriteError(Exception):
    """A store's own failure to append (its message says why): recorded like an OSError."""


WRITE_FAILURES = (OSError, ChainBrokenError, StoreWriteError)


def audit_problem(path: Path) -> str | None:
    """Why the audit log at ``path`` cannot be written now, or None: it is a folder or
    cannot be opened for appending, its disk is (nearly) full, or a write from this process
    failed in the last ``AUDIT_RETRY_SECONDS`` (a fault the other checks cannot see, such as
    a quota). Nothing is written to the log."""
    failed = recent_failure(str(path))
    if failed:
        return failed
    if path.is_dir():
        return f"{path} is a folder, not a file"
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666))
        disk = os.statvfs(path)
    except OSError as exc:
        return f"{path}: cannot open it for appending ({exc.strerror or exc})"
    if disk.f_bavail * disk.f_frsize < AUDIT_FREE_BYTES:
        return f"{path}: its disk is full"
    return None


def audit_writable(settings: ServiceSettings | None = None) -> bool:
    """Whether the configured audit log can be written now: the service is not ready while
    it cannot (``RiskService.__is_ready__``). In a database (``RISKSTRAT_DATABASE_URL``):
    whether the last write in this process worked (a probe does not connect each time)."""
    settings = settings or ServiceSettings.current()
    if settings.database_url:
        return recent_failure(database_name(settings.database_url)) is None
    return settings.audit_log is not None and audit_problem(settings.audit_log) is None


def database_name(url: str) -> str:
    """The audit table's name in messages and logs: its database URL without a password."""
    parts = urlsplit(url)
    if parts.password is None:
        return f"{url} audit_log"
    host = parts.netloc.rsplit("@", 1)[-1]
    user = f"{parts.username}@" if parts.username else ""
    return f"{parts._replace(netloc=user + host).geturl()} audit_log"


def rotated_files(path: Path) -> list[Path]:
    """The files rotated from the log at ``path``, oldest first (``<log>.<first record>``)."""
    pattern = re.compile(re.escape(path.name) + r"\.[0-9]{12}")
    found = [f for f in path.parent.glob(path.name + ".*") if pattern.fullmatch(f.name)]
    return sorted(found)


def audit_key(settings: ServiceSettings) -> bytes:
    """The chain's key: ``RISKSTRAT_AUDIT_KEY_FILE``, else ``audit.key`` beside the audit
    log, made (random, readable by its owner only) the first time the service starts. With
    a database the key file must be named: every server must seal with the same key."""
    if settings.database_url and settings.audit_key_file is None:
        raise AuditKeyError(
            "set RISKSTRAT_AUDIT_KEY_FILE: every server appending to the database's audit "
            "chain needs the same key"
        )
    path = settings.audit_key_path()
    if settings.audit_key_file is None and not path.exists():
        _make_key(path)
    return read_key(path)


def _make_key(path: Path) -> None:
    """A new random key at ``path``, published whole in one link (another worker may be
    making one at the same moment: the first wins and both read it)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    staging = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    handle = os.open(staging, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(handle, secrets.token_hex(32).encode() + b"\n")
        os.fsync(handle)
    finally:
        os.close(handle)
    try:
        os.link(staging, path)
        logger.warning("audit key made at %s: keep a copy with the log's custodian", path)
    except FileExistsError:
        pass
    finally:
        staging.unlink()
    sync_folder(path.parent)


def _last_line(handle: int, size: int) -> tuple[int, bytes]:
    """Where the last line of the open file starts, and its bytes (with its newline, if it
    has one), reading backwards from ``size``."""
    data, start = b"", size
    while start > 0:
        start = max(0, start - _BLOCK)
        data = os.pread(handle, size - start - len(data), start) + data
        cut = data.rfind(b"\n", 0, len(data) - 1)
        if cut >= 0:
            return start + cut + 1, data[cut + 1 :]
    return 0, data


def _first_line(handle: int) -> bytes:
    """The open file's first line, without its newline."""
    data, offset = b"", 0
    while b"\n" not in data:
        chunk = os.pread(handle, _BLOCK, offset)
        if not chunk:
            break
        data, offset = data + chunk, offset + len(chunk)
    return data.split(b"\n", 1)[0]


def _same_file(handle: int, path: Path) -> bool:
    """Whether the open file ``handle`` is the file at ``path`` now (not moved or replaced)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(handle)
    return (held.st_ino, held.st_dev) == (named.st_ino, named.st_dev)


class _Handles:
    """One process's thread lock and open lock and log files, kept open between lines."""

    def __init__(self) -> None:
        self.pid = os.getpid()
        self.mutex = threading.Lock()
        self.lock: int | None = None
        self.log: int | None = None

    def close(self) -> None:
        """Close the open files (a flock held through them goes when no handle is left)."""
        for handle in (self.lock, self.log):
            if handle is not None:
                os.close(handle)
        self.lock = self.log = None


class AuditLog:
    """The audit log's file (and the files rotated from it): sealed JSON lines recording
    when, who, role, client, endpoint, outcome, patients, model version, and what a refused
    request asked for."""

    def __init__(self, path: Path, key: bytes, rotation: Rotation | None = None) -> None:
        self.path = path
        self.key = key
        self.rotation = rotation or Rotation.parse(DEFAULT)
        self.lock = path.with_name(path.name + ".lock")
        # The head after this process's last write, valid while the file is as it left it.
        self._known: tuple[int, int, Head] | None = None
        self._checked = False  # the current file verified (``start``)
        self._flusher = Flusher(path)
        self._handles = _Handles()
        with contextlib.suppress(OSError):  # a folder that cannot be made shows in problem()
            path.parent.mkdir(parents=True, exist_ok=True)

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> AuditLog:
        """From ``RISKSTRAT_AUDIT_LOG``, its key and ``RISKSTRAT_AUDIT_ROTATE``."""
        path = settings.require("audit_log")
        return cls(path, audit_key(settings), Rotation.parse(settings.audit_rotate))

    def problem(self) -> str | None:
        """Why the log cannot be written now, or None (see ``audit_problem``)."""
        return audit_problem(self.path)

    def start(self) -> Verified | None:
        """What the service does before its first request: set a torn last line aside, then
        verify the current file (chained to the file rotated before it, if that is here);
        ``ChainBrokenError`` names the line that breaks it. The head is logged, so that the
        service's own log holds where the chain stood. A log that cannot be read now (a
        folder in its place, a full or read-only disk) is checked before its first line is
        written instead, and None returned: readiness reports it meanwhile."""
        try:
            with self._locked():
                return self._check()
        except OSError as exc:
            logger.error(
                "audit log %s cannot be checked now (%s); it is checked before its next line",
                self.path,
                exc.strerror or exc,
            )
            return None

    def _check(self) -> Verified:
        """Set a torn tail aside and verify the current file (the lock held)."""
        self._head(self._log_handle())
        before = rotated_files(self.path)
        chain = Chain(self.key, self._end_of(before[-1]) if before else None)
        for number, line, whole in lines_of(self.path):
            chain.check(f"{self.path} line {number}", line, whole, starts_file=number == 1)
        verified = chain.verified()
        self._checked = True
        logger.info("audit log %s: %s", self.path, verified.summary())
        return verified

    def write(self, entry: dict) -> Flushed:
        """Append ``entry`` as one sealed line in one write, on disk before this returns
        (what the flush covered is returned); ``AuditError`` unless all of it went (then
        none of it stays), or if its flush failed (then the line may stay, but the request
        it records is refused)."""
        with recording_failures(str(self.path)):
            self._append_locked(entry)
            return Flushed.now(self.path)

    async def write_async(self, entry: dict) -> Flushed:
        """``write`` for the event loop: the line appended there if the lock is free at
        once and the log checked, else from a thread; then a flush shared with the lines
        written meanwhile awaited (``Flusher``)."""
        with recording_failures(str(self.path)):
            if self._checked and self._acquire(wait=False):
                try:
                    self._append(entry)
                finally:
                    self._release()
            else:
                await in_thread(self._append_locked, entry)
            return await self._flusher.after_now()

    def _append_locked(self, entry: dict) -> None:
        with self._locked():
            if not self._checked:
                self._check()
            self._append(entry)

    def _append(self, entry: dict) -> None:
        """Seal and append one line (the lock held), rotating first when it is due."""
        handle = self._log_handle()
        head = self._head(handle)
        size = os.fstat(handle).st_size
        when = str(entry.get("when") or datetime.now(UTC).isoformat())
        line, after = seal(entry, head, self.key, starts_file=not size)
        if self.rotation.due(size, len(line), self._first_when(handle), when):
            self._rotate(handle)
            self._append(entry)
            return
        self._write_whole(handle, line, size)
        if not size:
            sync_folder(self.path.parent)
        stat = os.fstat(handle)
        self._known = (stat.st_ino, stat.st_size, after)

    @staticmethod
    def _write_whole(handle: int, line: bytes, size: int) -> None:
        """One write of the whole line; if it fails or only part went, the file is cut back
        to ``size`` so that no part of the line stays to be glued to the next. The flush
        comes later, outside the lock."""
        try:
            written = os.write(handle, line)
            if written != len(line):
                raise OSError(errno.ENOSPC, "only part of the line was written (disk full?)")
        except OSError:
            with contextlib.suppress(OSError):  # what stays is set aside at the next start
                os.ftruncate(handle, size)
            raise

    def _head(self, handle: int) -> Head:
        """The chain's head: the last line of the open log; if the log is empty, the last
        line of the file rotated before it. A torn last line is set aside first."""
        stat = os.fstat(handle)
        if self._known and self._known[:2] == (stat.st_ino, stat.st_size):
            return self._known[2]
        if not stat.st_size:
            before = rotated_files(self.path)
            return self._end_of(before[-1]) if before else Head()
        offset, last = _last_line(handle, stat.st_size)
        sealed = unseal(last[:-1]) if last.endswith(b"\n") else None
        if sealed is None:
            self._set_aside(handle, offset, last)
            return self._head(handle)
        return Head(sealed.seq, sealed.mac)

    def _end_of(self, path: Path) -> Head:
        """The head at the end of a rotated file."""
        handle = os.open(path, os.O_RDONLY)
        try:
            _, last = _last_line(handle, os.fstat(handle).st_size)
        finally:
            os.close(handle)
        sealed = unseal(last.rstrip(b"\n"))
        if sealed is None:
            raise OSError(errno.EIO, f"{path} does not end with a sealed audit line")
        return Head(sealed.seq, sealed.mac)

    def _set_aside(self, handle: int, offset: int, torn: bytes) -> None:
        """Move the torn tail ``torn`` (from byte ``offset``) to a file of its own beside the
        log, then cut it off the log: never glued to the next line, never lost."""
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        aside = self.path.with_name(f"{self.path.name}.torn-{stamp}")
        kept = os.open(aside, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(kept, torn)
            os.fsync(kept)
        finally:
            os.close(kept)
        os.ftruncate(handle, offset)
        os.fsync(handle)
        sync_folder(self.path.parent)
        logger.warning(
            "audit log %s: its last line (%d bytes from byte %d) was torn or is not a sealed "
            "line (a write cut short by a crash or a full disk); moved to %s",
            self.path,
            len(torn),
            offset,
            aside,
        )

    def _first_when(self, handle: int) -> str | None:
        """The date of the open file's first line (what date rotation compares)."""
        if self.rotation.period is None:
            return None
        with contextlib.suppress(ValueError, AttributeError):
            return str(json.loads(_first_line(handle)).get("when"))
        return None

    def _rotate(self, handle: int) -> None:
        """Rename the current file to ``<log>.<its first record>``; the next line starts a
        new file that chains to it."""
        first = unseal(_first_line(handle))
        if first is None:
            raise OSError(errno.EIO, f"{self.path} line 1 is not a sealed audit line")
        os.fsync(handle)
        os.rename(self.path, self.path.with_name(f"{self.path.name}.{first.seq:012d}"))
        sync_folder(self.path.parent)

    def close(self) -> None:
        """Close this process's lock and log files (they are kept open between lines) and
        end its flushing process."""
        mine = self._mine()
        with mine.mutex:
            mine.close()
        self._flusher.close()

    def _mine(self) -> _Handles:
        """This process's handles (a forked child closes its parent's and opens its own)."""
        if self._handles.pid != os.getpid():
            self._handles.close()  # inherited copies: the parent's lock stays with its own
            self._handles = _Handles()
        return self._handles

    def _acquire(self, wait: bool = True) -> bool:
        """Take this log for this thread alone (every worker and thread takes the same
        lock); False at once if ``wait`` is false and another holds it."""
        mine = self._mine()
        if not mine.mutex.acquire(blocking=wait):
            return False
        try:
            while True:
                if mine.lock is None:
                    mine.lock = os.open(self.lock, os.O_WRONLY | os.O_CREAT, 0o666)
                try:
                    fcntl.flock(mine.lock, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
                except BlockingIOError:
                    mine.mutex.release()
                    return False
                if _same_file(mine.lock, self.lock):
                    return True
                os.close(mine.lock)  # the lock file was replaced: take the one others take
                mine.lock = None
        except BaseException:
            mine.mutex.release()
            raise

    def _release(self) -> None:
        mine = self._mine()
        assert mine.lock is not None
        fcntl.flock(mine.lock, fcntl.LOCK_UN)
        mine.mutex.release()

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """This log to this thread alone, waiting for it (see ``_acquire``)."""
        self._acquire()
        try:
            yield
        finally:
            self._release()

    def _log_handle(self) -> int:
        """The log's current file, open for appending (the lock held): kept open until a
        rotation, here or in another worker, puts a new file in its place."""
        mine = self._mine()
        if mine.log is not None and _same_file(mine.log, self.path):
            return mine.log
        if mine.log is not None:
            os.close(mine.log)
            mine.log = None
        mine.log = os.open(self.path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
        return mine.log
