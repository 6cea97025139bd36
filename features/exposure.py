"""Exposure to list-triggered help: who had it, when, and for how long after an as-of date.

A risk list that works changes what happens to the people on it, so the outcomes that
follow a snapshot are partly the list's doing. Training (intervention-aware strategies,
the promotion gate) and the weekly run's monitoring need to know which snapshots the list's
help touched, and the evaluation of the list's actions who took help up after a list run;
this module is the one definition of that help (``[exposure]`` in the settings file or the
analysis plan) and the queries that find it.

Help is an event of one of ``kinds`` whose code is one of ``codes`` (any code when empty):
by default a reablement plan or a social prescribing referral made because of the risk list
(code ``risk_list``). An episode runs from its start to its end; an event without an end
(a referral) counts as help for ``open_days`` days.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date
from functools import cache
from pathlib import Path

import ibis
import ibis.expr.types as ir
import pandas as pd
from pydantic import Field, field_validator

from riskstrat.common.settings import Integer, load_table, settings_model
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables, unbound
from riskstrat.features.engine import KEY

TABLE = "exposure"


@settings_model
class ExposureRule:
    """What counts as help the list triggered (``[exposure]``)."""

    kinds: tuple[str, ...] = Field(
        (EventKind.REABLEMENT_PLAN.value, EventKind.SOCIAL_PRESCRIBING_REFERRAL.value),
        min_length=1,
    )
    codes: tuple[str, ...] = ("risk_list",)
    open_days: Integer = Field(182, ge=1, le=1095)

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, kinds: tuple[str, ...]) -> tuple[str, ...]:
        known = {k.value for k in EventKind}
        unknown = sorted(set(kinds) - known)
        if unknown:
            raise ValueError(f"unknown event kind(s) {unknown} (known: {sorted(known)})")
        return kinds

    @classmethod
    def from_toml(cls, path: Path) -> ExposureRule:
        """Read ``[exposure]``; a missing table gives the defaults."""
        return load_table(path, TABLE, cls)

    def describe(self) -> str:
        codes = ", ".join(self.codes) if self.codes else "any code"
        return f"{', '.join(self.kinds)} with code {codes} (open episodes: {self.open_days} days)"


def _episodes(rule: ExposureRule) -> ir.Table:
    """Help episodes: patient, kind, first and last day."""
    events = unbound("events")
    chosen = events.kind.isin(list(rule.kinds))
    if rule.codes:
        chosen &= events.code.isin(list(rule.codes))
    help_ = events.filter(chosen)
    open_end = help_.start + ibis.interval(days=rule.open_days - 1)
    return help_.select(
        "patient_id",
        "kind",
        first=help_.start,
        last=ibis.coalesce(help_.end, open_end),
    )


def help_started(
    sources: ContractTables, first: date, end: date, rule: ExposureRule
) -> pd.DataFrame:
    """Help episodes starting on ``first``..before ``end``: patient_id, kind, start (a
    date), one row per episode, sorted."""
    episodes = _episodes(rule)
    chosen = episodes.filter((episodes["first"] >= first) & (episodes["first"] < end))
    frame = sources.run(chosen.select("patient_id", "kind", start=chosen["first"]), keep=False)
    frame["start"] = pd.to_datetime(frame["start"]).dt.date
    return frame.sort_values(list(frame.columns), ignore_index=True)


@cache
def _exposure(rule: ExposureRule, horizon_days: int) -> ir.Table:
    """Per person, as-of date and kind: help days inside the horizon, the first such day,
    and whether help was already running on the as-of date."""
    as_of = unbound(AS_OF_TABLE)
    episodes = _episodes(rule)
    horizon_end = as_of.as_of + ibis.interval(days=horizon_days - 1)
    joined = episodes.inner_join(
        as_of, (episodes["first"] <= horizon_end) & (episodes["last"] >= as_of.as_of)
    )
    end = joined.as_of + ibis.interval(days=horizon_days - 1)
    begin = ibis.greatest(joined["first"], joined.as_of)
    finish = ibis.least(joined["last"], end)
    return joined.group_by([*KEY, "kind"]).aggregate(
        days=(finish.delta(begin, unit="day") + 1).cast("float64").sum(),
        first_day=begin.min(),
        running=(joined["first"] < joined.as_of).any(),
    )


def exposure(
    sources: ContractTables,
    as_of_dates: Iterable[date],
    horizon_days: int,
    rule: ExposureRule,
) -> pd.DataFrame:
    """Per (patient, as-of date) that any help touched: ``days_<kind>`` (help days inside
    the horizon, at most the horizon), ``help_days`` (all kinds, at most the horizon),
    ``first_help`` (the first day of help in the horizon; the as-of date when it was
    already running) and ``running`` (help running on the as-of date)."""
    frame = sources.run(_exposure(rule, horizon_days), list(as_of_dates))
    columns = [*(f"days_{k}" for k in rule.kinds), "help_days", "first_help", "running"]
    if frame.empty:
        return pd.DataFrame(
            columns=columns, index=pd.MultiIndex.from_arrays([[], []], names=KEY)
        ).astype({"first_help": "datetime64[ns]", "running": bool})
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    frame["first_day"] = pd.to_datetime(frame["first_day"])
    days = frame.pivot_table(index=KEY, columns="kind", values="days", aggfunc="sum")
    days = days.reindex(columns=list(rule.kinds)).fillna(0.0).clip(upper=horizon_days)
    out = days.add_prefix("days_")
    out.columns.name = None
    per_person = frame.groupby(KEY)
    out["help_days"] = days.sum(axis=1).clip(upper=horizon_days)
    out["first_help"] = per_person["first_day"].min()
    out["running"] = per_person["running"].any().astype(bool)
    return out[columns].sort_index()


def exposure_shares(
    exposed: pd.DataFrame, index: pd.Index, rule: ExposureRule, horizon_days: int
) -> pd.DataFrame:
    """Share of the horizon under help, per kind, for every row of ``index`` (0 untouched)."""
    columns = [f"days_{k}" for k in rule.kinds]
    days = exposed.reindex(index)[columns].astype("float64").fillna(0.0)
    return days / horizon_days


def running_kinds(sources: ContractTables, as_of: date, rule: ExposureRule) -> pd.Series:
    """Per patient with help running on ``as_of`` (started before it, not yet ended): the
    kinds running, in ``rule.kinds`` order, as a tuple; indexed by patient_id, sorted."""
    frame = sources.run(_exposure(rule, 1), [as_of])
    frame = frame[frame["running"].astype(bool)]
    order = {kind: i for i, kind in enumerate(rule.kinds)}
    kinds = (
        frame.assign(order=frame["kind"].map(order))
        .sort_values(["patient_id", "order"])
        .groupby("patient_id", sort=True)["kind"]
        .agg(lambda k: tuple(map(str, k)))
    )
    kinds.name = "running"
    return kinds
