"""The synthetic borough's interventions: who they reach, what they leave alone, their truth."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstrat.contract.tables import ContractTables
from riskstrat.features.avoidable import ICD10, is_potentially_avoidable
from riskstrat.features.engine import build_features
from riskstrat.features.exposure import ExposureRule, exposure
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, load_plan
from riskstrat.sources.synthetic.borough import Borough, generate, write
from riskstrat.sources.synthetic.config import (
    Interventions,
    ListActions,
    LocalityModel,
    SynthConfig,
)
from riskstrat.sources.synthetic.locality_model import OUTCOMES, expected_stay

BASE = SynthConfig(patients=4_000, seed=21, truth_as_of=())
INTERVENTION_KINDS = {"case_management", "reablement_plan", "risk_list_score", "risk_list_lottery"}


@pytest.fixture(scope="module")
def on() -> Borough:
    return generate(BASE)


@pytest.fixture(scope="module")
def on_dir(on: Borough, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("interventions")
    write(on, out)
    return out


@pytest.fixture(scope="module")
def off() -> Borough:
    return generate(replace(BASE, interventions=Interventions.off()))


@pytest.fixture(scope="module")
def null() -> Borough:
    return generate(replace(BASE, interventions=Interventions().null_effects()))


def _events(borough: Borough) -> pd.DataFrame:
    return borough.events.to_pandas(date_as_object=False)


def _intervention_rows(events: pd.DataFrame) -> pd.Series:
    list_triggered = (events["kind"] == "social_prescribing_referral") & (
        events["code"] == "risk_list"
    )
    return events["kind"].isin(INTERVENTION_KINDS) | list_triggered


def _before(borough: Borough, day: pd.Timestamp) -> pd.DataFrame:
    """Events before ``day`` of people registered before it, as an extract taken on ``day``
    would show them (episodes running then have no end yet), pseudonyms included."""
    events = _events(borough)
    patients = borough.patients.to_pandas(date_as_object=False)
    early = patients.loc[patients["registration_start"] < day, "patient_id"]
    rows = events[(events["start"] < day) & events["patient_id"].isin(early)].copy()
    running = (rows["end"] >= day) & (rows["kind"] != "prescription")
    rows.loc[running, "end"] = pd.NaT
    rows = rows.astype(str)
    return rows.sort_values(list(rows.columns), ignore_index=True)


def _clusters(borough: Borough) -> pd.DataFrame:
    patients = borough.patients.to_pandas(date_as_object=False)
    practices = borough.practices.to_pandas()
    return patients.merge(practices, on="practice_id")[["patient_id", "gp_cluster"]]


def test_caseload_is_exactly_who_the_features_call_eligible_at_baseline(
    on: Borough, on_dir: Path
) -> None:
    model = BASE.interventions.locality_model
    features = build_features(ContractTables.from_dir(on_dir), [model.baseline]).reset_index()
    # The caseload rule as the built-in analysis plan states it (test_impact_plan checks that
    # the plan states the generator's LocalityModel).
    rule = load_plan(PLANS / BUILT_IN_PLANS[0]).plan.population.eligible(features)
    eligible = features.loc[rule, ["patient_id"]].merge(_clusters(on), on="patient_id")
    live = eligible["gp_cluster"].isin(model.go_live)
    events = _events(on)
    managed = set(events.loc[events["kind"] == "case_management", "patient_id"])
    # Eligible people who died or left before their cluster went live are never managed.
    patients = on.patients.to_pandas(date_as_object=False).set_index("patient_id")
    go_live = eligible["gp_cluster"].map(model.go_live)
    exit_day = patients[["death_date", "registration_end"]].min(axis=1)
    gone = exit_day.reindex(eligible["patient_id"]).to_numpy() < pd.to_datetime(go_live).to_numpy()
    expected = set(eligible.loc[live.to_numpy() & ~gone, "patient_id"])
    assert len(expected) > 100
    assert managed == expected
    assert eligible["gp_cluster"].eq("South 2").any()  # the never-treated cluster has a caseload


def test_case_management_runs_only_in_live_clusters_from_their_go_live(on: Borough) -> None:
    model = BASE.interventions.locality_model
    events = _events(on)
    cases = events[events["kind"] == "case_management"].merge(_clusters(on), on="patient_id")
    assert set(cases["code"]) == {"integrated_locality_model"}
    assert set(cases["gp_cluster"]) == set(model.go_live)
    go_live = pd.to_datetime(cases["gp_cluster"].map(model.go_live))
    assert (cases["start"] == go_live).all()
    assert cases["patient_id"].is_unique
    ended = cases["end"].notna()
    assert (cases.loc[ended, "end"] >= cases.loc[ended, "start"]).all()
    assert (~ended).any()  # still managed at the end of the data


def test_switched_off_the_borough_is_as_it_was_before_interventions(
    on: Borough, off: Borough
) -> None:
    events = _events(off)
    assert not _intervention_rows(events).any()
    # Before the baseline nothing differs for anyone registered by then, pseudonyms
    # included: the interventions and the pseudonyms draw from their own streams.
    baseline = pd.Timestamp(BASE.interventions.locality_model.baseline)
    assert _before(on, baseline).equals(_before(off, baseline))
    assert on.effects.size > 0 and off.effects.empty and off.list_actions.empty


def test_with_no_effects_the_borough_differs_only_by_the_intervention_events(
    off: Borough, null: Borough
) -> None:
    events = _events(null)
    extra = _intervention_rows(events)
    assert extra.sum() > 100
    assert events[~extra].reset_index(drop=True).equals(_events(off))
    assert null.patients.equals(off.patients)


def test_truth_has_effects_only_where_the_config_puts_them(on: Borough, null: Borough) -> None:
    columns = ["expected_treated", "expected_untreated", "path_treated", "path_untreated"]
    for borough, effective in ((on, True), (null, False)):
        sums = borough.effects.groupby("outcome")[columns].sum()
        assert set(sums.index) == set(OUTCOMES)
        assert (sums["expected_untreated"] > 0).all()
        for outcome, row in sums.iterrows():
            if not effective:
                # The arms share every random number: with no effect they are the same path.
                assert row["expected_treated"] == row["expected_untreated"], outcome
                assert row["path_treated"] == pytest.approx(row["path_untreated"]), outcome
            elif outcome == "deaths":
                # No effect on the hazard of death; fewer admissions lower it a little.
                assert row["path_treated"] == pytest.approx(row["path_untreated"])
                assert row["expected_untreated"] * 0.9 < row["expected_treated"]
                assert row["expected_treated"] < row["expected_untreated"]
            else:
                assert row["expected_treated"] < row["expected_untreated"], outcome
                assert row["path_treated"] < row["path_untreated"], outcome
    actions = on.list_actions
    took = actions["action"] != "none"
    treated, untreated = actions["expected_treated"], actions["expected_untreated"]
    assert (treated[took] < untreated[took]).all()
    assert (treated[~took] == untreated[~took]).all()
    prevented = actions.filter(like="prevented_")
    assert list(prevented.columns) == ["prevented_reablement_plan", "prevented_social_prescribing"]
    assert (prevented > 0).all().all()
    given = np.where(
        actions["action"] == "reablement_plan",
        actions["prevented_reablement_plan"],
        actions["prevented_social_prescribing"],
    )
    assert (untreated - treated)[took].to_numpy() == pytest.approx(given[took], rel=1e-9)
    nothing = null.list_actions
    assert (nothing.filter(like="prevented_") == 0.0).all().all()
    assert (nothing.filter(like="hr_") == 1.0).all().all()
    assert nothing["expected_treated"].equals(nothing["expected_untreated"])


def test_the_total_effect_counts_the_admissions_that_prevented_admissions_prevent(
    on: Borough,
) -> None:
    admissions = on.effects[on.effects["outcome"] == "emergency_admissions"]
    total = admissions["expected_treated"].sum() / admissions["expected_untreated"].sum()
    direct = admissions["path_treated"].sum() / admissions["path_untreated"].sum()
    frail, not_frail = (
        BASE.interventions.locality_model.admission_hr_frail,
        BASE.interventions.locality_model.admission_hr_not_frail,
    )
    assert frail < direct < not_frail
    assert total < direct - 0.005
    # The paths are coupled, so the difference is precise although each arm is noisy.
    difference = (admissions["expected_untreated"] - admissions["expected_treated"]).sum()
    assert np.sqrt((admissions["difference_se"] ** 2).sum()) < 0.02 * difference


def _pilot_admissions_in_first_year(borough: Borough, go_live: pd.Timestamp) -> int:
    events = _events(borough)
    cases = events[(events["kind"] == "case_management") & (events["start"] == go_live)]
    admissions = events[
        (events["kind"] == "emergency_admission")
        & events["patient_id"].isin(cases["patient_id"])
        & (events["start"] >= go_live)
        & (events["start"] < go_live + pd.DateOffset(years=1))
    ]
    return len(admissions)


@pytest.mark.slow
def test_the_total_effect_is_what_the_null_effects_twin_shows() -> None:
    """Same seed with and without effects: the pilot cohort (the same people in both, chosen
    at the baseline) in its first year. The twin is another draw of the counterfactual, so
    the observed ratio is compared with the truth's within its Poisson error."""
    config = replace(BASE, patients=20_000, seed=5, end=date(2024, 6, 30))
    go_live = pd.Timestamp(config.interventions.locality_model.go_live["Central Pilot"])
    with_effects = generate(config)
    twin = generate(replace(config, interventions=config.interventions.null_effects()))
    observed = _pilot_admissions_in_first_year(with_effects, go_live)
    counterfactual = _pilot_admissions_in_first_year(twin, go_live)
    effects = with_effects.effects
    rows = effects[
        (effects["outcome"] == "emergency_admissions")
        & (effects["cohort"] == go_live)
        & (effects["month"] < go_live + pd.DateOffset(years=1))
    ]
    assert len(rows) == 12
    truth = rows["expected_treated"].sum() / rows["expected_untreated"].sum()
    ratio = observed / counterfactual
    assert counterfactual > 80
    assert abs(ratio - truth) < 3 * ratio * np.sqrt(1 / observed + 1 / counterfactual)


def test_admissions_of_the_managed_match_the_expected_treated(on: Borough) -> None:
    """Observed admissions in managed person-months against the truth's expectation."""
    events = _events(on)
    cases = events[events["kind"] == "case_management"][["patient_id", "start"]]
    admissions = events[events["kind"] == "emergency_admission"].merge(
        cases.rename(columns={"start": "go_live"}), on="patient_id"
    )
    observed = admissions[admissions["start"] >= admissions["go_live"]]
    effects = on.effects.set_index("outcome")
    for outcome, rows in (
        ("emergency_admissions", observed),
        ("avoidable_admissions", observed[observed["code"].map(is_potentially_avoidable)]),
    ):
        expected = effects.loc[outcome, "expected_treated"].sum()
        untreated = effects.loc[outcome, "expected_untreated"].sum()
        assert abs(len(rows) - expected) < 3 * np.sqrt(expected), outcome
        assert abs(len(rows) - untreated) > abs(len(rows) - expected), outcome
    stays = observed["value"].sum()
    expected_days = effects.loc["bed_days", "expected_treated"].sum()
    assert abs(stays - expected_days) < 0.25 * expected_days


def test_list_actions_follow_the_list(on: Borough) -> None:
    lists = BASE.interventions.list_actions
    actions, events = on.list_actions, _events(on)
    scores = events[events["kind"] == "risk_list_score"]
    assert len(scores) == len(actions)
    assert ((scores["code"] == "listed") == (scores["value"] >= lists.cutoff)).all()
    assert (actions["score"] >= lists.cutoff * lists.band_fraction).all()
    assert (actions.loc[actions["action"] != "none", "listed"]).all()
    first = actions[actions["run"] == pd.Timestamp(lists.first_run)]
    adults = first["listed"].sum() / 0.03  # about 3% of adults listed at the first run
    assert 0.5 * BASE.patients < adults < 1.3 * BASE.patients
    plans = events[events["kind"] == "reablement_plan"]
    assert set(plans["code"]) == {"risk_list"}
    assert len(plans) == (actions["action"] == "reablement_plan").sum()


def test_the_features_count_the_list_actions_as_list_triggered_help(
    on: Borough, on_dir: Path
) -> None:
    """The generator writes its actions as ``ExposureRule``'s defaults define help: on a run
    date everyone given an action then is exposed, and only people given one by then are."""
    actions = on.list_actions
    run = actions["run"].drop_duplicates().sort_values().iloc[1]
    given = actions[actions["action"] != "none"]
    sources = ContractTables.from_dir(on_dir)
    helped = exposure(sources, [run.date()], 30, ExposureRule())
    exposed = set(helped.index.get_level_values("patient_id"))
    assert set(given.loc[given["run"] == run, "patient_id"]) <= exposed
    assert exposed <= set(given.loc[given["run"] <= run, "patient_id"])


def test_admissions_carry_an_icd10_cause_and_a_believable_avoidable_share(on: Borough) -> None:
    events = _events(on)
    admissions = events[events["kind"] == "emergency_admission"]
    assert (admissions["code_system"] == ICD10).all()
    avoidable = admissions["code"].map(is_potentially_avoidable)
    assert 0.18 <= avoidable.mean() <= 0.30
    patients = on.patients.to_pandas(date_as_object=False).set_index("patient_id")
    age = admissions["start"] - patients.loc[admissions["patient_id"], "birth_month"].to_numpy()
    old = (age.dt.days / 365.25 >= 75).to_numpy()
    assert avoidable[old].mean() > avoidable[~old].mean() + 0.05


def test_expected_stay_is_the_mean_of_the_capped_floored_lognormal() -> None:
    rng = np.random.default_rng(0)
    for log_mean, multiplier in ((0.4, 1.0), (1.0, 0.85), (2.5, 0.85)):
        draws = np.minimum(np.floor(rng.lognormal(log_mean, 1.5, 400_000) * multiplier), 120)
        closed = expected_stay(np.array([log_mean]), multiplier)[0]
        assert closed == pytest.approx(draws.mean(), rel=0.01)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"go_live": {"Nowhere": date(2024, 1, 1)}}, "Nowhere"),
        ({"go_live": {"North 1": date(2023, 1, 1)}}, "before the baseline"),
        ({"baseline": date(2023, 7, 2)}, "baseline"),
        ({"admission_hr_frail": 0.0}, "admission_hr_frail"),
        ({"frailty_coded": False, "prior_admissions": None}, "frailty_coded"),
    ],
)
def test_a_wrong_locality_model_is_refused_naming_the_field(change: dict, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LocalityModel(**change)


def test_list_actions_lower_only_the_potentially_avoidable_admissions(on: Borough) -> None:
    """In the truth, exactly; in the events, within Poisson error: the actions' treated
    person-months have as many other admissions as without them and fewer avoidable ones."""
    actions = on.list_actions
    took = actions[actions["action"] != "none"]
    other = {
        arm: took[f"expected_{arm}"] - took[f"expected_avoidable_{arm}"]
        for arm in ("treated", "untreated")
    }
    assert other["treated"].to_numpy() == pytest.approx(other["untreated"].to_numpy(), rel=1e-9)
    assert (took["expected_avoidable_treated"] < took["expected_avoidable_untreated"]).all()

    events = _events(on)
    admissions = events[events["kind"] == "emergency_admission"].merge(
        took[["patient_id", "run"]], on="patient_id"
    )
    months = BASE.interventions.list_actions.follow_up_months
    inside = (admissions["start"] >= admissions["run"]) & (
        admissions["start"] < admissions["run"] + pd.DateOffset(months=months)
    )
    avoidable = admissions.loc[inside, "code"].map(is_potentially_avoidable)
    for observed, treated in (
        (avoidable.sum(), took["expected_avoidable_treated"]),
        ((~avoidable).sum(), other["treated"]),
    ):
        expected = treated.sum()
        assert abs(observed - expected) < 3 * np.sqrt(expected)
    untreated_avoidable = took["expected_avoidable_untreated"].sum()
    assert avoidable.sum() < untreated_avoidable - 2 * np.sqrt(untreated_avoidable)


def test_reablement_helps_the_frail_living_alone_and_social_prescribing_the_lonely_more(
    on: Borough,
) -> None:
    """At the same risk (a quarter of the band by expected admissions), the truth of the
    admissions each action would prevent is larger for those it is meant to reach."""
    actions = on.list_actions
    quarter = pd.qcut(actions["expected_untreated"], 4, labels=False)
    reached = {
        "prevented_reablement_plan": actions["frail"] & actions["lives_alone"],
        "prevented_social_prescribing": actions["lonely"] | actions["mental_health"],
    }
    for column, reach in reached.items():
        for _, rows in actions.groupby(quarter):
            helped = reach[rows.index]
            assert helped.sum() > 20 and (~helped).sum() > 20
            assert rows.loc[helped, column].mean() > 1.2 * rows.loc[~helped, column].mean()


SMALL = SynthConfig(
    patients=3_000,
    seed=23,
    start=date(2023, 1, 1),
    end=date(2024, 6, 30),
    truth_as_of=(),
    interventions=Interventions(
        locality_model=LocalityModel(enabled=False),
        list_actions=ListActions(band_fraction=1e-9),  # the truth for every adult scored
    ),
)


def test_uniform_effects_give_everyone_the_average_of_the_varying_ones() -> None:
    """The same borough with effects that vary and with effects that do not: the first run
    scores the same people and acts on the same; without variation everyone has one ratio
    per action, the varying ratios' average over the adults weighted by their avoidable
    admissions, so offering an action to all would prevent about as many in either."""
    lists = SMALL.interventions.list_actions
    varying = generate(SMALL).list_actions
    uniform = generate(
        replace(SMALL, interventions=replace(SMALL.interventions, list_actions=lists.uniform()))
    ).list_actions
    assert len(uniform) == len(varying)
    assert uniform["action"].equals(varying["action"])
    first = varying["run"] == pd.Timestamp(lists.first_run)
    assert first.sum() > 0.7 * SMALL.patients  # nearly every adult
    for action in ("reablement_plan", "social_prescribing"):
        hr, prevented = f"hr_{action}", f"prevented_{action}"
        assert (uniform.groupby("run")[hr].nunique() == 1).all()
        assert varying.loc[first, hr].std() > 0.1
        average = 1 - varying.loc[first, prevented].sum() / (
            varying.loc[first, "expected_avoidable_untreated"].sum()
        )
        assert uniform.loc[first, hr].iloc[0] == pytest.approx(average, abs=0.02)
        assert uniform.loc[first, prevented].sum() == pytest.approx(
            varying.loc[first, prevented].sum(), rel=0.05
        )


UNCHANGED = SynthConfig(
    patients=1_500, seed=7, start=date(2022, 7, 1), end=date(2024, 9, 30), truth_as_of=()
)
UNCHANGED_DIGESTS = {"off": "5348acc917b438aa", "null": "7b1d286093c9166d"}


@pytest.mark.parametrize(
    ("name", "interventions"),
    [("off", Interventions.off()), ("null", Interventions().null_effects())],
)
def test_without_effects_the_borough_is_what_it_always_was(
    name: str, interventions: Interventions
) -> None:
    """Switched off or with no effects, every event and patient of a fixed seed is what the
    generator made before list actions had effects that depend on the person and the
    cause (the digests were taken then), leaving out the list's recorded lottery (a record of
    a draw the generator always made, added since). A change to the borough itself changes
    them too: then check that the change is meant, and take them again."""
    borough = generate(replace(UNCHANGED, interventions=interventions))
    digest = hashlib.sha256()
    for table in (borough.events, borough.patients):
        frame = table.to_pandas(date_as_object=False)
        if "kind" in frame.columns:
            frame = frame[frame["kind"] != "risk_list_lottery"].reset_index(drop=True)
        digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    assert digest.hexdigest()[:16] == UNCHANGED_DIGESTS[name]
