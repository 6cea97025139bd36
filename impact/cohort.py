"""The evaluation's population: everyone eligible on the baseline date, and their unit.

Eligibility is decided from riskstrat's features as of the baseline, which look back from
that date only, so nothing that happened after the baseline (outcomes included) can change
who is in the population. A feature whose event kind the data lack holds its default for
everyone; the cohort keeps the absent kinds so that each design can say which of the
columns it read were not recorded. The plan's subgroups are decided here too, from the
same baseline features: each person's level of each effect modifier.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date

import pandas as pd

from riskstrat.common.settings import SettingsError
from riskstrat.contract.needs import absent_kinds, present_kinds
from riskstrat.contract.tables import ContractTables
from riskstrat.features.absent import absent_features
from riskstrat.features.engine import build_features, cohort_context
from riskstrat.impact.plan import MAX_LEVELS, MIN_LEVEL_PEOPLE, Plan, Subgroup


@dataclass(frozen=True, slots=True)
class Cohort:
    """Eligible people (index: patient_id) with their unit, go-live and baseline features."""

    baseline: date
    features: pd.DataFrame
    unit: pd.Series
    go_live: pd.Series  # the unit's go-live date, NaT if never in the plan
    absent_kinds: tuple[str, ...] = ()  # event kinds the data hold none of
    subgroups: dict[str, pd.Series] = field(default_factory=dict)  # modifier -> level

    def levels(self, subgroup: str) -> list[str]:
        """The levels of one of the plan's subgroups, the reference first."""
        return list(self.subgroups[subgroup].cat.categories)

    @property
    def people(self) -> pd.Index:
        return self.features.index

    def absent(self, columns: Iterable[str]) -> dict[str, tuple[str, ...]]:
        """Of the feature ``columns``, those computed from absent kinds (with the kinds)."""
        return absent_features(self.absent_kinds, columns)


def baseline_cohort(
    tables: ContractTables,
    plan: Plan,
    present: Iterable[str] | None = None,
    source: str = "the plan",
) -> Cohort:
    """Apply the plan's rule to features as of its baseline; ``present`` are the event kinds
    the data hold (asked of ``tables`` when not given); ``source`` names the plan's file in
    a refusal."""
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
        subgroups={str(s): subgroup_levels(s, features[keep], source) for s in plan.subgroup_list},
    )


def subgroup_levels(
    subgroup: Subgroup, features: pd.DataFrame, source: str = "the plan"
) -> pd.Series:
    """Each eligible person's level (an ordered category, the reference first); a subgroup
    with too many levels, or a level too small to estimate, is refused naming it and the
    plan ``source``. Nobody eligible: no levels, and nothing to refuse (the designs say
    nobody is eligible)."""
    levels = subgroup.levels(features)
    sizes = levels.value_counts()
    order = subgroup.order(set(sizes.index))

    def refuse(problem: str) -> SettingsError:
        return SettingsError(source, f"{subgroup}{problem}", "[subgroups]", "by")

    if len(order) > MAX_LEVELS:
        raise refuse(
            f" has {len(order)} levels among the eligible people (at most {MAX_LEVELS}): "
            "band it or name a condition such as 'age >= 85'"
        )
    if len(order) == 1 and len(features):
        raise refuse(f": every eligible person is at one level ({order[0]}): nothing to compare")
    small = [f"{level} ({sizes[level]:,})" for level in order if sizes[level] < MIN_LEVEL_PEOPLE]
    if small and len(features):
        raise refuse(
            f": level {', '.join(small)} has fewer than {MIN_LEVEL_PEOPLE} eligible "
            "people, too few to estimate an effect in"
        )
    return pd.Series(pd.Categorical(levels, categories=order, ordered=True), features.index)
