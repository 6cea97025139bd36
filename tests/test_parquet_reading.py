"""Parquet is read a few row groups at a time: every row, in order, full batches, and memory
that does not grow with the file (pyarrow's whole-file reader kept each passed row group)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.common.parquet import folder_batches, row_group_batches

GROUP_ROWS = 20_000
GROUPS = 60


@pytest.fixture(scope="module")
def many_groups(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Sixty row groups of person keys, kinds and values, like an events file."""
    rng = np.random.default_rng(7)
    rows = GROUP_ROWS * GROUPS
    table = pa.table(
        {
            "row": np.arange(rows),
            "patient_id": [f"p-{i:012d}" for i in rng.integers(0, 1_000_000, rows)],
            "kind": rng.choice(["gp_contact", "prescription", "ae_attendance"], rows),
            "value": rng.random(rows),
        }
    )
    path = tmp_path_factory.mktemp("parquet") / "many.parquet"
    pq.write_table(table, path, row_group_size=GROUP_ROWS)
    return path


@pytest.mark.parametrize("batch_size", [7_000, GROUP_ROWS, 50_000])
def test_every_row_in_order_in_bounded_batches(many_groups: Path, batch_size: int) -> None:
    with pq.ParquetFile(many_groups) as parquet:
        batches = list(row_group_batches(parquet, batch_size, ["row", "kind"]))
    assert max(b.num_rows for b in batches) <= batch_size
    assert all(b.schema.names == ["row", "kind"] for b in batches)
    rows = np.concatenate([b.column("row").to_numpy() for b in batches])
    np.testing.assert_array_equal(rows, np.arange(GROUP_ROWS * GROUPS))


def test_small_row_groups_are_read_together_into_full_batches(many_groups: Path) -> None:
    with pq.ParquetFile(many_groups) as parquet:
        sizes = [b.num_rows for b in row_group_batches(parquet, 50_000, ["row"])]
    assert sizes[:2] == [50_000, 10_000]  # three groups of 20,000 rows make one run
    assert sum(sizes) == GROUP_ROWS * GROUPS


def test_memory_stays_within_a_few_row_groups(many_groups: Path) -> None:
    with pq.ParquetFile(many_groups) as parquet:
        one_group = parquet.read_row_group(0).nbytes
        base = pa.total_allocated_bytes()
        peak = 0
        for _ in row_group_batches(parquet, GROUP_ROWS):
            peak = max(peak, pa.total_allocated_bytes() - base)
    assert peak < 6 * one_group  # a whole-file reader keeps every group it has passed


def test_a_folder_is_read_file_by_file_by_name_without_markers(tmp_path: Path) -> None:
    for name, start in (("part-1.parquet", 10), ("part-0.parquet", 0)):
        pq.write_table(pa.table({"row": np.arange(start, start + 10)}), tmp_path / name)
    (tmp_path / "_SUCCESS").write_bytes(b"")
    (tmp_path / "_metadata.parquet").write_bytes(b"not data")
    (tmp_path / ".part-0.parquet.crc").write_bytes(b"checksum")

    rows = np.concatenate([b.column("row").to_numpy() for b in folder_batches(tmp_path, 4)])

    np.testing.assert_array_equal(rows, np.arange(20))
