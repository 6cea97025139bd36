"""Split one checked table into accepted rows and quarantine, in bounded memory.

Two passes over the file. First DuckDB, with a memory limit and a spill folder, runs the
rules (``validation_rules``) out of core and returns the rows that break one, ordered by
row. Then the file is read again in batches, and each batch is written, in the file's own
order, to the accepted table or to quarantine (with its ``source_row`` and ``reason``),
walking the ordered reasons alongside. Neither pass holds more than a batch of the table.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from riskstrat.contract.schema import EVENTS, Table
from riskstrat.contract.validation_read import BATCH_ROWS, batches, loose, unreadable
from riskstrat.contract.validation_rules import reasons_query, rules_for

MEMORY_LIMIT = "1GB"  # DuckDB's share; a batch of rows and the writers take the rest of 2 GiB


@dataclass(frozen=True, slots=True)
class Split:
    """What one table's split wrote: rows read, accepted, and quarantined per reason."""

    read: int
    accepted: int
    by_reason: dict[str, int]
    running_after_extract_date: dict[str, int]


def connect(spill: Path) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that spills to ``spill`` beyond ``MEMORY_LIMIT``."""
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{MEMORY_LIMIT}'")
    con.execute("SET temp_directory = '" + str(spill).replace("'", "''") + "'")
    return con


class _Reasons:
    """The (``source_row``, ``reason``) stream, ordered by row, handed out batch by batch."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._batches = iter(reader)
        self._rows = np.empty(0, np.int64)
        self._reasons: pa.Array = pa.array([], pa.string())

    def before(self, stop: int) -> tuple[np.ndarray, pa.Array]:
        """The rows below ``stop`` not handed out yet, and their reasons."""
        while not len(self._rows) or self._rows[-1] < stop:
            batch = next(self._batches, None)
            if batch is None:
                break
            rows = batch.column("source_row").to_numpy(zero_copy_only=False)
            reasons = batch.column("reason").cast(pa.string())
            self._rows = np.concatenate([self._rows, rows.astype(np.int64)])
            self._reasons = pa.concat_arrays([self._reasons, reasons])
        cut = int(np.searchsorted(self._rows, stop))
        taken = self._rows[:cut], self._reasons.slice(0, cut)
        self._rows, self._reasons = self._rows[cut:], self._reasons.slice(cut)
        return taken


def _counts(values: pa.Array) -> Counter[str]:
    counted = pc.value_counts(values).flatten()
    return Counter({str(k): int(n) for k, n in zip(*counted, strict=True)})


def _running(accepted: pa.RecordBatch, extract_date: date) -> Counter[str]:
    """Accepted events per kind still running after the extract date (a planned end)."""
    after = pc.fill_null(pc.greater(accepted.column("end"), pa.scalar(extract_date)), False)
    return _counts(pc.filter(accepted.column("kind"), after))


def split(
    con: duckdb.DuckDBPyConnection,
    table: Table,
    source: Path,
    folder: Path,
    quarantine: Path,
    extract_date: date,
) -> Split:
    """Write ``source``'s accepted rows to ``folder`` and the rest to ``quarantine``; the
    rules look up parents among the accepted tables already in ``folder``."""
    sql = reasons_query(table, rules_for(table, extract_date), source, folder)
    try:
        reasons = _Reasons(con.sql(sql).to_arrow_reader(BATCH_ROWS))
    except duckdb.Error as exc:
        if isinstance(exc, (duckdb.ProgrammingError, duckdb.InternalError)):
            raise  # a fault in the query, not in the file
        raise unreadable(source, exc) from exc
    kept_as_read = loose(table).append(pa.field("source_row", pa.int64()))
    kept_as_read = kept_as_read.append(pa.field("reason", pa.string()))
    read = accepted = 0
    by_reason: Counter[str] = Counter()
    running: Counter[str] = Counter()
    with (
        pq.ParquetWriter(folder / table.file_name, table.schema) as good_out,
        pq.ParquetWriter(quarantine / table.file_name, kept_as_read) as bad_out,
    ):
        for batch in batches(source, table):
            rows, why = reasons.before(read + batch.num_rows)
            bad = np.zeros(batch.num_rows, dtype=bool)
            bad[rows - read] = True
            kept = batch.filter(pa.array(~bad)) if len(rows) else batch
            good = pa.RecordBatch.from_arrays(kept.columns, schema=table.schema)
            if good.num_rows:
                good_out.write_batch(good)
            if len(rows):
                quarantined = [*batch.filter(pa.array(bad)).columns, pa.array(rows), why]
                bad_out.write_batch(pa.RecordBatch.from_arrays(quarantined, schema=kept_as_read))
                by_reason += _counts(why)
            if table is EVENTS:
                running += _running(good, extract_date)
            read += batch.num_rows
            accepted += good.num_rows
    if len(reasons.before(np.iinfo(np.int64).max)[0]):
        raise RuntimeError(f"{source}: reasons for rows past its {read:,} rows")
    return Split(read, accepted, dict(sorted(by_reason.items())), dict(sorted(running.items())))
