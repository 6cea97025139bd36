"""CSV that is safe to open in a spreadsheet: the one rule for every CSV file riskstrat writes.

A spreadsheet runs a cell that starts with ``=``, ``+``, ``-`` or ``@`` as a formula (OWASP:
CSV injection), also after leading spaces or control characters, and a tab, carriage return
or line feed at the start is how such a cell is smuggled past a check on the first
character. ``spreadsheet_safe`` puts an apostrophe in front of any such text (spreadsheets
show the text, not run it; the apostrophe is the OWASP advice). The writers here apply it to
every field, headings included, and quote every field holding a comma, a quote, a carriage
return or a line feed (rows end in CRLF, as RFC 4180 has them, so that Python's ``csv``
quotes a bare carriage return too): no field can split a row or start a new one.
"""

from __future__ import annotations

import csv
import unicodedata
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    import pandas as pd

FORMULA_LEADS = frozenset("=+-@")
# Rows end in CRLF: the csv module quotes a field holding any character of the terminator.
LINE_END = "\r\n"


def _blank(character: str) -> bool:
    """Whitespace or a control character, which a spreadsheet may skip before a formula."""
    return character.isspace() or unicodedata.category(character) == "Cc"


def spreadsheet_safe(value: object) -> object:
    """Text a spreadsheet could run as a formula, with a leading apostrophe; anything else
    unchanged. Such text starts with a formula lead (``= + - @``), perhaps after spaces or
    control characters, or with a tab, carriage return or other control character."""
    if not isinstance(value, str) or not value:
        return value
    if unicodedata.category(value[0]) == "Cc":
        return "'" + value
    first = next((c for c in value if not _blank(c)), "")
    return "'" + value if first in FORMULA_LEADS else value


def write_rows(target: TextIO, header: Sequence[str], rows: Iterable[Sequence[object]]) -> None:
    """``header`` and ``rows`` as CSV into ``target`` (opened with ``newline=""``), every
    field safe to open in a spreadsheet; None is an empty field."""
    writer = csv.writer(target, lineterminator=LINE_END)
    writer.writerow([spreadsheet_safe(h) for h in header])
    for row in rows:
        writer.writerow(["" if v is None else spreadsheet_safe(v) for v in row])


def write_frame(frame: pd.DataFrame, target: Path | TextIO) -> None:
    """``frame`` (without its index) as CSV at ``target``, a path or an open text handle,
    every text cell and heading safe to open in a spreadsheet; missing values are empty."""
    import pandas as pd

    safe = frame.rename(columns=lambda c: spreadsheet_safe(str(c)))
    for i in range(safe.shape[1]):
        column = safe.iloc[:, i]
        if isinstance(column.dtype, pd.CategoricalDtype) or not pd.api.types.is_numeric_dtype(
            column
        ):
            safe.isetitem(i, column.map(spreadsheet_safe))
    safe.to_csv(target, index=False, lineterminator=LINE_END)
