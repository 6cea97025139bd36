"""Is the model learning the list's own effect? Monitoring in every weekly run.

A risk list that works changes what happens: listed people get help (a reablement plan, a
social prescribing referral) and are admitted less, so a model retrained naively on that
period learns that their profile carries less risk (Liley et al. 2021). Each run checks two
things from the contract tables and the week store:

- **Active help now**: among this week's listed people, how many have list-triggered help
  (``features.exposure``, ``[exposure]``) running on the as-of date.
- **Follow-up**: the *follow-up week* is the earliest stored week at least
  ``MIN_FOLLOW_UP_DAYS`` before the as-of date and at most the model's horizon before it,
  scored for the same outcome (in steady weekly use: the week one horizon back, whose
  follow-up is complete). Its people, listed and not listed that week, are followed from the
  week's date to the earliest of this as-of date, the week plus the horizon, the end of
  registration or death (that day included) and their first outcome event; events on or
  after this as-of date are not used. Observed (O) is the number with the outcome (the
  model's: the first emergency admission, or death too); expected (E) is their stored risk
  as a cumulative hazard, ``-ln(1 - risk)``, times the share of the horizon they were
  followed. One week, not several pooled: the weeks' follow-ups overlap and would count the
  same admissions several times, which the Poisson intervals cannot allow for.

O/E has an exact Poisson 95% interval; the ratio of the listed people's O/E to the unlisted
people's has the exact conditional (binomial) interval. The verdict (``verdict``) is the one
rule: a *warning* when the ratio's upper bound is below ``RATIO_MARGIN``, *ok* when its lower
bound is at or above it, otherwise too little follow-up to tell.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, timedelta
from enum import StrEnum
from functools import cache

import ibis.expr.types as ir
import numpy as np
import pandas as pd
from scipy.stats import beta, chi2

from riskstrat.common.months import DAYS_PER_YEAR
from riskstrat.contract.tables import ContractTables, unbound
from riskstrat.features.exposure import ExposureRule, exposure
from riskstrat.features.labels import first_admissions
from riskstrat.models.description import OutcomeDescription
from riskstrat.serving.weekly.store import WeekStore
from riskstrat.serving.weekly.tiers import listed_mask

MIN_FOLLOW_UP_DAYS = 28
RATIO_MARGIN = 0.9  # listed O/E at most 90% of the unlisted people's: the list's effect shows
LEVEL = 0.95
_DIGITS = 6


class Verdict(StrEnum):
    NO_FOLLOW_UP = "no follow-up"
    TOO_LITTLE = "too little follow-up"
    OK = "ok"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class ActiveHelp:
    """This week's listed people with list-triggered help running on the as-of date."""

    listed: int
    with_help: int
    share: float | None  # None when nobody is listed
    rule: str  # the exposure rule in words


@dataclass(frozen=True, slots=True)
class ObservedExpected:
    """One group's observed and expected outcomes over its follow-up."""

    people: int
    person_years: float
    observed: int
    expected: float
    ratio: float | None  # O/E; None when nothing was expected
    low: float | None
    high: float | None


@dataclass(frozen=True, slots=True)
class FollowUp:
    """The follow-up week's listed and unlisted people, compared."""

    week: date
    days: int  # from the week's date to the end of follow-up (at most the horizon)
    listed: ObservedExpected
    unlisted: ObservedExpected
    ratio: float | None  # listed O/E over unlisted O/E
    low: float | None
    high: float | None  # None when unbounded
    not_found: int  # people of that week no longer in the contract tables' cohort


@dataclass(frozen=True, slots=True)
class Monitoring:
    """What the weekly run's manifest (``monitoring``) and reports say."""

    active_help: ActiveHelp
    follow_up: FollowUp | None
    verdict: Verdict
    message: str
    margin: float
    min_follow_up_days: int

    @property
    def warning(self) -> bool:
        return self.verdict is Verdict.WARNING

    def to_manifest(self) -> dict:
        """The manifest block: JSON types only, dates as ISO strings."""
        block = asdict(self)
        block["verdict"] = self.verdict.value
        if self.follow_up is not None:
            block["follow_up"]["week"] = self.follow_up.week.isoformat()
        return block


def monitor(
    sources: ContractTables,
    store: WeekStore,
    as_of: date,
    listed: pd.Index,
    outcome: OutcomeDescription,
    rule: ExposureRule,
) -> Monitoring:
    """The monitoring block of the week of ``as_of``; ``listed`` are this week's listed ids."""
    help_now = active_help(sources, as_of, listed, outcome.horizon_days, rule)
    week = follow_up_week(store, as_of, outcome)
    if week is None:
        reason = (
            "the model's outcome is a feature table's label column, which the contract tables "
            "cannot observe"
            if outcome.label_column is not None
            else f"no stored week scored for {outcome.name} is between {MIN_FOLLOW_UP_DAYS} "
            f"and {outcome.horizon_days} days before {as_of}"
        )
        message = f"No comparison of observed and predicted admissions yet: {reason}."
        return Monitoring(
            help_now, None, Verdict.NO_FOLLOW_UP, message, RATIO_MARGIN, MIN_FOLLOW_UP_DAYS
        )
    people = store.people(week, ["patient_id", "risk", "tier"]).set_index("patient_id")
    followed = follow_up(sources, week, as_of, people, outcome)
    found, message = verdict(followed)
    return Monitoring(help_now, followed, found, message, RATIO_MARGIN, MIN_FOLLOW_UP_DAYS)


def active_help(
    sources: ContractTables, as_of: date, listed: pd.Index, horizon_days: int, rule: ExposureRule
) -> ActiveHelp:
    """How many of ``listed`` have help running on ``as_of`` (one exposure query)."""
    exposed = exposure(sources, [as_of], horizon_days, rule)
    running = exposed.index.get_level_values("patient_id")[exposed["running"].to_numpy()]
    with_help = int(listed.isin(running).sum())
    share = round(with_help / len(listed), _DIGITS) if len(listed) else None
    return ActiveHelp(len(listed), with_help, share, rule.describe())


def follow_up_week(store: WeekStore, as_of: date, outcome: OutcomeDescription) -> date | None:
    """The earliest stored week between ``MIN_FOLLOW_UP_DAYS`` and the horizon before
    ``as_of`` scored for the same outcome (see the module docstring), or None."""
    if outcome.label_column is not None:
        return None
    earliest = as_of - timedelta(days=outcome.horizon_days)
    latest = as_of - timedelta(days=MIN_FOLLOW_UP_DAYS)
    for week in store.weeks():
        if earliest <= week <= latest and store.outcome(week) == outcome.name:
            return week
    return None


@cache
def _first_outcome(horizon_days: int) -> ir.Table:
    """Every patient's registration end, death and first emergency admission in the horizon
    from the as-of date (here the follow-up week): the labels' window."""
    patients = unbound("patients").select("patient_id", "registration_end", "death_date")
    first = first_admissions(horizon_days)
    first = first.select("patient_id", first_admission=first.first_event)
    return patients.left_join(first, "patient_id").drop("patient_id_right")


def follow_up(
    sources: ContractTables,
    week: date,
    as_of: date,
    people: pd.DataFrame,
    outcome: OutcomeDescription,
) -> FollowUp:
    """Observed against expected outcomes from ``week`` up to ``as_of`` for ``people`` (that
    week's, indexed by patient, with ``risk`` and ``tier``); one admissions query."""
    horizon = outcome.horizon_days
    facts = sources.run(_first_outcome(horizon), [week]).set_index("patient_id")
    rows = facts.index.get_indexer(people.index)
    found = rows >= 0
    people, facts = people[found], facts.iloc[rows[found]]

    def since_week(column: str) -> np.ndarray:
        """Days from the week's date, NaN where there is no date."""
        days = facts[column].to_numpy("datetime64[D]")
        offset = (days - np.datetime64(week, "D")).astype("float64")
        offset[np.isnat(days)] = np.nan
        return offset

    death = since_week("death_date")
    limit = float(min((as_of - week).days, horizon))
    stop = np.fmin(np.fmin(since_week("registration_end") + 1, death + 1), limit)
    first = since_week("first_admission")
    if outcome.include_death:
        first = np.fmin(first, death)
    event = first < stop
    days = np.where(event, first, stop).clip(min=0)
    risk = people["risk"].to_numpy(dtype="float64").clip(0.0, 1.0 - 1e-9)
    listed = listed_mask(people["tier"]).to_numpy()
    expected = -np.log1p(-risk) * days / horizon
    groups = [
        _observed_expected(event[mask], days[mask], expected[mask]) for mask in (listed, ~listed)
    ]
    ratio = ratio_interval(groups[0], groups[1])
    return FollowUp(
        week=week,
        days=min((as_of - week).days, horizon),
        listed=groups[0],
        unlisted=groups[1],
        ratio=ratio[0],
        low=ratio[1],
        high=ratio[2],
        not_found=int((~found).sum()),
    )


def _observed_expected(
    event: np.ndarray, days: np.ndarray, expected: np.ndarray
) -> ObservedExpected:
    observed, total = int(event.sum()), float(expected.sum())
    ratio, low, high = poisson_interval(observed, total)
    return ObservedExpected(
        people=len(event),
        person_years=round(float(days.sum()) / DAYS_PER_YEAR, 2),
        observed=observed,
        expected=round(total, _DIGITS),
        ratio=ratio,
        low=low,
        high=high,
    )


def _rounded(*values: float | None) -> tuple[float | None, ...]:
    return tuple(
        None if v is None or not np.isfinite(v) else round(float(v), _DIGITS) for v in values
    )


def poisson_interval(observed: int, expected: float) -> tuple[float | None, ...]:
    """O/E and its exact (Garwood) Poisson interval at ``LEVEL``; Nones when E is 0."""
    if expected <= 0:
        return None, None, None
    tail = (1 - LEVEL) / 2
    low = chi2.ppf(tail, 2 * observed) / 2 if observed > 0 else 0.0
    high = chi2.ppf(1 - tail, 2 * observed + 2) / 2
    return _rounded(observed / expected, low / expected, high / expected)


def ratio_interval(
    listed: ObservedExpected, unlisted: ObservedExpected
) -> tuple[float | None, ...]:
    """Listed O/E over unlisted O/E with the exact conditional interval: given the total
    observed, the listed people's share is binomial (Clopper-Pearson), and the ratio is that
    share's odds times E(unlisted)/E(listed). Nones when it cannot be estimated; an upper
    bound of None when it is unbounded (no unlisted events)."""
    o1, o2, e1, e2 = listed.observed, unlisted.observed, listed.expected, unlisted.expected
    total = o1 + o2
    if total == 0 or e1 <= 0 or e2 <= 0 or o2 == 0:
        return None, None, None
    tail = (1 - LEVEL) / 2
    low = beta.ppf(tail, o1, o2 + 1) if o1 > 0 else 0.0
    high = beta.ppf(1 - tail, o1 + 1, o2)
    scale = e2 / e1
    return _rounded((o1 / e1) / (o2 / e2), low / (1 - low) * scale, high / (1 - high) * scale)


def verdict(followed: FollowUp) -> tuple[Verdict, str]:
    """The one rule (module docstring) and what the manifest and reports say."""
    listed, unlisted = followed.listed, followed.unlisted
    amount = (
        f"{followed.days} days of follow-up since the week of {followed.week}: "
        f"{listed.observed} admitted against {listed.expected:.1f} expected among the "
        f"{listed.people:,} people listed then, {unlisted.observed:,} against "
        f"{unlisted.expected:.1f} among the {unlisted.people:,} not listed"
    )
    if followed.ratio is None or followed.low is None:
        return Verdict.TOO_LITTLE, (
            f"Too little follow-up to tell whether the list changes admissions: {amount}."
        )
    bounds = f"95% interval {followed.low:.2f} to " + (
        f"{followed.high:.2f}" if followed.high is not None else "unbounded"
    )
    compared = (
        f"listed people's observed/expected {listed.ratio:.2f} against {unlisted.ratio:.2f} "
        f"for the others (ratio {followed.ratio:.2f}, {bounds}; {amount})"
    )
    if followed.high is not None and followed.high < RATIO_MARGIN:
        return Verdict.WARNING, (
            "Listed people are admitted less than the model predicts, relative to everyone "
            f"else: {compared}. Most likely the help the list triggers is working. A model "
            "retrained naively on this period would learn the list's own effect and rate "
            "exactly these people lower: retrain with an intervention-aware strategy "
            "([train.intervention] strategy, see docs/training.md)."
        )
    if followed.low >= RATIO_MARGIN:
        return Verdict.OK, (
            f"Listed people are admitted as the model predicts, relative to everyone else: "
            f"{compared}. No sign that a retrained model would learn the list's own effect."
        )
    return Verdict.TOO_LITTLE, (
        "Too little follow-up yet to tell whether listed people are admitted less than the "
        f"model predicts: {compared}; the interval includes {RATIO_MARGIN:g}."
    )
