"""Tiers, week-on-week comparison, flags, pathway rules and drift, on hand-made inputs."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_features import AS_OF, PRACTICES, _events, _patients, before

from riskstrat.contract.tables import ContractTables
from riskstrat.features.catalogue import FAMILIES, LIST_CONTEXT
from riskstrat.features.engine import build_features
from riskstrat.models.drift import DriftReference, Profile, shift
from riskstrat.models.tiers import TierPolicy
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.drift import drift_check
from riskstrat.serving.weekly.flags import flag_columns
from riskstrat.serving.weekly.pathways import DEFAULT_RULES, RulesError, load_rules
from riskstrat.serving.weekly.referrals import frequent_gp
from riskstrat.serving.weekly.tiers import left_the_list, week_status

POLICY = TierPolicy(very_high_share=0.1, high_share=0.2, rising_share=0.2, rising_min_increase=0.05)
RISK = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05])


def test_tier_cutoffs_come_from_the_reference_population_and_rising_sits_below_them() -> None:
    tiers = POLICY.cut(RISK)
    change = np.array([0.5, 0.0, 0.3, np.nan, 0.1, 0.04, 0.2, np.nan, 0.06, 0.3])
    tiers = tiers.assign(RISK, change)
    # top 10% very high, next 20% high; of the rest, the two largest rises >= 0.05
    assert list(tiers) == [
        "very high",
        "high",
        "high",
        "",
        "",
        "",
        "rising",
        "",
        "",
        "rising",
    ]


def test_rising_needs_the_minimum_increase_and_a_last_week() -> None:
    risk = np.linspace(0.5, 0.01, 10)
    change = np.array([np.nan] * 5 + [0.049, np.nan, 0.01, 0.0, -0.2])
    tiers = POLICY.cut(risk).assign(risk, change)
    assert "rising" not in tiers


def test_the_same_risk_gets_the_same_tier_whatever_population_it_is_scored_in() -> None:
    tiers = POLICY.cut(RISK)
    alone = [tiers.assign(np.array([r]))[0] for r in RISK]
    assert alone == list(tiers.assign(RISK))
    # a week whose whole population is riskier lists more people: cut-offs are risks, not ranks
    riskier = np.minimum(RISK + 0.15, 1.0)
    assert (tiers.assign(riskier) != "").sum() > (tiers.assign(RISK) != "").sum()


def test_tier_policy_is_refused_when_the_tiers_cover_too_much() -> None:
    with pytest.raises(ValueError, match="under half the population"):
        TierPolicy(very_high_share=0.2, high_share=0.3, rising_share=0.1)


def test_week_status_and_who_left() -> None:
    now = pd.DataFrame(
        {"tier": ["very high", "high", "", "rising"], "risk": [0.9, 0.6, 0.2, 0.3]},
        index=["stays", "joins", "drops", "rises"],
    )
    before = pd.DataFrame(
        {"tier": ["high", "", "high", "", "very high"], "risk": [0.7, 0.1, 0.5, 0.2, 0.8]},
        index=["stays", "joins", "drops", "rises", "moved_away"],
    ).assign(practice_id="P1", gp_cluster="C1", locality="North")
    assert list(week_status(now["tier"], before)) == ["stayed", "new", "", "new"]
    left = left_the_list(now, before)
    assert sorted(left.index) == ["drops", "moved_away"]
    assert left.at["drops", "reason_left"] == "risk fell below the list"
    assert left.at["drops", "risk_now"] == 0.2
    assert left.at["moved_away", "reason_left"].startswith("no longer registered")
    assert np.isnan(left.at["moved_away", "risk_now"])


def test_first_week_lists_everyone_as_new() -> None:
    empty = pd.DataFrame(columns=["risk", "tier"])
    tier = pd.Series(["high", ""], index=["a", "b"])
    assert list(week_status(tier, empty)) == ["new", ""]
    assert left_the_list(pd.DataFrame({"tier": tier, "risk": [0.5, 0.1]}), empty).empty


def _person(**changes: object) -> dict:
    base = {
        "tier": "high",
        "age": 70,
        "risk": 0.3,
        "lives_alone_coded": 0.0,
        "has_depression": 0.0,
        "has_anxiety": 0.0,
        "gp_contacts_365d": 1.0,
        "bereavements_365d": 0.0,
        **{f"flag_{f}": False for f in ("care_home", "frailty", "lives_alone")},
        **{f"flag_{f}": False for f in ("mental_health", "social_care_package")},
        "flag_recent_discharge": False,
    }
    return base | changes


def test_default_rules_first_match_wins() -> None:
    rules = load_rules()
    people = pd.DataFrame(
        [
            _person(flag_care_home=True, flag_recent_discharge=True),
            _person(flag_recent_discharge=True),
            _person(lives_alone_coded=1.0),
            _person(lives_alone_coded=1.0, age=16),
            _person(),
            _person(tier=""),
        ]
    )
    chosen = rules.apply(people.join(frequent_gp(people, WeeklyConfig())))
    assert list(chosen["pathway"]) == [
        "care coordination",
        "integrated reablement plan",
        "social prescribing",
        "care coordination",
        "care coordination",
        "none",
    ]
    assert chosen["pathway_rule"].iloc[0] == "care-home resident"
    assert chosen["pathway_rule"].iloc[4] == "listed, no specific need recorded"


def test_default_rules_file_is_the_one_documented() -> None:
    assert DEFAULT_RULES.name == "pathways.toml"
    assert len(load_rules().digest) == 64


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (
            '[[rule]]\nname = "a"\npathway = "hospital at home"\n',
            "[[rule]] 1 ('a') pathway: must be",
        ),
        ('[[rule]]\npathway = "none"\n', "[[rule]] 1 name: is required"),
        (
            '[[rule]]\nname = "a"\npathway = "none"\nflags_any = ["lonely"]\n',
            "[[rule]] 1 ('a') flags_any: must be one of 'care_home', 'frailty', 'lives_alone', "
            "'mental_health', 'social_care_package' or 'recent_discharge' (got 'lonely')",
        ),
        (
            '[[rule]]\nname = "a"\npathway = "none"\ntiers = "high"\n',
            "[[rule]] 1 ('a') tiers: must be a list (got 'high')",
        ),
        (
            '[[rule]]\nname = "a"\npathway = "none"\nmin_age = "old"\n',
            "[[rule]] 1 ('a') min_age: must be a number (got 'old')",
        ),
        (
            '[[rule]]\nname = "a"\npathway = "none"\nmin_risk = 5\n',
            "[[rule]] 1 ('a') min_risk: must be between 0 and 1 (got 5)",
        ),
        (
            '[[rule]]\nname = "a"\npathway = "none"\nif = 1\n',
            "[[rule]] 1 ('a') if: unknown setting (known: name, pathway, tiers",
        ),
        ('[rules]\nname = "a"\n', "rules: unknown setting (known: rule)"),
        ("", "rule: is required"),
        ("[[rule]\n", "not valid TOML"),
    ],
)
def test_bad_rules_files_say_where(tmp_path, body: str, message: str) -> None:
    path = tmp_path / "pathways.toml"
    path.write_text(body)
    with pytest.raises(RulesError) as caught:
        load_rules(path)
    assert str(caught.value).startswith(str(path))
    assert message in str(caught.value)


def test_weekly_settings_are_checked(tmp_path) -> None:
    path = tmp_path / "weekly.toml"
    path.write_text("[weekly]\nexplain_share = 1.5\n")
    with pytest.raises(ValueError, match=r"\[weekly\] explain_share: must be between 0 and 1"):
        WeeklyConfig.from_toml(path)
    path.write_text("[weekly]\nhigh_share = 0.3\n")  # tiers are the model's: [train.tiers]
    with pytest.raises(ValueError, match=r"\[weekly\] high_share: unknown setting"):
        WeeklyConfig.from_toml(path)
    path.write_text("[weekly]\nexplain_share = 0.2\n")
    assert WeeklyConfig.from_toml(path).explain_share == 0.2


def test_psi_is_zero_for_the_same_population_and_large_for_a_shift() -> None:
    rng = np.random.default_rng(3)
    reference = rng.normal(size=20_000)
    profile = Profile.of(reference)
    assert profile.psi(rng.normal(size=20_000)) < 0.01
    assert shift(profile.psi(rng.normal(loc=1.0, size=20_000))) == "major shift"
    counts = Profile.of(np.array([0, 0, 0, 1, 1, 2, 5] * 100))
    assert counts.psi(np.array([0, 0, 0, 1, 1, 2, 5] * 10)) == pytest.approx(0.0)


def test_drift_check_verdicts() -> None:
    rng = np.random.default_rng(4)
    training = pd.DataFrame({"age": rng.normal(60, 15, 5000)})
    score = rng.beta(1, 12, 5000)
    reference = DriftReference(
        score=Profile.of(score), features={"age": Profile.of(training["age"].to_numpy())}
    )
    same = drift_check(reference, training, score)
    assert not same["retrain_suggested"] and "close enough" in same["verdict"]
    older = drift_check(reference, training + 20, score)
    assert older["retrain_suggested"]
    assert "Major shift in age" in older["verdict"]
    assert not drift_check(None, training, score)["retrain_suggested"]


HOSTILE = ['=HYPERLINK("http://x","click")', "@SUM(1+1)", "+1+1", "-2+3", "North"]


def test_no_text_from_data_becomes_a_formula_in_the_weekly_spreadsheets(tmp_path) -> None:
    from datetime import datetime

    import openpyxl

    from riskstrat.common.spreadsheet import write_frame
    from riskstrat.serving.weekly.outputs import write_workbook

    table = pd.DataFrame({"Locality": HOSTILE, "Change (points)": [1.0, -2.0, 0.5, -0.1, 3.0]})
    write_workbook({"list": table}, tmp_path / "list.xlsx", datetime(2026, 10, 26))
    sheet = openpyxl.load_workbook(tmp_path / "list.xlsx")["list"]
    cells = [c for row in sheet.iter_rows() for c in row]
    assert not [c.coordinate for c in cells if c.data_type == "f"]
    assert [c.value for c in sheet["A"]][1:] == HOSTILE  # the text itself is kept as it was
    write_frame(table, tmp_path / "list.csv")
    written = pd.read_csv(tmp_path / "list.csv")
    assert list(written["Locality"]) == ["'" + v for v in HOSTILE[:4]] + ["North"]
    assert list(written["Change (points)"]) == [1.0, -2.0, 0.5, -0.1, 3.0]  # numbers untouched


def test_a_person_still_in_hospital_is_not_flagged_as_recently_discharged() -> None:
    rows = [
        ("a", "emergency_admission", before(6), None, "emergency", None),  # no discharge yet
        ("b", "emergency_admission", before(20), before(12), "emergency", 8.0),
    ]
    sources = ContractTables.from_frames(_patients(), _events(rows), PRACTICES)
    features = build_features(sources, [AS_OF], families=(*FAMILIES, LIST_CONTEXT))
    flags = flag_columns(features.droplevel("as_of"), WeeklyConfig())
    assert flags["flag_recent_discharge"].to_dict() == {"a": False, "b": True}
