"""Group commit of the audit log: concurrent appends, from threads, from two processes and
from concurrent requests (on the event loop, and from threads when the lock is held
elsewhere), each return only after a flush that covers their line, requests share flushes
by a flushing process of their worker's own while the event loop goes on, one chain
verifies, and a failed flush, or a flushing process that ends, fails every line it covered
while the next flush starts afresh."""

from __future__ import annotations

import asyncio
import errno
import fcntl
import multiprocessing
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from riskstrat.serving.access import Access, Principal
from riskstrat.serving.audit import AuditLog, rotated_files
from riskstrat.serving.audit_chain import entry_of, verify_files
from riskstrat.serving.audit_flush import Flushed, Flusher
from riskstrat.serving.rotation import Rotation
from riskstrat.serving.state import SQLiteStore
from riskstrat.serving.throttle import TokenThrottle

KEY = b"k" * 32
THREADS, EACH = 8, 12


def _log(path: Path) -> AuditLog:
    return AuditLog(path, KEY, Rotation(max_bytes=1 << 30))


def _entry(mark: str) -> dict:
    return {"when": "2026-03-02T10:00:00.000+00:00", "endpoint": "/v1/score", "mark": mark}


def _covered(path: Path, mark: str, flushed: Flushed) -> bool:
    """Whether the line marked ``mark`` lies below what the flush covered."""
    data = path.read_bytes()
    end = data.index(b"\n", data.index(f'"mark":"{mark}"'.encode())) + 1
    return flushed.inode == os.stat(path).st_ino and flushed.size >= end


def _marks(path: Path) -> list[str]:
    return [entry_of(line)["mark"] for line in path.read_bytes().splitlines()]


def _syncers(others: frozenset[int] = frozenset()) -> list[int]:
    """This process's flushing processes, but ``others`` (those an earlier test's log, not
    yet collected, may still have)."""
    found = []
    for task in Path("/proc/self/task").iterdir():
        for child in (task / "children").read_text().split():
            if int(child) in others:
                continue
            if b"audit_syncer" in Path(f"/proc/{child}/cmdline").read_bytes():
                found.append(int(child))
    return found


def _from_threads(path: str, writer: str) -> None:
    """``THREADS`` threads each appending ``EACH`` lines at once, each flushed on return."""
    log, start = _log(Path(path)), threading.Barrier(THREADS)

    def append(thread: int) -> None:
        start.wait()
        for n in range(EACH):
            mark = f"{writer}-{thread}-{n}"
            flushed = log.write(_entry(mark))
            assert _covered(log.path, mark, flushed), f"{mark} returned before its flush"

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(append, range(THREADS)))


def _from_requests(path: str, writer: str) -> None:
    """``THREADS * EACH`` requests at once on one event loop, each flushed on return."""
    log = _log(Path(path))
    log.start()

    async def request(mark: str) -> None:
        flushed = await log.write_async(_entry(mark))
        assert _covered(log.path, mark, flushed), f"{mark} returned before its flush"

    async def main() -> None:
        await asyncio.gather(*(request(f"{writer}-{n}") for n in range(THREADS * EACH)))

    asyncio.run(main())
    log.close()


def test_concurrent_threads_append_to_one_chain_each_flushed_on_return(tmp_path: Path) -> None:
    path = tmp_path / "audit.jsonl"
    _from_threads(str(path), "t")
    verified = verify_files([path], KEY)
    assert verified.lines == THREADS * EACH == verified.head.seq
    assert len(set(_marks(path))) == THREADS * EACH


@pytest.mark.parametrize("writer", [_from_threads, _from_requests])
def test_two_processes_append_to_one_chain(tmp_path: Path, writer) -> None:
    path = tmp_path / "audit.jsonl"
    context = multiprocessing.get_context("fork")
    workers = [context.Process(target=writer, args=(str(path), w)) for w in "ab"]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(120)
        assert worker.exitcode == 0  # a line returned before its flush: AssertionError
    assert not rotated_files(path)
    verified = verify_files([path], KEY)
    assert verified.lines == 2 * THREADS * EACH == verified.head.seq
    assert sorted(m.split("-")[0] for m in _marks(path)) == ["a"] * THREADS * EACH + ["b"] * (
        THREADS * EACH
    )


def test_concurrent_requests_share_flushes_while_the_event_loop_goes_on(tmp_path: Path) -> None:
    """Twenty audited writes at once through ``Access.write`` while the flushing process is
    stopped (a disk that hangs): the event loop goes on and none is answered; once it
    continues, all are answered, each after a flush that covers its line, sharing two."""
    others = frozenset(_syncers())
    log = _log(tmp_path / "audit.jsonl")
    log.start()
    access = Access({}, log, TokenThrottle(SQLiteStore(tmp_path / "state.db")))
    principal = Principal("north-team", "locality_team", ("north",))
    flushes: list[Flushed] = []
    shared: list[int] = []  # flushes the twenty requests took: the first's, then the rest's

    async def request(n: int) -> None:
        await access.write(principal, "/v1/score", 200, {"patient_ids": [f"p{n}"]})

    async def main() -> None:
        await log.write_async(_entry("first"))  # starts this worker's flushing process
        (syncer,) = _syncers(others)
        before = log._flusher.flushes
        os.kill(syncer, signal.SIGSTOP)
        try:
            requests = asyncio.gather(*(request(n) for n in range(20)))
            ticks = 0
            for _ in range(20):
                await asyncio.sleep(0.01)
                ticks += 1
            assert ticks == 20 and not requests.done()
        finally:
            os.kill(syncer, signal.SIGCONT)
        await asyncio.wait_for(requests, 10)
        shared.append(log._flusher.flushes - before)
        flushes.append(await log.write_async(_entry("last")))

    asyncio.run(main())
    lines = log.path.read_bytes().splitlines()
    assert verify_files([log.path], KEY).lines == 22
    ids = sorted(entry_of(line)["patient_ids"][0] for line in lines[1:-1])
    assert ids == sorted(f"p{n}" for n in range(20))
    assert _covered(log.path, "last", flushes[0]) and shared == [2]
    log.close()


def test_a_request_waits_in_a_thread_while_another_worker_holds_the_log(
    tmp_path: Path,
) -> None:
    """The event loop never waits for the log's lock: while another worker holds it, the
    line is appended from a thread once it is let go, and flushed before the await ends."""
    log = _log(tmp_path / "audit.jsonl")
    log.start()
    held = os.open(log.lock, os.O_WRONLY)
    fcntl.flock(held, fcntl.LOCK_EX)  # another worker's hold (its own open file)
    letting_go = threading.Timer(5.0, fcntl.flock, (held, fcntl.LOCK_UN))  # if the loop hangs
    letting_go.start()

    async def main() -> Flushed:
        began = time.perf_counter()
        writing = asyncio.create_task(log.write_async(_entry("late")))
        await asyncio.sleep(0.3)
        assert time.perf_counter() - began < 2.0 and not writing.done()
        letting_go.cancel()
        fcntl.flock(held, fcntl.LOCK_UN)
        return await asyncio.wait_for(writing, 10)

    try:
        flushed = asyncio.run(main())
    finally:
        letting_go.cancel()
        os.close(held)
        log.close()
    assert _marks(log.path) == ["late"] and _covered(log.path, "late", flushed)


def test_a_failed_flush_fails_every_line_it_covered_and_the_next_flushes_again(
    tmp_path: Path,
) -> None:
    """The log's path names a device whose flush the kernel refuses (EINVAL): every line
    waiting fails with it; once the path names a file again, the next flush works."""
    path, real = tmp_path / "audit.jsonl", tmp_path / "real.jsonl"
    path.symlink_to("/dev/null")
    real.write_bytes(b"line\n")
    flusher = Flusher(path)

    async def main() -> tuple[list, Flushed]:
        failed = await asyncio.gather(
            *(flusher.after_now() for _ in range(3)), return_exceptions=True
        )
        path.unlink()
        path.symlink_to(real)
        return failed, await flusher.after_now()

    failed, flushed = asyncio.run(main())
    assert [getattr(e, "errno", e) for e in failed] == [errno.EINVAL] * 3
    assert flushed == Flushed(os.stat(real).st_ino, 5)
    flusher.close()


def test_a_flushing_process_that_ends_fails_its_lines_and_a_new_one_flushes_the_next(
    tmp_path: Path,
) -> None:
    others = frozenset(_syncers())
    log = _log(tmp_path / "audit.jsonl")
    log.start()

    async def main() -> tuple[BaseException | Flushed, Flushed]:
        await log.write_async(_entry("first"))
        (syncer,) = _syncers(others)
        os.kill(syncer, signal.SIGSTOP)  # so that the next line waits for it
        waiting = asyncio.ensure_future(log.write_async(_entry("lost")))
        await asyncio.sleep(0.05)
        os.kill(syncer, signal.SIGKILL)
        (failed,) = await asyncio.gather(waiting, return_exceptions=True)
        return failed, await log.write_async(_entry("after"))

    failed, flushed = asyncio.run(main())
    assert "flushing process ended" in str(failed)
    assert _covered(log.path, "after", flushed) and len(_syncers(others)) == 1
    log.close()
    assert _syncers(others) == []
