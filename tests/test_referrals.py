"""The social prescribing filter on hand-made people: drivers, exclusions, scope, errors."""

from __future__ import annotations

import pandas as pd
import pytest

from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.pathways import load_rules
from riskstrat.serving.weekly.referrals import (
    ReferralCriteria,
    frequent_gp,
    load_criteria,
    select_referrals,
)

BASE = {
    "age": 50,
    "tier": "high",
    "risk": 0.2,
    "locality": "North",
    "care_home_resident": 0.0,
    "lives_alone_coded": 0.0,
    "has_depression": 0.0,
    "has_anxiety": 0.0,
    "gp_contacts_365d": 2.0,
    "bereavements_365d": 0.0,
    "days_since_social_prescribing_referral": 730.0,
    "mental_health_crisis_contacts_90d": 0.0,
    "mental_health_contacts_90d": 0.0,
}


def people(config: WeeklyConfig | None = None, **rows: dict) -> pd.DataFrame:
    """One row per keyword: the base person with the given changes, indexed by name, with
    frequent GP contact decided by ``config`` as the weekly run does."""
    frame = pd.DataFrame([{**BASE, **changes} for changes in rows.values()], index=list(rows))
    return frame.join(frequent_gp(frame, config or WeeklyConfig()))


def test_each_driver_selects_and_says_why() -> None:
    frame = people(
        alone={"lives_alone_coded": 1.0},
        low={"has_anxiety": 1.0},
        gp={"gp_contacts_365d": 15.0},
        bereaved={"bereavements_365d": 1.0},
        none={},
    )
    chosen = select_referrals(frame, ReferralCriteria())
    assert sorted(chosen.index) == ["alone", "bereaved", "gp", "low"]
    assert chosen.at["gp", "matched"] == "15 GP contacts in the last 12 months; high tier, risk 20%"
    assert chosen.at["alone", "matched"].startswith("isolation")


def test_exclusions() -> None:
    driven = {"lives_alone_coded": 1.0}
    frame = people(
        child={**driven, "age": 15},
        care_home={**driven, "care_home_resident": 1.0},
        referred={**driven, "days_since_social_prescribing_referral": 60.0},
        referred_long_ago={**driven, "days_since_social_prescribing_referral": 400.0},
        crisis={**driven, "mental_health_crisis_contacts_90d": 1.0},
        secondary_care={**driven, "mental_health_contacts_90d": 2.0},
        low_tier={**driven, "tier": "rising"},
        unlisted={**driven, "tier": ""},
        eligible=driven,
    )
    chosen = select_referrals(frame, ReferralCriteria())
    assert sorted(chosen.index) == ["eligible", "referred_long_ago"]
    relaxed = ReferralCriteria(
        min_tier="rising", exclude_care_home=False, exclude_mental_health_care=False
    )
    assert sorted(select_referrals(frame, relaxed).index) == [
        "care_home",
        "crisis",
        "eligible",
        "low_tier",
        "referred_long_ago",
        "secondary_care",
    ]


def test_never_referred_passes_the_longest_wait() -> None:
    frame = people(never={"lives_alone_coded": 1.0})
    assert list(select_referrals(frame, ReferralCriteria(not_referred_months=24)).index) == [
        "never"
    ]


def test_most_at_risk_first_and_min_risk() -> None:
    driven = {"bereavements_365d": 1.0}
    frame = people(a={**driven, "risk": 0.1}, b={**driven, "risk": 0.3}, c={**driven, "risk": 0.2})
    assert list(select_referrals(frame, ReferralCriteria()).index) == ["b", "c", "a"]
    assert list(select_referrals(frame, ReferralCriteria(min_risk=0.15)).index) == ["b", "c"]


def test_locality_narrows() -> None:
    driven = {"lives_alone_coded": 1.0}
    frame = people(n={**driven}, s={**driven, "locality": "South"})
    assert list(select_referrals(frame, ReferralCriteria(localities=("North",))).index) == ["n"]


def test_text_values_from_forms_and_command_lines() -> None:
    criteria = ReferralCriteria.from_mapping(
        {
            "min_tier": "",
            "min_risk": "0.05",
            "drivers": "isolation, bereavement",
            "exclude_care_home": "false",
            "not_referred_months": "12",
        },
        "form",
    )
    assert criteria == ReferralCriteria(
        min_tier=None,
        min_risk=0.05,
        drivers=("isolation", "bereavement"),
        exclude_care_home=False,
        not_referred_months=12,
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"min_tier": "medium"}, "min_tier: must be one of 'very high', 'high' or 'rising'"),
        ({"drivers": "isolation,boredom"}, "drivers: must be one of 'isolation'"),
        ({"drivers": ""}, "drivers: must not be empty"),
        ({"min_age": "adult"}, "min_age: must be a whole number (got 'adult')"),
        ({"min_age": 17.5}, "min_age: must be a whole number (got 17.5)"),
        ({"min_age": True}, "min_age: must be a whole number (got True)"),
        ({"exclude_care_home": "maybe"}, "exclude_care_home: must be true or false (got 'maybe')"),
        ({"not_referred_months": 36}, "not_referred_months: must be between 0 and 24 (got 36)"),
        ({"min_risk": "2"}, "min_risk: must be between 0 and 1 (got '2')"),
        ({"colour": "red"}, "colour: unknown setting"),
    ],
)
def test_bad_criteria_name_source_and_field(values: dict, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        ReferralCriteria.from_mapping(values, "criteria.toml [referrals]")
    assert str(caught.value).startswith("criteria.toml [referrals]: ")
    assert message in str(caught.value)


def test_criteria_file(tmp_path) -> None:
    path = tmp_path / "criteria.toml"
    path.write_text('[referrals]\nmin_tier = "very high"\ndrivers = ["low_mood"]\n')
    assert load_criteria(path) == ReferralCriteria(min_tier="very high", drivers=("low_mood",))
    path.write_text("[referrals\n")
    with pytest.raises(ValueError, match="not valid TOML"):
        load_criteria(path)


def test_missing_columns_are_named() -> None:
    with pytest.raises(ValueError, match=r"lacks column.*lives_alone_coded"):
        select_referrals(people(a={}).drop(columns="lives_alone_coded"), ReferralCriteria())


@pytest.mark.parametrize(("threshold", "frequent"), [(12, True), (16, False)])
def test_the_pathways_and_the_filter_count_frequent_gp_contact_alike(
    threshold: int, frequent: bool
) -> None:
    """One setting, ``[weekly] frequent_gp_contacts``, decides it for both."""
    config = WeeklyConfig(frequent_gp_contacts=threshold)
    frame = people(config, gp={"gp_contacts_365d": 15.0})
    flags = ("care_home", "frailty", "lives_alone", "mental_health", "social_care_package")
    frame = frame.assign(**{f"flag_{f}": False for f in (*flags, "recent_discharge")})
    chosen = select_referrals(frame, ReferralCriteria(drivers=("frequent_gp",)))
    pathway = load_rules().apply(frame).at["gp", "pathway"]
    assert (list(chosen.index), pathway) == (
        (["gp"], "social prescribing") if frequent else ([], "care coordination")
    )
