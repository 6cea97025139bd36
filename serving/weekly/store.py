"""The weekly runs' folder: the one place that knows a week's file layout.

``<root>/<YYYY-MM-DD>/`` holds a finished week (it has a manifest);
``<root>/.<date>.partial-*`` are staging folders of a run in progress or killed
(``features.atomic``); ``<root>/.<date>.lock`` is the lock a run of that week holds while it
writes; ``<root>/runs.jsonl`` logs each run's stage timings. The weekly run writes through
``WeekStore.writing`` (lock, staging folder, then one swap), and the API, the pages and
``riskstrat referrals`` read through ``WeekStore.load``.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import IO

import pandas as pd

from riskstrat.common.atomic import replacing
from riskstrat.common.errors import MissingInputError, UserError

PEOPLE_FILE = "people.parquet"
REASONS_FILE = "reasons.parquet"
MANIFEST_FILE = "manifest.json"
LEFT_FILE = "left.csv"
BOROUGH_REPORT = "report.html"
LOTTERY_FILE = "lottery.csv"  # the week's draws, when the lottery is on
# The same draws as contract events (``risk_list_lottery``), to append to the next extract's
# events so that ``riskstrat evaluate``'s [lottery] design can compare who was drawn.
LOTTERY_EVENTS_FILE = "lottery_events.parquet"
RUN_LOG = "runs.jsonl"


class WeekLockedError(UserError):
    """Another run is writing the same week (a ValueError, so that the command line prints
    it as its one-line error); names the lock file and its holder."""


def latest_monday(on_or_before: date) -> date:
    """The week a run on ``on_or_before`` belongs to: weeks start on Mondays."""
    return on_or_before - timedelta(days=on_or_before.weekday())


@dataclass(frozen=True, slots=True)
class Week:
    """One finished run: its manifest, everyone scored, and the explained people's reasons."""

    as_of: date
    manifest: dict
    people: pd.DataFrame  # people.parquet, in rank order as written
    reasons: pd.DataFrame  # reasons.parquet
    explained: frozenset[str]  # the ids in reasons: read once, asked on every page

    @property
    def model_version(self) -> str | None:
        model = self.manifest.get("model")
        return str(model.get("version")) if isinstance(model, dict) else None

    @property
    def drift_verdict(self) -> str | None:
        drift = self.manifest.get("drift")
        verdict = drift.get("verdict") if isinstance(drift, dict) else None
        return str(verdict) if verdict else None


@dataclass(frozen=True, slots=True)
class WeekStore:
    """The finished weeks under ``root``."""

    root: Path

    def folder(self, week: date) -> Path:
        return self.root / week.isoformat()

    def weeks(self) -> list[date]:
        """The weeks with a finished run, oldest first."""
        found = []
        for folder in self.root.glob("[0-9]*") if self.root.exists() else ():
            if (folder / MANIFEST_FILE).exists():
                try:
                    found.append(date.fromisoformat(folder.name))
                except ValueError:
                    continue
        return sorted(found)

    def choose(self, week: date | None = None) -> date:
        """``week`` if it has a finished run, else the latest; FileNotFoundError naming what
        is missing."""
        weeks = self.weeks()
        if not weeks:
            raise MissingInputError(f"{self.root}: no finished weekly run yet")
        chosen = week or weeks[-1]
        if chosen not in weeks:
            raise MissingInputError(f"{self.root}: no finished run for the week of {chosen}")
        return chosen

    def load(self, week: date | None = None) -> Week:
        """The given week, or the latest (see ``choose``)."""
        folder = self.folder(self.choose(week))
        return _read(folder, (folder / MANIFEST_FILE).stat().st_mtime_ns)

    def people(self, week: date | None = None, columns: list[str] | None = None) -> pd.DataFrame:
        """Everyone scored in the given week (or the latest), without the reasons table;
        only ``columns`` when given."""
        return pd.read_parquet(self.folder(self.choose(week)) / PEOPLE_FILE, columns=columns)

    def absent(self, week: date) -> dict[str, tuple[str, ...]]:
        """The features the week's data could not record (their event kinds absent), with
        those kinds, from its manifest (none for a week written before they were kept)."""
        manifest = json.loads((self.folder(week) / MANIFEST_FILE).read_text())
        absent = manifest.get("absent")
        features = absent.get("features") if isinstance(absent, dict) else None
        if not isinstance(features, dict):
            return {}
        return {str(name): tuple(map(str, kinds)) for name, kinds in features.items()}

    def outcome(self, week: date) -> str | None:
        """The outcome (name) the week's model predicted, from its manifest."""
        manifest = json.loads((self.folder(week) / MANIFEST_FILE).read_text())
        model = manifest.get("model")
        outcome = model.get("outcome") if isinstance(model, dict) else None
        return str(outcome) if outcome else None

    def lottery(self, week: date | None = None) -> pd.DataFrame:
        """The draws of the given week (or the latest), one row per person drawn, as the
        weekly run kept them (``serving.weekly.offers.DRAW_COLUMNS``: team, action, seeds,
        the band, places, the order drawn, patient_id, key, won); empty when none were
        drawn, None when the lottery was off that week."""
        path = self.folder(self.choose(week)) / LOTTERY_FILE
        if not path.exists():
            return None
        text = {"week": "str", "team": "str", "action": "str", "draw_seed": "str"}
        return pd.read_csv(
            path, dtype=text | {"patient_id": "str", "won": "bool"}, keep_default_na=False
        )

    def previous(self, as_of: date, columns: list[str]) -> tuple[date | None, pd.DataFrame]:
        """The latest week before ``as_of`` and its people's ``columns``, indexed by patient
        (empty when there is none)."""
        earlier = [w for w in self.weeks() if w < as_of]
        if not earlier:
            return None, pd.DataFrame(columns=["patient_id", *columns]).set_index("patient_id")
        path = self.folder(earlier[-1]) / PEOPLE_FILE
        return earlier[-1], pd.read_parquet(path, columns=["patient_id", *columns]).set_index(
            "patient_id"
        )

    @contextmanager
    def writing(self, as_of: date) -> Iterator[Path]:
        """A staging folder to write the week into; on success it replaces the week's folder
        in one step (``features.atomic``: a kill at any moment leaves the old week or the new
        one), on failure it is removed and the last good week stays.

        Only one run writes a week at a time: a second run of the same week fails at once
        with ``WeekLockedError`` naming the run that holds the lock (see ``_lock``).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        with self._lock(as_of), replacing(self.folder(as_of)) as staging:
            yield staging

    @contextmanager
    def _lock(self, as_of: date) -> Iterator[None]:
        """Hold ``<root>/.<date>.lock`` (an exclusive ``flock``, released when the process
        ends, even when killed) with the holder's process id and start time written in it;
        ``WeekLockedError`` at once if another run holds it. The file goes when the run
        ends (one left by a killed run is taken over)."""
        path = self.root / f".{as_of.isoformat()}.lock"
        while True:
            handle = path.open("a+", encoding="utf-8")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "a run"
                handle.close()
                raise WeekLockedError(
                    f"{path}: another weekly run of the week of {as_of} is writing it "
                    f"({holder}); wait for it to finish, or stop it, then run again"
                ) from None
            if _same_file(handle, path):
                break
            handle.close()  # its holder removed it as we opened it: lock the new one
        try:
            handle.seek(0)
            handle.truncate()
            started = datetime.now(UTC).isoformat(timespec="seconds")
            handle.write(f"process {os.getpid()}, started {started}")
            handle.flush()
            yield
        finally:
            path.unlink(missing_ok=True)  # while still held: no one can take a stale one
            handle.close()

    def log_run(self, week: date, seconds: dict[str, float]) -> None:
        """One line per run in ``runs.jsonl``: when, which week, how long each stage took
        (kept out of the week's folder so that a re-run gives identical bytes)."""
        manifest = self.folder(week) / MANIFEST_FILE
        entry = {
            "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "week": week.isoformat(),
            "manifest_sha256": hashlib.sha256(manifest.read_bytes()).hexdigest(),
            "seconds": seconds | {"total": round(sum(seconds.values()), 2)},
        }
        with (self.root / RUN_LOG).open("a") as log:
            log.write(json.dumps(entry) + "\n")


def _same_file(handle: IO[str], path: Path) -> bool:
    """Whether the open ``handle`` is still the file at ``path``."""
    try:
        held, there = os.fstat(handle.fileno()), path.stat()
    except FileNotFoundError:
        return False
    return (held.st_dev, held.st_ino) == (there.st_dev, there.st_ino)


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file in ``folder``, by name (the manifest lists them)."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())}


@lru_cache(maxsize=4)
def _read(folder: Path, stamp: int) -> Week:
    """Cached per folder and manifest time: a re-run of a week is read afresh."""
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    people = pd.read_parquet(folder / PEOPLE_FILE)
    reasons = pd.read_parquet(folder / REASONS_FILE)
    explained = frozenset(reasons["patient_id"])
    return Week(date.fromisoformat(manifest["as_of"]), manifest, people, reasons, explained)
