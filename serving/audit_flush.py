"""Group commit for the audit log, and appending off the event loop when it must wait.

An audit line must be on disk before the answer it records leaves, and the disk's flush
(``fdatasync``) costs far more than the write. So a line is written under the log's lock,
and flushed after the lock is let go by this process's flushing thread: each flush covers
every line written before it began, and the lines written meanwhile wait together for the
next one. A flush of the log's current file covers every earlier line (lines in a file
rotated away were flushed by the rotation, before the rename). The event loop awaits the
flush without a thread of its own per request: the threads that fought over the
interpreter lock for each request cost more than the flush.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

# Appends that must wait for the log's lock (another process holds it) or check the log
# first, at once in one process: each holds one of these threads while it waits.
APPENDERS = 8


class Flusher:
    """This process's flushing thread: ``after_now()`` is the flush that covers every line
    written before the call (``sync()`` flushes them all); a failed flush fails every line
    it covered, and the next begins afresh."""

    def __init__(self, sync: Callable[[], None]) -> None:
        self._sync = sync
        self._pid: int | None = None  # the process whose thread runs (made again in a child)
        self._changed = threading.Condition()
        self._next: Future[None] | None = None  # the flush the lines written now wait for

    def after_now(self) -> Future[None]:
        """The flush that will cover every line written so far (started if none waits)."""
        with self._changed:
            if self._pid != os.getpid():
                self._pid, self._next = os.getpid(), None
                threading.Thread(target=self._run, name="audit-flush", daemon=True).start()
            if self._next is None:
                self._next = Future()
                self._changed.notify()
            return self._next

    def _run(self) -> None:
        while True:
            with self._changed:
                while self._next is None:
                    self._changed.wait()
                flush, self._next = self._next, None
            try:
                self._sync()
            except Exception as exc:  # whatever it was, every line it covered must fail
                code = exc.errno if isinstance(exc, OSError) and exc.errno else errno.EIO
                failed = OSError(code, f"flushing the audit line failed ({exc})")
                failed.__cause__ = exc
                flush.set_exception(failed)
            else:
                flush.set_result(None)


_appenders: tuple[int, ThreadPoolExecutor] | None = None
_made = threading.Lock()


def _executor() -> ThreadPoolExecutor:
    """This process's appending threads (made again in a forked child)."""
    global _appenders
    with _made:
        if _appenders is None or _appenders[0] != os.getpid():
            pool = ThreadPoolExecutor(APPENDERS, thread_name_prefix="audit-append")
            _appenders = (os.getpid(), pool)
        return _appenders[1]


async def in_thread(call: Callable[..., T], *args: object) -> T:
    """``call(*args)`` in one of this process's appending threads, so that the event loop
    serves other requests while it waits (for a lock, a database, a disk)."""
    return await asyncio.get_running_loop().run_in_executor(_executor(), call, *args)
