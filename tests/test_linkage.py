"""Several sources in one ingest: NHS numbers checked and pseudonymised with one key, the
registered population, people set aside, patients reconciled, the manifest, and verdicts
about the extract's dates."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import TEST_KEY, key_file

from riskstrat.cli import main
from riskstrat.common.settings import SettingsError
from riskstrat.contract.pseudonym import Pseudonymiser
from riskstrat.sources.ingest.linkage import (
    LinkageError,
    Source,
    nhs_number,
    read_manifest,
    sources_given,
)
from riskstrat.sources.ingest.pipeline import ingest, ingest_sources

EXTRACT = date(2024, 1, 1)
KEY = Pseudonymiser(TEST_KEY.encode())
BOTH, GP_ONLY, HOSPITAL_ONLY = "9434765919", "4010232137", "1000000001"
INVALID = "9434765918"  # wrong check digit
EVENTS_ONLY = "0000000000"


def test_nhs_numbers_are_normalised_and_checked() -> None:
    assert nhs_number("943 476 5919") == BOTH
    assert nhs_number("943-476-5919") == BOTH
    assert nhs_number(INVALID) is None
    assert nhs_number("12345") is None
    assert nhs_number("94347659190") is None
    assert nhs_number("943476591X") is None
    assert nhs_number("0000000000") == "0000000000"  # check digit 0 (11 - 0 -> 0)


def _contract(folder: Path, patients: list[dict], events: list[tuple]) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(
        {"practice_id": ["A1", "H9"], "gp_cluster": ["x", "y"], "locality": ["N", "S"]}
    ).to_csv(folder / "practices.csv", index=False)
    base = {
        "birth_month": "1940-03-01",
        "sex": "F",
        "practice_id": "A1",
        "deprivation_decile": "",
        "ethnicity_group": "Unknown",
        "registration_start": "2000-01-01",
        "registration_end": "",
        "death_date": "",
    }
    pd.DataFrame([base | p for p in patients]).to_csv(folder / "patients.csv", index=False)
    pd.DataFrame(
        [
            {"patient_id": p, "kind": k, "start": s, "end": "", "code_system": "riskstrat"}
            | {"code": "x", "value": "", "cost": ""}
            for p, k, s in events
        ]
    ).to_csv(folder / "events.csv", index=False)
    return folder


@pytest.fixture(scope="module")
def extracts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A registration source (gp) and a hospital source with known overlaps."""
    root = tmp_path_factory.mktemp("sources")
    _contract(
        root / "gp",
        [
            {"patient_id": BOTH, "birth_month": "1940-03-01", "ethnicity_group": "Unknown"},
            {"patient_id": GP_ONLY, "birth_month": "1950-01-01"},
            {"patient_id": "12345", "birth_month": "1960-01-01"},  # not an NHS number
        ],
        [
            (BOTH, "gp_contact", "2023-06-01"),
            (GP_ONLY, "gp_contact", "2023-07-01"),
            ("12345", "gp_contact", "2023-07-02"),
        ],
    )
    _contract(
        root / "hospital",
        [
            # the same person, the number spaced out, born a month later by this source,
            # with a deprivation decile and an ethnicity the GP record lacks, at the hospital's
            # idea of their practice
            {"patient_id": "943 476 5919", "birth_month": "1940-04-01", "practice_id": "H9"}
            | {"deprivation_decile": "3", "ethnicity_group": "White", "death_date": "2023-12-01"},
            {"patient_id": HOSPITAL_ONLY, "practice_id": "H9"},  # out of area
            {"patient_id": INVALID, "practice_id": "H9"},
        ],
        [
            ("943 476 5919", "emergency_admission", "2023-11-01"),
            (HOSPITAL_ONLY, "emergency_admission", "2023-10-01"),
            (HOSPITAL_ONLY, "ae_attendance", "2023-10-01"),
            (INVALID, "emergency_admission", "2023-09-01"),
            (EVENTS_ONLY, "outpatient", "2023-08-01"),  # no patients row in this source
        ],
    )
    return root


def _manifest(root: Path, hospital: str = "") -> Path:
    path = root / "sources.toml"
    path.write_text(
        '[sources.gp]\nkind = "contract"\npath = "gp"\nid = "nhs_number"\n'
        "registrations = true\n\n"
        f'[sources.hospital]\nkind = "contract"\npath = "hospital"\nid = "nhs_number"\n{hospital}'
    )
    return path


@pytest.fixture(scope="module")
def linked(extracts: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("linked") / "out"
    keys = key_file(tmp_path_factory.mktemp("keys"))
    result = ingest_sources(
        read_manifest(_manifest(extracts)), out, key_file=keys, extract_date=EXTRACT
    )
    assert result.report["reconciles"]
    return out


def _report(out: Path) -> dict:
    import json

    return json.loads((out / "quality_report.json").read_text())


def test_people_matched_set_aside_and_counted_per_source(linked: Path) -> None:
    sources = _report(linked)["sources"]
    assert {k: sources["gp"][k] for k in ("people", "matched_to_registered", "not_registered")} == {
        "people": 2,
        "matched_to_registered": 2,
        "not_registered": 0,
    }
    assert sources["gp"]["invalid_nhs_numbers"] == 1
    assert sources["gp"]["events_set_aside"] == {"invalid_nhs_number": 1}
    hospital = sources["hospital"]
    assert (hospital["people"], hospital["matched_to_registered"]) == (3, 1)
    assert (hospital["not_registered"], hospital["invalid_nhs_numbers"]) == (2, 1)
    assert hospital["in_other_sources"] == 1
    assert hospital["events_set_aside"] == {"invalid_nhs_number": 1, "not_registered": 3}
    assert hospital["event_kinds"] == {"emergency_admission": 1}
    assert hospital["date_span"] == {"first": "2023-11-01", "last": "2023-11-01"}


def test_one_pseudonym_per_person_and_their_rows_set_aside_with_reasons(linked: Path) -> None:
    patients = pd.read_parquet(linked / "patients.parquet")
    assert sorted(patients["patient_id"]) == sorted([KEY.one(BOTH), KEY.one(GP_ONLY)])
    events = pd.read_parquet(linked / "events.parquet")
    assert sorted(zip(events["patient_id"], events["kind"], strict=True)) == sorted(
        [
            (KEY.one(BOTH), "gp_contact"),
            (KEY.one(GP_ONLY), "gp_contact"),
            (KEY.one(BOTH), "emergency_admission"),
        ]
    )
    hospital = pd.read_parquet(linked / "unmapped" / "hospital" / "events.parquet")
    assert sorted(zip(hospital["patient_id"], hospital["reason"], strict=True)) == sorted(
        [
            (KEY.one(HOSPITAL_ONLY), "not_registered"),
            (KEY.one(HOSPITAL_ONLY), "not_registered"),
            (KEY.one(EVENTS_ONLY), "not_registered"),
            (KEY.one(INVALID), "invalid_nhs_number"),
        ]
    )
    people = pd.read_parquet(linked / "unmapped" / "hospital" / "patients.parquet")
    assert sorted(people["reason"]) == ["invalid_nhs_number", "not_registered"]
    assert not (set(hospital["patient_id"]) | set(people["patient_id"])) & {
        HOSPITAL_ONLY,
        INVALID,
    }
    tables = _report(linked)["source_tables"]
    assert tables["hospital/events"]["ignored_by_reason"] == {
        "invalid_nhs_number": 1,
        "not_registered": 3,
    }
    assert all(t["reconciles"] for t in tables.values())


def test_patients_reconcile_by_precedence_with_disagreements_counted(linked: Path) -> None:
    patients = pd.read_parquet(linked / "patients.parquet").set_index("patient_id")
    person = patients.loc[KEY.one(BOTH)]
    # the registration source's practice and birth month; what it lacks from the other
    assert (person["practice_id"], str(person["birth_month"])) == ("A1", "1940-03-01")
    assert (person["deprivation_decile"], person["ethnicity_group"]) == (3, "White")
    assert str(person["death_date"]) == "2023-12-01"
    linkage = _report(linked)["linkage"]
    assert linkage["people_in_several_sources"] == 1
    assert linkage["patients_disagreements"] == {
        "birth_month": 1,
        "practice_id": 1,
    }
    assert linkage["registered_population"] == "registrations of gp"


def test_without_a_registration_source_the_population_is_the_union(
    extracts: Path, tmp_path: Path
) -> None:
    sources = [
        Source.of("gp", "contract", str(extracts / "gp"), id="nhs_number"),
        Source.of("hospital", "contract", str(extracts / "hospital"), id="nhs_number"),
    ]
    result = ingest_sources(
        sources, tmp_path / "out", key_file=key_file(tmp_path / "k"), extract_date=EXTRACT
    )
    assert result.report["sources"]["hospital"]["not_registered"] == 0
    assert len(pd.read_parquet(tmp_path / "out" / "patients.parquet")) == 3
    assert any("no source supplies GP registrations" in n for n in result.verdict.notes)


def test_manifest_names_an_already_pseudonymised_id_taken_as_is(
    extracts: Path, tmp_path: Path
) -> None:
    research = tmp_path / "research"
    _contract(
        research,
        [{"patient_id": "ignored", "token": KEY.one(BOTH)}, {"token": "tok-unknown"}],
        [],
    )
    events = pd.DataFrame(
        {"token": [KEY.one(BOTH)], "kind": ["outpatient"], "start": ["2023-05-01"]}
        | {"end": [""], "code_system": ["riskstrat"], "code": ["attended"], "value": [""]}
        | {"cost": [""]}
    )
    events.to_csv(research / "events.csv", index=False)
    manifest = tmp_path / "m.toml"
    manifest.write_text(
        _manifest(extracts)
        .read_text()
        .replace('path = "gp"', f'path = "{extracts / "gp"}"')
        .replace('path = "hospital"', f'path = "{extracts / "hospital"}"')
        + '\n[sources.research]\nkind = "contract"\npath = "research"\n'
        'pseudonymised_id = "TOKEN"\n'
    )
    sources = read_manifest(manifest)
    assert [(s.name, s.id, s.registrations) for s in sources] == [
        ("gp", "nhs_number", True),
        ("hospital", "nhs_number", False),
        ("research", "pseudonym", False),
    ]
    result = ingest_sources(
        sources, tmp_path / "out", key_file=key_file(tmp_path / "k"), extract_date=EXTRACT
    )
    research_counts = result.report["sources"]["research"]
    assert (research_counts["matched_to_registered"], research_counts["not_registered"]) == (1, 1)
    events = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert (KEY.one(BOTH), "outpatient") in set(
        zip(events["patient_id"], events["kind"], strict=True)
    )


def test_manifest_and_command_line_mistakes_are_one_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[sources.hes]\npath = "x"\n')
    with pytest.raises(SettingsError, match=r"bad\.toml: \[sources\.hes\] kind: is required"):
        read_manifest(bad)
    bad.write_text('[sources.hes]\nkind = "hes"\npath = "x"\nid = "nhs"\n')
    with pytest.raises(SettingsError, match="id: must be one of"):
        read_manifest(bad)
    with pytest.raises(LinkageError, match="not both"):
        sources_given(["hes=x"], None, bad)
    with pytest.raises(LinkageError, match="NAME=PATH"):
        sources_given(["hes", "gp=y"], None, None)
    assert sources_given(["omop"], "dir", None) == (Source.of("omop", "omop", "dir"),)
    assert [s.id for s in sources_given(["hes=a", "omop=b"], None, None)] == [
        "nhs_number",
        "local",
    ]


def test_the_command_links_sources_given_as_name_equals_path(
    extracts: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    monkeypatch.setenv("RISKSTRAT_PSEUDONYM_KEY", TEST_KEY)
    out = tmp_path / "out"
    args = ["ingest", "--out", str(out), "--extract-date", "2024-01-01"]
    main([*args, "--source", f"contract={extracts / 'gp'}"])
    printed = capsys.readouterr().out
    assert "verdict: no source supplies emergency admissions" in printed
    # a contract extract's ids are local ids: hashed as given, not checked as NHS numbers
    assert len(pd.read_parquet(out / "patients.parquet")) == 3
    with pytest.raises(SystemExit) as stopped:
        main([*args, "--source", f"contract={extracts / 'gp'}", "--source", "unknown=x"])
    assert stopped.value.code == 2
    assert "unknown kind 'unknown'" in capsys.readouterr().err


def _dated(folder: Path, starts: list[str]) -> Path:
    return _contract(
        folder,
        [{"patient_id": BOTH, "registration_start": "2000-01-01"}],
        [(BOTH, "emergency_admission", s) for s in starts],
    )


def test_a_date_shifted_extract_says_so_and_suggests_the_extract_date(tmp_path: Path) -> None:
    data = _dated(tmp_path / "shifted", ["2090-03-01", "2091-06-30"])
    result = ingest("contract", data, tmp_path / "out", key_file=key_file(tmp_path / "k"))
    verdict = result.verdict
    assert "date-shifted research extract" in verdict.text
    assert "--extract-date 2091-06-30" in verdict.text
    assert "0 emergency admissions" not in verdict.text
    assert (verdict.can_train, verdict.can_evaluate, verdict.can_score) == (False, False, False)
    assert "date-shifted" in verdict.reasons["score"]
    markdown = (tmp_path / "out" / "quality_report.md").read_text()
    assert "## What the extract can support" in markdown


def test_an_extract_that_ended_long_before_the_extract_date_says_so(tmp_path: Path) -> None:
    data = _dated(tmp_path / "old", ["2019-01-01", "2020-02-01"])
    result = ingest(
        "contract", data, tmp_path / "out", key_file=key_file(tmp_path / "k"), extract_date=EXTRACT
    )
    assert result.verdict.text.startswith("2 emergency admissions")
    (note,) = result.verdict.notes
    assert note.startswith("the events end on 2020-02-01, 1,430 days before the extract date")
    assert "--extract-date 2020-02-01" in note
    assert result.verdict.can_score
    assert "--extract-date 2020-02-01" in result.verdict.reasons["score"]


def test_a_kind_no_source_supplies_is_named_in_the_verdict(tmp_path: Path) -> None:
    data = _contract(tmp_path / "gp", [{"patient_id": BOTH}], [(BOTH, "gp_contact", "2023-12-01")])
    result = ingest(
        "contract", data, tmp_path / "out", key_file=key_file(tmp_path / "k"), extract_date=EXTRACT
    )
    assert result.verdict.text.startswith("no source supplies emergency admissions")
    assert result.verdict.reasons["train"].startswith("no source supplies emergency")
    assert result.verdict.can_score and not result.verdict.can_train


def test_a_death_known_only_to_hes_links_to_its_gp_registration(tmp_path: Path) -> None:
    """HES holds one person's outpatient visit and the ONS deaths of that person, of one
    the GP source registers and of one nobody else knows: the second keeps their death, the
    third is set aside as not registered, counted."""
    gp = _contract(
        tmp_path / "gp",
        [{"patient_id": BOTH}, {"patient_id": GP_ONLY}],
        [(GP_ONLY, "gp_contact", "2023-09-01")],
    )
    hes = tmp_path / "hes"
    hes.mkdir()
    pd.DataFrame(
        {"NEWNHSNO": [BOTH], "ATTENDKEY": ["O1"], "APPTDATE": ["2023-03-01"]}
        | {"ATTENDED": ["5"], "APPTAGE": ["83"], "SEX": ["2"], "GPPRAC": ["A81001"]}
    ).to_csv(hes / "outpatients.csv", index=False)
    pd.DataFrame(
        {
            "NHS_NUMBER": [BOTH, GP_ONLY, HOSPITAL_ONLY],
            "REG_DATE_OF_DEATH": ["2023-10-01", "2023-11-02", "2023-12-03"],
            "S_UNDERLYING_COD_ICD10": ["I219", "C349", "J189"],
        }
    ).to_csv(hes / "ons_deaths.csv", index=False)
    sources = [
        Source.of("gp", "contract", str(gp), id="nhs_number", registrations=True),
        Source.of("hes", "hes", str(hes)),
    ]
    result = ingest_sources(
        sources, tmp_path / "out", key_file=key_file(tmp_path / "k"), extract_date=EXTRACT
    )
    patients = pd.read_parquet(tmp_path / "out" / "patients.parquet").set_index("patient_id")
    assert str(patients.loc[KEY.one(GP_ONLY), "death_date"]) == "2023-11-02"
    assert patients.loc[KEY.one(GP_ONLY), "practice_id"] == "A1"  # from the registration
    assert str(patients.loc[KEY.one(BOTH), "death_date"]) == "2023-10-01"
    assert KEY.one(HOSPITAL_ONLY) not in patients.index
    counts = result.report["sources"]["hes"]
    assert (counts["people"], counts["matched_to_registered"], counts["not_registered"]) == (
        3,
        2,
        1,
    )
    assert result.report["source_tables"]["hes/patients"]["ignored_by_reason"] == {
        "not_registered": 1
    }
    assert result.report["reconciles"]
