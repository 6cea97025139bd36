"""The evaluation's report: ``report.html`` and its plots, rendered from ``EvaluationResults``.

One self-contained page (inline styles, no script, nothing fetched from elsewhere; the PNGs
under ``plots/`` are referenced relatively, so the page works opened from disk and served
by the service under ``/ui/evaluations/<name>/``). It opens with one table a board paper can
lift (``summary``: outcome, design, effect with its interval, verdict, and what the plasmode
check says of that design on this data), then the sentences, then, per design and outcome: the
estimate and its 95% interval, the relative change, the checks with pass or fail, the
numbers of people and units, the minimum detectable effect, the plain-English summary a
board paper can quote, and, when the data cannot answer, the reason in words instead of a
number. The plan's title, file, SHA-256 and the date it was written head the page, so a
changed plan shows; the plasmode check's numbers close it. An interval end with no bound
says so in words, never "inf%". All text is escaped (``features.templates.html_environment``).

The plots read these tables of ``DesignResult.tables`` (row models in ``impact.plots``;
further columns are kept in results.json and ignored here; a table present but not as
described stops the report with an error naming the design, table, row and field):

``event_study:<outcome>`` (difference-in-differences)
    rows ``{relative_period: int, estimate, ci_low, ci_high}``: the effect on the outcome
    rate by month relative to go-live (0 = the first month on the programme, so go-live is
    drawn between -1 and 0), with its 95% interval.
``balance`` (matched comparison, design-wide)
    rows ``{feature: str, smd_before, smd_after, variance_ratio (optional)}``: standardised
    mean differences of the baseline features before and after matching; drawn as absolute
    values against the 0.1 target.
``rd_bins:<outcome>`` (regression discontinuity)
    rows ``{side: "below" | "above", score, mean, n: int}``: binned means of the outcome by
    the running variable, each side of the cut-off.
``rd_fit:<outcome>`` (optional, with ``rd_bins``)
    rows ``{side: "below" | "above", score, fitted}``: points on each side's local linear
    fit within the bandwidth, each side reaching the cut-off (where they meet; the cut-off
    is drawn at the smallest score of the "above" side).

Each plot is ``plots/<design>_<kind>[_<outcome>].png`` with its rows as CSV beside it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from jinja2 import Environment

from riskstrat.common.templates import html_environment
from riskstrat.impact.plots import SMD_TARGET, Plot, write_plots
from riskstrat.impact.results import (
    ANSWERED,
    REPORT_FILE,
    DesignResult,
    EvaluationResults,
    Interaction,
    Interval,
    OutcomeResult,
    Share,
    SubgroupEffect,
    SubgroupResult,
)

TEMPLATES = Path(__file__).parent / "templates"
MINUS = "\u2212"


def number(value: float | None) -> str:
    """A number for reading: thousands separated, about three significant figures, a true
    minus sign; empty when missing."""
    if value is None or not math.isfinite(value):
        return ""
    size = abs(value)
    if size >= 100:
        text = f"{value:,.0f}"
    elif size >= 1:
        text = f"{value:,.2f}"
    else:
        text = f"{value:.3g}"
    return text.replace("-", MINUS)


def _unbounded(value: float) -> str | None:
    """An interval end with no bound, in words; None for a finite end."""
    if math.isinf(value):
        return "no upper bound" if value > 0 else "no lower bound"
    return None


def interval(value: Interval) -> str:
    """``estimate (95% CI low to high)``; an end with no bound says so in words."""
    low = _unbounded(value.ci_low) or number(value.ci_low)
    high = _unbounded(value.ci_high) or number(value.ci_high)
    return f"{number(value.estimate)} (95% CI {low} to {high})"


def _percent(share: float) -> str:
    return f"{100 * abs(share):.1f}%"


def _direction(share: float) -> str:
    if share == 0:
        return "no change"
    return _unbounded(share) or f"{_percent(share)} {'lower' if share < 0 else 'higher'}"


def change(value: Interval) -> str:
    """A proportional change as a board paper says it: "14.0% lower (95% CI 8.0% to 20.0%
    lower)"; an interval crossing zero, or with an end that has no bound, names each end."""
    if not (math.isfinite(value.ci_low) and math.isfinite(value.ci_high)):
        ends = f"{_direction(value.ci_low)} to {_direction(value.ci_high)}"
        return f"{_direction(value.estimate)} (95% CI {ends})"
    if value.ci_high < 0:
        low, high = _percent(value.ci_high), _percent(value.ci_low)
        return f"{_percent(value.estimate)} lower (95% CI {low} to {high} lower)"
    if value.ci_low > 0:
        low, high = _percent(value.ci_low), _percent(value.ci_high)
        return f"{_percent(value.estimate)} higher (95% CI {low} to {high} higher)"
    ends = f"{_direction(value.ci_low)} to {_direction(value.ci_high)}"
    return f"{_direction(value.estimate)} (95% CI {ends})"


def points(value: Interval) -> str:
    """A difference of two proportional changes in signed percentage points: "-13.6 points
    (95% CI -25.0 to -2.2)", with true minus signs."""

    def pp(share: float) -> str:
        return f"{100 * share:+.1f}".replace("-", MINUS)

    return f"{pp(value.estimate)} points (95% CI {pp(value.ci_low)} to {pp(value.ci_high)})"


def p_value(value: float | None) -> str:
    if value is None or not math.isfinite(value):
        return ""
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def count(value: int | None) -> str:
    return "" if value is None else f"{value:,}"


def share(value: Share) -> str:
    """A plasmode share with its Monte Carlo standard error: "84% (± 8)"."""
    if value.value is None:
        return "none counted"
    return f"{100 * value.value:.0f}% (\u00b1 {100 * (value.se or 0):.0f})"


@dataclass(frozen=True)
class OutcomeView:
    """One outcome as the page shows it: numbers only when both its design and the outcome
    itself are answered; otherwise the reason (the design's, if the design cannot answer)."""

    result: OutcomeResult
    reason: str | None
    plots: list[Plot]

    @property
    def answered(self) -> bool:
        return self.reason is None


@dataclass(frozen=True)
class SubgroupRow:
    """One outcome of a subgroup table: each level's effect and each level's interaction
    with the reference, in the order of the levels."""

    label: str
    effects: list[SubgroupEffect]
    interactions: list[Interaction]


@dataclass(frozen=True)
class SubgroupView:
    result: SubgroupResult
    rows: list[SubgroupRow]


def _subgroup_view(result: SubgroupResult, labels: dict[str, str]) -> SubgroupView:
    outcomes = list(dict.fromkeys(e.outcome for e in result.effects))
    rows = [
        SubgroupRow(
            label=labels.get(name, name),
            effects=[e for e in result.effects if e.outcome == name],
            interactions=[i for i in result.interactions if i.outcome == name],
        )
        for name in outcomes
    ]
    return SubgroupView(result, rows)


@dataclass(frozen=True)
class DesignView:
    result: DesignResult
    outcomes: list[OutcomeView]
    plots: list[Plot]  # design-wide ones (balance)
    subgroups: list[SubgroupView]


def views(results: EvaluationResults, plots: Sequence[Plot]) -> list[DesignView]:
    """The designs with their outcomes' verdicts settled and their plots attached."""
    shown = []
    for design in results.designs:
        mine = [p for p in plots if p.design == design.design]
        outcomes = [
            OutcomeView(
                result=o,
                reason=design.verdict if not design.answered else None if o.answered else o.verdict,
                plots=[p for p in mine if p.outcome == o.outcome],
            )
            for o in design.outcomes
        ]
        labels = {o.outcome: o.label for o in design.outcomes}
        shown.append(
            DesignView(
                design,
                outcomes,
                [p for p in mine if p.outcome is None],
                [_subgroup_view(s, labels) for s in design.subgroups],
            )
        )
    return shown


NOT_RUN = "not run (riskstrat evaluate --check runs it)"
NOT_CHECKED = (
    "not checked: the plasmode check covers the difference-in-differences and the matched "
    "comparison, when they can run"
)


@dataclass(frozen=True)
class SummaryRow:
    """One line of the report's first table: an outcome under a design, the effect with its
    interval (empty when it cannot answer), the verdict, and what the plasmode check says."""

    outcome: str
    design: str
    effect: str
    verdict: str
    check: str


def summary(results: EvaluationResults, shown: Sequence[DesignView]) -> list[SummaryRow]:
    """The summary rows, outcome by outcome (in the plan's order), design by design."""
    rows = [
        SummaryRow(
            outcome=o.result.label,
            design=design.result.title,
            effect=_effect(o) if o.answered else "",
            verdict="answered" if o.answered else f"cannot answer: {o.reason}",
            check=_checked(results, design.result.design, o.result.outcome),
        )
        for design in shown
        for o in design.outcomes
    ]
    order = {label: i for i, label in enumerate(dict.fromkeys(r.outcome for r in rows))}
    return sorted(rows, key=lambda r: order[r.outcome])


def _effect(view: OutcomeView) -> str:
    r = view.result
    return change(r.relative) if r.relative is not None else f"{interval(r.effect)} ({r.measure})"


def _checked(results: EvaluationResults, design: str, outcome: str) -> str:
    if results.check is None:
        return NOT_RUN
    checked = results.check.design(design)
    if checked is None:
        return NOT_CHECKED
    found = checked.outcome(outcome)
    if found is None:
        return f"not checked: {checked.verdict}"
    return found.verdict if checked.answered else f"{found.verdict} ({checked.verdict})"


@cache
def _environment() -> Environment:
    return html_environment(
        TEMPLATES,
        filters={
            "number": number,
            "interval": interval,
            "change": change,
            "p_value": p_value,
            "count": count,
            "points": points,
            "share": share,
        },
    )


def report_html(results: EvaluationResults, plots: Sequence[Plot]) -> str:
    """The whole page for ``results`` with these written ``plots``."""
    shown = views(results, plots)
    return (
        _environment()
        .get_template("report.html")
        .render(
            results=results,
            plan=results.plan,
            designs=shown,
            summary=summary(results, shown),
            check=results.check,
            smd_target=SMD_TARGET,
            answered=ANSWERED,
        )
    )


def write_report(results: EvaluationResults, folder: Path) -> Path:
    """Write the plots (``plots/``) and ``report.html`` into ``folder``; the report's path."""
    plots = write_plots(results, folder)
    path = folder / REPORT_FILE
    path.write_text(report_html(results, plots), encoding="utf-8")
    return path
