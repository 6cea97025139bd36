"""The evaluation's population: everyone eligible on the baseline date, and their unit.

Eligibility is decided from riskstrat's features as of the baseline, which look back from
that date only, so nothing that happened after the baseline (outcomes included) can change
who is in the population.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import pandas as pd

from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import build_features, cohort_context
from riskstrat.impact.plan import Plan


@dataclass(frozen=True, slots=True)
class Cohort:
    """Eligible people (index: patient_id) with their unit, go-live and baseline features."""

    baseline: date
    features: pd.DataFrame
    unit: pd.Series
    go_live: pd.Series  # the unit's go-live date, NaT if never in the plan

    @property
    def people(self) -> pd.Index:
        return self.features.index


def baseline_cohort(tables: ContractTables, plan: Plan) -> Cohort:
    """Apply the plan's rule to features as of its baseline."""
    baseline = plan.population.baseline
    features = build_features(tables, [baseline]).droplevel("as_of")
    context = cohort_context(tables, [baseline]).droplevel("as_of")
    unit = context[plan.units.column].astype(str).reindex(features.index)
    keep = plan.population.eligible(features)
    starts = {u: pd.Timestamp(d) for u, d in plan.units.start.items()}
    go_live = unit[keep].map(starts)
    return Cohort(
        baseline=baseline,
        features=features[keep],
        unit=unit[keep],
        go_live=go_live,
    )
