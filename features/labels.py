"""Outcome labels: an emergency admission (or death) within a horizon after the as-of date.

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

import ibis
import ibis.expr.types as ir
import numpy as np
import pandas as pd
from pydantic import Field

from riskstrat.common.settings import Integer, settings_model
from riskstrat.contract.schema import EventKind
from riskstrat.contract.tables import AS_OF_TABLE, ContractTables, unbound
from riskstrat.features.engine import KEY, cohort

EVENT, NO_EVENT, LEFT_AREA = "event", "no_event", "left_area"
# The default outcome horizon, for the labels and the synthetic borough's ground truth alike.
HORIZON_DAYS = 365


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

    @property
    def name(self) -> str:
        what = "emergency_admission_or_death" if self.include_death else "emergency_admission"
        return f"{what}_{self.horizon_days}d"


@cache
def first_admissions(horizon_days: int) -> ir.Table:
    """Per patient and as-of date that has one: the first emergency admission in the
    outcome window (``first_event``; ``as_of <= start < as_of + horizon_days``)."""
    as_of = unbound(AS_OF_TABLE)
    events = unbound("events")
    admissions = events.filter(events.kind == EventKind.EMERGENCY_ADMISSION.value)
    joined = admissions.inner_join(as_of, admissions.start >= as_of.as_of)
    in_horizon = joined.filter(joined.start.delta(joined.as_of, unit="day") < horizon_days)
    return in_horizon.group_by(KEY).aggregate(first_event=in_horizon.start.min())


@cache
def _first_admission(horizon_days: int) -> ir.Table:
    """Cohort with registration end, death and the first admission in the horizon."""
    members = cohort().select(*KEY, "registration_end", "death_date")
    frame = (
        members.left_join(first_admissions(horizon_days), KEY)
        .drop("patient_id_right", "as_of_right")
        .mutate(horizon_end=lambda t: t.as_of + ibis.interval(days=horizon_days - 1))
    )
    return frame


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
    frame = sources.run(_first_admission(outcome.horizon_days), as_of_dates)
    for column in ("as_of", "registration_end", "death_date", "first_event", "horizon_end"):
        frame[column] = pd.to_datetime(frame[column])
    event = frame["first_event"].notna()
    if outcome.include_death:
        died = frame["death_date"].notna() & (frame["death_date"] <= frame["horizon_end"])
        event |= died
        frame["first_event"] = frame["first_event"].where(
            ~died, frame[["first_event", "death_date"]].min(axis=1)
        )
    left = frame["registration_end"].notna() & (frame["registration_end"] < frame["horizon_end"])
    died_first = frame["death_date"].notna() & (frame["death_date"] <= frame["registration_end"])
    censored = left & ~died_first
    frame["status"] = np.select([censored, event], [LEFT_AREA, EVENT], NO_EVENT)
    frame["label"] = np.where(censored, np.nan, event.astype(float))
    frame["as_of"] = frame["as_of"].dt.date
    columns = ["label", "status", *(["first_event"] if with_date else [])]
    return frame.sort_values(["as_of", "patient_id"]).set_index(KEY)[columns]
