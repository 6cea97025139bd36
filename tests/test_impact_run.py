"""``riskstrat evaluate`` end to end on the small synthetic borough: what it writes, what it
refuses before reading any outcome, and that a plan changed afterwards shows."""

from __future__ import annotations

import math
import re
import shutil
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.cli import main
from riskstrat.common.months import month_start
from riskstrat.common.settings import SettingsError
from riskstrat.contract.engines import Engine
from riskstrat.contract.needs import present_kinds
from riskstrat.contract.record import FolderError
from riskstrat.contract.tables import ContractTables
from riskstrat.features.exposure import ExposureRule
from riskstrat.features.outcomes import OUTCOMES
from riskstrat.impact.cohort import baseline_cohort
from riskstrat.impact.designs import run_matched
from riskstrat.impact.outcomes import Months, count
from riskstrat.impact.panels import list_run, lottery_draws, lottery_frame
from riskstrat.impact.plan import BUILT_IN_PLANS, PLANS, load_plan
from riskstrat.impact.results import REPORT_FILE, RESULTS_FILE, EvaluationResults
from riskstrat.impact.run import evaluate, panel_months
from riskstrat.sources.synthetic.borough import Borough
from riskstrat.sources.synthetic.list_actions import ACTION_KINDS

LOCALITY_MODEL = PLANS / BUILT_IN_PLANS[0]
LIST_ACTIONS = PLANS / BUILT_IN_PLANS[1]


@pytest.fixture(scope="module")
def evaluated(small_borough_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("evaluation") / "ilm"
    evaluate(small_borough_dir, LOCALITY_MODEL, out)
    return out


def test_every_design_and_outcome_of_the_plan_is_reported(evaluated: Path) -> None:
    results = EvaluationResults.load(evaluated)
    assert [d.design for d in results.designs] == ["did", "matched"]
    for design in results.designs:
        assert [o.outcome for o in design.outcomes] == list(OUTCOMES)
        for outcome in design.outcomes:
            assert outcome.summary
            if outcome.answered:
                assert outcome.effect.ci_low <= outcome.effect.estimate <= outcome.effect.ci_high
    did = results.design("did")
    assert did.tables["event_study:emergency_admissions"]
    assert any(c.name.startswith("pre-trend") for c in did.checks)
    matched = results.design("matched")
    assert {row["feature"] for row in matched.tables["balance"]} >= {"age", "frailty_index"}
    assert (evaluated / REPORT_FILE).stat().st_size > 0
    assert list((evaluated / "plots").glob("*.png"))


def test_the_plan_is_recorded_with_its_hash(evaluated: Path) -> None:
    import hashlib

    results = EvaluationResults.load(evaluated)
    assert results.plan.sha256 == hashlib.sha256(LOCALITY_MODEL.read_bytes()).hexdigest()
    assert results.plan.text == LOCALITY_MODEL.read_text()
    assert results.plan.sha256 in (evaluated / REPORT_FILE).read_text()


def test_a_design_that_cannot_answer_says_why_and_gives_no_number(evaluated: Path) -> None:
    for design in EvaluationResults.load(evaluated).designs:
        for outcome in design.outcomes:
            if not outcome.answered:
                assert outcome.summary.startswith("The data cannot say")
                assert not re.search(r"\d+% (lower|higher)", outcome.summary)


def test_units_not_in_the_data_are_refused_before_anything_is_written(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(LOCALITY_MODEL.read_text().replace('"North 1" =', '"North 9" ='))
    out = tmp_path / "out"
    with pytest.raises(
        SettingsError, match=r"plan\.toml: \[units\] start: units not in the data: North 9"
    ):
        evaluate(small_borough_dir, plan, out)
    assert not out.exists()


def test_an_output_folder_it_did_not_write_is_not_replaced(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "precious.txt").write_text("keep")
    with pytest.raises(ValueError, match=f"has no {RESULTS_FILE}"):
        evaluate(small_borough_dir, LOCALITY_MODEL, tmp_path)
    assert (tmp_path / "precious.txt").read_text() == "keep"


def test_the_list_plan_runs_and_the_command_prints_the_sentences(
    small_borough_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "list"
    main(
        [
            "evaluate",
            "--data",
            str(small_borough_dir),
            "--plan",
            str(LIST_ACTIONS),
            "--out",
            str(out),
            "--engine",
            "duckdb",
        ]
    )
    printed = capsys.readouterr().out
    results = EvaluationResults.load(out)
    assert [d.design for d in results.designs] == ["rd", "lottery"]
    for design in results.designs:
        assert design.outcomes[0].summary in printed
    lottery = results.design("lottery")
    assert [o.outcome for o in lottery.outcomes] == ["emergency_admissions", "avoidable_admissions"]
    assert {c.name for c in lottery.checks} == {"arms alike before the run", "first stage"}
    assert lottery.subgroups[0].levels == ["reablement_plan", "social_prescribing_referral"]


def test_a_follow_up_longer_than_the_data_is_a_verdict_not_a_number(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    text = LOCALITY_MODEL.read_text()
    text = text[: text.index("[did]")] + text[text.index("[matched]") :]
    text = text.replace('"South 1" = 2025-01-01', '"South 1" = 2026-07-01')
    text = text.replace('treated_units = ["Central Pilot"]', 'treated_units = ["South 1"]')
    plan = tmp_path / "plan.toml"
    plan.write_text(text)
    (design,) = evaluate(small_borough_dir, plan, tmp_path / "out").designs
    assert design.verdict.startswith("follow-up too short: the plan follows people to 2027-07-01")
    assert design.outcomes == []


def test_with_the_deployed_model_its_risk_score_is_matched_on(
    small_borough_dir: Path, trained, tmp_path: Path
) -> None:
    text = LOCALITY_MODEL.read_text()
    plan = tmp_path / "plan.toml"
    plan.write_text(text[: text.index("[did]")] + text[text.index("[matched]") :])
    (design,) = evaluate(small_borough_dir, plan, tmp_path / "out", model=trained.bundle).designs
    balance = {row["feature"]: row for row in design.tables["balance"]}
    assert "risk_score" in balance
    assert abs(balance["risk_score"]["smd_after"]) < abs(balance["risk_score"]["smd_before"]) or (
        abs(balance["risk_score"]["smd_after"]) < 0.1
    )
    assert "risk score" in design.method


def test_a_tampered_contract_folder_is_refused_before_anything_is_written(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    """The evaluation reads through ContractTables, so the folder's record is checked: an
    events table changed after it was written (as many rows, one code altered) is refused."""
    data = tmp_path / "data"
    shutil.copytree(small_borough_dir, data)
    events = pq.read_table(data / "events.parquet")
    column = events.schema.get_field_index("code")
    codes = events.column("code").to_pylist()
    codes[0] = "tampered"
    pq.write_table(
        events.set_column(column, "code", pa.array(codes, pa.string())), data / "events.parquet"
    )
    out = tmp_path / "out"
    with pytest.raises(FolderError, match=r"events\.parquet: does not match tables\.json"):
        evaluate(data, LIST_ACTIONS, out)
    assert not out.exists()


def test_take_up_is_the_help_the_generator_gave_as_the_exposure_rule_defines_it(
    small_borough: Borough, small_borough_dir: Path, spark_engine: Engine
) -> None:
    """The built-in plan's rule finds exactly the actions the generator's list run triggered
    (its known truth); another rule finds what it says; Spark reads the same."""
    loaded = load_plan(LIST_ACTIONS).plan
    design = loaded.rd
    with ContractTables.from_dir(small_borough_dir) as tables:
        found = list_run(tables, design, loaded.exposure)
        plans_only = list_run(tables, design, ExposureRule(kinds=("reablement_plan",)))
        other_code = list_run(tables, design, ExposureRule(codes=("not_the_list",)))
    truth = small_borough.list_actions
    truth = truth[truth["run"] == pd.Timestamp(design.run)].set_index("patient_id")
    assert set(found["person"]) == set(truth.index)
    took_up = truth.loc[found["person"], "action"].to_numpy() != "none"
    assert took_up.sum() > 10
    assert found["took_up"].tolist() == took_up.tolist()
    assert found["listed"].tolist() == truth.loc[found["person"], "listed"].tolist()
    reablement = truth.loc[plans_only["person"], "action"].to_numpy() == "reablement_plan"
    assert plans_only["took_up"].tolist() == reablement.tolist()
    assert not other_code["took_up"].any()
    with ContractTables.from_dir(small_borough_dir, spark_engine) as tables:
        pd.testing.assert_frame_equal(list_run(tables, design, loaded.exposure), found)


def test_the_lottery_frame_is_the_generators_draw_uptake_and_outcomes(
    small_borough: Borough, small_borough_dir: Path, spark_engine: Engine
) -> None:
    """Everyone the generator put in a capacity draw, with the help drawn for, whether drawn,
    whether they took it up and their admissions over the follow-up, and nobody else; one
    lottery per run, help and locality; Spark reads the same draws."""
    plan = load_plan(LIST_ACTIONS).plan
    with ContractTables.from_dir(small_borough_dir) as tables:
        draws = lottery_draws(tables, plan.lottery)
        run = min(draws["run"])
        first = draws[draws["run"] == run]
        end = month_start(run, plan.lottery.follow_up_months)
        people = pd.Index(first["person"].unique())
        counts = count(tables, people, Months(month_start(run, -12), end), date(2026, 10, 31))
        frame = lottery_frame(tables, first, counts, plan.lottery, plan.exposure)
    truth = small_borough.list_actions
    truth = truth[(truth["run"] == pd.Timestamp(run)) & (truth["drawn_for"] != "none")]
    truth = truth.set_index("patient_id").loc[frame["person"]]
    assert len(frame) == len(truth) > 50
    assert frame["drawn"].tolist() == truth["drawn"].tolist()
    assert frame["took_up"].tolist() == (truth["action"] != "none").tolist()
    assert frame["help"].tolist() == truth["drawn_for"].map(ACTION_KINDS).tolist()
    assert frame["lottery"].nunique() == frame[["help", "team"]].drop_duplicates().shape[0] > 2
    admissions = counts.total("emergency_admissions", run, end)
    assert frame["emergency_admissions"].sum() == admissions.sum() > 0
    with ContractTables.from_dir(small_borough_dir, spark_engine) as tables:
        pd.testing.assert_frame_equal(lottery_draws(tables, plan.lottery), draws)


def test_the_plans_exposure_table_is_the_rule_the_list_design_states(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(LIST_ACTIONS.read_text() + '\n[exposure]\nkinds = ["reablement_plan"]\n')
    for design in evaluate(small_borough_dir, plan, tmp_path / "out").designs:
        assert "list-triggered help: reablement_plan with code risk_list" in design.method
    plan.write_text(LIST_ACTIONS.read_text() + '\n[exposure]\nkinds = ["home_visit"]\n')
    with pytest.raises(SettingsError, match=r"plan\.toml: \[exposure\] kinds.*home_visit"):
        evaluate(small_borough_dir, plan, tmp_path / "out")


def test_a_cut_off_above_every_saved_score_is_a_verdict_not_a_traceback(
    small_borough_dir: Path, tmp_path: Path
) -> None:
    plan = tmp_path / "plan.toml"
    plan.write_text(LIST_ACTIONS.read_text().replace("cutoff = 0.7", "cutoff = 0.999"))
    design = evaluate(small_borough_dir, plan, tmp_path / "out").design("rd")
    assert design.verdict.startswith(
        "no list score at or above the cut-off (0.999) on 2024-01-01: the run's saved scores "
        "run from"
    )
    assert design.outcomes == []


def test_matching_features_missing_for_everyone_are_left_out_and_for_some_refused(
    small_borough_dir: Path,
) -> None:
    plan = load_plan(LOCALITY_MODEL).plan
    with ContractTables.from_dir(small_borough_dir) as tables:
        present = present_kinds(tables)
        cohort = baseline_cohort(tables, plan, present)
        first_day, last_day = tables.event_span()
        months = panel_months(plan, first_day, last_day)
        counts = count(tables, cohort.people, months, last_day, present)
    # An extract without deprivation (the ingested Synthea and OMOP samples have none).
    unrecorded = replace(cohort, features=cohort.features.assign(deprivation_decile=math.nan))
    design = run_matched(plan, unrecorded, counts)
    assert design.outcomes
    assert "not matched on, missing for everyone: deprivation_decile" in [
        c.detail for c in design.checks
    ]
    some = cohort.features["deprivation_decile"].mask(cohort.features["age"] > 90)
    partly = replace(cohort, features=cohort.features.assign(deprivation_decile=some))
    design = run_matched(plan, partly, counts)
    assert design.verdict.startswith("matching features missing for some people: deprivation_")
    assert design.outcomes == []
