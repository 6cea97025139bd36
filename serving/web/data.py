"""The weekly run's folders as the pages read them, and who may see which rows.

A week folder is ``<RISKSTRAT_WEEKLY_DIR>/<YYYY-MM-DD>/`` with ``manifest.json``,
``people.parquet`` and ``reasons.parquet``. Folders starting with "." (staging) or without a
manifest are ignored. Loaded weeks are kept in memory (the last few used) and reloaded when
their files change.
"""

from __future__ import annotations

import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.sources import Sources
from features.timeline import patient_timeline
from serving.access import Principal

WEEKLY_DIR_ENV = "RISKSTRAT_WEEKLY_DIR"
DATA_DIR_ENV = "RISKSTRAT_DATA_DIR"
TIMELINE_MONTHS = 24


class NoWeeklyDataError(LookupError):
    """No weekly run to show (the folder is not set, missing or empty)."""


@dataclass(frozen=True, slots=True)
class Week:
    """One weekly run: its manifest, everyone scored, and the explained people's reasons."""

    as_of: date
    manifest: dict
    people: pd.DataFrame
    reasons: pd.DataFrame

    @property
    def model_version(self) -> str | None:
        model = self.manifest.get("model")
        return str(model.get("version")) if isinstance(model, dict) else None

    @property
    def drift_verdict(self) -> str | None:
        drift = self.manifest.get("drift")
        verdict = drift.get("verdict") if isinstance(drift, dict) else None
        return str(verdict) if verdict else None

    def listed(self) -> pd.DataFrame:
        """The people on the list (a non-empty tier)."""
        return self.people[self.people["tier"] != ""]


def week_dates(root: Path) -> list[date]:
    """The weeks under ``root`` with a manifest, newest first."""
    dates = []
    for folder in root.iterdir() if root.is_dir() else ():
        if folder.name.startswith(".") or not (folder / "manifest.json").is_file():
            continue
        try:
            dates.append(date.fromisoformat(folder.name))
        except ValueError:
            continue
    return sorted(dates, reverse=True)


def _load(folder: Path) -> Week:
    manifest = json.loads((folder / "manifest.json").read_text())
    people = pd.read_parquet(folder / "people.parquet")
    reasons = pd.read_parquet(folder / "reasons.parquet")
    return Week(date.fromisoformat(folder.name), manifest, people, reasons)


class WeeklyStore:
    """The weeks under one folder, the most recently used ``keep`` of them in memory."""

    def __init__(self, root: Path, keep: int = 2) -> None:
        self.root = root
        self.keep = keep
        self._weeks: OrderedDict[date, tuple[tuple[int, ...], Week]] = OrderedDict()
        self._lock = threading.Lock()

    def dates(self) -> list[date]:
        return week_dates(self.root)

    def week(self, as_of: date | None = None) -> Week:
        """The week of ``as_of`` (the latest when None); LookupError if there is none."""
        dates = self.dates()
        if not dates:
            raise NoWeeklyDataError(f"no weekly run in {self.root} yet")
        if as_of is None:
            as_of = dates[0]
        elif as_of not in dates:
            raise LookupError(f"no weekly run for {as_of}")
        folder = self.root / as_of.isoformat()
        stamp = tuple(
            (folder / name).stat().st_mtime_ns
            for name in ("manifest.json", "people.parquet", "reasons.parquet")
        )
        with self._lock:
            cached = self._weeks.get(as_of)
            if cached and cached[0] == stamp:
                self._weeks.move_to_end(as_of)
                return cached[1]
        week = _load(folder)
        with self._lock:
            self._weeks[as_of] = (stamp, week)
            self._weeks.move_to_end(as_of)
            while len(self._weeks) > self.keep:
                self._weeks.popitem(last=False)
        return week


_stores: dict[Path, WeeklyStore] = {}


def weekly_store() -> WeeklyStore:
    """The store for ``RISKSTRAT_WEEKLY_DIR`` (read on each call, so tests can set it)."""
    root = os.environ.get(WEEKLY_DIR_ENV)
    if not root:
        raise NoWeeklyDataError(f"set {WEEKLY_DIR_ENV} to the weekly run's output folder")
    path = Path(root)
    if path not in _stores:
        _stores[path] = WeeklyStore(path)
    return _stores[path]


@dataclass(frozen=True, slots=True)
class Scope:
    """The rows a principal may see.

    Locality teams see the people of their localities. Social prescribers see the people the
    weekly run explained (listed or referral candidates), in their localities if their token
    names any. Data scientists and systems see everyone (or their localities, if named).
    """

    localities: tuple[str, ...]  # empty: every locality
    explained_only: bool

    @classmethod
    def of(cls, principal: Principal) -> Scope:
        return cls(principal.localities, principal.role == "social_prescriber")

    def people(self, week: Week) -> pd.DataFrame:
        people = week.people
        if self.localities:
            people = people[people["locality"].isin(self.localities)]
        return people

    def may_see(self, week: Week, person: pd.Series) -> bool:
        if self.localities and person["locality"] not in self.localities:
            return False
        return not self.explained_only or bool(
            (week.reasons["patient_id"] == person["patient_id"]).any()
        )


def timeline(patient_id: str, as_of: date) -> pd.DataFrame | None:
    """The person's events in the 24 months before ``as_of``, most recent first.

    None when the contract tables are not configured or do not hold the person.
    """
    folder = os.environ.get(DATA_DIR_ENV)
    if not folder:
        return None
    try:
        sources = Sources.from_dir(Path(folder))
    except FileNotFoundError:
        return None
    try:
        events = patient_timeline(sources, patient_id, as_of, months=TIMELINE_MONTHS)
    except KeyError:
        return None
    finally:
        sources.connection.close()
    return events.iloc[::-1].reset_index(drop=True)
