"""The statistical analysis plan: written before anyone looks at outcomes, hashed when run.

A plan is a TOML file (see ``impact/plans/`` for the built-in borough's)::

    [plan]         title, written (date agreed), intervention, minimum_effect
    [units]        level (gp_cluster, practice or locality) and start = {unit = go-live}
    [population]   baseline date, and the eligibility rule over riskstrat's features as of
                   the baseline: every ``require`` condition and at least one ``any_of``
    [outcomes]     primary, secondary
    [did]          staggered difference-in-differences (optional)
    [matched]      matched comparison (optional)
    [rd]           regression discontinuity at the list's cut-off (optional)
    [exposure]     what counts as list-triggered help, the [rd] design's take-up (optional;
                   the one rule, ``features.exposure``, that training and monitoring read)

Conditions read ``"feature op number"`` (``"age >= 65"``): a small fixed grammar, not code,
so a plan cannot run anything. The plan is checked against the data before any outcome is
read (``check_against``): units and dates not in the data are refused by name.
"""

from __future__ import annotations

import hashlib
import operator
import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from riskstrat.common.settings import Integer, SettingsError, parse_toml, settings_model, validate
from riskstrat.features.exposure import ExposureRule
from riskstrat.features.outcomes import OUTCOMES

UnitLevel = Literal["gp_cluster", "practice", "locality"]
UNIT_COLUMNS: dict[str, str] = {
    "gp_cluster": "gp_cluster",
    "practice": "practice_id",
    "locality": "locality",
}
"""Each unit of roll-out a plan may name, and the practices table's column that holds it."""
PLANS = Path(__file__).resolve().parent / "plans"
BUILT_IN_PLANS = ("integrated_locality_model.toml", "risk_list_actions.toml")
"""The built-in synthetic borough's plans: its two interventions."""
_OPERATORS = {
    ">=": operator.ge,
    ">": operator.gt,
    "<=": operator.le,
    "<": operator.lt,
    "==": operator.eq,
    "!=": operator.ne,
}
_CONDITION = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(>=|<=|==|!=|>|<)\s*(-?\d+(?:\.\d+)?)\s*$")


@dataclass(frozen=True, slots=True)
class Condition:
    """``feature op value`` over one feature column as of the baseline."""

    feature: str
    op: str
    value: float

    @classmethod
    def parse(cls, text: str) -> Condition:
        match = _CONDITION.match(text)
        if not match:
            raise ValueError(
                f"condition {text!r} must read 'feature op number' with op one of "
                f"{', '.join(_OPERATORS)}"
            )
        return cls(match[1], match[2], float(match[3]))

    def holds(self, frame: pd.DataFrame) -> np.ndarray:
        return _OPERATORS[self.op](frame[self.feature].to_numpy(dtype=float), self.value)

    def __str__(self) -> str:
        return f"{self.feature} {self.op} {self.value:g}"


def _conditions(texts: tuple[str, ...]) -> tuple[str, ...]:
    for text in texts:
        Condition.parse(text)
    return texts


def _outcome(name: str) -> str:
    if name not in OUTCOMES:
        raise ValueError(f"unknown outcome {name!r} (known: {', '.join(OUTCOMES)})")
    return name


@settings_model
class PlanHeader:
    title: str = Field(min_length=1, max_length=200)
    written: date
    intervention: str = Field(min_length=1, max_length=100)
    minimum_effect: float = Field(0.1, gt=0, lt=1)


@settings_model
class Units:
    level: UnitLevel = "gp_cluster"

    @property
    def column(self) -> str:
        return UNIT_COLUMNS[self.level]

    start: dict[str, date] = Field(min_length=1)


@settings_model
class Population:
    baseline: date
    require: tuple[str, ...] = ()
    any_of: tuple[str, ...] = ()

    _check_require = field_validator("require")(_conditions)
    _check_any = field_validator("any_of")(_conditions)

    @property
    def conditions(self) -> tuple[tuple[Condition, ...], tuple[Condition, ...]]:
        return tuple(map(Condition.parse, self.require)), tuple(map(Condition.parse, self.any_of))

    def eligible(self, features: pd.DataFrame) -> np.ndarray:
        """Who meets the rule, from features as of the baseline (one row per person)."""
        required, alternatives = self.conditions
        keep = np.ones(len(features), bool)
        for condition in required:
            keep &= condition.holds(features)
        if alternatives:
            keep &= np.logical_or.reduce([c.holds(features) for c in alternatives])
        return keep

    def describe(self) -> str:
        required, alternatives = self.conditions
        parts = [" and ".join(map(str, required))] if required else []
        if alternatives:
            parts.append("(" + " or ".join(map(str, alternatives)) + ")")
        return " and ".join(parts) or "everyone"


@settings_model
class Outcomes:
    primary: str = "emergency_admissions"
    secondary: tuple[str, ...] = ()

    _check_primary = field_validator("primary")(_outcome)

    @field_validator("secondary")
    @classmethod
    def _check_secondary(cls, names: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(_outcome(n) for n in names)

    @property
    def all(self) -> tuple[str, ...]:
        return (self.primary, *(n for n in self.secondary if n != self.primary))


@settings_model
class DidDesign:
    pre_months: Integer = Field(24, ge=3, le=120)
    end: date | None = None
    control: Literal["not_yet_treated", "never_treated"] = "not_yet_treated"
    inference: Literal["randomisation", "wild_cluster", "person_cluster"] = "randomisation"
    bootstrap: Integer = Field(999, ge=99, le=99_999)


@settings_model
class MatchedDesign:
    treated_units: tuple[str, ...] = ()
    follow_up_months: Integer = Field(12, ge=1, le=60)
    features: tuple[str, ...] = ()
    controls_per_treated: Integer = Field(3, ge=1, le=10)
    caliper: float = Field(0.2, gt=0, le=2)


@settings_model
class RdDesign:
    run: date
    cutoff: float = Field(gt=0, lt=1)
    follow_up_months: Integer = Field(3, ge=1, le=24)
    outcome: str = "emergency_admissions"

    _check_outcome = field_validator("outcome")(_outcome)


@settings_model
class Plan:
    plan: PlanHeader
    units: Units
    population: Population
    outcomes: Outcomes = Field(default_factory=Outcomes)
    did: DidDesign | None = None
    matched: MatchedDesign | None = None
    rd: RdDesign | None = None
    exposure: ExposureRule = Field(default_factory=ExposureRule)
    seed: Integer = 20231

    @model_validator(mode="after")
    def _designs(self) -> Plan:
        if not (self.did or self.matched or self.rd):
            raise ValueError("names no design: add a [did], [matched] or [rd] table")
        if self.plan.written > self.population.baseline:
            raise ValueError(
                f"[plan] written {self.plan.written} is after the baseline "
                f"{self.population.baseline}: a plan is agreed before the evaluation period"
            )
        return self

    @property
    def start_dates(self) -> dict[str, date]:
        return dict(self.units.start)


@dataclass(frozen=True, slots=True)
class LoadedPlan:
    """A plan with the file it came from and the SHA-256 of that file's bytes."""

    plan: Plan
    path: Path
    text: str
    sha256: str


def load_plan(path: Path) -> LoadedPlan:
    """Read and validate a plan file; errors name the file, table and field."""
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise SettingsError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
    plan = validate(Plan, parse_toml(raw, path), str(path))
    return LoadedPlan(plan, path, raw.decode(), hashlib.sha256(raw).hexdigest())


def check_against(
    loaded: LoadedPlan, units: pd.Series, first_day: date, last_day: date, features: set[str]
) -> None:
    """Refuse a plan that names units, dates or features the data does not have.

    ``units`` are the data's units at the plan's level; ``first_day``..``last_day`` the span
    of the events; ``features`` the feature columns riskstrat computes.
    """
    plan, source = loaded.plan, str(loaded.path)
    known = set(units.astype(str))
    unknown = sorted(set(plan.units.start) - known)
    if unknown:
        raise SettingsError(
            source,
            f"units not in the data: {', '.join(unknown)} "
            f"(the data has: {', '.join(sorted(known))})",
            "[units]",
            "start",
        )
    dated = [("[population]", "baseline", plan.population.baseline)]
    dated += [("[units]", f"start.{u}", d) for u, d in plan.units.start.items()]
    if plan.rd:
        dated.append(("[rd]", "run", plan.rd.run))
    if plan.did and plan.did.end:
        dated.append(("[did]", "end", plan.did.end))
    for table, field, day in dated:
        if not first_day <= day <= last_day:
            raise SettingsError(
                source, f"{day} is outside the data ({first_day} to {last_day})", table, field
            )
    conditions = [*plan.population.conditions[0], *plan.population.conditions[1]]
    named = [c.feature for c in conditions] + list(plan.matched.features if plan.matched else ())
    missing = sorted(set(named) - features)
    if missing:
        raise SettingsError(
            source, f"features riskstrat does not compute: {', '.join(missing)}", "[population]"
        )
    if plan.matched:
        not_units = sorted(set(plan.matched.treated_units) - set(plan.units.start))
        if not_units:
            raise SettingsError(
                source,
                f"treated units without a start date in [units]: {', '.join(not_units)}",
                "[matched]",
                "treated_units",
            )
