"""One writer per week: a second run of the same week fails at once with a message naming
the run that holds the lock, and leaves the first run's staging folder alone; the lock
goes with its holder, even one killed with SIGKILL."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from datetime import date
from pathlib import Path

import pytest

from riskstrat.serving.weekly.store import WeekStore

WEEK = date(2026, 10, 26)


def _finish(staging: Path, text: str) -> None:
    (staging / "manifest.json").write_text(text)


def test_a_second_run_of_the_same_week_fails_and_the_first_finishes(tmp_path: Path) -> None:
    store = WeekStore(tmp_path)
    with store.writing(WEEK) as staging:
        (staging / "people.parquet").write_text("first")
        locked = "another weekly run of the week of 2026-10-26"
        with pytest.raises(ValueError, match=locked) as e, store.writing(WEEK):
            pass
        assert f"process {os.getpid()}, started " in str(e.value)
        assert str(tmp_path / ".2026-10-26.lock") in str(e.value)
        with store.writing(date(2026, 11, 2)) as other:  # another week: its own lock
            _finish(other, "other week")
        _finish(staging, "first")  # its staging folder is still there
    assert (tmp_path / WEEK.isoformat() / "manifest.json").read_text() == "first"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["2026-10-26", "2026-11-02"]
    with store.writing(WEEK) as again:  # free once the first is done
        _finish(again, "second")
    assert (tmp_path / WEEK.isoformat() / "manifest.json").read_text() == "second"


HOLD = """
import sys
from datetime import date
from pathlib import Path
from riskstrat.serving.weekly.store import WeekStore
with WeekStore(Path(sys.argv[1])).writing(date(2026, 10, 26)):
    print("holding", flush=True)
    sys.stdin.read()
"""


def test_the_lock_is_shared_by_processes_and_dies_with_its_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert holder.stdout.readline() == "holding\n"
        held = f"process {holder.pid}, started"
        with pytest.raises(ValueError, match=held), WeekStore(tmp_path).writing(WEEK):
            pass
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with WeekStore(tmp_path).writing(WEEK) as staging:  # the killed run's lock is taken over
        _finish(staging, "after the kill")
    assert (tmp_path / WEEK.isoformat() / "manifest.json").read_text() == "after the kill"
    assert sorted(p.name for p in tmp_path.iterdir()) == [WEEK.isoformat()]
