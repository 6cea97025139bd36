"""Calendar arithmetic shared by every layer: months, the day numbers of event tables, and the
one length of a year and a month in days."""

from __future__ import annotations

import calendar
from datetime import date, timedelta

DAYS_PER_YEAR = 365.25
DAYS_PER_MONTH = DAYS_PER_YEAR / 12
EPOCH = date(1970, 1, 1)


def add_months(day: date, months: int) -> date:
    """``day`` moved by whole calendar months (negative: back); the 31st of a month becomes
    the last day of a shorter one (31 March less one month is 28 or 29 February)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def month_start(day: date, months: int = 0) -> date:
    """The first day of the calendar month ``months`` after the one holding ``day``."""
    return add_months(day.replace(day=1), months)


def months_between(first: date, later: date) -> int:
    """Whole calendar months from the month holding ``first`` to the one holding ``later``
    (negative when ``later`` is earlier)."""
    return (later.year - first.year) * 12 + later.month - first.month


def day_number(day: date) -> int:
    """Days since ``EPOCH``: the integer dates of the event tables."""
    return (day - EPOCH).days


def from_day_number(number: int) -> date:
    return EPOCH + timedelta(days=int(number))
