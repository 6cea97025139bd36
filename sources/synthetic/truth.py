"""Ground truth: each person's exact probability of an emergency admission in a horizon.

Admissions and deaths are competing events whose monthly hazards are constant within a
calendar month, so along a path of the slow drift the probability of a first admission before
death and before the horizon ends is a closed-form sum over months. The drift itself (ageing,
new conditions, mood, loneliness, care transitions) is random, so the answer is averaged over
``paths`` sampled no-admission paths; the standard error across paths is reported per person.

The probability without the risk list's actions (``p_admission_untreated``) is summed along
the very same paths (the list's actions change the admission hazard only, never the drift), so
the two differ only by the list's effect. The actions lower the hazard of potentially
avoidable admissions only, so along each path the avoidable share of the treated people's
hazard is worked out month by month from the path's state.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

import numpy as np

from riskstrat.sources.synthetic.causes import avoidable_share, hazard_ratio
from riskstrat.sources.synthetic.dynamics import (
    Constants,
    State,
    admission_log_hazard,
    advance,
    death_log_hazard,
    take,
)
from riskstrat.sources.synthetic.population import People


@dataclass(frozen=True, slots=True)
class Truth:
    p_admission: np.ndarray
    p_admission_or_death: np.ndarray
    p_admission_se: np.ndarray
    p_admission_untreated: np.ndarray  # without the list's actions, on the same paths


@dataclass(frozen=True, slots=True)
class HazardRatios:
    """Per horizon month (rows) and person (columns): what multiplies the whole admission
    hazard (the locality model) and the chance of moving into a care home. ``avoidable``,
    when given, is what the risk list's actions multiply the hazard of potentially avoidable
    admissions by; the truth without them leaves it out."""

    admission: np.ndarray
    care_home: np.ndarray
    avoidable: np.ndarray | None = None


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
    batch: int,
    untreated: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """P(admission) and P(admission or death) along one sampled drift path per row, and
    P(admission) without the list's actions for the people ``untreated`` indexes (those an
    action runs for); the rows are ``batch`` copies of the people ``ratios`` has columns
    for."""
    n = len(state.age)
    survival, p_admission = np.ones(n), np.zeros(n)
    people_n = n // batch
    rows = (np.arange(batch)[:, None] * people_n + untreated[None, :]).ravel()
    survival_untreated, p_untreated = np.ones(len(rows)), np.zeros(len(rows))
    no_admissions = np.zeros(n)
    for step, (calendar_month, fraction) in enumerate(months):
        base = np.exp(admission_log_hazard(state, people, calendar_month))
        death = np.exp(death_log_hazard(state))
        admission = base if ratios is None else base * np.tile(ratios.admission[step], batch)
        if len(rows):
            without = admission[rows]
            share = avoidable_share(take(state, rows), people.take(rows))
            hr = np.tile(ratios.avoidable[step, untreated], batch)
            admission[rows] = without * hazard_ratio(share, hr)
        total = admission + death
        p_admission += survival * admission / total * -np.expm1(-total * fraction)
        survival *= np.exp(-total * fraction)
        if len(rows):
            total = without + death[rows]
            p_untreated += survival_untreated * without / total * -np.expm1(-total * fraction)
            survival_untreated *= np.exp(-total * fraction)
        if step + 1 < len(months):
            care_home = 1.0 if ratios is None else np.tile(ratios.care_home[step], batch)
            state, _ = advance(state, people, constants, no_admissions, rng, care_home)
    return p_admission, 1.0 - survival, p_untreated


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
    the hazard ratios of the interventions known on the as-of date, if any. The untreated
    probability is summed only for people a list action runs for (the same arithmetic
    gives the same number for the others); without ``ratios.avoidable`` it is
    ``p_admission`` (no list)."""
    n = len(state.age)
    months = month_fractions(as_of, horizon_days)
    untreated = (
        np.flatnonzero((ratios.avoidable != 1.0).any(axis=0))
        if ratios is not None and ratios.avoidable is not None
        else np.zeros(0, np.int64)
    )
    draws = np.empty((paths, n))
    untreated_draws = np.empty((paths, len(untreated)))
    either = np.zeros(n)
    for first in range(0, paths, paths_per_batch):
        batch = min(paths_per_batch, paths - first)
        index = np.tile(np.arange(n), batch)
        p_adm, p_any, p_untreated = _path_probabilities(
            take(state, index), people.take(index), constants, months, rng, ratios, batch, untreated
        )
        draws[first : first + batch] = p_adm.reshape(batch, n)
        either += p_any.reshape(batch, n).sum(axis=0)
        untreated_draws[first : first + batch] = p_untreated.reshape(batch, len(untreated))
    p_admission = draws.mean(axis=0)
    p_admission_untreated = p_admission.copy()
    p_admission_untreated[untreated] = untreated_draws.mean(axis=0)
    return Truth(
        p_admission=p_admission,
        p_admission_or_death=either / paths,
        p_admission_se=draws.std(axis=0, ddof=1) / np.sqrt(paths),
        p_admission_untreated=p_admission_untreated,
    )
