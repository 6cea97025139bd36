"""Ground truth: each person's exact probability of an emergency admission in a horizon.

Admissions and deaths are competing events whose monthly hazards are constant within a
calendar month, so along a path of the slow drift the probability of a first admission before
death and before the horizon ends is a closed-form sum over months. The drift itself (ageing,
new conditions, mood, loneliness, care transitions) is random, so the answer is averaged over
``paths`` sampled no-admission paths; the standard error across paths is reported per person.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

import numpy as np

from features.sources.synthetic.dynamics import (
    Constants,
    State,
    admission_log_hazard,
    advance,
    death_log_hazard,
    take,
)
from features.sources.synthetic.population import People


@dataclass(frozen=True, slots=True)
class Truth:
    p_admission: np.ndarray
    p_admission_or_death: np.ndarray
    p_admission_se: np.ndarray


@dataclass(frozen=True, slots=True)
class HazardRatios:
    """Per horizon month (rows) and person (columns): what multiplies the admission hazard
    and the chance of moving into a care home."""

    admission: np.ndarray
    care_home: np.ndarray

    def tile(self, times: int) -> HazardRatios:
        return HazardRatios(np.tile(self.admission, times), np.tile(self.care_home, times))


def month_fractions(as_of: date, horizon_days: int) -> list[tuple[int, float]]:
    """(calendar month, fraction of it inside the horizon) for each month the horizon touches."""
    out, year, month, left = [], as_of.year, as_of.month, horizon_days
    while left > 0:
        days = calendar.monthrange(year, month)[1]
        out.append((month, min(left, days) / days))
        left -= days
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return out


def _path_probabilities(
    state: State,
    people: People,
    constants: Constants,
    months: list[tuple[int, float]],
    rng: np.random.Generator,
    ratios: HazardRatios | None,
) -> tuple[np.ndarray, np.ndarray]:
    """P(admission) and P(admission or death) along one sampled drift path per row."""
    survival = np.ones(len(state.age))
    p_admission = np.zeros(len(state.age))
    no_admissions = np.zeros(len(state.age))
    for step, (calendar_month, fraction) in enumerate(months):
        admission = np.exp(admission_log_hazard(state, people, calendar_month))
        if ratios is not None:
            admission = admission * ratios.admission[step]
        total = admission + np.exp(death_log_hazard(state))
        p_admission += survival * admission / total * -np.expm1(-total * fraction)
        survival *= np.exp(-total * fraction)
        if step + 1 < len(months):
            care_home = 1.0 if ratios is None else ratios.care_home[step]
            state, _ = advance(state, people, constants, no_admissions, rng, care_home)
    return p_admission, 1.0 - survival


def exact_risk(
    state: State,
    people: People,
    constants: Constants,
    as_of: date,
    horizon_days: int,
    paths: int,
    rng: np.random.Generator,
    paths_per_batch: int = 4,
    ratios: HazardRatios | None = None,
) -> Truth:
    """Average over ``paths`` drift paths of the closed-form admission probability, with
    the hazard ratios of the interventions known on the as-of date, if any."""
    n = len(state.age)
    months = month_fractions(as_of, horizon_days)
    draws = np.empty((paths, n))
    either = np.zeros(n)
    for first in range(0, paths, paths_per_batch):
        batch = min(paths_per_batch, paths - first)
        index = np.tile(np.arange(n), batch)
        p_adm, p_any = _path_probabilities(
            take(state, index),
            people.take(index),
            constants,
            months,
            rng,
            None if ratios is None else ratios.tile(batch),
        )
        draws[first : first + batch] = p_adm.reshape(batch, n)
        either += p_any.reshape(batch, n).sum(axis=0)
    return Truth(
        p_admission=draws.mean(axis=0),
        p_admission_or_death=either / paths,
        p_admission_se=draws.std(axis=0, ddof=1) / np.sqrt(paths),
    )
