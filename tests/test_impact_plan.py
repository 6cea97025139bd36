"""The analysis plan: refused by field when wrong, checked against the data, hashed; the
eligible population decided from what was known at the baseline only; and the built-in
plans state what the built-in borough's generator does (the world they evaluate)."""

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
from riskstrat.features.exposure import ExposureRule
from riskstrat.features.outcomes import OUTCOMES
from riskstrat.impact.cohort import baseline_cohort
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, Condition, check_against, load_plan
from riskstrat.sources.synthetic.borough import Borough
from riskstrat.sources.synthetic.config import Interventions, LocalityModel
from riskstrat.sources.synthetic.population import CLUSTERS

LOCALITY_MODEL, LIST_ACTIONS = (PLANS / name for name in BUILT_IN_PLANS)
FEATURES = {s.name for s in feature_specs()}
WORLD = Interventions()
"""The built-in borough's interventions, as the generator runs them by default."""


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


UNITS = pd.Series([cluster for _, cluster, *_ in CLUSTERS])


def caseload(model: LocalityModel) -> tuple[tuple[Condition, ...], tuple[Condition, ...]]:
    """The generator's caseload rule in the plan's terms: (every one of, at least one of)
    over riskstrat's features as of the baseline."""
    any_of = ((Condition("has_frailty", ">=", 1),) if model.frailty_coded else ()) + (
        (Condition("emergency_admissions_365d", ">=", model.prior_admissions),)
        if model.prior_admissions is not None
        else ()
    )
    return (Condition("age", ">=", model.min_age),), any_of


def test_the_built_in_plans_are_the_built_in_plans_folder() -> None:
    assert sorted(BUILT_IN_PLANS) == sorted(p.name for p in PLANS.glob("*.toml"))


def test_the_locality_plan_states_the_generators_roll_out_and_caseload(
    small_borough: Borough,
) -> None:
    plan, model = load_plan(LOCALITY_MODEL).plan, WORLD.locality_model
    # The generator's truth is kept under the intervention's name, outcome by outcome.
    truth = small_borough.effects
    assert set(truth["intervention"]) == {plan.plan.intervention}
    assert set(truth["outcome"]) == set(OUTCOMES) >= set(plan.outcomes.all)
    assert plan.units.level == "gp_cluster"
    assert plan.start_dates == model.go_live
    assert plan.population.baseline == model.baseline
    assert plan.population.conditions == caseload(model)
    pilot = min(model.go_live.values())
    assert plan.matched.treated_units == tuple(c for c, d in model.go_live.items() if d == pilot)
    assert plan.did.end is None  # to the end of the data, as the generator runs


def test_the_list_plan_states_the_generators_list_runs_and_help() -> None:
    plan, lists = load_plan(LIST_ACTIONS).plan, WORLD.list_actions
    assert plan.plan.intervention == "risk_list_actions"
    assert plan.rd.run == lists.first_run == plan.population.baseline
    assert plan.rd.cutoff == lists.cutoff
    assert plan.rd.follow_up_months == lists.follow_up_months <= lists.every_months
    assert plan.start_dates == dict.fromkeys(UNITS, lists.first_run)
    # Which help the list triggered: the one rule, as training and monitoring read it (that
    # it finds the generator's actions is checked on a borough in test_impact_run).
    assert plan.exposure == ExposureRule()


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
    plan, model = load_plan(LOCALITY_MODEL).plan, WORLD.locality_model
    cohort = baseline_cohort(ContractTables.from_dir(small_borough_dir), plan)
    f = cohort.features
    assert (f["age"] >= model.min_age).all()
    admitted = f["emergency_admissions_365d"] >= model.prior_admissions
    assert ((f["has_frailty"] >= 1) | admitted).all()
    never = sorted(set(UNITS) - set(model.go_live))
    assert never and cohort.unit.isin(never).any()
    assert cohort.go_live[cohort.unit.isin(never)].isna().all()
    live = cohort.unit.isin(model.go_live)
    expected = cohort.unit[live].map(model.go_live).map(pd.Timestamp)
    pd.testing.assert_series_equal(cohort.go_live[live], expected, check_names=False)


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


def _with_subgroups(tmp_path: Path, by: str) -> Path:
    return _edited(tmp_path, "[did]", f"[subgroups]\nby = {by}\n\n[did]")


def test_subgroups_name_features_bands_or_conditions(tmp_path: Path) -> None:
    plan = load_plan(_with_subgroups(tmp_path, '["has_frailty", "age_band", "age >= 85"]')).plan
    assert [str(s) for s in plan.subgroup_list] == ["has_frailty", "age_band", "age >= 85"]
    assert [s.feature for s in plan.subgroup_list] == ["has_frailty", "age", "age"]


@pytest.mark.parametrize(
    ("by", "message"),
    [
        ('["age >> 85"]', "condition 'age >> 85' must read 'feature op number'"),
        ('["Has Frailty"]', "condition 'Has Frailty' must read"),
        ('["has_frailty", "has_frailty"]', "named more than once: has_frailty"),
        ("[]", "must not be empty"),
        ('"has_frailty"', "must be a list"),
    ],
)
def test_a_wrong_subgroup_is_refused_naming_it(tmp_path: Path, by: str, message: str) -> None:
    with pytest.raises(SettingsError, match=r"plan\.toml: \[subgroups\] by: .*" + message):
        load_plan(_with_subgroups(tmp_path, by))


def test_a_subgroup_feature_riskstrat_does_not_compute_is_refused(tmp_path: Path) -> None:
    loaded = load_plan(_with_subgroups(tmp_path, '["has_frailty", "shoe_size", "age_band"]'))
    with pytest.raises(SettingsError, match=r"\[subgroups\] by: .* does not compute: shoe_size"):
        check_against(loaded, UNITS, date(2021, 1, 1), date(2026, 10, 31), FEATURES)
