"""Streaming validation writes exactly what the in-memory validation wrote: on a messy copy of
the small borough (every reason planted, columns of other accepted types), in small batches
so that reasons cross batch boundaries, the accepted tables, quarantine and report match the
oracle row for row (``riskstrat.bench.validate.compare``, the check run at full size)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from validation_oracle import oracle_validate

from riskstrat.bench.validate import compare
from riskstrat.contract import validation_read, validation_split
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, TABLES
from riskstrat.contract.validation import ContractError, validate_dir
from riskstrat.contract.validation_rules import rules_for

EXTRACT = date(2026, 10, 31)
EVENT_ROWS = 40_000


def _messy_practices(clean: pd.DataFrame) -> pd.DataFrame:
    bad = clean.iloc[[0, 1]].copy()
    bad["gp_cluster"] = [None, clean["gp_cluster"].iloc[1]]  # missing value, then a repeat
    return pd.concat([clean, bad], ignore_index=True)


def _messy_patients(clean: pd.DataFrame) -> pd.DataFrame:
    frame = clean.copy()
    day = pd.Timestamp
    planted = {
        0: {"birth_month": None},
        1: {"sex": "X"},
        2: {"deprivation_decile": 0},
        3: {"ethnicity_group": "Martian"},
        4: {"registration_end": day(1990, 1, 1), "registration_start": day(1995, 1, 1)},
        5: {"death_date": day(1900, 1, 1)},
        6: {"registration_start": day(2030, 1, 1)},
        7: {"practice_id": "nowhere"},
    }
    for row, values in planted.items():
        for column, value in values.items():
            frame.loc[row, column] = value
    return pd.concat([frame, clean.iloc[[8, 9]]], ignore_index=True)  # later copies


def _messy_events(clean: pd.DataFrame, patients: pd.DataFrame) -> pd.DataFrame:
    frame = clean.copy()
    day = pd.Timestamp
    step = EVENT_ROWS // 12
    planted = [
        {"start": None},
        {"kind": "teleportation"},
        {"patient_id": "nobody"},
        {"patient_id": patients["patient_id"].iloc[1]},  # a quarantined patient
        {"end": day(1999, 1, 1)},
        {"start": day(2027, 1, 1), "end": None},
        {"value": -1.0},
        {"cost": -5.0},
        {"value": float("nan")},
        {"start": day(2026, 10, 1), "end": day(2027, 3, 1)},  # running on: accepted
        {"kind": "risk_list_lottery", "value": 0.5},  # a draw is 1 or 0
    ]
    for k, values in enumerate(planted):
        for column, value in values.items():
            frame.loc[k * step + 3 : k * step + 5, column] = value
    return frame


def _read(path: Path) -> pd.DataFrame:
    """A table's first rows with their dates as timestamps, so that planted dates mix in."""
    frame = pq.read_table(path).slice(0, EVENT_ROWS).to_pandas(date_as_object=False)
    dates = frame.select_dtypes("datetime").columns
    return frame.astype({c: "datetime64[ms]" for c in dates})


def _write_messy(small_borough_dir: Path, folder: Path) -> None:
    """The small borough with every reason planted; start as timestamps, deciles as int64
    and identifiers as large strings, which validation must cast to the contract's types."""
    folder.mkdir()
    read = {t.name: _read(small_borough_dir / t.file_name) for t in TABLES}
    frames = {
        PRACTICES: _messy_practices(read["practices"]),
        PATIENTS: _messy_patients(read["patients"]),
    }
    frames[EVENTS] = _messy_events(read["events"], frames[PATIENTS])
    for table, frame in frames.items():
        fields = [f.with_nullable(True) for f in table.schema]
        if table is EVENTS:
            fields[0] = pa.field("patient_id", pa.large_string())
            fields[2] = pa.field("start", pa.timestamp("ms"))
        if table is PATIENTS:
            fields[4] = pa.field("deprivation_decile", pa.int64())
        arrow = pa.Table.from_pandas(frame, schema=pa.schema(fields), preserve_index=False)
        pq.write_table(arrow, folder / table.file_name, row_group_size=7_000)


def test_streaming_writes_what_the_in_memory_validation_wrote(
    small_borough_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _write_messy(small_borough_dir, tmp_path / "in")
    monkeypatch.setattr(validation_read, "BATCH_ROWS", 5_000)
    monkeypatch.setattr(validation_split, "BATCH_ROWS", 3_000)

    report = validate_dir(tmp_path / "in", tmp_path / "new", EXTRACT)
    oracle_validate(tmp_path / "in", tmp_path / "old", EXTRACT)

    assert compare(tmp_path / "old", tmp_path / "new") == []
    assert report.reconciles
    for table in report.tables:
        rules = rules_for(next(t for t in TABLES if t.name == table.table), EXTRACT)
        assert set(table.by_reason) == set(rules), table.table  # every reason was exercised
    events = next(t for t in report.tables if t.table == "events")
    assert sum(events.running_after_extract_date.values()) >= 3  # the planted ones at least


def test_a_file_corrupt_past_its_footer_is_named_and_nothing_is_left(tmp_path: Path) -> None:
    """The footer reads, so the file opens; the damage is met while streaming its rows."""
    folder = tmp_path / "in"
    folder.mkdir()
    for table in (PRACTICES, PATIENTS):
        pq.write_table(table.schema.empty_table(), folder / table.file_name)
    rows = pa.table({"patient_id": ["a"] * 60_000, "kind": ["gp_contact"] * 60_000})
    events = rows.append_column("start", pa.array([date(2024, 1, 1)] * 60_000))
    for column in EVENTS.columns[3:]:
        events = events.append_column(column.name, pa.nulls(60_000, column.type))
    path = folder / EVENTS.file_name
    pq.write_table(events, path, row_group_size=10_000, compression="none")
    damaged = bytearray(path.read_bytes())
    middle = len(damaged) // 3
    damaged[middle : middle + 2_000] = b"\xab" * 2_000
    path.write_bytes(bytes(damaged))

    with pytest.raises(ContractError, match=r"events\.parquet: cannot be read as Parquet"):
        validate_dir(folder, tmp_path / "out", EXTRACT)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in"]


def test_the_comparison_finds_a_row_added_before_the_others_and_a_changed_count(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    practices = pa.table({"practice_id": ["Z1"], "gp_cluster": ["C"], "locality": ["N"]})
    pq.write_table(
        practices.add_column(1, "practice_name", pa.nulls(1, pa.string())),
        folder / PRACTICES.file_name,
    )
    pq.write_table(PATIENTS.schema.empty_table(), folder / PATIENTS.file_name)
    pq.write_table(EVENTS.schema.empty_table(), folder / EVENTS.file_name)
    validate_dir(folder, tmp_path / "old", EXTRACT)
    validate_dir(folder, tmp_path / "new", EXTRACT)
    assert compare(tmp_path / "old", tmp_path / "new") == []

    extra = pa.table(
        {"practice_id": ["Z2"], "practice_name": ["Two"], "gp_cluster": ["C"], "locality": ["N"]},
        schema=PRACTICES.schema,
    )
    accepted = pq.read_table(tmp_path / "new" / PRACTICES.file_name)
    pq.write_table(pa.concat_tables([extra, accepted]), tmp_path / "new" / PRACTICES.file_name)
    report = tmp_path / "new" / "validation_report.json"
    report.write_text(report.read_text().replace('"accepted": 1', '"accepted": 2', 1))

    assert compare(tmp_path / "old", tmp_path / "new") == [
        "practices.parquet: 2 rows differ",
        "validation_report.json: the reports differ",
    ]
