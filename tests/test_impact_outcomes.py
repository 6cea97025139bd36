"""Outcome counts per person-month on a hand-built extract whose answers are known, read
through ``ContractTables`` (DuckDB and Spark count the same)."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd
import pytest

from riskstrat.contract.engines import Engine
from riskstrat.contract.schema import EVENTS
from riskstrat.contract.tables import ContractTables
from riskstrat.impact.outcomes import Months, count, months_end

D = date


def _extract() -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    patients = pd.DataFrame(
        {
            "patient_id": ["a", "b", "c"],
            "birth_month": [D(1940, 1, 1)] * 3,
            "sex": ["F", "M", "F"],
            "practice_id": ["P1"] * 3,
            "deprivation_decile": [5, 5, 5],
            "ethnicity_group": ["White"] * 3,
            "registration_start": [D(2000, 1, 1), D(2000, 1, 1), D(2023, 1, 10)],
            "registration_end": [None, None, None],
            "death_date": [None, D(2023, 2, 14), None],
        }
    )
    rows = [
        # patient, kind, start, end, system, code, value, cost
        ("a", "emergency_admission", D(2023, 2, 10), D(2023, 2, 15), "ICD10", "J44.1", None, None),
        ("a", "ae_attendance", D(2023, 2, 10), None, "riskstrat", "admitted", None, None),
        ("a", "emergency_admission", D(2023, 4, 29), None, "ICD10", "I50", None, None),
        ("b", "emergency_admission", D(2023, 1, 3), D(2023, 1, 4), "ICD10", "R07", None, None),
        ("c", "care_home_admission", D(2023, 1, 20), None, "riskstrat", "permanent", None, 950.0),
        ("c", "emergency_admission", D(2023, 3, 5), D(2023, 3, 8), "ICD10", "S72", None, None),
        ("c", "social_care_package", D(2023, 1, 16), D(2023, 2, 14), None, "home_care", 5, 70.0),
        (
            "c",
            "emergency_admission",
            D(2023, 1, 12),
            D(2023, 1, 13),
            "riskstrat",
            "N390",
            None,
            None,
        ),
    ]
    events = pd.DataFrame(rows, columns=EVENTS.schema.names)
    practices = pd.DataFrame(
        {"practice_id": ["P1"], "practice_name": ["One"], "gp_cluster": ["C"], "locality": ["L"]}
    )
    return patients, events, practices


MONTHS = Months(D(2023, 1, 1), D(2023, 5, 1))


@pytest.fixture(scope="module")
def counted():
    with ContractTables.from_frames(*_extract()) as tables:
        return count(tables, pd.Index(["a", "b", "c"]), MONTHS, last_day=D(2023, 4, 30))


def test_exposure_is_the_share_of_each_month_registered_and_alive(counted) -> None:
    np.testing.assert_allclose(counted.exposure[0], [1, 1, 1, 1])
    np.testing.assert_allclose(counted.exposure[1], [1, 14 / 28, 0, 0])  # died 14 February
    np.testing.assert_allclose(counted.exposure[2], [22 / 31, 1, 1, 1])  # joined 10 January


def test_each_outcome_lands_in_its_month(counted) -> None:
    o = counted.outcomes
    np.testing.assert_array_equal(
        o["emergency_admissions"], [[0, 1, 0, 1], [1, 0, 0, 0], [1, 0, 1, 0]]
    )
    # J44.1 (COPD) and I50 (heart failure) are avoidable; R07 and S72 are not; N390 is
    # avoidable only when coded in ICD-10, which that row is not.
    np.testing.assert_array_equal(o["avoidable_admissions"], [[0, 1, 0, 1], [0] * 4, [0] * 4])
    # Stays: 5 days, and the open stay counts to the data's last day (29-30 April: 1 day).
    np.testing.assert_array_equal(o["bed_days"], [[0, 5, 0, 1], [1, 0, 0, 0], [1, 0, 3, 0]])
    np.testing.assert_array_equal(o["ae_attendances"], [[0, 1, 0, 0], [0] * 4, [0] * 4])
    # c moved into a care home on 20 January: the March admission is a resident's, the one
    # on 12 January is not.
    np.testing.assert_array_equal(
        o["care_home_resident_admissions"], [[0] * 4, [0] * 4, [0, 0, 1, 0]]
    )
    np.testing.assert_array_equal(o["care_home_admissions"], [[0] * 4, [0] * 4, [1, 0, 0, 0]])
    np.testing.assert_array_equal(o["deaths"], [[0] * 4, [0, 1, 0, 0], [0] * 4])


def test_package_cost_follows_the_days_active(counted) -> None:
    # 16 to 31 January (16 days) and 1 to 14 February (14 days) at 70 GBP a week.
    np.testing.assert_allclose(counted.outcomes["package_cost"][2], [160, 140, 0, 0])


def test_totals_and_person_years_over_a_window(counted) -> None:
    np.testing.assert_array_equal(
        counted.total("emergency_admissions", D(2023, 2, 1), D(2023, 5, 1)), [2, 0, 1]
    )
    np.testing.assert_allclose(
        counted.exposure_years(D(2023, 1, 1), D(2023, 5, 1)), [4 / 12, 1.5 / 12, (3 + 22 / 31) / 12]
    )
    long = counted.long("emergency_admissions")
    assert len(long) == 4 + 2 + 4  # no rows for the months after b died
    assert long["y"].sum() == 5


def test_someone_not_in_the_extract_is_an_error_naming_them() -> None:
    tables = ContractTables.from_frames(*_extract())
    with pytest.raises(ValueError, match=r"people not in the patients table: \['zz'\]"):
        count(tables, pd.Index(["a", "zz"]), Months(D(2023, 1, 1), D(2023, 2, 1)), D(2023, 4, 30))


@pytest.mark.parametrize(
    ("last_day", "end"),
    [
        (D(2023, 4, 30), D(2023, 5, 1)),  # the month is whole
        (D(2023, 4, 29), D(2023, 4, 1)),  # April is not
        (D(2023, 12, 31), D(2024, 1, 1)),
        (D(2024, 2, 29), D(2024, 3, 1)),
    ],
)
def test_the_data_ends_after_its_last_whole_month(last_day: date, end: date) -> None:
    assert months_end(last_day) == end


def test_a_dates_period_is_its_calendar_month_from_the_first() -> None:
    days = pd.Series(pd.to_datetime(["2023-01-31", "2023-03-01", None, "2022-12-31", "2024-02-29"]))
    assert MONTHS.periods(days).tolist() == [0, 2, -1, -1, 13]
    assert [MONTHS.index(d) for d in (D(2023, 1, 1), D(2023, 4, 30), D(2023, 5, 1))] == [0, 3, 4]
    assert MONTHS.periods(pd.Series([None, None])).tolist() == [-1, -1]


def test_spark_counts_what_duckdb_counts(counted, spark_engine: Engine) -> None:
    with ContractTables.from_frames(*_extract(), engine=spark_engine) as tables:
        on_spark = count(tables, pd.Index(["a", "b", "c"]), MONTHS, last_day=D(2023, 4, 30))
    np.testing.assert_array_equal(on_spark.exposure, counted.exposure)
    assert on_spark.outcomes.keys() == counted.outcomes.keys()
    for name, values in counted.outcomes.items():
        np.testing.assert_allclose(on_spark.outcomes[name], values, rtol=0, atol=1e-9)


def test_an_outcome_whose_kind_is_absent_is_not_measured_and_the_rest_are() -> None:
    """Without care-home admissions (a borough with no social-care data) nobody is known to
    live in a care home: both care-home outcomes are absent, not zero; the others count."""
    patients, events, practices = _extract()
    events = events[events["kind"] != "care_home_admission"]
    with ContractTables.from_frames(patients, events, practices) as tables:
        counts = count(tables, pd.Index(["a", "b", "c"]), MONTHS, last_day=D(2023, 4, 30))
    assert counts.absent == {
        "care_home_resident_admissions": ("care_home_admission",),
        "care_home_admissions": ("care_home_admission",),
    }
    assert set(counts.outcomes).isdisjoint(counts.absent)
    np.testing.assert_array_equal(
        counts.outcomes["emergency_admissions"], [[0, 1, 0, 1], [1, 0, 0, 0], [1, 0, 1, 0]]
    )


def test_nobody_to_count_gives_empty_counts() -> None:
    with ContractTables.from_frames(*_extract()) as tables:
        counts = count(tables, pd.Index([], dtype="str"), MONTHS, last_day=D(2023, 4, 30))
    assert counts.exposure.shape == (0, len(MONTHS))
    assert all(v.shape == (0, len(MONTHS)) for v in counts.outcomes.values())
