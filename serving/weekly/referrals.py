"""The social prescribing filter: listed people whose risk a voluntary group could help with.

It reads a week's ``people.parquet`` (see ``serving.weekly``) and keeps adults at the chosen
tier or risk for whom at least one *driver* applies (isolation, low mood or anxiety, frequent
GP contact, a recent bereavement), leaving out care-home residents, people referred recently
and people under crisis or secondary mental-health care. Each match says why it matched.
The same criteria serve the command line, the API and the web page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import fields
from pathlib import Path
from typing import Literal

import pandas as pd
from pydantic import Field, TypeAdapter, ValidationInfo, model_validator

from riskstrat.common.months import DAYS_PER_MONTH
from riskstrat.common.settings import (
    Integer,
    SettingsError,
    load_table,
    settings_model,
    validate,
    validate_json,
)
from riskstrat.features.catalogue import DAYS_SINCE_CAP
from riskstrat.models.tiers import HIGH, LISTED_TIERS, ListedTier
from riskstrat.serving.weekly.config import WeeklyConfig

TIERS = LISTED_TIERS  # most to least at risk: min_tier keeps a prefix
DRIVERS: dict[str, str] = {
    "isolation": "isolation (recorded as living alone)",
    "low_mood": "low mood or anxiety recorded",
    "frequent_gp": "frequent GP contact",
    "bereavement": "bereavement recorded in the last 12 months",
}
TABLE = "referrals"
# The people.parquet column saying who had frequent GP contact, by the week's setting
# (``WeeklyConfig.frequent_gp_contacts``): the pathways and every referral search read it.
FREQUENT_GP = "frequent_gp_contact"
# The features the filter reads (with ``FREQUENT_GP``), besides the list's own columns.
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


DRIVER_COLUMNS: dict[str, tuple[str, ...]] = {
    "isolation": ("lives_alone_coded",),
    "low_mood": ("has_depression", "has_anxiety"),
    "frequent_gp": ("gp_contacts_365d",),
    "bereavement": ("bereavements_365d",),
}
"""The feature columns each driver reads (``drivers`` below)."""
EXCLUSION_COLUMNS: dict[str, tuple[str, ...]] = {
    "exclude_care_home": ("care_home_resident",),
    "not_referred_months": ("days_since_social_prescribing_referral",),
    "exclude_mental_health_care": (
        "mental_health_crisis_contacts_90d",
        "mental_health_contacts_90d",
    ),
}
"""The feature columns each exclusion reads (``select_referrals``)."""

Tier = ListedTier
Driver = Literal[tuple(DRIVERS)]
LISTS = ("drivers", "localities")  # text for these is a comma-separated list


@settings_model
class ReferralCriteria:
    """Who the social prescribing view selects (``[referrals]``); validated when built.

    Every source (a TOML table, ``--set FIELD=VALUE``, the API's JSON, the web form) goes
    through this model. From text (all but JSON) text is accepted for every field, lists as
    comma-separated text, booleans as true/false, and an empty value for ``min_tier`` or
    ``min_risk`` as "any"; JSON (``from_json``) is typed as ``json_schema`` says.
    """

    min_tier: Tier | None = HIGH  # this tier or higher; None: listed or not
    min_risk: float | None = Field(None, ge=0, le=1)  # a probability
    drivers: tuple[Driver, ...] = Field(tuple(DRIVERS), min_length=1)
    min_age: Integer = Field(18, ge=0, le=120)
    exclude_care_home: bool = True
    not_referred_months: Integer = Field(6, ge=0, le=24)  # the referral history kept
    exclude_mental_health_care: bool = True
    localities: tuple[str, ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_source(cls, values: object, info: ValidationInfo) -> object:
        if not isinstance(values, Mapping):
            return values
        read = _json_value if info.mode == "json" else _text_value
        return {name: read(name, raw) for name, raw in values.items()}

    @classmethod
    def from_mapping(cls, values: Mapping[str, object], source: str) -> ReferralCriteria:
        """Criteria from a form or command line (text); errors name ``source`` and field."""
        return validate(cls, values, source)

    @classmethod
    def from_json(cls, raw: str | bytes, source: str) -> ReferralCriteria:
        """Criteria from JSON (the API), typed strictly as ``json_schema``; errors name
        ``source`` and field."""
        return validate_json(cls, raw, source)

    @classmethod
    def json_schema(cls) -> dict:
        """The JSON the API takes (``from_json``): the fields, their types and ranges, no
        other key."""
        schema = TypeAdapter(cls).json_schema()
        schema["description"] = "who is selected; any field left out takes its default"
        return schema


def _json_value(name: str, raw: object) -> object:
    """JSON as typed: only an array becomes the tuple a list field holds (parsed JSON reaches
    the fields as Python lists, which strict validation would refuse)."""
    return tuple(raw) if name in LISTS and isinstance(raw, list) else raw


def _text_value(name: str, raw: object) -> object:
    """Text as the field's value: stripped, comma lists split, empty optional values None."""
    text = raw.strip() if isinstance(raw, str) else raw
    if name in LISTS:
        items = text.split(",") if isinstance(text, str) else text
        if not isinstance(items, list | tuple):
            return items
        stripped = (i.strip() if isinstance(i, str) else i for i in items)
        return tuple(i for i in stripped if i != "")
    if name in ("min_tier", "min_risk") and text == "":
        return None
    return text


def criteria_with(
    base: ReferralCriteria, changes: Iterable[str], localities: Iterable[str] | None = ()
) -> ReferralCriteria:
    """``base`` with ``FIELD=VALUE`` changes (``--set``) and localities (``--locality``).

    Errors name the command line and the field.
    """
    values: dict[str, object] = {}
    for item in changes:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise SettingsError("command line", f"--set {item!r}: use FIELD=VALUE")
        values[name.strip()] = value
    if localities:
        values["localities"] = tuple(localities)
    current = {f.name: getattr(base, f.name) for f in fields(ReferralCriteria)}
    return validate(ReferralCriteria, current | values, "command line")


def load_criteria(path: Path) -> ReferralCriteria:
    """Criteria from the ``[referrals]`` table of a TOML file."""
    return load_table(path, TABLE, ReferralCriteria)


def frequent_gp(people: pd.DataFrame, config: WeeklyConfig) -> pd.Series:
    """The ``FREQUENT_GP`` column: at least ``config.frequent_gp_contacts`` GP contacts in
    the last 12 months (the weekly run writes it with the week's people)."""
    return (people["gp_contacts_365d"] >= config.frequent_gp_contacts).rename(FREQUENT_GP)


def drivers(people: pd.DataFrame) -> pd.DataFrame:
    """One boolean column per driver (also used by the pathway rules)."""
    return pd.DataFrame(
        {
            "isolation": people["lives_alone_coded"] > 0,
            "low_mood": (people["has_depression"] > 0) | (people["has_anxiety"] > 0),
            "frequent_gp": people[FREQUENT_GP].astype(bool),
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
    missing = [c for c in (*COLUMNS, FREQUENT_GP) if c not in people.columns]
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
    applies = drivers(people)[list(criteria.drivers)]
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


def absent_inputs(criteria: ReferralCriteria, absent: Mapping[str, tuple[str, ...]]) -> list[str]:
    """What the ``criteria`` cannot see in a week whose ``absent`` features (with their
    missing event kinds, ``WeekStore.absent``) hold defaults: one sentence per driver or
    exclusion that reads one, so a list is not read as "nobody is isolated"."""
    used = {f"driver {d}": DRIVER_COLUMNS[d] for d in criteria.drivers}
    used |= {
        f"exclusion {name}": columns
        for name, columns in EXCLUSION_COLUMNS.items()
        if getattr(criteria, name)
    }
    sentences = []
    for rule, columns in used.items():
        lacking = sorted({k for c in columns for k in absent.get(c, ())})
        if lacking:
            sentences.append(
                f"{rule} cannot apply: the week's data hold no {' or '.join(lacking)} events "
                f"({', '.join(c for c in columns if c in absent)})"
            )
    return sentences
