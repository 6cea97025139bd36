"""Feature records as the scoring endpoint reads them: every problem named, nothing guessed."""

from __future__ import annotations

import math

import numpy as np
import pytest
from bentoml.exceptions import InvalidArgument
from pydantic import ValidationError

from riskstrat.serving.service import FeatureRecord, records_matrix

NAMES = ["age", "emergency_admissions_12m", "gp_contacts_12m"]


def _record(pid: str, **features: float | None) -> FeatureRecord:
    return FeatureRecord(id=pid, features=features)


def test_values_come_in_the_model_order_with_null_as_missing() -> None:
    records = [
        _record("a", gp_contacts_12m=4, age=81, emergency_admissions_12m=None),
        _record("b", emergency_admissions_12m=2, gp_contacts_12m=0, age=67.5),
    ]
    values = records_matrix(records, NAMES)
    assert values.dtype == np.float64 and values.shape == (2, 3)
    np.testing.assert_array_equal(values, [[81, math.nan, 4], [67.5, 2, 0]])


@pytest.mark.parametrize(
    ("features", "message"),
    [
        (
            {"age": 80, "emergency_admissions_12m": 1},
            r"records\[1\]\.features: missing .*gp_contacts",
        ),
        (
            {"age": 80, "emergency_admissions_12m": 1, "gp_contacts_12m": 3, "shoe_size": 9},
            r"records\[1\]\.features: unknown feature\(s\) \['shoe_size'\]",
        ),
    ],
)
def test_a_bad_record_is_refused_naming_it(features: dict, message: str) -> None:
    good = _record("a", age=70, emergency_admissions_12m=0, gp_contacts_12m=1)
    with pytest.raises(InvalidArgument, match=message):
        records_matrix([good, FeatureRecord(id="b", features=features)], NAMES)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan])
def test_a_value_that_is_not_finite_is_refused_where_it_is_read(value: float) -> None:
    """NaN as well as infinity: null is how a record says a value is unknown."""
    features = {"age": 80, "emergency_admissions_12m": value, "gp_contacts_12m": 3}
    with pytest.raises(ValidationError, match=r"emergency_admissions_12m\n.*finite number"):
        FeatureRecord(id="b", features=features)
