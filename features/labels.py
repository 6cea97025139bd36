"""Outcome labels: an emergency admission (or death) within a horizon after the as-of date.

The admission counted is any emergency admission, or only a potentially avoidable one
(``features.avoidable``: the admissions list-triggered help can reach), as ``Outcome.admissions``
says; each is its own model (``models.registry.registered_name``).

The outcome window is ``as_of <= start < as_of + horizon_days``: it begins on the as-of
date, the first day features no longer see. People who leave the practice list before the
horizon ends are *censored*, whether or not they had the outcome before leaving: their label
is missing (status ``left_area``) and they are left out of training and evaluation. Counting
them as negatives would bias risk down; keeping only those who had the outcome before
leaving would bias it up (the synthetic borough's oracle showed that second bias: observed
rates 3% above the true risk). Death is not censoring: it ends follow-up, and counts as the
outcome only for the "emergency admission or death" outcome.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, timedelta
from functools import cache
from typing import Literal, Self

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
from pydantic import Field, model_validator

from riskstrat.common.settings import Integer, settings_model
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables, unbound
from riskstrat.features.avoidable import is_potentially_avoidable_expr
from riskstrat.features.engine import KEY, cohort

EVENT, NO_EVENT, LEFT_AREA = "event", "no_event", "left_area"
# The default outcome horizon, for the labels and the synthetic borough's ground truth alike.
HORIZON_DAYS = 365
Admissions = Literal["any", "avoidable"]


def labelled_by(as_of: date, horizon_days: int, end: date) -> bool:
    """Whether the whole outcome window of ``as_of`` ends on or before ``end``: the rule for
    an as-of date whose labels are known (training, its out-of-time test, the ingest
    verdict)."""
    return as_of + timedelta(days=horizon_days) <= end


@settings_model
class Outcome:
    """What counts as the outcome, and over how many days (``[train.outcome]``)."""

    horizon_days: Integer = Field(HORIZON_DAYS, ge=1, le=1095)
    include_death: bool = False
    admissions: Admissions = "any"

    @model_validator(mode="after")
    def _death_with_any_admission(self) -> Self:
        if self.include_death and self.admissions != "any":
            raise ValueError(
                "include_death counts deaths beside any emergency admission; a death is not a "
                'potentially avoidable admission (set admissions = "any" or include_death = false)'
            )
        return self

    @property
    def name(self) -> str:
        what = "emergency_admission_or_death" if self.include_death else "emergency_admission"
        if self.admissions == "avoidable":
            what = "avoidable_emergency_admission"
        return f"{what}_{self.horizon_days}d"


def _in_window(horizon_days: int, admissions: Admissions) -> ir.Table:
    """Emergency admissions (of ``admissions``) in each as-of date's outcome window
    (``as_of <= start < as_of + horizon_days``), one row per admission and as-of date."""
    as_of = unbound(AS_OF_TABLE)
    events = unbound("events")
    admitted = events.kind == EventKind.EMERGENCY_ADMISSION.value
    if admissions == "avoidable":
        admitted &= is_potentially_avoidable_expr(events.code, events.code_system)
    chosen = events.filter(admitted)
    joined = chosen.inner_join(as_of, chosen.start >= as_of.as_of)
    return joined.filter(joined.start.delta(joined.as_of, unit="day") < horizon_days)


@cache
def first_admissions(horizon_days: int, admissions: Admissions = "any") -> ir.Table:
    """Per patient and as-of date that has one: the first emergency admission (of
    ``admissions``) in the outcome window (``first_event``)."""
    in_horizon = _in_window(horizon_days, admissions)
    return in_horizon.group_by(KEY).aggregate(first_event=in_horizon.start.min())


@cache
def _admission_counts(horizon_days: int, admissions: Admissions) -> ir.Table:
    in_horizon = _in_window(horizon_days, admissions)
    return in_horizon.group_by(KEY).aggregate(admissions=in_horizon.count())


def count_admissions(
    sources: ContractTables, as_of_dates: Iterable[date], outcome: Outcome
) -> pd.Series:
    """Emergency admissions (of ``outcome.admissions``) in the outcome window, per (patient,
    as-of date) that has at least one (float64; the others had none). Censoring is
    ``build_labels``' (its ``status``): a count says nothing of who left the area."""
    frame = sources.run(_admission_counts(outcome.horizon_days, outcome.admissions), as_of_dates)
    frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    return frame.set_index(KEY)["admissions"].astype("float64").sort_index()


@cache
def _labelled(
    horizon_days: int, include_death: bool, admissions: Admissions, with_date: bool
) -> ir.Table:
    """The cohort's ``label``, ``status`` (and ``first_event``) per (patient, as-of date),
    decided in the engine: only these columns leave it, so labelling millions of people
    costs little more than the labels themselves."""
    members = cohort().select(*KEY, "registration_end", "death_date")
    t = members.left_join(first_admissions(horizon_days, admissions), KEY).drop(
        "patient_id_right", "as_of_right"
    )
    horizon_end = t.as_of + ibis.interval(days=horizon_days - 1)
    first, death, end = t.first_event, t.death_date, t.registration_end
    event = first.notnull()
    if include_death:
        died = death.notnull() & (death <= horizon_end)
        event |= died
        first = died.ifelse(ibis.least(first.fill_null(death), death), first)
    left = end.notnull() & (end < horizon_end)
    died_first = death.notnull() & end.notnull() & (death <= end)
    censored = left & ~died_first
    status = ibis.cases((censored, LEFT_AREA), (event, EVENT), else_=NO_EVENT)
    label = ibis.cases((censored, ibis.null("float64")), (event, 1.0), else_=0.0)
    dated = {"first_event": first} if with_date else {}
    return t.select(*KEY, label=label, status=status, **dated)


def build_labels(
    sources: ContractTables,
    as_of_dates: Iterable[date],
    outcome: Outcome,
    *,
    with_date: bool = False,
) -> pd.DataFrame:
    """``label`` (1.0, 0.0, or NaN when censored) and ``status`` per (patient, as-of date);
    ``with_date`` adds ``first_event``, the day of the outcome (NaT without one), which
    censoring at the start of other care needs."""
    expression = _labelled(
        outcome.horizon_days, outcome.include_death, outcome.admissions, with_date
    )
    dates = list(as_of_dates)
    # In batches, not collected by the engine (a Spark driver's result size is capped).
    batches = list(sources.batches(expression, dates))
    table = pa.Table.from_batches(batches) if batches else sources.run_arrow(expression, dates)
    table = table.sort_by([("as_of", "ascending"), ("patient_id", "ascending")])
    frame = table.to_pandas(date_as_object=False)
    frame["as_of"] = frame["as_of"].dt.date
    return frame.set_index(KEY)
