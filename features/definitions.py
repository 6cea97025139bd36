"""Declarative, engine-neutral feature definitions over a cut event window.

Each definition is a small frozen object that knows its column's metadata and builds one
Ibis aggregate expression from a window made by ``features.window.cut``. The same expression
compiles to DuckDB here, and to Spark or SQL Server SQL where the data lives.
"""

from __future__ import annotations

from dataclasses import dataclass

import ibis
import ibis.expr.types as ir

from features.spec import FeatureSpec


@dataclass(frozen=True, slots=True, kw_only=True)
class Definition:
    """Shared fields: which events count, the column's name and its plain-English text."""

    name: str
    kinds: tuple[str, ...]
    codes: tuple[str, ...] = ()
    days: int | None = None
    description: str
    template: str
    zero_template: str = ""
    concept: str
    default: float = 0.0

    def matches(self, window: ir.Table) -> ir.BooleanValue:
        match = window.kind.isin(self.kinds)
        if self.codes:
            match &= window.code.isin(self.codes)
        if self.days is not None:
            match &= window.days_before <= self.days
        return match

    def spec(self) -> FeatureSpec:
        return FeatureSpec(
            name=self.name,
            description=self.description,
            template=self.template,
            zero_template=self.zero_template,
            concept=self.concept,
            default=self.default,
        )

    def aggregate(self, window: ir.Table) -> ir.Value:
        raise NotImplementedError


@dataclass(frozen=True, slots=True, kw_only=True)
class Count(Definition):
    """How many matching events."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        return window.patient_id.count(where=self.matches(window)).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class Flag(Definition):
    """1 if any matching event, else 0."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        return ibis.ifelse(window.patient_id.count(where=self.matches(window)) > 0, 1.0, 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class DistinctCodes(Definition):
    """How many different codes among matching events (drug classes, conditions)."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        return window.code.nunique(where=self.matches(window)).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class DaysInStay(Definition):
    """Days spent in matching stays (admission to discharge), clipped at the as-of date."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        return window.duration_to_as_of.sum(where=self.matches(window)).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class DaysSince(Definition):
    """Days since the latest matching event; ``default`` (the cap) when there is none."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        latest = window.days_before.min(where=self.matches(window)).cast("float64")
        return ibis.least(latest, self.default)


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveValue(Definition):
    """Sum of ``value`` over matching episodes still running on the as-of date."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        return window.value.sum(where=self.matches(window) & window.active_on_as_of).cast("float64")


@dataclass(frozen=True, slots=True, kw_only=True)
class ActiveFlag(Definition):
    """1 if a matching episode is running on the as-of date."""

    def aggregate(self, window: ir.Table) -> ir.Value:
        running = window.patient_id.count(where=self.matches(window) & window.active_on_as_of)
        return ibis.ifelse(running > 0, 1.0, 0.0)


@dataclass(frozen=True, slots=True, kw_only=True)
class Family:
    """Named group of definitions sharing one look-back (None: the whole history)."""

    name: str
    lookback_days: int | None
    definitions: tuple[Definition, ...]

    def __post_init__(self) -> None:
        for d in self.definitions:
            if self.lookback_days is not None and (d.days is None or d.days > self.lookback_days):
                raise ValueError(
                    f"family {self.name}: {d.name} looks back {d.days} days, beyond the "
                    f"family's {self.lookback_days}"
                )
