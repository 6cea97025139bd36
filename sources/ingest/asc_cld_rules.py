"""The return's own validity rules, applied to each row before it is mapped.

Each rule names the field it checks; a row failing one is not mapped, with the first rule
it fails (in ``RULES`` order) as its reason, so the quality report counts rows by rule:

- ``missing_<field>``: a field the specification makes mandatory for the row's event type
  is empty (event type, start date, a person identifier; the end date of a request,
  assessment or review, which are returned only once completed; a service's type);
- ``invalid_<field>``: a value outside the field's defined list, or a date that is not one;
- ``end_before_start``;
- ``outside_reporting_period``: a request, assessment or review not completed within the
  row's reporting period, or a service not active in it (started after it, or ended before
  it). Rows without a reporting period are not checked (counted in the report).
"""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd

Check = Callable[[pd.DataFrame], pd.Series]
COMPLETED = ("request", "assessment", "review")


def _missing(column: str) -> Check:
    return lambda f: f[column].isna()


def _invalid(column: str) -> Check:
    """Given (``<column>_raw`` present) but not in the list or not a date (``column`` NA)."""
    return lambda f: f[f"{column}_raw"].notna() & f[column].isna()


def _missing_end(f: pd.DataFrame) -> pd.Series:
    return f["event_type"].isin(COMPLETED) & f["end_raw"].isna()


def _missing_service_type(f: pd.DataFrame) -> pd.Series:
    return (f["event_type"] == "service") & f["service_type_raw"].isna()


def _outside_period(f: pd.DataFrame) -> pd.Series:
    first, last = f["period_start"], f["period_end"]
    completed = f["event_type"].isin(COMPLETED) & ((f["end"] < first) | (f["end"] > last))
    service = (f["event_type"] == "service") & ((f["start"] > last) | (f["end"] < first))
    return (completed | service).fillna(False)


RULES: dict[str, Check] = {
    "missing_event_type": lambda f: f["event_type_raw"].isna(),
    "invalid_event_type": _invalid("event_type"),
    "invalid_client_type": _invalid("client_type"),
    "missing_person_id": _missing("source_id"),
    "missing_event_start_date": lambda f: f["start_raw"].isna(),
    "invalid_event_start_date": _invalid("start"),
    "invalid_event_end_date": _invalid("end"),
    "missing_event_end_date": _missing_end,
    "missing_service_type": _missing_service_type,
    "invalid_service_type": lambda f: (f["event_type"] == "service") & _invalid("service_type")(f),
    "invalid_delivery_mechanism": _invalid("delivery_mechanism"),
    "end_before_start": lambda f: (f["end"] < f["start"]).fillna(False),
    "outside_reporting_period": _outside_period,
}


def first_failure(rows: pd.DataFrame) -> pd.Series:
    """Per row, the first rule it fails (NA when it passes them all)."""
    reason = pd.Series(pd.NA, index=rows.index, dtype="str")
    for rule, check in reversed(RULES.items()):
        reason = reason.mask(check(rows).fillna(False).astype(bool), rule)
    return reason
