"""Where the contract tables live for one computation: an embedded DuckDB connection.

Feature and label expressions are written against *unbound* Ibis tables named like the
contract tables (``patients``, ``events``, ``practices``) plus ``as_of_dates``; they are
compiled to SQL once and run on any connection that has relations of those names. Here that
is DuckDB over Parquet files or in-memory frames; elsewhere it can be a warehouse holding
tables of the same names.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from datetime import date
from pathlib import Path

import duckdb
import ibis
import ibis.expr.types as ir
import pandas as pd
import pyarrow as pa

from features.contract import EVENTS, PATIENTS, PRACTICES, TABLES

AS_OF_TABLE = "as_of_dates"


def unbound(name: str) -> ir.Table:
    """The unbound Ibis table for a contract table (or the as-of dates)."""
    if name == AS_OF_TABLE:
        return ibis.table({"as_of": "date"}, name=AS_OF_TABLE)
    table = next(t for t in TABLES if t.name == name)
    return ibis.table(ibis.Schema.from_pyarrow(table.schema), name=table.name)


def fingerprint(data_dir: Path) -> str:
    """SHA-256 over the contract files, so a run names exactly the data it saw."""
    digest = hashlib.sha256()
    for table in TABLES:
        with (data_dir / table.file_name).open("rb") as handle:
            while chunk := handle.read(1 << 20):
                digest.update(chunk)
    return digest.hexdigest()


class ContractTables:
    """A DuckDB connection holding the three contract tables under their contract names."""

    def __init__(self, connection: duckdb.DuckDBPyConnection) -> None:
        self.connection = connection

    @classmethod
    def from_dir(cls, data_dir: Path) -> ContractTables:
        """Views over the Parquet files in ``data_dir`` (nothing is loaded until a query)."""
        connection = duckdb.connect()
        for table in TABLES:
            path = data_dir / table.file_name
            if not path.exists():
                raise FileNotFoundError(f"{path}: the {table.name} table is missing")
            connection.read_parquet(str(path)).create_view(table.name)
        return cls(connection)

    @classmethod
    def from_frames(
        cls, patients: pd.DataFrame, events: pd.DataFrame, practices: pd.DataFrame
    ) -> ContractTables:
        """In-memory frames (a request's history, a test's five rows) cast to the contract."""
        connection = duckdb.connect()
        for table, frame in ((PATIENTS, patients), (EVENTS, events), (PRACTICES, practices)):
            arrow = (
                pa.Table.from_pandas(
                    frame[list(table.schema.names)], schema=table.schema, preserve_index=False
                )
                if len(frame)
                else table.schema.empty_table()
            )
            connection.register(table.name, arrow)
        return cls(connection)

    def run(self, sql: str, as_of_dates: Iterable[date]) -> pd.DataFrame:
        """Run compiled SQL with ``as_of_dates`` bound to the as-of table."""
        dates = sorted(set(as_of_dates))
        if not dates:
            raise ValueError("at least one as-of date is needed")
        self.connection.register(AS_OF_TABLE, pa.table({"as_of": pa.array(dates, pa.date32())}))
        try:
            return self.connection.sql(sql).arrow().read_all().to_pandas(date_as_object=False)
        finally:
            self.connection.unregister(AS_OF_TABLE)
