"""Offers within capacity (``serving.weekly.offers``) on hand-made weeks: places never
exceeded, the ranking key's fallback and its stated reason, nobody at very high risk without
a reason, the team's overrides, and the lottery."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
from weekly_fixture import write_week

from riskstrat.cli import main
from riskstrat.common.errors import UserError
from riskstrat.common.settings import SettingsError
from riskstrat.contract.schema import EVENTS
from riskstrat.features.exposure import ExposureRule
from riskstrat.serving.weekly.config import OfferSettings, WeeklyConfig
from riskstrat.serving.weekly.offers import CapacityError, allocate, draw, draw_events
from riskstrat.serving.weekly.overrides import OverrideError, read_overrides
from riskstrat.serving.weekly.pathways import load_rules
from riskstrat.serving.weekly.referrals import drivers
from riskstrat.serving.weekly.run import weekly_run

WEEK = date(2026, 10, 26)
REABLE, SOCIAL = "reablement_plan", "social_prescribing_referral"
PATHWAYS = ("integrated reablement plan", "social prescribing", "care coordination")
NO_HELP = pd.Series(dtype="object")


def week_people(n: int = 120, seed: int = 0) -> pd.DataFrame:
    """``n`` people in North and South, ranked by risk: 3% very high, then high, rising and
    unlisted; pathways mixed."""
    rng = np.random.default_rng(seed)
    risk = np.sort(rng.uniform(0.02, 0.7, n))[::-1]
    tiers = np.array([""] * n, dtype=object)
    tiers[: max(3, n // 30)] = "very high"
    tiers[max(3, n // 30) : n // 2] = "high"
    tiers[n // 2 : 3 * n // 4] = "rising"
    return pd.DataFrame(
        {
            "locality": rng.choice(["North", "South"], n),
            "gp_cluster": rng.choice(["North A", "North B", "South A"], n),
            "tier": tiers.astype(str),
            "risk": risk,
            "pathway": rng.choice(PATHWAYS, n),
        },
        index=pd.Index([f"pt{i:04d}" for i in range(n)], name="patient_id"),
    )


def settings(**changes: object) -> OfferSettings:
    capacity = {REABLE: {"North": 5, "South": 3}, SOCIAL: {"North": 4}}
    return OfferSettings(**({"capacity": capacity} | changes))


def overrides_file(tmp_path: Path, *rows: str) -> Path:
    path = tmp_path / "overrides.csv"
    path.write_text("patient_id,action,decision,who,why\n" + "".join(r + "\n" for r in rows))
    return path


def offered(people: pd.DataFrame, offers_columns: pd.DataFrame) -> pd.DataFrame:
    table = people.join(offers_columns)
    return table[table["offer"] != ""]


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("lottery", [False, True])
def test_places_are_never_exceeded_per_team_and_action(seed: int, lottery: bool) -> None:
    people = week_people(200, seed)
    chosen = settings(lottery=lottery, lottery_seed=seed, lottery_band=0.5)
    offers = allocate(people, chosen, NO_HELP, WEEK)
    made = offered(people, offers.columns).groupby(["offer", "locality"]).size()
    for (action, team), n in made.items():
        assert n <= chosen.capacity[action][team]
    # Lines longer than their places fill them exactly.
    lines = offers.manifest["lines"]
    for action, teams in lines.items():
        for team, line in teams.items():
            assert made.get((action, team), 0) == min(line["places"], line.get("in_line", 0))
    assert (
        offers.columns.loc[offers.columns["offer"] != "", "offer_reason"]
        .str.startswith("offered")
        .all()
    )


def test_by_risk_the_pathway_picks_the_action_and_the_line_is_in_risk_order() -> None:
    people = week_people()
    offers = allocate(people, settings(), NO_HELP, WEEK)
    table = people.join(offers.columns)
    made = table[table["offer"] != ""]
    assert (
        made["offer"]
        == made["pathway"].map({"integrated reablement plan": REABLE, "social prescribing": SOCIAL})
    ).all()
    north = table[(table["locality"] == "North") & (table["pathway"] == PATHWAYS[0])]
    north = north[north["tier"] != ""]
    assert list(north["offer"].iloc[:5]) == [REABLE] * 5
    assert (north["offer"].iloc[5:] == "").all()
    first = north.iloc[0]
    assert first["offer_reason"] == (
        f"offered reablement plan: 1st of 5 in North by risk of emergency admission "
        f"{100 * first['risk']:.1f}%"
    )
    sixth = north.iloc[5]
    assert sixth["offer_reason"].endswith(
        f"capacity of 5 in North reached, 6th by risk of emergency admission "
        f"{100 * sixth['risk']:.1f}%"
    )
    # Social prescribing has no places in South: said so, not silently skipped.
    south_social = table[
        (table["locality"] == "South") & (table["pathway"] == PATHWAYS[1]) & (table["tier"] != "")
    ]
    assert (
        south_social["offer_reason"]
        .str.endswith("no social prescribing referral places set for South")
        .all()
    )
    assert offers.manifest["ranking"]["key"] == "risk"


def test_the_ranking_key_falls_back_and_says_which_was_used() -> None:
    people = week_people()
    rng = np.random.default_rng(3)
    with_benefit = people.assign(
        avoidable_risk=people["risk"] / 2,
        benefit_reablement_plan=rng.uniform(-0.02, 0.1, len(people)),
        benefit_social_prescribing_referral=rng.uniform(-0.02, 0.1, len(people)),
    )
    by_benefit = allocate(with_benefit, settings(), NO_HELP, WEEK)
    assert by_benefit.manifest["ranking"]["key"] == "benefit"
    table = with_benefit.join(by_benefit.columns)
    made = table[table["offer"] != ""]
    assert made["offer_reason"].str.contains("by expected admissions prevented").all()
    # Each person is offered the action with places whose benefit is larger, never one
    # expected to prevent nothing.
    chosen = np.where(made["offer"] == REABLE, made["benefit_reablement_plan"], 0)
    chosen = np.where(made["offer"] == SOCIAL, made["benefit_social_prescribing_referral"], chosen)
    assert (chosen > 0).all()
    north = made[(made["locality"] == "North") & (made["offer_by"] != "second choice")]
    assert (
        north["offer_key"]
        >= north[["benefit_reablement_plan", "benefit_social_prescribing_referral"]].max(axis=1)
    ).all()

    # One benefit column missing: avoidable risk, and the manifest says why not benefit.
    partial = with_benefit.drop(columns="benefit_social_prescribing_referral")
    by_avoidable = allocate(partial, settings(), NO_HELP, WEEK)
    ranking = by_avoidable.manifest["ranking"]
    assert ranking["key"] == "avoidable_risk"
    assert ranking["not_used"] == [
        "expected admissions prevented: no benefit_social_prescribing_referral column"
    ]
    reasons = by_avoidable.columns["offer_reason"]
    assert (
        reasons[by_avoidable.offered]
        .str.contains("by risk of a potentially avoidable admission")
        .all()
    )

    # Avoidable risk unknown for a listed person: the risk of any admission.
    gappy = partial.assign(
        avoidable_risk=partial["avoidable_risk"].where(partial.index != "pt0007")
    )
    by_risk = allocate(gappy, settings(), NO_HELP, WEEK)
    assert by_risk.manifest["ranking"]["key"] == "risk"
    assert by_risk.manifest["ranking"]["not_used"][-1] == (
        "risk of a potentially avoidable admission: avoidable_risk missing for 1 listed people"
    )


def test_nobody_at_very_high_risk_goes_without_a_reason() -> None:
    people = week_people(300, 5)
    people.loc[people.index[:12], "tier"] = "very high"
    running = pd.Series({people.index[1]: (REABLE,), people.index[2]: (REABLE, SOCIAL)})
    offers = allocate(people, settings(capacity={REABLE: {"North": 1}}), running, WEEK)
    table = people.join(offers.columns)
    very_high = table[table["tier"] == "very high"]
    assert (very_high["offer_reason"] != "").all()
    not_offered = very_high[very_high["offer"] == ""]
    assert len(not_offered) >= 10
    assert not_offered["offer_reason"].str.startswith("very high risk, not offered").all()
    assert table.at[people.index[2], "offer_reason"] == (
        "very high risk, not offered: a reablement plan and a social prescribing referral "
        "already running"
    )
    assert offers.manifest["very_high"] == {
        "listed": 12,
        "offered": len(very_high) - len(not_offered),
    }
    # Everyone on the list has a reason; nobody off it is offered or given one.
    listed = table[table["tier"] != ""]
    assert (listed["offer_reason"] != "").all()
    assert (table.loc[table["tier"] == "", ["offer", "offer_reason"]] == "").all().all()


def test_people_with_help_running_are_not_proposed_again() -> None:
    people = week_people()
    top = allocate(people, settings(), NO_HELP, WEEK)
    first = top.columns.index[top.offered][0]
    again = allocate(people, settings(), pd.Series({first: (SOCIAL,)}), WEEK)
    assert again.columns.at[first, "offer"] == ""
    assert "social prescribing referral already running" in again.columns.at[first, "offer_reason"]
    assert again.offered.sum() == top.offered.sum()  # the place went to the next in line


def test_no_places_means_no_proposals_and_no_reasons() -> None:
    people = week_people()
    offers = allocate(people, OfferSettings(), NO_HELP, WEEK)
    assert not offers.offered.any()
    assert (offers.columns["offer_reason"] == "").all()
    assert offers.manifest["active"] is False
    assert offers.draws.empty


def test_overrides_are_applied_counted_and_recorded(tmp_path: Path) -> None:
    people = week_people()
    base = allocate(people, settings(), NO_HELP, WEEK)
    table = people.join(base.columns)
    north_reable = table[(table["offer"] == REABLE) & (table["locality"] == "North")]
    declined = north_reable.index[0]
    # Someone unlisted in North, whom the team offers a reablement plan.
    chosen = table[(table["tier"] == "") & (table["locality"] == "North")].index[0]
    path = overrides_file(
        tmp_path,
        f"{declined},reablement_plan,decline,A Nurse,in hospital this week",
        f"{chosen},reablement_plan,offer,Dr B,carer asked for help",
    )
    overrides = read_overrides(path)
    offers = allocate(people, settings(), NO_HELP, WEEK, overrides)
    after = people.join(offers.columns)
    assert after.at[declined, "offer"] == ""
    assert after.at[declined, "offer_reason"].endswith(
        "not offered reablement plan: declined by the team (A Nurse: in hospital this week)"
    )
    assert after.at[chosen, "offer"] == REABLE
    assert after.at[chosen, "offer_by"] == "team"
    assert after.at[chosen, "offer_reason"] == (
        "offered reablement plan by the team (Dr B: carer asked for help); 1st of 5 in North"
    )
    north = after[(after["offer"] == REABLE) & (after["locality"] == "North")]
    assert len(north) == 5  # the team's offer took a place; the decline freed one
    assert (north["offer_by"] == "ranked").sum() == 4
    line = offers.manifest["lines"][REABLE]["North"]
    assert (line["by_team"], line["declined"], line["ranked"]) == (1, 1, 4)
    recorded = offers.manifest["overrides"]
    assert recorded["file"] == "overrides.csv" and len(recorded["sha256"]) == 64
    assert [r["row"] for r in recorded["rows"]] == [2, 3]
    assert recorded["rows"][1] == {
        "row": 3,
        "patient_id": chosen,
        "action": REABLE,
        "decision": "offer",
        "who": "Dr B",
        "why": "carer asked for help",
    }


@pytest.mark.parametrize(
    ("rows", "problem"),
    [
        (["pt0001,reablement,offer,A,b"], "row 2: unknown action 'reablement' (known: "),
        (["pt0001,reablement_plan,maybe,A,b"], "row 2: decision must be offer or decline"),
        (["pt0001,reablement_plan,offer,,b"], "row 2: who is empty"),
        (
            ["pt0001,reablement_plan,offer,A,b", "", "pt0001,reablement_plan,decline,A,b"],
            "row 4: pt0001 reablement_plan is already decided on row 2",
        ),
        (
            ["pt0001,reablement_plan,offer,A,b", f"pt0001,{SOCIAL},offer,A,b"],
            "row 3: pt0001 is already offered reablement_plan on row 2 (one action",
        ),
    ],
)
def test_a_wrong_overrides_row_is_refused_naming_it(
    rows: list[str], problem: str, tmp_path: Path
) -> None:
    path = overrides_file(tmp_path, *rows)
    with pytest.raises(OverrideError) as refused:
        read_overrides(path)
    assert str(refused.value).startswith(f"{path}: {problem}")


def test_overrides_the_week_cannot_hold_are_refused_naming_the_row(tmp_path: Path) -> None:
    people = week_people()
    missing = read_overrides(overrides_file(tmp_path, "pt9999,reablement_plan,offer,A,b"))
    with pytest.raises(UserError, match=r"overrides.csv: row 2: patient_id 'pt9999' is not among"):
        allocate(people, settings(), NO_HELP, WEEK, missing)
    south = people.index[people["locality"] == "South"][:4]
    too_many = read_overrides(
        overrides_file(tmp_path, *(f"{p},reablement_plan,offer,A,b" for p in south))
    )
    with pytest.raises(UserError) as refused:
        allocate(people, settings(), NO_HELP, WEEK, too_many)
    assert "overrides.csv: row 5: offers reablement_plan in South beyond its 3 place(s)" in str(
        refused.value
    )
    without = read_overrides(overrides_file(tmp_path, f"{south[0]},reablement_plan,offer,A,b"))
    with pytest.raises(UserError, match="row 2: no places are set"):
        allocate(people, OfferSettings(), NO_HELP, WEEK, without)
    short = _write(tmp_path / "short.csv", "patient_id,action\npt0001,reablement_plan\n")
    with pytest.raises(OverrideError, match=r"short.csv: missing column\(s\) decision, who, why"):
        read_overrides(short)


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def test_capacity_for_a_team_not_in_the_data_names_the_table_and_team() -> None:
    people = week_people()
    chosen = settings(capacity={REABLE: {"North": 2, "Nrth": 3}})
    with pytest.raises(CapacityError) as refused:
        allocate(people, chosen, NO_HELP, WEEK)
    named = refused.value.in_file("weekly.toml")
    assert str(named) == (
        "weekly.toml: [weekly.offers.capacity.reablement_plan] Nrth: no locality 'Nrth' in "
        "the week's data (known: North, South)"
    )
    by_cluster = settings(team="gp_cluster", capacity={REABLE: {"North A": 2}})
    assert allocate(people, by_cluster, NO_HELP, WEEK).offered.sum() <= 2


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            "[weekly.offers.capacity.reablment_plan]\nNorth = 2\n",
            "[weekly.offers] capacity: unknown action(s) ['reablment_plan'] (known: "
            "reablement_plan, social_prescribing_referral)",
        ),
        (
            "[weekly.offers.capacity.reablement_plan]\nNorth = -2\n",
            "[weekly.offers.capacity.reablement_plan] North: must be at least 0",
        ),
        (
            "[weekly.offers]\nlottery = true\n",
            "[weekly] offers: lottery_seed is required when lottery = true",
        ),
    ],
)
def test_wrong_capacity_settings_name_the_file_and_field(
    text: str, problem: str, tmp_path: Path
) -> None:
    path = _write(tmp_path / "weekly.toml", text)
    with pytest.raises(SettingsError) as refused:
        WeeklyConfig.from_toml(path)
    assert str(refused.value).startswith(f"{path}: {problem}")


def tied_week() -> pd.DataFrame:
    """North's reablement line: 4 clearly ahead, 8 tied around the boundary (5 places), 6
    clearly behind."""
    risk = [0.9, 0.85, 0.8, 0.75] + [0.5 + 0.001 * i for i in range(8)][::-1] + [0.2] * 6
    n = len(risk)
    return pd.DataFrame(
        {
            "locality": "North",
            "tier": "high",
            "risk": risk,
            "pathway": PATHWAYS[0],
        },
        index=pd.Index([f"pt{i:04d}" for i in range(n)], name="patient_id"),
    )


def test_the_lottery_orders_only_the_tied_band_and_is_reproducible_from_its_record() -> None:
    people = tied_week()
    chosen = settings(capacity={REABLE: {"North": 5}}, lottery=True, lottery_seed=42)
    offers = allocate(people, chosen, NO_HELP, WEEK)
    draws = offers.draws
    assert set(draws["patient_id"]) == set(people.index[4:12])  # the tied band only
    assert draws["won"].sum() == 1  # 5 places, 4 ahead of the band
    ahead = offers.columns.loc[people.index[:4]]
    assert (ahead["offer_by"] == "ranked").all()
    assert (offers.columns.loc[people.index[12:], "offer"] == "").all()
    winner = draws.loc[draws["won"], "patient_id"].item()
    assert offers.columns.at[winner, "offer_by"] == "lottery"
    assert offers.columns.at[winner, "offer_reason"].startswith(
        "offered reablement plan: 5th of 5 in North, drawn 1st of 8 by lottery (risk of "
        "emergency admission "
    )
    assert offers.columns.at[winner, "offer_reason"].endswith("within 10% of the boundary's 50.7%)")
    # The recorded seed, week, team and action give the same order again.
    first = draws.iloc[0]
    again = draw(list(draws["patient_id"]), int(first["seed"]), WEEK, "North", REABLE)
    assert again == list(draws.sort_values("drawn")["patient_id"])
    recorded = offers.manifest["lottery"]["draws"]
    assert recorded[0]["order"] == again and recorded[0]["won"] == [winner]
    assert allocate(people, chosen, NO_HELP, WEEK).draws.equals(draws)
    # Another seed draws another order; the lottery off draws nothing.
    other = allocate(
        people,
        settings(capacity={REABLE: {"North": 5}}, lottery=True, lottery_seed=43),
        NO_HELP,
        WEEK,
    )
    assert list(other.draws["patient_id"]) != list(draws["patient_id"])
    off = allocate(people, settings(capacity={REABLE: {"North": 5}}), NO_HELP, WEEK)
    assert off.draws.empty and off.manifest["lottery"]["draws"] == []
    assert list(off.columns.index[off.offered]) == list(people.index[:5])


def test_the_lottery_changes_only_who_gets_the_extra_offer() -> None:
    people = week_people(200, 9)
    off = allocate(people, settings(), NO_HELP, WEEK)
    on = allocate(people, settings(lottery=True, lottery_seed=1, lottery_band=0.3), NO_HELP, WEEK)
    assert not on.draws.empty
    assert off.offered.sum() == on.offered.sum()
    drawn = set(on.draws["patient_id"])
    changed = off.columns.index[off.columns["offer"] != on.columns["offer"]]
    assert set(changed) <= drawn
    # Nobody's action changes, only whether it is offered; nobody leaves the list.
    made = on.columns.loc[on.offered, "offer"]
    assert (
        made
        == people.loc[made.index, "pathway"].map(
            {"integrated reablement plan": REABLE, "social prescribing": SOCIAL}
        )
    ).all()


def test_no_tie_at_the_boundary_means_no_draw() -> None:
    people = tied_week()
    chosen = settings(capacity={REABLE: {"North": 4}}, lottery=True, lottery_seed=42)
    offers = allocate(people, chosen, NO_HELP, WEEK)  # the 4th and 5th are far apart
    assert offers.draws.empty
    assert list(offers.columns.index[offers.offered]) == list(people.index[:4])
    # The week's lottery events file is still written, with no rows (it once failed).
    events = draw_events(offers.draws)
    assert pa.Table.from_pandas(events, schema=EVENTS.schema, preserve_index=False).num_rows == 0


def test_the_command_refuses_a_wrong_overrides_file_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = overrides_file(
        tmp_path, "pt0001,reablement_plan,offer,A,b", "pt0002,reablement_plan,,A,b"
    )
    argv = ["weekly", "--data", str(tmp_path), "--as-of", "2026-10-26", "--out", str(tmp_path)]
    with pytest.raises(SystemExit) as stopped:
        main([*argv, "--overrides", str(path), "--workdir", str(tmp_path)])
    assert stopped.value.code == 2
    assert capsys.readouterr().err == (
        f"[riskstrat] error: {path}: row 3: decision is empty (every row needs patient_id, "
        "action, decision, who, why)\n"
    )


def test_places_for_help_the_exposure_rule_does_not_count_are_refused(tmp_path: Path) -> None:
    only_reablement = ExposureRule(kinds=(REABLE,))
    with pytest.raises(UserError, match=r"\[weekly.offers.capacity.social_prescribing_referral\]"):
        weekly_run(
            tmp_path,
            WEEK,
            None,  # refused before the model is needed
            tmp_path,
            WeeklyConfig(offers=settings()),
            exposure_rule=only_reablement,
        )


def test_a_decline_and_a_missed_place_are_both_said(tmp_path: Path) -> None:
    people = week_people().assign(
        benefit_reablement_plan=0.05, benefit_social_prescribing_referral=0.01
    )
    first = people.index[(people["locality"] == "North") & (people["tier"] != "")][0]
    path = overrides_file(tmp_path, f"{first},reablement_plan,decline,A Nurse,not wanted")
    few = settings(capacity={REABLE: {"North": 5}, SOCIAL: {"North": 0, "South": 1}})
    offers = allocate(people, few, NO_HELP, WEEK, read_overrides(path))
    reason = offers.columns.at[first, "offer_reason"]
    assert reason.startswith("very high risk, not offered reablement plan: declined by the team")
    assert reason.endswith(
        "very high risk, not offered: no expected admissions prevented by "
        "any help with places in North"
    )


def test_places_left_after_first_choices_go_to_people_the_help_fits_too() -> None:
    people = week_people(200, 4)
    people["pathway"] = np.where(people.index.str[-1].isin(list("0123")), PATHWAYS[2], PATHWAYS[0])
    fits = pd.DataFrame(
        {p: False for p in PATHWAYS} | {"social prescribing": people.index.str[-1] < "6"},
        index=people.index,
    )
    chosen = settings(lottery=True, lottery_seed=3, lottery_band=0.2)
    offers = allocate(people, chosen, NO_HELP, WEEK, fits=fits)
    table = people.join(offers.columns).join(fits["social prescribing"].rename("fits_social"))
    social = table[table["offer"] == SOCIAL]
    # Nobody's suggested pathway is social prescribing: North's 4 places go to second choices
    # the help fits, in risk order, never to anyone in a draw, within the places.
    assert len(social) == 4 and (social["locality"] == "North").all()
    assert (social["offer_by"] == "second choice").all() and social["fits_social"].all()
    assert not set(social.index) & set(offers.draws["patient_id"])
    waiting = table[
        (table["locality"] == "North")
        & (table["tier"] != "")
        & table["fits_social"]
        & (table["offer"] == "")
        & ~table.index.isin(offers.draws["patient_id"])
    ]
    assert social["risk"].min() >= waiting["risk"].max()
    assert (
        social["offer_reason"]
        .str.startswith(
            "offered social prescribing referral, which fits them too, with places left after "
            "the first choices: "
        )
        .all()
    )
    assert offers.manifest["lines"][SOCIAL]["North"]["second_choice"] == 4
    # Without the rules' view of what fits, those places stay empty.
    assert not (allocate(people, chosen, NO_HELP, WEEK)).columns["offer"].eq(SOCIAL).any()


def test_the_rules_say_which_pathways_fit_besides_the_one_that_fired(tmp_path: Path) -> None:
    folder = write_week(tmp_path, WEEK, None)
    people = pd.read_parquet(folder / "people.parquet").set_index("patient_id")
    rules = load_rules()
    fits = rules.fits(people)
    fired = rules.apply(people)["pathway"]
    assert all(fits.at[pid, pathway] for pid, pathway in fired.items())
    applies = drivers(people)
    social = (
        (people["tier"] != "")
        & applies.any(axis=1)
        & ~people["flag_care_home"]
        & (people["age"] >= 18)
    )
    assert fits["social prescribing"].equals(social.rename("social prescribing"))
    both = fits["social prescribing"] & (fired == "integrated reablement plan")
    assert both.any()  # frail and isolated: reablement first, social prescribing fits too
