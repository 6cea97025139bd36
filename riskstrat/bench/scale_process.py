"""One way to measure a benchmark step: its wall time and the peak memory of its own processes.

A process's ``ru_maxrss`` is not its own: a child started from a large process begins with
that process's high-water mark (Linux carries it across fork, vfork and exec), so a step run
from a benchmark that had copied tables in memory reported the benchmark's peak, not its
own. So each step runs under a small launcher (``python -m riskstrat.bench.scale_process``,
standard library only, a few MiB) started afresh: the step inherits only the launcher's
mark. The launcher is a child subreaper, so every process of the step (Spark's JVM and
Python workers, which their parent does not always wait for) is reaped by it, and its
``RUSAGE_CHILDREN`` is then the exact peak of the largest single process of the step. The
peak of the whole tree at once (every process of the step, the launcher excluded) is sampled
from ``/proc`` every 0.2 s. The launcher prints the figures as one JSON line.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

SAMPLE_SECONDS = 0.2
ORPHAN_SECONDS = 60  # how long the launcher waits for a step's leftover processes to end
_PR_SET_CHILD_SUBREAPER = 36


def process_tree(root: int) -> list[int]:
    """``root`` and every process below it."""
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                children = Path(f"/proc/{pid}/task/{task}/children").read_text().split()
            except FileNotFoundError:
                continue
            queue.extend(int(c) for c in children)
    return found


def resident_bytes(pid: int) -> int:
    """A process's resident memory now (0 once it has gone)."""
    try:
        fields = Path(f"/proc/{pid}/statm").read_text().split()
    except FileNotFoundError:
        return 0
    return int(fields[1]) * os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True, slots=True)
class Finished:
    """A command's wall time and peak memory (tree: sampled sum; process: exact, the largest
    single process of the step), its exit code and the end of its output."""

    seconds: float
    peak_tree: int
    peak_process: int
    returncode: int
    stderr: str


def run_measured(command: list[str], log: Path) -> Finished:
    """Run ``command`` under a fresh launcher, its standard output and error to ``log``."""
    log.parent.mkdir(parents=True, exist_ok=True)
    launcher = [sys.executable, "-m", "riskstrat.bench.scale_process", str(log), *command]
    done = subprocess.run(launcher, capture_output=True, text=True)
    if done.returncode != 0 or not done.stdout.strip():
        raise RuntimeError(f"the measuring launcher failed:\n{done.stderr[-3000:]}")
    got = json.loads(done.stdout.strip().splitlines()[-1])
    return Finished(**got, stderr=log.read_text(errors="replace")[-3000:])


class _TreeSampler:
    """The largest sum of resident memory over this process's descendants, sampled."""

    def __init__(self) -> None:
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        me = os.getpid()
        while not self._stop.wait(SAMPLE_SECONDS):
            tree = sum(resident_bytes(p) for p in process_tree(me) if p != me)
            self.peak = max(self.peak, tree)

    def __enter__(self) -> _TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def _reap_the_rest() -> None:
    """Wait for the step's leftover processes (reparented here); past ``ORPHAN_SECONDS``
    ask them to end, and ten seconds later make them."""
    began = time.monotonic()
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid:
            continue
        waited = time.monotonic() - began
        if waited > ORPHAN_SECONDS:
            ending = signal.SIGTERM if waited < ORPHAN_SECONDS + 10 else signal.SIGKILL
            for left in process_tree(os.getpid())[1:]:
                with contextlib.suppress(ProcessLookupError):  # it ended meanwhile
                    os.kill(left, ending)
        time.sleep(0.05 if waited < ORPHAN_SECONDS else 1)


def launch(command: list[str], log: Path) -> dict:
    """Run ``command`` as this process's child and measure it (see the module's docstring)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")
    with log.open("w") as out, _TreeSampler() as tree:
        began = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        _, status, _ = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - began
        child.returncode = os.waitstatus_to_exitcode(status)
        _reap_the_rest()
    largest = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    return {
        "seconds": seconds,
        "peak_tree": max(tree.peak, largest),
        "peak_process": largest,
        "returncode": child.returncode,
    }


if __name__ == "__main__":
    print(json.dumps(launch(sys.argv[2:], Path(sys.argv[1]))))
