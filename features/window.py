"""The one place that cuts events at as-of dates. No feature family filters by time itself.

An event belongs to the history of ``as_of`` when ``as_of - lookback <= start < as_of``: an
event on the as-of date is excluded (it is the outcome period), an event exactly ``lookback``
days before is included. ``days_before`` (1 for yesterday) is what windows compare with;
``duration_to_as_of`` clips a stay at the as-of date so no part of the future leaks in.
``kind_number`` is the event's kind as a small integer (``KIND_NUMBERS``), which the feature
definitions compare instead of the kind's text: otherwise each of sixty-odd definitions
compares every event's kind as a string, which Spark does one byte range at a time.
"""

from __future__ import annotations

from datetime import date, timedelta

import ibis
import ibis.expr.types as ir

from riskstrat.contract.schema import EventKind

KIND_NUMBERS: dict[str, int] = {kind.value: number for number, kind in enumerate(EventKind)}


def cut(events: ir.Table, as_of: ir.Table, lookback_days: int | None) -> ir.Table:
    """Events joined to each as-of date they are history for, with ``days_before``."""
    joined = events.inner_join(as_of, events.start < as_of.as_of)
    days_before = joined.as_of.delta(joined.start, unit="day")
    clipped_end = ibis.least(joined.end.fill_null(joined.as_of), joined.as_of)
    joined = joined.mutate(
        days_before=days_before,
        duration_to_as_of=clipped_end.delta(joined.start, unit="day"),
        active_on_as_of=joined.end.isnull() | (joined.end >= joined.as_of),
        kind_number=joined.kind.cases(*KIND_NUMBERS.items(), else_=-1).cast("int8"),
    )
    if lookback_days is None:
        return joined
    return joined.filter(joined.days_before <= lookback_days)


def history_start(as_of: date, lookback_days: int) -> date:
    """The earliest day whose events are history for ``as_of`` with this look-back."""
    return as_of - timedelta(days=lookback_days)
