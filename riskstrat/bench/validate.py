"""Check that two validations wrote the same outputs: the accepted tables and quarantine in
the same order with the same schema, and the same validation report apart from where it was
written (how the streamed validate was checked against the in-memory one it replaced; its
time and memory at each size come from ``riskstrat bench scale --step validate``).

    python -m riskstrat.bench.validate OLD NEW
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from riskstrat.contract.schema import TABLES, Table
from riskstrat.contract.validation import QUARANTINE_DIR, REPORT_FILE
from riskstrat.contract.validation_rules import quoted

WHERE_WRITTEN = ("source", "output")  # report fields that name folders, not results


def _rows_differ(con: duckdb.DuckDBPyConnection, table: Table, old: Path, new: Path) -> int:
    """Rows that differ between two files of one table, row by row in file order."""
    names = [c.name for c in table.columns]
    if old.parent.name == QUARANTINE_DIR:
        names += ["source_row", "reason"]
    differs = " OR ".join(f"a.{quoted(n)} IS DISTINCT FROM b.{quoted(n)}" for n in names)
    read = "read_parquet('{}', file_row_number = true)"
    sql = (
        f"SELECT count(*) FROM {read.format(old)} AS a FULL JOIN {read.format(new)} AS b "
        f"USING (file_row_number) WHERE {differs}"
    )
    return con.execute(sql).fetchone()[0]


def compare(old: Path, new: Path) -> list[str]:
    """How two validate outputs differ (empty: the same rows, order, schemas and report)."""
    found: list[str] = []
    con = duckdb.connect()
    for folder in (Path(), Path(QUARANTINE_DIR)):
        for table in TABLES:
            a, b = old / folder / table.file_name, new / folder / table.file_name
            if pq.read_schema(a).remove_metadata() != pq.read_schema(b).remove_metadata():
                found.append(f"{folder / table.file_name}: schemas differ")
            if rows := _rows_differ(con, table, a, b):
                found.append(f"{folder / table.file_name}: {rows:,} rows differ")
    con.close()
    reports = [json.loads((f / REPORT_FILE).read_text()) for f in (old, new)]
    for report in reports:
        for name in WHERE_WRITTEN:
            report.pop(name)
    if reports[0] != reports[1]:
        found.append(f"{REPORT_FILE}: the reports differ")
    return found


def main(argv: list[str] | None = None) -> None:
    """``python -m riskstrat.bench.validate OLD NEW``: exit 1 if they differ."""
    parser = argparse.ArgumentParser(prog="python -m riskstrat.bench.validate")
    parser.add_argument("old", type=Path)
    parser.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    differences = compare(args.old, args.new)
    print("\n".join(differences) or "the same: rows, order, schemas and report")
    sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
