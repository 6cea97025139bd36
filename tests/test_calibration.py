"""The smoothed calibration curve (statsmodels' LOWESS) on cases whose answer is known."""

from __future__ import annotations

import numpy as np
import pytest

from riskstrat.training.calibration import ici_e50_e90, lowess_curve, smoothed_calibration


def test_a_straight_line_is_reproduced_exactly() -> None:
    """A local linear smoother fits any line without error, wherever it is evaluated."""
    x = np.random.default_rng(1).random(500)
    grid = np.linspace(0.0, 1.0, 11)
    assert lowess_curve(x, 0.2 + 0.5 * x, grid) == pytest.approx(0.2 + 0.5 * grid, abs=1e-12)


def test_the_curve_stays_within_zero_and_one() -> None:
    x = np.linspace(0.0, 1.0, 200)
    grid = np.array([-0.5, 0.5, 1.5])  # a line extrapolated beyond the data leaves [0, 1]
    assert lowess_curve(x, x, grid) == pytest.approx([0.0, 0.5, 1.0], abs=1e-12)


def test_the_curve_follows_the_true_rate_of_outcomes_drawn_from_it() -> None:
    """Outcomes drawn at a known rate, twice the stated risk: the smoothed observed rate
    recovers that rate (not the stated risk), with no robustness iterations pulling the
    events in as outliers."""
    rng = np.random.default_rng(5)
    risk = rng.uniform(0.02, 0.4, 40_000)
    labels = (rng.random(len(risk)) < 2 * risk).astype(int)
    grid, observed = smoothed_calibration(labels, risk, seed=0)
    inner = (grid > 0.1) & (grid < 0.35)  # away from the ends, where a smoother flattens
    assert observed[inner] == pytest.approx(2 * grid[inner], abs=0.02)


def test_calibrated_risks_have_a_small_ici_and_halved_risks_a_large_one() -> None:
    rng = np.random.default_rng(6)
    risk = rng.uniform(0.02, 0.4, 40_000)
    labels = (rng.random(len(risk)) < risk).astype(int)
    assert ici_e50_e90(labels, risk)["ici"] < 0.01
    halved = ici_e50_e90(labels, risk / 2)
    assert halved["ici"] == pytest.approx(np.mean(risk / 2), abs=0.01)
    assert halved["e50"] <= halved["e90"]


def test_the_curve_is_the_same_for_the_same_seed() -> None:
    rng = np.random.default_rng(7)
    risk = rng.random(3_000)
    labels = (rng.random(3_000) < risk).astype(int)
    first = smoothed_calibration(labels, risk, sample=1_000, seed=3)
    again = smoothed_calibration(labels, risk, sample=1_000, seed=3)
    assert np.array_equal(first[1], again[1])
