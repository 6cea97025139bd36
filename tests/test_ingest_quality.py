"""The quality report and verdict, contract-shaped input, the practices file, the command."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from ingest_support import OMOP, OMOP_SKIP, TEST_KEY, copy_extract, key_file, run

from riskstrat.cli import main
from riskstrat.features.engine import feature_specs
from riskstrat.sources.ingest import quality
from riskstrat.sources.ingest.pipeline import ingest
from riskstrat.sources.ingest.quality import Coverage, Span, Thresholds, spans, verdict
from riskstrat.sources.ingest.tables import IngestError


def test_verdict_says_what_the_data_can_do() -> None:
    t = Thresholds(min_admissions_to_train=100, min_admissions_to_evaluate=30)
    few = verdict(12, 111, t)
    assert (few.can_train, few.can_evaluate) == (False, False)
    assert few.text.startswith("12 emergency admissions: too few to train")
    assert few.text.endswith("scoring with the existing champion only")
    some = verdict(40, 5000, t)
    assert (some.can_train, some.can_evaluate) == (False, True)
    assert verdict(100, 5000, t).can_train
    with pytest.raises(ValueError, match="min_admissions"):
        Thresholds(min_admissions_to_train=10, min_admissions_to_evaluate=20)


def _contract_tables(folder: Path) -> Path:
    folder.mkdir(parents=True)
    pd.DataFrame(
        {"PRACTICE_ID": ["A1", "B2"], "practice_name": ["A", "B"], "gp_cluster": ["x", "y"]}
        | {"locality": ["North", "South"]}
    ).to_csv(folder / "Practices.csv", index=False)
    pd.DataFrame(
        {
            "patient_id": ["9434765919", "4010232137", "4010232137"],
            "birth_month": ["1940-03-01", "1950-07-01", "1950-07-01"],
            "sex": ["F", "M", "M"],
            "practice_id": ["A1", "B2", "B2"],
            "deprivation_decile": ["3", "", ""],
            "ethnicity_group": ["White", "Unknown", "Unknown"],
            "registration_start": ["2000-01-01", "2001-01-01", "2001-01-01"],
            "registration_end": ["", "", ""],
            "death_date": ["", "", ""],
        }
    ).to_csv(folder / "PATIENTS.csv", index=False)
    pd.DataFrame(
        {
            "patient_id": ["9434765919", "9434765919", "4010232137"],
            "kind": ["emergency_admission", "gp_contact", "teleport"],
            "start": ["2020-01-05", "2020-02-01", "2020-03-01"],
            "end": ["2020-01-09", "", ""],
            "code_system": ["riskstrat"] * 3,
            "code": ["emergency", "face_to_face", "x"],
            "value": ["4", "", ""],
            "cost": ["", "", ""],
        }
    ).to_csv(folder / "events.csv", index=False)
    return folder


def test_contract_source_is_pseudonymised_validated_and_clustered(tmp_path: Path) -> None:
    data = _contract_tables(tmp_path / "data")
    practices = tmp_path / "practices.csv"
    practices.write_text("practice_id,gp_cluster,locality\nA1,Pilot,Central\n")
    out = tmp_path / "out"
    result = run("contract", data, out, key_file(tmp_path / "keys"), practices=practices)

    patients = pd.read_parquet(out / "patients.parquet")
    assert "9434765919" not in set(patients["patient_id"])
    assert patients["patient_id"].str.startswith("p").all()
    report = result.report
    assert report["contract_tables"]["patients"]["by_reason"] == {"duplicate_key": 1}
    assert report["contract_tables"]["events"]["by_reason"] == {"unknown_kind": 1}
    assert report["practices_from_file"] == 1
    table = pd.read_parquet(out / "practices.parquet").set_index("practice_id")
    assert table.loc["A1", ["gp_cluster", "locality"]].tolist() == ["Pilot", "Central"]
    assert table.loc["B2", ["gp_cluster", "locality"]].tolist() == ["y", "South"]
    assert report["verdict"]["emergency_admissions"] == 1
    assert report["reconciles"]


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_rerun_replaces_the_whole_output_and_leaves_no_mapped_folder(tmp_path: Path) -> None:
    data = _contract_tables(tmp_path / "data")
    out = tmp_path / "out"
    run("contract", data, out, key_file(tmp_path / "keys"))
    (out / ".mapped-killed").mkdir()  # what a killed run of an older version left inside
    (out / ".mapped-killed" / "events.parquet").write_text("half")

    result = run("contract", data, out, key_file(tmp_path / "keys"))

    assert result.report["reconciles"]
    assert not list(out.rglob(".mapped-*"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "keys", "out"]
    assert json.loads((out / "validation_report.json").read_text())["source"] == str(data)


def test_a_failed_rerun_leaves_the_last_good_output_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _contract_tables(tmp_path / "data")
    out = tmp_path / "out"
    run("contract", data, out, key_file(tmp_path / "keys"))
    good = _contents(out)

    def fails(*args: object) -> None:
        raise OSError("disk full while writing the quality report")

    monkeypatch.setattr(quality, "write", fails)
    with pytest.raises(OSError, match="disk full"):
        run(
            "contract", data, out, key_file(tmp_path / "other-keys", "another-key-0123456789abcdef")
        )

    assert _contents(out) == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "keys", "other-keys", "out"]


def test_practices_file_needs_its_columns(tmp_path: Path) -> None:
    data = _contract_tables(tmp_path / "data")
    practices = tmp_path / "practices.csv"
    practices.write_text("practice_id,locality\nA1,Central\n")
    with pytest.raises(IngestError, match="missing column 'gp_cluster'"):
        run("contract", data, tmp_path / "out", key_file(tmp_path / "k"), practices=practices)


def test_command_writes_json_and_markdown_reports(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RISKSTRAT_PSEUDONYM_KEY", TEST_KEY)
    data = copy_extract(OMOP, tmp_path / "omop", OMOP_SKIP)
    out = tmp_path / "out"
    main(["ingest", "--source", "omop", "--path", str(data), "--out", str(out)])
    printed = capsys.readouterr().out
    assert "verdict: 4 emergency admissions: too few to train" in printed
    report = json.loads((out / "quality_report.json").read_text())
    assert report["reconciles"]
    for table, counts in report["source_tables"].items():
        assert counts["rows_in"] == counts["rows_mapped"] + counts["rows_ignored"], table
    assert report["outcomes_per_year"]["2009"]["emergency_admissions"] == 2
    assert report["unmapped_codes"]["condition_occurrence"][0]["description"] == "Stress"
    markdown = (out / "quality_report.md").read_text()
    assert "**Verdict.** 4 emergency admissions" in markdown
    assert "| visit_occurrence | 1791 | 1791 | 0 |" in markdown
    monkeypatch.delenv("RISKSTRAT_PSEUDONYM_KEY")
    with pytest.raises(SystemExit) as stopped:
        main(["ingest", "--source", "omop", "--path", str(data), "--out", str(out)])
    assert stopped.value.code == 2
    assert "no pseudonymisation key" in capsys.readouterr().err


def test_a_value_missing_in_the_source_reads_as_not_recorded() -> None:
    specs = {s.name: s for s in feature_specs()}
    assert specs["deprivation_decile"].sentence(float("nan")) == "deprivation decile not recorded"
    assert specs["sex"].sentence(float("nan")) == "sex not recorded"


def test_only_admissions_after_enough_history_and_within_a_known_horizon_train() -> None:
    history = Span("gp_contact", date(2016, 1, 3), date(2023, 12, 20))
    admissions = (
        date(2016, 6, 1),  # less than 730 days of history before any as-of date
        date(2019, 5, 1),
        date(2023, 12, 1),  # every as-of date whose horizon holds it ends after the extract date
    )
    coverage = Coverage(
        spans=(history, Span("emergency_admission", date(2016, 6, 1), date(2023, 12, 1))),
        admissions=admissions,
        extract_date=date(2023, 12, 31),
    )
    assert coverage.trainable() == 1
    later = Coverage(spans=coverage.spans, admissions=admissions, extract_date=date(2024, 7, 1))
    assert later.trainable() == 2
    # the admissions themselves are not history for training (another kind must cover it)
    alone = Coverage(spans=coverage.spans[1:], admissions=admissions, extract_date=date(2024, 7, 1))
    assert alone.trainable() == 0


def test_stretches_break_at_long_gaps_so_stray_early_dates_cover_nothing() -> None:
    days = [date(1999, 3, 1), date(2001, 4, 2), date(2001, 6, 1), date(2001, 8, 30)]
    assert [str(s) for s in spans("elective_admission", days, 92)] == [
        "elective_admission 1999-03..1999-03",
        "elective_admission 2001-04..2001-08",
    ]


def _trainable_extract(folder: Path) -> Path:
    """120 people, a GP contact every month for eight years and one emergency admission each
    over three of them: enough history before, and outcomes known by the extract date."""
    folder.mkdir(parents=True)
    ids = [f"p{i:03d}" for i in range(120)]
    pd.DataFrame({"practice_id": ["A1"], "gp_cluster": ["x"], "locality": ["N"]}).to_csv(
        folder / "practices.csv", index=False
    )
    pd.DataFrame(
        {"patient_id": ids, "birth_month": "1940-03-01", "sex": "F", "practice_id": "A1"}
        | {"deprivation_decile": "", "ethnicity_group": "Unknown"}
        | {"registration_start": "2010-01-01", "registration_end": "", "death_date": ""}
    ).to_csv(folder / "patients.csv", index=False)
    contacts = [
        (ids[m % 120], "gp_contact", f"{2016 + m // 12}-{m % 12 + 1:02d}-15") for m in range(96)
    ]
    admitted = [
        (p, "emergency_admission", f"{2019 + i // 40}-{i % 40 * 3 // 10 + 1:02d}-{i % 10 + 1:02d}")
        for i, p in enumerate(ids)
    ]
    pd.DataFrame(
        [
            {"patient_id": p, "kind": k, "start": s, "end": "", "code_system": "riskstrat"}
            | {"code": "x", "value": "", "cost": ""}
            for p, k, s in contacts + admitted
        ]
    ).to_csv(folder / "events.csv", index=False)
    return folder


def test_an_extract_with_history_and_known_outcomes_can_train(tmp_path: Path) -> None:
    data = _trainable_extract(tmp_path / "contract")
    result = ingest(
        "contract",
        data,
        tmp_path / "out",
        key_file=key_file(tmp_path / "k"),
        extract_date=date(2024, 1, 1),
    )
    verdict = result.verdict
    assert (verdict.can_train, verdict.can_evaluate, verdict.can_score) == (True, True, True)
    assert verdict.text == (
        "120 emergency admissions among 120 people: enough to train (at least 100) and to evaluate"
    )
    assert verdict.reasons["train"].startswith("120 of 120 emergency admissions fall within")
    assert "possible go-live on" in verdict.reasons["evaluate"]
