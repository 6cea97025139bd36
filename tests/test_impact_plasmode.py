"""``evaluate --check`` (impact/plasmode.py) on the small borough: an effect injected into a
null made from the data is found more often the larger it is, the null is rarely "found",
and the injection itself changes exactly the chosen person-months by the chosen ratio; and a
roll-out no design can answer is reported, never raised."""

from __future__ import annotations

import dataclasses
import html
import warnings
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from evaluation_fixture import evaluation

from riskstrat.cli import main
from riskstrat.contract.tables import ContractTables
from riskstrat.impact import designs, plasmode
from riskstrat.impact.cohort import Cohort, baseline_cohort
from riskstrat.impact.did import staggered_did
from riskstrat.impact.inject import AMOUNTS, from_month, inject, window
from riskstrat.impact.outcomes import Months, PersonMonths, count
from riskstrat.impact.panels import did_panel
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, Plan, load_plan
from riskstrat.impact.report import write_report
from riskstrat.impact.results import REPORT_FILE, EvaluationResults
from riskstrat.impact.run import panel_months

# Fast enough for the test budget: the primary outcome only, person-clustered inference
# for the difference-in-differences, and few features to match on.
FAST = """
[did]
pre_months = 24
inference = "person_cluster"

[matched]
treated_units = ["Central Pilot"]
features = ["age", "frailty_index", "emergency_admissions_365d"]
"""


@pytest.fixture(scope="module")
def fast_plan(tmp_path_factory: pytest.TempPathFactory) -> Path:
    text = (PLANS / BUILT_IN_PLANS[0]).read_text()
    text = (
        text[: text.index("[outcomes]")] + '[outcomes]\nprimary = "emergency_admissions"\n' + FAST
    )
    path = tmp_path_factory.mktemp("plan") / "fast.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def counted(validated: Path, fast_plan: Path) -> tuple[Plan, Cohort, PersonMonths]:
    plan = load_plan(fast_plan).plan
    with ContractTables.from_dir(validated) as tables:
        first, last = tables.event_span()
        cohort = baseline_cohort(tables, plan)
        counts = count(tables, cohort.people, panel_months(plan, first, last), last)
    return plan, cohort, counts


def _at(plan: Plan, effect: float) -> Plan:
    return dataclasses.replace(plan, plan=dataclasses.replace(plan.plan, minimum_effect=effect))


def test_power_rises_with_the_injected_effect_and_the_null_is_rarely_found(
    counted: tuple[Plan, Cohort, PersonMonths],
) -> None:
    plan, cohort, counts = counted
    small = plasmode.check(_at(plan, 0.02), cohort, counts, runs=4)
    large = plasmode.check(_at(plan, 0.6), cohort, counts, runs=4)
    for design in ("did", "matched"):
        weak = small.design(design).outcome("emergency_admissions")
        strong = large.design(design).outcome("emergency_admissions")
        assert strong.effect == pytest.approx(-0.6)
        assert strong.power.value > weak.power.value, design
        assert strong.power.value >= 0.5, design
        assert strong.false_positive.value <= 0.25, design
        assert strong.verdict.startswith(f"On this extract, the {plasmode.NAMES[design]}")


def test_the_same_seed_gives_the_same_check(counted: tuple[Plan, Cohort, PersonMonths]) -> None:
    plan, cohort, counts = counted
    one_design = dataclasses.replace(plan, did=None)
    first = plasmode.check(one_design, cohort, counts, runs=2)
    again = plasmode.check(one_design, cohort, counts, runs=2)
    assert [d.outcomes for d in first.designs] == [d.outcomes for d in again.designs]


def test_thinning_changes_only_the_chosen_person_months_by_the_ratio() -> None:
    months = Months(date(2024, 1, 1), date(2024, 7, 1))
    rng = np.random.default_rng(0)
    events = rng.poisson(40.0, size=(50, 6)).astype(float)
    counts = PersonMonths(
        people=np.arange(50),
        months=months,
        exposure=np.ones((50, 6)),
        outcomes={"emergency_admissions": events, "bed_days": events * 3.5},
        absent={},
    )
    where = np.zeros((50, 6), bool)
    where[:25, 3:] = True
    out = inject(counts, where, 0.5, ["emergency_admissions", "bed_days"], rng)
    thinned = out.outcomes["emergency_admissions"]
    assert np.array_equal(thinned[~where], events[~where])
    assert np.all(thinned[where] <= events[where])
    assert thinned[where].sum() / events[where].sum() == pytest.approx(0.5, abs=0.05)
    assert "bed_days" in AMOUNTS
    assert np.array_equal(out.outcomes["bed_days"][where], events[where] * 3.5 * 0.5)
    assert np.array_equal(counts.outcomes["emergency_admissions"], events)  # input unchanged
    cut = window(out, Months(date(2024, 2, 1), date(2024, 5, 1)))
    assert np.array_equal(cut.outcomes["emergency_admissions"], thinned[:, 1:4])


def test_the_injected_person_months_are_the_did_s_post_go_live_months_of_the_treated(
    counted: tuple[Plan, Cohort, PersonMonths],
) -> None:
    """A roll-out moved into the months before the first go-live, as the check moves it, and
    bed days scaled by 0.8 from each pseudo go-live on: the difference-in-differences, being
    linear in the outcome, must then give exactly 1 + effect = 0.8 (1 + effect without the
    injection). Thinning months the design does not count as post (or the comparison's)
    would break the identity."""
    plan, cohort, counts = counted
    months = Months(counts.months.first, min(plan.units.start.values()))
    cut = window(counts, months)
    units = sorted(set(cohort.unit))
    starts = [date(2022, 7, 1), date(2023, 1, 1), date(2023, 1, 1), date(2023, 4, 1)]
    go_live = cohort.unit.map(dict(zip(units, map(pd.Timestamp, starts), strict=False)))
    moved = dataclasses.replace(cohort, go_live=go_live)
    where = from_month(months, months.periods(go_live))
    scaled = inject(cut, where, 0.8, ["bed_days"], np.random.default_rng(0))
    effects = [
        staggered_did(did_panel(data, moved, "bed_days"), inference="person_cluster")
        for data in (cut, scaled)
    ]
    before, after = (e.relative_effect for e in effects)
    assert 1 + after == pytest.approx(0.8 * (1 + before), rel=1e-9)


def test_a_null_window_too_short_is_a_verdict_not_a_number(
    counted: tuple[Plan, Cohort, PersonMonths],
) -> None:
    plan, cohort, counts = counted
    short = window(counts, Months(date(2023, 3, 1), counts.months.end))
    checked = plasmode.check(dataclasses.replace(plan, matched=None), cohort, short, runs=2)
    (design,) = checked.designs
    assert design.outcomes == []
    assert design.verdict.startswith("only 4 months of data before the first go-live")


def test_every_unit_going_live_at_once_is_reported_not_raised(
    counted: tuple[Plan, Cohort, PersonMonths], tmp_path: Path
) -> None:
    plan, cohort, counts = counted
    everyone = pd.Series(pd.Timestamp("2023-07-01"), index=cohort.go_live.index)
    at_once = dataclasses.replace(cohort, go_live=everyone)
    did = designs.run_did(plan, at_once, counts)
    assert not did.answered and did.outcomes[0].summary.startswith("The data cannot say")
    starts = {unit: date(2023, 7, 1) for unit in set(cohort.unit)}
    everywhere = dataclasses.replace(plan, units=dataclasses.replace(plan.units, start=starts))
    matched = designs.run_matched(everywhere, cohort, counts)
    assert matched.verdict == "no comparison people"
    results = evaluation("at-once").model_copy(update={"designs": [did, matched]})
    page = write_report(results, tmp_path).read_text()
    assert html.escape(did.verdict) in page and matched.verdict in page


def test_the_command_runs_the_check_and_reports_it_beside_the_estimate(
    validated: Path, fast_plan: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "checked"
    argv = ["evaluate", "--data", str(validated), "--plan", str(fast_plan), "--out", str(out)]
    main([*argv, "--check", "--check-runs", "2"])
    printed = capsys.readouterr().out
    results = EvaluationResults.load(out)
    assert results.check is not None and results.check.runs == 2
    assert [d.design for d in results.check.designs] == ["did", "matched"]
    page = (out / REPORT_FILE).read_text()
    for checked in results.check.designs:
        (outcome,) = checked.outcomes
        assert outcome.verdict in printed and html.escape(outcome.verdict) in page
        assert outcome.power.runs == 2
    with pytest.raises(SystemExit) as refused:
        main([*argv, "--check", "--check-runs", "1"])
    assert refused.value.code == 2
    assert "--check-runs 1: a plasmode check needs at least 2 runs" in capsys.readouterr().err


def test_deaths_before_go_live_are_said_to_be_uncheckable_and_why(
    validated: Path, fast_plan: Path
) -> None:
    loaded = load_plan(fast_plan).plan
    outcomes = dataclasses.replace(loaded.outcomes, secondary=("deaths",))
    plan = dataclasses.replace(loaded, outcomes=outcomes, matched=None)
    with ContractTables.from_dir(validated) as tables:
        first, last = tables.event_span()
        cohort = baseline_cohort(tables, plan)
        counts = count(tables, cohort.people, panel_months(plan, first, last), last)
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        did = plasmode.check(plan, cohort, counts, runs=2).design("did")
    deaths = did.outcome("deaths")
    assert deaths.answered.value == 0
    assert deaths.verdict == (
        "On this extract, the difference-in-differences could not answer for deaths in any "
        "run: nobody in the cohort has deaths in the months before the first go-live "
        f"({counts.months.first:%B %Y} to June 2023), where this check's null lies: all of it "
        f"was alive on the baseline date, {plan.population.baseline}."
    )
    assert did.outcome("emergency_admissions").answered.value > 0
