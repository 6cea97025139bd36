"""Each outcome of the evaluation (``riskstrat.features.outcomes`` names and defines them; the
generator's truth follows the same definitions), counted per person and calendar month from
the contract tables, read through ``ContractTables`` on its engine.

``exposure`` is the share of the month the person was registered and alive: rates are
outcome per person-month of exposure, so people who die or leave count for the time they were
there and no longer.

An outcome counted from an event kind the data hold none of (``OUTCOME_KINDS``) is *absent*:
it is kept out of ``outcomes`` and named in ``absent``, because a count of zero would read as
"none happened" rather than "not recorded".
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, timedelta
from functools import cache

import ibis.expr.types as ir
import numpy as np
import pandas as pd

from riskstrat.common.months import month_start
from riskstrat.contract.needs import present_kinds
from riskstrat.contract.schema import EVENTS, PATIENTS, EventKind
from riskstrat.contract.tables import ContractTables, unbound
from riskstrat.features.avoidable import potentially_avoidable
from riskstrat.features.outcomes import OUTCOME_KINDS, OUTCOMES

_KINDS = tuple(k for k in EventKind if any(k in kinds for kinds in OUTCOME_KINDS.values()))
_DAY = np.timedelta64(1, "D")


def months_end(last_day: date) -> date:
    """The first day after the last whole calendar month of data ending on ``last_day``."""
    return month_start(last_day + timedelta(days=1))


@dataclass(frozen=True, slots=True)
class Months:
    """Calendar months ``first`` .. before ``end`` (each the first of its month)."""

    first: date
    end: date

    def __post_init__(self) -> None:
        if self.first.day != 1 or self.end.day != 1 or self.end <= self.first:
            raise ValueError(f"months {self.first}..{self.end} must be firsts of months, in order")

    @property
    def starts(self) -> np.ndarray:
        return np.arange(np.datetime64(self.first, "M"), np.datetime64(self.end, "M") + 1).astype(
            "datetime64[D]"
        )

    def __len__(self) -> int:
        return len(self.starts) - 1

    def index(self, day: date) -> int:
        """The period number of the month holding ``day`` (0 for ``first``'s)."""
        return int(self.periods(pd.Series([pd.Timestamp(day)]))[0])

    def periods(self, days: pd.Series) -> np.ndarray:
        """The period number of the month holding each date; -1 where there is no date."""
        months = pd.to_datetime(days).to_numpy().astype("datetime64[M]")
        number = (months - np.datetime64(self.first, "M")).astype(int)
        return np.where(np.isnat(months), -1, number)


def absent_outcomes(present: Iterable[str]) -> dict[str, tuple[str, ...]]:
    """Each outcome that cannot be counted from data holding events of the ``present``
    kinds, with the kinds it lacks."""
    have = set(present)
    lacking = {
        name: tuple(k.value for k in kinds if k.value not in have)
        for name, kinds in OUTCOME_KINDS.items()
    }
    return {name: kinds for name, kinds in lacking.items() if kinds}


@dataclass(frozen=True, slots=True)
class PersonMonths:
    """Outcomes per person (rows, ``people`` order) and month (columns); ``absent`` names
    the outcomes the data cannot count, with the event kinds they lack."""

    people: pd.Index
    months: Months
    exposure: np.ndarray
    outcomes: dict[str, np.ndarray]
    absent: dict[str, tuple[str, ...]]

    def total(self, outcome: str, first: date, end: date) -> np.ndarray:
        """Each person's total of ``outcome`` over the months ``first``..before ``end``."""
        return self.outcomes[outcome][:, self._slice(first, end)].sum(axis=1)

    def exposure_years(self, first: date, end: date) -> np.ndarray:
        return self.exposure[:, self._slice(first, end)].sum(axis=1) / 12.0

    def _slice(self, first: date, end: date) -> slice:
        return slice(
            max(self.months.index(first), 0), min(self.months.index(end), len(self.months))
        )

    def long(self, outcome: str) -> pd.DataFrame:
        """One row per person-month with exposure: person, period, y, exposure."""
        person, period = np.nonzero(self.exposure > 0)
        return pd.DataFrame(
            {
                "person": self.people.to_numpy()[person],
                "period": period,
                "y": self.outcomes[outcome][person, period],
                "exposure": self.exposure[person, period],
            }
        )


def count(
    tables: ContractTables,
    people: pd.Index,
    months: Months,
    last_day: date,
    present: Iterable[str] | None = None,
) -> PersonMonths:
    """Count every outcome for ``people`` (patient ids) over ``months``; ``last_day`` is the
    last day the data covers (open stays and packages end there); ``present`` the event kinds
    the whole data hold (asked of ``tables`` when not given): the others' outcomes are
    absent."""
    patients = tables.run(_patients()).set_index("patient_id").reindex(people)
    if patients["birth_month"].isna().any():
        missing = patients.index[patients["birth_month"].isna()][:3].tolist()
        raise ValueError(f"people not in the {PATIENTS.name} table: {missing}")
    events = tables.run(_outcome_events())
    events = events[events["patient_id"].isin(people)]
    row = pd.Series(np.arange(len(people)), index=people)
    starts = months.starts
    limit = np.datetime64(last_day) + _DAY
    exposure = _exposure(patients, starts, limit)
    counted = {name: np.zeros(exposure.shape) for name in OUTCOMES}

    by_kind = {k: events[events["kind"] == k.value] for k in _KINDS}
    admissions = by_kind[EventKind.EMERGENCY_ADMISSION]
    stay_end = admissions["end"].fillna(pd.Timestamp(limit - _DAY))
    stay = ((stay_end - admissions["start"]) / _DAY).clip(lower=0).to_numpy(dtype=float)
    homes = by_kind[EventKind.CARE_HOME_ADMISSION].groupby("patient_id")["start"].min()
    # reindex, not map: pandas cannot map through an empty series of dates.
    resident = admissions["start"].to_numpy() >= homes.reindex(admissions["patient_id"]).to_numpy()
    _add(counted["emergency_admissions"], admissions, row, starts)
    avoidable = potentially_avoidable(admissions["code"], admissions["code_system"])
    _add(counted["avoidable_admissions"], admissions[avoidable], row, starts)
    _add(counted["bed_days"], admissions, row, starts, weights=stay)
    _add(counted["care_home_resident_admissions"], admissions[resident], row, starts)
    _add(counted["ae_attendances"], by_kind[EventKind.AE_ATTENDANCE], row, starts)
    _add(counted["care_home_admissions"], by_kind[EventKind.CARE_HOME_ADMISSION], row, starts)
    counted["package_cost"] = _package_cost(
        by_kind[EventKind.SOCIAL_CARE_PACKAGE], row, starts, limit
    )
    deaths = patients["death_date"].dropna()
    _add(
        counted["deaths"], pd.DataFrame({"patient_id": deaths.index, "start": deaths}), row, starts
    )
    absent = absent_outcomes(present_kinds(tables) if present is None else present)
    measured = {
        name: np.where(exposure > 0, values, 0.0)
        for name, values in counted.items()
        if name not in absent
    }
    return PersonMonths(people, months, exposure, measured, absent)


@cache
def _patients() -> ir.Table:
    return unbound(PATIENTS.name).select(*PATIENTS.schema.names)


@cache
def _outcome_events() -> ir.Table:
    """The events of the kinds an outcome is counted from (everyone's: the cohort is
    chosen in pandas, so the compiled query is one per process)."""
    events = unbound(EVENTS.name)
    return events.filter(events.kind.isin([k.value for k in _KINDS])).select(*EVENTS.schema.names)


def _exposure(patients: pd.DataFrame, starts: np.ndarray, limit: np.datetime64) -> np.ndarray:
    """Share of each month each person was registered and alive (up to ``limit``)."""
    begin = patients["registration_start"].to_numpy("datetime64[D]")
    last = np.minimum(
        patients["registration_end"].fillna(pd.Timestamp(limit - _DAY)).to_numpy("datetime64[D]"),
        patients["death_date"].fillna(pd.Timestamp(limit - _DAY)).to_numpy("datetime64[D]"),
    )
    stop = np.minimum(last + _DAY, limit)  # exclusive
    lo = np.maximum(begin[:, None], starts[None, :-1])
    hi = np.minimum(stop[:, None], starts[None, 1:])
    days = ((hi - lo) / _DAY).clip(min=0)
    return days / ((starts[1:] - starts[:-1]) / _DAY)[None, :]


def _add(
    into: np.ndarray,
    events: pd.DataFrame,
    row: pd.Series,
    starts: np.ndarray,
    weights: np.ndarray | None = None,
) -> None:
    """Add each event (or its weight) to its person's row in the month it started."""
    day = events["start"].to_numpy("datetime64[D]")
    period = np.searchsorted(starts, day, side="right") - 1
    inside = (period >= 0) & (period < into.shape[1])
    person = row.reindex(events["patient_id"]).to_numpy()
    value = np.ones(len(events)) if weights is None else np.asarray(weights, float)
    np.add.at(into, (person[inside], period[inside]), value[inside])


def _package_cost(
    packages: pd.DataFrame, row: pd.Series, starts: np.ndarray, limit: np.datetime64
) -> np.ndarray:
    """Weekly cost x days active / 7, spread over the months each package was active."""
    out = np.zeros((len(row), len(starts) - 1))
    if packages.empty:
        return out
    begin = packages["start"].to_numpy("datetime64[D]")
    stop = np.minimum(
        packages["end"].fillna(pd.Timestamp(limit - _DAY)).to_numpy("datetime64[D]") + _DAY, limit
    )
    lo = np.maximum(begin[:, None], starts[None, :-1])
    hi = np.minimum(stop[:, None], starts[None, 1:])
    days = ((hi - lo) / _DAY).clip(min=0)
    weekly = packages["cost"].fillna(0.0).to_numpy(dtype=float)
    np.add.at(out, row.reindex(packages["patient_id"]).to_numpy(), days * weekly[:, None] / 7.0)
    return out
