"""``evaluate --check``: would these designs find an effect of the size that matters on *this*
extract, and stay quiet when there is none? A plasmode check (Franklin et al. 2014).

A real extract already holds the real effect, unknown. Injecting a change on top of it in the
treated unit-months would make the truth of a run "the real effect times the injected one":
unknown again, and measuring against the design's own estimate on the un-thinned data would
assume the very unbiasedness being checked. So, as Franklin et al. do, the check injects into
a *null made from the user's data*, where the truth is known by construction:

- difference-in-differences: the months before the first real go-live, when no unit was on
  the programme. The plan's roll-out (its cohorts in order, the gaps between them compressed
  to fit) is moved into the second half of that window and re-assigned at random across the
  units in every run (placebo in time, re-assigned in space);
- matched comparison: the comparison units during the real follow-up, none of them yet live.
  In every run one of them, in turn, is treated as if it had gone live on the real go-live
  date and matched against the others (placebo in space); the real treated units are left out.

In each run the plan's primary and secondary outcomes of the eligible people in the
pseudo-treated unit-months are multiplied by ``1 - minimum_effect`` (``impact.inject``:
events thinned binomially, amounts scaled), so the truth is exactly that relative change;
the null runs inject nothing (the difference-in-differences: as many re-assigned
schedules; the matched comparison: each comparison unit once, its placebo in space). Every
design is then run through its public function (``impact.designs``), on the outcomes
counted once, so a fix to an estimator applies here. Each run varies the re-assignment, the
thinning and the design's seed.

The placebo designs run once on the real labels: the real roll-out moved back into the
pre-period (difference-in-differences), and each comparison unit treated as if it had gone
live (matched comparison); the check counts how often they "find" an effect.

What it cannot show: shocks that hit the real treated units only after go-live, and whether
the real comparison units are as good as the pseudo ones; and a null with few units has few
distinct re-assignments (the matched comparison's null has one run a comparison unit, and
its runs at the minimum effect cycle through them), which the Monte Carlo errors do not
capture. An outcome nobody in the cohort has before the first go-live (deaths, for a cohort
drawn on the baseline) cannot be checked by the difference-in-differences; it says why.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.common.months import month_start, months_between
from riskstrat.common.progress import QUIET, Progress
from riskstrat.features.outcomes import OUTCOMES
from riskstrat.impact import designs
from riskstrat.impact.cohort import Cohort
from riskstrat.impact.inject import from_month, inject, window
from riskstrat.impact.outcomes import Months, PersonMonths
from riskstrat.impact.panels import matched_groups
from riskstrat.impact.plan import Plan
from riskstrat.impact.results import (
    ANSWERED,
    DesignResult,
    OutcomeResult,
    PlasmodeCheck,
    PlasmodeDesign,
    PlasmodeOutcome,
    Share,
)
from riskstrat.models.bundle import ModelBundle

DEFAULT_RUNS = 40
"""Runs at the minimum effect (and, for the difference-in-differences, under the null): a
Monte Carlo error of about 6 points on a share near 80%, a few minutes on a 265,000-person
borough (docs/figures.md)."""
MIN_WINDOW = 8
"""Fewest months before the first go-live the difference-in-differences' null needs."""
POST_MONTHS = 3
"""Months the last moved cohort has on the programme inside that window, at least."""
NAMES = {"did": "difference-in-differences", "matched": "matched comparison"}


@dataclass(frozen=True, slots=True)
class Run:
    """One design's relative estimate of one outcome in one run."""

    estimate: float
    ci_low: float
    ci_high: float
    verdict: str

    @property
    def answered(self) -> bool:
        return self.verdict == ANSWERED

    def claims(self, direction: int) -> bool:
        """Answered with an interval excluding no change (on the side of ``direction``: -1
        lower, +1 higher, 0 either)."""
        if not self.answered:
            return False
        lower, higher = self.ci_high < 0, self.ci_low > 0
        return {-1: lower, 1: higher, 0: lower or higher}[direction]


@dataclass(frozen=True, slots=True)
class Setting:
    """One run's inputs: the plan (seed, and for the matched comparison its treated unit),
    the cohort (its go-live dates) and where the effect goes (people x months)."""

    plan: Plan
    cohort: Cohort
    where: np.ndarray


Runner = Callable[[Plan, Cohort, PersonMonths], DesignResult]


def check(
    plan: Plan,
    cohort: Cohort,
    counts: PersonMonths,
    runs: int = DEFAULT_RUNS,
    model: ModelBundle | None = None,
    say: Progress = QUIET,
) -> PlasmodeCheck:
    """The plasmode check of the plan's difference-in-differences and matched comparison on
    the ``cohort`` and its ``counts`` (counted once by ``impact.outcomes.count``)."""
    if runs < 2:
        raise ValueError(f"a plasmode check needs at least 2 runs, got {runs}")
    began = time.perf_counter()
    checked = []
    if plan.did:
        checked.append(_did(plan, cohort, counts, runs, say))
    if plan.matched:
        checked.append(_matched(plan, cohort, counts, runs, model, say))
    return PlasmodeCheck(
        runs=runs,
        minimum_effect=plan.plan.minimum_effect,
        seed=plan.seed,
        designs=checked,
        seconds=round(time.perf_counter() - began, 1),
    )


def nothing(plan: Plan, runs: int) -> PlasmodeCheck:
    """The check asked for when no design it covers could run (nobody eligible, or only a
    regression discontinuity in the plan)."""
    return PlasmodeCheck(
        runs=runs, minimum_effect=plan.plan.minimum_effect, seed=plan.seed, designs=[], seconds=0.0
    )


def _did(
    plan: Plan, cohort: Cohort, counts: PersonMonths, runs: int, say: Progress
) -> PlasmodeDesign:
    """The difference-in-differences on the months before the first go-live."""
    began = time.perf_counter()
    first_live = month_start(min(plan.units.start.values()))
    null = (
        "the months before the first go-live, when no unit was on the programme, with the "
        "plan's roll-out moved into them and re-assigned across the units in every run"
    )
    placebo = "the real roll-out moved back into the months before the first go-live"
    start, end = counts.months.first, min(first_live, counts.months.end)
    length = months_between(start, end)
    if length < MIN_WINDOW:
        reason = (
            f"only {max(length, 0)} months of data before the first go-live ({first_live}); "
            f"moving the roll-out into them needs at least {MIN_WINDOW}"
        )
        return _unchecked("did", null, placebo, reason)
    months = Months(start, end)
    cut = window(counts, months)
    moved = _moved(plan, cohort, months, counts.months.end)
    units = np.array(sorted(set(cohort.unit)))
    real = np.array([moved.get(u) for u in units], dtype=object)

    def setting(i: int, dates: np.ndarray) -> Setting:
        go_live = cohort.unit.map(
            {u: pd.Timestamp(d) if d else pd.NaT for u, d in zip(units, dates, strict=True)}
        )
        first = months.periods(go_live)
        return Setting(
            replace(plan, seed=plan.seed + i),
            replace(cohort, go_live=go_live),
            from_month(months, first),
        )

    rng = np.random.default_rng([plan.seed, 24])
    settings = [setting(i, rng.permutation(real)) for i in range(runs)]
    result = _measure("did", plan, cut, settings, settings, designs.run_did, say)
    placebo_run = designs.run_did(plan, setting(0, real).cohort, cut)
    return _design(
        "did",
        null,
        placebo,
        result,
        [placebo_run],
        plan,
        time.perf_counter() - began,
        _none_before(plan, cut),
    )


def _none_before(plan: Plan, cut: PersonMonths) -> dict[str, str]:
    """Why each outcome nobody in the cohort has in the months before the first go-live
    cannot be checked there: a change in nothing is not measurable. Deaths are the usual
    case, since the cohort is drawn from the living on the baseline date."""
    last = month_start(cut.months.end, -1)
    why = {}
    for name in plan.outcomes.all:
        if name in cut.outcomes and not cut.outcomes[name].any():
            why[name] = (
                f"nobody in the cohort has {OUTCOMES[name]} in the months before the first "
                f"go-live ({cut.months.first:%B %Y} to {last:%B %Y}), where this check's null lies"
            )
            baseline = plan.population.baseline
            if name == "deaths" and baseline >= cut.months.end:
                why[name] += f": all of it was alive on the baseline date, {baseline}"
    return why


def _moved(plan: Plan, cohort: Cohort, months: Months, panel_end: date) -> dict[str, date]:
    """Each unit going live before ``panel_end``, moved into ``months``: the first cohort at the
    window's middle, the later ones after it in order with their gaps compressed so that the
    last has ``POST_MONTHS`` months on the programme."""
    first = month_start(min(plan.units.start.values()))
    offsets = {
        u: months_between(first, d)
        for u, d in plan.units.start.items()
        if u in set(cohort.unit) and d < panel_end
    }
    half = len(months) // 2
    span = max(offsets.values(), default=0)
    scale = min(1.0, (half - POST_MONTHS) / span) if span else 1.0
    middle = month_start(months.first, half)
    return {u: month_start(middle, math.floor(o * scale)) for u, o in offsets.items()}


def _matched(
    plan: Plan,
    cohort: Cohort,
    counts: PersonMonths,
    runs: int,
    model: ModelBundle | None,
    say: Progress,
) -> PlasmodeDesign:
    """The matched comparison among the comparison units, over the real follow-up."""
    began = time.perf_counter()
    design = plan.matched
    groups = matched_groups(cohort, design, plan.start_dates)
    null = (
        "the comparison units during the real follow-up, none yet live: in every run one of "
        "them, in turn, is treated as if it had gone live and matched against the others"
    )
    placebo = "each comparison unit treated as if it had gone live on the real go-live date"
    if groups.follow_up_end > counts.months.end:
        reason = (
            f"follow-up too short: the plan follows people to {groups.follow_up_end}, the "
            f"data stop before {counts.months.end}"
        )
        return _unchecked("matched", null, placebo, reason)
    if len(groups.comparison_units) < 2:
        reason = (
            f"{len(groups.comparison_units)} comparison unit(s) not yet live during the "
            "follow-up: at least 2 are needed to treat one as if it had gone live"
        )
        return _unchecked("matched", null, placebo, reason)
    months = np.zeros(len(counts.months), bool)
    months[counts.months.index(groups.go_live) : counts.months.index(groups.follow_up_end)] = True

    def setting(i: int, unit: str) -> Setting:
        pseudo = replace(
            plan,
            seed=plan.seed + i,
            units=replace(plan.units, start={**plan.units.start, unit: groups.go_live}),
            matched=replace(design, treated_units=(unit,)),
        )
        where = (cohort.unit.to_numpy() == unit)[:, None] & months[None, :]
        return Setting(pseudo, cohort, where)

    rng = np.random.default_rng([plan.seed, 26])
    units = groups.comparison_units
    order = [u for _ in range(-(-runs // len(units))) for u in rng.permutation(units)]
    settings = [setting(i, order[i]) for i in range(runs)]

    def run(p: Plan, c: Cohort, pm: PersonMonths) -> DesignResult:
        return designs.run_matched(p, c, pm, model)

    # With nothing injected, runs on the same unit differ only in the seed that breaks ties
    # between equally near matches: the null is each comparison unit once, the placebo itself.
    placebos = [setting(0, u) for u in units]
    result = _measure("matched", plan, counts, settings, placebos, run, say)
    return _design(
        "matched", null, placebo, result, result.null_results, plan, time.perf_counter() - began
    )


@dataclass(frozen=True, slots=True)
class _Measured:
    """Each outcome's runs at the minimum effect and under the null; the designs' verdicts."""

    effect: dict[str, list[Run]]
    null: dict[str, list[Run]]
    null_results: list[DesignResult]
    verdicts: list[str]


def _measure(
    design: str,
    plan: Plan,
    counts: PersonMonths,
    at_effect: list[Setting],
    at_null: list[Setting],
    runner: Runner,
    say: Progress,
) -> _Measured:
    """Run the design with the minimum effect injected in each of the ``at_effect``
    settings, and with nothing injected in each of the ``at_null`` ones."""
    outcomes = [n for n in plan.outcomes.all if n in counts.outcomes]
    ratio = 1 - plan.plan.minimum_effect
    rng = np.random.default_rng([plan.seed, 5])
    effect: dict[str, list[Run]] = {n: [] for n in outcomes}
    null: dict[str, list[Run]] = {n: [] for n in outcomes}
    null_results, verdicts = [], []
    jobs = [(s, True) for s in at_effect] + [(s, False) for s in at_null]
    for i, (s, injecting) in enumerate(jobs):
        say.advance(f"plasmode check: {NAMES[design]}", i, len(jobs))
        data = inject(counts, s.where, ratio, outcomes, rng) if injecting else counts
        result = runner(s.plan, s.cohort, data)
        verdicts.append(result.verdict)
        if not injecting:
            null_results.append(result)
        into = effect if injecting else null
        for o in result.outcomes:
            if o.outcome in into:
                into[o.outcome].append(_run(result, o))
    say.advance(f"plasmode check: {NAMES[design]}", len(jobs), len(jobs))
    return _Measured(effect, null, null_results, verdicts)


def _run(result: DesignResult, outcome: OutcomeResult) -> Run:
    """The outcome's relative estimate; its verdict is the design's when the design cannot
    answer (as the report shows it), else the outcome's own."""
    verdict = outcome.verdict if result.answered else result.verdict
    relative = outcome.relative
    if relative is None:
        return Run(math.nan, math.nan, math.nan, verdict)
    return Run(relative.estimate, relative.ci_low, relative.ci_high, verdict)


def _design(
    design: str,
    null: str,
    placebo: str,
    measured: _Measured,
    placebos: list[DesignResult],
    plan: Plan,
    seconds: float,
    unmeasurable: dict[str, str] | None = None,
) -> PlasmodeDesign:
    """The design's check, outcome by outcome; ``unmeasurable`` gives, for an outcome no
    run could answer for a known reason, that reason in place of the runs' commonest."""
    effect = -plan.plan.minimum_effect
    outcomes = []
    for name, at_effect in measured.effect.items():
        found = [_run(p, o).claims(0) for p in placebos for o in p.outcomes if o.outcome == name]
        counted = (at_effect, measured.null[name], len(found), sum(found))
        why = (unmeasurable or {}).get(name)
        outcomes.append(_outcome(design, name, effect, *counted, why))
    answered = any(o.answered.value for o in outcomes)
    return PlasmodeDesign(
        design=design,
        title=NAMES[design],
        null=null,
        placebo=placebo,
        verdict=ANSWERED
        if answered
        else f"the design answered no run: {_most_common(measured.verdicts)}",
        outcomes=outcomes,
        seconds=round(seconds, 1),
    )


def _unchecked(design: str, null: str, placebo: str, reason: str) -> PlasmodeDesign:
    return PlasmodeDesign(
        design=design,
        title=NAMES[design],
        null=null,
        placebo=placebo,
        verdict=reason,
        outcomes=[],
        seconds=0.0,
    )


def _most_common(verdicts: list[str]) -> str:
    reasons = [v for v in verdicts if v != ANSWERED]
    return max(set(reasons), key=reasons.count) if reasons else ANSWERED


def _outcome(
    design: str,
    name: str,
    effect: float,
    at_effect: list[Run],
    at_null: list[Run],
    placebo_runs: int,
    placebo_found: int,
    why: str | None = None,
) -> PlasmodeOutcome:
    estimated = [r for r in at_effect if math.isfinite(r.estimate)]
    errors = np.array([r.estimate - effect for r in estimated])
    bias = float(errors.mean()) if len(errors) else None
    bias_se = float(errors.std(ddof=1) / math.sqrt(len(errors))) if len(errors) > 1 else None
    power = share([r.claims(-1) for r in at_effect])
    false_positive = share([r.claims(0) for r in at_null])
    answered = share([r.answered for r in (*at_effect, *at_null)])
    reason = why or _most_common([r.verdict for r in (*at_effect, *at_null)])
    return PlasmodeOutcome(
        outcome=name,
        label=OUTCOMES[name],
        effect=effect,
        power=power,
        coverage=share([r.ci_low <= effect <= r.ci_high for r in estimated]),
        bias=bias,
        bias_se=bias_se,
        false_positive=false_positive,
        answered=answered,
        placebo_runs=placebo_runs,
        placebo_found=placebo_found,
        verdict=sentence(design, OUTCOMES[name], effect, power, false_positive, answered, reason),
    )


def share(hits: list[bool]) -> Share:
    """The share of ``hits`` that are true, with its binomial Monte Carlo standard error."""
    if not hits:
        return Share(value=None, se=None, runs=0)
    p = sum(hits) / len(hits)
    return Share(value=p, se=math.sqrt(p * (1 - p) / len(hits)), runs=len(hits))


def _percent(value: float) -> str:
    return f"{100 * value:.0f}%"


def sentence(
    design: str,
    label: str,
    effect: float,
    power: Share,
    false_positive: Share,
    answered: Share,
    reason: str = ANSWERED,
) -> str:
    """The plain verdict: "On this extract, the matched comparison would detect a 10%
    reduction in emergency admissions 84% of the time and claims an effect that is not there
    4% of the time (20 runs with the effect, 6 without)."; ``reason`` is the commonest
    verdict of the runs it could not answer."""
    name = NAMES[design]
    if not answered.value:
        return f"On this extract, the {name} could not answer for {label} in any run: {reason}."
    runs = power.runs
    text = (
        f"On this extract, the {name} would detect a {_percent(-effect)} reduction in {label} "
        f"{_percent(power.value or 0)} of the time and claims an effect that is not there "
        f"{_percent(false_positive.value or 0)} of the time ({runs} runs with the effect, "
        f"{false_positive.runs} without)"
    )
    if answered.value < 1:
        text += f"; it answered only {_percent(answered.value)} of the runs (else: {reason})"
    return text + "."
