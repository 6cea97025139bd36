"""Each design's input frame, built from the cohort and the counted outcomes.

The frames are plain pandas with the columns each estimator documents, so the estimators
can be tested on small cases with known answers without any of this.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from riskstrat.common.months import month_start
from riskstrat.contract.schema import EVENTS, EventKind
from riskstrat.contract.tables import ContractTables, unbound
from riskstrat.features.engine import cohort_context
from riskstrat.features.exposure import ExposureRule, help_started
from riskstrat.impact.cohort import Cohort
from riskstrat.impact.outcomes import PersonMonths
from riskstrat.impact.plan import LotteryDesign, MatchedDesign, RdDesign


def did_panel(counts: PersonMonths, cohort: Cohort, outcome: str) -> pd.DataFrame:
    """Person-months of the cohort: person, unit, period, first_treated (-1 never), y,
    exposure. A unit going live after the panel ends counts as not treated in it."""
    frame = counts.long(outcome)
    first = counts.months.periods(cohort.go_live)
    first = np.where(first >= len(counts.months), -1, first)
    by_person = pd.DataFrame(
        {"unit": cohort.unit.to_numpy(), "first_treated": first}, cohort.people
    )
    frame = frame.join(by_person, on="person")
    return frame[["person", "unit", "period", "first_treated", "y", "exposure"]]


@dataclass(frozen=True, slots=True)
class MatchedGroups:
    """Who the matched design compares, and over which months."""

    treated_units: tuple[str, ...]
    comparison_units: tuple[str, ...]
    go_live: date
    follow_up_end: date


def matched_groups(cohort: Cohort, design: MatchedDesign, starts: dict[str, date]) -> MatchedGroups:
    """Treated units (the plan's, else the earliest to go live) and the units not yet live
    by the end of their follow-up (or never in the plan)."""
    first = min(starts.values())
    treated = design.treated_units or tuple(sorted(u for u, d in starts.items() if d == first))
    go_live = min(starts[u] for u in treated)
    end = month_start(go_live, design.follow_up_months)
    comparison = tuple(
        sorted(
            u
            for u in set(cohort.unit)
            if u not in treated and (u not in starts or starts[u] >= end)
        )
    )
    return MatchedGroups(tuple(treated), comparison, go_live, end)


def matched_people(
    counts: PersonMonths,
    cohort: Cohort,
    groups: MatchedGroups,
    outcomes: tuple[str, ...],
    features: list[str],
) -> pd.DataFrame:
    """One row per person of the treated and comparison units who was there during the
    follow-up: person, unit, treated, features, ``<o>`` over the follow-up, ``pre_<o>`` over
    the year before the baseline, and exposure (person-years in the follow-up)."""
    pre_first = month_start(cohort.baseline, -12)
    frame = cohort.features[features].copy()
    frame.insert(0, "unit", cohort.unit)
    frame.insert(1, "treated", cohort.unit.isin(groups.treated_units))
    for name in outcomes:
        frame[name] = counts.total(name, groups.go_live, groups.follow_up_end)
        frame[f"pre_{name}"] = counts.total(name, pre_first, cohort.baseline)
    frame["exposure"] = counts.exposure_years(groups.go_live, groups.follow_up_end)
    keep = frame["unit"].isin(groups.treated_units + groups.comparison_units) & (
        frame["exposure"] > 0
    )
    return frame[keep].rename_axis("person").reset_index()


def list_run(tables: ContractTables, design: RdDesign, rule: ExposureRule) -> pd.DataFrame:
    """Everyone scored in the saved band of the list run on ``design.run``: person, score,
    listed, took_up (list-triggered help, as ``rule`` defines it, starting in the run's
    month); no rows when the data hold no list run that day."""
    events = unbound(EVENTS.name)
    scores = events.filter(
        (events.kind == EventKind.RISK_LIST_SCORE.value) & (events.start == design.run)
    )
    scored = tables.run(scores.select("patient_id", "value", "code"), keep=False)
    helped = help_started(tables, design.run, month_start(design.run, 1), rule)
    frame = scored.sort_values(["patient_id", "value", "code"]).drop_duplicates("patient_id")
    frame = frame.rename(columns={"patient_id": "person", "value": "score"})
    frame["listed"] = frame["code"] == "listed"
    frame["took_up"] = frame["person"].isin(set(helped["patient_id"]))
    return frame[["person", "score", "listed", "took_up"]].sort_values("person", ignore_index=True)


def rd_frame(scored: pd.DataFrame, counts: PersonMonths, design: RdDesign) -> pd.DataFrame:
    """The list run's people with their outcome and exposure over the follow-up."""
    end = month_start(design.run, design.follow_up_months)
    by_person = pd.DataFrame(
        {
            "y": counts.total(design.outcome, design.run, end),
            "exposure": counts.exposure_years(design.run, end),
        },
        index=counts.people,
    )
    frame = scored.join(by_person, on="person")
    return frame[frame["exposure"] > 0].reset_index(drop=True)


def lottery_draws(tables: ContractTables, design: LotteryDesign) -> pd.DataFrame:
    """Everyone in a recorded lottery on the plan's runs (every run when it names none):
    person, run (a date), help (the kind drawn for), drawn; one row per person and run."""
    events = unbound(EVENTS.name)
    chosen = events.kind == EventKind.RISK_LIST_LOTTERY.value
    if design.runs:
        chosen &= events.start.isin(list(design.runs))
    picked = events.filter(chosen).select("patient_id", "start", "code", "value")
    frame = tables.run(picked, keep=False)
    frame = frame.rename(columns={"patient_id": "person", "start": "run", "code": "help"})
    frame["run"] = pd.to_datetime(frame["run"]).dt.date
    frame["drawn"] = frame["value"] == 1
    frame = frame.sort_values(["run", "person", "help", "drawn"])
    frame = frame.drop_duplicates(["run", "person"])
    return frame[["person", "run", "help", "drawn"]].reset_index(drop=True)


def lottery_frame(
    tables: ContractTables,
    draws: pd.DataFrame,
    counts: PersonMonths,
    design: LotteryDesign,
    rule: ExposureRule,
) -> pd.DataFrame:
    """The draws with their lottery (run, help and team), whether they took the help drawn
    for up (list-triggered help of that kind starting in the run's month), and each of
    ``counts``' outcomes over the follow-up (``<o>``) and the year before the run
    (``pre_<o>``)."""
    frame = draws.copy()
    runs = sorted(frame["run"].unique())
    context = cohort_context(tables, runs)[design.team_column].astype(str)
    at = pd.MultiIndex.from_arrays([frame["person"], frame["run"]])
    frame["team"] = context.reindex(at).fillna("unknown").to_numpy()
    frame["lottery"] = (
        frame["run"].astype(str) + "/" + frame["help"].astype(str) + "/" + frame["team"]
    )
    took = pd.concat(
        [help_started(tables, run, month_start(run, 1), rule).assign(run=run) for run in runs]
    )
    started = set(zip(took["patient_id"], took["run"], took["kind"], strict=True))
    frame["took_up"] = [
        key in started for key in zip(frame["person"], frame["run"], frame["help"], strict=True)
    ]
    row = pd.Series(np.arange(len(counts.people)), index=counts.people)
    position = row.reindex(frame["person"]).to_numpy()
    for name in counts.outcomes:
        for run in runs:
            mine = (frame["run"] == run).to_numpy()
            end = month_start(run, design.follow_up_months)
            frame.loc[mine, name] = counts.total(name, run, end)[position[mine]]
            before = counts.total(name, month_start(run, -12), run)
            frame.loc[mine, f"pre_{name}"] = before[position[mine]]
    return frame
