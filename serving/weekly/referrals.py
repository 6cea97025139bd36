"""The social prescribing filter: listed people whose risk a voluntary group could help with.

It reads a week's ``people.parquet`` (see ``serving.weekly``) and keeps adults at the chosen
tier or risk for whom at least one *driver* applies (isolation, low mood or anxiety, frequent
GP contact, a recent bereavement), leaving out care-home residents, people referred recently
and people under crisis or secondary mental-health care. Each match says why it matched.
The same criteria serve the command line, the API and the web page.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path

import pandas as pd

from features.catalogue import DAYS_SINCE_CAP
from models.tiers import LISTED_TIERS

TIERS = LISTED_TIERS  # most to least at risk: min_tier keeps a prefix
DRIVERS: dict[str, str] = {
    "isolation": "isolation (recorded as living alone)",
    "low_mood": "low mood or anxiety recorded",
    "frequent_gp": "frequent GP contact",
    "bereavement": "bereavement recorded in the last 12 months",
}
DAYS_PER_MONTH = 30.4375
# The people.parquet columns the filter reads, besides the list's own.
COLUMNS: tuple[str, ...] = (
    "age",
    "tier",
    "risk",
    "locality",
    "care_home_resident",
    "lives_alone_coded",
    "has_depression",
    "has_anxiety",
    "gp_contacts_365d",
    "bereavements_365d",
    "days_since_social_prescribing_referral",
    "mental_health_crisis_contacts_90d",
    "mental_health_contacts_90d",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class ReferralCriteria:
    """Who the social prescribing view selects; validated when built."""

    min_tier: str | None = "high"
    min_risk: float | None = None
    drivers: tuple[str, ...] = tuple(DRIVERS)
    frequent_gp_contacts: int = 12
    min_age: int = 18
    exclude_care_home: bool = True
    not_referred_months: int = 6
    exclude_mental_health_care: bool = True
    localities: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.min_tier is not None and self.min_tier not in TIERS:
            raise ValueError(f"min_tier must be one of {', '.join(TIERS)} or empty")
        if self.min_risk is not None and not 0.0 <= self.min_risk <= 1.0:
            raise ValueError("min_risk must be between 0 and 1")
        unknown = [d for d in self.drivers if d not in DRIVERS]
        if unknown or not self.drivers:
            raise ValueError(f"drivers must be one or more of {', '.join(DRIVERS)}")
        if not 1 <= self.frequent_gp_contacts <= 366:
            raise ValueError("frequent_gp_contacts must be between 1 and 366")
        if not 0 <= self.min_age <= 120:
            raise ValueError("min_age must be between 0 and 120")
        if not 0 <= self.not_referred_months <= 24:
            raise ValueError("not_referred_months must be between 0 and 24 (the history kept)")

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], source: str) -> ReferralCriteria:
        """Criteria from a TOML table, request body or form; errors name ``source`` and field.

        Text is accepted for every field (forms and command lines send text): lists as
        comma-separated text, booleans as true/false, an empty value as "not set".
        """
        known = {f.name: f for f in fields(cls)}
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"{source}: unknown field(s) {', '.join(unknown)}")
        parsed = {}
        for name, raw in values.items():
            try:
                parsed[name] = _parse(name, raw)
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{source}: field {name}: {exc}") from exc
        try:
            return cls(**parsed)
        except ValueError as exc:
            raise ValueError(f"{source}: {exc}") from exc


_INTEGERS = ("frequent_gp_contacts", "min_age", "not_referred_months")
_BOOLEANS = ("exclude_care_home", "exclude_mental_health_care")
_TRUE, _FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _parse(name: str, raw: object) -> object:
    """One field's value from text or its proper type."""
    text = raw.strip() if isinstance(raw, str) else raw
    if name in ("min_tier", "min_risk") and text in ("", None):
        return None
    if name in ("drivers", "localities"):
        items = text.split(",") if isinstance(text, str) else list(text)
        return tuple(str(i).strip() for i in items if str(i).strip())
    if name == "min_risk":
        return float(text)
    if name in _INTEGERS:
        if isinstance(text, bool) or (isinstance(text, float) and not text.is_integer()):
            raise ValueError(f"{raw!r} is not a whole number")
        return int(text)
    if name in _BOOLEANS:
        if isinstance(text, bool):
            return text
        if str(text).lower() in _TRUE + _FALSE:
            return str(text).lower() in _TRUE
        raise ValueError(f"{raw!r} is not true or false")
    return text


def load_criteria(path: Path) -> ReferralCriteria:
    """Criteria from the ``[referrals]`` table of a TOML file."""
    import tomllib

    try:
        body = tomllib.loads(path.read_text())
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the criteria ({exc})") from exc
    return ReferralCriteria.from_mapping(body.get("referrals", {}), f"{path} [referrals]")


def drivers(people: pd.DataFrame, frequent_gp_contacts: int) -> pd.DataFrame:
    """One boolean column per driver (also used by the pathway rules)."""
    return pd.DataFrame(
        {
            "isolation": people["lives_alone_coded"] > 0,
            "low_mood": (people["has_depression"] > 0) | (people["has_anxiety"] > 0),
            "frequent_gp": people["gp_contacts_365d"] >= frequent_gp_contacts,
            "bereavement": people["bereavements_365d"] > 0,
        },
        index=people.index,
    )


def _driver_sentence(name: str, person: pd.Series) -> str:
    if name == "frequent_gp":
        return f"{person['gp_contacts_365d']:.0f} GP contacts in the last 12 months"
    return DRIVERS[name]


def select_referrals(people: pd.DataFrame, criteria: ReferralCriteria) -> pd.DataFrame:
    """The people who match, most at risk first, with a ``matched`` column saying why."""
    missing = [c for c in COLUMNS if c not in people.columns]
    if missing:
        raise ValueError(f"people table lacks column(s) {', '.join(missing)}")
    keep = people["age"] >= criteria.min_age
    if criteria.min_tier is not None:
        allowed = TIERS[: TIERS.index(criteria.min_tier) + 1]
        keep &= people["tier"].isin(allowed)
    if criteria.min_risk is not None:
        keep &= people["risk"] >= criteria.min_risk
    if criteria.localities:
        keep &= people["locality"].isin(criteria.localities)
    if criteria.exclude_care_home:
        keep &= people["care_home_resident"] == 0
    if criteria.not_referred_months:
        recent = criteria.not_referred_months * DAYS_PER_MONTH
        days = people["days_since_social_prescribing_referral"]
        keep &= (days > recent) | (days >= DAYS_SINCE_CAP)
    if criteria.exclude_mental_health_care:
        in_care = (people["mental_health_crisis_contacts_90d"] > 0) | (
            people["mental_health_contacts_90d"] > 0
        )
        keep &= ~in_care
    applies = drivers(people, criteria.frequent_gp_contacts)[list(criteria.drivers)]
    keep &= applies.any(axis=1)
    chosen = people[keep].sort_values("risk", ascending=False, kind="stable").copy()
    chosen["matched"] = [
        "; ".join(
            [
                *(_driver_sentence(d, person) for d in criteria.drivers if applies.at[i, d]),
                _tier_sentence(person),
            ]
        )
        for i, person in chosen.iterrows()
    ]
    return chosen


def _tier_sentence(person: pd.Series) -> str:
    tier = f"{person['tier']} tier, " if person["tier"] else ""
    return f"{tier}risk {100 * person['risk']:.0f}%"
