"""The one date rule of every adapter (``tables.parse_dates``): each format it reads, what is
missing, and when a column stops the run rather than losing a few rows."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from riskstrat.sources.ingest.tables import Extract, IngestError, Spec, parse_dates, read_dates

MAY_3 = pd.Timestamp("2021-05-03")


@pytest.mark.parametrize(
    "text",
    [
        "2021-05-03",
        "2021-5-3",
        "2021/05/03",
        "2021-05-03 10:30:00",
        "2021-05-03T10:30:00Z",
        "2021-05-03T23:59:59.999+01:00",
        "20210503",
        "03/05/2021",
        "3/5/2021",
        "03-05-2021",
        "03.05.2021",
        "03/05/2021 10:30",
        " 03/05/2021 ",
    ],
)
def test_each_text_format_reads_as_the_same_day(text: str) -> None:
    assert parse_dates(pd.Series([text]), "x.csv", "d").tolist() == [MAY_3]


def test_slashed_dates_are_day_first_never_month_first() -> None:
    """NHS extracts are day-first: 03/05 is 3 May, and 05/13 is no date at all."""
    dates = read_dates(pd.Series(["03/05/2021", "12/01/2021", "05/13/2021"]))
    assert dates.tolist() == [MAY_3, pd.Timestamp("2021-01-12"), pd.NaT]


@pytest.mark.parametrize(
    "text", [None, "", "   ", "NULL", "null", "31/02/2021", "2021-13-01", "210503", "3/5/21"]
)
def test_empty_null_and_impossible_values_are_missing(text: str | None) -> None:
    assert read_dates(pd.Series([text, "2021-05-03"], dtype="str")).tolist() == [pd.NaT, MAY_3]


def test_typed_dates_and_timestamps_are_kept_as_they_are_without_the_time() -> None:
    naive = pd.Series(pd.to_datetime(["2021-05-03 23:30", None]))
    zoned = naive.dt.tz_localize("Europe/London")
    assert read_dates(naive).tolist() == [MAY_3, pd.NaT]
    assert read_dates(zoned).tolist() == [MAY_3, pd.NaT]
    assert read_dates(naive).dtype == "datetime64[s]"


def test_a_parquet_date_column_reads_through_an_extract(tmp_path: Path) -> None:
    """Typed Parquet columns reach the adapters as DuckDB's text and read as the same days."""
    (tmp_path / "x").mkdir()
    table = pa.table(
        {
            "day": pa.array([MAY_3.date(), None], pa.date32()),
            "stamp": pa.array([pd.Timestamp("2021-05-03 10:30"), None], pa.timestamp("us")),
        }
    )
    pq.write_table(table, tmp_path / "x" / "visits.parquet")
    spec = Spec("visits", True, ("day", "stamp"))
    extract = Extract.open(tmp_path / "x")
    frame = extract.read(spec)
    assert frame is not None
    assert extract.dates(spec, frame, "day").tolist() == [MAY_3, pd.NaT]
    assert extract.dates(spec, frame, "stamp").tolist() == [MAY_3, pd.NaT]


def test_a_mixed_column_reads_each_format_and_leaves_a_few_bad_values_missing() -> None:
    values = pd.Series(
        ["2021-05-03", "20210504", "05/05/2021", "6/5/2021", "NULL", None, "not a date"]
    )
    expected = [*pd.to_datetime(["2021-05-03", "2021-05-04", "2021-05-05", "2021-05-06"])]
    assert parse_dates(values, "x.csv", "d").tolist() == [*expected, pd.NaT, pd.NaT, pd.NaT]


def test_a_column_of_no_dates_stops_with_one_line_naming_file_column_and_an_example() -> None:
    values = pd.Series(["someday", "soon", None, "NULL"])
    with pytest.raises(IngestError) as caught:
        parse_dates(values, "extract/events.csv", "event_date")
    assert str(caught.value) == (
        "extract/events.csv: column 'event_date': 2 of 2 values are not dates in a known "
        "format (YYYY-MM-DD or an ISO date-time, YYYYMMDD, day-first DD/MM/YYYY), e.g. 'someday'"
    )


def test_a_column_mostly_of_bad_dates_stops_and_a_month_first_one_says_day_first() -> None:
    """Two of three unreadable is a format, not a few bad rows; US dates say why they fail."""
    values = pd.Series(["01/02/2021", "01/31/2021", "02/13/2021"])
    with pytest.raises(IngestError, match=r"'01/31/2021' \(dates are read day-first") as caught:
        parse_dates(values, "gp/events.csv", "effective_date")
    assert "\n" not in str(caught.value)
    assert "2 of 3 values" in str(caught.value)
    half = pd.Series(["01/02/2021", "01/31/2021"])  # one of two: a bad row, kept as missing
    assert parse_dates(half, "gp/events.csv", "effective_date").tolist() == [
        pd.Timestamp("2021-02-01"),
        pd.NaT,
    ]


def test_a_column_with_no_values_is_all_missing_not_an_error() -> None:
    empty = parse_dates(pd.Series([None, "", "NULL"], dtype="str"), "x.csv", "d")
    assert empty.isna().all() and empty.dtype == "datetime64[s]"


def test_an_error_names_the_column_as_the_file_spells_it(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    (tmp_path / "x" / "events.csv").write_text("Entry_Date\nsomeday\n")
    spec = Spec("events", True, ("event_date",), aliases={"event_date": ("date", "entry_date")})
    extract = Extract.open(tmp_path / "x")
    frame = extract.read(spec)
    assert frame is not None
    with pytest.raises(IngestError, match=r"events\.csv: column 'entry_date': 1 of 1"):
        extract.dates(spec, frame, "event_date")
