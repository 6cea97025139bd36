"""The files locality teams open: CSV and Excel lists with readable column names.

Every writer is deterministic: the same rows give the same bytes (the workbook's dates and
its zip entries' timestamps are fixed), so a re-run of a week can be checked byte for byte.
"""

from __future__ import annotations

import hashlib
import io
import re
import zipfile
from collections import Counter
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

import pandas as pd

from riskstrat.serving.weekly.offers import words

# people.parquet column -> heading in the files people open, in order.
COLUMNS: dict[str, str] = {
    "rank": "Rank",
    "patient_id": "Pseudonymised ID",
    "practice_id": "Practice",
    "practice_name": "Practice name",
    "gp_cluster": "GP cluster",
    "locality": "Locality",
    "age_band": "Age band",
    "sex": "Sex",
    "risk_percent": "Risk of emergency admission in 12 months (%)",
    "tier": "Tier",
    "week_status": "New or stayed",
    "change_points": "Change since last week (points)",
    "reason_1": "Reason 1",
    "reason_2": "Reason 2",
    "reason_3": "Reason 3",
    "flags": "Flags",
    "pathway": "Suggested pathway",
    "pathway_rule": "Rule that suggested it",
    "offer": "Offer this week",
    "offer_reason": "Why offered or not",
}
_WIDTHS = {
    "Why offered or not": 60,
    "Reason 1": 48,
    "Reason 2": 48,
    "Reason 3": 48,
    "Flags": 30,
    "Practice name": 28,
}
# Shown after the risk when the week has the second model (``avoidable_risk``).
AVOIDABLE_HEADING = "Risk of a potentially avoidable emergency admission in 12 months (%)"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_MODIFIED = re.compile(r"(<dcterms:modified[^>]*>)[^<]*(</dcterms:modified>)")


def readable(listed: pd.DataFrame) -> pd.DataFrame:
    """Listed rows (indexed by patient) as people read them: percentages, points, headings
    (the avoidable-admission risk after the risk, when the rows have one). Offers are in
    words; a week written before offers existed shows none."""
    offer = listed["offer"] if "offer" in listed.columns else pd.Series("", index=listed.index)
    frame = listed.reset_index().assign(
        risk_percent=(100 * listed["risk"].to_numpy()).round(1),
        change_points=(100 * listed["change"].to_numpy()).round(1),
        offer=[words(a) if a else "" for a in offer],
        offer_reason=listed.get("offer_reason", pd.Series("", index=listed.index)).to_numpy(),
    )
    headings = COLUMNS
    if "avoidable_risk" in listed.columns:
        frame["avoidable_risk_percent"] = (100 * listed["avoidable_risk"].to_numpy()).round(1)
        headings = {}
        for column, heading in COLUMNS.items():
            headings[column] = heading
            if column == "risk_percent":
                headings["avoidable_risk_percent"] = AVOIDABLE_HEADING
    return frame[list(headings)].rename(columns=headings).reset_index(drop=True)


def write_workbook(sheets: dict[str, pd.DataFrame], path: Path, stamp: datetime) -> None:
    """One sheet per entry (bold, frozen header, filters), dated ``stamp``, fixed bytes."""
    # Imported here: the service and its pages use this module's text rules, not workbooks.
    from openpyxl import Workbook
    from openpyxl.styles import Font
    from openpyxl.utils import get_column_letter

    book = Workbook()
    book.remove(book.active)
    for title, table in sheets.items():
        sheet = book.create_sheet(_sheet_title(title))
        sheet.append(list(table.columns))
        for row in table.itertuples(index=False):
            sheet.append([_cell(v) for v in row])
        for cells in sheet.iter_rows(min_row=2):
            for cell in cells:
                if cell.data_type == "f":  # text from data that openpyxl took for a formula
                    cell.data_type = "s"
        for cell in sheet[1]:
            cell.font = Font(bold=True)
        sheet.freeze_panes = "A2"
        sheet.auto_filter.ref = sheet.dimensions
        for i, heading in enumerate(table.columns, start=1):
            width = _WIDTHS.get(heading, max(10, min(len(heading) + 2, 24)))
            sheet.column_dimensions[get_column_letter(i)].width = width
    book.properties.creator = "riskstrat"
    book.properties.created = book.properties.modified = stamp
    buffer = io.BytesIO()
    book.save(buffer)
    path.write_bytes(_fixed_zip(buffer.getvalue(), stamp))


# Characters a workbook cannot hold (control characters but tab, CR and LF): XML 1.0 has none.
_NOT_IN_XML = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f]")
UNREADABLE = "\ufffd"  # what stands in a workbook cell for such a character


def _cell(value: object) -> object:
    """A cell's value: empty for missing, text with ``UNREADABLE`` for each character a
    workbook cannot hold (the CSV keeps the text exactly)."""
    if isinstance(value, str):
        return _NOT_IN_XML.sub(UNREADABLE, value)
    return None if pd.isna(value) else value


def _sheet_title(title: str) -> str:
    """Excel's rules: at most 31 characters, none of []:*?/\\ (nor control characters)."""
    cleaned = "".join(" " if c in "[]:*?/\\" or not c.isprintable() else c for c in title)
    return cleaned[:31] or "list"


def _fixed_zip(data: bytes, stamp: datetime) -> bytes:
    """The same zip with every timestamp fixed, so equal content gives equal bytes.

    openpyxl stamps the save time into the workbook's properties and its zip entries.
    """
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            entry = zipfile.ZipInfo(info.filename, _ZIP_TIME)
            entry.compress_type = zipfile.ZIP_DEFLATED
            body = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                body = _MODIFIED.sub(
                    rf"\g<1>{stamp:%Y-%m-%dT%H:%M:%SZ}\g<2>", body.decode()
                ).encode()
            target.writestr(entry, body)
    return out.getvalue()


def slug(name: str) -> str:
    """A file-name-safe lower-case form of a locality or cluster name (letters, digits, _)."""
    return "".join(c if c.isalnum() else "_" for c in name.lower()).strip("_") or "unnamed"


NAME_HASH_DIGITS = 10


def scope_stems(scope: str, names: Iterable[str]) -> dict[str, str]:
    """Each name's file stem, ``<scope>_<slug>``, unique among ``names``.

    Names that share a slug (``North`` and ``north``, ``North 1`` and ``North-1``) each get
    ``-`` and the first digits of the SHA-256 of the exact name: a slug never holds ``-``,
    so no stem can equal another, and the week's manifest maps every stem back to its name.
    """
    names = sorted(set(names))
    slugs = {name: slug(name) for name in names}
    shared = Counter(slugs.values())
    stems = {}
    for name in names:
        stem = f"{scope}_{slugs[name]}"
        if shared[slugs[name]] > 1:
            digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:NAME_HASH_DIGITS]
            stem = f"{stem}-{digest}"
        stems[name] = stem
    if len(set(stems.values())) != len(stems):
        raise ValueError(f"{scope} names give the same file name: {sorted(names)}")
    return stems
