"""Reading a folder of contract tables: only a complete, consistent folder in the contract's
schema is used; anything else is refused with one line naming the file (and column)."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from contract_frames import patients_frame

from riskstrat.cli import main
from riskstrat.cli.options import TRACKING_ENV
from riskstrat.contract.record import RECORD_FILE, FolderError, write_record
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES
from riskstrat.contract.tables import ContractTables, fingerprint
from riskstrat.contract.validation import validate_dir
from riskstrat.features.engine import build_features
from riskstrat.models.registry import RegisteredBundle

EXTRACT = date(2026, 10, 31)
AS_OF = date(2026, 10, 26)


def _validated(folder: Path, people: int) -> Path:
    """``people`` patients of one practice with a GP contact each, validated into ``folder``."""
    ids = [f"p{i}" for i in range(people)]
    frames = {
        PRACTICES: pd.DataFrame(
            {"practice_id": ["Z1"], "practice_name": ["One"], "gp_cluster": ["C1"]}
            | {"locality": ["North"]}
        ),
        PATIENTS: patients_frame(ids),
        EVENTS: pd.DataFrame(
            {"patient_id": ids, "kind": ["gp_contact"] * people}
            | {"start": [date(2026, 1, 5)] * people, "end": [None] * people}
            | {"code_system": None, "code": None, "value": None, "cost": None}
        ),
    }
    raw = folder.parent / f"{folder.name}-raw"
    raw.mkdir(parents=True)
    for table, frame in frames.items():
        arrow = pa.Table.from_pandas(frame, schema=table.schema, preserve_index=False)
        pq.write_table(arrow, raw / table.file_name)
    validate_dir(raw, folder, EXTRACT)
    return folder


def test_a_validated_folder_is_read_and_fingerprinted(tmp_path: Path) -> None:
    folder = _validated(tmp_path / "v", 3)
    features = build_features(ContractTables.from_dir(folder), [AS_OF])
    assert len(features) == 3
    assert fingerprint(folder) == fingerprint(folder)
    assert fingerprint(folder) != fingerprint(_validated(tmp_path / "w", 4))


def test_a_table_left_from_another_run_is_refused_naming_it(tmp_path: Path) -> None:
    folder = _validated(tmp_path / "v", 3)
    other = _validated(tmp_path / "w", 4)
    shutil.copy(other / "patients.parquet", folder / "patients.parquet")
    with pytest.raises(
        FolderError,
        match=r"patients\.parquet: does not match tables\.json \(4 rows, 3 recorded\).*"
        r"run validate again",
    ):
        ContractTables.from_dir(folder)


def test_a_changed_table_with_as_many_rows_is_refused(tmp_path: Path) -> None:
    folder = _validated(tmp_path / "v", 3)
    events = pq.read_table(folder / "events.parquet")
    kind = events.schema.get_field_index("kind")
    changed = events.set_column(kind, "kind", pa.array(["outpatient"] * 3, pa.string()))
    pq.write_table(changed, folder / "events.parquet")
    with pytest.raises(FolderError, match=r"events\.parquet: .*its SHA-256 differs"):
        ContractTables.from_dir(folder)


def test_a_folder_without_its_record_is_refused(tmp_path: Path) -> None:
    folder = _validated(tmp_path / "v", 3)
    (folder / RECORD_FILE).unlink()
    with pytest.raises(FolderError, match=r"tables\.json: not found.*run validate again"):
        ContractTables.from_dir(folder)


def _with_text_start(folder: Path) -> Path:
    events = pq.read_table(folder / "events.parquet")
    start = events.schema.get_field_index("start")
    as_text = events.set_column(start, "start", events.column("start").cast(pa.string()))
    pq.write_table(as_text, folder / "events.parquet")
    write_record(folder)  # consistent with its record, but not the contract's schema
    return folder


def test_a_column_of_the_wrong_type_names_the_file_and_column(tmp_path: Path) -> None:
    folder = _with_text_start(_validated(tmp_path / "v", 3))
    with pytest.raises(
        FolderError, match=r"events\.parquet: column 'start' has type string, expected date32"
    ):
        ContractTables.from_dir(folder)


def test_a_truncated_table_is_named(tmp_path: Path) -> None:
    folder = _validated(tmp_path / "v", 3)
    data = (folder / "events.parquet").read_bytes()
    (folder / "events.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(FolderError, match=r"events\.parquet: cannot be read as Parquet"):
        ContractTables.from_dir(folder)


def test_tables_replaced_during_a_run_are_refused(tmp_path: Path) -> None:
    folder = _validated(tmp_path / "v", 3)
    sources = ContractTables.from_dir(folder)
    _validated(tmp_path / "w", 4)
    validate_dir(tmp_path / "w-raw", folder, EXTRACT)
    with pytest.raises(FolderError, match="replaced while they were being read"):
        build_features(sources, [AS_OF])


def _one_line_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as stopped:
        main(argv)
    printed = capsys.readouterr()
    assert stopped.value.code == 2
    assert printed.out == ""
    lines = printed.err.strip().splitlines()
    assert len(lines) == 1
    return lines[0]


def test_commands_on_a_corrupt_folder_name_the_file_and_column(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    champion: RegisteredBundle,
    tracking_uri: str,
) -> None:
    folder = _with_text_start(_validated(tmp_path / "v", 3))
    monkeypatch.setenv(TRACKING_ENV, tracking_uri)
    expected = f"[riskstrat] error: {folder / 'events.parquet'}: column 'start' has type string"
    commands = [
        ["features", "--data", str(folder), "--as-of", "2026-10-26", "--out", str(tmp_path / "f")],
        ["train", "--data", str(folder), "--workdir", str(tmp_path / "work")],
        ["weekly", "--data", str(folder), "--as-of", "2026-10-26", "--out", str(tmp_path)],
    ]
    for argv in commands:
        assert _one_line_exit_2(argv, capsys).startswith(expected), argv[0]
    assert not (tmp_path / "2026-10-26").exists()
