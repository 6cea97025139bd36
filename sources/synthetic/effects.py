"""The locality model's total effect on its caseload: both arms simulated from each go-live.

An emergency admission feeds back into the state (frailty, instability), so an admission the
programme prevents also lowers the hazards that follow: the effect on the treated is more
than the hazard ratio applied along the path that happened (the direct effect), and the
evaluation designs estimate the total. For each cohort the generator takes the realised state
of its caseload on the go-live date and simulates paths to the end of the data with the
programme and without, on common random numbers so the arms stay coupled: the same drift
draws, admissions drawn by inverse CDF from shared uniforms, deaths and leaving from shared
uniforms. Admissions feed back exactly as in the main simulation. Each month's expected
outcomes are computed from each arm's hazards on its path (admissions, causes, the
closed-form stay, A&E, care-home moves, package days) and averaged over the paths; the spread
of the paths' differences gives the Monte Carlo standard error. List actions are those that
happened in the data, in both arms.
"""

from __future__ import annotations

import calendar
from dataclasses import dataclass
from datetime import date

import numpy as np
from scipy.special import ndtr

from riskstrat.features.outcomes import OUTCOMES as EVALUATION_OUTCOMES
from riskstrat.sources.synthetic import emit
from riskstrat.sources.synthetic.causes import (
    avoidable_share,
    hazard_ratio,
    treated_avoidable_share,
)
from riskstrat.sources.synthetic.dynamics import (
    CARE_HOME_MONTHLY_CHANCE,
    Constants,
    State,
    admission_log_hazard,
    advance,
    care_needs,
    death_log_hazard,
    monthly_leaving_rate,
    take,
)
from riskstrat.sources.synthetic.population import People

OUTCOMES: tuple[str, ...] = tuple(EVALUATION_OUTCOMES)
"""The truth's outcomes: those an evaluation counts, under its names and in its order."""
AHEAD = 8  # months a reablement package can reach after its admission's month
_ROWS_PER_BATCH = 120_000
_LOG_MEAN_GRID = np.linspace(0.4, 2.0, 161)
_STAYS = np.arange(emit.MAX_STAY + 1)


def _mean_clipped_round(mean: np.ndarray, sd: float, low: int, high: int) -> np.ndarray:
    """E[clip(rint(X), low, high)] for X normal(mean, sd)."""
    steps = np.arange(low + 1, high + 1) - 0.5
    return low + ndtr((np.asarray(mean)[..., None] - steps) / sd).sum(axis=-1)


REABLEMENT_WEEKLY_COST = (
    float(_mean_clipped_round(np.array(emit.REABLEMENT_HOURS[0]), *emit.REABLEMENT_HOURS[1:]))
    * emit.REABLEMENT_HOURLY_COST
)


def expected_package_hours(needs: np.ndarray, constants: Constants) -> np.ndarray:
    """Mean hours of a home-care package starting at care needs ``needs`` (as emit draws)."""
    return _mean_clipped_round(emit.package_hours_centre(needs, constants), *emit.PACKAGE_HOURS)


def stay_distribution(log_mean: np.ndarray, multiplier: float) -> np.ndarray:
    """P(stay = k) for k = 0..MAX_STAY, stay = min(floor(multiplier * L), MAX_STAY)."""
    k = _STAYS[1:].astype(float)
    z = (np.log(k / multiplier)[None, :] - log_mean[:, None]) / emit.STAY_LOG_SD
    at_least = np.concatenate([np.ones((len(log_mean), 1)), ndtr(-z)], axis=1)
    return at_least - np.concatenate([at_least[:, 1:], np.zeros((len(log_mean), 1))], axis=1)


@dataclass(frozen=True, slots=True)
class Cohort:
    """A cohort's caseload on its go-live date, as the main simulation left it."""

    month: int  # month index of the go-live
    person: np.ndarray
    state: State
    people: People
    admission_hr: np.ndarray  # the programme's hazard ratio for each member
    hours: np.ndarray  # hours of the home-care package running at go-live (0: none recorded)


@dataclass(frozen=True, slots=True)
class Arm:
    """What the programme multiplies in one arm (all ones without it)."""

    admission: np.ndarray
    stay: float
    care_home: float
    package: float

    def same_as(self, other: Arm) -> bool:
        return bool(np.array_equal(self.admission, other.admission)) and (
            self.stay,
            self.care_home,
            self.package,
        ) == (other.stay, other.care_home, other.package)


class Months:
    """The calendar from a start date to the last day of the data, and per month the tables
    that turn a stay distribution into expected bed days and reablement days."""

    def __init__(self, start: date, months: int, last_day: int, epoch: date):
        self.first, self.days = [], []
        year, month = start.year, start.month
        for _ in range(months + AHEAD):
            self.first.append((date(year, month, 1) - epoch).days)
            self.days.append(calendar.monthrange(year, month)[1])
            year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        self.calendar_month = [(start.month - 1 + m) % 12 + 1 for m in range(months)]
        self.count, self.last_day = months, last_day
        self._tables: dict[tuple[int, float], tuple[np.ndarray, np.ndarray]] = {}

    def tables(self, month: int, multiplier: float) -> tuple[np.ndarray, np.ndarray]:
        """On the log-mean grid: expected bed days per admission starting in ``month`` (an
        open stay counts to the last day of data) and expected reablement days in each of the
        ``AHEAD`` months from it per admission that gets a reablement package."""
        key = (month, multiplier)
        if key not in self._tables:
            first, days = self.first[month], self.days[month]
            start = first + np.arange(days)[None, :]  # admission day
            stay = _STAYS[:, None]
            bed = np.minimum(stay, self.last_day - start).mean(axis=1)
            begin = start + stay  # discharge: the package's first day
            stop = np.minimum(begin + emit.REABLEMENT_LAST_DAY + 1, self.last_day + 1)
            reablement = np.stack(
                [
                    (
                        np.minimum(stop, self.first[month + j] + self.days[month + j])
                        - np.maximum(begin, self.first[month + j])
                    )
                    .clip(0)
                    .mean(axis=1)
                    for j in range(AHEAD)
                ],
                axis=1,
            )
            grid = stay_distribution(_LOG_MEAN_GRID, multiplier)
            self._tables[key] = (grid @ bed, grid @ reablement)
        return self._tables[key]


def _interpolate(log_mean: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Linear interpolation of ``table`` (grid rows, any columns) at each ``log_mean``."""
    x = np.clip(log_mean, _LOG_MEAN_GRID[0], _LOG_MEAN_GRID[-1])
    position = (x - _LOG_MEAN_GRID[0]) / (_LOG_MEAN_GRID[1] - _LOG_MEAN_GRID[0])
    low = np.minimum(position.astype(int), len(_LOG_MEAN_GRID) - 2)
    weight = position - low
    if table.ndim == 1:
        return table[low] * (1 - weight) + table[low + 1] * weight
    return table[low] * (1 - weight)[:, None] + table[low + 1] * weight[:, None]


def poisson_quantile(u: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """The Poisson(``mean``) count whose CDF first reaches ``u`` (inverse-CDF sampling, so
    two arms drawing from the same ``u`` stay coupled)."""
    count = np.zeros(len(u), np.int64)
    term = np.exp(-mean)
    cdf = term.copy()
    more = u > cdf
    k = 0
    while more.any() and k < 60:
        k += 1
        term = term * mean / k
        cdf = cdf + term
        count += more
        more &= u > cdf
    return count


@dataclass
class _Path:
    """One arm's paths (rows: members x paths) through the months."""

    state: State
    present: np.ndarray
    hours: np.ndarray
    pending: np.ndarray  # reablement cost due in each of the next AHEAD months


@dataclass(frozen=True, slots=True)
class _World:
    """What stays fixed while a batch of paths runs."""

    people: People
    index: np.ndarray  # member of each row
    months: Months
    constants: Constants
    leaving: float  # yearly leaving rate
    opening_hours: np.ndarray  # hours of the package each row had running at go-live


def simulate(
    cohort: Cohort,
    arms: tuple[Arm, Arm],
    list_hr: np.ndarray,
    months: Months,
    constants: Constants,
    leaving: float,
    paths: int,
    rng: np.random.Generator,
) -> np.ndarray:
    """Both arms' expected caseload totals, shape (arm, outcome, month from go-live, path),
    from ``paths`` coupled paths to the end of the data. ``list_hr``: (month from
    go-live, member) ratio of the potentially avoidable admissions' hazard of the list actions
    that happened."""
    n, horizon = len(cohort.person), months.count - cohort.month
    totals = np.zeros((2, len(OUTCOMES), horizon, paths))
    per_batch = max(1, _ROWS_PER_BATCH // max(n, 1))
    same = arms[0].same_as(arms[1])  # no effect: one arm is both
    for first in range(0, paths, per_batch):
        batch = min(per_batch, paths - first)
        index = np.tile(np.arange(n), batch)
        world = _World(
            cohort.people.take(index), index, months, constants, leaving, cohort.hours[index]
        )
        state, rows = take(cohort.state, index), len(index)
        runs = [
            _Path(
                state,
                np.ones(rows, bool),
                arm.package * world.opening_hours,
                np.zeros((rows, AHEAD)),
            )
            for arm in arms
        ]
        for step in range(horizon):
            drift = int(rng.integers(2**63))
            u = rng.random((3, rows))
            for a, (arm, run) in enumerate(zip(arms, runs, strict=True)):
                if a == 1 and same:
                    totals[1, :, step, first : first + batch] = totals[
                        0, :, step, first : first + batch
                    ]
                    continue
                values = _month(
                    run,
                    arm,
                    world,
                    cohort.month + step,
                    list_hr[step][index],
                    u,
                    np.random.default_rng(drift),
                    opening=step == 0,
                )
                totals[a, :, step, first : first + batch] = values.reshape(
                    len(OUTCOMES), batch, n
                ).sum(axis=2)
    return totals


def _month(
    run: _Path,
    arm: Arm,
    world: _World,
    month: int,
    list_hr: np.ndarray,
    u: np.ndarray,
    drift: np.random.Generator,
    opening: bool,
) -> np.ndarray:
    """One month of one arm: its expected outcomes (outcome x row); moves the arm's paths on
    to the next month. ``list_hr``: each row's ratio of the list action running (of the
    potentially avoidable admissions' hazard); ``u``: the shared uniforms for deaths,
    admissions and leaving; ``drift``: the shared stream of the state's drift."""
    state, present, people = run.state, run.present, world.people
    months, constants, rows = world.months, world.constants, len(world.index)
    days = months.days[month]
    share = avoidable_share(state, people)
    rate = (
        np.exp(admission_log_hazard(state, people, months.calendar_month[month]))
        * arm.admission[world.index]
        * hazard_ratio(share, list_hr)
    )
    death = np.exp(death_log_hazard(state))
    dying = -np.expm1(-death)
    exposure = present * dying / death
    admissions = rate * exposure
    death_time = -np.log1p(-u[0]) / death
    dies = present & (death_time < 1.0)
    count = np.where(present, poisson_quantile(u[1], rate * np.minimum(death_time, 1.0)), 0)

    log_mean = emit.stay_log_mean(state, np.arange(rows))
    bed_table, reablement_table = months.tables(month, arm.stay)
    reabled = (
        admissions
        * emit.REABLEMENT_CHANCE
        * (state.log_frailty > emit.REABLEMENT_MIN_LOG_FRAILTY)
        * REABLEMENT_WEEKLY_COST
        / 7
    )
    run.pending += reabled[:, None] * _interpolate(log_mean, reablement_table)

    moved, changes = advance(state, people, constants, count, drift, arm.care_home)
    alive_after = present & ~dies
    at_risk = ~state.care_home & (care_needs(moved, people) > constants.care_home_threshold)
    moves = alive_after * at_risk * CARE_HOME_MONTHLY_CHANCE * arm.care_home
    after_move = (days + 1) / (2 * days)  # an admission on or after the move's day

    running = np.where(
        dies,
        np.floor(death_time * days) + 1,
        np.where(changes.package_ended, (days + 1) / 2, days),
    )
    starts = np.flatnonzero(alive_after & changes.package_started)
    new_hours = np.zeros(rows)
    new_hours[starts] = arm.package * expected_package_hours(
        care_needs(take(moved, starts), people.take(starts)), constants
    )
    package = (run.hours * running + new_hours * (days + 1) / 2) * emit.HOME_CARE_HOURLY_COST / 7
    if opening and arm.package != 1.0:
        # The package running at go-live ends that day (counted) and a smaller one starts.
        package = package + world.opening_hours * emit.HOME_CARE_HOURLY_COST / 7
    package = present * (package + run.pending[:, 0])

    values = np.stack(
        [
            admissions,
            admissions * treated_avoidable_share(share, list_hr),
            admissions * _interpolate(log_mean, bed_table),
            emit.ae_discharged_yearly_rate(state, people, np.arange(rows)) / 12 * exposure
            + emit.ADMITTED_VIA_AE * admissions,
            admissions * (state.care_home + moves * after_move),
            moves,
            package,
            present * dying,
        ]
    )
    ended = alive_after & changes.package_ended
    run.hours = np.where(new_hours > 0, new_hours, np.where(ended, 0.0, run.hours))
    run.pending = np.concatenate([run.pending[:, 1:], np.zeros((rows, 1))], axis=1)
    leaves = u[2] < monthly_leaving_rate(world.leaving, moved.age)
    run.present = alive_after & ~leaves
    run.state = moved
    return values
