"""Helpers for the ingest tests: the public samples, copies of them, a test key."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from riskstrat.sources.ingest.pipeline import IngestResult, ingest

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
SYNTHEA = DATA / "synthea_csv_ne"
OMOP = DATA / "omop_synthea27nj"
EXTRACT_DATE = date(2024, 1, 1)
TEST_KEY = "riskstrat-test-key-not-a-secret-0123456789"
# The vocabulary tables the adapter does not need (CONCEPT_RELATIONSHIP alone is 14 MB).
OMOP_SKIP = {"CONCEPT_RELATIONSHIP.csv", "MEASUREMENT.csv", "OBSERVATION.csv", "VISIT_DETAIL.csv"}


def key_file(folder: Path, secret: str = TEST_KEY) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "pseudonym.key"
    path.write_text(secret + "\n")
    return path


def copy_extract(source: Path, target: Path, skip: set[str] = frozenset()) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    for path in source.iterdir():
        if path.suffix.lower() == ".csv" and path.name not in skip:
            shutil.copy(path, target / path.name)
    return target


def read(folder: Path, name: str) -> pd.DataFrame:
    return pd.read_csv(folder / name, dtype="str")


def run(source: str, path: Path | str, out: Path, key: Path, **kw: object) -> IngestResult:
    return ingest(source, path, out, key_file=key, extract_date=EXTRACT_DATE, **kw)


def accepted_events(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "events.parquet")


def cased(text: str, how: str) -> str:
    """``text`` in upper, lower or alternating case, or with spaces for underscores."""
    if how == "upper":
        return text.upper()
    if how == "lower":
        return text.lower()
    if how == "spaced":
        return text.replace("_", " ")
    return "".join(c.upper() if i % 2 else c.lower() for i, c in enumerate(text))


def write_tables(tables: dict[str, pd.DataFrame], storage: str, folder: Path) -> dict[str, Path]:
    """Write each table as ``<name>.csv`` or ``.parquet`` (dates typed, the rest text);
    table (lower case) -> file."""
    folder.mkdir()
    files = {}
    for name, frame in tables.items():
        path = folder / f"{name}.{storage}"
        if storage == "csv":
            frame.to_csv(path, index=False)
        else:
            columns = {}
            for column in frame.columns:
                values = frame[column]
                if pd.api.types.is_datetime64_any_dtype(values):
                    columns[column] = pa.array(values, pa.timestamp("us"))
                else:
                    text = values.astype(object).where(values.notna(), None)
                    columns[column] = pa.array(
                        [None if v is None else str(v) for v in text], pa.string()
                    )
            pq.write_table(pa.table(columns), path)
        files[name.lower()] = path
    return files
