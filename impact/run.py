"""``riskstrat evaluate``: a plan and a data folder in, a finished evaluation folder out.

The plan is read and checked against the data before any outcome is counted; the whole
output folder (results.json, report.html, plots/) is built beside the target and swapped in
at once, so a reader never sees half an evaluation.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow.dataset as ds

from riskstrat.common.atomic import check_replaceable, replacing
from riskstrat.common.errors import UserError
from riskstrat.common.months import month_start
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.schema import PRACTICES
from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import feature_specs
from riskstrat.impact import designs
from riskstrat.impact.cohort import baseline_cohort
from riskstrat.impact.outcomes import Months, count, months_end
from riskstrat.impact.plan import LoadedPlan, Plan, check_against, load_plan
from riskstrat.impact.report import write_report
from riskstrat.impact.results import RESULTS_FILE, DesignResult, EvaluationResults, PlanRecord
from riskstrat.models.bundle import ModelBundle


def _units(data_dir: Path, column: str) -> list[str]:
    table = ds.dataset(data_dir / PRACTICES.file_name).to_table(columns=[column])
    return sorted(set(table.column(column).to_pylist()))


def evaluate(
    data_dir: Path,
    plan_path: Path,
    out: Path,
    progress: Progress | None = None,
    model: ModelBundle | None = None,
) -> EvaluationResults:
    """Run every design the plan names; write the evaluation folder ``out``. With a
    ``model`` (the deployed one), the matched comparison also matches on its risk score."""
    say = progress or QUIET
    began = time.perf_counter()
    loaded = load_plan(plan_path)
    check_replaceable(out, RESULTS_FILE, inputs=[data_dir])
    tables = ContractTables.from_dir(data_dir)
    first_day, last_day = tables.event_span()
    if last_day is None:
        raise UserError(f"{data_dir}: the events table is empty: there is nothing to evaluate")
    check_against(
        loaded,
        pd.Series(_units(data_dir, loaded.plan.units.column)),
        first_day,
        last_day,
        {s.name for s in feature_specs()},
    )
    plan = loaded.plan
    results: list[DesignResult] = []
    if plan.did or plan.matched:
        say.advance("evaluation", 0, 3, f"population as of {plan.population.baseline}")
        cohort = baseline_cohort(tables, plan)
        pre_months = max(plan.did.pre_months if plan.did else 0, 12)
        first = max(month_start(plan.population.baseline, -pre_months), _month(first_day))
        say.advance("evaluation", 1, 3, f"outcomes of {len(cohort.people):,} eligible people")
        counts = count(data_dir, cohort.people, Months(first, _panel_end(plan, last_day)), last_day)
        if plan.did:
            results.append(designs.run_did(plan, cohort, counts))
        if plan.matched:
            results.append(designs.run_matched(plan, cohort, counts, model))
    if plan.rd:
        results.append(designs.run_rd(plan, data_dir, last_day))
    say.advance("evaluation", 2, 3, "report")
    evaluation = EvaluationResults(
        name=out.name,
        created=datetime.now(UTC),
        data=str(data_dir),
        plan=_record(loaded),
        designs=results,
        seconds=round(time.perf_counter() - began, 1),
    )
    with replacing(out) as staging:
        evaluation.save(staging)
        write_report(evaluation, staging)
    say.advance("evaluation", 3, 3, str(out))
    return evaluation


def _month(day: date) -> date:
    return date(day.year, day.month, 1)


def _panel_end(plan: Plan, last_day: date) -> date:
    """The first month after the panel: the plan's [did] end, else after the last whole
    month of data."""
    whole = months_end(last_day)
    if plan.did and plan.did.end:
        return min(_month(plan.did.end), whole)
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
