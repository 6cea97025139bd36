"""The team's overrides of a week's proposed offers: a CSV file given to ``riskstrat weekly``.

One row per decision, with the columns ``patient_id``, ``action`` (an event kind in
``config.ACTIONS``), ``decision`` (``offer``: offer this person this action although it was
not proposed; ``decline``: do not offer it this week), ``who`` (who decided) and ``why``.
Rows are numbered as a spreadsheet shows them (the heading is row 1). Every row is checked
here (``read_overrides``) or against the week's people (``offers.allocate``), and a wrong row
is refused with one line naming the file and the row.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from riskstrat.common.errors import UserError
from riskstrat.serving.weekly.config import ACTIONS

COLUMNS = ("patient_id", "action", "decision", "who", "why")


class Decision(StrEnum):
    OFFER = "offer"
    DECLINE = "decline"


class OverrideError(UserError):
    """An overrides file or row that cannot be used; one line naming the file and the row."""


@dataclass(frozen=True, slots=True)
class Override:
    """One row: the team's decision about one person and one action."""

    row: int  # as a spreadsheet numbers it: the heading is row 1
    patient_id: str
    action: str
    decision: Decision
    who: str
    why: str

    def to_manifest(self) -> dict:
        return {
            "row": self.row,
            "patient_id": self.patient_id,
            "action": self.action,
            "decision": self.decision.value,
            "who": self.who,
            "why": self.why,
        }


@dataclass(frozen=True, slots=True)
class Overrides:
    """The rows of one file (none when no file was given), its path and SHA-256 (the
    manifest keeps the file's name: the week's bytes do not depend on where it was saved)."""

    source: str
    rows: tuple[Override, ...] = ()
    sha256: str | None = None

    def error(self, row: int, problem: str) -> OverrideError:
        return OverrideError(f"{self.source}: row {row}: {problem}")

    def to_manifest(self) -> dict:
        return {
            "file": Path(self.source).name if self.sha256 else None,
            "sha256": self.sha256,
            "rows": [o.to_manifest() for o in self.rows],
        }


NO_OVERRIDES = Overrides("no overrides file")


def read_overrides(path: Path) -> Overrides:
    """The file's rows, each checked on its own and against the rows before it."""
    try:
        raw = path.read_bytes()
        text = raw.decode("utf-8-sig")
    except OSError as exc:
        raise OverrideError(f"{path}: cannot read the file ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise OverrideError(f"{path}: not UTF-8 text") from None
    records = list(csv.reader(io.StringIO(text, newline="")))
    heading = [h.strip() for h in records[0]] if records else []
    missing = [c for c in COLUMNS if c not in heading]
    if missing:
        raise OverrideError(
            f"{path}: missing column(s) {', '.join(missing)} (needed: {', '.join(COLUMNS)})"
        )
    found = Overrides(str(path), (), hashlib.sha256(raw).hexdigest())
    rows: list[Override] = []
    # A spreadsheet's row numbers: one per record (blank ones too), the heading is row 1.
    for number, record in enumerate(records[1:], start=2):
        values = {h: v.strip() for h, v in zip(heading, record, strict=False)}
        if not any(values.values()):
            continue
        rows.append(_row(found, number, values, rows))
    return Overrides(found.source, tuple(rows), found.sha256)


def _row(found: Overrides, number: int, values: dict[str, str], before: list[Override]) -> Override:
    """One row, checked: every field given, a known action and decision, no second decision
    on the same person and action, at most one offer per person (one action a week)."""
    for column in COLUMNS:
        if not values.get(column):
            raise found.error(number, f"{column} is empty (every row needs {', '.join(COLUMNS)})")
    if values["action"] not in ACTIONS:
        raise found.error(
            number, f"unknown action {values['action']!r} (known: {', '.join(ACTIONS)})"
        )
    try:
        decision = Decision(values["decision"].lower())
    except ValueError:
        raise found.error(
            number, f"decision must be offer or decline (got {values['decision']!r})"
        ) from None
    override = Override(
        number, values["patient_id"], values["action"], decision, values["who"], values["why"]
    )
    for earlier in before:
        if earlier.patient_id != override.patient_id:
            continue
        if earlier.action == override.action:
            raise found.error(
                number,
                f"{override.patient_id} {override.action} is already decided on row {earlier.row}",
            )
        if earlier.decision is decision is Decision.OFFER:
            raise found.error(
                number,
                f"{override.patient_id} is already offered {earlier.action} on row "
                f"{earlier.row} (one action per person a week)",
            )
    return override
