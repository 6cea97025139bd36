"""Re-identification for direct care: one practice's listed people, back to NHS numbers.

A locality team cannot act on a pseudonym. The holder of the pseudonymisation key (the
practice or its data processor) runs this on their own machine, outside the service: it
reads the practice's own register (CSV with an NHS number column), computes each registered
person's pseudonym with the key exactly as ingest did (``Pseudonymiser.one`` of the
identifier the extract carried: the NHS number, or the column named by ``id_column``), and
joins the finished week's *listed* people of that practice only. People of other practices
are never output, even when the register holds their NHS number; registered people who are
not listed are not output; listed people missing from the register are counted.

The key never reaches the service: it is read here, by the key holder, and the output is
refused inside the weekly lists folder and every folder the service reads
(``RISKSTRAT_WEEKLY_DIR``, ``RISKSTRAT_DATA_DIR``). Every run that compares the register
with a list appends one JSON line to an audit file (who, when, week, practice, the
register's digest, counts), which never holds an NHS number or a pseudonym.
"""

from __future__ import annotations

import csv
import getpass
import hashlib
import io
import json
import os
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TextIO

import pandas as pd

from riskstrat.common.atomic import containing
from riskstrat.common.errors import UserError
from riskstrat.common.spreadsheet import write_frame
from riskstrat.contract.pseudonym import Pseudonymiser, load_key
from riskstrat.models.tiers import NOT_LISTED
from riskstrat.serving.settings import ServiceSettings
from riskstrat.serving.weekly.outputs import readable
from riskstrat.serving.weekly.store import WeekStore

NHS_COLUMN = "nhs_number"  # the register's column, after ``column_key``
NHS_HEADING = "NHS number"  # its heading in the output, before the list's own columns
AUDIT_FILE = "reidentify_audit.jsonl"  # default: beside the output file
_DIGITS = re.compile(r"[0-9]{10}")


class ReidentifyError(UserError):
    """A run that must not write: a bad register or output place, or nobody matched."""


def nhs_number_valid(digits: str) -> bool:
    """Whether ten digits are an NHS number: the modulus-11 check digit (weights 10 to 2
    on the first nine; 11 minus the remainder, 11 meaning 0 and 10 never valid)."""
    if not _DIGITS.fullmatch(digits):
        return False
    total = sum(int(d) * w for d, w in zip(digits[:9], range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return (0 if check == 11 else check) == int(digits[9])


def display_nhs_number(digits: str) -> str:
    """The NHS's 3-3-4 form (``943 476 5919``), which a spreadsheet keeps as text."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


def column_key(heading: str) -> str:
    """A register heading compared without case or punctuation (``NHS Number``, ``nhs-number``
    and ``nhs_number`` are one column)."""
    return re.sub(r"[^a-z0-9]+", "_", heading.strip().lower()).strip("_")


@dataclass(frozen=True, slots=True)
class BadRow:
    """A register row that was not used; ``row`` as a spreadsheet numbers it (header: 1)."""

    row: int
    reason: str


@dataclass(frozen=True, slots=True)
class Register:
    """A practice's register: the usable rows and every row that was not used."""

    path: Path
    sha256: str
    rows: int
    # nhs_number (ten digits) and identifier (what ingest hashed); kept out of any repr
    people: pd.DataFrame = field(repr=False)
    bad: tuple[BadRow, ...]

    def not_used(self) -> dict[str, str]:
        """The rows not used, by reason, as compact ranges (``2, 5-7, 12``)."""
        rows: dict[str, list[int]] = {}
        for bad in self.bad:
            rows.setdefault(bad.reason, []).append(bad.row)
        return {reason: _ranges(numbers) for reason, numbers in rows.items()}


def read_register(path: Path, id_column: str | None = None) -> Register:
    """The register at ``path``. A row with the wrong number of cells, without a valid NHS
    number (or identifier), or whose identifier another row has, is kept aside in ``bad``
    with its row number and why; empty rows are skipped."""
    if not path.is_file():
        raise ReidentifyError(f"{path}: register file not found")
    content = path.read_bytes()
    try:
        records = list(csv.reader(io.StringIO(content.decode("utf-8-sig"), newline="")))
    except (UnicodeDecodeError, csv.Error) as exc:
        raise ReidentifyError(f"{path}: not a readable CSV register ({exc})") from None
    if not records:
        raise ReidentifyError(f"{path}: empty register (no header row)")
    header = [column_key(c) for c in records[0]]
    twice = sorted({c for c in header if header.count(c) > 1})
    if twice:
        raise ReidentifyError(f"{path}: more than one column named {', '.join(twice)}")
    id_name = column_key(id_column) if id_column else NHS_COLUMN
    for column in dict.fromkeys((NHS_COLUMN, id_name)):
        if column not in header:
            raise ReidentifyError(f"{path}: no column '{column}' (columns: {', '.join(header)})")
    rows = {n: r for n, r in enumerate(records[1:], start=2) if any(c.strip() for c in r)}
    misshapen = {
        n: f"cells: {len(r)} (the header has {len(header)})"
        for n, r in rows.items()
        if len(r) != len(header)
    }
    frame = pd.DataFrame(
        [r for n, r in rows.items() if n not in misshapen],
        index=[n for n in rows if n not in misshapen],
        columns=header,
        dtype="str",
    )
    nhs = frame[NHS_COLUMN].str.replace(r"\s+", "", regex=True)
    identifier = frame[id_name].str.replace(r"\s+", "", regex=True)
    reason = nhs.map(_nhs_problem).astype("str")
    reason[(reason == "") & (identifier == "")] = f"no {id_name}"
    reason.update(_repeats(nhs[reason == ""], identifier[reason == ""], id_name))
    problems = misshapen | {int(n): text for n, text in reason.items() if text}
    bad = tuple(BadRow(n, problems[n]) for n in sorted(problems))
    keep = reason == ""
    people = pd.DataFrame({"nhs_number": nhs[keep], "identifier": identifier[keep]})
    return Register(path, hashlib.sha256(content).hexdigest(), len(rows), people, bad)


def _not_used_note(register: Register) -> str:
    """`` (register rows not used: ...)`` when there are any, for a one-line message."""
    if not register.bad:
        return ""
    parts = "; ".join(f"{why}: row(s) {rows}" for why, rows in register.not_used().items())
    return f" (register rows not used: {parts})"


def _ranges(numbers: list[int]) -> str:
    """Ascending row numbers as ranges: ``[2, 5, 6, 7, 12]`` is ``2, 5-7, 12``."""
    runs: list[list[int]] = []
    for n in numbers:
        if runs and n == runs[-1][-1] + 1:
            runs[-1].append(n)
        else:
            runs.append([n])
    return ", ".join(str(r[0]) if len(r) == 1 else f"{r[0]}-{r[-1]}" for r in runs)


def _nhs_problem(digits: str) -> str:
    """Why ``digits`` (spaces removed) is not an NHS number; empty when it is one."""
    if not digits:
        return "no NHS number"
    if not _DIGITS.fullmatch(digits):
        return "the NHS number is not ten digits"
    if not nhs_number_valid(digits):
        return "the NHS number fails the modulus-11 check digit"
    return ""


def _repeats(nhs: pd.Series, identifier: pd.Series, name: str) -> pd.Series:
    """Why rows (indexed by row number) that share an identifier are not used: a repeat of
    the same person after the first row; every row when their NHS numbers differ (which
    one is right cannot be told)."""
    reasons = {}
    for _, rows in identifier[identifier.duplicated(keep=False)].groupby(identifier):
        numbers = nhs[rows.index]
        first = int(rows.index[0])
        if numbers.nunique() > 1:
            listing = ", ".join(str(r) for r in rows.index)
            for row in rows.index:
                reasons[row] = f"rows {listing} have the same {name} but other NHS numbers"
        else:
            for row in rows.index[1:]:
                reasons[row] = f"repeats row {first} (the same {name})"
    return pd.Series(reasons, dtype="str")


@dataclass(frozen=True, slots=True)
class Reidentified:
    """What one run did; the counts are the ones audited."""

    week: date
    practice: str
    out: Path
    audit: Path
    register: Register
    listed: int
    matched: int

    @property
    def unmatched(self) -> int:
        """Listed people of the practice not in the register (moved, or registered since)."""
        return self.listed - self.matched


def service_folders(lists: Path) -> tuple[Path, ...]:
    """Where the service reads: the weekly lists folder given, ``RISKSTRAT_WEEKLY_DIR`` and
    ``RISKSTRAT_DATA_DIR`` (when set). No key is read and nothing identifiable written there."""
    settings = ServiceSettings.current()
    return tuple(p for p in (lists, settings.weekly_dir, settings.data_dir) if p is not None)


def reidentify(
    lists: Path,
    practice: str,
    register_file: Path,
    out: Path,
    *,
    key_file: Path | None = None,
    week: date | None = None,
    id_column: str | None = None,
    audit: Path | None = None,
    who: str | None = None,
    force: bool = False,
) -> Reidentified:
    """Write the week's listed people of ``practice`` with their NHS numbers to ``out`` (CSV)
    and audit it; see the module docstring. The key comes from ``key_file`` or the variables
    ingest reads (``load_key``), never from inside a folder the service reads."""
    protected = service_folders(lists)
    _check_output(out, protected, force, register_file, key_file)
    key = load_key(key_file, protected)
    chosen, listed = listed_people(WeekStore(lists), week, practice)
    audit_path = audit or out.parent / AUDIT_FILE
    with _audit_log(audit_path) as log:
        register = read_register(register_file, id_column)
        found = _match(listed, register, key)
        entry = _audit_entry(who, chosen, practice, register, key, len(listed), len(found))
        entry |= {"lists": str(lists.resolve()), "out": str(out.resolve())}
        if len(listed) and found.empty:
            _append(log, entry | {"outcome": "nobody matched: nothing written", "out": None})
            raise ReidentifyError(
                f"{register_file}: none of the {len(listed)} listed people of practice "
                f"{practice!r} in the week of {chosen} is in this register: the key is not "
                f"the one ingest used (this key's fingerprint is {key.fingerprint}; ingest's "
                "quality_report.json names the one it used), the register is another "
                "practice's, or the identifier column is not the one the extract carried "
                f"(--id-column); nothing written{_not_used_note(register)}"
            )
        _write(found, out)
        try:
            _append(log, entry | {"outcome": "written"})
        except ReidentifyError:
            out.unlink(missing_ok=True)  # no identifiable file without its audit line
            raise
    return Reidentified(chosen, practice, out, audit_path, register, len(listed), len(found))


def listed_people(store: WeekStore, week: date | None, practice: str) -> tuple[date, pd.DataFrame]:
    """The chosen week (``week``, else the latest) and its listed people of ``practice`` in
    list order; an error when the practice had nobody scored that week."""
    chosen = store.choose(week)
    people = store.people(chosen)
    of_practice = people[people["practice_id"] == practice]
    if of_practice.empty:
        raise ReidentifyError(
            f"{store.folder(chosen)}: nobody of practice {practice!r} was scored in the week "
            f"of {chosen}"
        )
    return chosen, of_practice[of_practice["tier"] != NOT_LISTED]


def _check_output(
    out: Path, protected: tuple[Path, ...], force: bool, *inputs: Path | None
) -> None:
    """Refuse an output where the service reads, over an input, or over a file (unless
    ``force``)."""
    target = out.resolve()
    folder = containing(out, protected)
    if folder is not None:
        raise ReidentifyError(
            f"{out}: inside {folder}, which the service reads; write NHS numbers "
            "somewhere only direct care can open"
        )
    for given in inputs:
        if given is not None and target == given.resolve():
            raise ReidentifyError(f"{out}: that is an input of this run; choose another file")
    if out.is_dir():
        raise ReidentifyError(f"{out}: a folder; give a file name (CSV)")
    if out.exists() and not force:
        raise ReidentifyError(f"{out}: already exists; remove it or give --force to replace it")


def _match(listed: pd.DataFrame, register: Register, key: Pseudonymiser) -> pd.DataFrame:
    """The listed rows whose pseudonym a registered person has, in list order, with the
    NHS number first."""
    by_pseudonym = pd.Series(
        register.people["nhs_number"].to_numpy(),
        index=key.series(register.people["identifier"]).to_numpy(),
    )
    found = listed[listed["patient_id"].isin(by_pseudonym.index)]
    table = readable(found)
    numbers = by_pseudonym.reindex(found["patient_id"].to_numpy()).map(display_nhs_number)
    table.insert(0, NHS_HEADING, numbers.to_numpy())
    return table


def _write(table: pd.DataFrame, out: Path) -> None:
    """Write ``table`` to ``out`` readable by its owner only, in one rename (a killed run
    leaves no half file)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    handle, staging = tempfile.mkstemp(prefix=f".{out.name}-", dir=out.parent)
    os.close(handle)
    try:
        write_frame(table, Path(staging))
        os.replace(staging, out)
    except BaseException:
        Path(staging).unlink(missing_ok=True)
        raise


@contextmanager
def _audit_log(path: Path) -> Iterator[TextIO]:
    """The audit file, opened for appending before anyone's NHS number is read, so that a
    run which cannot be audited stops first."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")
    except OSError as exc:
        raise ReidentifyError(
            f"{path}: cannot append to the audit file ({exc.strerror}); nothing written"
        ) from None
    with handle:
        yield handle


def _append(log: TextIO, entry: dict[str, object]) -> None:
    """One line, on disk before the run goes on."""
    try:
        log.write(json.dumps(entry, sort_keys=True) + "\n")
        log.flush()
        os.fsync(log.fileno())
    except OSError as exc:
        raise ReidentifyError(f"{log.name}: cannot append to the audit file ({exc})") from None


def _audit_entry(
    who: str | None,
    week: date,
    practice: str,
    register: Register,
    key: Pseudonymiser,
    listed: int,
    matched: int,
) -> dict[str, object]:
    """One audit line: counts and digests, never an NHS number or a pseudonym."""
    user = _os_user()
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "who": who or user,
        "os_user": user,
        "week": week.isoformat(),
        "practice": practice,
        "register": str(register.path.resolve()),
        "register_sha256": register.sha256,
        "register_rows": register.rows,
        "register_rows_not_used": len(register.bad),
        "key_fingerprint": key.fingerprint,
        "listed": listed,
        "matched": matched,
        "unmatched": listed - matched,
    }


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no login name (some containers): the numeric id
        return f"uid {os.getuid()}"
