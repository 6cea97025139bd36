"""Messy HES extracts: every row is mapped or set aside with a reason, or the run stops with
one line naming the file and the field; never a traceback.

The known-answer fixture (``test_ingest_hes``) is mutated by Hypothesis: nulls and bad codes
in any column, dates in several text formats, mixed-case column names, CSV or Parquet,
episodes sent again in the next financial year's file and rows repeated within a file.
"""

from __future__ import annotations

import re
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ingest_support import cased
from test_ingest_hes import fixture_tables

from riskstrat.sources.ingest.hes import map_hes
from riskstrat.sources.ingest.hes_people import PATIENTS
from riskstrat.sources.ingest.mapping import Mapped
from riskstrat.sources.ingest.tables import Extract, IngestError

MESS = (None, "", " ", "0", "99", "NULL", "&", "XX", "not a date", "31/02/2022", "2A")
DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%Y%m%d", "%Y-%m-%d %H:%M:%S", "%d-%m-%Y")
DATE_COLUMNS = re.compile(
    r"(admidate|epistart|epiend|disdate|arrivaldate|arrival_date|apptdate|reg_date_of_death"
    r"|registration_date|deregistration_date)",
    re.IGNORECASE,
)
EXAMPLES = 6  # each example maps a whole extract (about 2 s)


def _dates(values: pd.Series, how: str) -> pd.Series:
    stamps = pd.to_datetime(values, errors="coerce", format="mixed", dayfirst=True)
    return stamps.dt.strftime(how).astype(object).where(stamps.notna(), values)


@st.composite
def messy(draw: st.DrawFn) -> tuple[dict[str, pd.DataFrame], str]:
    """Mutated tables (file name -> frame) and their storage."""
    storage = draw(st.sampled_from(["csv", "parquet"]))
    tables = fixture_tables()
    resent = draw(st.sets(st.integers(0, len(tables["apc_2122"]) - 1)))
    again = tables["apc_2122"].iloc[sorted(resent)].assign(PARTYEAR="202299")
    tables["apc_2223"] = pd.concat([tables["apc_2223"], again], ignore_index=True)
    out: dict[str, pd.DataFrame] = {}
    for name, base in tables.items():
        frame = base.astype(object).where(base.notna(), None)
        rows = st.sets(st.integers(0, len(frame) - 1), max_size=len(frame))
        for column in draw(st.sets(st.sampled_from(list(frame.columns)), max_size=4)):
            frame.loc[sorted(draw(rows)), column] = draw(st.sampled_from(MESS))
        frame = pd.concat([frame, frame.iloc[sorted(draw(rows))]], ignore_index=True)
        for column in frame.columns:
            if DATE_COLUMNS.fullmatch(column):
                frame[column] = _dates(frame[column], draw(st.sampled_from(DATE_FORMATS)))
        how = draw(st.sampled_from(["upper", "lower", "mixed"]))
        frame.columns = [cased(c, how) for c in frame.columns]
        out[name] = frame
    return out, storage


def _write(tables: dict[str, pd.DataFrame], storage: str, folder: Path) -> dict[str, Path]:
    folder.mkdir()
    files = {}
    for name, frame in tables.items():
        path = folder / f"{name}.{storage}"
        text = frame.astype(object).where(frame.notna(), None)
        if storage == "csv":
            text.to_csv(path, index=False)
        else:
            text.astype("str").where(frame.notna(), None).to_parquet(path, index=False)
        files[name] = path
    return files


def _check_error(error: IngestError, files: dict[str, Path], tables: dict) -> None:
    message = str(error)
    assert "\n" not in message, message
    name = next((n for n, p in files.items() if str(p) in message), None)
    assert name is not None, f"names no file: {message}"
    column = re.search(r"column '([^']+)'", message)
    assert column, f"names no column: {message}"


def _check_accounts(mapped: Mapped, tables: dict[str, pd.DataFrame]) -> None:
    ignored = mapped.ledger.ignored_frame()
    pairs = list(zip(ignored["source_table"], ignored["source_row"], strict=True))
    assert len(pairs) == len(set(pairs)), "a row set aside twice"
    events = set(zip(mapped.events["source_table"], mapped.events["source_row"], strict=True))
    assert not events & set(pairs), "a row both mapped and set aside"
    for name, frame in tables.items():
        if name not in mapped.ledger.rows_in:
            continue  # an empty file or one no longer recognised
        assert mapped.ledger.rows_in[name] == len(frame), name
        mine = {r for t, r in pairs if t == name} | {r for t, r in events if t == name}
        assert mine <= set(range(len(frame))), name
        if name not in ("registrations", "ons_deaths"):  # these merge into patients
            assert mine == set(range(len(frame))), name
    people = mapped.ledger.rows_in[PATIENTS]
    assert people == len(mapped.patients) + int((ignored["source_table"] == PATIENTS).sum())
    # every person the adapter vouches for is whole; a death-only row (no other record names
    # the person) waits for the linkage to match it or set it aside
    vouched = mapped.patients[~mapped.patients["source_id"].isin(mapped.unconfirmed)]
    assert vouched["sex"].isin(["F", "M"]).all()


@settings(max_examples=EXAMPLES)
@given(data=st.data())
@pytest.mark.slow
def test_a_messy_hes_extract_is_mapped_with_every_row_accounted_for_or_named(
    data: st.DataObject,
) -> None:
    tables, storage = data.draw(messy())
    with tempfile.TemporaryDirectory() as work:
        files = _write(tables, storage, Path(work) / "extract")
        try:
            mapped = map_hes(Extract.open(Path(work) / "extract"), None)
        except IngestError as error:
            _check_error(error, files, tables)
            return
    _check_accounts(mapped, tables)
