"""Benchmark the feature engine: seconds, events per second and peak memory per run.

Each measurement runs in a fresh process (``python -m features.benchmark DIR DATE ...``) so
its peak memory is its own. ``make_region`` builds a larger population by copying a borough
under new identifiers, to show how time and memory grow with size.
"""

from __future__ import annotations

import json
import resource
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb

from riskstrat.contract.record import RECORD_FILE, write_record
from riskstrat.contract.tables import ContractTables, unbound
from riskstrat.features.engine import build_features, feature_expression


def measure(data_dir: Path, as_of_dates: list[date]) -> dict:
    """Build features once in this process; return the figures."""
    sources = ContractTables.from_dir(data_dir)
    counted = unbound("events")
    events = sources.run(counted.aggregate(n=counted.count()))["n"].iloc[0]
    began = time.perf_counter()
    sources.engine.compile(sources.backend, feature_expression())
    compiled = time.perf_counter()
    frame = build_features(sources, as_of_dates)
    seconds = time.perf_counter() - began
    return {
        "as_of_dates": [d.isoformat() for d in as_of_dates],
        "rows": len(frame),
        "people": int(frame.index.get_level_values("patient_id").nunique()),
        "events_in_data": int(events),
        "seconds": round(seconds, 2),
        "compile_seconds": round(compiled - began, 2),
        "events_per_second": round(events / seconds),
        "peak_memory_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2),
    }


def measure_in_child(data_dir: Path, as_of_dates: list[date]) -> dict:
    """``measure`` in a fresh Python process, so peak memory is not shared between runs."""
    command = [sys.executable, "-m", "riskstrat.bench.features", str(data_dir)]
    out = subprocess.run(
        command + [d.isoformat() for d in as_of_dates], capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(f"benchmark of {data_dir} failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


def make_region(borough_dir: Path, out_dir: Path, copies: int) -> Path:
    """``copies`` boroughs side by side, identifiers prefixed with the copy number.

    A region already in ``out_dir`` (with its record, written last) is reused (building
    one of 4 copies takes minutes).
    """
    if (out_dir / RECORD_FILE).exists():
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    selects = {
        "practices": "SELECT {k} || '-' || practice_id AS practice_id, practice_name, "
        "'Borough {k} ' || gp_cluster AS gp_cluster, 'Borough {k} ' || locality AS locality "
        "FROM read_parquet('{src}')",
        "patients": "SELECT * REPLACE ({k} || '-' || patient_id AS patient_id, "
        "{k} || '-' || practice_id AS practice_id) FROM read_parquet('{src}')",
        "events": "SELECT * REPLACE ({k} || '-' || patient_id AS patient_id) "
        "FROM read_parquet('{src}')",
    }
    for name, template in selects.items():
        src = borough_dir / f"{name}.parquet"
        union = " UNION ALL ".join(template.format(k=k, src=src) for k in range(copies))
        con.execute(f"COPY ({union}) TO '{out_dir / (name + '.parquet')}' (FORMAT parquet)")
    write_record(out_dir)
    return out_dir


if __name__ == "__main__":
    folder, *dates = sys.argv[1:]
    print(json.dumps(measure(Path(folder), [date.fromisoformat(d) for d in dates])))
