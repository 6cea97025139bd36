"""OMOP CDM: counts against the source files, v5.3/v5.4, Parquet and DuckDB, broken
extracts."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd
import pytest
from ingest_support import OMOP, OMOP_SKIP, accepted_events, copy_extract, key_file, read, run

from riskstrat.sources.ingest.pipeline import IngestResult
from riskstrat.sources.ingest.tables import IngestError


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("key"))


@pytest.fixture(scope="module")
def small_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample without the big vocabulary and measurement tables the adapter ignores."""
    return copy_extract(OMOP, tmp_path_factory.mktemp("omop"), OMOP_SKIP)


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory, keyed: Path) -> IngestResult:
    return run("omop", OMOP, tmp_path_factory.mktemp("omop-out"), keyed)


def _expected(visits: pd.DataFrame) -> int:
    """Inpatient visits with an ER visit starting or ending that day or the day before."""
    day = pd.to_datetime(visits["visit_start_date"])
    end = pd.to_datetime(visits["visit_end_date"])
    frame = visits.assign(day=day, end=end)
    inpatient = frame[frame["visit_concept_id"] == "9201"]
    er = frame[frame["visit_concept_id"] == "9203"]
    pairs = inpatient.merge(er, on="person_id", suffixes=("", "_er"))
    near = (pairs["day"] - pairs["day_er"]).dt.days.between(0, 1) | (
        (pairs["day"] - pairs["end_er"]).dt.days.between(0, 1)
    )
    return pairs.loc[near, "visit_occurrence_id"].nunique()


def test_mapped_counts_match_the_source_files(sample: IngestResult) -> None:
    visits = read(OMOP, "VISIT_OCCURRENCE.csv")
    concept = visits["visit_concept_id"].value_counts()
    kinds = accepted_events(sample.out)["kind"].value_counts()
    emergency = _expected(visits)

    assert kinds["ae_attendance"] == concept["9203"] == 56
    assert kinds["emergency_admission"] == emergency == 4
    assert kinds["elective_admission"] == concept["9201"] - emergency == 9
    providers = read(OMOP, "PROVIDER.csv")
    gp = providers.loc[providers["specialty_source_value"] == "GENERAL PRACTICE", "provider_id"]
    outpatient = visits[visits["visit_concept_id"] == "9202"]
    assert kinds["gp_contact"] == outpatient["provider_id"].isin(gp).sum() == 1722
    patients = pd.read_parquet(sample.out / "patients.parquet")
    assert len(patients) == len(read(OMOP, "PERSON.csv")) == 28
    assert patients["death_date"].notna().sum() == len(read(OMOP, "DEATH.csv"))
    assert sample.report["cdm_version"] == "5.4"
    assert sample.report["people"]["without_observation_period"] == 0
    assert sample.report["reconciles"]


def test_conditions_map_through_the_vocabulary(sample: IngestResult) -> None:
    ltc = accepted_events(sample.out).query("kind == 'ltc_diagnosis'")
    conditions = read(OMOP, "CONDITION_OCCURRENCE.csv")
    hypertensive = conditions.loc[conditions["condition_source_value"] == "59621000"]
    assert (ltc["code"] == "hypertension").sum() == hypertensive["person_id"].nunique()
    assert {"heart_failure", "diabetes", "ckd", "dementia", "stroke_tia"} <= set(ltc["code"])


def test_versions_spellings_and_storage_give_the_same_counts(
    tmp_path: Path, sample: IngestResult, small_copy: Path, keyed: Path
) -> None:
    expected = sample.report["events_by_kind"]
    # v5.3 column name, lower-case file and column names, extra columns, Parquet.
    parquet = tmp_path / "v53"
    parquet.mkdir()
    for path in small_copy.iterdir():
        frame = pd.read_csv(path, dtype="str")
        frame = frame.rename(columns={"admitted_from_concept_id": "admitting_source_concept_id"})
        frame.columns = [c.upper() for c in frame.columns]
        frame["EXTRA"] = "x"
        frame.to_parquet(parquet / (path.stem.lower() + ".parquet"), index=False)
    v53 = run("omop", parquet, tmp_path / "out53", keyed)
    assert v53.report["events_by_kind"] == expected
    assert v53.report["people"] == sample.report["people"]
    # A DuckDB database file, tables in a schema.
    database = tmp_path / "extract.duckdb"
    with duckdb.connect(str(database)) as connection:
        connection.execute("CREATE SCHEMA cdm")
        for path in small_copy.iterdir():
            connection.execute(
                f"CREATE TABLE cdm.{path.stem} AS SELECT * FROM read_csv_auto('{path}')"
            )
    from_db = run("omop", f"duckdb:///{database}?schema=cdm", tmp_path / "outdb", keyed)
    assert from_db.report["events_by_kind"] == expected
    patients = pd.read_parquet(tmp_path / "outdb" / "patients.parquet")
    assert sorted(patients["patient_id"]) == sorted(
        pd.read_parquet(sample.out / "patients.parquet")["patient_id"]
    )


def test_missing_required_table_names_it(tmp_path: Path, small_copy: Path, keyed: Path) -> None:
    folder = copy_extract(small_copy, tmp_path / "broken", {"PERSON.csv"})
    with pytest.raises(IngestError, match="required table 'person' not found"):
        run("omop", folder, tmp_path / "out", keyed)


def test_broken_rows_are_counted_or_quarantined_with_reasons(
    tmp_path: Path, small_copy: Path, keyed: Path
) -> None:
    folder = copy_extract(small_copy, tmp_path / "broken")
    visits = read(small_copy, "VISIT_OCCURRENCE.csv")
    outpatient = visits.index[visits["visit_concept_id"] == "9202"]
    visits.loc[outpatient[:3], "visit_concept_id"] = "12345"  # unknown visit concept
    visits.loc[outpatient[3], "visit_end_date"] = "1900-01-01"  # ends before it starts
    elective = visits.index[visits["visit_concept_id"] == "9201"][-1]
    visits.loc[elective, "admitted_from_concept_id"] = "8870"  # admitted from the ER
    extra = visits.loc[[outpatient[4]]].assign(visit_concept_id="262", visit_occurrence_id="9999")
    pd.concat([visits, extra]).to_csv(folder / "VISIT_OCCURRENCE.csv", index=False)
    person = read(small_copy, "PERSON.csv")
    person.loc[1, "gender_concept_id"] = "8551"  # unknown sex
    pd.concat([person, person.iloc[[0]]]).to_csv(folder / "PERSON.csv", index=False)
    periods = read(small_copy, "OBSERVATION_PERIOD.csv")
    periods.drop(index=2).to_csv(folder / "OBSERVATION_PERIOD.csv", index=False)
    result = run("omop", folder, tmp_path / "out", keyed)
    report = result.report

    visits_in = report["source_tables"]["visit_occurrence"]
    assert visits_in["ignored_by_reason"] == {"unknown_visit_concept": 3}
    assert report["unmapped_codes"]["visit_occurrence"][0]["code"] == "12345"
    assert report["admissions"]["emergency_admissions_by_rule"] == {
        "er_and_inpatient_visit": 1,
        "admitted_from_er": 1,
        "preceding_er_visit": 4,
    }
    assert report["contract_tables"]["patients"]["by_reason"] == {
        "duplicate_key": 1,
        "invalid_sex": 1,
    }
    events = report["contract_tables"]["events"]["by_reason"]
    assert events["end_before_start"] == 1
    assert events["unknown_patient"] > 0  # the events of the person quarantined for sex
    assert report["people"]["without_observation_period"] == 1
    assert report["people"]["registered_from_first_activity"] == 1
    assert report["reconciles"]
