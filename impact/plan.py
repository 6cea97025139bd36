"""The statistical analysis plan: written before anyone looks at outcomes, hashed when run.

A plan is a TOML file (see ``impact/plans/`` for the built-in borough's)::

    [plan]         title, written (date agreed), intervention, minimum_effect
    [units]        level (gp_cluster, practice or locality) and start = {unit = go-live}
    [population]   baseline date, and the eligibility rule over riskstrat's features as of
                   the baseline: every ``require`` condition and at least one ``any_of``
    [outcomes]     primary, secondary
    [subgroups]    by: effect modifiers, each a feature as of the baseline (``has_frailty``),
                   a banded one (``age_band``) or a condition (``"age >= 85"``): every
                   design that can reports its effect per level with an interaction test
    [did]          staggered difference-in-differences (optional)
    [matched]      matched comparison (optional)
    [rd]           regression discontinuity at the list's cut-off (optional)
    [lottery]      the list runs' recorded lotteries for scarce help, compared as the
                   randomised trials they are (optional)
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
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import Field, field_validator, model_validator

from riskstrat.common.settings import Integer, SettingsError, parse_toml, settings_model, validate
from riskstrat.features.bands import AGE_LABELS, age_band
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


BANDS: dict[str, tuple[str, Callable[[pd.Series], pd.Series], tuple[str, ...]]] = {
    "age_band": ("age", age_band, AGE_LABELS),
}
"""Banded features a subgroup may name: the feature each bands, how, and the bands in order."""
MAX_LEVELS = 6
"""The most levels a subgroup may have: more is a continuous feature that needs bands."""
MIN_LEVEL_PEOPLE = 100
"""The fewest eligible people a subgroup level needs for its effect to be estimated."""
_NAME = re.compile(r"^\s*[a-z][a-z0-9_]*\s*$")


@dataclass(frozen=True, slots=True)
class Subgroup:
    """One effect modifier: a feature's own levels, its bands, or a condition (yes / no)."""

    text: str

    @property
    def condition(self) -> Condition | None:
        return None if _NAME.match(self.text) else Condition.parse(self.text)

    @property
    def feature(self) -> str:
        """The feature column it reads."""
        condition = self.condition
        if condition is not None:
            return condition.feature
        name = self.text.strip()
        return BANDS[name][0] if name in BANDS else name

    def levels(self, features: pd.DataFrame) -> pd.Series:
        """Each person's level, as text, in the order ``order`` sorts them."""
        condition, name = self.condition, self.text.strip()
        if condition is not None:
            return pd.Series(np.where(condition.holds(features), "yes", "no"), features.index)
        if name in BANDS:
            return BANDS[name][1](features[self.feature]).set_axis(features.index)
        values = features[name].to_numpy(dtype=float)
        return pd.Series([f"{v:g}" for v in values], features.index)

    def order(self, levels: set[str]) -> list[str]:
        """The levels in reading order: bands as banded, "no" before "yes", numbers by value;
        the first is the reference the others are compared with."""
        name = self.text.strip()
        if name in BANDS:
            return [b for b in BANDS[name][2] if b in levels]
        if self.condition is not None:
            return [v for v in ("no", "yes") if v in levels]
        return sorted(levels, key=float)

    def __str__(self) -> str:
        return str(self.condition) if self.condition is not None else self.text.strip()


def _subgroup(text: str) -> str:
    if not _NAME.match(text):
        Condition.parse(text)
    return text


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
class Subgroups:
    by: tuple[str, ...] = Field(min_length=1, max_length=4)

    @field_validator("by")
    @classmethod
    def _check_by(cls, texts: tuple[str, ...]) -> tuple[str, ...]:
        for text in texts:
            _subgroup(text)
        named = [str(Subgroup(t)) for t in texts]
        twice = sorted({n for n in named if named.count(n) > 1})
        if twice:
            raise ValueError(f"named more than once: {', '.join(twice)}")
        return texts

    @property
    def all(self) -> tuple[Subgroup, ...]:
        return tuple(Subgroup(t) for t in self.by)


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
class LotteryDesign:
    """Which recorded lotteries to compare (``runs``; none named: every run whose follow-up
    the data cover), over how many months after the run, and the level of the teams each
    drew for (each run, help and team is one lottery, with its own chance of a draw)."""

    runs: tuple[date, ...] = ()
    follow_up_months: Integer = Field(3, ge=1, le=24)
    team: UnitLevel = "locality"

    @property
    def team_column(self) -> str:
        return UNIT_COLUMNS[self.team]


@settings_model
class Plan:
    plan: PlanHeader
    units: Units
    population: Population
    outcomes: Outcomes = Field(default_factory=Outcomes)
    subgroups: Subgroups | None = None
    did: DidDesign | None = None
    matched: MatchedDesign | None = None
    rd: RdDesign | None = None
    lottery: LotteryDesign | None = None
    exposure: ExposureRule = Field(default_factory=ExposureRule)
    seed: Integer = 20231

    @model_validator(mode="after")
    def _designs(self) -> Plan:
        if not (self.did or self.matched or self.rd or self.lottery):
            raise ValueError("names no design: add a [did], [matched], [rd] or [lottery] table")
        if self.plan.written > self.population.baseline:
            raise ValueError(
                f"[plan] written {self.plan.written} is after the baseline "
                f"{self.population.baseline}: a plan is agreed before the evaluation period"
            )
        return self

    @property
    def start_dates(self) -> dict[str, date]:
        return dict(self.units.start)

    @property
    def subgroup_list(self) -> tuple[Subgroup, ...]:
        """The plan's effect modifiers (none without a [subgroups] table)."""
        return self.subgroups.all if self.subgroups else ()


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
    if plan.lottery:
        dated += [("[lottery]", "runs", day) for day in plan.lottery.runs]
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
    unknown = [str(s) for s in plan.subgroup_list if s.feature not in features]
    if unknown:
        raise SettingsError(
            source,
            f"features riskstrat does not compute: {', '.join(unknown)} (banded: "
            f"{', '.join(BANDS)})",
            "[subgroups]",
            "by",
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
