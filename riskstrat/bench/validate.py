"""Measure ``validate`` at scale, and check that two validations wrote the same outputs.

``measure`` runs ``riskstrat validate`` on a folder in a fresh process and records its time
and the peak resident memory of the whole process tree. A population of borough copies
(``scale.write_copies`` / ``scale.population``: one folder of parts per table) is first made
into one file per table (``single_files``), as validate reads them. ``compare`` checks two
output folders row for row: the accepted tables and quarantine in the same order with the
same schema, and the same validation report apart from where it was written.

    python -m riskstrat.bench.validate copies --borough RAW --work W --copies 4
    python -m riskstrat.bench.validate measure --data W/single-4 --out W/validated-4 \\
        --extract-date 2026-10-31 --json W/bench_validate-4.json
    python -m riskstrat.bench.validate compare OLD NEW
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from riskstrat.bench.scale import Limits, TreeMemory, population, write_copies
from riskstrat.contract.schema import TABLES, Table
from riskstrat.contract.validation import QUARANTINE_DIR, REPORT_FILE
from riskstrat.contract.validation_rules import quoted

WHERE_WRITTEN = ("source", "output")  # report fields that name folders, not results


def single_files(work: Path, copies: int, limits: Limits) -> Path:
    """``<work>/single-<copies>/<table>.parquet``: each table's parts in order, one file."""
    parts = population(work, copies)
    out = work / f"single-{copies}"
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    con.execute(f"SET memory_limit = '{limits.memory}'")
    con.execute(f"SET temp_directory = '{limits.spill_dir}'")
    for table in TABLES:
        files = ", ".join(f"'{p}'" for p in sorted((parts / table.name).glob("*.parquet")))
        target = out / table.file_name
        con.execute(f"COPY (SELECT * FROM read_parquet([{files}])) TO '{target}' (FORMAT parquet)")
    con.close()
    return out


def measure(data: Path, out: Path, extract_date: date) -> dict:
    """Time and peak memory of ``riskstrat validate`` on ``data`` in a fresh process: of the
    whole tree (this process too, sampled) and of validate's own process (its maximum)."""
    command = [sys.executable, "-m", "riskstrat.cli", "validate", "--data", str(data)]
    command += ["--out", str(out), "--extract-date", extract_date.isoformat()]
    began = time.perf_counter()
    with TreeMemory() as memory:
        subprocess.run(command, check=True)
    seconds = time.perf_counter() - began
    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    rows = {t.name: pq.ParquetFile(data / t.file_name).metadata.num_rows for t in TABLES}
    return {
        "step": "validate",
        "people": rows["patients"],
        "events": rows["events"],
        "seconds": round(seconds, 1),
        "peak_tree_gib": round(memory.peak / 2**30, 2),
        "cpu_seconds": round(used.ru_utime + used.ru_stime, 1),
        "peak_validate_gib": round(used.ru_maxrss / 2**20, 2),
    }


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
    """The command line in the module's docstring."""
    parser = argparse.ArgumentParser(prog="python -m riskstrat.bench.validate")
    steps = parser.add_subparsers(dest="step", required=True)
    copies = steps.add_parser("copies", help="write a population of copies, one file a table")
    copies.add_argument("--borough", type=Path, required=True)
    copies.add_argument("--work", type=Path, required=True)
    copies.add_argument("--copies", type=int, required=True)
    copies.add_argument("--memory", default="2GB")
    run = steps.add_parser("measure", help="time and peak memory of validate on a folder")
    run.add_argument("--data", type=Path, required=True)
    run.add_argument("--out", type=Path, required=True)
    run.add_argument("--extract-date", type=date.fromisoformat, required=True)
    run.add_argument("--json", type=Path, required=True)
    check = steps.add_parser("compare", help="check two validate outputs row for row")
    check.add_argument("old", type=Path)
    check.add_argument("new", type=Path)
    args = parser.parse_args(argv)
    if args.step == "copies":
        limits = Limits(args.memory, args.work / "spill")
        limits.spill_dir.mkdir(parents=True, exist_ok=True)
        write_copies(args.borough, args.work, args.copies, limits)
        print(single_files(args.work, args.copies, limits))
    elif args.step == "measure":
        figures = measure(args.data, args.out, args.extract_date)
        args.json.write_text(json.dumps(figures, indent=2) + "\n")
        print(json.dumps(figures, indent=2))
    else:
        differences = compare(args.old, args.new)
        print("\n".join(differences) or "the same: rows, order, schemas and report")
        sys.exit(1 if differences else 0)


if __name__ == "__main__":
    main()
