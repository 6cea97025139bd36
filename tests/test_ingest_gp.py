"""``riskstrat ingest --source gp``: the hand-made extract in ``tests/data/gp`` (EMIS-style
column names) gives exactly the events worked out by hand; the code lists are what the
manifest says; bad extracts stop with one line naming the file and the column."""

from __future__ import annotations

import shutil
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import key_file, run

from riskstrat.features.catalogue import CONDITIONS
from riskstrat.sources.ingest import gp_codes
from riskstrat.sources.ingest.gp import map_gp
from riskstrat.sources.ingest.mapping import Mapped
from riskstrat.sources.ingest.pipeline import IngestResult
from riskstrat.sources.ingest.tables import Extract, IngestError

FIXTURE = Path(__file__).parent / "data" / "gp"
ONE, TWO, THREE, OUTSIDER = "9000000017", "9000000025", "9000000033", "9000000904"


@pytest.fixture(scope="module")
def mapped() -> Mapped:
    return map_gp(Extract.open(FIXTURE), None)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> IngestResult:
    work = tmp_path_factory.mktemp("gp")
    return run("gp", FIXTURE, work / "out", key_file(work / "key"))


def _events(mapped: Mapped) -> set[tuple[str, str, str, str, str]]:
    e = mapped.events
    end = e["end"].dt.strftime("%Y-%m-%d").fillna("")
    return set(
        zip(
            e["source_id"],
            e["kind"],
            e["start"].dt.strftime("%Y-%m-%d"),
            end,
            e["code"],
            strict=True,
        )
    )


def test_the_fixture_gives_exactly_the_events_worked_out_by_hand(mapped: Mapped) -> None:
    assert _events(mapped) == {
        (ONE, "ltc_diagnosis", "2015-02-01", "", "heart_failure"),
        (ONE, "gp_contact", "2015-02-01", "", "face_to_face"),
        (ONE, "gp_contact", "2016-03-01", "", "telephone"),
        (ONE, "social_circumstance", "2020-01-01", "", "lives_alone"),
        (ONE, "gp_contact", "2021-05-05", "", "home_visit"),
        (ONE, "prescription", "2023-01-10", "2023-02-06", "opioid"),  # BNF 040702
        (ONE, "prescription", "2023-02-10", "2023-03-09", "anticoagulant"),  # dm+d, by name
        (ONE, "prescription", "2023-03-10", "2023-04-06", "anticoagulant"),  # 56 days: 2 issues
        (THREE, "ltc_diagnosis", "2019-09-01", "", "frailty"),  # the 9th eFI deficit
        (TWO, "ltc_diagnosis", "2022-01-01", "", "frailty"),  # a severe frailty code
        (TWO, "gp_contact", "2022-01-01", "", "face_to_face"),  # two codes, one contact
        (TWO, "social_circumstance", "2022-01-01", "", "is_carer"),
        (OUTSIDER, "ltc_diagnosis", "2021-01-01", "", "heart_failure"),  # in no registration
    }
    assert mapped.ledger.facts["people_in_no_registration"] == {"people": 1, "events": 1}


def test_the_fixture_sets_aside_exactly_these_rows_with_their_reasons(mapped: Mapped) -> None:
    ignored = mapped.ledger.ignored_frame()
    reasons = {
        (t, int(r), why)
        for t, r, why in ignored[["source_table", "source_row", "reason"]].itertuples(index=False)
    }
    efi = {("coded_events", r, "counted_in_frailty_index") for r in (*range(8, 17), 18)}
    assert reasons == efi | {
        ("registrations", 4, "no_person_id"),
        ("registrations", 5, "no_birth_date"),
        ("coded_events", 2, "unmapped_code"),
        ("coded_events", 4, "duplicate_record"),
        ("coded_events", 6, "no_code"),
        ("coded_events", 7, "no_date"),
        ("prescriptions", 2, "unmapped_code"),
        ("prescriptions", 3, "no_date"),
    }
    assert mapped.ledger.facts["coded_events_codes_in_no_list"] == {"rows": 2, "distinct_codes": 1}


def test_registrations_become_one_patient_each_with_the_latest_practice(mapped: Mapped) -> None:
    p = mapped.patients.set_index("source_id")
    assert sorted(p.index) == [ONE, TWO, THREE]
    assert p.loc[TWO, ["practice_id", "sex", "ethnicity_group"]].tolist() == ["P002", "M", "Asian"]
    assert str(p.loc[TWO, "registration_start"].date()) == "2005-03-01"  # the first practice
    assert pd.isna(p.loc[TWO, "registration_end"])
    assert str(p.loc[TWO, "birth_month"].date()) == "1950-11-01"  # from YYYY-MM
    assert str(p.loc[THREE, "birth_month"].date()) == "1935-07-01"  # a year only: July
    assert p.loc[THREE, ["sex", "ethnicity_group"]].tolist() == ["F", "Other"]  # 2; SNOMED
    assert str(p.loc[THREE, "death_date"].date()) == "2023-06-10"
    assert p.loc[ONE, "ethnicity_group"] == "White"  # NHS ethnic category A


def test_the_ingest_reconciles_and_sets_aside_the_unregistered_persons_event(
    result: IngestResult,
) -> None:
    report = result.report
    assert report["reconciles"]
    for table in ("registrations", "coded_events", "prescriptions"):
        assert report["source_tables"][table]["reconciles"], table
    assert report["contract_tables"]["events"]["by_reason"] == {}
    assert report["sources"]["gp"]["events_set_aside"] == {"not_registered": 1}  # at linkage
    unmapped = {(c["code_system"], c["code"]) for c in report["unmapped_codes"]["coded_events"]}
    assert ("SNOMED", "999999999999") in unmapped


def test_every_list_is_in_opencodelists_format_with_its_source_and_licence() -> None:
    lists = gp_codes.manifest().lists
    for entry in lists:
        frame = pd.read_csv(gp_codes.GP_DIR / entry.file, dtype="str", keep_default_na=False)
        assert list(frame.columns[:1]) == ["code"], entry.file
        assert frame["code"].str.fullmatch(r"\d{6,18}").all(), entry.file  # SNOMED CT ids
        assert "@" in entry.source and entry.version and entry.licence, entry.file
        licence = entry.licence.split("(", 1)[1].split(")", 1)[0]
        assert (gp_codes.GP_DIR / licence).is_file(), entry.file
    conditions = {e.target for e in lists if e.kind == "ltc_diagnosis"}
    social = {e.target for e in lists if e.kind == "social_circumstance"}
    assert conditions == set(CONDITIONS)
    assert {"lives_alone", "has_carer", "bereavement"} <= social  # what the features read
    assert len(gp_codes.efi_deficits()) == 35  # the 36th, polypharmacy, is from medicines


@pytest.mark.parametrize(
    ("table", "column", "value", "named"),
    [
        ("Coded_Events.csv", "Effective_Date", "1st Feb 2015", "effective_date"),
        ("Registrations.csv", "Date_of_Birth", "17/05/40", "date_of_birth"),
    ],
)
def test_dates_in_an_unknown_format_stop_with_one_line_naming_file_and_column(
    tmp_path: Path, table: str, column: str, value: str, named: str
) -> None:
    folder = shutil.copytree(FIXTURE, tmp_path / "gp")
    frame = pd.read_csv(folder / table, dtype="str")
    frame[column] = value
    frame.to_csv(folder / table, index=False)
    with pytest.raises(IngestError) as caught:
        map_gp(Extract.open(folder), None)
    message = str(caught.value)
    assert "\n" not in message and table in message and f"'{named}'" in message


def _day_first(values: pd.Series, separator: str) -> pd.Series:
    """Full ISO dates rewritten day-first (``3/5/2021``); other values as they are."""
    full = values.str.fullmatch(r"\d{4}-\d{2}-\d{2}", na=False)
    stamps = pd.to_datetime(values.where(full), format="%Y-%m-%d")
    text = stamps.map(
        lambda d: f"{d.day}{separator}{d.month}{separator}{d.year}", na_action="ignore"
    )
    return text.where(full, values)


def test_day_first_dates_read_as_their_iso_spelling(tmp_path: Path, mapped: Mapped) -> None:
    """GP systems export UK dates (``05/05/2021``): read day-first, the fixture maps the same."""
    folder = shutil.copytree(FIXTURE, tmp_path / "gp")
    dated = {
        "Coded_Events.csv": (["Effective_Date"], "/"),
        "Registrations.csv": (["Registration_Date", "Deregistration_Date", "Date_of_Birth"], "-"),
        "Prescriptions.csv": (["Issue_Date"], "."),
    }
    for table, (columns, separator) in dated.items():
        frame = pd.read_csv(folder / table, dtype="str")
        for column in columns:
            frame[column] = _day_first(frame[column], separator)
        frame.to_csv(folder / table, index=False)
    assert pd.read_csv(folder / "Coded_Events.csv", dtype="str")["Effective_Date"][5] == "5/5/2021"

    day_first = map_gp(Extract.open(folder), None)

    assert _events(day_first) == _events(mapped)
    pd.testing.assert_frame_equal(day_first.patients, mapped.patients)


def test_a_missing_table_or_column_is_named(tmp_path: Path) -> None:
    folder = shutil.copytree(FIXTURE, tmp_path / "gp")
    (folder / "Coded_Events.csv").rename(folder / "notes.csv")
    with pytest.raises(IngestError, match="no coded_events table: name the file one of"):
        map_gp(Extract.open(folder), None)
    (folder / "notes.csv").rename(folder / "journal.csv")  # another accepted name
    prescriptions = pd.read_csv(folder / "Prescriptions.csv", dtype="str")
    prescriptions.drop(columns=["dmd_code", "BNF_Code"]).to_csv(
        folder / "Prescriptions.csv", index=False
    )
    with pytest.raises(IngestError, match=r"Prescriptions.csv: missing column 'dmd_code'"):
        map_gp(Extract.open(folder), None)
