"""Suggested pathways from a documented, configurable rules file (``pathways.toml``).

Rules are tried in order; the first whose conditions all hold fires. The file is validated
when loaded: every error names the file, the rule and the field.
"""

from __future__ import annotations

import hashlib
import tomllib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from models.tiers import LISTED_TIERS
from serving.weekly.flags import FLAGS
from serving.weekly.referrals import DRIVERS, drivers

PATHWAYS = ("integrated reablement plan", "social prescribing", "care coordination", "none")
DEFAULT_RULES = Path(__file__).with_name("pathways.toml")
FREQUENT_GP_CONTACTS = 12
_LISTS: dict[str, tuple[str, ...]] = {
    "tiers": LISTED_TIERS,
    "flags_any": tuple(FLAGS),
    "flags_all": tuple(FLAGS),
    "flags_none": tuple(FLAGS),
    "drivers_any": tuple(DRIVERS),
}
_NUMBERS = ("min_age", "max_age", "min_risk")


class RulesError(ValueError):
    """The rules file is unreadable or wrong."""


@dataclass(frozen=True, slots=True)
class Rule:
    name: str
    pathway: str
    conditions: tuple[tuple[str, object], ...]


@dataclass(frozen=True, slots=True)
class Rules:
    rules: tuple[Rule, ...]
    digest: str  # SHA-256 of the file, for the run manifest

    def apply(self, people: pd.DataFrame) -> pd.DataFrame:
        """``pathway`` and ``pathway_rule`` per person (first rule that holds)."""
        pathway = np.full(len(people), "none", dtype=object)
        fired = np.full(len(people), "no rule fired", dtype=object)
        undecided = np.ones(len(people), dtype=bool)
        applies = drivers(people, FREQUENT_GP_CONTACTS)
        for rule in self.rules:
            holds = undecided & _holds(rule, people, applies)
            pathway[holds], fired[holds] = rule.pathway, rule.name
            undecided &= ~holds
        return pd.DataFrame(
            {"pathway": pathway, "pathway_rule": fired}, index=people.index, dtype="str"
        )


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
    """Read and check the rules file."""
    try:
        raw = path.read_bytes()
        body = tomllib.loads(raw.decode())
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RulesError(f"{path}: cannot read the rules ({exc})") from exc
    unknown = set(body) - {"rule"}
    if unknown:
        raise RulesError(f"{path}: unknown table(s) {', '.join(sorted(unknown))}; use [[rule]]")
    entries = body.get("rule", [])
    if not isinstance(entries, list) or not entries:
        raise RulesError(f"{path}: no [[rule]] entries")
    rules = tuple(_rule(entry, f"{path}: rule {i + 1}") for i, entry in enumerate(entries))
    return Rules(rules, hashlib.sha256(raw).hexdigest())


def _rule(entry: dict, where: str) -> Rule:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RulesError(f"{where}: needs a name")
    where = f"{where} ({name!r})"
    if entry.get("pathway") not in PATHWAYS:
        raise RulesError(f"{where}: pathway must be one of {', '.join(PATHWAYS)}")
    conditions = []
    for field, value in entry.items():
        if field in ("name", "pathway"):
            continue
        if field in _LISTS:
            allowed = _LISTS[field]
            if not isinstance(value, list) or not value:
                raise RulesError(f"{where}: {field} must be a non-empty list")
            wrong = [v for v in value if v not in allowed]
            if wrong:
                raise RulesError(
                    f"{where}: {field} has unknown {wrong}; known: {', '.join(allowed)}"
                )
            conditions.append((field, tuple(value)))
        elif field in _NUMBERS:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise RulesError(f"{where}: {field} must be a number")
            if field == "min_risk" and not 0 <= value <= 1:
                raise RulesError(f"{where}: min_risk must be between 0 and 1")
            conditions.append((field, value))
        else:
            known = ", ".join([*_LISTS, *_NUMBERS])
            raise RulesError(f"{where}: unknown condition {field!r}; known: {known}")
    return Rule(name.strip(), entry["pathway"], tuple(conditions))
