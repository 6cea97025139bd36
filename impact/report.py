"""The evaluation's report: ``report.html`` and its plots, rendered from ``EvaluationResults``.

One self-contained page (inline styles, no script, nothing fetched from elsewhere; the PNGs
under ``plots/`` are referenced relatively, so the page works opened from disk and served
by the service under ``/ui/evaluations/<name>/``) saying, per design and outcome: the
estimate and its 95% interval, the relative change, the checks with pass or fail, the
numbers of people and units, the minimum detectable effect, the plain-English summary a
board paper can quote, and, when the data cannot answer, the reason in words instead of a
number. The plan's title, file, SHA-256 and the date it was written head the page, so a
changed plan shows. All text is escaped (``features.templates.html_environment``).

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


def interval(value: Interval) -> str:
    """``estimate (95% CI low to high)``."""
    low, high = number(value.ci_low), number(value.ci_high)
    return f"{number(value.estimate)} (95% CI {low} to {high})"


def _percent(share: float) -> str:
    return f"{100 * abs(share):.1f}%"


def _direction(share: float) -> str:
    if share == 0:
        return "no change"
    return f"{_percent(share)} {'lower' if share < 0 else 'higher'}"


def change(value: Interval) -> str:
    """A proportional change as a board paper says it: "14.0% lower (95% CI 8.0% to 20.0%
    lower)"; an interval crossing zero names each end's direction."""
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
        },
    )


def report_html(results: EvaluationResults, plots: Sequence[Plot]) -> str:
    """The whole page for ``results`` with these written ``plots``."""
    return (
        _environment()
        .get_template("report.html")
        .render(
            results=results,
            plan=results.plan,
            designs=views(results, plots),
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
