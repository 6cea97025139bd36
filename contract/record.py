"""The record of a folder's contract tables: each file's rows and SHA-256.

Every writer of a folder of contract tables (``validate``, ``ingest``, the synthetic
generator) writes ``tables.json`` last, after the tables; every reader
(``ContractTables.from_dir``) checks the tables against it before use, so a folder that was
half-written, mixed from two runs or changed afterwards is refused instead of read.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

import pyarrow.parquet as pq

from riskstrat.common.errors import UserError
from riskstrat.contract.schema import TABLES

RECORD_FILE = "tables.json"


class FolderError(UserError):
    """A folder of contract tables is not complete and consistent; names the file."""


@dataclass(frozen=True, slots=True)
class TableFile:
    """One contract table's file as written: its name, rows and SHA-256."""

    file: str
    rows: int
    sha256: str


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def describe(path: Path) -> TableFile:
    """The rows (from the Parquet footer) and SHA-256 of one written table."""
    return TableFile(path.name, pq.ParquetFile(path).metadata.num_rows, sha256(path))


def write_record(folder: Path) -> dict[str, TableFile]:
    """Record the contract tables in ``folder`` (call it after the tables are written)."""
    record = {t.name: describe(folder / t.file_name) for t in TABLES}
    body = {name: asdict(entry) for name, entry in record.items()}
    (folder / RECORD_FILE).write_text(json.dumps(body, indent=2) + "\n")
    return record


def read_record(folder: Path) -> dict[str, TableFile]:
    """The record in ``folder``; FolderError naming the file when it is missing or unreadable."""
    path = folder / RECORD_FILE
    if not path.exists():
        raise FolderError(
            f"{path}: not found, so the tables cannot be checked (the folder was not written by "
            "riskstrat validate, ingest or the generator, or by an older version): "
            "run validate again"
        )
    try:
        body = json.loads(path.read_text())
        return {t.name: TableFile(**body[t.name]) for t in TABLES}
    except (ValueError, KeyError, TypeError) as exc:
        raise FolderError(f"{path}: cannot be read ({exc}): run validate again") from exc
