"""Evaluation measures on data whose answers are known."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskstrat.training.evaluate import (
    auroc_with_interval,
    calibration_in_the_large,
    calibration_slope,
    evaluate,
    top_share_table,
)
from riskstrat.training.report import decision_curve, subgroup_table


@pytest.fixture(scope="module")
def calibrated() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    risk = 1 / (1 + np.exp(-rng.normal(-2.5, 1.2, 60_000)))
    return (rng.random(len(risk)) < risk).astype(int), risk


def test_calibrated_risks_measure_as_calibrated(calibrated: tuple) -> None:
    y, risk = calibrated
    m = evaluate(y, risk, resamples=20, seed=0)
    assert m["calibration_slope"] == pytest.approx(1.0, abs=0.05)
    assert m["calibration_intercept"] == pytest.approx(0.0, abs=0.05)
    assert m["ici"] < 0.01
    assert m["auroc_ci_low"] < m["auroc"] < m["auroc_ci_high"]


def test_the_auroc_interval_is_the_same_for_the_same_seed(calibrated: tuple) -> None:
    y, risk = calibrated
    y, risk = y[:5_000], risk[:5_000]
    first = auroc_with_interval(y, risk, 30, seed=4)
    assert first == auroc_with_interval(y, risk, 30, seed=4)
    assert first[1] != auroc_with_interval(y, risk, 30, seed=5)[1]


def test_no_resamples_give_no_interval_and_say_so(calibrated: tuple) -> None:
    y, risk = calibrated
    m = evaluate(y, risk, resamples=0, seed=0)
    assert np.isnan(m["auroc_ci_low"]) and np.isnan(m["auroc_ci_high"])
    assert m["auroc"] > 0.5
    _, interval = auroc_with_interval(y, risk, 0, 0)
    assert interval.missing == "no bootstrap resamples were asked for (bootstrap = 0)"


def test_resamples_with_one_outcome_give_no_interval_and_say_so() -> None:
    """One event in 20 rows: about a third of resamples miss it, and AUROC is undefined there."""
    y = np.zeros(20, dtype=int)
    y[3] = 1
    risk = np.linspace(0.9, 0.1, 20)
    point, interval = auroc_with_interval(y, risk, 50, seed=0)
    assert point == pytest.approx(16 / 19)
    assert np.isnan(interval.low) and np.isnan(interval.high)
    assert interval.missing.endswith(
        "bootstrap resamples had one outcome only (too few events for an interval)"
    )


def test_miscalibration_is_detected(calibrated: tuple) -> None:
    y, risk = calibrated
    too_low = risk / 2
    assert calibration_in_the_large(y, too_low) > 0.5
    overconfident = 1 / (1 + np.exp(-2 * np.log(risk / (1 - risk))))
    assert calibration_slope(y, overconfident) == pytest.approx(0.5, abs=0.05)
    assert evaluate(y, too_low, 0, 0)["ici"] > 5 * evaluate(y, risk, 0, 0)["ici"]


def test_top_share_table_counts_hits_in_the_listed_people() -> None:
    y = np.array([1, 0, 1, 0, 0, 0, 0, 0, 0, 1])
    risk = np.array([0.9, 0.8, 0.7, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.05])
    table = top_share_table(y, risk, (0.2, 0.3))
    assert table["people"].tolist() == [2, 3]
    assert table["ppv"].tolist() == pytest.approx([0.5, 2 / 3])
    assert table["sensitivity"].tolist() == pytest.approx([1 / 3, 2 / 3])
    assert table["threshold"].tolist() == [0.8, 0.7]


def test_decision_curve_of_a_perfect_model_is_the_prevalence() -> None:
    y = np.array([1, 0, 0, 0])
    curve = decision_curve(y, y.astype(float), np.array([0.1, 0.5]))
    assert curve["net_benefit_model"].tolist() == [0.25, 0.25]
    assert curve["net_benefit_all"].tolist() == pytest.approx([0.25 - 0.75 / 9, 0.25 - 0.75])


def test_subgroups_cover_everyone_once_per_variable() -> None:
    groups = pd.DataFrame({"sex": ["F", "F", "M", "M"], "locality": ["N", "S", "S", "S"]})
    y, risk = np.array([1, 0, 1, 0]), np.array([0.9, 0.2, 0.6, 0.4])
    table = subgroup_table(groups, y, risk, list_threshold=0.5)
    assert table.groupby("variable")["people"].sum().to_dict() == {"locality": 4, "sex": 4}
    women = table[(table["variable"] == "sex") & (table["group"] == "F")].iloc[0]
    assert (women["events"], women["auroc"], women["false_negative_rate"]) == (1, 1.0, 0.0)
