"""A hand-built finished evaluation with every design, for the report, API and page tests:
an answered difference-in-differences with its event studies, an answered matched comparison
with its balance table, and a regression discontinuity whose data cannot answer."""

from __future__ import annotations

from datetime import UTC, date, datetime
from pathlib import Path

from riskstrat.impact.report import write_report
from riskstrat.impact.results import (
    Check,
    DesignResult,
    EvaluationResults,
    Interval,
    OutcomeResult,
    PlanRecord,
)

HOSTILE_TITLE = '<script>alert("plan")</script> Pilot & <b>roll-out</b>'
PLAN_SHA = "3f" * 32
UNANSWERED = "too few people near the cut-off (38 within the bandwidth; at least 200 needed)"
# The RD estimate the data cannot support: it must not appear on the page.
UNANSWERED_EFFECT = Interval(estimate=-0.4321, ci_low=-0.9876, ci_high=0.1234, p_value=0.1357)


def _event_study(shift: float) -> list[dict]:
    return [
        {
            "relative_period": k,
            "estimate": shift if k >= 0 else 0.001 * k,
            "ci_low": (shift if k >= 0 else 0.0) - 0.02,
            "ci_high": (shift if k >= 0 else 0.0) + 0.02,
        }
        for k in range(-6, 7)
    ]


def _did() -> DesignResult:
    outcomes = [
        OutcomeResult(
            outcome="emergency_admissions",
            label="Emergency admissions",
            measure="difference in admissions per person-year",
            effect=Interval(estimate=-0.0837, ci_low=-0.121, ci_high=-0.0464, p_value=0.0004),
            relative=Interval(estimate=-0.14, ci_low=-0.2, ci_high=-0.08),
            comparison_rate=0.598,
            treated_rate=0.514,
            minimum_detectable=0.0512,
            n_people=4321,
            n_units=7,
            summary="Emergency admissions among eligible people in the pilot cluster were 14% "
            "lower (95% CI 8% to 20%) than in comparison clusters.",
        ),
        OutcomeResult(
            outcome="deaths",
            label="Deaths (safety)",
            measure="difference in deaths per person-year",
            effect=Interval(estimate=0.0021, ci_low=-0.0093, ci_high=0.0135, p_value=0.71),
            relative=Interval(estimate=0.03, ci_low=-0.11, ci_high=0.18),
            minimum_detectable=0.016,
            n_people=4321,
            n_units=7,
            summary="Deaths were no different (95% CI 11% lower to 18% higher).",
        ),
    ]
    return DesignResult(
        design="did",
        title="Staggered difference-in-differences",
        method="Callaway and Sant'Anna group-time effects; wild cluster bootstrap by cluster.",
        population="Eligible people at baseline in the seven GP clusters.",
        first_month=date(2021, 7, 1),
        end_month=date(2026, 11, 1),
        verdict="answered",
        checks=[
            Check(name="pre-trend", passed=True, value=0.42, detail="joint test of leads"),
            Check(name="clusters", passed=True, value=7, detail="units of roll-out"),
        ],
        tables={
            "event_study:emergency_admissions": _event_study(-0.08),
            "event_study:deaths": _event_study(0.0),
            "group_time": [{"group": 0, "time": 3, "att": -0.1}],  # not a plot: kept, unused
        },
        outcomes=outcomes,
        seconds=3.2,
    )


def _matched() -> DesignResult:
    return DesignResult(
        design="matched",
        title="Matched comparison",
        method="Nearest-neighbour matching on prognostic features; Poisson rate ratios.",
        population="Case-managed people matched to people in not-yet-treated clusters.",
        first_month=date(2023, 7, 1),
        end_month=date(2024, 7, 1),
        verdict="answered",
        checks=[
            Check(name="balance", passed=False, value=0.13, detail="largest |SMD| after matching"),
        ],
        tables={
            "balance": [
                {"feature": "age", "smd_before": 0.41, "smd_after": 0.03, "variance_ratio": 1.1},
                {"feature": "risk_score", "smd_before": -0.62, "smd_after": 0.13},
                {"feature": "has_frailty", "smd_before": 0.2, "smd_after": -0.05},
            ]
        },
        outcomes=[
            OutcomeResult(
                outcome="bed_days",
                label="Bed days",
                measure="rate ratio",
                effect=Interval(estimate=0.81, ci_low=0.7, ci_high=0.94, p_value=0.006),
                relative=Interval(estimate=-0.19, ci_low=-0.3, ci_high=-0.06),
                minimum_detectable=0.12,
                n_people=1988,
                n_units=6,
                summary="Bed days were 19% lower (95% CI 6% to 30%).",
            )
        ],
        seconds=1.5,
    )


def _rd() -> DesignResult:
    return DesignResult(
        design="rd",
        title="Regression discontinuity at the list's cut-off",
        method="Local linear regression with a data-driven bandwidth (rdrobust).",
        population="People scored at a list run near the cut-off.",
        first_month=date(2024, 1, 1),
        end_month=date(2024, 4, 1),
        verdict=UNANSWERED,
        checks=[Check(name="density", passed=True, value=0.55, detail="rddensity p-value")],
        tables={
            "rd_bins:emergency_admissions": [
                {"side": "below", "score": 0.1 + 0.01 * i, "mean": 0.3, "n": 20} for i in range(5)
            ]
            + [{"side": "above", "score": 0.2 + 0.01 * i, "mean": 0.25, "n": 20} for i in range(5)],
            "rd_fit:emergency_admissions": [
                {"side": "below", "score": 0.1, "fitted": 0.31},
                {"side": "below", "score": 0.2, "fitted": 0.3},
                {"side": "above", "score": 0.2, "fitted": 0.26},
                {"side": "above", "score": 0.3, "fitted": 0.24},
            ],
        },
        outcomes=[
            OutcomeResult(
                outcome="emergency_admissions",
                label="Emergency admissions after a list-triggered action",
                measure="difference at the cut-off",
                effect=UNANSWERED_EFFECT,
                relative=Interval(estimate=-0.5432, ci_low=-0.8765, ci_high=0.2109),
                treated_rate=0.2468,
                comparison_rate=0.7531,
                minimum_detectable=0.61,
                n_people=38,
                n_units=None,
                verdict=UNANSWERED,
                summary="The data cannot tell whether list-triggered actions changed "
                "emergency admissions: too few people were scored near the cut-off.",
            )
        ],
        seconds=0.4,
    )


def evaluation(name: str = "pilot-2024", title: str = HOSTILE_TITLE) -> EvaluationResults:
    return EvaluationResults(
        name=name,
        created=datetime(2026, 3, 2, 9, 30, tzinfo=UTC),
        data="work/validated",
        plan=PlanRecord(
            file="plans/ilm-pilot.toml",
            sha256=PLAN_SHA,
            title=title,
            intervention="Integrated locality model",
            written="2023-05-14",
            text='title = "ILM pilot"\n[outcomes]\nnames = ["emergency_admissions"]\n',
        ),
        designs=[_did(), _matched(), _rd()],
        seconds=6.1,
    )


def write_evaluation(folder: Path, results: EvaluationResults | None = None) -> Path:
    """A finished evaluation folder as a run leaves it: results.json, report.html, plots."""
    results = results or evaluation(folder.name)
    folder.mkdir(parents=True, exist_ok=True)
    results.save(folder)
    write_report(results, folder)
    return folder
