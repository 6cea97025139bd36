"""Suggested pathways from a documented, configurable rules file (``pathways.toml``).

Rules are tried in order; the first whose conditions all hold fires. The file is validated
when loaded: every error names the file, the rule and the field.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import numpy as np
import pandas as pd
from pydantic import Field, StringConstraints

from riskstrat.common.settings import SettingsError, parse_toml, settings_model, table_of
from riskstrat.serving.weekly.flags import FLAGS
from riskstrat.serving.weekly.referrals import Driver, Tier, drivers

PATHWAYS = ("integrated reablement plan", "social prescribing", "care coordination", "none")
DEFAULT_RULES = Path(__file__).with_name("pathways.toml")
Pathway = Literal[PATHWAYS]
Flag = Literal[tuple(FLAGS)]
# The conditions in the order they are checked (all must hold).
CONDITIONS = ("tiers", "flags_any", "flags_all", "flags_none", "drivers_any")
CONDITIONS += ("min_age", "max_age", "min_risk")


class RulesError(SettingsError):
    """The rules file is unreadable or wrong."""


@settings_model
class Rule:
    """One ``[[rule]]``: its name, its pathway, and conditions that must all hold.

    Lists mean "any of" (``flags_all``: all of them; ``flags_none``: none of them).
    """

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]
    pathway: Pathway
    tiers: tuple[Tier, ...] | None = Field(None, min_length=1)
    flags_any: tuple[Flag, ...] | None = Field(None, min_length=1)
    flags_all: tuple[Flag, ...] | None = Field(None, min_length=1)
    flags_none: tuple[Flag, ...] | None = Field(None, min_length=1)
    drivers_any: tuple[Driver, ...] | None = Field(None, min_length=1)
    min_age: float | None = None  # years
    max_age: float | None = None
    min_risk: float | None = Field(None, ge=0, le=1)  # probability

    @property
    def conditions(self) -> tuple[tuple[str, object], ...]:
        """The conditions this rule sets, as (name, value)."""
        return tuple((c, getattr(self, c)) for c in CONDITIONS if getattr(self, c) is not None)


@settings_model
class RulesFile:
    """A rules file: one or more ``[[rule]]`` entries, tried in order."""

    rule: tuple[Rule, ...] = Field(min_length=1)


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...]
    digest: str  # SHA-256 of the file, for the run manifest

    def apply(self, people: pd.DataFrame) -> pd.DataFrame:
        """``pathway`` and ``pathway_rule`` per person (first rule that holds)."""
        pathway = np.full(len(people), "none", dtype=object)
        fired = np.full(len(people), "no rule fired", dtype=object)
        undecided = np.ones(len(people), dtype=bool)
        applies = drivers(people)
        for rule in self.rules:
            holds = undecided & _holds(rule, people, applies)
            pathway[holds], fired[holds] = rule.pathway, rule.name
            undecided &= ~holds
        return pd.DataFrame(
            {"pathway": pathway, "pathway_rule": fired}, index=people.index, dtype="str"
        )

    def fits(self, people: pd.DataFrame) -> pd.DataFrame:
        """Per person and pathway, whether any rule for that pathway holds, whichever fired
        first: the help a person's needs fit besides the suggested one."""
        applies = drivers(people)
        found = {p: np.zeros(len(people), dtype=bool) for p in PATHWAYS}
        for rule in self.rules:
            found[rule.pathway] |= _holds(rule, people, applies)
        return pd.DataFrame(found, index=people.index)


def _holds(rule: Rule, people: pd.DataFrame, applies: pd.DataFrame) -> np.ndarray:
    holds = np.ones(len(people), dtype=bool)
    for field, value in rule.conditions:
        if field == "tiers":
            holds &= people["tier"].isin(value).to_numpy()
        elif field == "flags_any":
            holds &= people[[f"flag_{f}" for f in value]].any(axis=1).to_numpy()
        elif field == "flags_all":
            holds &= people[[f"flag_{f}" for f in value]].all(axis=1).to_numpy()
        elif field == "flags_none":
            holds &= ~people[[f"flag_{f}" for f in value]].any(axis=1).to_numpy()
        elif field == "drivers_any":
            holds &= applies[list(value)].any(axis=1).to_numpy()
        elif field == "min_age":
            holds &= (people["age"] >= value).to_numpy()
        elif field == "max_age":
            holds &= (people["age"] <= value).to_numpy()
        elif field == "min_risk":
            holds &= (people["risk"] >= value).to_numpy()
    return holds


def load_rules(path: Path = DEFAULT_RULES) -> Rules:
    """Read and check the rules file; errors name the file, the rule and the field."""
    try:
        raw = path.read_bytes()
        body = parse_toml(raw, path)
        checked = table_of(body, "", RulesFile, str(path))
    except OSError as exc:
        raise RulesError(str(path), f"cannot read the file ({exc.strerror or exc})") from None
    except SettingsError as exc:
        raise RulesError(exc.source, exc.problem, exc.table, exc.field) from None
    return Rules(checked.rule, hashlib.sha256(raw).hexdigest())
