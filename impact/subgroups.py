"""Effect modifiers: each design's effect per level of the plan's subgroups, and whether the
effect differs between levels (the interaction test).

Every level is estimated by the design's own estimator on the eligible people at that level
only, with the plan's settings, so a level's estimate means what the whole population's does.
The interaction compares each level with the reference (the first level: "0", "no", the
youngest band) on the proportional change, the scale the plan's ``minimum_effect`` and the
programme's hazard ratios are on: the difference is the level's relative change minus the
reference's (-0.13: the programme lowers the outcome by 13 percentage points more).

How sure the difference is depends on whether the levels' estimates share noise:

- difference-in-differences: both levels live in the same clusters and months, so a shock to
  a cluster-month moves both. With randomisation inference (or the wild cluster bootstrap)
  the levels are re-estimated under the same re-assigned roll-out schedules (the same
  bootstrap weights), each after removing its own estimated relative effect; the spread of
  the difference of those null draws gives the interval and the p-value of no difference
  (as ``did`` does for its event-study spreads). Shared shocks cancel in the difference
  instead of being counted twice, which an independent combination would do.
- person-clustered DiD and the matched comparison: people are independent by assumption, and
  the matched comparison matches within each level, so the levels' matched sets are disjoint:
  the difference's variance is the sum of the two (delta method on each rate ratio's log).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import numpy as np
import pandas as pd
from scipy.stats import norm

from riskstrat.impact.cohort import Cohort
from riskstrat.impact.did import DidEstimate, staggered_did
from riskstrat.impact.matching import MatchedEstimate, OutcomeEffect, matched_comparison
from riskstrat.impact.plan import DidDesign, Plan
from riskstrat.impact.power import ALPHA
from riskstrat.impact.results import (
    ANSWERED,
    Interaction,
    Interval,
    SubgroupEffect,
    SubgroupResult,
)

E = TypeVar("E")
Z = float(norm.ppf(1 - ALPHA / 2))
RD_NOT_RUN = (
    "not estimated per subgroup: the discontinuity's people are those scored on a list run, "
    "not the baseline population the subgroups are defined on, and within one level too few "
    "of them fall inside its bandwidth for an estimate"
)


def _finite(value: Interval) -> Interval | None:
    """The interval when every part of it is a number; None (written as null) otherwise."""
    parts = (value.estimate, value.ci_low, value.ci_high)
    return value if all(math.isfinite(v) for v in parts) else None


UNBOUNDED = "its interval has no finite end: the data cannot bound the change at this level"
UNBOUNDED_DIFFERENCE = "the difference's interval has no finite end: the data cannot bound it"


def _answered_when_bounded(verdict: str, value: Interval | None, unbounded: str) -> str:
    """An answered verdict becomes ``unbounded`` when there is no finite interval to show."""
    return unbounded if verdict == ANSWERED and value is None else verdict


def _first_reason(*verdicts: str) -> str:
    return next((v for v in verdicts if v != ANSWERED), ANSWERED)


def _from_draws(estimate: float, draws: np.ndarray) -> Interval:
    """The difference with the interval and p-value from its null draws (estimate - truth)."""
    error = np.abs(draws[np.isfinite(draws)])
    if error.size == 0:
        return Interval(estimate=estimate, ci_low=math.nan, ci_high=math.nan)
    margin = float(np.quantile(error, 1 - ALPHA))
    p_value = float(np.mean(error >= abs(estimate) * (1 - 1e-9)))
    return Interval(
        estimate=estimate, ci_low=estimate - margin, ci_high=estimate + margin, p_value=p_value
    )


def _independent(estimate: float, se: float) -> Interval:
    """The difference of two independent estimates with the sum of their variances."""
    p_value = float(2 * norm.sf(abs(estimate) / se)) if se > 0 else math.nan
    return Interval(
        estimate=estimate, ci_low=estimate - Z * se, ci_high=estimate + Z * se, p_value=p_value
    )


def _level_effect(
    outcome: str, level: str, n_people: int, effect: Interval, relative: Interval, verdict: str
) -> SubgroupEffect:
    """One level's effect as the results keep it: intervals with no infinite end, and a
    verdict that answers only when the relative change is bounded."""
    relative = _finite(relative)
    return SubgroupEffect(
        outcome=outcome,
        level=level,
        n_people=n_people,
        effect=_finite(effect),
        relative=relative,
        verdict=_answered_when_bounded(verdict, relative, UNBOUNDED),
    )


# ---- difference-in-differences -----------------------------------------------------------


def _did_effect(outcome: str, level: str, estimate: DidEstimate) -> SubgroupEffect:
    effect = Interval(
        estimate=12 * estimate.att,
        ci_low=12 * estimate.ci_low,
        ci_high=12 * estimate.ci_high,
        p_value=estimate.p_value,
    )
    relative = Interval(
        estimate=estimate.relative_effect,
        ci_low=estimate.relative_ci_low,
        ci_high=estimate.relative_ci_high,
        p_value=estimate.p_value,
    )
    return _level_effect(outcome, level, estimate.n_people, effect, relative, estimate.verdict)


def _relative_se(estimate: DidEstimate) -> float:
    """The relative effect's standard error from its (log-symmetric) normal interval."""
    low, high = np.log1p([estimate.relative_ci_low, estimate.relative_ci_high])
    return float((1 + estimate.relative_effect) * (high - low) / (2 * Z))


def _did_difference(level: DidEstimate, reference: DidEstimate) -> Interval | None:
    estimate = level.relative_effect - reference.relative_effect
    if not math.isfinite(estimate):
        return None
    draws = (level.null_relative, reference.null_relative)
    if level.inference == "person_cluster":
        se = math.hypot(_relative_se(level), _relative_se(reference))
        return _finite(_independent(estimate, se)) if math.isfinite(se) else None
    if all(isinstance(d, np.ndarray) for d in draws) and draws[0].shape == draws[1].shape:
        return _finite(_from_draws(estimate, draws[0] - draws[1]))
    return None


def did_subgroups(
    plan: Plan, cohort: Cohort, outcome: str, panel: pd.DataFrame
) -> list[SubgroupResult]:
    """Each subgroup of the plan under its [did] settings, for one outcome and its
    person-month ``panel`` (the whole cohort's; ``merged`` joins the outcomes)."""
    design: DidDesign = plan.did
    shared = design.inference != "person_cluster"
    method = (
        "Each level's own difference-in-differences with the plan's [did] settings; the "
        "interaction's interval and p-value from "
        + (
            "the same re-assigned roll-out schedules (bootstrap weights) for every level, "
            "each level's estimated relative effect removed, so shocks the levels share "
            "within a cluster-month cancel"
            if shared
            else "the levels' standard errors, people being independent under person-"
            "clustered inference"
        )
    )

    def estimate(people: pd.Index) -> DidEstimate:
        return staggered_did(
            panel[panel["person"].isin(people)],
            control=design.control,
            inference=design.inference,
            seed=plan.seed,
            draws=design.bootstrap,
        )

    return [
        _by_level(
            str(subgroup),
            cohort,
            method,
            lambda _outcome, _level, people: estimate(people),
            [outcome],
            _did_effect,
            _did_difference,
            _same_units(cohort, str(subgroup)) if shared else None,
        )
        for subgroup in plan.subgroup_list
    ]


def merged(parts: list[list[SubgroupResult]]) -> list[SubgroupResult]:
    """The subgroups of several outcomes' ``did_subgroups``, one result per subgroup."""
    return [
        group[0].model_copy(
            update={
                "effects": [e for same in group for e in same.effects],
                "interactions": [i for same in group for i in same.interactions],
            }
        )
        for group in zip(*parts, strict=True)
    ]


def _same_units(cohort: Cohort, by: str) -> str | None:
    """Why the levels' DiD draws cannot be paired, if a level lacks a unit the others have."""
    units = cohort.unit.groupby(cohort.subgroups[by], observed=False).unique()
    every = set(cohort.unit)
    for level, mine in units.items():
        missing = sorted(every - set(mine))
        if missing:
            return f"level {level} has nobody in {', '.join(missing)}"
    return None


# ---- matched comparison -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _MatchedLevel:
    """One outcome at one level: its effect, or none when the level's matching found too
    few people (``verdict`` then says why), and the people compared."""

    effect: OutcomeEffect | None
    verdict: str
    n_people: int


def _matched_effect(outcome: str, level: str, found: _MatchedLevel) -> SubgroupEffect:
    effect = found.effect
    if effect is None:
        return SubgroupEffect(
            outcome=outcome, level=level, n_people=found.n_people, verdict=found.verdict
        )
    ratio = Interval(
        estimate=effect.rate_ratio,
        ci_low=effect.ci_low,
        ci_high=effect.ci_high,
        p_value=effect.p_value,
    )
    relative = Interval(
        estimate=effect.rate_ratio - 1,
        ci_low=effect.ci_low - 1,
        ci_high=effect.ci_high - 1,
        p_value=effect.p_value,
    )
    return _level_effect(outcome, level, found.n_people, ratio, relative, effect.verdict)


def _matched_difference(level: _MatchedLevel, reference: _MatchedLevel) -> Interval | None:
    if level.effect is None or reference.effect is None:
        return None
    one, other = level.effect, reference.effect
    estimate = one.rate_ratio - other.rate_ratio
    se = math.hypot(one.rate_ratio * one.log_se, other.rate_ratio * other.log_se)
    if not (math.isfinite(estimate) and math.isfinite(se)):
        return None
    return _finite(_independent(estimate, se))


def matched_subgroups(
    plan: Plan,
    cohort: Cohort,
    people: pd.DataFrame,
    features: list[str],
    outcomes: list[str],
) -> list[SubgroupResult]:
    """Each subgroup of the plan under its [matched] settings: the treated people of a level
    matched to comparison people of the same level (``people`` as ``matched_comparison``
    takes them), features constant within the level left out."""
    design = plan.matched
    method = (
        "Treated people matched within each level to comparison people of the same level, "
        "with the plan's [matched] settings; the difference of the rate ratios with a "
        "delta-method interval (the levels' matched sets are disjoint, so independent)"
    )
    cache: dict[tuple[str, str], MatchedEstimate] = {}

    def estimate(by: str, level: str, outcome: str, members: pd.Index) -> _MatchedLevel:
        if (by, level) not in cache:
            mine = people[people["person"].isin(members)]
            varying = [f for f in features if mine[f].nunique() > 1]
            found = matched_comparison(
                mine,
                features=varying,
                outcomes=outcomes,
                primary=plan.outcomes.primary,
                k=design.controls_per_treated,
                caliper=design.caliper,
                seed=plan.seed,
            )
            cache[by, level] = found
        found = cache[by, level]
        effects = {e.outcome: e for e in found.outcomes}
        n_people = found.counts.matched + found.counts.controls_used
        return _MatchedLevel(effects.get(outcome), found.verdict, n_people)

    return [
        _by_level(
            str(subgroup),
            cohort,
            method,
            lambda outcome, level, members, by=str(subgroup): estimate(by, level, outcome, members),
            outcomes,
            _matched_effect,
            _matched_difference,
            None,
        )
        for subgroup in plan.subgroup_list
    ]


# ---- shared -------------------------------------------------------------------------------


def _by_level(
    by: str,
    cohort: Cohort,
    method: str,
    estimate: Callable[[str, str, pd.Index], E],
    outcomes: list[str],
    effect: Callable[[str, str, E], SubgroupEffect],
    difference: Callable[[E, E], Interval | None],
    unpaired: str | None,
) -> SubgroupResult:
    """One subgroup: ``estimate(outcome, level, people)`` at each level, each summarised by
    ``effect``, each level against the reference by ``difference``; ``unpaired`` says why
    the levels' draws cannot be paired (each difference then says so)."""
    levels = cohort.levels(by)
    members = {level: cohort.people[(cohort.subgroups[by] == level).to_numpy()] for level in levels}
    effects, interactions = [], []
    for outcome in outcomes:
        found = {level: estimate(outcome, level, members[level]) for level in levels}
        shown = {level: effect(outcome, level, found[level]) for level in levels}
        effects += shown.values()
        reference = levels[0]
        for level in levels[1:]:
            verdict = _first_reason(
                *(
                    f"at {by} {v}: {shown[v].verdict}"
                    for v in (level, reference)
                    if shown[v].verdict != ANSWERED
                )
            )
            if unpaired:
                verdict = _first_reason(verdict, f"the levels cannot be compared: {unpaired}")
            value = None if unpaired else difference(found[level], found[reference])
            interactions.append(
                Interaction(
                    outcome=outcome,
                    level=level,
                    reference=reference,
                    difference=value,
                    verdict=_answered_when_bounded(verdict, value, UNBOUNDED_DIFFERENCE),
                )
            )
    return SubgroupResult(
        by=by, levels=levels, method=method, effects=effects, interactions=interactions
    )
