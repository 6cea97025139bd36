"""The evaluation's population: everyone eligible on the baseline date, and their unit.

Eligibility is decided from riskstrat's features as of the baseline, which look back from
that date only, so nothing that happened after the baseline (outcomes included) can change
who is in the population. A feature whose event kind the data lack holds its default for
everyone; the cohort keeps the absent kinds so that each design can say which of the
columns it read were not recorded.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

import pandas as pd

from riskstrat.contract.needs import absent_kinds, present_kinds
from riskstrat.contract.tables import ContractTables
from riskstrat.features.absent import absent_features
from riskstrat.features.engine import build_features, cohort_context
from riskstrat.impact.plan import Plan


@dataclass(frozen=True, slots=True)
class Cohort:
    """Eligible people (index: patient_id) with their unit, go-live and baseline features."""

    baseline: date
    features: pd.DataFrame
    unit: pd.Series
    go_live: pd.Series  # the unit's go-live date, NaT if never in the plan
    absent_kinds: tuple[str, ...] = ()  # event kinds the data hold none of

    @property
    def people(self) -> pd.Index:
        return self.features.index

    def absent(self, columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Of the feature ``columns``, those computed from absent kinds (with the kinds)."""
        return absent_features(self.absent_kinds, columns)


def baseline_cohort(
    tables: ContractTables, plan: Plan, present: Iterable[str] | None = None
) -> Cohort:
    """Apply the plan's rule to features as of its baseline; ``present`` are the event kinds
    the data hold (asked of ``tables`` when not given)."""
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
        absent_kinds=absent_kinds(present_kinds(tables) if present is None else present),
    )
