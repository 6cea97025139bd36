"""Fault injection: ``riskstrat validate``, ``ingest`` and ``weekly`` are killed (SIGKILL) at
seeded random points while they write. Each time, the output is byte for byte either the
last good one or the complete new one, never a mix; a reader loads it; and the next complete
run leaves no staging folder behind."""

from __future__ import annotations

import hashlib
import os
import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import EXTRACT_DATE, SYNTHEA, TEST_KEY

from riskstrat.cli.options import TRACKING_ENV
from riskstrat.contract.pseudonym import KEY_ENV
from riskstrat.contract.tables import ContractTables, fingerprint
from riskstrat.contract.validation import validate_dir
from riskstrat.models.registry import RegisteredBundle
from riskstrat.models.store import load_champion
from riskstrat.serving.weekly.run import weekly_run
from riskstrat.serving.weekly.store import MANIFEST_FILE, WeekStore, file_digests
from riskstrat.sources.ingest.pipeline import ingest
from riskstrat.sources.synthetic.borough import generate, write
from riskstrat.sources.synthetic.config import SynthConfig

pytestmark = pytest.mark.slow

SEED = 13
EXTRACT = date(2026, 10, 31)
WEEK = date(2026, 10, 26)
Snapshot = dict[str, str]


def _snapshot(folder: Path) -> Snapshot:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _activity(folder: Path) -> tuple:
    """The names beside ``folder`` and its files' stamps: changes once a writer starts."""
    names = []
    for root in (folder.parent, folder):
        try:
            with os.scandir(root) as entries:
                names += [(e.path, e.stat().st_mtime_ns) for e in entries]
        except FileNotFoundError:
            continue
    return tuple(sorted(names))


def _riskstrat(*args: str) -> list[str]:
    return [sys.executable, "-m", "riskstrat.cli", *args]


@dataclass
class Exercise:
    """Two runs, ``a`` and ``b``, that write different outputs to the same place: each as a
    command with its environment (to kill) and in this process (to run to the end)."""

    runs: dict[str, tuple[list[str], dict[str, str]]]
    write: Callable[[str], object]  # run ``a`` or ``b`` to the end, in this process
    watched: Path  # where a writer's activity shows: the output, or the folder of weeks
    output: Path  # the folder that must stay whole
    read: Callable[[Path], None]  # a reader that must accept the output

    def complete(self, name: str) -> float:
        """Run ``name`` to the end; the seconds from its first write to its end (the span
        in which the kills land)."""
        before = _activity(self.watched)
        first: list[float] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set() and _activity(self.watched) == before:
                time.sleep(0.005)
            first.append(time.perf_counter())

        watcher = threading.Thread(target=watch)
        watcher.start()
        try:
            self.write(name)
        finally:
            done.set()
            watcher.join()
        return time.perf_counter() - first[0]

    def kill(self, name: str, delay: float) -> None:
        """Run ``name`` as a command and SIGKILL it ``delay`` seconds after it starts
        writing (or let it end, if it ends first)."""
        before = _activity(self.watched)
        command, env = self.runs[name]
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL)
        while process.poll() is None and _activity(self.watched) == before:
            time.sleep(0.005)
        time.sleep(delay)
        process.kill()
        process.wait()

    def run(self, kills: int, rng: random.Random) -> None:
        """The last good output survives every kill; the next complete run cleans up."""
        seconds = self.complete("b")
        good = {"b": _snapshot(self.output)}
        seconds = max(seconds, self.complete("a"))
        good["a"] = _snapshot(self.output)
        assert good["a"] != good["b"]
        last = "a"
        for attempt in range(kills):
            other = "b" if last == "a" else "a"
            delay = rng.uniform(0, seconds)
            self.kill(other, delay)
            now = _snapshot(self.output)
            changed = sorted(
                k for k in now.keys() | good[last].keys() if now.get(k) != good[last].get(k)
            )
            assert now in (good[last], good[other]), (
                f"kill {attempt}, {delay:.2f} s into writing, left a mixed output: "
                f"{changed} differ from the last good one"
            )
            self.read(self.output)
            last = other if now == good[other] else last
        other = "b" if last == "a" else "a"
        self.complete(other)
        assert _snapshot(self.output) == good[other]
        self.read(self.output)


def _read_tables(folder: Path) -> None:
    ContractTables.from_dir(folder).close()
    assert len(fingerprint(folder)) == 64


def _read_week(root: Path) -> None:
    store = WeekStore(root)
    assert store.weeks() == [WEEK]
    week = store.load(WEEK)
    folder = store.folder(WEEK)
    written = {k: v for k, v in file_digests(folder).items() if k != MANIFEST_FILE}
    assert week.manifest["files"] == written


def _only(folder: Path, *names: str) -> None:
    """Nothing but ``names`` in ``folder``: no staging folder survived the complete run."""
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.fixture(scope="module")
def raw_boroughs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A small synthetic borough, and a later extract of it with half the people gone."""
    a = tmp_path_factory.mktemp("raw-a")
    write(generate(SynthConfig(patients=2_000, seed=SEED)), a)
    b = tmp_path_factory.mktemp("raw-b")
    for name in ("practices.parquet", "events.parquet"):
        (b / name).write_bytes((a / name).read_bytes())
    patients = pd.read_parquet(a / "patients.parquet")
    patients.iloc[::2].to_parquet(b / "patients.parquet", index=False)
    return a, b


def _validate(data: Path, out: Path) -> tuple[list[str], dict[str, str]]:
    at = EXTRACT.isoformat()
    command = _riskstrat("validate", "--data", str(data), "--out", str(out), "--extract-date", at)
    return command, dict(os.environ)


def test_killed_validate_leaves_the_last_good_tables(
    raw_boroughs: tuple[Path, Path], tmp_path: Path
) -> None:
    out = tmp_path / "validated"
    raw = dict(zip("ab", raw_boroughs, strict=True))
    runs = {name: _validate(data, out) for name, data in raw.items()}
    exercise = Exercise(
        runs, lambda name: validate_dir(raw[name], out, EXTRACT), out, out, _read_tables
    )
    exercise.run(kills=4, rng=random.Random(SEED))
    _only(tmp_path, "validated")


def test_killed_ingest_leaves_the_last_good_tables_and_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "ingested"
    at = EXTRACT_DATE.isoformat()
    command = _riskstrat(
        "ingest",
        "--source",
        "synthea",
        "--path",
        str(SYNTHEA),
        "--out",
        str(out),
        "--extract-date",
        at,
    )
    keys = {"a": TEST_KEY, "b": TEST_KEY[::-1]}  # other pseudonyms: every table differs
    runs = {name: (command, os.environ | {KEY_ENV: key}) for name, key in keys.items()}

    def write(name: str) -> None:
        monkeypatch.setenv(KEY_ENV, keys[name])
        ingest("synthea", SYNTHEA, out, extract_date=EXTRACT_DATE)

    Exercise(runs, write, out, out, _read_tables).run(kills=3, rng=random.Random(SEED + 1))
    _only(tmp_path, "ingested")
    assert not list(out.rglob(".mapped-*"))


def test_killed_weekly_leaves_the_last_good_week(
    raw_boroughs: tuple[Path, Path],
    tmp_path: Path,
    champion: RegisteredBundle,
    tracking_uri: str,
) -> None:
    data = {}
    for name, raw in zip("ab", raw_boroughs, strict=True):
        data[name] = tmp_path / f"validated-{name}"
        validate_dir(raw, data[name], EXTRACT)
    lists = tmp_path / "lists"
    (tmp_path / "work").mkdir()
    model = load_champion(tracking_uri)  # what the command loads (other tests may promote)
    env = os.environ | {TRACKING_ENV: tracking_uri}
    runs = {
        name: (
            _riskstrat(
                "weekly",
                "--data",
                str(folder),
                "--as-of",
                WEEK.isoformat(),
                "--out",
                str(lists),
                "--workdir",
                str(tmp_path / "work"),
            ),
            env,
        )
        for name, folder in data.items()
    }
    exercise = Exercise(
        runs,
        lambda name: weekly_run(data[name], WEEK, model, lists),
        lists,
        WeekStore(lists).folder(WEEK),
        lambda _: _read_week(lists),
    )
    exercise.run(kills=3, rng=random.Random(SEED + 2))
    assert WEEK.isoformat() in {p.name for p in lists.iterdir()}
