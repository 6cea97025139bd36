"""Messy Client Level Data files: the adapter maps what it can and accounts for every row.

The hand-made fixture's two quarterly files are mutated by Hypothesis: empty, ``NULL`` and
nonsense values in any column, list values in another letter case, field names in any case
and with spaces for underscores, duplicated rows, dates as ISO, day-first, compact or
date-time text (or typed in Parquet), CSV or Parquet. Mapping must either account for every
row read (mapped, or set aside with a reason; never both) or stop with a one-line
``IngestError`` naming the file and the column.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_support import cased, write_tables

from riskstrat.sources.ingest.asc_cld import map_asc_cld
from riskstrat.sources.ingest.tables import Extract, IngestError

FIXTURE = Path(__file__).parent / "data" / "asc_cld"
MESS = (None, "", " ", "NULL", "0", "not a date", "Unknown", "9999999999")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d", "%Y-%m-%dT%H:%M:%S", "typed")
EXAMPLES = 8  # each maps a whole (small) return: one to two seconds
LISTED = ("Event_Type", "Service_Type", "Gender", "Cost_Frequency_Unit_Type", "Client_Type")
BASE = {p.stem: pd.read_csv(p, dtype="str", keep_default_na=False) for p in FIXTURE.glob("*.csv")}


def _is_date(column: str) -> bool:
    return column.endswith("_Date") or column in ("Date_of_Birth", "Date_of_Death")


def _dates(values: pd.Series, how: str) -> pd.Series:
    day_first = values.str.contains("/", na=False).any()
    stamps = pd.to_datetime(values, errors="coerce", format="%d/%m/%Y" if day_first else "%Y-%m-%d")
    if how == "typed":
        return stamps.astype("datetime64[us]")
    return stamps.dt.strftime(how).astype(object).where(stamps.notna(), values)


@st.composite
def messy(draw: st.DrawFn) -> tuple[dict[str, pd.DataFrame], str]:
    storage = draw(st.sampled_from(["csv", "parquet"]))
    out: dict[str, pd.DataFrame] = {}
    for name, base in BASE.items():
        frame = base.astype(object).copy()
        n = len(frame)
        rows = st.sets(st.integers(0, n - 1), max_size=n)
        for column in draw(st.sets(st.sampled_from(list(frame.columns)), max_size=4)):
            frame.loc[sorted(draw(rows)), column] = draw(st.sampled_from(MESS))
        for column in draw(st.sets(st.sampled_from(LISTED), max_size=3)):
            how = draw(st.sampled_from(["upper", "lower"]))
            frame[column] = frame[column].map(lambda v, h=how: cased(v, h) if v else v)
        frame = pd.concat([frame, frame.iloc[sorted(draw(rows))]], ignore_index=True)
        for column in [c for c in frame.columns if _is_date(c)]:
            how = draw(st.sampled_from(DATE_FORMATS))
            frame[column] = _dates(
                frame[column], DATE_FORMATS[0] if how == "typed" and storage == "csv" else how
            )
        column_case = draw(st.sampled_from(["upper", "lower", "mixed", "spaced"]))
        frame.columns = [cased(c, column_case) for c in frame.columns]
        out[cased(name, draw(st.sampled_from(["upper", "lower"])))] = frame
    return out, storage


@settings(max_examples=EXAMPLES)
@given(case=messy())
@pytest.mark.slow
def test_a_messy_return_is_mapped_with_every_row_accounted_for_or_named(
    case: tuple[dict[str, pd.DataFrame], str],
) -> None:
    tables, storage = case
    with tempfile.TemporaryDirectory() as work:
        files = write_tables(tables, storage, Path(work) / "extract")
        try:
            mapped = map_asc_cld(Extract.open(Path(work) / "extract"), None)
        except IngestError as error:
            message = str(error)
            assert "\n" not in message
            assert any(str(p) in message for p in files.values()), message
            column = re.search(r"column '([^']+)'", message)
            assert column, message
            return
    written = {name.lower(): len(frame) for name, frame in tables.items()}
    assert mapped.ledger.rows_in == written
    ignored = mapped.ledger.ignored_frame()
    for table, rows_in in written.items():
        made = set(mapped.events.loc[mapped.events["source_table"] == table, "source_row"])
        set_aside = ignored.loc[ignored["source_table"] == table, "source_row"]
        assert set_aside.is_unique, table
        assert not made & set(set_aside), table
        assert len(made) + len(set_aside) == rows_in, table
        assert ignored.loc[ignored["source_table"] == table, "reason"].notna().all()
