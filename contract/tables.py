"""Where the contract tables live for one computation: a backend of one engine (DuckDB or
Spark, ``features.engines``).

Feature, label, cohort and timeline expressions are written against *unbound* Ibis tables
named like the contract tables (``patients``, ``events``, ``practices``) plus
``as_of_dates``; the engine compiles each to its SQL once and runs it on a backend holding
tables of those names, over Parquet files or in-memory frames.

A folder is read only after ``check_folder`` accepts it: the three tables present, in the
contract's schema, and exactly the files its ``tables.json`` record names (rows and
SHA-256), so that nothing half-written or mixed from two runs is ever used. In-memory frames
(``from_frames``) are not checked.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import date
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.common.errors import MissingInputError
from riskstrat.contract.engines import DuckDBEngine, Engine
from riskstrat.contract.record import RECORD_FILE, FolderError, TableFile, read_record, sha256
from riskstrat.contract.schema import EVENTS, PATIENTS, PRACTICES, TABLES, Table

if TYPE_CHECKING:
    from ibis.backends import BaseBackend

AS_OF_TABLE = "as_of_dates"


def unbound(name: str) -> ir.Table:
    """The unbound Ibis table for a contract table (or the as-of dates)."""
    if name == AS_OF_TABLE:
        return ibis.table({"as_of": "date"}, name=AS_OF_TABLE)
    table = next(t for t in TABLES if t.name == name)
    return ibis.table(ibis.Schema.from_pyarrow(table.schema), name=table.name)


def fingerprint(data_dir: Path) -> str:
    """SHA-256 over the checked tables' SHA-256s, so a run names exactly the data it saw."""
    record = _checked(data_dir.resolve(), check_folder(data_dir))
    lines = "".join(f"{t.name} {record[t.name].sha256}\n" for t in TABLES)
    return hashlib.sha256(lines.encode()).hexdigest()


Signature = tuple[tuple[int, int, int] | None, ...]


def _signature(data_dir: Path) -> Signature:
    """Inode, size and modification time of each table and of the record: a replaced or
    rewritten file changes it."""
    stamps: list[tuple[int, int, int] | None] = []
    for name in (*(t.file_name for t in TABLES), RECORD_FILE):
        try:
            stat = (data_dir / name).stat()
        except FileNotFoundError:
            stamps.append(None)
            continue
        stamps.append((stat.st_ino, stat.st_size, stat.st_mtime_ns))
    return tuple(stamps)


def check_folder(data_dir: Path) -> Signature:
    """Check that ``data_dir`` holds the three contract tables in the contract's schema and
    exactly as its record (``tables.json``) names them; return the files' signature.

    A missing table raises FileNotFoundError; a table of the wrong schema, a missing record
    or a table that does not match it raises FolderError naming the file (and column). The
    check reads every table once per process and signature (it is cached), so opening the
    same folder again costs a few ``stat`` calls.
    """
    for table in TABLES:
        path = data_dir / table.file_name
        if not path.exists():
            raise MissingInputError(f"{path}: the {table.name} table is missing")
    signature = _signature(data_dir)
    _checked(data_dir.resolve(), signature)
    return signature


def _check_schema(path: Path, table: Table) -> None:
    try:
        schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        raise FolderError(f"{path}: cannot be read as Parquet ({exc})") from exc
    for column in table.columns:
        if column.name not in schema.names:
            raise FolderError(f"{path}: missing column '{column.name}' ({column.meaning})")
        found = schema.field(column.name).type
        if pa.types.is_null(found) or not column.accepts(found):
            raise FolderError(
                f"{path}: column '{column.name}' has type {found}, expected {column.type}"
            )


@lru_cache(maxsize=8)
def _checked(data_dir: Path, signature: Signature) -> dict[str, TableFile]:
    """The record of a folder whose tables passed the checks (cached per signature)."""
    for table in TABLES:
        _check_schema(data_dir / table.file_name, table)
    record = read_record(data_dir)
    for table in TABLES:
        path = data_dir / table.file_name
        recorded = record[table.name]
        rows = pq.ParquetFile(path).metadata.num_rows
        if rows != recorded.rows:
            differs = f"{rows:,} rows, {recorded.rows:,} recorded"
        elif sha256(path) != recorded.sha256:
            differs = "its SHA-256 differs"
        else:
            continue
        raise FolderError(
            f"{path}: does not match {RECORD_FILE} ({differs}): the folder was changed or "
            "half-written; run validate again"
        )
    return record


class ContractTables:
    """The three contract tables under their contract names, on one engine's backend.

    ``run`` executes an Ibis expression written over ``unbound`` tables; the engine compiles
    it once per process. Close it (or use it in a ``with`` block) when done.
    """

    def __init__(
        self,
        engine: Engine,
        backend: BaseBackend,
        data_dir: Path | None = None,
        signature: Signature = (),
    ) -> None:
        self.engine = engine
        self.backend = backend
        self._data_dir = data_dir
        self._signature = signature

    @classmethod
    def from_dir(cls, data_dir: Path, engine: Engine | None = None) -> ContractTables:
        """The Parquet files in ``data_dir`` once ``check_folder`` accepts it, on ``engine``
        (DuckDB by default); nothing is loaded until a query."""
        signature = check_folder(data_dir)
        engine = engine or DuckDBEngine()
        backend = engine.connect()
        for table in TABLES:
            engine.attach_parquet(backend, table.name, str(data_dir.resolve() / table.file_name))
        return cls(engine, backend, data_dir, signature)

    @classmethod
    def from_frames(
        cls,
        patients: pd.DataFrame,
        events: pd.DataFrame,
        practices: pd.DataFrame,
        engine: Engine | None = None,
    ) -> ContractTables:
        """In-memory frames (a request's history, a test's five rows) cast to the contract."""
        engine = engine or DuckDBEngine()
        backend = engine.connect()
        for table, frame in ((PATIENTS, patients), (EVENTS, events), (PRACTICES, practices)):
            arrow = (
                pa.Table.from_pandas(
                    frame[list(table.schema.names)], schema=table.schema, preserve_index=False
                )
                if len(frame)
                else table.schema.empty_table()
            )
            engine.attach_arrow(backend, table.name, arrow)
        return cls(engine, backend)

    def run(
        self,
        expression: ir.Table,
        as_of_dates: Iterable[date] | None = None,
        *,
        keep: bool = True,
    ) -> pd.DataFrame:
        """Run an expression over the contract tables (and, when it reads them, the as-of
        table bound to ``as_of_dates``); dates come back as ``datetime64``. ``keep=False``
        for one-off expressions whose compiled SQL is not worth keeping."""
        return self.run_arrow(expression, as_of_dates, keep=keep).to_pandas(date_as_object=False)

    def run_arrow(
        self,
        expression: ir.Table,
        as_of_dates: Iterable[date] | None = None,
        *,
        keep: bool = True,
    ) -> pa.Table:
        """``run`` without the pandas copy: the engine's Arrow table."""
        sql = self.engine.compile(self.backend, expression, keep=keep)
        with self._bound(as_of_dates):
            return self.engine.to_arrow(self.backend, sql)

    def batches(
        self,
        expression: ir.Table,
        as_of_dates: Iterable[date] | None = None,
        *,
        keep: bool = True,
    ) -> Iterator[pa.RecordBatch]:
        """``run``'s result in Arrow batches, never whole in memory (``Engine.to_batches``);
        the as-of dates stay bound until the last batch is read."""
        sql = self.engine.compile(self.backend, expression, keep=keep)
        with self._bound(as_of_dates):
            yield from self.engine.to_batches(self.backend, sql)

    @contextmanager
    def _bound(self, as_of_dates: Iterable[date] | None) -> Iterator[None]:
        """The as-of table bound to ``as_of_dates`` (if given) while a query runs, the
        folder checked unchanged before and after."""
        self._unchanged()
        if as_of_dates is None:
            yield
        else:
            dates = sorted(set(as_of_dates))
            if not dates:
                raise ValueError("at least one as-of date is needed")
            as_of = pa.table({"as_of": pa.array(dates, pa.date32())})
            self.engine.attach_arrow(self.backend, AS_OF_TABLE, as_of)
            try:
                yield
            finally:
                self.engine.detach(self.backend, AS_OF_TABLE)
        self._unchanged()

    def last_event_date(self) -> date | None:
        """The latest event start in the tables (None when there are no events)."""
        return self.event_span()[1]

    def event_span(self) -> tuple[date | None, date | None]:
        """The earliest and latest event starts (None when there are no events)."""
        events = unbound("events")
        span = self.run(events.aggregate(first=events.start.min(), last=events.start.max()))
        return tuple(  # type: ignore[return-value]
            None if pd.isna(day) else pd.Timestamp(day).date() for day in span.iloc[0]
        )

    def close(self) -> None:
        """Release the backend (the shared Spark session stays up for the next tables)."""
        self.engine.close(self.backend)

    def __enter__(self) -> ContractTables:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def _unchanged(self) -> None:
        """Refuse to go on if the folder's files were replaced since they were checked (a
        validate or ingest swapped in new tables mid-run), so no result mixes two folders."""
        if self._data_dir is not None and _signature(self._data_dir) != self._signature:
            raise FolderError(
                f"{self._data_dir}: the tables were replaced while they were being read: run again"
            )
