"""The row rules of validation, as SQL: per table, reason codes in the order they are checked.

A row's reason is the first rule it breaks. Each rule is a SQL condition over one row of
the table as read (columns already of the contract's types) plus two whole-table facts
that ``reasons_query`` adds by window and join, never by a loop over people:
``later_copy`` (an earlier row has the same key) and ``known_parent`` (the row's practice
or patient is among the accepted rows of the table above). A condition that is NULL (a
comparison with an empty value) is not broken, as an empty end is not before its start.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pyarrow as pa

from riskstrat.contract.schema import (
    ETHNICITY_GROUPS,
    EVENTS,
    PATIENTS,
    PRACTICES,
    SEXES,
    EventKind,
    Table,
)

Rules = dict[str, str]


@dataclass(frozen=True, slots=True)
class Parent:
    """The table a row refers to: its ``column`` must be a key of the accepted ``table``."""

    column: str
    table: Table


PARENTS: dict[str, Parent] = {
    PATIENTS.name: Parent("practice_id", PRACTICES),
    EVENTS.name: Parent("patient_id", PATIENTS),
}


def quoted(name: str) -> str:
    """A column name as a SQL identifier (``end`` is a keyword)."""
    return '"' + name.replace('"', '""') + '"'


def _text(values: tuple[str, ...] | list[str]) -> str:
    return ", ".join("'" + v.replace("'", "''") + "'" for v in values)


def _day(day: date) -> str:
    return f"DATE '{day.isoformat()}'"


def _missing(table: Table) -> str:
    """A required field is empty (a float's NaN counts as empty, as pandas counted it)."""
    empty = []
    for column in table.columns:
        if column.nullable:
            continue
        name = quoted(column.name)
        is_float = pa.types.is_floating(column.type)
        empty.append(f"({name} IS NULL OR isnan({name}))" if is_float else f"{name} IS NULL")
    return " OR ".join(empty)


def _after(limit: date, *columns: str) -> str:
    return " OR ".join(f"{quoted(c)} > {_day(limit)}" for c in columns)


def practice_rules() -> Rules:
    return {"missing_value": _missing(PRACTICES), "duplicate_key": "later_copy"}


def patient_rules(extract_date: date) -> Rules:
    return {
        "missing_value": _missing(PATIENTS),
        "duplicate_key": "later_copy",
        "unknown_practice": "NOT known_parent",
        "invalid_sex": f"sex NOT IN ({_text(SEXES)})",
        "invalid_deprivation": "deprivation_decile NOT BETWEEN 1 AND 10",
        "invalid_ethnicity": f"ethnicity_group NOT IN ({_text(ETHNICITY_GROUPS)})",
        "end_before_start": "registration_end < registration_start",
        "death_before_birth": "death_date < birth_month",
        "future_date": _after(extract_date, "birth_month", "registration_start", "death_date"),
    }


def event_rules(extract_date: date) -> Rules:
    """Only a start after the extract date is in the future: an end after it is care still
    running then (a reablement plan, a package to its review date, a prescription's covered
    period), kept as planned; the features cut every episode at the as-of date."""
    return {
        "missing_value": _missing(EVENTS),
        "unknown_kind": f"kind NOT IN ({_text([k.value for k in EventKind])})",
        "unknown_patient": "NOT known_parent",
        "end_before_start": quoted("end") + " < start",
        "future_date": f"start > {_day(extract_date)}",
        "negative_value": "value < 0 OR cost < 0",
        "invalid_lottery_draw": f"kind = '{EventKind.RISK_LIST_LOTTERY.value}' "
        "AND (value IS NULL OR value NOT IN (0, 1))",
    }


def rules_for(table: Table, extract_date: date) -> Rules:
    """The rules of one contract table, in the order they are checked."""
    if table is PRACTICES:
        return practice_rules()
    if table is PATIENTS:
        return patient_rules(extract_date)
    return event_rules(extract_date)


def _parquet(path: Path) -> str:
    return "read_parquet('" + str(path).replace("'", "''") + "'"


def reasons_query(table: Table, rules: Rules, source: Path, folder: Path) -> str:
    """SQL giving ``source_row`` (0-based row of ``source``) and ``reason`` for every row that
    breaks a rule, ordered by row; ``folder`` holds the accepted tables above this one."""
    columns = ", ".join(quoted(c.name) for c in table.columns)
    facts = ["rows.*"]
    joined = ""
    if table.key:
        key = quoted(table.key)
        facts.append(
            f"row_number() OVER (PARTITION BY {key} ORDER BY source_row) > 1 AS later_copy"
        )
    parent = PARENTS.get(table.name)
    if parent:
        accepted = _parquet(folder / parent.table.file_name) + ")"
        facts.append("known.parent_key IS NOT NULL AS known_parent")
        joined = (
            f"LEFT JOIN (SELECT DISTINCT {quoted(parent.table.key)} AS parent_key FROM {accepted})"
            f" AS known ON rows.{quoted(parent.column)} = known.parent_key"
        )
    cases = " ".join(f"WHEN {condition} THEN '{reason}'" for reason, condition in rules.items())
    return (
        f"WITH rows AS (SELECT file_row_number AS source_row, {columns} "
        f"FROM {_parquet(source)}, file_row_number = true)), "
        f"viewed AS (SELECT {', '.join(facts)} FROM rows {joined}), "
        f"judged AS (SELECT source_row, CASE {cases} END AS reason FROM viewed) "
        "SELECT source_row, reason FROM judged WHERE reason IS NOT NULL ORDER BY source_row"
    )
