"""The regression discontinuity at the list's cut-off recovers known effects on simulated
scores, finds none where there is none, flags manipulation, weak or absent take-up and thin
data, and refuses bad input naming the column or value."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskstrat.impact.rd import (
    ANSWERED,
    COLUMNS,
    MIN_PEOPLE_PER_SIDE,
    RdEffect,
    RdEstimate,
    rd_bins,
    regression_discontinuity,
)

CUTOFF = 0.5


def linear(score: np.ndarray) -> np.ndarray:
    return 1.0 + 0.6 * score


def curved(score: np.ndarray) -> np.ndarray:
    """Smooth but far from linear across the band, with no jump at the cut-off."""
    return 1.2 + 2.0 * (score - 0.3) ** 2 + 0.3 * np.sin(6 * score)


def scored(
    seed: int,
    n: int = 20_000,
    *,
    take_up: float = 0.4,
    effect: float = -0.25,
    rate=linear,
    noise: float = 0.15,
) -> pd.DataFrame:
    """People scored uniformly on [0, 1]; those at or above the cut-off take up the action with
    probability ``take_up``, which changes their outcome rate by ``effect``; exposure varies, so
    the outcome is the rate times exposure."""
    rng = np.random.default_rng(seed)
    score = rng.uniform(0, 1, n)
    took_up = (score >= CUTOFF) & (rng.uniform(size=n) < take_up)
    exposure = rng.uniform(0.5, 1.0, n)
    y = exposure * (rate(score) + effect * took_up + rng.normal(0, noise, n))
    return pd.DataFrame(
        {
            "person": [f"p{i}" for i in range(n)],
            "score": score,
            "took_up": took_up,
            "y": y,
            "exposure": exposure,
        }
    )


def covers(effect: RdEffect | None, value: float) -> bool:
    assert effect is not None
    return effect.ci_low <= value <= effect.ci_high


@pytest.fixture(scope="module")
def fuzzy_world() -> pd.DataFrame:
    return scored(1)


@pytest.fixture(scope="module")
def fuzzy_estimate(fuzzy_world: pd.DataFrame) -> RdEstimate:
    return regression_discontinuity(fuzzy_world, cutoff=CUTOFF)


def test_a_known_fuzzy_effect_is_recovered(fuzzy_estimate: RdEstimate) -> None:
    """Take-up jumps from 0 to 0.4 and the action lowers takers' rate by 0.25: being listed
    lowers it by 0.1."""
    result = fuzzy_estimate
    assert result.verdict == ANSWERED
    assert covers(result.itt, -0.1) and not covers(result.itt, 0.0)
    assert covers(result.fuzzy, -0.25) and not covers(result.fuzzy, 0.0)
    assert covers(result.first_stage, 0.4)
    assert result.first_stage_f is not None and result.first_stage_f > 10
    assert result.control_mean == pytest.approx(linear(np.array(CUTOFF)), abs=0.05)
    assert result.density_p is not None and result.density_p >= 0.05


def test_the_band_and_counts_are_reported(
    fuzzy_world: pd.DataFrame, fuzzy_estimate: RdEstimate
) -> None:
    result = fuzzy_estimate
    assert result.itt_bandwidth is not None and 0 < result.itt_bandwidth < CUTOFF
    assert result.fuzzy_bandwidth is not None and result.fuzzy_bandwidth > 0
    distance = fuzzy_world["score"] - CUTOFF
    near = distance.abs() <= result.itt_bandwidth
    assert (result.n_left, result.n_right) == (
        int((near & (distance < 0)).sum()),
        int((near & (distance >= 0)).sum()),
    )
    assert result.n_people == len(fuzzy_world)
    assert result.cutoff == CUTOFF


def test_a_sharp_design_gives_the_same_itt_and_fuzzy_effect() -> None:
    """Everyone listed takes the action up: the first stage is 1 and both estimates are the
    jump."""
    result = regression_discontinuity(scored(2, take_up=1.0, effect=-0.1), cutoff=CUTOFF)
    assert result.verdict == ANSWERED
    assert covers(result.itt, -0.1) and not covers(result.itt, 0.0)
    assert covers(result.fuzzy, -0.1)
    assert result.first_stage is not None
    assert result.first_stage.estimate == pytest.approx(1.0)


def test_no_effect_gives_intervals_around_zero() -> None:
    result = regression_discontinuity(scored(3, effect=0.0), cutoff=CUTOFF)
    assert result.verdict == ANSWERED
    assert covers(result.itt, 0.0)
    assert covers(result.fuzzy, 0.0)


def test_a_curved_relation_without_a_jump_is_no_effect() -> None:
    result = regression_discontinuity(
        scored(4, take_up=0.4, effect=0.0, rate=curved), cutoff=CUTOFF
    )
    assert result.verdict == ANSWERED
    assert covers(result.itt, 0.0)
    assert covers(result.fuzzy, 0.0)


def test_people_moved_above_the_cut_off_are_flagged_as_manipulation(
    fuzzy_world: pd.DataFrame,
) -> None:
    """Half of those scored just below the cut-off are pushed just above it."""
    rng = np.random.default_rng(5)
    score = fuzzy_world["score"].to_numpy().copy()
    pushed = (score >= CUTOFF - 0.05) & (score < CUTOFF) & (rng.uniform(size=len(score)) < 0.5)
    score[pushed] = CUTOFF + rng.uniform(0, 0.05, int(pushed.sum()))
    result = regression_discontinuity(fuzzy_world.assign(score=score), cutoff=CUTOFF)
    assert result.density_p is not None and result.density_p < 0.05
    assert result.verdict.startswith("manipulation detected")


def test_a_weak_first_stage_is_said_plainly() -> None:
    result = regression_discontinuity(scored(6, 5_000, take_up=0.005), cutoff=CUTOFF)
    assert result.first_stage_f is not None and result.first_stage_f < 10
    assert result.verdict.startswith("weak first stage")


def test_no_take_up_gives_the_itt_only() -> None:
    result = regression_discontinuity(scored(7, 5_000, take_up=0.0), cutoff=CUTOFF)
    assert result.verdict.startswith("no take-up")
    assert result.itt is not None
    assert (result.fuzzy, result.first_stage, result.first_stage_f) == (None, None, None)


def test_too_few_people_near_the_cut_off_gives_no_estimate() -> None:
    n = 2 * MIN_PEOPLE_PER_SIDE - 20
    result = regression_discontinuity(scored(8, n), cutoff=CUTOFF)
    assert result.verdict.startswith("too few people near the cut-off")
    assert (result.itt, result.fuzzy, result.density_p) == (None, None, None)
    assert result.n_left + result.n_right == n


def test_a_person_scored_at_several_runs_adds_no_information_by_repeating() -> None:
    """Every row twice over (the same person at two runs with the same score and outcome):
    errors clustered by person keep the interval as wide as once; treating the rows as
    independent people would narrow it by about 1 / sqrt(2)."""
    once = scored(9, 8_000)
    single = regression_discontinuity(once, cutoff=CUTOFF)
    double = regression_discontinuity(pd.concat([once, once], ignore_index=True), cutoff=CUTOFF)
    assert single.itt is not None and double.itt is not None
    assert double.n_people == single.n_people
    width = double.itt.ci_high - double.itt.ci_low
    assert width == pytest.approx(single.itt.ci_high - single.itt.ci_low, rel=0.1)


def test_row_order_does_not_change_the_estimate() -> None:
    frame = scored(10, 4_000)
    shuffled = frame.sample(frac=1.0, random_state=1).reset_index(drop=True)
    assert regression_discontinuity(shuffled, cutoff=CUTOFF) == regression_discontinuity(
        frame, cutoff=CUTOFF
    )


@pytest.mark.parametrize("column", COLUMNS)
def test_a_missing_column_is_named(column: str) -> None:
    with pytest.raises(ValueError, match=f"missing column.*'{column}'"):
        regression_discontinuity(scored(11, 500).drop(columns=column), cutoff=CUTOFF)


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("score", np.nan, "'score' not finite.*person 'p3'"),
        ("y", np.inf, "'y' not finite.*person 'p3'"),
        ("y", -1.0, "'y' negative.*person 'p3'"),
        ("exposure", 0.0, "'exposure' not positive.*person 'p3'"),
    ],
)
def test_a_bad_value_is_named_with_its_row(column: str, value: float, message: str) -> None:
    frame = scored(12, 500)
    frame.loc[3, column] = value
    with pytest.raises(ValueError, match=message):
        regression_discontinuity(frame, cutoff=CUTOFF)


def test_take_up_must_be_boolean() -> None:
    frame = scored(13, 500)
    with pytest.raises(ValueError, match="'took_up' must be boolean"):
        regression_discontinuity(frame.assign(took_up=frame["took_up"].astype(int)), cutoff=CUTOFF)


@pytest.mark.parametrize(
    ("cutoff", "message"),
    [
        (1.5, "cut-off 1.5 is outside .*no score at or above it"),
        (-0.5, "cut-off -0.5 is outside .*no score below it"),
        (float("nan"), "cut-off must be a finite number"),
    ],
)
def test_a_cut_off_outside_the_scores_is_refused(cutoff: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        regression_discontinuity(scored(14, 500), cutoff=cutoff)


def test_scores_all_on_one_side_are_refused() -> None:
    frame = scored(15, 500)
    listed_only = frame[frame["score"] >= CUTOFF]
    lowest = float(listed_only["score"].min())
    with pytest.raises(ValueError, match="no score below it"):
        regression_discontinuity(listed_only, cutoff=lowest)


def test_bins_give_each_side_its_rates_and_take_up() -> None:
    frame = pd.DataFrame(
        {
            "person": list("abcdefg"),
            "score": [0.0, 0.1, 0.4, 0.5, 0.6, 0.9, 1.0],
            "took_up": [False, False, False, True, False, True, True],
            "y": [1.0, 2.0, 0.0, 1.0, 3.0, 0.0, 2.0],
            "exposure": [1.0, 0.5, 1.0, 1.0, 1.0, 0.5, 0.5],
        }
    )
    expected = pd.DataFrame(
        {
            "side": ["below", "below", "at_or_above", "at_or_above"],
            "mid": [0.125, 0.375, 0.625, 0.875],
            "rate": [3.0 / 1.5, 0.0, 4.0 / 2.0, 2.0 / 1.0],
            "took_up": [0.0, 0.0, 0.5, 1.0],
            "n": [2, 1, 2, 2],
        }
    )
    pd.testing.assert_frame_equal(rd_bins(frame, CUTOFF, bins=2), expected, check_dtype=False)


def test_bins_must_be_a_positive_whole_number() -> None:
    with pytest.raises(ValueError, match="bins must be a positive whole number"):
        rd_bins(scored(16, 100), CUTOFF, bins=0)
