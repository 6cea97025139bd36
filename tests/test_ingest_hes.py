"""HES / SUS+: hand-built episodes with known spells, deaths and care-home moves give exactly
those events; the public Artificial HES sample ingests, validated and reconciled."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import DATA, key_file, run

from riskstrat.common.settings import SettingsError
from riskstrat.sources.ingest.hes import map_hes
from riskstrat.sources.ingest.hes_apc import primary_diagnosis
from riskstrat.sources.ingest.hes_people import birth_months
from riskstrat.sources.ingest.mapping import Mapped
from riskstrat.sources.ingest.pipeline import IngestResult, ingest
from riskstrat.sources.ingest.tables import Extract, IngestError

ARTIFICIAL = DATA / "artificial_hes"
ARTIFICIAL_EXTRACT_DATE = date(2008, 3, 30)  # the end of its latest file (A&E 2007/08)
P1, P2, P3, P9 = "9000000017", "9000000025", "9000000033", "9000000009"  # valid check digits
APC_COLUMNS = [
    "PARTYEAR",
    "EPIKEY",
    "NEWNHSNO",
    "PROCODE3",
    "ADMIDATE",
    "ADMIMETH",
    "ADMISORC",
    "EPIORDER",
    "EPISTART",
    "EPIEND",
    "SPELBGIN",
    "SPELEND",
    "DISDATE",
    "DISDEST",
    "DISMETH",
    "DIAG_4_01",
    "SEX",
    "MYDOB",
    "ETHNOS",
    "GPPRAC",
    "LSOA11",
]


def _apc(*rows: str) -> pd.DataFrame:
    return pd.DataFrame([r.split(",") for r in rows], columns=APC_COLUMNS).replace("", None)


def fixture_tables() -> dict[str, pd.DataFrame]:
    """Two financial years of APC, HES A&E, ECDS, outpatients and ONS deaths, by file name.

    P1: an emergency spell of two episodes (COPD, J44.1), discharged to a care home from
    home; the second episode sent again in the next year's file. P2: an elective day, an
    emergency admission (2A) with no ADMIDATE and no DISDATE, and a maternity spell.
    P3: A&E first, planned and unplanned follow-ups; outpatients; dies (ONS); in no
    registration. P9: a death of someone in no other file. P1 registered twice (the latest
    counts), P2 once.
    """
    year1 = _apc(
        "202199,E1,9000000017,RXX01,2021-05-03,21,19,1,2021-05-03,2021-05-06,1,N,,98,8,J44.1,"
        "1,031940,A,A81001,E01000001",
        "202199,E2,9000000017,RXX02,2021-05-03,21,19,2,2021-05-06,2021-05-10,0,Y,2021-05-10,"
        "54,1,I500,1,031940,A,A81001,E01000001",
        "202199,E3,9000000025,RYY,2021-07-01,11,19,1,2021-07-01,2021-07-02,1,Y,2021-07-02,19,1,"
        "K409,2,111955,H,B82002,E01000002",
        "202199,E4,9000000025,RYY,2021-09-01,31,19,1,2021-09-01,2021-09-03,1,Y,2021-09-03,19,1,"
        "O800,2,111955,H,B82002,E01000002",
    )
    year2 = _apc(
        "202299,E2,9000000017,RXX02,2021-05-03,21,19,2,2021-05-06,2021-05-10,0,Y,2021-05-10,"
        "54,1,I500,1,031940,A,A81001,E01000001",
        "202299,E5,9000000025,RYY,,2A,19,1,2022-01-10,2022-01-15,1,Y,,19,1,N390,2,111955,H,"
        "B82002,E01000002",
    )
    ae = pd.DataFrame(
        {
            "PSEUDO_HESID": [P3, P3, P3],
            "AEKEY": ["A1", "A2", "A3"],
            "ARRIVALDATE": ["01/02/2022", "08/02/2022", "15/02/2022"],
            "AEATTENDCAT": ["1", "2", "3"],
            "AEATTENDDISP": ["01", "03", "03"],
            "ARRIVALAGE": ["80", "80", "80"],
            "SEX": ["1", "1", "1"],
            "GPPRAC": ["C83003", "C83003", "C83003"],
        }
    )
    ecds = pd.DataFrame(
        {
            "Der_Pseudo_NHS_Number": [P1, P1],
            "EC_Ident": ["C1", "C2"],
            "Arrival_Date": ["2022-03-01", "2022-03-05"],
            "EC_AttendanceCategory": ["4", "1"],
            "EC_Chief_Complaint_SNOMED_CT": ["267036007", "267036007"],
            "EC_Discharge_Destination_SNOMED_CT": ["306689006", "306706006"],
            "GP_Practice_Code": ["A81002", "A81002"],
        }
    )
    op = pd.DataFrame(
        {
            "newnhsno": [P2, P2, P2, P3],
            "attendkey": ["O1", "O2", "O3", "O4"],
            "apptdate": ["20220301", "20220401", "20220501", "20220310"],
            "attended": ["5", "3", "2", "7"],
            "apptage": ["66", "66", "66", "80"],
            "sex": ["2", "2", "2", "9"],
            "gpprac": [None, None, None, "V81999"],
        }
    )
    deaths = pd.DataFrame(
        {
            "NHS_NUMBER": [P3, P9],
            "REG_DATE_OF_DEATH": ["2022-06-01", "2022-07-01"],
            "S_UNDERLYING_COD_ICD10": ["I219", "C349"],
        }
    )
    registrations = pd.DataFrame(
        {
            "NHS_NUMBER": [P1, P1, P2],
            "GPPRAC": ["A81001", "A81009", "B82002"],
            "REGISTRATION_DATE": ["2001-01-01", "2019-06-01", "1990-01-01"],
            "DEREGISTRATION_DATE": [None, None, None],
        }
    )
    return {
        "registrations": registrations,
        "apc_2122": year1,
        "apc_2223": year2,
        "hes_ae": ae,
        "ecds": ecds,
        "outpatients": op,
        "ons_deaths": deaths,
    }


def write_tables(tables: dict[str, pd.DataFrame], folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, frame in tables.items():
        if name == "outpatients":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        else:
            frame.to_csv(folder / f"{name}.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def fixture_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tables(fixture_tables(), tmp_path_factory.mktemp("hes"))


@pytest.fixture(scope="module")
def mapped(fixture_dir: Path) -> Mapped:
    return map_hes(Extract.open(fixture_dir), None)


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("key"))


def _events(mapped: Mapped) -> list[tuple]:
    frame = mapped.events
    rows = zip(
        frame["source_id"],
        frame["kind"],
        frame["start"].dt.strftime("%Y-%m-%d"),
        frame["end"].dt.strftime("%Y-%m-%d").fillna(""),
        frame["code_system"],
        frame["code"],
        frame["value"].fillna(-1),
        strict=True,
    )
    return sorted(rows)


def test_known_episodes_give_exactly_the_known_events(mapped: Mapped) -> None:
    assert _events(mapped) == sorted(
        [
            (P1, "emergency_admission", "2021-05-03", "2021-05-10", "ICD10", "J441", 7.0),
            (P1, "care_home_admission", "2021-05-10", "", "riskstrat", "care_home", -1),
            (P1, "ae_attendance", "2022-03-05", "", "riskstrat", "admitted", -1),
            (P2, "elective_admission", "2021-07-01", "2021-07-02", "ICD10", "K409", 1.0),
            (P2, "emergency_admission", "2022-01-10", "2022-01-15", "ICD10", "N390", 5.0),
            (P2, "outpatient", "2022-03-01", "", "riskstrat", "attended", -1),
            (P2, "outpatient", "2022-04-01", "", "riskstrat", "dna", -1),
            (P3, "ae_attendance", "2022-02-01", "", "riskstrat", "admitted", -1),
            (P3, "ae_attendance", "2022-02-15", "", "riskstrat", "discharged", -1),
            (P3, "outpatient", "2022-03-10", "", "riskstrat", "dna", -1),
        ]
    )


def test_the_rows_not_mapped_carry_their_reasons(mapped: Mapped) -> None:
    ignored = mapped.ledger.ignored_frame()
    reasons = sorted(zip(ignored["source_table"], ignored["reason"], strict=True))
    assert reasons == sorted(
        [
            ("apc_2122", "duplicate_episode"),  # E2 again, next year's copy kept
            ("apc_2122", "maternity_admission"),
            ("apc_2223", "later_episode_of_spell"),  # E2, second episode of P1's spell
            ("hes_ae", "planned_follow_up"),
            ("ecds", "planned_follow_up"),
            ("outpatients", "cancelled_appointment"),
            ("registrations", "earlier_registration"),
        ]
    )
    assert mapped.ledger.rows_in == {
        "registrations": 3,
        "apc_2122": 4,
        "apc_2223": 2,
        "hes_ae": 3,
        "ecds": 2,
        "outpatients": 4,
        "ons_deaths": 2,
        "patients": 4,  # P9's death is a patients row the linkage decides on
    }
    assert mapped.unconfirmed == {P9}


def test_people_take_their_registration_else_their_most_recent_record(mapped: Mapped) -> None:
    people = mapped.patients.set_index("source_id")
    assert people.loc[P1, "practice_id"] == "A81009"  # the latest registration
    assert people.loc[P1, "registration_start"] == pd.Timestamp("2019-06-01")
    assert people.loc[P3, "practice_id"] == "C83003"  # in no registration; V81999 is no code
    assert people.loc[P3, "registration_start"] == pd.Timestamp("2022-02-01")  # first record
    assert people.loc[P1, "birth_month"] == pd.Timestamp("1940-03-01")
    assert people.loc[P2, "sex"] == "F"
    assert people.loc[P3, "sex"] == "M"  # SEX 9 on the latest record is not usable
    assert people.loc[P3, "birth_month"] == pd.Timestamp("1941-09-01")  # 80 on 2022-03-10
    assert people.loc[P3, "death_date"] == pd.Timestamp("2022-06-01")
    assert people["death_date"].notna().sum() == 2
    # P9, known only from the death: the date and nothing else, for the linkage to match
    assert people.loc[P9, "death_date"] == pd.Timestamp("2022-07-01")
    assert people.loc[P9, ["birth_month", "sex", "practice_id"]].isna().all()
    assert mapped.ledger.facts["people"]["from_registration_table"] == 2
    assert mapped.about["registration_rule"].startswith("practice and registration from the")


def test_the_fixture_ingests_validated_and_reconciled(
    fixture_dir: Path, keyed: Path, tmp_path
) -> None:
    result = run("hes", fixture_dir, tmp_path / "out", keyed)
    assert result.report["reconciles"]
    # P9 died but is in no other record and no source registers them: set aside, counted
    assert result.report["sources"]["hes"]["not_registered"] == 1
    assert result.report["source_tables"]["patients"]["ignored_by_reason"] == {"not_registered": 1}
    assert len(pd.read_parquet(tmp_path / "out" / "patients.parquet")) == 3
    assert result.report["events_by_kind"] == {
        "ae_attendance": 3,
        "care_home_admission": 1,
        "elective_admission": 1,
        "emergency_admission": 2,
        "outpatient": 3,
    }


@pytest.fixture(scope="module")
def artificial(tmp_path_factory: pytest.TempPathFactory, keyed: Path) -> IngestResult:
    out = tmp_path_factory.mktemp("artificial")
    return ingest("hes", ARTIFICIAL, out, key_file=keyed, extract_date=ARTIFICIAL_EXTRACT_DATE)


def test_the_artificial_sample_ingests_with_every_row_accounted_for(
    artificial: IngestResult,
) -> None:
    report = artificial.report
    assert report["reconciles"]
    tables = report["source_tables"]
    for name in ("apc_0102", "ae_0708", "op_0304"):
        counts = tables[f"artificial_hes_{name}_sample"]
        assert counts["rows_in"] == 300
        assert counts["rows_in"] == counts["rows_mapped"] + counts["rows_ignored"]
    apc = pd.read_csv(ARTIFICIAL / "artificial_hes_apc_0102_sample.csv", dtype="str")
    emergency = apc["ADMIMETH"].str.fullmatch("2[1-58A-D]").sum()
    assert report["admissions"]["emergency_admissions"] == emergency
    ae = pd.read_csv(ARTIFICIAL / "artificial_hes_ae_0708_sample.csv", dtype="str")
    assert tables["artificial_hes_ae_0708_sample"]["ignored_by_reason"] == {
        "planned_follow_up": int((ae["AEATTENDCAT"] == "2").sum())
    }
    assert any("Artificial HES" in note for note in report["notes"])
    assert report["registration_rule"].startswith("no registration table")


def test_files_are_told_apart_by_their_columns(mapped: Mapped) -> None:
    assert mapped.about["datasets"] == {
        "ae": ["hes_ae"],
        "apc": ["apc_2122", "apc_2223"],
        "deaths": ["ons_deaths"],
        "ecds": ["ecds"],
        "op": ["outpatients"],
        "registration": ["registrations"],
    }


def test_an_extract_with_no_hes_file_stops_with_one_line(tmp_path: Path) -> None:
    pd.DataFrame({"a": [1]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(IngestError, match="no HES file") as error:
        map_hes(Extract.open(tmp_path), None)
    assert "\n" not in str(error.value)


def test_a_settings_file_adds_spellings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    folder = tmp_path / "extract"
    op = fixture_tables()["outpatients"].rename(columns={"apptdate": "Seen_On"})
    write_tables({"outpatients": op}, folder)
    with pytest.raises(IngestError, match="no HES file"):
        map_hes(Extract.open(folder), None)
    settings = tmp_path / "fields.toml"
    settings.write_text('[hes.aliases]\napptdate = ["Seen_On"]\n')
    monkeypatch.setenv("RISKSTRAT_HES_FIELDS", str(settings))
    assert len(map_hes(Extract.open(folder), None).events) == 3
    settings.write_text('[hes.aliases]\nappt_date = ["Seen_On"]\n')
    with pytest.raises(SettingsError, match=r"\[hes.aliases\] appt_date: unknown field"):
        map_hes(Extract.open(folder), None)


def test_primary_diagnoses_are_four_icd10_characters() -> None:
    codes = pd.Series(["J44.1", "r54x", "I500 ", "-", "&", None, "I48X1", "1234"])
    assert list(primary_diagnosis(codes).fillna("")) == [
        "J441",
        "R54X",
        "I500",
        "",
        "",
        "",
        "I48X",
        "",
    ]


def test_birth_months_read_every_common_spelling() -> None:
    values = pd.Series(["031940", "31940", "194003", "1940-03-17", "17/03/1940", "131940", None])
    expected = [pd.Timestamp("1940-03-01")] * 5 + [pd.NaT, pd.NaT]
    assert list(birth_months(values)) == expected


def test_the_artificial_sample_cannot_train_and_says_why(artificial: IngestResult) -> None:
    verdict = artificial.verdict
    assert verdict.emergency_admissions == 120
    assert (verdict.can_train, verdict.can_evaluate, verdict.can_score) == (False, False, True)
    train = verdict.reasons["train"]
    assert train.startswith("no emergency admission can be learnt from")
    assert "emergency admissions cover 2001-02..2001-10" in train
    assert "ae_attendance 2007-04..2008-03" in train
    assert "outpatient 2003-04..2004-03" in train
    assert "no period holds both 730 days of history and the 365-day horizon" in train
    assert "no period holds both" in verdict.text
    assert "enough to train" not in verdict.text
    assert "no possible go-live" in verdict.reasons["evaluate"]
    # the dates fit the extract date: nothing to run again with
    assert not any("--extract-date" in said for said in (verdict.text, *verdict.notes))
    assert "--extract-date" not in verdict.reasons["score"]


def test_month_first_dates_stop_naming_the_file_and_the_field_as_it_is_spelt(
    tmp_path: Path,
) -> None:
    """HES dates are read day-first (docs/data.md); a SUS+ file of US dates is a format error."""
    apc = fixture_tables()["apc_2122"].rename(columns={"ADMIDATE": "Admission_Date"})
    apc["Admission_Date"] = ["05/13/2021", "05/13/2021", "07/21/2021", "09/01/2021"]
    folder = write_tables({"apc_2122": apc}, tmp_path / "extract")
    with pytest.raises(IngestError) as error:
        map_hes(Extract.open(folder), None)
    message = str(error.value)
    assert "apc_2122.csv: column 'admission_date': 3 of 4 values" in message
    assert "'05/13/2021' (dates are read day-first" in message and "\n" not in message
