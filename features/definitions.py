"""Declarative, engine-neutral feature definitions over a cut event window.

Each definition is a small frozen object that knows its column's metadata and builds one
Ibis aggregate expression from a window made by ``features.window.cut``. The same expression
compiles to DuckDB here, and to Spark or SQL Server SQL where the data lives.

Each kind of definition also declares the range its values can take (``bounds``), saved in
the feature spec so that the service refuses a value no person could have.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from riskstrat.common.months import DAYS_PER_YEAR
from riskstrat.features.spec import FeatureSpec
from riskstrat.features.window import KIND_NUMBERS

# Generous caps for valid values: far above any person's record, low enough that a value
# beyond them is a mistake (1e308 admissions, an age of 500).
COUNT_CAP = 10_000.0  # events, days in hospital or distinct codes within one look-back
LIFETIME_YEARS = 120.0  # ages and years since a first record


# What a count of matching events counts: a constant is cheaper to carry than a column.
EVENT = ibis.literal(1, type="int8")


def only(condition: ir.BooleanValue, value: ir.Value) -> ir.Value:
    """``value`` where ``condition`` holds, else null: an aggregate over it sees only the
    matching events. Written as CASE inside the aggregate (not a FILTER clause), so that
    many definitions share one pass over the events on every engine."""
    return ibis.ifelse(condition, value, ibis.null(value.type()))


@dataclass(frozen=True, slots=True, kw_only=True)
class Described:
    """A column's name and how to say it: what every feature column carries into its spec."""

    name: str
    description: str
    template: str
    zero_template: str = ""
    concept: str
    default: float = 0.0

    def bounds(self) -> tuple[float, float]:
        """The smallest and largest value the column can take."""
        raise NotImplementedError

    def spec(self) -> FeatureSpec:
        low, high = self.bounds()
        return FeatureSpec(
            name=self.name,
            description=self.description,
            template=self.template,
            zero_template=self.zero_template,
            concept=self.concept,
            default=self.default,
            minimum=low,
            maximum=high,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class Definition(Described):
    """A column aggregated from events: which events count, and over how many days.

    ``aggregate`` is one aggregate over a window of many kinds of events, the filter
    inside it (``only``), so that every definition shares one pass over the events.
    """

    kinds: tuple[str, ...]
    codes: tuple[str, ...] = ()
    days: int | None = None

    def selects(self, window: ir.Table) -> ir.BooleanValue:
        """Events of the right kind and code, at any time in the window."""
        match = window.kind_number.isin([KIND_NUMBERS[kind] for kind in self.kinds])
        if self.codes:
            match &= window.code.isin(self.codes)
        return match

    def matches(self, window: ir.Table) -> ir.BooleanValue:
        """Selected events within the last ``days`` days (all of the window if None)."""
        if self.days is None:
            return self.selects(window)
        return self.selects(window) & (window.days_before <= self.days)

    def matching(self, window: ir.Table) -> ir.IntegerScalar:
        """How many matching events (the partial of most counts and flags)."""
        return only(self.matches(window), EVENT).count()

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        """The column for one person and as-of date, from their window of events."""
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class Count(Definition):
    """How many matching events."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, COUNT_CAP

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        return self.matching(window).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class Flag(Definition):
    """1 if any matching event, else 0."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, 1.0

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        return ibis.ifelse(self.matching(window) > 0, 1, 0).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class DistinctCodes(Definition):
    """How many different codes among matching events (drug classes, conditions).

    Counted in two steps, with no DISTINCT aggregate (which Spark computes by copying every
    event once per distinct column): ``latest`` per person, as-of date and code, then
    ``count_codes`` over those, a code counting when its latest event is within ``days``.
    """

    def bounds(self) -> tuple[float, float]:
        return 0.0, COUNT_CAP

    def latest(self, window: ir.Table) -> ir.Scalar:
        """Days before the as-of date of the code's latest selected event (per person,
        as-of date and code; null when none is selected)."""
        return only(self.selects(window), window.days_before).min()

    def count_codes(self, latest: ir.Column) -> ir.Scalar:
        """How many codes have a latest event within ``days`` (any, when None)."""
        recent = latest.notnull() if self.days is None else latest <= self.days
        return only(recent, latest).count().cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class DaysInStay(Definition):
    """Days spent in matching stays (admission to discharge), clipped at the as-of date."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, COUNT_CAP

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        return only(self.matches(window), window.duration_to_as_of).sum().cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class DaysSince(Definition):
    """Days since the latest matching event; ``default`` (the cap) when there is none."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, self.default

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        latest = only(self.matches(window), window.days_before).min().cast("float64")
        return ibis.least(latest, self.default)


@dataclass(frozen=True, slots=True, kw_only=True)
class DaysSinceEnd(Definition):
    """Days since the latest matching stay ended; ``default`` when none has ended.

    A stay still running on the as-of date (no end, or an end on or after it) is not a
    discharge: it is skipped, so a person still in hospital never reads as just discharged.
    """

    def bounds(self) -> tuple[float, float]:
        return 0.0, self.default

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        ended = window.days_before - window.duration_to_as_of
        finished = self.matches(window) & ~window.active_on_as_of
        return ibis.least(only(finished, ended).min().cast("float64"), self.default)


@dataclass(frozen=True, slots=True, kw_only=True)
class YearsSinceFirst(Definition):
    """Years since the earliest matching event in the window; ``default`` when none."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, LIFETIME_YEARS

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        earliest = only(self.matches(window), window.days_before).max()
        return earliest.cast("float64") / DAYS_PER_YEAR


@dataclass(frozen=True, slots=True, kw_only=True)
class Trend(Definition):
    """Yearly rate in the last ``recent_days`` minus the yearly rate in the rest of ``days``.

    Positive when use is rising against the person's own earlier use; 0 when steady or none.
    """

    recent_days: int = 90

    def __post_init__(self) -> None:
        if self.days is None or not 0 < self.recent_days < self.days:
            raise ValueError(f"{self.name}: need 0 < recent_days < days")

    def bounds(self) -> tuple[float, float]:
        """From every capped count earlier and none recently, to the reverse."""
        assert self.days is not None
        return (
            -COUNT_CAP * 365.0 / (self.days - self.recent_days),
            COUNT_CAP * 365.0 / self.recent_days,
        )

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        assert self.days is not None
        selected = self.selects(window)
        recent = only(selected & (window.days_before <= self.recent_days), EVENT)
        earlier = only(
            selected & (window.days_before > self.recent_days) & (window.days_before <= self.days),
            EVENT,
        )
        return recent.count().cast("float64") * (365.0 / self.recent_days) - earlier.count().cast(
            "float64"
        ) * (365.0 / (self.days - self.recent_days))


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveValue(Definition):
    """Sum of ``column`` (value or cost) over matching episodes running on the as-of date,
    at most ``maximum`` (a generous cap declared with the column)."""

    column: str = "value"
    maximum: float

    def bounds(self) -> tuple[float, float]:
        return 0.0, self.maximum

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        running = self.matches(window) & window.active_on_as_of
        return only(running, window[self.column]).sum().cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveFlag(Definition):
    """1 if a matching episode is running on the as-of date."""

    def bounds(self) -> tuple[float, float]:
        return 0.0, 1.0

    def aggregate(self, window: ir.Table) -> ir.Scalar:
        running = self.matches(window) & window.active_on_as_of
        return ibis.ifelse(only(running, EVENT).count() > 0, 1, 0).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class Derived(Described):
    """A column computed from other feature columns (never from events directly).

    ``expression`` takes the feature table (an Ibis table holding every earlier column) and
    returns the new column, so derived columns run on any engine like the rest.
    """

    inputs: tuple[str, ...]
    expression: Callable[[ir.Table], ir.Value]
    minimum: float
    maximum: float

    def bounds(self) -> tuple[float, float]:
        return self.minimum, self.maximum


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    """Named group of definitions sharing one look-back (None: the whole history)."""

    name: str
    lookback_days: int | None
    definitions: tuple[Definition, ...]

    @property
    def kinds(self) -> tuple[str, ...]:
        """Every event kind some definition of the family reads."""
        return tuple(sorted({k for d in self.definitions for k in d.kinds}))

    def __post_init__(self) -> None:
        for d in self.definitions:
            if self.lookback_days is not None and (d.days is None or d.days > self.lookback_days):
                raise ValueError(
                    f"family {self.name}: {d.name} looks back {d.days} days, beyond the "
                    f"family's {self.lookback_days}"
                )
