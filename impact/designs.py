"""Each design run on the plan's data, its estimates turned into results with their words.

The estimators (``did``, ``matching``, ``rd``) take plain frames and know nothing of plans;
this module builds their frames, calls them and writes what they found in the results'
terms: the effect in the design's measure, the relative change, the checks, the tables the
report plots, and a sentence a board paper can quote, or the reason the data cannot answer.
"""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.common.months import month_start
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import ContractTables
from riskstrat.features.absent import describe_absent
from riskstrat.features.outcomes import OUTCOME_KINDS, OUTCOMES
from riskstrat.impact.cohort import Cohort
from riskstrat.impact.did import staggered_did
from riskstrat.impact.matching import SMD_TARGET, matched_comparison
from riskstrat.impact.outcomes import Months, PersonMonths, count, months_end
from riskstrat.impact.panels import (
    did_panel,
    list_run,
    matched_groups,
    matched_people,
    rd_frame,
)
from riskstrat.impact.plan import Plan, RdDesign
from riskstrat.impact.power import minimum_detectable_effect
from riskstrat.impact.rd import rd_bins, regression_discontinuity
from riskstrat.impact.results import ANSWERED, Check, DesignResult, Interval, OutcomeResult
from riskstrat.impact.subgroups import RD_NOT_RUN, did_subgroups, matched_subgroups, merged
from riskstrat.impact.summary import cannot_answer, change_sentence
from riskstrat.models.bundle import ModelBundle

MATCH_FEATURES = (
    "age",
    "sex",
    "deprivation_decile",
    "frailty_index",
    "ltc_count",
    "emergency_admissions_365d",
    "emergency_bed_days_365d",
    "ae_attendances_365d",
    "gp_contacts_365d",
    "care_home_resident",
    "social_care_package_active",
    "social_care_weekly_cost",
    "has_frailty",
    "has_dementia",
    "has_heart_failure",
    "has_copd",
    "lives_alone_coded",
)
"""Prognostic baseline features matched on when the plan names none."""


DID_TITLE = "Staggered difference-in-differences"
MATCHED_TITLE = "Matched comparison (Improvement Analytics Unit style)"
RD_TITLE = "Regression discontinuity at the list's cut-off"


def _too_short(needed: date, data_end: date) -> str:
    return (
        f"follow-up too short: the plan follows people to {needed}, the data stop before {data_end}"
    )


def _unanswerable(
    design: str, title: str, plan: Plan, first: date, end: date, reason: str
) -> DesignResult:
    """A design the data cannot answer: the reason, and no estimate at all."""
    return DesignResult(
        design=design,
        title=title,
        method="not run",
        population=f"{plan.population.describe()} on {plan.population.baseline}",
        first_month=first,
        end_month=end,
        verdict=reason,
        outcomes=[],
        seconds=0.0,
    )


def _not_measured(name: str, kinds: tuple[str, ...], measure: str, who: str) -> OutcomeResult:
    """An outcome the data cannot count: which event kinds it lacks, and no estimate."""
    label = OUTCOMES[name]
    reason = f"not measured: the data hold no {' or '.join(kinds)} events"
    return OutcomeResult(
        outcome=name,
        label=label,
        measure=measure,
        effect=Interval(estimate=np.nan, ci_low=np.nan, ci_high=np.nan),
        n_people=0,
        verdict=reason,
        summary=f"{label[:1].upper()}{label[1:]} among {who} could not be measured: the data "
        f"hold no {' or '.join(kinds)} events.",
    )


def _absent_inputs(cohort: Cohort, columns: list[str], role: str) -> list[Check]:
    """A failed check naming the ``columns`` (read by ``role``) whose event kinds the data
    lack: they hold their defaults for everyone, so they select or balance nothing."""
    absent = cohort.absent(columns)
    if not absent:
        return []
    return [
        Check(
            name="absent inputs",
            passed=False,
            detail=f"{role} read features the data do not record, held at their defaults for "
            f"everyone ({'; '.join(describe_absent(absent))})",
        )
    ]


def _missing_features(people: pd.DataFrame, features: list[str]) -> tuple[list[str], str]:
    """Of the matching ``features``, those missing for everyone in ``people`` (not recorded
    in the data: nothing to match on, so left out), and those missing for some people, as
    "name (n of N)" (no match for them, so the design cannot run as planned)."""
    missing = people[features].isna().sum()
    unrecorded = [f for f in features if missing[f] == len(people)]
    partial = [
        f"{f} ({missing[f]:,} of {len(people):,})" for f in features if 0 < missing[f] < len(people)
    ]
    return unrecorded, ", ".join(partial)


def _unrecorded_inputs(unrecorded: list[str]) -> list[Check]:
    """A failed check naming the matching features the data do not record for anyone."""
    if not unrecorded:
        return []
    return [
        Check(
            name="unrecorded inputs",
            passed=False,
            detail="not matched on, missing for everyone: " + ", ".join(unrecorded),
        )
    ]


def _eligibility_columns(plan: Plan) -> list[str]:
    required, alternatives = plan.population.conditions
    return [c.feature for c in (*required, *alternatives)]


def _in_plan_order(plan: Plan, results: list[OutcomeResult]) -> list[OutcomeResult]:
    order = {name: i for i, name in enumerate(plan.outcomes.all)}
    return sorted(results, key=lambda r: order[r.outcome])


def _rows(frame: pd.DataFrame) -> list[dict]:
    return [
        {k: (None if isinstance(v, float) and not np.isfinite(v) else v) for k, v in row.items()}
        for row in frame.to_dict(orient="records")
    ]


def _first_verdict(outcomes: list[OutcomeResult], primary: str) -> str:
    return next(o.verdict for o in outcomes if o.outcome == primary)


def nobody_eligible(plan: Plan, cohort: Cohort, months: Months) -> list[DesignResult]:
    """The difference-in-differences and matched comparison the plan names, when its
    eligibility rule selects nobody (``cohort`` is empty): each says so, with no estimate."""
    reason = (
        f"nobody meets the eligibility rule ({plan.population.describe()}) on "
        f"{plan.population.baseline}"
    )
    results = []
    if plan.did:
        results.append(_unanswerable("did", DID_TITLE, plan, months.first, months.end, reason))
    if plan.matched:
        groups = matched_groups(cohort, plan.matched, plan.start_dates)
        results.append(
            _unanswerable(
                "matched", MATCHED_TITLE, plan, groups.go_live, groups.follow_up_end, reason
            )
        )
    return results


def run_did(plan: Plan, cohort: Cohort, counts: PersonMonths) -> DesignResult:
    """Staggered difference-in-differences over the cohort's person-months."""
    design = plan.did
    began = time.perf_counter()
    who = "eligible people in clusters after go-live"
    measure = "difference in the rate per person-year"
    outcomes, tables = [], {}
    checks = _absent_inputs(cohort, _eligibility_columns(plan), "the eligibility rule")
    for name, kinds in counts.absent.items():
        if name in plan.outcomes.all:
            outcomes.append(_not_measured(name, kinds, measure, who))
    subgroups = []
    for name in (n for n in plan.outcomes.all if n in counts.outcomes):
        panel = did_panel(counts, cohort, name)
        estimate = staggered_did(
            panel,
            control=design.control,
            inference=design.inference,
            seed=plan.seed,
            draws=design.bootstrap,
        )
        subgroups.append(did_subgroups(plan, cohort, name, panel))
        label = OUTCOMES[name]
        pre = estimate.pre_trend
        passed = pre.n_pre_periods > 0 and pre.p_value >= 0.05
        checks.append(
            Check(
                name=f"pre-trend: {label}",
                passed=passed,
                value=pre.p_value,
                detail=(
                    f"joint test of {pre.n_pre_periods} pre-go-live months, p = {pre.p_value:.3f};"
                    f" largest deviation {12 * pre.largest_deviation:+.3f} a person-year"
                ),
            )
        )
        if estimate.event_study:  # none when no cell could be estimated: nothing to plot
            tables[f"event_study:{name}"] = [
                {
                    "relative_period": p.relative_period,
                    "estimate": 12 * p.estimate,
                    "ci_low": 12 * p.ci_low,
                    "ci_high": 12 * p.ci_high,
                }
                for p in estimate.event_study
            ]
        rate = estimate.counterfactual_rate
        relative = Interval(
            estimate=estimate.relative_effect,
            ci_low=estimate.relative_ci_low,
            ci_high=estimate.relative_ci_high,
            p_value=estimate.p_value,
        )
        answered = estimate.verdict == ANSWERED
        outcomes.append(
            OutcomeResult(
                outcome=name,
                label=label,
                measure=measure,
                effect=Interval(
                    estimate=12 * estimate.att,
                    ci_low=12 * estimate.ci_low,
                    ci_high=12 * estimate.ci_high,
                    p_value=estimate.p_value,
                ),
                relative=relative,
                comparison_rate=12 * rate,
                treated_rate=12 * (rate + estimate.att),
                minimum_detectable=(
                    minimum_detectable_effect(estimate.se) / rate if rate > 0 else None
                ),
                n_people=estimate.n_people,
                n_units=estimate.n_units,
                verdict=estimate.verdict,
                summary=(
                    change_sentence(label, who, relative, "expected had they not gone live")
                    if answered
                    else cannot_answer(label, who, estimate.verdict)
                ),
            )
        )
    method = (
        "Callaway and Sant'Anna group-time effects on monthly rates, "
        f"{design.control.replace('_', '-')} comparison, "
        f"{estimate.inference.replace('_', ' ')} inference"
        f" ({estimate.draws:,} {'exact re-assignments' if estimate.exact else 'draws'}),"
        f" {estimate.n_treated_units} of {estimate.n_units} units treated"
    )
    return DesignResult(
        design="did",
        title=DID_TITLE,
        method=method,
        population=f"{plan.population.describe()} on {plan.population.baseline}",
        first_month=counts.months.first,
        end_month=counts.months.end,
        verdict=_first_verdict(outcomes, plan.outcomes.primary),
        checks=checks,
        tables=tables,
        outcomes=_in_plan_order(plan, outcomes),
        seconds=round(time.perf_counter() - began, 1),
        subgroups=merged(subgroups),
    )


RISK_SCORE = "risk_score"


def run_matched(
    plan: Plan, cohort: Cohort, counts: PersonMonths, model: ModelBundle | None = None
) -> DesignResult:
    """The IAU-style matched comparison of the first units to go live; with a ``model``, its
    risk score at the baseline is one of the prognostic features matched on."""
    design = plan.matched
    began = time.perf_counter()
    groups = matched_groups(cohort, design, plan.start_dates)
    if groups.follow_up_end > counts.months.end:
        return _unanswerable(
            "matched",
            MATCHED_TITLE,
            plan,
            groups.go_live,
            groups.follow_up_end,
            _too_short(groups.follow_up_end, counts.months.end),
        )
    features = list(design.features or MATCH_FEATURES)
    if model is not None:
        cohort = replace(
            cohort, features=cohort.features.assign(**{RISK_SCORE: model.predict(cohort.features)})
        )
        features.append(RISK_SCORE)
    measured = tuple(n for n in plan.outcomes.all if n in counts.outcomes)
    people = matched_people(counts, cohort, groups, measured, features)
    unrecorded, gaps = _missing_features(people, features)
    if gaps or len(unrecorded) == len(features):
        reason = (
            f"matching features missing for some people: {gaps}; name [matched] features "
            "recorded for everyone"
            if gaps
            else f"no matching feature is recorded: {', '.join(unrecorded)}"
        )
        return _unanswerable(
            "matched", MATCHED_TITLE, plan, groups.go_live, groups.follow_up_end, reason
        )
    features = [f for f in features if f not in unrecorded]
    people = people.drop(columns=unrecorded)
    estimate = matched_comparison(
        people,
        features=features,
        outcomes=list(measured),
        primary=plan.outcomes.primary,
        k=design.controls_per_treated,
        caliper=design.caliper,
        seed=plan.seed,
    )
    who = f"eligible people in {', '.join(groups.treated_units)}"
    against = "matched people in clusters not yet live"
    balance = estimate.balance
    failing = balance[~balance["balanced"]]
    read = [*_eligibility_columns(plan), *features]
    checks = [
        *_absent_inputs(cohort, read, "the eligibility rule and matching"),
        *_unrecorded_inputs(unrecorded),
        Check(
            name="balance",
            passed=failing.empty,
            value=float(balance["smd_after"].abs().max()),
            detail=(
                f"every standardised mean difference below {SMD_TARGET} after matching"
                if failing.empty
                else f"above {SMD_TARGET} after matching: {', '.join(failing['feature'])}"
            ),
        ),
    ]
    outcomes = [
        _not_measured(name, kinds, "rate ratio", who)
        for name, kinds in counts.absent.items()
        if name in plan.outcomes.all
    ]
    for effect in estimate.outcomes:
        label = OUTCOMES[effect.outcome]
        relative = Interval(
            estimate=effect.rate_ratio - 1,
            ci_low=effect.ci_low - 1,
            ci_high=effect.ci_high - 1,
            p_value=effect.p_value,
        )
        answered = effect.verdict == ANSWERED
        outcomes.append(
            OutcomeResult(
                outcome=effect.outcome,
                label=label,
                measure="rate ratio",
                effect=Interval(
                    estimate=effect.rate_ratio,
                    ci_low=effect.ci_low,
                    ci_high=effect.ci_high,
                    p_value=effect.p_value,
                ),
                relative=relative,
                comparison_rate=effect.counterfactual_rate,
                treated_rate=effect.treated_rate,
                minimum_detectable=1 - effect.mde_ratio,
                n_people=effect.n_treated + effect.n_controls,
                n_units=estimate.counts.treated_units + estimate.counts.control_units,
                verdict=effect.verdict,
                summary=(
                    change_sentence(label, who, relative, against)
                    if answered
                    else cannot_answer(label, who, effect.verdict)
                ),
            )
        )
    c = estimate.counts
    subgroups = matched_subgroups(plan, cohort, people, features, list(measured))
    return DesignResult(
        design="matched",
        title=MATCHED_TITLE,
        method=(
            f"{c.matched:,} of {c.treated:,} treated people matched ({c.dropped_by_caliper:,} "
            f"outside the caliper) to {c.controls_used:,} of {c.comparison:,} people in "
            f"{c.control_units} clusters not yet live, {estimate.k} per person on propensity and "
            f"prognostic scores"
            f"{' (the model risk score among the features)' if model else ''}; doubly "
            "robust rate ratios: the treated people's observed over expected events against "
            "their matched controls', the expected from a Poisson model of the follow-up on "
            "the matching features and the baseline year, cross-fitted on the comparison people, "
            "standard errors clustered on the matched sets and people; "
            f"follow-up {groups.go_live} to {groups.follow_up_end}"
        ),
        population=f"{plan.population.describe()} on {plan.population.baseline}",
        first_month=groups.go_live,
        end_month=groups.follow_up_end,
        verdict=estimate.verdict,
        checks=checks,
        tables=_balance_table(balance),
        outcomes=_in_plan_order(plan, outcomes),
        seconds=round(time.perf_counter() - began, 1),
        subgroups=subgroups,
    )


def _rd_lacks(plan: Plan, present: frozenset[str]) -> str | None:
    """Why the data cannot hold the [rd] design's inputs, if they cannot: no list runs, no
    outcome, or none of the help the list triggers."""
    design = plan.rd
    needed = (EventKind.RISK_LIST_SCORE, *OUTCOME_KINDS[design.outcome])
    lacking = [k.value for k in needed if k.value not in present]
    if lacking:
        return f"the data hold no {' or '.join(lacking)} events"
    if not present & set(plan.exposure.kinds):
        return (
            f"the data hold no {' or '.join(plan.exposure.kinds)} events: nobody can be seen "
            "taking up list-triggered help"
        )
    return None


def _balance_table(balance: pd.DataFrame) -> dict[str, list[dict]]:
    """The balance table the report plots, when anyone was matched (no table otherwise)."""
    if balance.empty or balance["smd_after"].isna().any():
        return {}
    columns = ["feature", "smd_before", "smd_after", "variance_ratio_after"]
    return {
        "balance": _rows(
            balance[columns].rename(columns={"variance_ratio_after": "variance_ratio"})
        )
    }


def _cutoff_outside(scores: pd.Series, design: RdDesign) -> str:
    """Why the list run's saved scores cannot straddle the plan's cut-off, or "" when they
    do: with nobody on one side there is no discontinuity to estimate."""
    low, high = float(scores.min()), float(scores.max())
    if low < design.cutoff <= high:
        return ""
    side = "below" if design.cutoff <= low else "at or above"
    return (
        f"no list score {side} the cut-off ({design.cutoff:g}) on {design.run}: the run's "
        f"saved scores run from {low:.3g} to {high:.3g}"
    )


def run_rd(
    plan: Plan, tables: ContractTables, last_day: date, present: frozenset[str]
) -> DesignResult:
    """Regression discontinuity at the list's cut-off, for the actions the list triggers;
    ``present`` are the event kinds the data hold."""
    design = plan.rd
    began = time.perf_counter()
    end = month_start(design.run, design.follow_up_months)
    data_end = months_end(last_day)
    if end > data_end:
        return _unanswerable("rd", RD_TITLE, plan, design.run, end, _too_short(end, data_end))
    lacks = _rd_lacks(plan, present)
    if lacks:
        return _unanswerable("rd", RD_TITLE, plan, design.run, end, lacks)
    scored = list_run(tables, design, plan.exposure)
    if scored.empty:
        return _unanswerable(
            "rd",
            RD_TITLE,
            plan,
            design.run,
            end,
            f"no list run on {design.run}: the data hold no "
            f"{EventKind.RISK_LIST_SCORE.value} events that day",
        )
    outside = _cutoff_outside(scored["score"], design)
    if outside:
        return _unanswerable("rd", RD_TITLE, plan, design.run, end, outside)
    counts = count(tables, pd.Index(scored["person"]), Months(design.run, end), last_day, present)
    frame = rd_frame(scored, counts, design)
    estimate = regression_discontinuity(frame, cutoff=design.cutoff)
    label = OUTCOMES[design.outcome]
    who = f"people just at or above the list's cut-off ({design.cutoff:g}) on {design.run}"
    checks = [
        Check(
            name="density at the cut-off",
            passed=estimate.density_p is not None and estimate.density_p >= 0.05,
            value=estimate.density_p,
            detail="no sign of scores bunched just above the cut-off"
            if estimate.density_p is not None and estimate.density_p >= 0.05
            else "scores bunch at the cut-off: people may have been moved onto the list",
        ),
        Check(
            name="first stage",
            passed=estimate.first_stage_f is not None and estimate.first_stage_f >= 10,
            value=estimate.first_stage_f,
            detail=(
                f"take-up jumps by {estimate.first_stage.estimate:.2f} at the cut-off"
                if estimate.first_stage
                else "no take-up of list-triggered actions"
            ),
        ),
    ]
    fuzzy = estimate.fuzzy
    answered = estimate.verdict == ANSWERED and fuzzy is not None
    if fuzzy is not None:
        effect = Interval(
            estimate=fuzzy.estimate,
            ci_low=fuzzy.ci_low,
            ci_high=fuzzy.ci_high,
            p_value=fuzzy.p_value,
        )
        base = estimate.control_mean
        # A rate cannot fall by more than all of it: the interval stops at -100%.
        relative = (
            Interval(
                estimate=max(fuzzy.estimate / base, -1.0),
                ci_low=max(fuzzy.ci_low / base, -1.0),
                ci_high=max(fuzzy.ci_high / base, -1.0),
                p_value=fuzzy.p_value,
            )
            if base and base > 0
            else None
        )
    else:
        effect, relative, base = (
            Interval(estimate=np.nan, ci_low=np.nan, ci_high=np.nan),
            None,
            None,
        )
    months = design.follow_up_months
    outcome = OutcomeResult(
        outcome=design.outcome,
        label=label,
        measure=f"difference in the rate per person-year over the {months} months after the "
        "run, among those who took up an action",
        effect=effect,
        relative=relative,
        comparison_rate=base,
        minimum_detectable=(
            minimum_detectable_effect((effect.ci_high - effect.ci_low) / (2 * 1.96)) / base
            if answered and base
            else None
        ),
        bandwidth=estimate.fuzzy_bandwidth,
        n_people=estimate.n_people,
        verdict=estimate.verdict,
        summary=(
            change_sentence(label, who + " who took up an action", relative, "without one")
            if answered and relative is not None
            else cannot_answer(label, who, estimate.verdict)
        ),
    )
    return DesignResult(
        design="rd",
        title=RD_TITLE,
        method=(
            "local linear regression each side of the cut-off, triangular kernel, MSE-optimal "
            "bandwidth, robust bias-corrected intervals (rdrobust); fuzzy: the cut-off raises "
            "the chance of a list-triggered action; density test (rddensity); list-triggered "
            f"help: {plan.exposure.describe()}"
        ),
        population=f"everyone scored on the list run of {design.run}",
        first_month=design.run,
        end_month=end,
        verdict=estimate.verdict,
        checks=checks,
        tables={f"rd_bins:{design.outcome}": _rows(_bins(frame, design.cutoff))},
        outcomes=[outcome],
        seconds=round(time.perf_counter() - began, 1),
        subgroups_not_run=RD_NOT_RUN if plan.subgroups else None,
    )


def _bins(frame: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The binned rates each side of the cut-off, in the report's columns."""
    bins = rd_bins(frame, cutoff)
    return pd.DataFrame(
        {
            "side": bins["side"].map({"below": "below", "at_or_above": "above"}),
            "score": bins["mid"],
            "mean": bins["rate"],
            "n": bins["n"],
        }
    )
