"""Group commit of the audit log: concurrent appends, from threads, from two processes and
from concurrent requests (on the event loop, and from threads when the lock is held
elsewhere), each return only after a flush that began once their line was written, share
flushes, and leave one chain that verifies; a failed flush fails every append it covered."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import multiprocessing
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from riskstrat.serving.access import Access, Principal
from riskstrat.serving.audit import AuditLog, rotated_files
from riskstrat.serving.audit_chain import entry_of, verify_files
from riskstrat.serving.audit_flush import Flusher
from riskstrat.serving.rotation import Rotation
from riskstrat.serving.state import SQLiteStore
from riskstrat.serving.throttle import TokenThrottle

KEY = b"k" * 32
THREADS, EACH = 8, 12


class WatchedLog(AuditLog):
    """The real log, noting each finished flush: the file and the size it had when the flush
    began (every byte below that size was on disk when the flush returned)."""

    def __init__(self, path: Path, pause: float = 0.0) -> None:
        super().__init__(path, KEY, Rotation(max_bytes=1 << 30))
        self.pause = pause
        self.flushed: list[tuple[int, int]] = []
        self._noted = threading.Lock()

    def _sync(self) -> None:
        before = os.stat(self.path)
        time.sleep(self.pause)  # a slow disk: more lines come in while it flushes
        super()._sync()
        with self._noted:
            self.flushed.append((before.st_ino, before.st_size))

    def write_checked(self, entry: dict) -> None:
        """Write ``entry``; once that returns, its line must be below a finished flush."""
        self.write(entry)
        assert self.covered(entry["mark"]), f"line {entry['mark']} returned before its flush"

    def covered(self, mark: str) -> bool:
        data = self.path.read_bytes()
        end = data.index(f'"mark":"{mark}"'.encode())
        end = data.index(b"\n", end) + 1
        inode = os.stat(self.path).st_ino
        with self._noted:
            return any(ino == inode and size >= end for ino, size in self.flushed)


def _entry(mark: str) -> dict:
    return {"when": "2026-03-02T10:00:00.000+00:00", "endpoint": "/v1/score", "mark": mark}


def _from_threads(path: str, writer: str) -> int:
    """``THREADS`` threads each appending ``EACH`` lines at once; how many flushes it took."""
    log = WatchedLog(Path(path), pause=0.003)  # a flush as slow as a disk's, on any disk
    start = threading.Barrier(THREADS)

    def append(thread: int) -> None:
        start.wait()
        for n in range(EACH):
            log.write_checked(_entry(f"{writer}-{thread}-{n}"))

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(append, range(THREADS)))
    return len(log.flushed)


def _marks(path: Path) -> list[str]:
    return [entry_of(line)["mark"] for line in path.read_bytes().splitlines()]


def test_concurrent_threads_share_flushes_and_each_waits_for_its_own(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    flushes = _from_threads(str(path), "t")
    verified = verify_files([path], KEY)
    assert verified.lines == THREADS * EACH == verified.head.seq
    assert len(set(_marks(path))) == THREADS * EACH
    assert flushes < THREADS * EACH  # lines written during a flush shared the next one


def _in_child(path: str, writer: str) -> None:
    _from_threads(path, writer)  # a line returned before its flush: AssertionError, exit 1


def test_two_processes_of_threads_append_to_one_chain(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=_in_child, args=(str(path), w)) for w in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0
    assert not rotated_files(path)
    verified = verify_files([path], KEY)
    assert verified.lines == 2 * THREADS * EACH == verified.head.seq
    marks = _marks(path)
    assert sorted(m.split("-")[0] for m in marks) == ["a"] * THREADS * EACH + ["b"] * (
        THREADS * EACH
    )


def test_concurrent_requests_are_answered_only_after_their_lines_are_flushed(
    tmp_path: Path,
) -> None:
    """Twenty audited writes at once through ``Access.write``, over a disk whose flush takes
    0.2 s: the event loop goes on while they flush and they share flushes (one after the
    other they would take at least 4 s), and each is flushed when its await returns."""
    log = WatchedLog(tmp_path / "audit.jsonl", pause=0.2)
    access = Access({}, log, TokenThrottle(SQLiteStore(tmp_path / "state.db")))
    principal = Principal("north-team", "locality_team", ("north",))
    ticks = 0

    async def ticking() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    async def request(n: int) -> None:
        await access.write(principal, "/v1/score", 200, {"patient_ids": [f"p{n}"]})

    async def main() -> float:
        ticker = asyncio.create_task(ticking())
        began = time.perf_counter()
        await asyncio.gather(*(request(n) for n in range(20)))
        took = time.perf_counter() - began
        ticker.cancel()
        return took

    took = asyncio.run(main())
    assert took < 2.0 and ticks > 10  # shared flushes; the loop was free meanwhile
    assert verify_files([log.path], KEY).lines == 20
    ids = [entry_of(line)["patient_ids"][0] for line in log.path.read_bytes().splitlines()]
    assert sorted(ids) == sorted(f"p{n}" for n in range(20))
    data = log.path.read_bytes()
    assert any(size >= len(data) for _, size in log.flushed)


def test_a_request_waits_in_a_thread_while_another_worker_holds_the_log(
    tmp_path: Path,
) -> None:
    """The event loop never waits for the log's lock: while another worker holds it, the
    line is appended from a thread once it is let go, and flushed before the await ends."""
    log = WatchedLog(tmp_path / "audit.jsonl")
    log.start()
    held = os.open(log.lock, os.O_WRONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # another worker's hold (its own open file)
    letting_go = threading.Timer(5.0, fcntl.flock, (held, fcntl.LOCK_UN))  # if the loop hangs
    letting_go.start()

    async def main() -> None:
        began = time.perf_counter()
        writing = asyncio.create_task(log.write_async(_entry("late")))
        await asyncio.sleep(0.3)
        assert time.perf_counter() - began < 2.0 and not writing.done()
        letting_go.cancel()
        fcntl.flock(held, fcntl.LOCK_UN)
        await asyncio.wait_for(writing, 10)

    try:
        asyncio.run(main())
    finally:
        letting_go.cancel()
        os.close(held)
    assert _marks(log.path) == ["late"] and log.covered("late")


def test_a_failed_flush_fails_every_line_it_covered_and_the_next_flushes_again(
    tmp_path: Path,
) -> None:
    handle = os.open(tmp_path / "f", os.O_RDWR | os.O_CREAT)
    closed = os.dup(handle)
    os.close(closed)  # a number no file is open on (until the next open)
    handles, started, gate = [closed, handle], threading.Event(), threading.Event()

    def sync() -> None:
        started.set()
        gate.wait(10)
        os.fdatasync(handles.pop(0))

    flusher = Flusher(sync)
    failing = flusher.after_now()
    started.wait(10)
    later = flusher.after_now()  # lines written while the first flush runs wait for the next
    assert later is not failing and flusher.after_now() is later
    outcomes: list[int] = []

    def waiter() -> None:
        try:
            failing.result(10)
        except OSError as exc:
            outcomes.append(exc.errno)

    waiters = [threading.Thread(target=waiter) for _ in range(3)]
    for thread in waiters:
        thread.start()
    gate.set()
    for thread in waiters:
        thread.join(10)
    assert outcomes == [errno.EBADF] * 3
    assert later.result(10) is None  # a new flush, and it works
    os.close(handle)
