"""Read Parquet a few row groups at a time, so that memory does not grow with the file.

pyarrow's reader over a whole file (``ParquetFile.iter_batches`` without ``row_groups``, or
a dataset's ``to_batches``, apache/arrow#39808) keeps memory for every row group it has
passed until it ends, so ``validate`` grew with the file (docs/figures.md, "Validate at
scale"). A reader per run of row groups frees it at the end of each run.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq


def row_group_batches(
    parquet: pq.ParquetFile, batch_size: int, columns: Sequence[str] | None = None
) -> Iterator[pa.RecordBatch]:
    """The file's rows, in order, in batches of at most ``batch_size`` rows, each run of row
    groups holding about ``batch_size`` rows read by a reader of its own."""
    for groups in _runs(parquet.metadata, batch_size):
        yield from parquet.iter_batches(batch_size=batch_size, row_groups=groups, columns=columns)


def _runs(metadata: pq.FileMetaData, rows: int) -> Iterator[list[int]]:
    """Consecutive row groups, each run ending at the first group that brings it to ``rows``
    rows: small groups are read together, so batches stay full; a large group alone."""
    run: list[int] = []
    count = 0
    for group in range(metadata.num_row_groups):
        run.append(group)
        count += metadata.row_group(group).num_rows
        if count >= rows:
            yield run
            run, count = [], 0
    if run:
        yield run


def folder_batches(folder: Path, batch_size: int) -> Iterator[pa.RecordBatch]:
    """The rows of every Parquet file in ``folder`` (by name; files starting with ``_`` or
    ``.``, such as Spark's markers, are not data), in batches of at most ``batch_size``."""
    for path in sorted(folder.glob("*.parquet")):
        if not path.name.startswith(("_", ".")):
            with pq.ParquetFile(path) as parquet:
                yield from row_group_batches(parquet, batch_size)
