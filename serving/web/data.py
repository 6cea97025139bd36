"""The weekly run's folders as the pages read them, and who may see which rows.

Weeks are found and read by ``serving.weekly.store`` (the same reader as the API): a week
folder is ``<RISKSTRAT_WEEKLY_DIR>/<YYYY-MM-DD>/`` with a manifest; staging folders are
ignored. Who may see which locality is ``Principal.localities_for``, the rule the API uses.
"""

from __future__ import annotations

import logging
from datetime import date

import pandas as pd

from riskstrat.contract.record import FolderError
from riskstrat.contract.tables import ContractTables
from riskstrat.features.timeline import patient_timeline
from riskstrat.serving.access import OutsideScopeError, Principal
from riskstrat.serving.roles import Can, may
from riskstrat.serving.settings import ServiceSettings, SettingsError
from riskstrat.serving.weekly.store import Week, WeekStore

TIMELINE_MONTHS = 24

logger = logging.getLogger(__name__)


class NoWeeklyDataError(LookupError):
    """No weekly run to show (the folder is not set, missing or empty)."""


def weekly_store() -> WeekStore:
    """The store for ``RISKSTRAT_WEEKLY_DIR`` (read on each call, so tests can set it)."""
    try:
        return WeekStore(ServiceSettings.current().require("weekly_dir"))
    except SettingsError as exc:
        raise NoWeeklyDataError(str(exc)) from None


def visible_people(principal: Principal, week: Week) -> pd.DataFrame:
    """The people of ``week`` in the localities the principal may see."""
    localities = principal.localities_for()
    people = week.people
    return people[people["locality"].isin(localities)] if localities else people


def may_open(principal: Principal, week: Week, person: pd.Series) -> bool:
    """Whether the principal may open this person's page: in their localities, and for a
    role without ``Can.OPEN_ANY_PERSON`` (social prescribers) only the people the weekly
    run explained (listed or referral candidates)."""
    try:
        principal.localities_for([person["locality"]])
    except OutsideScopeError:
        return False
    return may(principal.role, Can.OPEN_ANY_PERSON) or person["patient_id"] in week.explained


def timeline(patient_id: str, as_of: date) -> pd.DataFrame | None:
    """The person's events in the 24 months before ``as_of``, most recent first.

    None when the contract tables are not configured, are not whole (a folder a run left
    half-written is refused, and the page shows no timeline rather than a wrong one), or do
    not hold the person.
    """
    folder = ServiceSettings.current().data_dir
    if folder is None:
        return None
    try:
        sources = ContractTables.from_dir(folder)
    except FileNotFoundError:
        return None
    except FolderError as exc:
        logger.warning("no timelines: %s", exc)
        return None
    try:
        events = patient_timeline(sources, patient_id, as_of, months=TIMELINE_MONTHS)
    except KeyError:
        return None
    finally:
        sources.close()
    return events.iloc[::-1].reset_index(drop=True)
