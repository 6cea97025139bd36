"""The in-memory validation that streaming replaced, kept as the oracle the streaming one
is checked against row for row (``test_validation_streams.py``): the whole table in pandas,
one vectorised check per reason. Not for use outside the tests: it holds every table whole.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.contract.schema import (
    ETHNICITY_GROUPS,
    EVENTS,
    PATIENTS,
    PRACTICES,
    SEXES,
    Column,
    EventKind,
    Table,
)
from riskstrat.contract.validation import (
    QUARANTINE_DIR,
    REPORT_FILE,
    ContractError,
    TableReport,
    ValidationReport,
)


def read_table(path: Path, table: Table) -> pa.Table:
    """Read one contract file and cast it to the contract schema, or raise ``ContractError``."""
    if not path.exists():
        raise ContractError(f"{path}: file not found (the {table.name} table is required)")
    try:
        raw = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(f"{path}: cannot be read as Parquet ({exc})") from exc
    columns = []
    for col in table.columns:
        if col.name not in raw.column_names:
            raise ContractError(f"{path}: missing column '{col.name}' ({col.meaning})")
        columns.append(_cast_column(path, col, raw.column(col.name)))
    return pa.Table.from_arrays(columns, schema=table.schema)


def _cast_column(path: Path, column: Column, values: pa.ChunkedArray) -> pa.Array:
    if not column.accepts(values.type):
        raise ContractError(
            f"{path}: column '{column.name}' has type {values.type}, expected {column.type}"
        )
    try:
        return values.cast(column.type).combine_chunks()
    except pa.ArrowInvalid as exc:
        raise ContractError(
            f"{path}: column '{column.name}' cannot be cast to {column.type} ({exc})"
        ) from exc


RowCheck = Callable[[pd.DataFrame], np.ndarray]


def _first_failure(frame: pd.DataFrame, checks: dict[str, RowCheck]) -> np.ndarray:
    """The reason code of the first failing check per row, or an empty string."""
    reasons = np.full(len(frame), "", dtype=object)
    for reason, check in checks.items():
        failed = np.asarray(check(frame), dtype=bool) & (reasons == "")
        reasons[failed] = reason
    return reasons


def _missing(table: Table) -> RowCheck:
    required = [c.name for c in table.columns if not c.nullable]
    return lambda f: f[required].isna().any(axis=1).to_numpy()


def _after(limit: date, *columns: str) -> RowCheck:
    stamp = pd.Timestamp(limit)
    return lambda f: np.logical_or.reduce(
        [(f[c] > stamp).fillna(False).to_numpy() for c in columns]
    )


def _starts_after(limit: date) -> RowCheck:
    """Start after the extract date: it has not happened yet. An end after it is kept: care
    still running then (a reablement plan, a package to its review date, a prescription's
    covered period) ends as planned, and the features cut every episode at the as-of date."""
    stamp = pd.Timestamp(limit)
    return lambda f: (f["start"] > stamp).fillna(False).to_numpy()


def running_on(events: pa.Table, extract_date: date) -> dict[str, int]:
    """Accepted events per kind still running after the extract date (a planned end)."""
    frame = events.select(["kind", "end"]).to_pandas(date_as_object=False)
    running = frame[(frame["end"] > pd.Timestamp(extract_date)).fillna(False)]
    counts = running["kind"].value_counts().sort_index()
    return {str(k): int(v) for k, v in counts.items()}


def _duplicated(key: str) -> RowCheck:
    return lambda f: f[key].duplicated(keep="first").to_numpy()


def practice_checks() -> dict[str, RowCheck]:
    return {"missing_value": _missing(PRACTICES), "duplicate_key": _duplicated("practice_id")}


def patient_checks(practice_ids: set[str], extract_date: date) -> dict[str, RowCheck]:
    return {
        "missing_value": _missing(PATIENTS),
        "duplicate_key": _duplicated("patient_id"),
        "unknown_practice": lambda f: ~f["practice_id"].isin(practice_ids).to_numpy(),
        "invalid_sex": lambda f: ~f["sex"].isin(SEXES).to_numpy(),
        "invalid_deprivation": lambda f: (
            f["deprivation_decile"].notna() & ~f["deprivation_decile"].between(1, 10)
        ).to_numpy(),
        "invalid_ethnicity": lambda f: (
            f["ethnicity_group"].notna() & ~f["ethnicity_group"].isin(ETHNICITY_GROUPS)
        ).to_numpy(),
        "end_before_start": lambda f: (
            (f["registration_end"] < f["registration_start"]).fillna(False).to_numpy()
        ),
        "death_before_birth": lambda f: (
            (f["death_date"] < f["birth_month"]).fillna(False).to_numpy()
        ),
        "future_date": _after(extract_date, "birth_month", "registration_start", "death_date"),
    }


def event_checks(patient_ids: set[str], extract_date: date) -> dict[str, RowCheck]:
    kinds = {k.value for k in EventKind}
    return {
        "missing_value": _missing(EVENTS),
        "unknown_kind": lambda f: ~f["kind"].isin(kinds).to_numpy(),
        "unknown_patient": lambda f: ~f["patient_id"].isin(patient_ids).to_numpy(),
        "end_before_start": lambda f: (f["end"] < f["start"]).fillna(False).to_numpy(),
        "future_date": _starts_after(extract_date),
        "negative_value": lambda f: ((f["value"] < 0) | (f["cost"] < 0)).fillna(False).to_numpy(),
        "invalid_lottery_draw": lambda f: (
            (f["kind"] == EventKind.RISK_LIST_LOTTERY.value) & ~f["value"].isin([0.0, 1.0])
        ).to_numpy(),
    }


def _split(
    table: pa.Table, checks: dict[str, RowCheck]
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    frame = table.to_pandas(date_as_object=False)
    reasons = _first_failure(frame, checks)
    bad = reasons != ""
    kept_as_read = pa.schema([f.with_nullable(True) for f in table.schema])
    quarantined = (
        table.filter(pa.array(bad))
        .cast(kept_as_read)  # the contract's required fields may be what is missing
        .append_column("source_row", pa.array(np.flatnonzero(bad), pa.int64()))
        .append_column("reason", pa.array(reasons[bad].astype(str), pa.string()))
    )
    counts = pd.Series(reasons[bad]).value_counts().sort_index()
    return table.filter(pa.array(~bad)), quarantined, {str(k): int(v) for k, v in counts.items()}


def oracle_validate(source: Path, folder: Path, extract_date: date) -> ValidationReport:
    """Validate ``source`` into the new ``folder`` the way validate did before it streamed."""
    folder.mkdir(parents=True)
    (folder / QUARANTINE_DIR).mkdir()
    reports: list[TableReport] = []
    accepted_keys: dict[str, set[str]] = {}
    for table in (PRACTICES, PATIENTS, EVENTS):
        data = read_table(source / table.file_name, table)
        if table is PRACTICES:
            checks = practice_checks()
        elif table is PATIENTS:
            checks = patient_checks(accepted_keys["practices"], extract_date)
        else:
            checks = event_checks(accepted_keys["patients"], extract_date)
        good, bad, by_reason = _split(data, checks)
        pq.write_table(good, folder / table.file_name)
        pq.write_table(bad, folder / QUARANTINE_DIR / table.file_name)
        if table.key:
            accepted_keys[table.name] = set(good.column(table.key).to_pylist())
        running = running_on(good, extract_date) if table is EVENTS else {}
        reports.append(
            TableReport(table.name, data.num_rows, good.num_rows, bad.num_rows, by_reason, running)
        )
    report = ValidationReport(str(source), str(folder), extract_date.isoformat(), tuple(reports))
    (folder / REPORT_FILE).write_text(report.to_json())
    return report
