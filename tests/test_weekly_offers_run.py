"""Offers in the real weekly run on the small borough: in people.parquet, the teams' files and
the manifest; the team's overrides; the lottery kept with the week and read back; the same
inputs giving the same bytes; a wrong override refused before anything is written."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.common.errors import UserError
from riskstrat.common.progress import Lines
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, EventKind
from riskstrat.contract.tables import ContractTables
from riskstrat.impact.panels import lottery_draws
from riskstrat.impact.plan import LotteryDesign
from riskstrat.models.benefit import benefit_column
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.config import OfferSettings, WeeklyConfig
from riskstrat.serving.weekly.offers import CapacityError, draw, draw_events
from riskstrat.serving.weekly.overrides import read_overrides
from riskstrat.serving.weekly.run import SavedBenefit, weekly_run
from riskstrat.serving.weekly.store import LOTTERY_EVENTS_FILE, LOTTERY_FILE, WeekStore

WEEK = date(2026, 10, 26)
REABLE, SOCIAL = "reablement_plan", "social_prescribing_referral"


@pytest.fixture(scope="module")
def localities(validated: Path) -> list[str]:
    practices = pd.read_parquet(validated / PRACTICES.file_name)
    return sorted(practices["locality"].unique())


@pytest.fixture(scope="module")
def config(localities: list[str]) -> WeeklyConfig:
    capacity = {REABLE: {t: 4 for t in localities}, SOCIAL: {localities[0]: 3}}
    offers = OfferSettings(capacity=capacity, lottery=True, lottery_seed=2026, lottery_band=0.5)
    return WeeklyConfig(offers=offers)


@pytest.fixture(scope="module")
def plain_week(
    validated: Path, champion: RegisteredBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The week with no places set: the list as before offers existed."""
    out = tmp_path_factory.mktemp("plain")
    weekly_run(validated, WEEK, champion, out)
    return out


def _overrides(folder: Path, plain: Path, localities: list[str]) -> Path:
    """A decline of the first person a plain ranking would offer reablement in the first
    locality, and an offer to someone unlisted there."""
    people = pd.read_parquet(plain / WEEK.isoformat() / "people.parquet")
    first = people[(people["locality"] == localities[0]) & (people["tier"] != "")]
    first = first[first["pathway"] == "integrated reablement plan"].iloc[0]["patient_id"]
    unlisted = people[(people["locality"] == localities[0]) & (people["tier"] == "")]
    path = folder / "overrides.csv"
    path.write_text(
        "patient_id,action,decision,who,why\n"
        f"{first},reablement_plan,decline,A Nurse,already under the frailty team\n"
        f"{unlisted.iloc[0]['patient_id']},reablement_plan,offer,Dr B,carer asked\n"
    )
    return path


@pytest.fixture(scope="module")
def offers_week(
    validated: Path,
    champion: RegisteredBundle,
    config: WeeklyConfig,
    plain_week: Path,
    localities: list[str],
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, Path]:
    out = tmp_path_factory.mktemp("offers")
    path = _overrides(out, plain_week, localities)
    weekly_run(validated, WEEK, champion, out / "lists", config, overrides=read_overrides(path))
    return out / "lists", path


def test_offers_are_in_the_people_table_the_files_and_the_manifest(
    offers_week: tuple[Path, Path], config: WeeklyConfig, localities: list[str]
) -> None:
    lists, overrides = offers_week
    folder = lists / WEEK.isoformat()
    people = pd.read_parquet(folder / "people.parquet").set_index("patient_id")
    manifest = json.loads((folder / "manifest.json").read_text())
    made = people[people["offer"] != ""].groupby(["offer", "locality"]).size()
    assert made.sum() > 0
    for (action, team), n in made.items():
        assert n <= config.offers.capacity[action][team]
    listed = people[people["tier"] != ""]
    assert (listed["offer_reason"] != "").all()
    block = manifest["offers"]
    assert block["capacity"] == config.offers.capacity
    assert block["ranking"]["key"] == "risk"
    assert block["offered"] == {a: int(made.xs(a).sum()) for a in config.offers.capacity}
    assert [r["row"] for r in block["overrides"]["rows"]] == [2, 3]
    assert block["overrides"]["file"] == overrides.name
    # The team's offer to someone not on the list: offered, and in the locality's files.
    chosen = block["overrides"]["rows"][1]["patient_id"]
    assert people.at[chosen, "offer_by"] == "team" and people.at[chosen, "tier"] == ""
    stem = next(s for s, v in manifest["lists"].items() if v["name"] == localities[0])
    table = pd.read_csv(folder / f"{stem}.csv", dtype=str, keep_default_na=False)
    assert {"Offer this week", "Why offered or not"} <= set(table.columns)
    row = table[table["Pseudonymised ID"] == chosen].iloc[0]
    assert row["Offer this week"] == "reablement plan"
    assert row["Why offered or not"].startswith("offered reablement plan by the team (Dr B")
    declined = block["overrides"]["rows"][0]["patient_id"]
    assert people.at[declined, "offer"] == ""
    assert "declined by the team (A Nurse" in people.at[declined, "offer_reason"]
    report = (folder / f"{stem}.html").read_text()
    assert "Offers ranked by" in report and "Why offered or not" in report


def test_the_lottery_is_kept_with_the_week_and_read_back(
    offers_week: tuple[Path, Path], validated: Path
) -> None:
    lists, _ = offers_week
    store = WeekStore(lists)
    draws = store.lottery(WEEK)
    manifest = json.loads((lists / WEEK.isoformat() / "manifest.json").read_text())
    assert LOTTERY_FILE in manifest["files"]
    assert not draws.empty, "a band of half the boundary key should tie someone"
    recorded = manifest["offers"]["lottery"]["draws"]
    assert len(recorded) == draws.groupby(["team", "action"]).ngroups
    people = store.people(WEEK).set_index("patient_id")
    for entry in recorded:
        rows = draws[(draws["team"] == entry["team"]) & (draws["action"] == entry["action"])]
        order = draw(
            list(rows["patient_id"]),
            int(rows["seed"].iloc[0]),
            WEEK,
            entry["team"],
            entry["action"],
        )
        assert order == entry["order"] == list(rows.sort_values("drawn")["patient_id"])
        winners = rows.loc[rows["won"], "patient_id"]
        assert list(winners) == entry["won"]
        assert (people.loc[winners, "offer_by"] == "lottery").all()
        losers = rows.loc[~rows["won"], "patient_id"]
        assert (people.loc[losers, "offer"] == "").all()
    # Kept as contract events too: appended to the extract, they are the draw that the
    # evaluation's lottery design reads.
    table = pq.read_table(lists / WEEK.isoformat() / LOTTERY_EVENTS_FILE)
    assert LOTTERY_EVENTS_FILE in manifest["files"]
    assert table.schema.equals(EVENTS.schema)
    expected = pa.Table.from_pandas(draw_events(draws), schema=EVENTS.schema, preserve_index=False)
    assert table.equals(expected)
    assert set(table.column("kind").to_pylist()) == {EventKind.RISK_LIST_LOTTERY.value}
    extract = pd.concat([pd.read_parquet(validated / EVENTS.file_name), table.to_pandas()])
    fed_back = ContractTables.from_frames(
        pd.read_parquet(validated / PATIENTS.file_name),
        extract,
        pd.read_parquet(validated / PRACTICES.file_name),
    )
    read = lottery_draws(fed_back, LotteryDesign(runs=(WEEK,))).set_index("person")
    assert read["drawn"].to_dict() == draws.set_index("patient_id")["won"].to_dict()
    assert set(read["help"]) == set(draws["action"])


def test_same_inputs_give_the_same_bytes(
    offers_week: tuple[Path, Path],
    validated: Path,
    champion: RegisteredBundle,
    config: WeeklyConfig,
    tmp_path: Path,
) -> None:
    lists, overrides = offers_week
    weekly_run(validated, WEEK, champion, tmp_path, config, overrides=read_overrides(overrides))
    before = {p.name: p.read_bytes() for p in (lists / WEEK.isoformat()).iterdir()}
    after = {p.name: p.read_bytes() for p in (tmp_path / WEEK.isoformat()).iterdir()}
    assert before.keys() == after.keys()
    assert [n for n in before if before[n] != after[n]] == []


def test_without_places_the_week_has_no_offers_and_no_draw(plain_week: Path) -> None:
    folder = plain_week / WEEK.isoformat()
    people = pd.read_parquet(folder / "people.parquet")
    assert (people["offer"] == "").all() and (people["offer_reason"] == "").all()
    assert not (folder / LOTTERY_FILE).exists()
    assert WeekStore(plain_week).lottery(WEEK) is None
    assert json.loads((folder / "manifest.json").read_text())["offers"]["active"] is False


def test_a_wrong_override_stops_the_run_before_it_writes(
    validated: Path, champion: RegisteredBundle, config: WeeklyConfig, tmp_path: Path
) -> None:
    path = tmp_path / "overrides.csv"
    path.write_text("patient_id,action,decision,who,why\nnobody,reablement_plan,offer,A,b\n")
    said: list[str] = []
    with pytest.raises(
        UserError, match=r"overrides.csv: row 2: patient_id 'nobody' is not among the patients"
    ):
        weekly_run(
            validated,
            WEEK,
            champion,
            tmp_path / "lists",
            config,
            progress=Lines(said.append, steps=True),
            overrides=read_overrides(path),
        )
    assert said == []  # refused before the features were started
    assert not (tmp_path / "lists" / WEEK.isoformat()).exists()
    typo = replace(config, offers=replace(config.offers, capacity={REABLE: {"Nowhere": 2}}))
    with pytest.raises(CapacityError, match="no locality 'Nowhere' in the practices"):
        weekly_run(validated, WEEK, champion, tmp_path / "typo", typo, progress=Lines(said.append))
    assert said == []
    no_lottery = replace(config, offers=replace(config.offers, lottery=False))
    weekly_run(validated, WEEK, champion, tmp_path / "off", no_lottery)
    assert WeekStore(tmp_path / "off").lottery(WEEK) is None


def test_a_benefit_model_ranks_the_offers_for_the_listed_and_is_named_in_the_manifest(
    validated: Path,
    champion: RegisteredBundle,
    config: WeeklyConfig,
    benefit_file: Path,
    tmp_path: Path,
) -> None:
    saved = SavedBenefit.load(benefit_file)
    weekly_run(validated, WEEK, champion, tmp_path, config, benefit=saved)
    manifest = json.loads((tmp_path / WEEK.isoformat() / "manifest.json").read_text())
    assert manifest["offers"]["ranking"]["key"] == "benefit"
    entry = manifest["benefit_model"]
    assert entry["file"] == benefit_file.name and len(entry["sha256"]) == 64
    assert entry["actions"] == [a.describe() for a in saved.model.actions]
    people = pd.read_parquet(tmp_path / WEEK.isoformat() / "people.parquet")
    listed = people["tier"] != ""
    column = benefit_column(REABLE)
    assert people.loc[listed, column].notna().all()
    assert people.loc[~listed, column].isna().all()  # never offered help: no estimate
    offered = people[people["offer"] == REABLE]
    assert offered["offer_reason"].str.contains("expected admissions prevented").any()


def test_without_a_benefit_model_the_manifest_says_so(offers_week: tuple[Path, Path]) -> None:
    lists, _ = offers_week
    manifest = json.loads((lists / WEEK.isoformat() / "manifest.json").read_text())
    assert manifest["benefit_model"]["file"] is None
    assert manifest["offers"]["ranking"]["key"] != "benefit"
