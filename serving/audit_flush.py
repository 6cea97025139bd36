"""Group commit for the audit log, and appending off the event loop.

An audit line must be on disk before the answer it records leaves, and the disk's flush
(``fdatasync``) costs far more than the write. So a line is written under
the log's lock, and flushed after the lock is let go, by a flush that concurrent appends
share: the first to wait flushes once for every line written before its flush began; lines
written meanwhile wait for the next flush, started by one of them. A later flush of the
same file covers every earlier write to it (lines in a file rotated away were flushed by the
rotation, before the rename), so no line's wait ends before a flush that began after it
was written has finished.
"""

from __future__ import annotations

import asyncio
import errno
import os
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Protocol

# Appends in flight at once in one process: each holds a thread while it waits for its
# flush, and all waiting together share one flush.
APPENDERS = 32


class _Batch:
    """The lines that one flush covers, and how that flush went."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None


class GroupFlush:
    """One flush for every line written before it began (``joined`` after the write,
    then ``wait``); ``sync(handle)`` flushes the file the waiter wrote to and any newer."""

    def __init__(self, sync: Callable[[int], None]) -> None:
        self._sync = sync
        self._changed = threading.Condition()
        self._open: _Batch | None = None  # the lines written since the last flush began
        self._busy = False  # a flush is running

    def joined(self) -> _Batch:
        """The batch of the line just written: flushed by the next flush to begin."""
        with self._changed:
            if self._open is None:
                self._open = _Batch()
            return self._open

    def wait(self, batch: _Batch, handle: int) -> None:
        """Return once ``batch`` is flushed, flushing it (from ``handle``, the file this
        waiter wrote to) if no flush is running; ``OSError`` if its flush failed."""
        with self._changed:
            while self._busy and not batch.done:
                self._changed.wait()
            if not batch.done:  # nobody flushes it: this waiter does, for all in it
                self._busy, self._open = True, None
                leader = True
            else:
                leader = False
        if leader:
            try:
                self._sync(handle)
            except BaseException as exc:  # whatever it was, every waiter on it must fail
                batch.error = exc
            finally:
                with self._changed:
                    batch.done, self._busy = True, False
                    self._changed.notify_all()
        if batch.error is not None:
            cause = batch.error
            code = cause.errno if isinstance(cause, OSError) and cause.errno else errno.EIO
            raise OSError(code, f"flushing the audit line failed ({cause})") from cause


class Appendable(Protocol):
    def write(self, entry: dict) -> None: ...


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


async def write_off_loop(log: Appendable, entry: dict) -> None:
    """``log.write(entry)`` in a thread of its own, so that the event loop serves other
    requests while this line is written and flushed; returns (or raises) as it does."""
    await asyncio.get_running_loop().run_in_executor(_executor(), log.write, entry)
