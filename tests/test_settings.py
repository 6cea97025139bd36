"""Settings files: one loader, one-line errors naming file, table and field; one referral model."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import tomli_w

from riskstrat.common.settings import SettingsError
from riskstrat.features.labels import Outcome
from riskstrat.serving.web.filters import (
    REFERRAL_LABELS,
    BadQueryError,
    parse_referral_query,
    referral_fields,
    referral_items,
)
from riskstrat.serving.weekly.config import WeeklyConfig
from riskstrat.serving.weekly.pathways import CONDITIONS, DEFAULT_RULES, load_rules
from riskstrat.serving.weekly.referrals import ReferralCriteria, criteria_with, load_criteria
from riskstrat.training.config import LightGBMParams, TrainConfig

Loader = Callable[[Path], object]
CASES = [
    # (loader, file body, the message after "FILE: ")
    (
        TrainConfig.from_toml,
        "[train.lightgbm]\nnum_leavs = 15\n",
        "[train.lightgbm] num_leavs: unknown setting (known: learning_rate, num_leaves, ",
    ),
    (
        TrainConfig.from_toml,
        "[train.lightgbm]\nfeature_fraction = 1.5\n",
        "[train.lightgbm] feature_fraction: must be more than 0 and at most 1 (got 1.5)",
    ),
    (TrainConfig.from_toml, "[train]\nseeds = 1\n", "[train] seeds: unknown setting (known: "),
    (
        TrainConfig.from_toml,
        "[train]\nseed = 1.5\n",
        "[train] seed: must be a whole number (got 1.5)",
    ),
    (
        TrainConfig.from_toml,
        "[train]\ntest_as_of = 'soon'\n",
        "[train] test_as_of: must be a date like 2025-01-01 (got 'soon')",
    ),
    (
        TrainConfig.from_toml,
        "[train.outcome]\nhorizon_days = 0\n",
        "[train.outcome] horizon_days: must be between 1 and 1095 (got 0)",
    ),
    (
        TrainConfig.from_toml,
        "[train.outcome]\nhorizon = 90\n",
        "[train.outcome] horizon: unknown setting (known: horizon_days, include_death, admissions)",
    ),
    (
        TrainConfig.from_toml,
        "[train.tiers]\nhigh_share = 1.5\n",
        "[train.tiers] high_share: must be between 0 and 1 (got 1.5)",
    ),
    (
        WeeklyConfig.from_toml,
        "[weekly]\nexplain_share = 1.5\n",
        "[weekly] explain_share: must be between 0 and 1 (got 1.5)",
    ),
    (
        WeeklyConfig.from_toml,
        "[weekly]\nhigh_share = 0.1\n",
        "[weekly] high_share: unknown setting (known: ",
    ),
    (
        WeeklyConfig.from_toml,
        "[weekly]\nreasons_kept = true\n",
        "[weekly] reasons_kept: must be a whole number (got True)",
    ),
    (WeeklyConfig.from_toml, "[weekly]\nhigh = 0.1\n", "[weekly] high: unknown setting (known: "),
    (
        load_criteria,
        "[referrals]\nmin_age = 130\n",
        "[referrals] min_age: must be between 0 and 120 (got 130)",
    ),
    (
        load_criteria,
        "[referrals]\nmin_tier = 'medium'\n",
        "[referrals] min_tier: must be one of 'very high', 'high' or 'rising' (got 'medium')",
    ),
    (load_criteria, "[referrals]\nage = 18\n", "[referrals] age: unknown setting (known: "),
    (
        load_rules,
        '[[rule]]\nname = "a"\npathway = "none"\n[[rule]]\nname = "b"\npathway = "none"\n'
        "max_age = 'old'\n",
        "[[rule]] 2 ('b') max_age: must be a number (got 'old')",
    ),
    (
        load_rules,
        '[[rule]]\nname = "a"\npathway = "none"\nflag_any = ["frailty"]\n',
        "[[rule]] 1 ('a') flag_any: unknown setting (known: name, pathway, ",
    ),
]


@pytest.mark.parametrize(("load", "body", "message"), CASES)
def test_a_wrong_value_or_unknown_key_names_file_table_and_field(
    tmp_path: Path, load: Loader, body: str, message: str
) -> None:
    path = tmp_path / "settings.toml"
    path.write_text(body)
    with pytest.raises(SettingsError) as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: {message}")
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("load", [TrainConfig.from_toml, WeeklyConfig.from_toml, load_criteria])
def test_unreadable_files_and_bad_toml_name_the_file(tmp_path: Path, load: Loader) -> None:
    path = tmp_path / "settings.toml"
    with pytest.raises(SettingsError, match="cannot read the file") as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ")
    path.write_text("[weekly\n")
    with pytest.raises(SettingsError, match="not valid TOML") as caught:
        load(path)
    assert str(caught.value).startswith(f"{path}: ")


def test_rules_that_cross_fields_name_the_table(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[train]\ntrain_as_of = [2024-06-01]\ntest_as_of = 2025-01-01\n")
    with pytest.raises(SettingsError, match=r"^.*settings\.toml: \[train\] training labels of"):
        TrainConfig.from_toml(path)
    path.write_text("[train.tiers]\nvery_high_share = 0.3\nhigh_share = 0.3\n")
    with pytest.raises(
        SettingsError, match=r"\[train\] tiers: .*must stay under half the population"
    ):
        TrainConfig.from_toml(path)


@pytest.mark.slow
def test_riskstrat_train_refuses_an_unknown_lightgbm_key_in_one_line(tmp_path: Path) -> None:
    path = tmp_path / "settings.toml"
    path.write_text("[train.lightgbm]\nnum_leavs = 15\n")
    command = [str(Path(sys.executable).with_name("riskstrat")), "train", "--config", str(path)]
    command += ["--data", str(tmp_path), "--workdir", str(tmp_path / "work")]
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    output = done.stdout + done.stderr
    assert done.returncode != 0
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if "num_leavs" in line]
    assert len(lines) == 1 and f"{path}: [train.lightgbm] num_leavs: unknown setting" in lines[0]


@pytest.mark.parametrize(
    ("model", "table"),
    [
        (TrainConfig, "train"),
        (LightGBMParams, "train.lightgbm"),
        (Outcome, "train.outcome"),
        (WeeklyConfig, "weekly"),
        (ReferralCriteria, "referrals"),
    ],
)
def test_defaults_round_trip_through_their_table(tmp_path: Path, model: type, table: str) -> None:
    values = _without_none(dataclasses.asdict(model()))
    for part in reversed(table.split(".")):
        values = {part: values}
    path = tmp_path / "settings.toml"
    path.write_text(tomli_w.dumps(values))
    loaded = {
        TrainConfig: TrainConfig.from_toml,
        WeeklyConfig: WeeklyConfig.from_toml,
        ReferralCriteria: load_criteria,
    }
    if model in loaded:
        assert loaded[model](path) == model()
    else:
        assert getattr(TrainConfig.from_toml(path), table.split(".")[1]) == model()


def _without_none(values: dict) -> dict:
    """``values`` without unset settings, in sub-tables too (TOML has no null)."""
    return {
        k: _without_none(v) if isinstance(v, dict) else v
        for k, v in values.items()
        if v is not None
    }


def test_the_pathway_rules_round_trip(tmp_path: Path) -> None:
    rules = load_rules()
    entries = [
        {"name": r.name, "pathway": r.pathway}
        | {k: list(v) if isinstance(v, tuple) else v for k, v in r.conditions}
        for r in rules.rules
    ]
    path = tmp_path / "pathways.toml"
    path.write_text(tomli_w.dumps({"rule": entries}))
    assert load_rules(path).rules == rules.rules
    assert {c for r in rules.rules for c, _ in r.conditions} <= set(CONDITIONS)
    assert DEFAULT_RULES.name == "pathways.toml"


def test_the_weekly_manifest_keeps_its_settings() -> None:
    assert dataclasses.asdict(WeeklyConfig()) == {
        "explain_share": 0.10,
        "reasons_kept": 10,
        "recent_discharge_days": 30,
        "frailty_index_threshold": 0.25,
        "frequent_gp_contacts": 12,
        "offers": {
            "team": "locality",
            "capacity": {},
            "lottery": False,
            "lottery_band": 0.1,
            "lottery_seed": None,
        },
    }


def test_settings_are_frozen_and_checked_again_when_replaced() -> None:
    config = WeeklyConfig()
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.explain_share = 0.3  # type: ignore[misc]
    with pytest.raises(ValueError, match="min_age"):
        dataclasses.replace(ReferralCriteria(), min_age=200)
    with pytest.raises(ValueError, match="num_leavs"):
        LightGBMParams(num_leavs=3)  # type: ignore[call-arg]


EXPECTED = ReferralCriteria(
    min_tier="rising",
    min_risk=0.2,
    drivers=("isolation", "low_mood"),
    min_age=65,
    exclude_care_home=False,
    not_referred_months=3,
    exclude_mental_health_care=True,
    localities=("North",),
)


def test_referral_criteria_parse_alike_from_toml_command_line_api_and_form(
    tmp_path: Path,
) -> None:
    path = tmp_path / "criteria.toml"
    path.write_text(
        '[referrals]\nmin_tier = "rising"\nmin_risk = 0.2\ndrivers = ["isolation", "low_mood"]\n'
        "min_age = 65\nexclude_care_home = false\n"
        'not_referred_months = 3\nlocalities = ["North"]\n'
    )
    command_line = criteria_with(
        ReferralCriteria(),
        [
            "min_tier=rising",
            "min_risk=0.2",
            "drivers=isolation,low_mood",
            "min_age=65",
            "exclude_care_home=false",
            "not_referred_months=3",
        ],
        ["North"],
    )
    api = ReferralCriteria.from_mapping(
        {
            "min_tier": "rising",
            "min_risk": 0.2,
            "drivers": ["isolation", "low_mood"],
            "min_age": 65,
            "exclude_care_home": False,
            "not_referred_months": 3,
            "localities": ["North"],
        },
        "criteria",
    )
    form, page = parse_referral_query(
        [
            ("run", "1"),
            ("min_tier", "rising"),
            ("min_risk", "20"),
            ("drivers", "isolation"),
            ("drivers", "low_mood"),
            ("min_age", "65"),
            ("not_referred_months", "3"),
            ("exclude_mental_health_care", "true"),
            ("localities", "North"),
        ]
    )
    assert [load_criteria(path), command_line, api, form] == [EXPECTED] * 4
    assert page == 1
    again, _ = parse_referral_query(referral_items(EXPECTED, ("North", "South"), None))
    assert again == EXPECTED


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda: criteria_with(ReferralCriteria(), ["min_age=old"]),
            "command line: min_age: must be a whole number (got 'old')",
        ),
        (
            lambda: criteria_with(ReferralCriteria(), ["min_age"]),
            "command line: --set 'min_age': use FIELD=VALUE",
        ),
        (
            lambda: criteria_with(ReferralCriteria(), ["colour=red"]),
            "command line: colour: unknown setting (known: min_tier, ",
        ),
        (
            lambda: ReferralCriteria.from_mapping({"drivers": ["isolation", 3]}, "criteria"),
            "criteria: drivers: must be one of 'isolation', ",
        ),
    ],
)
def test_referral_errors_name_the_source_and_field(build: Callable, message: str) -> None:
    with pytest.raises(SettingsError) as caught:
        build()
    assert str(caught.value).startswith(message)


def test_the_form_reports_the_field_and_has_one_control_per_criterion() -> None:
    with pytest.raises(BadQueryError) as caught:
        parse_referral_query([("run", "1"), ("drivers", "isolation"), ("min_age", "x")])
    assert (caught.value.param, str(caught.value)) == (
        "min_age",
        "min_age: must be a whole number (got 'x')",
    )
    names = [f.name for f in dataclasses.fields(ReferralCriteria)]
    controls = referral_fields(ReferralCriteria())
    assert [c.name for c in controls] == names
    assert set(REFERRAL_LABELS) == set(names)
    assert {c.name: c.kind for c in controls} == {
        "min_tier": "tier",
        "min_risk": "percent",
        "drivers": "drivers",
        "min_age": "integer",
        "exclude_care_home": "boolean",
        "not_referred_months": "integer",
        "exclude_mental_health_care": "boolean",
        "localities": "localities",
    }
