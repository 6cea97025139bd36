"""Contract validation: whole-file problems stop with the file and column; bad rows are kept
in quarantine with a reason, and the counts reconcile."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES
from riskstrat.contract.validation import QUARANTINE_DIR, REPORT_FILE, ContractError, validate_dir

EXTRACT = date(2026, 10, 31)


def _write(
    folder: Path, practices: pd.DataFrame, patients: pd.DataFrame, events: pd.DataFrame
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for table, frame in ((PRACTICES, practices), (PATIENTS, patients), (EVENTS, events)):
        pq.write_table(
            pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False),
            folder / table.file_name,
        )


def _practices() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "practice_id": ["Z1"],
            "practice_name": ["One"],
            "gp_cluster": ["C1"],
            "locality": ["North"],
        }
    )


def _patients() -> pd.DataFrame:
    d = date
    return pd.DataFrame(
        {
            "patient_id": ["a", "b", "c", "d", "d"],
            "birth_month": [
                d(1950, 1, 1),
                d(1960, 1, 1),
                d(1970, 1, 1),
                d(1980, 1, 1),
                d(1981, 1, 1),
            ],
            "sex": ["F", "M", "X", "F", "F"],
            "practice_id": ["Z1"] * 5,
            "deprivation_decile": pd.array([3, 11, 5, 5, 6], dtype="Int8"),
            "ethnicity_group": ["White", "Asian", None, "Black", "Black"],
            "registration_start": [d(2000, 1, 1)] * 5,
            "registration_end": [None] * 5,
            "death_date": [None] * 5,
        }
    )


def _events() -> pd.DataFrame:
    d = date
    rows = [
        ("a", "gp_contact", d(2024, 1, 1), None),  # fine
        ("a", "emergency_admission", d(2024, 2, 1), d(2024, 1, 1)),  # end before start
        ("a", "teleportation", d(2024, 3, 1), None),  # unknown kind
        ("zz", "gp_contact", d(2024, 1, 1), None),  # unknown patient
        ("a", "gp_contact", d(2027, 1, 1), None),  # future
        ("b", "gp_contact", d(2024, 1, 1), None),  # patient b is quarantined
        ("a", "prescription", d(2026, 10, 1), d(2026, 12, 24)),  # covered period may run on
    ]
    frame = pd.DataFrame(rows, columns=["patient_id", "kind", "start", "end"])
    return frame.assign(code_system=None, code=None, value=None, cost=None)


def test_bad_rows_are_quarantined_with_reasons_and_counts_reconcile(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())

    report = validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)

    assert report.reconciles
    by_table = {t.table: t for t in report.tables}
    assert by_table["patients"].by_reason == {
        "duplicate_key": 1,
        "invalid_deprivation": 1,
        "invalid_sex": 1,
    }
    assert by_table["patients"].accepted == 2
    assert by_table["events"].by_reason == {
        "end_before_start": 1,
        "future_date": 1,
        "unknown_kind": 1,
        "unknown_patient": 2,
    }
    quarantined = pd.read_parquet(tmp_path / "out" / QUARANTINE_DIR / "events.parquet")
    assert list(quarantined["source_row"]) == [1, 2, 3, 4, 5]
    assert list(quarantined["reason"]) == [
        "end_before_start",
        "unknown_kind",
        "unknown_patient",
        "future_date",
        "unknown_patient",
    ]
    accepted = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert list(accepted["kind"]) == ["gp_contact", "prescription"]
    assert (tmp_path / "out" / REPORT_FILE).exists()


def test_a_lottery_draw_is_drawn_or_not_and_nothing_else(tmp_path: Path) -> None:
    """A recorded draw's value is 1 (drawn) or 0 (not): anything else, or none, would put
    someone in the wrong arm of the lottery design, so it is quarantined."""
    day = date(2024, 1, 1)
    events = pd.DataFrame(
        {
            "patient_id": ["a"] * 5,
            "kind": ["risk_list_lottery"] * 4 + ["risk_list_score"],
            "start": [day] * 5,
            "end": None,
            "code_system": "riskstrat",
            "code": ["reablement_plan"] * 4 + ["listed"],
            "value": [1.0, 0.0, 0.5, None, 0.5],
            "cost": None,
        }
    )
    _write(tmp_path / "in", _practices(), _patients(), events)
    report = validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)
    by_table = {t.table: t for t in report.tables}
    assert by_table["events"].by_reason == {"invalid_lottery_draw": 2}
    accepted = pd.read_parquet(tmp_path / "out" / "events.parquet")
    assert accepted["value"].tolist() == [1.0, 0.0, 0.5]


def test_duplicate_patient_keeps_the_first_row(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())
    validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)

    patients = pd.read_parquet(tmp_path / "out" / "patients.parquet")
    quarantined = pd.read_parquet(tmp_path / "out" / QUARANTINE_DIR / "patients.parquet")
    assert list(patients["patient_id"]) == ["a", "d"]
    assert patients["birth_month"].iloc[1] == pd.Timestamp(1980, 1, 1).date()
    assert list(zip(quarantined["source_row"], quarantined["reason"], strict=True)) == [
        (1, "invalid_deprivation"),
        (2, "invalid_sex"),
        (4, "duplicate_key"),
    ]


def test_missing_column_names_the_file_and_column(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())
    events = pq.read_table(tmp_path / "in" / "events.parquet").drop(["kind"])
    pq.write_table(events, tmp_path / "in" / "events.parquet")

    with pytest.raises(ContractError, match=r"events\.parquet: missing column 'kind'"):
        validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)


def test_wrong_type_names_the_file_and_column(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())
    events = pq.read_table(tmp_path / "in" / "events.parquet")
    as_text = events.set_column(
        events.schema.get_field_index("start"), "start", events.column("start").cast(pa.string())
    )
    pq.write_table(as_text, tmp_path / "in" / "events.parquet")

    with pytest.raises(ContractError, match=r"events\.parquet: column 'start' has type string"):
        validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())
    (tmp_path / "in" / "patients.parquet").write_text("not parquet")

    with pytest.raises(ContractError, match=r"patients\.parquet: cannot be read"):
        validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)


def _contents(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def test_a_failed_run_leaves_the_last_good_output_as_it_was(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())
    validate_dir(tmp_path / "in", tmp_path / "out", EXTRACT)
    good = _contents(tmp_path / "out")
    # A newer extract whose events file arrived truncated: practices and patients read fine.
    _write(tmp_path / "newer", _practices(), _patients().iloc[:2], _events())
    data = (tmp_path / "newer" / "events.parquet").read_bytes()
    (tmp_path / "newer" / "events.parquet").write_bytes(data[: len(data) // 2])

    with pytest.raises(ContractError, match=r"events\.parquet: cannot be read"):
        validate_dir(tmp_path / "newer", tmp_path / "out", EXTRACT)

    assert _contents(tmp_path / "out") == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "newer", "out"]


def test_refuses_to_write_over_its_input_or_a_folder_it_did_not_write(tmp_path: Path) -> None:
    _write(tmp_path / "in", _practices(), _patients(), _events())
    raw = _contents(tmp_path / "in")
    with pytest.raises(ValueError, match="would replace the input"):
        validate_dir(tmp_path / "in", tmp_path / "in", EXTRACT)
    assert _contents(tmp_path / "in") == raw
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "mlflow.db").write_text("the registry")
    with pytest.raises(ValueError, match=r"not empty and has no validation_report\.json"):
        validate_dir(tmp_path / "in", tmp_path / "work", EXTRACT)
    assert (tmp_path / "work" / "mlflow.db").read_text() == "the registry"


def test_rows_missing_a_required_value_are_quarantined_not_a_crash(tmp_path: Path) -> None:
    """A Parquet file may hold nulls in the contract's required fields; those rows go to
    quarantine (whose columns may then be empty) instead of the write failing."""
    folder = tmp_path / "in"
    _write(folder, _practices(), _patients().assign(sex=["F", "M", "F", "F", "F"]), _events())
    events = pq.read_table(folder / EVENTS.file_name)
    loose = pa.schema([f.with_nullable(True) for f in events.schema])
    frame = events.to_pandas().astype({"start": "object"})
    frame.loc[0, "start"] = None
    frame.loc[5, "patient_id"] = None
    pq.write_table(
        pa.Table.from_pandas(frame, schema=loose, preserve_index=False), folder / EVENTS.file_name
    )

    report = validate_dir(folder, tmp_path / "out", EXTRACT)

    assert report.reconciles
    quarantined = pd.read_parquet(tmp_path / "out" / QUARANTINE_DIR / "events.parquet")
    missing = quarantined[quarantined["reason"] == "missing_value"]
    assert list(missing["source_row"]) == [0, 5]
