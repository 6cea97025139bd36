"""features.exposure on a hand-built extract: help days inside the horizon, open episodes,
the code filter, two kinds, help running on the as-of date, and bad rules refused."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from pydantic import ValidationError

from riskstrat.common.settings import SettingsError
from riskstrat.contract.tables import ContractTables
from riskstrat.features.exposure import ExposureRule, exposure, help_started

AS_OF = date(2024, 1, 1)
HORIZON = 365
PLAN, REFERRAL = "reablement_plan", "social_prescribing_referral"


def day(offset: int) -> date:
    return AS_OF + timedelta(days=offset)


# (patient, kind, code, first day, last day or None) relative to AS_OF
HELP = [
    ("p0", PLAN, "risk_list", -10, 19),  # began before the as-of date: running, 20 days in
    ("p1", PLAN, "risk_list", 360, 400),  # runs past the horizon's end: 5 days in
    ("p2", REFERRAL, "risk_list", 100, None),  # open: open_days
    ("p3", REFERRAL, "gp", 30, None),  # not the list's: another code
    ("p4", PLAN, "risk_list", 0, 9),  # two kinds; starts on the as-of date: not yet running
    ("p4", REFERRAL, "risk_list", 5, None),
    ("p5", PLAN, "risk_list", -100, -1),  # ended the day before: untouched
    ("p6", PLAN, "risk_list", HORIZON, HORIZON + 30),  # starts after the horizon: untouched
    ("p7", PLAN, "risk_list", -5, 500),  # two kinds over the whole horizon: capped at it
    ("p7", REFERRAL, "risk_list", -5, 500),
]


@pytest.fixture(scope="module")
def sources() -> ContractTables:
    ids = sorted({pid for pid, *_ in HELP})
    patients = pd.DataFrame(
        {
            "patient_id": ids,
            "birth_month": date(1950, 1, 1),
            "sex": "F",
            "practice_id": "Z1",
            "deprivation_decile": pd.array([5] * len(ids), dtype="Int8"),
            "ethnicity_group": "White",
            "registration_start": date(2000, 1, 1),
            "registration_end": None,
            "death_date": None,
        }
    )
    events = pd.DataFrame(
        {
            "patient_id": [pid for pid, *_ in HELP],
            "kind": [kind for _, kind, *_ in HELP],
            "start": [day(first) for *_, first, _ in HELP],
            "end": [None if last is None else day(last) for *_, last in HELP],
            "code_system": "riskstrat",
            "code": [code for _, _, code, *_ in HELP],
            "value": None,
            "cost": None,
        }
    )
    practices = pd.DataFrame(
        {"practice_id": ["Z1"], "practice_name": ["One"], "gp_cluster": ["C"], "locality": ["N"]}
    )
    return ContractTables.from_frames(patients, events, practices)


def _row(frame: pd.DataFrame, pid: str) -> dict:
    return frame.loc[(pid, AS_OF)].to_dict()


def test_days_inside_the_horizon_per_kind_and_running(sources: ContractTables) -> None:
    found = exposure(sources, [AS_OF], HORIZON, ExposureRule())
    assert list(found.columns) == [
        f"days_{PLAN}",
        f"days_{REFERRAL}",
        "help_days",
        "first_help",
        "running",
    ]
    assert sorted(found.index.get_level_values("patient_id")) == ["p0", "p1", "p2", "p4", "p7"]
    expected = {
        "p0": (20.0, 0.0, 20.0, AS_OF, True),
        "p1": (5.0, 0.0, 5.0, day(360), False),
        "p2": (0.0, 182.0, 182.0, day(100), False),
        "p4": (10.0, 182.0, 192.0, AS_OF, False),
        "p7": (365.0, 365.0, 365.0, AS_OF, True),
    }
    for pid, (plan, referral, total, first, running) in expected.items():
        row = _row(found, pid)
        assert (
            row[f"days_{PLAN}"],
            row[f"days_{REFERRAL}"],
            row["help_days"],
            row["first_help"],
            row["running"],
        ) == (plan, referral, total, pd.Timestamp(first), running), pid


def test_open_days_and_any_code(sources: ContractTables) -> None:
    rule = ExposureRule(codes=(), open_days=30)
    found = exposure(sources, [AS_OF], HORIZON, rule)
    assert _row(found, "p2")[f"days_{REFERRAL}"] == 30.0
    assert _row(found, "p3")[f"days_{REFERRAL}"] == 30.0  # the other code counts now
    assert _row(found, "p3")["first_help"] == pd.Timestamp(day(30))


def test_one_kind_only(sources: ContractTables) -> None:
    found = exposure(sources, [AS_OF], HORIZON, ExposureRule(kinds=(REFERRAL,)))
    assert list(found.columns) == [f"days_{REFERRAL}", "help_days", "first_help", "running"]
    assert sorted(found.index.get_level_values("patient_id")) == ["p2", "p4", "p7"]
    assert _row(found, "p4")["help_days"] == 182.0


def test_a_later_as_of_date_sees_what_is_running_then(sources: ContractTables) -> None:
    later = day(6)
    found = exposure(sources, [AS_OF, later], HORIZON, ExposureRule())
    assert found.loc[("p4", later), "running"]  # both episodes began before day 6
    assert found.loc[("p4", later), f"days_{PLAN}"] == 4.0  # days 6 to 9
    assert not found.loc[("p4", AS_OF), "running"]


def test_help_started_in_a_window_by_the_rule(sources: ContractTables) -> None:
    """Episodes whose first day is in the window, by the same rule: not those running into
    it (p0, p7), nor another code unless the rule takes any code (p3)."""
    started = help_started(sources, AS_OF, day(31), ExposureRule())
    assert list(started.itertuples(index=False, name=None)) == [
        ("p4", PLAN, AS_OF),
        ("p4", REFERRAL, day(5)),
    ]
    any_code = help_started(sources, AS_OF, day(31), ExposureRule(codes=(), kinds=(REFERRAL,)))
    assert list(any_code["patient_id"]) == ["p3", "p4"]
    assert help_started(sources, day(1), day(5), ExposureRule()).empty


def test_nobody_touched_gives_an_empty_typed_frame(sources: ContractTables) -> None:
    found = exposure(sources, [day(2000)], HORIZON, ExposureRule())
    assert found.empty
    assert found.index.names == ["patient_id", "as_of"]
    assert found["running"].dtype == bool


def test_an_unknown_kind_is_refused_by_name(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="home_visit"):
        ExposureRule(kinds=("home_visit",))
    settings = tmp_path / "settings.toml"
    settings.write_text('[exposure]\nkinds = ["reablement_plan", "home_visit"]\n')
    with pytest.raises(SettingsError, match=r"settings\.toml.*home_visit"):
        ExposureRule.from_toml(settings)


def test_settings_file_without_the_table_gives_the_defaults(tmp_path: Path) -> None:
    settings = tmp_path / "settings.toml"
    settings.write_text("[weekly]\nexplain_share = 0.1\n")
    rule = ExposureRule.from_toml(settings)
    assert rule == ExposureRule()
    assert rule.describe() == (
        "reablement_plan, social_prescribing_referral with code risk_list (open episodes: 182 days)"
    )
