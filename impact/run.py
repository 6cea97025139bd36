"""``riskstrat evaluate``: a plan and a data folder in, a finished evaluation folder out.

The plan is read and checked against the data before any outcome is counted; the data is
read through ``ContractTables`` on the chosen engine (DuckDB or Spark), so a folder that does
not match its record, or is replaced mid-run, is refused as everywhere else. The whole
output folder (results.json, report.html, plots/) is built beside the target and swapped in
at once, so a reader never sees half an evaluation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd

from riskstrat.common.atomic import check_replaceable, replacing
from riskstrat.common.errors import UserError
from riskstrat.common.months import month_start
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.engines import Engine
from riskstrat.contract.needs import present_kinds, require
from riskstrat.contract.schema import PRACTICES
from riskstrat.contract.tables import ContractTables, unbound
from riskstrat.features.engine import feature_specs
from riskstrat.features.outcomes import OUTCOME_KINDS, OUTCOMES
from riskstrat.impact import designs, plasmode
from riskstrat.impact.cohort import baseline_cohort
from riskstrat.impact.lottery_design import run_lottery
from riskstrat.impact.outcomes import Months, count, months_end
from riskstrat.impact.plan import LoadedPlan, Plan, check_against, load_plan
from riskstrat.impact.report import write_report
from riskstrat.impact.results import (
    RESULTS_FILE,
    DesignResult,
    EvaluationResults,
    PlanRecord,
    PlasmodeCheck,
)
from riskstrat.models.bundle import ModelBundle


def _units(tables: ContractTables, column: str) -> pd.Series:
    """The data's units at one level (a column of the practices table)."""
    practices = unbound(PRACTICES.name)
    return tables.run(practices.select(column).distinct(), keep=False)[column]


def evaluate(
    data_dir: Path,
    plan_path: Path,
    out: Path,
    progress: Progress | None = None,
    model: ModelBundle | None = None,
    engine: Engine | None = None,
    check_runs: int | None = None,
) -> EvaluationResults:
    """Run every design the plan names on the tables in ``data_dir`` (on ``engine``, DuckDB
    by default); write the evaluation folder ``out``. With a ``model`` (the deployed one),
    the matched comparison also matches on its risk score. With ``check_runs``, the
    plasmode check (``impact.plasmode``) re-runs the designs that many times at the plan's
    minimum effect and under the null, on the same counted outcomes."""
    say = progress or QUIET
    began = time.perf_counter()
    loaded = load_plan(plan_path)
    if check_runs is not None and check_runs < 2:
        raise UserError(f"--check-runs {check_runs}: a plasmode check needs at least 2 runs")
    check_replaceable(out, RESULTS_FILE, inputs=[data_dir])
    with ContractTables.from_dir(data_dir, engine) as tables:
        first_day, last_day = tables.event_span()
        if first_day is None or last_day is None:
            raise UserError(f"{data_dir}: the events table is empty: there is nothing to evaluate")
        found = _designs(
            tables, loaded, (first_day, last_day), say, model, str(data_dir), check_runs
        )
    say.advance("evaluation", 2, 3, "report")
    evaluation = EvaluationResults(
        name=out.name,
        created=datetime.now(UTC),
        data=str(data_dir),
        plan=_record(loaded),
        designs=found.results,
        seconds=round(time.perf_counter() - began, 1),
        check=found.check,
    )
    with replacing(out) as staging:
        evaluation.save(staging)
        write_report(evaluation, staging)
    say.advance("evaluation", 3, 3, str(out))
    return evaluation


@dataclass(frozen=True, slots=True)
class _Found:
    results: list[DesignResult]
    check: PlasmodeCheck | None


def _designs(
    tables: ContractTables,
    loaded: LoadedPlan,
    span: tuple[date, date],
    say: Progress,
    model: ModelBundle | None,
    source: str,
    check_runs: int | None,
) -> _Found:
    """Check the plan against the data (from ``source``, its events spanning ``span``), then
    run each of its designs, and the plasmode check of them with ``check_runs``."""
    first_day, last_day = span
    check_against(
        loaded,
        _units(tables, loaded.plan.units.column),
        first_day,
        last_day,
        {s.name for s in feature_specs()},
    )
    plan = loaded.plan
    present = present_kinds(tables)
    results: list[DesignResult] = []
    # Asked for, the check is recorded even when no design it covers can run (it says so).
    checked = plasmode.nothing(plan, check_runs) if check_runs else None
    if plan.did or plan.matched:
        _require_primary(loaded, present, source)
        say.advance("evaluation", 0, 3, f"population as of {plan.population.baseline}")
        cohort = baseline_cohort(tables, plan, present, str(loaded.path))
        months = panel_months(plan, first_day, last_day)
        if cohort.people.empty:
            results += designs.nobody_eligible(plan, cohort, months)
        else:
            say.advance("evaluation", 1, 3, f"outcomes of {len(cohort.people):,} eligible people")
            counts = count(tables, cohort.people, months, last_day, present)
            if plan.did:
                results.append(designs.run_did(plan, cohort, counts))
            if plan.matched:
                results.append(designs.run_matched(plan, cohort, counts, model))
            if check_runs:
                checked = plasmode.check(plan, cohort, counts, check_runs, model, say)
    if plan.rd:
        results.append(designs.run_rd(plan, tables, last_day, present))
    if plan.lottery:
        results.append(run_lottery(plan, tables, span, present))
    return _Found(results, checked)


def _require_primary(loaded: LoadedPlan, present: frozenset[str], source: str) -> None:
    """Stop when the data cannot count the plan's primary outcome (the difference-in-
    differences and the matched comparison answer for it first)."""
    primary = loaded.plan.outcomes.primary
    require(
        {kind: f"its primary outcome, {OUTCOMES[primary]}" for kind in OUTCOME_KINDS[primary]},
        present,
        source,
        f"the plan {loaded.path}",
    )


def panel_months(plan: Plan, first_day: date, last_day: date) -> Months:
    """The months whose outcomes the difference-in-differences and the matched comparison
    read, for data spanning ``first_day``..``last_day``: the plan's pre-period (at least the
    baseline year) to the panel's end."""
    pre_months = max(plan.did.pre_months if plan.did else 0, 12)
    first = max(month_start(plan.population.baseline, -pre_months), month_start(first_day))
    return Months(first, _panel_end(plan, last_day))


def _panel_end(plan: Plan, last_day: date) -> date:
    """The first month after the panel: the plan's [did] end, else after the last whole
    month of data."""
    whole = months_end(last_day)
    if plan.did and plan.did.end:
        return min(month_start(plan.did.end), whole)
    return whole


def _record(loaded: LoadedPlan) -> PlanRecord:
    header = loaded.plan.plan
    return PlanRecord(
        file=loaded.path.name,
        sha256=loaded.sha256,
        title=header.title,
        intervention=header.intervention,
        written=header.written.isoformat(),
        text=loaded.text,
    )
