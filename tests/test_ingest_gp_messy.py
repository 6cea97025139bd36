"""Messy GP extracts: the hand-made extract mutated by Hypothesis (nulls and junk in any
column, bad codes, duplicated rows, registrations ending before they start, dates in other
formats or typed, emptied or dropped tables, mixed letter case, CSV or Parquet). Ingest
either reconciles every source table or stops with one line naming the file and column."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_support import key_file
from test_ingest_messy import Source, _ingest_messy

FIXTURE = Path(__file__).parent / "data" / "gp"
EXAMPLES = 10
TABLES = ("registrations", "coded_events", "prescriptions")


@pytest.fixture(scope="module")
def gp() -> Source:
    tables = {name: pd.read_csv(FIXTURE / f"{name.title()}.csv", dtype="str") for name in TABLES}
    return Source(
        "gp",
        tables,
        frozenset({"registrations", "coded_events"}),
        frozenset(TABLES),
        frozenset({"prescriptions"}),
        ("registrations", "deregistration_date"),
    )


@pytest.fixture(scope="module")
def keyed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return key_file(tmp_path_factory.mktemp("key"))


@settings(max_examples=EXAMPLES, deadline=None)
@given(data=st.data())
@pytest.mark.slow
def test_a_messy_gp_extract_is_ingested_with_every_row_accounted_for_or_named(
    gp: Source, keyed: Path, data: st.DataObject
) -> None:
    _ingest_messy(gp, keyed, data.draw)
