"""ASC Client Level Data: the hand-made two-quarter fixture in tests/data/asc_cld gives
exactly the events, people and set-aside rows written there; weekly costs follow the cost
frequency; a whole ingest validates and reconciles."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import key_file

from riskstrat.sources.ingest.asc_cld import map_asc_cld
from riskstrat.sources.ingest.asc_cld_rules import RULES
from riskstrat.sources.ingest.mapping import Mapped
from riskstrat.sources.ingest.pipeline import IngestResult, ingest
from riskstrat.sources.ingest.tables import Extract, IngestError

FIXTURE = Path(__file__).parent / "data" / "asc_cld"
EXTRACT_DATE = date(2024, 7, 1)
HEADER = (
    "LA_Code,Reporting_Period_Start_Date,Reporting_Period_End_Date,NHS_Number,Gender,"
    "Date_of_Birth,Client_Type,Event_Type,Event_Start_Date,Service_Type,Unit_Cost,"
    "Cost_Frequency_Unit_Type,Planned_Units_Per_Week"
)
P1, P2, P3, P4 = "9434765919", "4010232137", "LA:213:C1003", "9990000018"
CARER, DIED = "4857773457", "4505577104"
ASSESSMENT = "social_care_assessment"


@pytest.fixture(scope="module")
def mapped() -> Mapped:
    return map_asc_cld(Extract.open(FIXTURE), None)


@pytest.fixture(scope="module")
def ingested(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    work = tmp_path_factory.mktemp("cld")
    return ingest(
        "asc-cld", FIXTURE, work / "out", key_file=key_file(work), extract_date=EXTRACT_DATE
    )


def _events(mapped: Mapped) -> list[tuple]:
    frame = mapped.events.sort_values(["kind", "source_id", "start"])
    return [
        (
            r.kind,
            r.source_id,
            str(r.start.date()),
            None if pd.isna(r.end) else str(r.end.date()),
            r.code,
            None if pd.isna(r.value) else r.value,
            None if pd.isna(r.cost) else round(r.cost, 2),
        )
        for r in frame.itertuples()
    ]


def test_the_fixture_gives_exactly_its_known_events(mapped: Mapped) -> None:
    assert _events(mapped) == [
        ("care_home_admission", DIED, "2024-01-02", None, "nursing_care", None, None),
        # residential from 1 February, nursing from 10 May: one move into a care home
        ("care_home_admission", P1, "2024-02-01", None, "residential_care", None, None),
        ("reablement_plan", P4, "2024-05-06", "2024-08-31", "st_max", None, None),
        ("reablement_plan", P3, "2024-04-10", "2024-05-21", "st_max", None, None),
        (*(ASSESSMENT, CARER, "2024-02-01", "2024-02-14", "provision_of_service"), None, None),
        (*(ASSESSMENT, P1, "2024-01-08", "2024-01-20", "progress_to_support_planning"), None, None),
        (*(ASSESSMENT, P4, "2024-05-01", "2024-05-03", "progress_to_reablement"), None, None),
        # 10 hours a week at 24.50 an hour; a direct payment of 520 every 4 weeks
        ("social_care_package", P2, "2024-01-15", None, "community_support", 10.0, 245.0),
        ("social_care_package", P2, "2024-03-01", "2024-06-30", "community_support", None, 130.0),
        ("social_care_package", DIED, "2024-01-02", "2024-03-15", "nursing_care", None, 1200.0),
        # the second quarter's resubmission of S1 ends the residential stay on 9 May
        ("social_care_package", P1, "2024-02-01", "2024-05-09", "residential_care", None, 900.0),
        ("social_care_package", P1, "2024-05-10", None, "nursing_care", None, 1100.0),
        ("social_care_package", P4, "2024-05-06", "2024-08-31", "reablement", None, None),
        ("social_care_package", P3, "2024-04-10", "2024-05-21", "reablement", None, None),
    ]


def test_every_validity_rule_sets_aside_its_row_with_the_rule_as_reason(mapped: Mapped) -> None:
    ignored = mapped.ledger.ignored_frame()
    by_reason = ignored.groupby(["source_table", "reason"]).size().to_dict()
    rules = list(RULES)
    expected = {("cld_2024q1", rule): 1 for rule in rules} | {
        ("cld_2024q1", "carer_known_by_association"): 1,
        ("cld_2024q1", "duplicate_row"): 1,
        ("cld_2024q1", "financial_assessment"): 1,
        # a request, the carer's own support, a request that is not a contract kind
        ("cld_2024q1", "no_contract_kind"): 3,
        ("cld_2024q1", "superseded_by_later_submission"): 3,
        ("cld_2024q2", "no_contract_kind"): 2,  # a request and a review
    }
    assert by_reason == expected
    assert mapped.ledger.facts["asc_cld_validity_failures"] == dict.fromkeys(sorted(rules), 1)


def test_people_are_linked_by_nhs_number_and_described_by_their_latest_record(
    mapped: Mapped,
) -> None:
    people = mapped.patients.set_index("source_id")
    assert sorted(people.index) == sorted(
        [P1, P2, P3, P4, CARER, DIED, "LA:213:C9000"]  # C9000's NHS number fails Modulus 11
    )
    assert people.loc[P1, ["sex", "practice_id", "ethnicity_group"]].tolist() == [
        "F",
        "A81001",
        "White",
    ]
    assert str(people.loc[P1, "birth_month"].date()) == "1938-05-01"
    assert str(people.loc[P1, "registration_start"].date()) == "2024-01-05"  # the request
    assert str(people.loc[DIED, "death_date"].date()) == "2024-03-15"
    assert people.loc[P3, "ethnicity_group"] == "Black"
    assert people.loc[P4, "ethnicity_group"] == "Unknown"  # letter code Z
    assert people.loc[P4, "practice_id"] == "UNASSIGNED"
    assert set(mapped.practices["practice_id"]) == {"A81001", "A81002", "UNASSIGNED"}


def test_a_whole_ingest_validates_and_reconciles(ingested: IngestResult) -> None:
    report = ingested.report
    assert report["reconciles"]
    for table in ("cld_2024q1", "cld_2024q2"):
        counts = report["source_tables"][table]
        assert counts["rows_in"] == counts["rows_mapped"] + counts["rows_ignored"]
    assert report["source_tables"]["cld_2024q1"]["rows_in"] == 25
    assert report["source_tables"]["cld_2024q1"]["ignored_by_reason"]["end_before_start"] == 1
    assert report["events_by_kind"]["care_home_admission"] == 2
    assert report["events_by_kind"]["social_care_assessment"] == 3
    assert report["reporting_periods"] == {"first": "2024-01-01", "last": "2024-06-30"}


def _one_table(folder: Path, rows: list[str]) -> Extract:
    folder.mkdir()
    (folder / "cld.csv").write_text("\n".join([HEADER, *rows]) + "\n")
    return Extract.open(folder)


def test_weekly_costs_follow_the_cost_frequency(tmp_path: Path) -> None:
    person = "213,2024-01-01,2024-03-31,9434765919,Female,1938-05-17,Service User,Service"
    frequencies = [
        ("Weekly", ""),
        ("fortnightly", ""),
        ("4-Weekly", ""),
        ("MONTHLY", ""),
        ("Quarterly", ""),
        ("Annually", ""),
        ("Hourly", "14"),
        ("Daily", "7"),
        ("Per Session", "3"),
        ("Hourly", ""),  # no planned units: no weekly cost
        ("One-off", ""),
        ("Fortnightly-ish", ""),
    ]
    rows = [
        f"{person},2024-02-{day + 1:02d},Long Term Support: Community,520,{freq},{units}"
        for day, (freq, units) in enumerate(frequencies)
    ]
    mapped = map_asc_cld(_one_table(tmp_path / "x", rows), None)
    costs = mapped.events.sort_values("start")["cost"].round(2).fillna(-1).tolist()
    assert costs == [520.0, 260.0, 130.0, 120.0, 40.0, 10.0, 7280.0, 3640.0, 1560.0, -1, -1, -1]
    assert mapped.ledger.facts["asc_cld_services_without_weekly_cost"] == {
        "no_planned_units": 1,
        "one_off_cost": 1,
        "unknown_cost_frequency": 1,
    }


def test_a_file_whose_dates_are_no_dates_stops_with_one_line_naming_it(tmp_path: Path) -> None:
    row = "213,,,9434765919,Female,1938-05-17,Service User,Request,someday,,,,"
    with pytest.raises(IngestError, match=r"cld\.csv: column 'event_start_date'") as error:
        map_asc_cld(_one_table(tmp_path / "x", [row]), None)
    assert "\n" not in str(error.value)


def test_an_extract_without_a_client_level_data_table_is_refused(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "people.csv").write_text("id,name\n1,a\n")
    with pytest.raises(IngestError, match="no Client Level Data table found"):
        map_asc_cld(Extract.open(tmp_path / "x"), None)
