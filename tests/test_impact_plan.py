"""The analysis plan: refused by field when wrong, checked against the data, hashed; and the
eligible population decided from what was known at the baseline only."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from riskstrat.common.settings import SettingsError
from riskstrat.contract.tables import ContractTables
from riskstrat.features.engine import feature_specs
from riskstrat.impact.cohort import baseline_cohort
from riskstrat.impact.plan import PLANS, check_against, load_plan

LOCALITY_MODEL = PLANS / "integrated_locality_model.toml"
FEATURES = {s.name for s in feature_specs()}


def _edited(tmp_path: Path, old: str, new: str, source: Path = LOCALITY_MODEL) -> Path:
    text = source.read_text()
    assert old in text, old
    path = tmp_path / "plan.toml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize("plan", sorted(PLANS.glob("*.toml")), ids=lambda p: p.stem)
def test_the_built_in_plans_load(plan: Path) -> None:
    loaded = load_plan(plan)
    assert len(loaded.sha256) == 64


def test_the_hash_changes_with_any_edit(tmp_path: Path) -> None:
    edited = _edited(tmp_path, "minimum_effect = 0.10", "minimum_effect = 0.05")
    assert load_plan(edited).sha256 != load_plan(LOCALITY_MODEL).sha256


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        ('primary = "emergency_admissions"', 'primary = "admissions"', "[outcomes] primary"),
        ('require = ["age >= 65"]', 'require = ["age >= 65; import os"]', "[population] require"),
        ('require = ["age >= 65"]', 'require = ["__import__(1) > 0"]', "[population] require"),
        ("written = 2023-05-15", "written = 2024-05-15", "is after the baseline"),
        ('control = "not_yet_treated"', 'control = "everyone"', "[did] control"),
        ("caliper = 0.2", "caliper = -1", "[matched] caliper"),
        ("pre_months = 24", "pre_monhts = 24", "[did] pre_monhts: unknown setting"),
        ('level = "gp_cluster"', 'level = "ward"', "[units] level"),
    ],
)
def test_a_wrong_plan_is_refused_naming_the_field(
    tmp_path: Path, old: str, new: str, where: str
) -> None:
    with pytest.raises(SettingsError, match=r"plan\.toml: .*" + where.replace("[", r"\[")):
        load_plan(_edited(tmp_path, old, new))


def test_a_plan_without_a_design_is_refused(tmp_path: Path) -> None:
    text = LOCALITY_MODEL.read_text().split("[did]")[0]
    path = tmp_path / "plan.toml"
    path.write_text(text)
    with pytest.raises(SettingsError, match="names no design"):
        load_plan(path)


UNITS = pd.Series(
    ["Central Pilot", "North 1", "North 2", "Central 2", "Central 3", "South 1", "South 2"]
)


def test_units_dates_and_features_not_in_the_data_are_refused_by_name(tmp_path: Path) -> None:
    loaded = load_plan(LOCALITY_MODEL)
    check_against(loaded, UNITS, date(2021, 1, 1), date(2026, 10, 31), FEATURES)
    with pytest.raises(SettingsError, match=r"\[units\] start: units not in the data: North 1"):
        check_against(
            loaded, UNITS[UNITS != "North 1"], date(2021, 1, 1), date(2026, 10, 31), FEATURES
        )
    with pytest.raises(SettingsError, match=r"\[population\] baseline: 2023-07-01 is outside"):
        check_against(loaded, UNITS, date(2024, 1, 1), date(2026, 10, 31), FEATURES)
    with pytest.raises(SettingsError, match="features riskstrat does not compute: has_frailty"):
        check_against(
            loaded, UNITS, date(2021, 1, 1), date(2026, 10, 31), FEATURES - {"has_frailty"}
        )


def _as_known_at(data_dir: Path, baseline: date) -> ContractTables:
    """The tables as they stood on the baseline: nothing that started on or after it, open
    ends for episodes still running, no later deaths or deregistrations."""
    patients, events, practices = (
        pq.read_table(data_dir / f"{name}.parquet").to_pandas(date_as_object=False)
        for name in ("patients", "events", "practices")
    )
    cut = pd.Timestamp(baseline)
    for column in ("registration_end", "death_date"):
        patients[column] = patients[column].where(patients[column] < cut)
    patients = patients[patients["registration_start"] <= cut]
    events = events[events["start"] < cut].copy()
    events["end"] = events["end"].where(events["end"] < cut)
    return ContractTables.from_frames(patients, events, practices)


def test_eligibility_cannot_see_anything_after_the_baseline(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    plan = load_plan(LOCALITY_MODEL).plan
    full = baseline_cohort(ContractTables.from_dir(small_borough_dir), plan)
    known = baseline_cohort(_as_known_at(small_borough_dir, plan.population.baseline), plan)
    assert len(full.people) > 100
    pd.testing.assert_index_equal(full.people, known.people)
    pd.testing.assert_frame_equal(full.features, known.features)
    pd.testing.assert_series_equal(full.unit, known.unit)


def test_the_rule_is_applied_as_written(small_borough_dir: Path) -> None:
    plan = load_plan(LOCALITY_MODEL).plan
    cohort = baseline_cohort(ContractTables.from_dir(small_borough_dir), plan)
    f = cohort.features
    assert (f["age"] >= 65).all()
    assert ((f["has_frailty"] >= 1) | (f["emergency_admissions_365d"] >= 1)).all()
    assert cohort.go_live[cohort.unit == "South 2"].isna().all()
    assert (cohort.go_live[cohort.unit == "Central Pilot"] == pd.Timestamp("2023-07-01")).all()


def test_a_copy_of_the_data_with_later_outcomes_changed_gives_the_same_cohort(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    """Outcomes after the baseline (here: every admission after it doubled) cannot move
    anyone in or out of the population."""
    copy = tmp_path / "copy"
    shutil.copytree(small_borough_dir, copy)
    events = pq.read_table(copy / "events.parquet").to_pandas(date_as_object=False)
    later = events[
        (events["kind"] == "emergency_admission") & (events["start"] >= pd.Timestamp("2023-07-01"))
    ]
    doubled = pd.concat([events, later], ignore_index=True)
    plan = load_plan(LOCALITY_MODEL).plan
    a = baseline_cohort(ContractTables.from_dir(small_borough_dir), plan)
    b = baseline_cohort(
        ContractTables.from_frames(
            pq.read_table(copy / "patients.parquet").to_pandas(date_as_object=False),
            doubled,
            pq.read_table(copy / "practices.parquet").to_pandas(),
        ),
        plan,
    )
    pd.testing.assert_index_equal(a.people, b.people)
