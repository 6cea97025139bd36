"""Group commit for the audit log, by a flushing process per worker; appending off the event
loop when it must wait.

An audit line must be on disk before the answer it records leaves, and the disk's flush
(``fdatasync``) costs far more than the write. So a line is written under the log's lock,
and flushed after the lock is let go: each flush covers every line written before it began,
and the lines written meanwhile wait together for the next one. A flush of the log's current
file covers every earlier line (lines in a file rotated away were flushed by the rotation,
before the rename).

The flush runs in a small process of the worker's own (``serving.audit_syncer``), asked
through a pipe that the event loop watches: the event loop never waits for the disk, and no
thread of the worker's has to take the interpreter lock back from the event loop for each
flush (the handovers, about six a request, cost more of the server's CPU than the flush).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from riskstrat.serving import audit_syncer

T = TypeVar("T")

# Appends that must wait for the log's lock (another process holds it) or check the log
# first, at once in one process: each holds one of these threads while it waits.
APPENDERS = 8


@dataclass(frozen=True)
class Flushed:
    """What a finished flush covered: every byte below ``size`` of the file ``inode``
    (0 and 0: the log was not there, its last file having been flushed by its rotation)."""

    inode: int
    size: int

    @classmethod
    def now(cls, path: Path) -> Flushed:
        """Flush ``path`` in this thread (``audit_syncer.flush``)."""
        return cls(*audit_syncer.flush(str(path)))


class Flusher:
    """One worker's flushes of the audit log at ``path``: ``await after_now()`` returns once
    a flush that began after the call has finished (``OSError`` if it failed: a failed flush
    fails every line it covered, and the next begins afresh). Its flushing process starts at
    the first flush, again in a forked child, on another event loop, or after it ended.
    ``flushes`` counts the flushes answered (against the lines, the sharing)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._channel: _Channel | None = None
        self._earlier = 0  # flushes answered through channels closed since

    @property
    def flushes(self) -> int:
        return self._earlier + (self._channel.answered if self._channel else 0)

    async def after_now(self) -> Flushed:
        """The flush that covers every line written so far, once it has finished."""
        loop = asyncio.get_running_loop()
        channel = self._channel
        if channel is None or not channel.serves(loop):
            self.close()
            channel = self._channel = _Channel(self.path, loop)
        # shielded: a request that goes away must not cancel the flush others share
        return await asyncio.shield(channel.after_now())

    def close(self) -> None:
        """End the flushing process (lines still waiting fail)."""
        if self._channel is not None:
            self._channel.close()
            self._earlier += self._channel.answered
            self._channel = None


class _Channel:
    """One flushing process and the event loop that talks to it: at most one flush asked
    for at a time, and one waiting to be asked for (the lines written meanwhile)."""

    def __init__(self, path: Path, loop: asyncio.AbstractEventLoop) -> None:
        self.pid, self.loop = os.getpid(), loop
        self.process = subprocess.Popen(
            [sys.executable, "-I", "-S", audit_syncer.__file__, str(path)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            bufsize=0,
        )
        assert self.process.stdin is not None and self.process.stdout is not None
        self._asking, self._answers = self.process.stdin.fileno(), self.process.stdout.fileno()
        os.set_blocking(self._answers, False)
        self._unread = b""
        self._running: asyncio.Future[Flushed] | None = None
        self._next: asyncio.Future[Flushed] | None = None
        self._ended = False
        self.answered = 0
        loop.add_reader(self._answers, self._answered)

    def serves(self, loop: asyncio.AbstractEventLoop) -> bool:
        """Whether this channel can flush for ``loop`` in this process now."""
        return not self._ended and self.pid == os.getpid() and self.loop is loop

    def after_now(self) -> asyncio.Future[Flushed]:
        if self._next is None:
            self._next = self.loop.create_future()
        waiting = self._next
        if self._running is None:
            self._ask()
        return waiting

    def _ask(self) -> None:
        self._running, self._next = self._next, None
        try:
            os.write(self._asking, b"\n")
        except OSError as exc:
            self.close(exc)

    def _answered(self) -> None:
        try:
            data = os.read(self._answers, 4096)
        except BlockingIOError:
            return
        if not data:
            status = self.process.poll()
            ended = "" if status is None else f" (exit status {status})"
            self.close(OSError(errno.EIO, f"the audit log's flushing process ended{ended}"))
            return
        self._unread += data
        while b"\n" in self._unread and self._running is not None:
            line, self._unread = self._unread.split(b"\n", 1)
            flush, self._running = self._running, None
            self.answered += 1
            _settle(flush, line)
        if self._running is None and self._next is not None:
            self._ask()

    def close(self, why: OSError | None = None) -> None:
        """End the flushing process (it ends at the end of its input); the flushes running
        and waiting fail with ``why``. The next flush starts a new channel."""
        if self._ended:
            return
        self._ended = True
        if self.pid == os.getpid() and not self.loop.is_closed():
            self.loop.remove_reader(self._answers)
            why = why or OSError(errno.EIO, "the audit log was closed")
            for waiting in (self._running, self._next):
                if waiting is not None and not waiting.done():
                    waiting.set_exception(why)
        self._running = self._next = None
        self.process.stdin.close()  # type: ignore[union-attr]
        self.process.stdout.close()  # type: ignore[union-attr]
        if self.pid == os.getpid():  # in a forked child: its copies of the parent's pipes, closed
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(5)


def _settle(flush: asyncio.Future[Flushed], answer: bytes) -> None:
    """Resolve ``flush`` from its answer line (``0 INODE SIZE`` or ``ERRNO MESSAGE``)."""
    if flush.done():
        return
    code, _, rest = answer.decode(errors="replace").partition(" ")
    if code == "0":
        inode, size = rest.split()
        flush.set_result(Flushed(int(inode), int(size)))
    else:
        flush.set_exception(OSError(int(code), f"flushing the audit line failed ({rest})"))


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
