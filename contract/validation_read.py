"""Whole-file checks of one contract table before validation reads its rows.

A problem with the whole file (missing, not Parquet, a column missing, of the wrong type or
whose values do not fit the contract's type) raises ``ContractError`` naming the file and
the column, column by column in the contract's order. The rows are then read in batches
(``batches``), never the whole table at once; a file whose columns are not already of the
contract's types is first rewritten in those types, batch by batch, into a scratch folder,
so that every later reader (DuckDB's rules and the batches) sees the same values.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.common.errors import UserError
from riskstrat.common.parquet import row_group_batches
from riskstrat.contract.schema import Column, Table

BATCH_ROWS = 1 << 20  # rows per batch at most: about 100 MB of events


class ContractError(UserError):
    """A whole input file breaks the contract; names the file and the column."""


def loose(table: Table) -> pa.Schema:
    """The table's schema with every field nullable: rows as read, before the rules."""
    return pa.schema([f.with_nullable(True) for f in table.schema])


def _open(path: Path, table: Table) -> pq.ParquetFile:
    if not path.exists():
        raise ContractError(f"{path}: file not found (the {table.name} table is required)")
    try:
        return pq.ParquetFile(path)
    except (OSError, pa.ArrowException) as exc:
        raise ContractError(f"{path}: cannot be read as Parquet ({exc})") from exc


def unreadable(path: Path, exc: Exception) -> ContractError:
    """The error for a file that opened but whose rows cannot be read."""
    return ContractError(f"{path}: cannot be read as Parquet ({exc})")


def _cast(path: Path, column: Column, values: pa.Array | pa.ChunkedArray) -> pa.Array:
    try:
        return values.cast(column.type)
    except pa.ArrowInvalid as exc:
        raise ContractError(
            f"{path}: column '{column.name}' cannot be cast to {column.type} ({exc})"
        ) from exc


def _check_values(path: Path, parquet: pq.ParquetFile, column: Column) -> None:
    """Cast one column batch by batch: its values must fit the contract's type."""
    try:
        for batch in row_group_batches(parquet, BATCH_ROWS, [column.name]):
            _cast(path, column, batch.column(0))
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(path, exc) from exc


def _needs_cast(parquet: pq.ParquetFile, table: Table, path: Path) -> bool:
    """Check each column in the contract's order; whether any must be cast to its type."""
    found = parquet.schema_arrow
    differs = False
    for column in table.columns:
        if column.name not in found.names:
            raise ContractError(f"{path}: missing column '{column.name}' ({column.meaning})")
        kind = found.field(column.name).type
        if not column.accepts(kind):
            raise ContractError(
                f"{path}: column '{column.name}' has type {kind}, expected {column.type}"
            )
        if not kind.equals(column.type):
            _check_values(path, parquet, column)
            differs = True
    return differs


def batches(path: Path, table: Table) -> Iterator[pa.RecordBatch]:
    """The rows of a checked file in batches of the contract's columns and types."""
    schema = loose(table)
    try:
        with pq.ParquetFile(path) as parquet:
            for batch in row_group_batches(parquet, BATCH_ROWS, schema.names):
                columns = [
                    _cast(path, table.column(name), batch.column(name)) for name in schema.names
                ]
                yield pa.RecordBatch.from_arrays(columns, schema=schema)
    except (OSError, pa.ArrowException) as exc:
        raise unreadable(path, exc) from exc


def checked_source(path: Path, table: Table, scratch: Path) -> Path:
    """``path`` once its whole-file checks pass, or its rows rewritten in the contract's
    types into ``scratch`` when some column was of another accepted type."""
    parquet = _open(path, table)
    if not _needs_cast(parquet, table, path):
        return path
    copy = scratch / table.file_name
    with pq.ParquetWriter(copy, loose(table)) as writer:
        for batch in batches(path, table):
            writer.write_batch(batch)
    return copy
