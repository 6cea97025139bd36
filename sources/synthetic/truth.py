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

The probability of a potentially avoidable admission (``p_avoidable_admission``, and
``p_avoidable_admission_untreated``) counts any such admission in the horizon, as the labels
do, not only a first admission: an admission for another cause does not end its path, it
happens (sampled) and raises the later hazards as in the borough; the avoidable share of each
month's hazard comes from the path's state (``causes.avoidable_share``).
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
    p_avoidable_admission: np.ndarray  # a potentially avoidable admission (any, not only first)
    p_avoidable_admission_untreated: np.ndarray


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


@dataclass(frozen=True, slots=True)
class _Paths:
    """What one batch of sampled paths gives per row (``untreated``: per row an action runs
    for)."""

    admission: np.ndarray
    admission_or_death: np.ndarray
    admission_untreated: np.ndarray
    avoidable: np.ndarray
    avoidable_untreated: np.ndarray


def _admission_hazards(
    state: State,
    people: People,
    calendar_month: int,
    ratios: HazardRatios | None,
    step: int,
    batch: int,
) -> tuple[np.ndarray, np.ndarray]:
    """This month's hazards of an emergency admission (the locality model's ratio applied,
    without the list's actions) and of death."""
    base = np.exp(admission_log_hazard(state, people, calendar_month))
    admission = base if ratios is None else base * np.tile(ratios.admission[step], batch)
    return admission, np.exp(death_log_hazard(state))


def _first_event(
    hazard: np.ndarray, death: np.ndarray, survival: np.ndarray, fraction: float
) -> tuple[np.ndarray, np.ndarray]:
    """The chance that the event with ``hazard`` comes first this month (before death), and
    the survival past the month free of both, for rows free of both until now."""
    total = hazard + death
    return survival * hazard / total * -np.expm1(-total * fraction), survival * np.exp(
        -total * fraction
    )


def _path_probabilities(
    state: State,
    people: People,
    constants: Constants,
    months: list[tuple[int, float]],
    rng: np.random.Generator,
    ratios: HazardRatios | None,
    batch: int,
    untreated: np.ndarray,
) -> _Paths:
    """P(admission) and P(admission or death) along one sampled drift path per row, and
    P(admission) without the list's actions for the people ``untreated`` indexes (those an
    action runs for); the rows are ``batch`` copies of the people ``ratios`` has columns
    for.

    P(potentially avoidable admission), with and without the list's actions, follows a
    second track of the same drift draws (the generator's state is restored before each
    step's second draw): on it, the other admissions do not end the path but happen
    (sampled, Poisson, from their own stream) and move the state as they do in the borough;
    the list's actions change only the avoidable hazard, so treated and untreated share it.
    """
    n = len(state.age)
    people_n = n // batch
    rows = (np.arange(batch)[:, None] * people_n + untreated[None, :]).ravel()
    admissions_rng = rng.spawn(1)[0]
    track = state  # the avoidable track: other admissions happen on it
    survival, p_admission = np.ones(n), np.zeros(n)
    survival_untreated, p_untreated = np.ones(len(rows)), np.zeros(len(rows))
    free, p_avoidable = np.ones(n), np.zeros(n)
    free_untreated, p_avoidable_untreated = np.ones(len(rows)), np.zeros(len(rows))
    no_admissions = np.zeros(n)
    for step, (calendar_month, fraction) in enumerate(months):
        admission, death = _admission_hazards(state, people, calendar_month, ratios, step, batch)
        all_causes, on_track = _admission_hazards(
            track, people, calendar_month, ratios, step, batch
        )
        share = avoidable_share(track, people)
        avoidable_without = all_causes * share
        avoidable = avoidable_without.copy()
        if len(rows):
            without = admission[rows]
            hr = np.tile(ratios.avoidable[step, untreated], batch)
            admission[rows] = without * hazard_ratio(
                avoidable_share(take(state, rows), people.take(rows)), hr
            )
            avoidable[rows] *= hr
        p, survival_next = _first_event(admission, death, survival, fraction)
        p_admission += p
        p, free_next = _first_event(avoidable, on_track, free, fraction)
        p_avoidable += p
        if len(rows):
            p, survival_untreated = _first_event(without, death[rows], survival_untreated, fraction)
            p_untreated += p
            p, free_untreated = _first_event(
                avoidable_without[rows], on_track[rows], free_untreated, fraction
            )
            p_avoidable_untreated += p
        survival, free = survival_next, free_next
        if step + 1 < len(months):
            others = admissions_rng.poisson(all_causes * (1.0 - share) * fraction)
            care_home = 1.0 if ratios is None else np.tile(ratios.care_home[step], batch)
            drift = rng.bit_generator.state
            state, _ = advance(state, people, constants, no_admissions, rng, care_home)
            rng.bit_generator.state = drift
            track, _ = advance(track, people, constants, others, rng, care_home)
    return _Paths(p_admission, 1.0 - survival, p_untreated, p_avoidable, p_avoidable_untreated)


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
    # Averaged alike (the mean over paths), so that an untreated risk equals the treated one
    # to the last bit wherever no action runs, whoever else a run acts on.
    draws, avoidable = np.empty((paths, n)), np.empty((paths, n))
    untreated_draws = np.empty((2, paths, len(untreated)))
    either = np.zeros(n)
    for first in range(0, paths, paths_per_batch):
        batch = min(paths_per_batch, paths - first)
        index = np.tile(np.arange(n), batch)
        found = _path_probabilities(
            take(state, index), people.take(index), constants, months, rng, ratios, batch, untreated
        )
        done = slice(first, first + batch)
        draws[done] = found.admission.reshape(batch, n)
        avoidable[done] = found.avoidable.reshape(batch, n)
        either += found.admission_or_death.reshape(batch, n).sum(axis=0)
        for i, p in enumerate((found.admission_untreated, found.avoidable_untreated)):
            untreated_draws[i, done] = p.reshape(batch, len(untreated))
    p_admission, p_avoidable = draws.mean(axis=0), avoidable.mean(axis=0)
    p_admission_untreated, p_avoidable_untreated = p_admission.copy(), p_avoidable.copy()
    p_admission_untreated[untreated] = untreated_draws[0].mean(axis=0)
    p_avoidable_untreated[untreated] = untreated_draws[1].mean(axis=0)
    return Truth(
        p_admission=p_admission,
        p_admission_or_death=either / paths,
        p_admission_se=draws.std(axis=0, ddof=1) / np.sqrt(paths),
        p_admission_untreated=p_admission_untreated,
        p_avoidable_admission=p_avoidable,
        p_avoidable_admission_untreated=p_avoidable_untreated,
    )
