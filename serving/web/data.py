"""The weekly run's folders as the pages read them, and who may see which rows.

Weeks are found and read by ``serving.weekly.store`` (the same reader as the API): a week
folder is ``<RISKSTRAT_WEEKLY_DIR>/<YYYY-MM-DD>/`` with a manifest; staging folders are
ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd

from features.tables import ContractTables
from features.timeline import patient_timeline
from serving.access import Principal
from serving.weekly.store import WEEKLY_DIR_ENV, Week, WeekStore

DATA_DIR_ENV = "RISKSTRAT_DATA_DIR"
TIMELINE_MONTHS = 24


class NoWeeklyDataError(LookupError):
    """No weekly run to show (the folder is not set, missing or empty)."""


def weekly_store() -> WeekStore:
    """The store for ``RISKSTRAT_WEEKLY_DIR`` (read on each call, so tests can set it)."""
    root = os.environ.get(WEEKLY_DIR_ENV)
    if not root:
        raise NoWeeklyDataError(f"set {WEEKLY_DIR_ENV} to the weekly run's output folder")
    return WeekStore(Path(root))


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
        return not self.explained_only or person["patient_id"] in week.explained


def timeline(patient_id: str, as_of: date) -> pd.DataFrame | None:
    """The person's events in the 24 months before ``as_of``, most recent first.

    None when the contract tables are not configured or do not hold the person.
    """
    folder = os.environ.get(DATA_DIR_ENV)
    if not folder:
        return None
    try:
        sources = ContractTables.from_dir(Path(folder))
    except FileNotFoundError:
        return None
    try:
        events = patient_timeline(sources, patient_id, as_of, months=TIMELINE_MONTHS)
    except KeyError:
        return None
    finally:
        sources.connection.close()
    return events.iloc[::-1].reset_index(drop=True)
