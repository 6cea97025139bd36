"""Risk lists decided outside the generator: they drive who is listed and acted on, the
borough before a run date does not depend on that run, the pseudonyms never move, and the
truth says what each person's risk would be without the list's actions."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from riskstrat.cli import main
from riskstrat.sources.synthetic.borough import LIST_ACTIONS, TRUTH_DIR, Borough, generate, write
from riskstrat.sources.synthetic.config import (
    Interventions,
    ListActions,
    LocalityModel,
    SynthConfig,
)
from riskstrat.sources.synthetic.interventions import ListDecision
from riskstrat.sources.synthetic.list_actions import ACTION_KINDS as TRUTH_KINDS

# Off the oracle's schedule (January, April, July, October), so a run there is the caller's.
D1, D2 = date(2024, 2, 1), date(2024, 5, 1)
CONFIG = SynthConfig(
    patients=3_000,
    seed=31,
    start=date(2023, 1, 1),
    end=date(2024, 12, 31),
    truth_as_of=(D1, D2),
    interventions=Interventions(locality_model=LocalityModel(enabled=False)),
)
ACTION_KINDS = ("reablement_plan", "social_prescribing_referral")


def _cohort(borough: Borough, day: date) -> pd.Series:
    """Ids registered and alive on ``day`` as the patients table says (the feature cohort)."""
    p = borough.patients.to_pandas(date_as_object=False)
    at = pd.Timestamp(day)
    alive = p["death_date"].isna() | (p["death_date"] >= at)
    registered = (p["registration_start"] <= at) & (
        p["registration_end"].isna() | (p["registration_end"] >= at)
    )
    return p.loc[alive & registered, "patient_id"]


def _decide(borough: Borough, day: date, listed_share: float = 0.1) -> ListDecision:
    """A champion that knows the truth: everyone in the cohort scored with their true risk on
    ``day``, the top ``listed_share`` listed."""
    truth = borough.truth[borough.truth["as_of"] == pd.Timestamp(day)]
    cohort = _cohort(borough, day).to_frame().merge(truth, on="patient_id")
    score = cohort["p_admission"].to_numpy()
    return ListDecision(
        patient_id=cohort["patient_id"].to_numpy(),
        score=score,
        listed=score >= np.quantile(score, 1 - listed_share),
    )


def _events(borough: Borough) -> pd.DataFrame:
    return borough.events.to_pandas(date_as_object=False)


def _actions(borough: Borough, day: date) -> pd.DataFrame:
    events = _events(borough)
    return events[
        events["kind"].isin(ACTION_KINDS)
        & (events["code"] == "risk_list")
        & (events["start"] == pd.Timestamp(day))
    ]


def _registered_by(borough: Borough, day: date) -> pd.DataFrame:
    """Patients registered on or before ``day``, as an extract taken on ``day`` would show
    them (a registration ending or a death after it has not happened yet)."""
    at = pd.Timestamp(day)
    p = borough.patients.to_pandas(date_as_object=False)
    p = p[p["registration_start"] <= at].copy()
    for column in ("registration_end", "death_date"):
        p.loc[p[column] > at, column] = pd.NaT
    return p.sort_values("patient_id", ignore_index=True)


def _before(borough: Borough, day: date) -> pd.DataFrame:
    """Events starting before ``day`` of people registered by then, as an extract taken on
    ``day`` would show them (episodes running then have no end yet), pseudonyms included.
    (People who join later have records from before they joined, and join only if alive.)"""
    at = pd.Timestamp(day)
    events = _events(borough)
    registered = _registered_by(borough, day)["patient_id"]
    rows = events[(events["start"] < at) & events["patient_id"].isin(registered)].copy()
    running = (rows["end"] >= at) & (rows["kind"] != "prescription")
    rows.loc[running, "end"] = pd.NaT
    rows = rows.astype(str)
    return rows.sort_values(list(rows.columns), ignore_index=True)


@pytest.fixture(scope="module")
def blank() -> Borough:
    return generate(CONFIG, decisions={})


@pytest.fixture(scope="module")
def first_decision(blank: Borough) -> ListDecision:
    return _decide(blank, D1)


@pytest.fixture(scope="module")
def one(first_decision: ListDecision) -> Borough:
    return generate(CONFIG, decisions={D1: first_decision})


@pytest.fixture(scope="module")
def second_decision(one: Borough) -> ListDecision:
    return _decide(one, D2)


@pytest.fixture(scope="module")
def two(first_decision: ListDecision, second_decision: ListDecision) -> Borough:
    return generate(CONFIG, decisions={D1: first_decision, D2: second_decision})


def test_no_decisions_means_no_list_runs(blank: Borough) -> None:
    events = _events(blank)
    assert not (events["kind"] == "risk_list_score").any()
    assert not (events["code"] == "risk_list").any()
    assert blank.list_actions.empty
    assert blank.summary["list_decisions"] == []


def test_the_decision_drives_listing_exactly(
    one: Borough, first_decision: ListDecision, tmp_path: Path
) -> None:
    decided = pd.DataFrame(
        {
            "patient_id": first_decision.patient_id.astype(str),
            "score": first_decision.score,
            "listed": first_decision.listed,
        }
    )
    events = _events(one)
    scores = events[events["kind"] == "risk_list_score"]
    assert set(scores["start"]) == {pd.Timestamp(D1)}
    got = scores.rename(columns={"value": "score"}).assign(listed=scores["code"] == "listed")
    columns = ["patient_id", "score", "listed"]
    expected = decided.sort_values("patient_id", ignore_index=True)
    assert expected.equals(got[columns].sort_values("patient_id", ignore_index=True))

    assert one.summary["list_decisions"] == [D1.isoformat()]
    write(one, tmp_path)
    saved = pd.read_parquet(tmp_path / TRUTH_DIR / f"{LIST_ACTIONS}.parquet")
    assert (saved["run"] == pd.Timestamp(D1)).all()
    assert expected.equals(saved[columns].sort_values("patient_id", ignore_index=True))

    acted = _actions(one, D1)
    assert len(acted) == (saved["action"] != "none").sum()
    listed = set(decided.loc[decided["listed"], "patient_id"])
    assert set(acted["patient_id"]) <= listed  # the unlisted never get an action
    assert not (events["code"] == "risk_list").loc[events["start"] != pd.Timestamp(D1)].any()
    share = ListActions().capacity_share
    n = len(listed)
    assert abs(acted["patient_id"].nunique() - share * n) < 4 * np.sqrt(n * share * (1 - share))


def test_a_run_acts_only_on_listed_people_with_no_action_running(
    two: Borough, first_decision: ListDecision, second_decision: ListDecision
) -> None:
    first = set(_actions(two, D1)["patient_id"])
    second = set(_actions(two, D2)["patient_id"])
    listed_second = set(second_decision.patient_id[second_decision.listed])
    assert second <= listed_second
    assert not first & second  # six-month actions from February still run in May
    assert listed_second & first  # some were listed again but had an action running


def test_the_borough_before_a_run_does_not_depend_on_that_run(
    one: Borough, two: Borough, second_decision: ListDecision
) -> None:
    assert _registered_by(one, D2).equals(_registered_by(two, D2))
    assert _before(one, D2).equals(_before(two, D2))
    for borough in (one, two):
        assert (_events(borough)["start"] >= pd.Timestamp(D2)).any()
    assert not _events(one).equals(_events(two))

    first_run = [b.list_actions[b.list_actions["run"] == pd.Timestamp(D1)] for b in (one, two)]
    assert first_run[0].reset_index(drop=True).equals(first_run[1].reset_index(drop=True))

    truth = [b.truth.set_index(["as_of", "patient_id"]).sort_index() for b in (one, two)]
    assert truth[0].loc[pd.Timestamp(D1)].equals(truth[1].loc[pd.Timestamp(D1)])
    at_d2 = [t.loc[pd.Timestamp(D2)] for t in truth]
    assert at_d2[0].index.equals(at_d2[1].index)
    for untreated in ("p_admission_untreated", "p_avoidable_admission_untreated"):
        assert at_d2[0][untreated].equals(at_d2[1][untreated])
    acted = at_d2[0].index.isin(_actions(two, D2)["patient_id"])
    assert acted.sum() > 10
    assert at_d2[0][~acted].equals(at_d2[1][~acted])
    assert (at_d2[1]["p_admission"][acted] < at_d2[0]["p_admission"][acted]).all()


def test_pseudonyms_depend_on_the_seed_and_head_count_only(
    blank: Borough, one: Borough, two: Borough
) -> None:
    # An id is one simulated person whatever happens to them (when a later joiner joins
    # does depend on what happened before; the prefix test covers registrations).
    person = ["birth_month", "sex", "practice_id", "deprivation_decile", "ethnicity_group"]
    tables = [
        b.patients.to_pandas(date_as_object=False).set_index("patient_id")[person]
        for b in (blank, one, two)
    ]
    first_ids = tables[0]
    for table in tables[1:]:
        shared = table.index.intersection(first_ids.index)
        assert len(shared) > 0.98 * len(table)  # only people who join late can differ
        assert table.loc[shared].equals(first_ids.loc[shared])
    off = generate(replace(CONFIG, interventions=Interventions.off(), truth_as_of=()))
    assert off.patients.column("patient_id").equals(blank.patients.column("patient_id"))
    other_seed = generate(replace(CONFIG, seed=32, truth_as_of=()), decisions={})
    assert not set(other_seed.patients.column("patient_id").to_pylist()) & set(first_ids.index)


def test_untreated_truth_leaves_out_exactly_the_list_actions(two: Borough) -> None:
    at_d2 = two.truth[two.truth["as_of"] == pd.Timestamp(D2)].set_index("patient_id")
    running = set(_actions(two, D1)["patient_id"]) | set(_actions(two, D2)["patient_id"])
    acted = at_d2.index.isin(list(running))
    assert acted.sum() > 20
    treated, untreated = at_d2["p_admission"], at_d2["p_admission_untreated"]
    assert (treated[acted] < untreated[acted]).all()
    assert (treated[~acted] == untreated[~acted]).all()
    at_d1 = two.truth[two.truth["as_of"] == pd.Timestamp(D1)].set_index("patient_id")
    acted_d1 = at_d1.index.isin(_actions(two, D1)["patient_id"])
    assert (at_d1["p_admission"][acted_d1] < at_d1["p_admission_untreated"][acted_d1]).all()
    assert (at_d1["p_admission"][~acted_d1] == at_d1["p_admission_untreated"][~acted_d1]).all()


def test_without_list_actions_the_untreated_truth_is_the_truth() -> None:
    lists_off = Interventions(
        locality_model=LocalityModel(enabled=False), list_actions=ListActions(enabled=False)
    )
    borough = generate(replace(CONFIG, patients=500, truth_as_of=(D2,), interventions=lists_off))
    assert borough.truth["p_admission_untreated"].equals(borough.truth["p_admission"])


def _one_id_decision(patient_id: str) -> ListDecision:
    return ListDecision(
        patient_id=np.array([patient_id]), score=np.array([0.5]), listed=np.array([True])
    )


def test_a_decision_on_a_wrong_date_is_refused_naming_it(first_decision: ListDecision) -> None:
    for day in (date(2024, 2, 15), date(2022, 12, 1), date(2025, 1, 1)):
        with pytest.raises(ValueError, match=f"list decision for {day}: the date"):
            generate(CONFIG, decisions={day: first_decision})
    with pytest.raises(ValueError, match=r"datetime\.date"):
        generate(CONFIG, decisions={pd.Timestamp(D1): first_decision})


def test_unknown_or_absent_ids_are_refused_naming_the_date_the_id_and_the_count(
    blank: Borough,
) -> None:
    with pytest.raises(ValueError, match=f"list decision for {D1}: 1 unknown .*'nobody'"):
        generate(CONFIG, decisions={D1: _one_id_decision("nobody")})
    patients = blank.patients.to_pandas(date_as_object=False)
    gone = patients.loc[patients["death_date"] < pd.Timestamp(D1), "patient_id"].iloc[0]
    with pytest.raises(
        ValueError, match=f"list decision for {D1}: 1 patient id.* not registered .*'{gone}'"
    ):
        generate(CONFIG, decisions={D1: _one_id_decision(gone)})


def test_decisions_need_the_list_actions_enabled(first_decision: ListDecision) -> None:
    with pytest.raises(ValueError, match="list_actions is not enabled"):
        generate(replace(CONFIG, interventions=Interventions.off()), decisions={D1: first_decision})


@pytest.mark.parametrize(
    ("ids", "score", "listed", "message"),
    [
        (["a", "b"], [0.5], [True, False], "equal lengths"),
        (["a", "a"], [0.5, 0.6], [True, False], "unique: 1 ids repeat, e.g. 'a'"),
        (["a", "b"], [0.5, 1.5], [True, False], "in \\[0, 1\\]: 1 are not, e.g. 1.5 for 'b'"),
        (["a", "b"], [0.5, np.nan], [True, False], "finite"),
        (["a", "b"], [0.5, 0.6], [1, 0], "listed must be boolean"),
        (["a", "b"], ["x", "y"], [True, False], "score must be numbers"),
    ],
)
def test_a_malformed_decision_is_refused(
    ids: list, score: list, listed: list, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ListDecision(patient_id=np.array(ids), score=np.array(score), listed=np.array(listed))


def test_a_decision_is_a_read_only_copy() -> None:
    score = np.array([0.2, 0.9])
    decision = ListDecision(
        patient_id=np.array(["a", "b"]), score=score, listed=np.array([False, True])
    )
    score[0] = 1.0
    assert decision.score[0] == 0.2
    with pytest.raises(ValueError, match="read-only"):
        decision.listed[0] = True


def test_the_synth_command_switches_the_interventions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    admissions, kinds = {}, {}
    for setting in ("on", "off", "null"):
        out = tmp_path / setting
        args = ["synth", "--patients", "1000", "--seed", "3", "--end", "2024-12-31"]
        main([*args, "--truth-as-of", "2024-07-01", "--interventions", setting, "--out", str(out)])
        events = pd.read_parquet(out / "events.parquet")
        kinds[setting] = set(events["kind"])
        admitted = events[events["kind"] == "emergency_admission"]
        admissions[setting] = admitted.reset_index(drop=True)
    capsys.readouterr()
    assert {"case_management", "risk_list_score", "reablement_plan"} <= kinds["on"]
    assert kinds["null"] == kinds["on"]
    assert not {"case_management", "risk_list_score", "reablement_plan"} & kinds["off"]
    assert admissions["null"].equals(admissions["off"])  # every event, no effect
    assert not admissions["on"].equals(admissions["off"])


def _with_lists(**changes: object) -> SynthConfig:
    lists = replace(CONFIG.interventions.list_actions, **changes)
    return replace(CONFIG, interventions=replace(CONFIG.interventions, list_actions=lists))


def _lottery(borough: Borough) -> pd.DataFrame:
    events = _events(borough)
    return events[events["kind"] == "risk_list_lottery"]


@pytest.fixture(scope="module")
def decisions(first_decision: ListDecision, second_decision: ListDecision) -> dict:
    return {D1: first_decision, D2: second_decision}


def test_the_recorded_lottery_is_the_capacity_draw_and_changes_nothing_else(
    two: Borough, decisions: dict
) -> None:
    recorded, lottery = two, _lottery(two)
    unrecorded = generate(_with_lists(lottery=False), decisions=decisions)
    assert _lottery(unrecorded).empty
    others = _events(recorded)
    others = others[others["kind"] != "risk_list_lottery"].reset_index(drop=True)
    pd.testing.assert_frame_equal(others, _events(unrecorded).reset_index(drop=True))

    truth = recorded.list_actions
    entered = truth[truth["drawn_for"] != "none"]
    assert set(entered["listed"]) == {True}
    expected = pd.DataFrame(
        {
            "patient_id": entered["patient_id"],
            "start": entered["run"],
            "code": entered["drawn_for"].map(TRUTH_KINDS),
            "value": entered["drawn"].astype(float),
        }
    )
    key = ["start", "patient_id"]
    got = lottery[[*key, "code", "value"]].sort_values(key, ignore_index=True)
    assert len(got) == len(entered) > 100
    pd.testing.assert_frame_equal(
        got,
        expected[[*key, "code", "value"]].sort_values(key, ignore_index=True),
        check_dtype=False,
    )
    assert (entered["drawn"] == (entered["action"] != "none")).all()  # uptake 1: all take it


def test_with_partial_uptake_only_some_of_those_drawn_get_help(
    first_decision: ListDecision,
) -> None:
    uptake = 0.6
    borough = generate(_with_lists(uptake=uptake), decisions={D1: first_decision})
    truth = borough.list_actions
    drawn = truth[truth["drawn"]]
    took = drawn["action"] != "none"
    assert (truth.loc[~truth["drawn"], "action"] == "none").all()  # never help undrawn
    assert (drawn.loc[took, "action"] == drawn.loc[took, "drawn_for"]).all()
    n = len(drawn)
    assert abs(took.sum() - uptake * n) < 4 * np.sqrt(n * uptake * (1 - uptake))
    assert len(_actions(borough, D1)) == took.sum()
