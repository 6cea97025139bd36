"""The weekly run on the small borough: two weeks, their files, idempotence, atomicity."""

from __future__ import annotations

import json
import shutil
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest
from weekly_fixture import scored_weeks

from riskstrat.contract.validation import validate_dir
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly import run as weekly
from riskstrat.serving.weekly.outputs import COLUMNS
from riskstrat.serving.weekly.referrals import ReferralCriteria, select_referrals
from riskstrat.serving.weekly.run import weekly_run

LAST_WEEK, WEEK = date(2026, 10, 19), date(2026, 10, 26)
PEOPLE_COLUMNS = [
    "rank",
    "patient_id",
    "practice_id",
    "practice_name",
    "gp_cluster",
    "locality",
    "sex",
    "age",
    "age_band",
    "risk",
    "percentile",
    "previous_risk",
    "change",
    "tier",
    "week_status",
    "reason_1",
    "reason_2",
    "reason_3",
    "flag_care_home",
    "flag_frailty",
    "flag_lives_alone",
    "flag_mental_health",
    "flag_social_care_package",
    "flag_recent_discharge",
    "flags",
    "pathway",
    "pathway_rule",
]


@pytest.fixture(scope="module")
def lists(
    validated: Path, champion: RegisteredBundle, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    return scored_weeks(validated, champion, tmp_path_factory.mktemp("lists"), LAST_WEEK, WEEK)


def _people(lists: Path, week: date = WEEK) -> pd.DataFrame:
    return pd.read_parquet(lists / week.isoformat() / "people.parquet")


def test_people_table_has_everyone_ranked(lists: Path) -> None:
    people = _people(lists)
    manifest = json.loads((lists / WEEK.isoformat() / "manifest.json").read_text())
    assert set(PEOPLE_COLUMNS) <= set(people.columns)
    assert "birth_month" not in people.columns
    assert len(people) == manifest["counts"]["scored"] == people["patient_id"].nunique()
    assert list(people["rank"]) == list(range(1, len(people) + 1))
    assert people["risk"].is_monotonic_decreasing
    listed = people[people["tier"] != ""]
    assert len(listed) == manifest["counts"]["listed"]
    assert sum(manifest["counts"]["by_locality"].values()) == len(listed)
    assert sum(manifest["counts"]["by_tier"].values()) == len(listed)
    assert (listed["reason_1"] != "").all()
    assert set(listed["pathway"]) <= {
        "integrated reablement plan",
        "social prescribing",
        "care coordination",
    }
    assert (people.loc[people["tier"] == "", "pathway"] == "none").all()


def test_week_on_week_reconciles(lists: Path) -> None:
    before, now = _people(lists, LAST_WEEK), _people(lists)
    manifest = json.loads((lists / WEEK.isoformat() / "manifest.json").read_text())
    assert manifest["previous_week"] == LAST_WEEK.isoformat()
    was = set(before.loc[before["tier"] != "", "patient_id"])
    is_ = set(now.loc[now["tier"] != "", "patient_id"])
    counts = manifest["counts"]
    assert counts["new"] == len(is_ - was)
    assert counts["stayed"] == len(is_ & was)
    assert counts["left"] == len(was - is_)
    left = pd.read_csv(lists / WEEK.isoformat() / "left.csv")
    assert set(left["Pseudonymised ID"]) == was - is_
    merged = now.merge(before[["patient_id", "risk"]], on="patient_id", suffixes=("", "_b"))
    assert (merged["previous_risk"] == merged["risk_b"]).all()
    rising = now[now["tier"] == "rising"]
    assert len(rising) > 0
    assert (rising["change"] >= 0.02).all()


def test_files_per_locality_and_cluster(lists: Path) -> None:
    folder = lists / WEEK.isoformat()
    people = _people(lists)
    listed = people[people["tier"] != ""]
    for locality, group in listed.groupby("locality"):
        name = f"locality_{locality.lower()}"
        table = pd.read_csv(folder / f"{name}.csv")
        assert list(table.columns) == list(COLUMNS.values())
        assert list(table["Pseudonymised ID"]) == list(group["patient_id"])
        book = openpyxl.load_workbook(folder / f"{name}.xlsx", read_only=False)
        assert book.sheetnames == sorted(group["gp_cluster"].unique())
        sheet = book[book.sheetnames[0]]
        assert sheet.freeze_panes == "A2"
        assert [c.value for c in sheet[1]] == list(COLUMNS.values())
        assert sum(book[s].max_row - 1 for s in book.sheetnames) == len(group)
        html = (folder / f"{name}.html").read_text()
        assert "<svg" in html and "People per tier" in html
        assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "<script" not in html
    clusters = sorted(p.name for p in folder.glob("cluster_*.csv"))
    assert len(clusters) == listed["gp_cluster"].nunique()


def test_same_week_again_gives_identical_bytes(
    lists: Path, validated: Path, champion: RegisteredBundle
) -> None:
    folder = lists / WEEK.isoformat()
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    weekly_run(validated, WEEK, champion, lists)
    after = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert before.keys() == after.keys()
    assert [n for n in before if before[n] != after[n]] == []
    log = [json.loads(line) for line in (lists / "runs.jsonl").read_text().splitlines()]
    assert [entry["week"] for entry in log] == ["2026-10-19", "2026-10-26", "2026-10-26"]
    assert all(entry["seconds"]["total"] > 0 for entry in log)


def test_a_failed_run_leaves_the_last_good_week(
    lists: Path,
    validated: Path,
    champion: RegisteredBundle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out = tmp_path / "lists"
    shutil.copytree(lists / WEEK.isoformat(), out / WEEK.isoformat())
    before = {p.name: p.read_bytes() for p in (out / WEEK.isoformat()).iterdir()}
    calls = []

    def fail_midway(*args: object) -> None:
        calls.append(args)
        if len(calls) == 2:
            raise OSError("disk full")

    monkeypatch.setattr(weekly, "write_workbook", fail_midway)
    with pytest.raises(OSError, match="disk full"):
        weekly_run(validated, WEEK, champion, out)
    after = {p.name: p.read_bytes() for p in (out / WEEK.isoformat()).iterdir()}
    assert before == after
    assert sorted(p.name for p in out.iterdir()) == [WEEK.isoformat()]


def test_referral_filter_on_a_real_week(lists: Path) -> None:
    people = _people(lists)
    chosen = select_referrals(people, ReferralCriteria(min_tier="rising"))
    assert len(chosen) > 0
    assert (chosen["age"] >= 18).all()
    assert (chosen["care_home_resident"] == 0).all()
    assert chosen["matched"].str.len().gt(0).all()


def test_flag_labels_follow_the_flags_in_their_order() -> None:
    from riskstrat.serving.weekly.config import WeeklyConfig
    from riskstrat.serving.weekly.flags import flag_columns

    none = dict.fromkeys(
        [
            "care_home_resident",
            "has_frailty",
            "lives_alone_coded",
            "has_serious_mental_illness",
            "has_depression",
            "has_anxiety",
            "mental_health_contacts_365d",
            "social_care_package_active",
        ],
        0.0,
    ) | {"frailty_index": 0.0, "days_since_emergency_discharge": float("nan")}
    rows = pd.DataFrame(
        [
            none,
            none | {"lives_alone_coded": 1.0, "care_home_resident": 1.0},
            none | {"has_anxiety": 1.0, "days_since_emergency_discharge": 3.0},
        ],
        index=["p1", "p2", "p3"],
    )
    flags = flag_columns(rows, WeeklyConfig())
    assert flags["flags"].tolist() == [
        "",
        "care home; lives alone",
        "mental health; recent discharge",
    ]
    assert flags["flag_recent_discharge"].tolist() == [False, False, True]


def test_the_api_and_the_list_give_each_person_the_same_tier(
    lists: Path,
    validated: Path,
    champion: RegisteredBundle,
    tracking_uri: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """/v1/score and the weekly run apply the model's one tier policy: the very high and high
    people of the week, and a sample of everyone else, get the same tier from both (rising
    needs last week's risk, which only the weekly run knows; the API calls them not listed)."""
    import asyncio

    from riskstrat.contract.tables import ContractTables
    from riskstrat.features.engine import build_features
    from riskstrat.serving.service import FeatureRecord, RiskService

    people = _people(lists).set_index("patient_id")
    listed = people.index[people["tier"].isin(["very high", "high"])]
    others = people.index[~people["tier"].isin(["very high", "high"])][::25]
    assert len(listed) > 0
    features = build_features(ContractTables.from_dir(validated), [WEEK]).droplevel("as_of")
    chosen = features.loc[listed.append(others)]
    monkeypatch.setenv("RISKSTRAT_TRACKING_URI", tracking_uri)
    monkeypatch.setenv("RISKSTRAT_RELOAD_SECONDS", "0")
    service = RiskService()
    records = [
        FeatureRecord(id=str(pid), features=row[champion.bundle.feature_names].to_dict())
        for pid, row in chosen.iterrows()
    ]
    response = asyncio.run(service.score(records=records, top_k=0))
    api = {s.id: s.tier for s in response.scores}
    expected = people.loc[chosen.index, "tier"].replace("rising", "")
    assert api == expected.to_dict()


def test_names_that_share_a_file_name_each_keep_their_own_list(
    small_borough_dir: Path, champion: RegisteredBundle, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    for table in ("patients", "events"):
        shutil.copy(small_borough_dir / f"{table}.parquet", data)
    practices = pd.read_parquet(small_borough_dir / "practices.parquet")
    practices["locality"] = practices["locality"].replace({"South": "north"})
    practices["gp_cluster"] = practices["gp_cluster"].replace({"North 2": "North-1"})
    practices.to_parquet(data / "practices.parquet", index=False)
    validated = tmp_path / "validated"
    assert validate_dir(data, validated, WEEK).reconciles
    folder = weekly_run(validated, WEEK, champion, tmp_path / "lists").folder

    manifest = json.loads((folder / "manifest.json").read_text())
    listed = _people(tmp_path / "lists").query("tier != ''")
    for scope, column in (("locality", "locality"), ("cluster", "gp_cluster")):
        assert len(list(folder.glob(f"{scope}_*.csv"))) == listed[column].nunique(), scope
        names = {stem: s["name"] for stem, s in manifest["lists"].items() if s["scope"] == scope}
        assert sorted(names.values()) == sorted(listed[column].unique())
        assert sorted(p.stem for p in folder.glob(f"{scope}_*.csv")) == sorted(names)
        for stem, name in names.items():
            table = pd.read_csv(folder / f"{stem}.csv")
            expected = listed.loc[listed[column] == name, "patient_id"]
            assert list(table["Pseudonymised ID"]) == list(expected), stem
    assert {"North", "north"} <= set(listed["locality"])
    assert {"North 1", "North-1"} <= set(listed["gp_cluster"])
    assert "locality_central.csv" in {p.name for p in folder.iterdir()}  # no clash, no digits
