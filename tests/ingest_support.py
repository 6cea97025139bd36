"""Helpers for the ingest tests: the public samples, copies of them, a test key."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pandas as pd

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
