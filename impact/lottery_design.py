"""The ``[lottery]`` design run on the plan's data: the recorded lotteries' frame, each
outcome's estimate (``impact.lottery``) in the results' terms, its checks, and the effect
per kind of help drawn for."""

from __future__ import annotations

import time
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.common.months import month_start
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import ContractTables
from riskstrat.features.outcomes import OUTCOMES
from riskstrat.impact.designs import _not_measured, _too_short, _unanswerable
from riskstrat.impact.lottery import (
    MIN_FIRST_STAGE_F,
    MIN_PER_ARM,
    LotteryEstimate,
    Z,
    difference,
    lottery_effect,
    usable,
)
from riskstrat.impact.outcomes import Months, count, months_end
from riskstrat.impact.panels import lottery_draws, lottery_frame
from riskstrat.impact.plan import Plan
from riskstrat.impact.power import minimum_detectable_effect
from riskstrat.impact.results import (
    ANSWERED,
    Check,
    DesignResult,
    Interaction,
    OutcomeResult,
    SubgroupEffect,
    SubgroupResult,
)
from riskstrat.impact.summary import cannot_answer, change_sentence

TITLE = "Lottery for scarce help (randomised)"
WHO = "people drawn in the list's lotteries"
NOT_RUN = (
    "not estimated per subgroup: the lotteries' people are those the list runs put in a draw, "
    "not the baseline population the subgroups are defined on; the effect per kind of help "
    "drawn for is shown instead"
)
BY_HELP = "help drawn for"


def run_lottery(
    plan: Plan, tables: ContractTables, span: tuple[date, date], present: frozenset[str]
) -> DesignResult:
    """The offer's effect on each of the plan's outcomes, from the list runs' recorded
    lotteries; ``span`` is the data's first and last day, ``present`` its event kinds."""
    design = plan.lottery
    began = time.perf_counter()
    first_day, last_day = span
    data_end = months_end(last_day)
    named = min(design.runs, default=first_day)
    if EventKind.RISK_LIST_LOTTERY.value not in present:
        reason = (
            f"the data hold no {EventKind.RISK_LIST_LOTTERY.value} events: no lottery was recorded"
        )
        return _unanswerable("lottery", TITLE, plan, named, data_end, reason)
    draws = lottery_draws(tables, design)
    runs = sorted(draws["run"].unique())
    missing = sorted(set(design.runs) - set(runs))
    if missing:
        reason = f"no lottery was recorded on {', '.join(map(str, missing))}"
        return _unanswerable("lottery", TITLE, plan, named, data_end, reason)
    complete = [r for r in runs if month_start(r, design.follow_up_months) <= data_end]
    if not complete:
        needed = month_start(max(runs), design.follow_up_months)
        return _unanswerable(
            "lottery", TITLE, plan, min(runs), needed, _too_short(needed, data_end)
        )
    draws = draws[draws["run"].isin(complete)]
    end = month_start(max(complete), design.follow_up_months)
    first = max(month_start(min(complete), -12), month_start(first_day))
    counts = count(
        tables, pd.Index(draws["person"].unique()), Months(first, end), last_day, present
    )
    frame = lottery_frame(tables, draws, counts, design, plan.exposure)
    months = design.follow_up_months
    measure = (
        f"difference per person over the {months} months from the run's month, drawn against "
        "not drawn (the offer's effect; among_takers: among those the draw made take help up)"
    )
    outcomes, estimates = [], {}
    for name in plan.outcomes.all:
        if name in counts.absent:
            outcomes.append(_not_measured(name, counts.absent[name], measure, WHO))
            continue
        estimates[name] = lottery_effect(frame, name)
        outcomes.append(_outcome(name, estimates[name], measure))
    primary = plan.outcomes.primary
    left_out = [r for r in runs if r not in complete]
    return DesignResult(
        design="lottery",
        title=TITLE,
        method=(
            "each run, kind of help and team's draw is one lottery; the mean outcome of those "
            "drawn minus that of those not drawn, averaged over the lotteries by their size, "
            "Neyman variance (intention to treat); the effect among those who took help up: "
            "that difference over the difference in uptake the draw made (Wald instrumental "
            f"variable, delta-method interval); list-triggered help: {plan.exposure.describe()}"
        ),
        population=_population(frame, complete, left_out, design.team),
        first_month=month_start(min(complete)),
        end_month=end,
        verdict=ANSWERED if any(o.answered for o in outcomes) else outcomes[0].verdict,
        checks=_checks(frame, primary, estimates.get(primary)),
        outcomes=outcomes,
        seconds=round(time.perf_counter() - began, 1),
        subgroups=_by_help(frame, list(estimates)),
        subgroups_not_run=NOT_RUN if plan.subgroups else None,
    )


def _population(frame: pd.DataFrame, runs: list[date], left_out: list[date], team: str) -> str:
    """Who was compared: the runs, the lotteries and the people, and who was left out."""
    kept = usable(frame)
    lotteries = frame.loc[kept, "lottery"].nunique()
    text = (
        f"everyone in a recorded lottery on the list runs of {', '.join(map(str, runs))}: "
        f"{lotteries} lotteries (one per run, kind of help and {team.replace('_', ' ')}), "
        f"{int(frame.loc[kept, 'drawn'].sum()):,} people drawn and "
        f"{int((~frame.loc[kept, 'drawn']).sum()):,} not"
    )
    small = frame.loc[~kept, "lottery"].nunique()
    if small:
        text += (
            f"; {small} lotteries ({int((~kept).sum()):,} people) are left out, with fewer than "
            f"{MIN_PER_ARM} people drawn or not drawn"
        )
    if left_out:
        text += f"; the runs of {', '.join(map(str, left_out))} are left out: the data end "
        text += "before their follow-up does"
    return text


def _outcome(name: str, found: LotteryEstimate, measure: str) -> OutcomeResult:
    label = OUTCOMES[name]
    answered = found.verdict == ANSWERED
    base = found.not_drawn_mean
    se = (found.effect.ci_high - found.effect.ci_low) / (2 * Z)
    summary = cannot_answer(label, WHO, found.verdict)
    if answered and found.relative is not None:
        summary = change_sentence(
            label, "people drawn for an offer", found.relative, "among those not drawn"
        )
    if answered and found.among_takers is not None:
        taken = found.among_takers
        summary += (
            f" Among those the draw made take help up, the difference was "
            f"{taken.estimate:.3g} per person (95% CI {taken.ci_low:.3g} to {taken.ci_high:.3g})."
        )
    return OutcomeResult(
        outcome=name,
        label=label,
        measure=measure,
        effect=found.effect,
        relative=found.relative,
        among_takers=found.among_takers,
        comparison_rate=base if answered else None,
        treated_rate=found.drawn_mean if answered else None,
        minimum_detectable=(
            minimum_detectable_effect(se) / base
            if answered and base > 0 and np.isfinite(se)
            else None
        ),
        n_people=found.n_drawn + found.n_not_drawn,
        n_units=found.n_lotteries,
        verdict=found.verdict,
        summary=summary,
    )


def _checks(frame: pd.DataFrame, primary: str, found: LotteryEstimate | None) -> list[Check]:
    """The draw's checks on the primary outcome: the arms alike before the run, and the
    draw moving uptake (the instrument's strength)."""
    if found is None or found.verdict != ANSWERED:
        return []
    before = lottery_effect(frame, f"pre_{primary}")
    p = before.effect.p_value
    label = OUTCOMES[primary]
    return [
        Check(
            name="arms alike before the run",
            passed=p is None or p >= 0.05,
            value=p,
            detail=(
                f"{label} in the year before the run: drawn {before.drawn_mean:.3g}, not drawn "
                f"{before.not_drawn_mean:.3g} per person"
                + ("" if p is None or p >= 0.05 else "; the draw may not have been kept to")
            ),
        ),
        Check(
            name="first stage",
            passed=found.first_stage_f >= MIN_FIRST_STAGE_F,
            value=found.first_stage_f,
            detail=(
                f"the draw raised uptake of the help drawn for by {found.uptake.estimate:.2f} "
                f"(F = {found.first_stage_f:.1f}; under {MIN_FIRST_STAGE_F:g} the effect among "
                "those who took help up is not to be trusted)"
            ),
        ),
    ]


def _by_help(frame: pd.DataFrame, outcomes: list[str]) -> list[SubgroupResult]:
    """The offer's effect per kind of help drawn for, and whether it differs between them
    (proportional changes, independent lotteries); none with one kind."""
    levels = sorted(frame["help"].unique())
    if len(levels) < 2 or not outcomes:
        return []
    effects, interactions = [], []
    for name in outcomes:
        found = {h: lottery_effect(frame[frame["help"] == h], name) for h in levels}
        effects += [
            SubgroupEffect(
                outcome=name,
                level=h,
                n_people=e.n_drawn + e.n_not_drawn,
                effect=e.effect if e.verdict == ANSWERED else None,
                relative=e.relative if e.verdict == ANSWERED else None,
                verdict=e.verdict,
            )
            for h, e in found.items()
        ]
        interactions += [
            _interaction(name, h, levels[0], found[h], found[levels[0]]) for h in levels[1:]
        ]
    return [
        SubgroupResult(
            by=BY_HELP,
            levels=levels,
            method="the same stratified comparison within the lotteries for each kind of help; "
            "the difference of the proportional changes with independent normal errors",
            effects=effects,
            interactions=interactions,
        )
    ]


def _interaction(
    name: str, level: str, reference: str, at: LotteryEstimate, base: LotteryEstimate
) -> Interaction:
    found = difference(at, base)
    if found is None:
        return Interaction(
            outcome=name,
            level=level,
            reference=reference,
            verdict="no proportional change at one of the two (none estimated, or nobody not "
            "drawn had the outcome)",
        )
    return Interaction(outcome=name, level=level, reference=reference, difference=found)
