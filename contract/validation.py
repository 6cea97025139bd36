"""Validate contract tables: whole-file problems stop, row problems go to quarantine.

A whole-file problem (unreadable file, missing column, wrong type) raises ``ContractError``
naming the file and column (``validation_read``). A row-level problem moves the row,
unchanged and with its row number and a reason code (``validation_rules``), to
``quarantine/<table>.parquet``; the report reconciles rows read with rows accepted plus
rows quarantined, so nothing is dropped silently. Tables are streamed, never held whole
(``validation_split``): memory stays flat in the number of people. The output folder is
replaced in one step (``common.atomic``) and carries the tables' record (``record``) that
every reader checks.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING

from riskstrat.common.atomic import check_replaceable, replacing
from riskstrat.contract.record import write_record
from riskstrat.contract.schema import TABLES, Table
from riskstrat.contract.validation_read import ContractError, checked_source
from riskstrat.contract.validation_split import connect, split

if TYPE_CHECKING:
    from duckdb import DuckDBPyConnection

__all__ = ["QUARANTINE_DIR", "REPORT_FILE", "ContractError", "validate_dir", "validate_into"]

QUARANTINE_DIR = "quarantine"
REPORT_FILE = "validation_report.json"
SCRATCH_DIR = ".scratch"  # DuckDB's spill and recast inputs; removed before the swap


@dataclass(frozen=True, slots=True)
class TableReport:
    """Row counts for one table; ``read == accepted + quarantined`` always holds.

    ``running_after_extract_date``: accepted events per kind whose end lies after the
    extract date (kept, with the end as planned; counted so that nobody mistakes them).
    """

    table: str
    read: int
    accepted: int
    quarantined: int
    by_reason: dict[str, int] = field(default_factory=dict)
    running_after_extract_date: dict[str, int] = field(default_factory=dict)

    @property
    def reconciles(self) -> bool:
        return (
            self.read
            == self.accepted + self.quarantined
            == self.accepted + sum(self.by_reason.values())
        )


@dataclass(frozen=True, slots=True)
class ValidationReport:
    """What validation did to each table, and where the outputs are."""

    source: str
    output: str
    extract_date: str
    tables: tuple[TableReport, ...]

    @property
    def reconciles(self) -> bool:
        return all(t.reconciles for t in self.tables)

    def to_json(self) -> str:
        body = asdict(self)
        body["reconciles"] = self.reconciles
        return json.dumps(body, indent=2)


def validate_dir(source: Path, output: Path, extract_date: date) -> ValidationReport:
    """Validate the contract tables in ``source`` into ``output``, replacing it in one step.

    Everything is written to a staging folder beside ``output`` that replaces it only when
    complete, so a failed or killed run leaves the last good ``output`` as it was.
    ``output`` must be new, empty or an earlier output (it has a validation report), and
    must not hold ``source``.
    """
    check_replaceable(output, REPORT_FILE, inputs=(source,))
    with replacing(output) as staging:
        return validate_into(source, staging, extract_date, output)


def validate_into(
    source: Path, folder: Path, extract_date: date, output: Path, origin: str | None = None
) -> ValidationReport:
    """Validate the three contract tables in ``source``; write accepted rows, quarantine,
    the report and the tables' record into the empty ``folder`` (which becomes ``output``).
    The report names ``origin`` (default: ``source``) as where the tables came from.

    Practices are validated first, then patients against them, then events against the
    accepted patients, so a row referring to a quarantined parent is quarantined too.
    """
    (folder / QUARANTINE_DIR).mkdir()
    scratch = folder / SCRATCH_DIR
    scratch.mkdir()
    con = connect(scratch)
    try:
        reports = tuple(
            _validate_table(con, t, source, folder, scratch, extract_date) for t in TABLES
        )
    finally:
        con.close()
        shutil.rmtree(scratch)
    report = ValidationReport(origin or str(source), str(output), extract_date.isoformat(), reports)
    (folder / REPORT_FILE).write_text(report.to_json())
    write_record(folder)
    return report


def _validate_table(
    con: DuckDBPyConnection,
    table: Table,
    source: Path,
    folder: Path,
    scratch: Path,
    extract_date: date,
) -> TableReport:
    checked = checked_source(source / table.file_name, table, scratch)
    done = split(con, table, checked, folder, folder / QUARANTINE_DIR, extract_date)
    return TableReport(
        table.name,
        done.read,
        done.accepted,
        done.read - done.accepted,
        done.by_reason,
        done.running_after_extract_date,
    )
