"""Synthea CSV exports: counts against the source files, other layouts, broken exports."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from ingest_support import SYNTHEA, accepted_events, copy_extract, key_file, read, run

from riskstrat.sources.ingest.pipeline import IngestResult
from riskstrat.sources.ingest.tables import IngestError


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, keyed: Path) -> IngestResult:
    return run("synthea", SYNTHEA, tmp_path_factory.mktemp("synthea"), keyed)


def _expected_emergency_admissions(encounters: pd.DataFrame) -> int:
    """Inpatient encounters with an emergency or urgent-care encounter that day or the day
    before."""
    day = pd.to_datetime(encounters["START"].str[:10])
    end = pd.to_datetime(encounters["STOP"].str[:10])
    frame = encounters.assign(day=day, end=end)
    inpatient = frame[frame["ENCOUNTERCLASS"] == "inpatient"]
    er = frame[frame["ENCOUNTERCLASS"].isin(["emergency", "urgentcare"])]
    pairs = inpatient.merge(er, on="PATIENT", suffixes=("", "_er"))
    near = ((pairs["day"] - pairs["day_er"]).dt.days.between(0, 1)) | (
        (pairs["day"] - pairs["end_er"]).dt.days.between(0, 1)
    )
    return pairs.loc[near, "Id"].nunique()


def test_mapped_counts_match_the_source_files(sample: IngestResult) -> None:
    encounters = read(SYNTHEA, "encounters.csv")
    klass = encounters["ENCOUNTERCLASS"].value_counts()
    events = accepted_events(sample.out)
    kinds = events["kind"].value_counts()
    emergency = _expected_emergency_admissions(encounters)

    assert kinds["ae_attendance"] == klass["emergency"] + klass["urgentcare"] == 773
    assert kinds["emergency_admission"] == emergency == 13
    assert kinds["elective_admission"] == klass["inpatient"] - emergency
    assert kinds["outpatient"] == klass["outpatient"]
    assert kinds["gp_contact"] == klass["ambulatory"] + klass["wellness"] + klass["virtual"]
    assert (events.loc[events["kind"] == "ae_attendance", "code"] == "admitted").sum() == 13
    admissions = sample.report["admissions"]
    assert admissions["emergency_room_visits"] == klass["emergency"] == 250
    assert admissions["inpatient_visits"] == klass["inpatient"] == 49
    patients = pd.read_parquet(sample.out / "patients.parquet")
    source = read(SYNTHEA, "patients.csv")
    assert len(patients) == len(source) == 111
    assert patients["death_date"].notna().sum() == source["DEATHDATE"].notna().sum() == 11
    assert sample.report["reconciles"]


def test_conditions_become_catalogue_codes_once_per_person(sample: IngestResult) -> None:
    events = accepted_events(sample.out)
    ltc = events[events["kind"] == "ltc_diagnosis"]
    assert not ltc.duplicated(["patient_id", "code"]).any()
    conditions = read(SYNTHEA, "conditions.csv")
    hypertensive = conditions.loc[conditions["CODE"] == "59621000", "PATIENT"].nunique()
    assert (ltc["code"] == "hypertension").sum() == hypertensive
    assert set(ltc["code"]) >= {"hypertension", "diabetes", "ckd", "chd", "dementia"}
    assert (ltc["code_system"] == "riskstrat").all()
    top = sample.report["unmapped_codes"]["conditions"][0]
    assert (top["code"], top["rows"]) == ("314529007", 1493)


def test_medications_become_classed_issues(sample: IngestResult) -> None:
    events = accepted_events(sample.out)
    drugs = events[events["kind"] == "prescription"]
    assert {"insulin", "opioid", "anticoagulant", "antihypertensive", "statin"} <= set(
        drugs["code"]
    )
    days = pd.to_datetime(drugs["end"]) - pd.to_datetime(drugs["start"])
    assert days.dt.days.between(0, 27).all()
    table = sample.report["source_tables"]["medications"]
    assert table["rows_in"] == len(read(SYNTHEA, "medications.csv"))
    assert table["rows_in"] == table["rows_mapped"] + table["rows_ignored"]


def test_older_layout_lower_case_names_and_parquet_give_the_same_counts(
    tmp_path: Path, sample: IngestResult, keyed: Path
) -> None:
    folder = tmp_path / "old"
    folder.mkdir()
    for name in ("patients", "encounters", "conditions", "medications"):
        frame = read(SYNTHEA, f"{name}.csv")
        if name == "encounters":
            frame = frame.drop(columns=["ORGANIZATION", "PAYER"]).rename(columns={"START": "DATE"})
        frame.columns = [c.lower() for c in frame.columns]
        frame["extra_column"] = "x"
        frame.to_parquet(folder / f"{name.upper()}.parquet", index=False)
    result = run("synthea", folder, tmp_path / "out", keyed)
    assert result.report["events_by_kind"] == {
        k: v
        for k, v in sample.report["events_by_kind"].items()
        if k in result.report["events_by_kind"]
    }
    assert result.report["admissions"] == sample.report["admissions"]
    assert result.report["layout"].startswith("older")


def test_missing_required_table_names_it(tmp_path: Path, keyed: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    read(SYNTHEA, "patients.csv").to_csv(folder / "patients.csv", index=False)
    with pytest.raises(IngestError, match="required table 'encounters' not found"):
        run("synthea", folder, tmp_path / "out", keyed)


def test_missing_required_column_names_file_and_column(tmp_path: Path, keyed: Path) -> None:
    folder = copy_extract(SYNTHEA, tmp_path / "broken")
    read(SYNTHEA, "encounters.csv").drop(columns="ENCOUNTERCLASS").to_csv(
        folder / "encounters.csv", index=False
    )
    with pytest.raises(IngestError, match=r"encounters\.csv: missing column 'encounterclass'"):
        run("synthea", folder, tmp_path / "out", keyed)


def test_unknown_class_bad_dates_and_duplicate_people_are_counted_or_quarantined(
    tmp_path: Path, keyed: Path
) -> None:
    folder = copy_extract(SYNTHEA, tmp_path / "broken")
    encounters = read(SYNTHEA, "encounters.csv")
    encounters.loc[:4, "ENCOUNTERCLASS"] = "teleportation"
    encounters.loc[10, "STOP"] = "1900-01-01T00:00:00Z"  # ends before it starts
    encounters.to_csv(folder / "encounters.csv", index=False)
    patients = read(SYNTHEA, "patients.csv")
    pd.concat([patients, patients.iloc[[0]]]).to_csv(folder / "patients.csv", index=False)
    result = run("synthea", folder, tmp_path / "out", keyed)

    table = result.report["source_tables"]["encounters"]
    assert table["ignored_by_reason"] == {"unknown_encounter_class": 5}
    assert table["reconciles"]
    unknown = pd.read_parquet(tmp_path / "out" / "unmapped" / "encounters.parquet")
    assert set(unknown["reason"]) == {"unknown_encounter_class"}
    assert set(unknown["code"]) == {"teleportation"}
    contract = result.report["contract_tables"]
    assert contract["patients"]["by_reason"] == {"duplicate_key": 1}
    assert contract["events"]["by_reason"]["end_before_start"] >= 1
    assert result.report["reconciles"]
