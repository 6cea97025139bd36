"""Ingest one extract: read, map, pseudonymise, write the contract, validate, report.

``OUT`` then holds the validated contract tables (ready for ``riskstrat features`` and
``riskstrat weekly``), ``quarantine/`` and ``validation_report.json`` from validation,
``unmapped/<source table>.parquet`` (source rows not mapped, with their reason, under
pseudonyms) and ``quality_report.json`` / ``.md``. All of it is written to a staging folder
beside ``OUT`` that replaces ``OUT`` in one step when complete, so a failed or killed run
leaves the last good ``OUT`` as it was (and no ``.mapped-*`` folder inside it).
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.common.atomic import check_replaceable, replacing
from riskstrat.common.progress import QUIET, Progress
from riskstrat.contract.pseudonym import Pseudonymiser, load_key
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, Table
from riskstrat.contract.validation import REPORT_FILE, validate_into
from riskstrat.sources.ingest import quality
from riskstrat.sources.ingest.asc_cld import map_asc_cld
from riskstrat.sources.ingest.contract_source import map_contract
from riskstrat.sources.ingest.gp import map_gp
from riskstrat.sources.ingest.hes import map_hes
from riskstrat.sources.ingest.mapping import Mapped
from riskstrat.sources.ingest.omop import map_omop
from riskstrat.sources.ingest.synthea import map_synthea
from riskstrat.sources.ingest.tables import Extract, IngestError

SOURCES: dict[str, Callable[[Extract, pd.DataFrame | None], Mapped]] = {
    "omop": map_omop,
    "synthea": map_synthea,
    "contract": map_contract,
    "asc-cld": map_asc_cld,
    "hes": map_hes,
    "gp": map_gp,
}
UNMAPPED_DIR = "unmapped"
INGEST = "ingest"
STEPS = 8


@dataclass(frozen=True, slots=True)
class IngestResult:
    out: Path
    report: dict[str, object]
    verdict: quality.Verdict


def read_practices_file(path: Path) -> pd.DataFrame:
    """``practice_id, gp_cluster, locality[, practice_name]`` (any letter case)."""
    if not path.is_file():
        raise IngestError(f"{path}: practices file not found")
    frame = pd.read_csv(path, dtype="str")
    frame.columns = [c.strip().lower() for c in frame.columns]
    for column in ("practice_id", "gp_cluster", "locality"):
        if column not in frame:
            raise IngestError(
                f"{path}: missing column '{column}' (practice -> cluster -> locality)"
            )
    return frame


def _data_folder(location: str) -> Path:
    text = location.removeprefix("duckdb://").split("?")[0]
    path = Path(text)
    return path if path.is_dir() else path.parent


def _arrow(frame: pd.DataFrame, table: Table) -> pa.Table:
    """The frame in the contract's column types, every column nullable (validation checks)."""
    arrays = []
    for column in table.columns:
        values = frame[column.name]
        if pa.types.is_date(column.type):
            array = pa.array(values.to_numpy(dtype="datetime64[s]")).cast(pa.date32())
        elif pa.types.is_string(column.type):
            array = pa.array(values.astype(object).where(values.notna(), None), pa.string())
        else:
            array = pa.array(
                values.astype("Float64").to_numpy(dtype="float64", na_value=float("nan")),
                from_pandas=True,
            ).cast(column.type)
        arrays.append(array)
    schema = pa.schema([pa.field(c.name, c.type, nullable=True) for c in table.columns])
    return pa.Table.from_arrays(arrays, schema=schema)


def _pseudonymise(
    mapped: Mapped, key: Pseudonymiser
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    patients = mapped.patients.assign(patient_id=key.series(mapped.patients["source_id"]))
    events = mapped.events.assign(patient_id=key.series(mapped.events["source_id"]))
    ignored = mapped.ledger.ignored_frame()
    ignored = ignored.assign(patient_id=key.series(ignored["source_id"].astype("str")))
    return (
        patients.drop(columns="source_id"),
        events.drop(columns="source_id"),
        ignored.drop(columns="source_id"),
    )


def ingest(
    source: str,
    location: str | Path,
    out: Path,
    *,
    key_file: Path | None = None,
    practices: Path | None = None,
    extract_date: date | None = None,
    thresholds: quality.Thresholds | None = None,
    progress: Progress | None = None,
) -> IngestResult:
    """Ingest the extract at ``location`` into ``out`` (see the module docstring)."""
    say = progress or QUIET
    if source not in SOURCES:
        raise IngestError(f"unknown source {source!r}; choose one of {', '.join(SOURCES)}")
    text = str(location)
    key = load_key(key_file, protected=(_data_folder(text), out))
    check_replaceable(out, REPORT_FILE, inputs=(_data_folder(text),))
    practices_file = read_practices_file(practices) if practices else None
    say.advance(INGEST, 0, STEPS, f"reading and mapping the {source} tables")
    mapped = SOURCES[source](Extract.open(text), practices_file)
    say.advance(INGEST, 1, STEPS, "pseudonymising")
    patients, events, ignored = _pseudonymise(mapped, key)
    on = extract_date or date.today()
    with replacing(out) as staging:
        with tempfile.TemporaryDirectory(dir=staging, prefix=".mapped-") as mapped_dir:
            tables = ((PRACTICES, mapped.practices), (PATIENTS, patients), (EVENTS, events))
            for done, (table, frame) in enumerate(tables, start=2):
                say.advance(INGEST, done, STEPS, f"writing {table.name}")
                pq.write_table(_arrow(frame, table), Path(mapped_dir) / table.file_name)
            say.advance(INGEST, 5, STEPS, "validating")
            validation = validate_into(Path(mapped_dir), staging, on, out, origin=text)
        say.advance(INGEST, 6, STEPS, "writing unmapped rows")
        (staging / UNMAPPED_DIR).mkdir()
        for table, rows in ignored.groupby("source_table", sort=True):
            rows.drop(columns="source_table").to_parquet(
                staging / UNMAPPED_DIR / f"{table}.parquet", index=False
            )
        about = {
            "path": text,
            "extract_date": on.isoformat(),
            "key_fingerprint": key.fingerprint,
        }
        say.advance(INGEST, 7, STEPS, "quality report")
        report, verdict = quality.build(
            mapped, validation, staging, about, thresholds or quality.Thresholds()
        )
        quality.write(report, staging)
    say.advance(INGEST, STEPS, STEPS, "done")
    return IngestResult(out, report, verdict)
