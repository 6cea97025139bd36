"""The one place that cuts events at as-of dates. No feature family filters by time itself.

An event belongs to the history of ``as_of`` when ``as_of - lookback <= start < as_of``, the
look-back being its kind's (``reach``): an event on the as-of date is excluded (it is the
outcome period), an event exactly ``lookback`` days before is included. ``days_before`` (1
for yesterday) is what windows compare with; ``duration_to_as_of`` clips a stay at the as-of
date so no part of the future leaks in.
``kind_number`` is the event's kind as a small integer (``KIND_NUMBERS``), which the feature
definitions compare instead of the kind's text: otherwise each of sixty-odd definitions
compares every event's kind as a string, which Spark does one byte range at a time.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta

import ibis
import ibis.expr.types as ir

from riskstrat.contract.schema import EventKind

KIND_NUMBERS: dict[str, int] = {kind.value: number for number, kind in enumerate(EventKind)}


def cut(events: ir.Table, as_of: ir.Table, reach: Mapping[str, int | None]) -> ir.Table:
    """Events of the kinds in ``reach`` joined to each as-of date they are history for, with
    ``days_before``; each kind at most ``reach[kind]`` days back (None: the whole history)."""
    events = events.filter(events.kind.isin(sorted(reach)))
    joined = events.inner_join(as_of, events.start < as_of.as_of)
    days_before = joined.as_of.delta(joined.start, unit="day")
    clipped_end = ibis.least(joined.end.fill_null(joined.as_of), joined.as_of)
    joined = joined.mutate(
        days_before=days_before,
        duration_to_as_of=clipped_end.delta(joined.start, unit="day"),
        active_on_as_of=joined.end.isnull() | (joined.end >= joined.as_of),
        kind_number=joined.kind.cases(*KIND_NUMBERS.items(), else_=-1).cast("int8"),
    )
    keep = _within_reach(joined, reach)
    return joined if keep is None else joined.filter(keep)


def _within_reach(window: ir.Table, reach: Mapping[str, int | None]) -> ir.BooleanValue | None:
    """Events no older than their kind's reach (None when every kind reaches back forever).

    The shortest look-back is tested on the days alone, and each longer one on the days
    and then the kind: most events are recent and pass on one comparison of numbers,
    and only older ones have their kind (text) compared. Testing the kind first made
    DuckDB slower than keeping every event; testing ``kind_number`` made Spark inline
    its CASE into the join condition and run ten times slower.
    """
    lookbacks = sorted({v for v in reach.values() if v is not None})
    if not lookbacks:
        return None
    keep = window.days_before <= lookbacks[0]
    for lookback in [*lookbacks[1:], None]:
        kinds = sorted(
            k for k, v in reach.items() if v is None or (lookback is not None and v >= lookback)
        )
        if kinds:
            reached = window.kind.isin(kinds)
            keep |= reached if lookback is None else (window.days_before <= lookback) & reached
    return keep


def history_start(as_of: date, lookback_days: int) -> date:
    """The earliest day whose events are history for ``as_of`` with this look-back."""
    return as_of - timedelta(days=lookback_days)
