"""The one calendar arithmetic: whole months, the ends of short months, day numbers."""

from __future__ import annotations

from datetime import date

import pytest

from riskstrat.common.months import (
    DAYS_PER_MONTH,
    DAYS_PER_YEAR,
    add_months,
    day_number,
    from_day_number,
    month_start,
    months_between,
)


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [
        (date(2024, 3, 31), -1, date(2024, 2, 29)),
        (date(2023, 3, 31), -1, date(2023, 2, 28)),
        (date(2024, 1, 31), 3, date(2024, 4, 30)),
        (date(2024, 12, 15), 1, date(2025, 1, 15)),
        (date(2024, 1, 15), -13, date(2022, 12, 15)),
        (date(2024, 5, 31), -9, date(2023, 8, 31)),
    ],
)
def test_whole_months_keep_the_day_or_take_the_month_end(
    day: date, months: int, expected: date
) -> None:
    assert add_months(day, months) == expected


def test_month_start_is_the_first_of_the_shifted_month() -> None:
    assert month_start(date(2024, 1, 31), 1) == date(2024, 2, 1)
    assert month_start(date(2024, 1, 31), -12) == date(2023, 1, 1)
    assert month_start(date(2024, 7, 9)) == date(2024, 7, 1)


def test_months_between_counts_calendar_months_either_way() -> None:
    for day, months in [(date(2024, 1, 31), 3), (date(2024, 5, 31), -9), (date(2023, 7, 1), 0)]:
        assert months_between(day, add_months(day, months)) == months
    assert months_between(date(2023, 7, 31), date(2023, 8, 1)) == 1


def test_day_numbers_round_trip_and_one_month_length() -> None:
    assert from_day_number(day_number(date(2025, 6, 30))) == date(2025, 6, 30)
    assert day_number(date(1970, 1, 2)) == 1
    assert DAYS_PER_MONTH * 12 == DAYS_PER_YEAR
