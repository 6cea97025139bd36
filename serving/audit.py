"""The service's audit log: append-only JSON lines, one per request that touches patient data
or reads an evaluation (written by ``serving.access`` and the pages' gate), and whether it can
be written now (readiness depends on it).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging
import os
import time
from pathlib import Path

from riskstrat.serving.settings import ServiceSettings

logger = logging.getLogger(__name__)
# The audit log's disk needs at least this much free space to count as writable.
AUDIT_FREE_BYTES = 1 << 20
# After a failed audit write, readiness stays false this long (then the next request retries).
AUDIT_RETRY_SECONDS = 30.0


class AuditError(RuntimeError):
    """An audit line could not be written; names the log and why."""


# The last failed write to each audit log in this process: (monotonic time, why).
_failures: dict[Path, tuple[float, str]] = {}


def audit_problem(path: Path) -> str | None:
    """Why the audit log at ``path`` cannot be written now, or None: it is a folder or
    cannot be opened for appending, its disk is (nearly) full, or a write from this process
    failed in the last ``AUDIT_RETRY_SECONDS`` (a fault the other checks cannot see, such as
    a quota). Nothing is written to the log."""
    failed = _failures.get(path)
    if failed and time.monotonic() - failed[0] < AUDIT_RETRY_SECONDS:
        return f"{path}: the last write failed ({failed[1]})"
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
    """Whether the configured audit log (``RISKSTRAT_AUDIT_LOG``) can be written now: the
    service is not ready while it cannot (``RiskService.__is_ready__``)."""
    path = (settings or ServiceSettings.current()).audit_log
    return path is not None and audit_problem(path) is None


class AuditLog:
    """Append-only JSON lines: when, who, role, client, endpoint, outcome, patients, model
    version, and what a refused request asked for."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with contextlib.suppress(OSError):  # a folder that cannot be made shows in problem()
            path.parent.mkdir(parents=True, exist_ok=True)

    def problem(self) -> str | None:
        """Why the log cannot be written now, or None (see ``audit_problem``)."""
        return audit_problem(self.path)

    def write(self, entry: dict) -> None:
        """Append ``entry`` as one line in one write; ``AuditError`` unless all of it went."""
        line = (json.dumps(entry, separators=(",", ":")) + "\n").encode()
        try:
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
            try:
                written = os.write(handle, line)
            finally:
                os.close(handle)
            if written != len(line):
                raise OSError(errno.ENOSPC, "only part of the line was written")
        except OSError as exc:
            why = exc.strerror or str(exc)
            if self.path not in _failures:
                logger.error(
                    "audit log %s cannot be written (%s): requests for patient data answer "
                    "503 until it can",
                    self.path,
                    why,
                )
            _failures[self.path] = (time.monotonic(), why)
            raise AuditError(f"{self.path}: cannot append to the audit log ({why})") from exc
        if _failures.pop(self.path, None):
            logger.warning("audit log %s is written again", self.path)
