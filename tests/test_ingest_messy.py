"""Messy OMOP and Synthea extracts: ingest maps what it can and accounts for every row.

Small extracts cut from the public samples are mutated by Hypothesis: empty and null values
in any column, concepts missing from CONCEPT, no vocabulary or other optional tables, dates
as text in several formats (UK day-first too) or as typed timestamps, duplicated rows, visits
ending before they start, empty tables, mixed letter case in file and column names, CSV or
Parquet. Ingest must either succeed with every source table reconciled (rows in = mapped +
ignored, rows in as written) or stop with a one-line ``IngestError`` naming the file and the
column.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_support import (
    OMOP,
    OMOP_SKIP,
    SYNTHEA,
    cased,
    copy_extract,
    key_file,
    read,
    run,
    write_tables,
)

from riskstrat.sources.ingest.pipeline import IngestResult
from riskstrat.sources.ingest.tables import IngestError

ROWS = 30  # rows kept per table: small enough for dozens of ingests in seconds
MESS = (None, "", " ", "0", "NULL", "999999999", "not a date")
DATE_FORMATS = (
    "%Y-%m-%d",
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%dT%H:%M:%SZ",
    "%Y%m%d",
    "%d/%m/%Y",
    "typed",
)
EXAMPLES = 20  # per source; each example is a whole ingest


@dataclass(frozen=True)
class Source:
    """A base extract (table name -> text frame) and what its adapter counts."""

    name: str
    tables: dict[str, pd.DataFrame]
    required: frozenset[str]
    counted: frozenset[str]  # tables whose rows the quality report reconciles
    optional: frozenset[str]  # tables that may be dropped
    visits: tuple[str, str]  # the visits table and its end column

    def is_date(self, column: str) -> bool:
        return column.endswith(("_date", "_datetime")) or column in {
            "start",
            "stop",
            "birthdate",
            "deathdate",
        }


def _omop() -> Source:
    """Four people of the OMOP sample, emergency and inpatient visits first."""
    person = read(OMOP, "PERSON.csv")
    death = read(OMOP, "DEATH.csv")
    visits = read(OMOP, "VISIT_OCCURRENCE.csv")
    acute = visits.loc[visits["visit_concept_id"].isin(["9201", "9203"]), "person_id"]
    people = list(dict.fromkeys([*acute, *death["person_id"]]))[:4]

    def mine(frame: pd.DataFrame) -> pd.DataFrame:
        return frame[frame["person_id"].isin(people)]

    visits = mine(visits).sort_values("visit_concept_id", key=lambda c: ~c.isin(["9201", "9203"]))
    tables = {
        "PERSON": mine(person),
        "VISIT_OCCURRENCE": visits,
        "CONDITION_OCCURRENCE": mine(read(OMOP, "CONDITION_OCCURRENCE.csv")),
        "DRUG_EXPOSURE": mine(read(OMOP, "DRUG_EXPOSURE.csv")),
        "PROCEDURE_OCCURRENCE": mine(read(OMOP, "PROCEDURE_OCCURRENCE.csv")),
        "OBSERVATION_PERIOD": mine(read(OMOP, "OBSERVATION_PERIOD.csv")),
        "DEATH": mine(death),
        "PROVIDER": read(OMOP, "PROVIDER.csv"),
        "CDM_SOURCE": read(OMOP, "CDM_SOURCE.csv"),
    }
    tables = {name: frame.head(ROWS).reset_index(drop=True) for name, frame in tables.items()}
    used = pd.concat([f[c] for f in tables.values() for c in f.columns if c.endswith("concept_id")])
    concept = read(OMOP, "CONCEPT.csv")
    tables["CONCEPT"] = concept[concept["concept_id"].isin(set(used))].reset_index(drop=True)
    counted = {
        "person",
        "visit_occurrence",
        "condition_occurrence",
        "drug_exposure",
        "procedure_occurrence",
        "observation_period",
        "death",
    }
    return Source(
        "omop",
        tables,
        frozenset({"person", "visit_occurrence"}),
        frozenset(counted),
        frozenset(counted | {"provider", "cdm_source", "concept"}) - {"person", "visit_occurrence"},
        ("visit_occurrence", "visit_end_date"),
    )


def _synthea() -> Source:
    """Five people of the Synthea sample, emergency and inpatient encounters first."""
    patients = read(SYNTHEA, "patients.csv")
    encounters = read(SYNTHEA, "encounters.csv")
    acute = encounters.loc[encounters["ENCOUNTERCLASS"].isin(["emergency", "inpatient"])]
    people = list(dict.fromkeys([*acute["PATIENT"], *patients["Id"]]))[:5]

    def mine(frame: pd.DataFrame, column: str = "PATIENT") -> pd.DataFrame:
        return frame[frame[column].isin(people)]

    encounters = mine(encounters).sort_values(
        "ENCOUNTERCLASS", key=lambda c: ~c.isin(["emergency", "inpatient"])
    )
    tables = {
        "patients": mine(patients, "Id"),
        "encounters": encounters,
        "conditions": mine(read(SYNTHEA, "conditions.csv")),
        "medications": mine(read(SYNTHEA, "medications.csv")),
        "procedures": mine(read(SYNTHEA, "procedures.csv")),
        "careplans": mine(read(SYNTHEA, "careplans.csv")),
    }
    tables = {name: frame.head(ROWS).reset_index(drop=True) for name, frame in tables.items()}
    organizations = read(SYNTHEA, "organizations.csv")
    used = set(tables["encounters"]["ORGANIZATION"])
    tables["organizations"] = organizations[organizations["Id"].isin(used)].reset_index(drop=True)
    counted = {"patients", "encounters", "conditions", "medications", "procedures", "careplans"}
    return Source(
        "synthea",
        tables,
        frozenset({"patients", "encounters"}),
        frozenset(counted),
        frozenset(counted | {"organizations"}) - {"patients", "encounters"},
        ("encounters", "stop"),
    )


SOURCES = {"omop": _omop, "synthea": _synthea}


@pytest.fixture(scope="module", params=sorted(SOURCES))
def source(request: pytest.FixtureRequest) -> Source:
    return SOURCES[request.param]()


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("key"))


def _dates(values: pd.Series, how: str) -> pd.Series:
    """A text date column in another format, or typed (``datetime64``)."""
    stamps = pd.to_datetime(values, errors="coerce", format="ISO8601", utc=True)
    stamps = stamps.dt.tz_localize(None)
    if how == "typed":
        return stamps.astype("datetime64[us]")
    return stamps.dt.strftime(how).astype(object).where(stamps.notna(), values)


@st.composite
def messy(draw: st.DrawFn, source: Source) -> tuple[dict[str, pd.DataFrame], str]:
    """Mutated tables (name as the file will be spelt -> frame) and their storage."""
    storage = draw(st.sampled_from(["csv", "parquet"]))
    file_case = draw(st.sampled_from(["upper", "lower", "mixed"]))
    dropped = draw(st.sets(st.sampled_from(sorted(source.optional))))
    emptied = draw(st.sets(st.sampled_from(sorted(t.lower() for t in source.tables))))
    out: dict[str, pd.DataFrame] = {}
    for name, base in source.tables.items():
        table = name.lower()
        if table in dropped:
            continue
        frame = base.astype(object).where(base.notna(), None)
        if table in emptied:
            frame = frame.iloc[:0]
        n = len(frame)
        rows = st.sets(st.integers(0, max(n - 1, 0)), max_size=n) if n else st.just(set())
        if n:
            for column in draw(st.sets(st.sampled_from(list(frame.columns)), max_size=4)):
                value = draw(st.sampled_from(MESS))
                frame.loc[sorted(draw(rows)), column] = value
            if table == source.visits[0]:  # visits ending before they start
                end = next(c for c in frame.columns if c.lower() == source.visits[1])
                frame.loc[sorted(draw(rows)), end] = "1999-01-01"
            duplicated = sorted(draw(rows))
            frame = pd.concat([frame, frame.iloc[duplicated]], ignore_index=True)
        for column in frame.columns:
            if source.is_date(column.lower()):
                how = draw(st.sampled_from(DATE_FORMATS))
                if how == "typed" and storage == "csv":
                    how = DATE_FORMATS[1]
                frame[column] = _dates(frame[column], how)
        column_case = draw(st.sampled_from(["upper", "lower", "mixed"]))
        frame.columns = [cased(c, column_case) for c in frame.columns]
        out[cased(table, file_case)] = frame
    return out, storage


def _check_error(error: IngestError, files: dict[str, Path], tables: dict) -> None:
    message = str(error)
    assert "\n" not in message, message
    table = next((t for t, p in files.items() if str(p) in message), None)
    assert table is not None, f"names no file: {message}"
    column = re.search(r"column '([^']+)'", message)
    assert column, f"names no column: {message}"
    columns = {c.lower() for c in next(f for n, f in tables.items() if n.lower() == table)}
    assert column.group(1) in columns, message


def _check_report(result: IngestResult, source: Source, tables: dict) -> None:
    report = result.report
    written = {name.lower(): len(frame) for name, frame in tables.items()}
    counted = source.counted & set(written)
    assert set(report["source_tables"]) == counted
    for table, counts in report["source_tables"].items():
        assert counts["rows_in"] == written[table], table
        assert counts["rows_in"] == counts["rows_mapped"] + counts["rows_ignored"], table
        assert counts["reconciles"], table
        unmapped = result.out / "unmapped" / f"{table}.parquet"
        ignored = len(pd.read_parquet(unmapped)) if unmapped.exists() else 0
        assert ignored == counts["rows_ignored"], table
    for table, counts in report["contract_tables"].items():
        assert counts["read"] == counts["accepted"] + counts["quarantined"], table
    assert report["reconciles"]


def _ingest_messy(source: Source, keyed: Path, draw: Callable) -> None:
    tables, storage = draw(messy(source))
    with tempfile.TemporaryDirectory() as work:
        files = write_tables(tables, storage, Path(work) / "extract")
        try:
            result = run(source.name, Path(work) / "extract", Path(work) / "out", keyed)
        except IngestError as error:
            _check_error(error, files, tables)
            return
        _check_report(result, source, tables)


@settings(max_examples=EXAMPLES)
@given(data=st.data())
@pytest.mark.slow
def test_a_messy_extract_is_ingested_with_every_row_accounted_for_or_named(
    source: Source, keyed: Path, data: st.DataObject
) -> None:
    _ingest_messy(source, keyed, data.draw)


def test_drugs_outside_the_vocabulary_are_counted_and_the_rest_still_maps(
    tmp_path: Path, keyed: Path
) -> None:
    """The reported crash: an OMOP 5.3 extract without vocabulary tables whose drug
    exposures have empty source values (``KeyError: (nan, nan, '10')`` on main)."""
    vocabulary = {p.name for p in OMOP.iterdir() if p.name.startswith(("CONCEPT", "VOCAB"))}
    folder = copy_extract(OMOP, tmp_path / "v53", OMOP_SKIP | vocabulary)
    visits = read(folder, "VISIT_OCCURRENCE.csv")
    visits = visits.rename(columns={"admitted_from_concept_id": "admitting_source_concept_id"})
    visits.to_csv(folder / "VISIT_OCCURRENCE.csv", index=False)
    drugs = read(folder, "DRUG_EXPOSURE.csv")
    drugs["drug_source_value"] = None
    drugs.loc[:9, "drug_source_value"] = "N02AA01"  # morphine, by its ATC code
    drugs.loc[10:19, "drug_source_value"] = "10"
    drugs.to_csv(folder / "DRUG_EXPOSURE.csv", index=False)

    report = run("omop", folder, tmp_path / "out", keyed).report

    assert report["cdm_version"] == "5.4"  # CDM_SOURCE still says so
    assert report["source_tables"]["drug_exposure"]["ignored_by_reason"] == {
        "no_code": len(drugs) - 20,
        "unmapped_code": 10,
    }
    assert report["source_tables"]["drug_exposure"]["rows_mapped"] == 10
    assert report["other_counts"]["drug_exposure_issues"] >= 10
    assert report["events_by_kind"]["ae_attendance"] == 56
    assert report["reconciles"]
