"""Every CSV riskstrat writes is safe to open in a spreadsheet: one rule, ``common.spreadsheet``.

Hostile names (a carriage return before a formula, a tab, leading spaces, a line feed) go
through the real weekly run into its locality and cluster files, which are read back with
``csv`` (no row is split, no field starts a formula) and ``openpyxl`` (no formula cell, the
text kept as it was).
"""

from __future__ import annotations

import csv
import io
import shutil
from datetime import date
from pathlib import Path

import openpyxl
import pandas as pd
import pytest

from riskstrat.common.spreadsheet import FORMULA_LEADS, spreadsheet_safe, write_frame, write_rows
from riskstrat.contract.validation import validate_dir
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.outputs import UNREADABLE
from riskstrat.serving.weekly.run import weekly_run

WEEK = date(2026, 10, 26)
HOSTILE = ["\r=2+5", "North\r=1+1", "\t@SUM(1)", "  -3+3", "\n+1", "\x00=1", '"=1",x']


def runs_as_formula(field: str) -> bool:
    """Whether a spreadsheet could take ``field`` (text from a CSV reader) for a formula."""
    try:
        float(field)
        return False  # a number, however it starts
    except ValueError:
        pass
    if field.startswith("'"):
        return False
    first = field.lstrip(" \t\r\n\x00")[:1]
    return first in FORMULA_LEADS or field[:1] in ("\t", "\r", "\n", "\x00")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("North", "North"),
        ("=1+1", "'=1+1"),
        ("\r=2+5", "'\r=2+5"),
        ("  @x", "'  @x"),
        ("\tplain", "'\tplain"),
        ("a\r=1", "a\r=1"),  # not a formula; the writer quotes it
        ("", ""),
        (-2.5, -2.5),
        (None, None),
    ],
)
def test_the_rule(value: object, expected: object) -> None:
    assert spreadsheet_safe(value) == expected


def test_no_field_splits_a_row_or_starts_a_formula() -> None:
    out = io.StringIO()
    write_rows(out, ["=name", "n"], [[h, -1.5] for h in HOSTILE])
    rows = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert len(rows) == 1 + len(HOSTILE)
    assert all(len(row) == 2 for row in rows)
    assert not [f for row in rows for f in row if runs_as_formula(f)]
    assert [r[0].removeprefix("'") for r in rows[1:]] == HOSTILE  # the text itself is kept


def test_frames_keep_numbers_and_dates(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "name": pd.Series(HOSTILE[:3], dtype="str"),
            "change": [-1.5, None, 2.0],
            "day": pd.to_datetime(["2026-10-26"] * 3),
            "tier": pd.Categorical(["=high", "low", "low"]),
        }
    )
    write_frame(frame, tmp_path / "t.csv")
    back = pd.read_csv(tmp_path / "t.csv", keep_default_na=False)
    assert list(back["name"]) == [spreadsheet_safe(h) for h in HOSTILE[:3]]
    assert back["change"].tolist() == ["-1.5", "", "2.0"]  # numbers as numbers, no apostrophe
    assert list(back["day"]) == ["2026-10-26"] * 3
    assert list(back["tier"]) == ["'=high", "low", "low"]


@pytest.fixture(scope="module")
def hostile_week(
    small_borough_dir: Path,
    champion: RegisteredBundle,
    tmp_path_factory: pytest.TempPathFactory,
) -> Path:
    """The weekly run of a borough whose localities, clusters and practices have hostile names."""
    root = tmp_path_factory.mktemp("hostile-week")
    data = root / "data"
    data.mkdir()
    for table in ("patients", "events"):
        shutil.copy(small_borough_dir / f"{table}.parquet", data)
    practices = pd.read_parquet(small_borough_dir / "practices.parquet")
    localities = sorted(practices["locality"].unique())
    clusters = sorted(practices["gp_cluster"].unique())
    practices["locality"] = practices["locality"].map(dict(zip(localities, HOSTILE, strict=False)))
    practices["gp_cluster"] = practices["gp_cluster"].map(
        {c: f"{HOSTILE[i % len(HOSTILE)]} {i}" for i, c in enumerate(clusters)}
    )
    practices["practice_name"] = [HOSTILE[i % len(HOSTILE)] for i in range(len(practices))]
    practices["locality"] = practices["locality"].fillna("Central")
    practices.to_parquet(data / "practices.parquet", index=False)
    validated = root / "validated"
    assert validate_dir(data, validated, WEEK).reconciles
    return weekly_run(validated, WEEK, champion, root / "lists").folder


def test_weekly_list_files_read_back_whole_and_inert(hostile_week: Path) -> None:
    files = sorted(hostile_week.glob("locality_*.csv")) + sorted(hostile_week.glob("cluster_*.csv"))
    assert len(files) > 2
    seen: set[str] = set()
    for path in files:
        with path.open(newline="", encoding="utf-8") as handle:
            header, *rows = list(csv.reader(handle))
        assert rows, path.name
        assert all(len(row) == len(header) for row in rows), path.name
        assert not [f for row in rows for f in row if runs_as_formula(f)], path.name
        for column in ("Locality", "GP cluster", "Practice name"):
            seen |= {row[header.index(column)].removeprefix("'") for row in rows}
        assert pd.read_csv(path).shape == (len(rows), len(header))
    assert {"\r=2+5", "North\r=1+1"} <= seen


def test_weekly_workbooks_hold_the_names_as_text(hostile_week: Path) -> None:
    for path in sorted(hostile_week.glob("locality_*.xlsx")):
        book = openpyxl.load_workbook(path)
        cells = [c for sheet in book for row in sheet.iter_rows() for c in row]
        assert not [c.coordinate for c in cells if c.data_type == "f"], path.name
        localities = {c.value for c in cells if c.column == 6 and c.row > 1}
        # A workbook holds no NUL; its XML reads a CR back as LF.
        kept = {h.replace("\x00", UNREADABLE).replace("\r", "\n") for h in HOSTILE}
        assert localities <= {*kept, "Central"}, path.name
