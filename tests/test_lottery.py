"""The lottery design's estimator: a stratified comparison of those drawn and not drawn,
and the effect among those the draw made take help up, on data with a known answer."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from riskstrat.impact.lottery import MIN_PER_ARM, difference, lottery_effect, usable

REPLICATES = 300


def _trial(rng: np.random.Generator, effect: float, uptake: float, n: int = 3000) -> pd.DataFrame:
    """Three lotteries with different chances of a draw and different outcome rates (so
    pooling them unstratified is biased), partial uptake among those drawn and a little help
    among those not drawn; the help lowers a Poisson rate by ``effect`` (absolute)."""
    lottery = rng.integers(0, 3, n)
    chance = np.array([0.2, 0.5, 0.8])[lottery]
    base = np.array([0.2, 0.5, 1.0])[lottery]
    drawn = rng.random(n) < chance
    took = np.where(drawn, rng.random(n) < uptake, rng.random(n) < 0.05)
    y = rng.poisson(np.clip(base - effect * took, 0, None))
    return pd.DataFrame({"lottery": lottery, "drawn": drawn, "took_up": took, "y": y})


def test_the_offer_and_the_takers_effects_are_recovered_with_honest_intervals() -> None:
    """Intention to treat = effect x the uptake the draw made (0.7 - 0.05); among takers =
    effect. Both 95% intervals cover their truth in 92-98% of trials."""
    rng = np.random.default_rng(5)
    effect, uptake = 0.15, 0.7
    itt_truth = -effect * (uptake - 0.05)
    itt_covers = takers_covers = 0
    estimates = []
    for _ in range(REPLICATES):
        found = lottery_effect(_trial(rng, effect, uptake), "y")
        itt_covers += not found.effect.excludes(itt_truth)
        takers_covers += not found.among_takers.excludes(-effect)
        estimates.append(found.among_takers.estimate)
    assert 0.92 <= itt_covers / REPLICATES <= 0.98
    assert 0.92 <= takers_covers / REPLICATES <= 0.98
    assert abs(np.mean(estimates) + effect) < 0.01


def test_pooling_lotteries_unstratified_would_be_biased_and_stratifying_is_not() -> None:
    """With no effect at all, the drawn are mostly from the lottery with the highest rate:
    a plain difference of means finds an 'effect'; the stratified one does not."""
    rng = np.random.default_rng(6)
    frame = _trial(rng, effect=0.0, uptake=0.7, n=30_000)
    naive = frame.loc[frame["drawn"], "y"].mean() - frame.loc[~frame["drawn"], "y"].mean()
    found = lottery_effect(frame, "y")
    assert naive > 0.15
    assert not found.effect.excludes(0.0)
    assert found.relative is not None and not found.relative.excludes(0.0)


def test_a_lottery_without_two_in_each_arm_is_left_out_and_counted() -> None:
    rng = np.random.default_rng(7)
    frame = _trial(rng, effect=0.1, uptake=0.8, n=600)
    lone = pd.DataFrame(
        {
            "lottery": [9] * 5,
            "drawn": [True] + [False] * 4,
            "took_up": [True] + [False] * 4,
            "y": [0, 1, 2, 0, 1],
        }
    )
    both = pd.concat([frame, lone], ignore_index=True)
    assert not usable(both).iloc[-5:].any() and usable(both).iloc[:-5].all()
    found = lottery_effect(both, "y")
    assert found.lotteries_left_out == 1 and found.n_lotteries == 3
    assert found.n_drawn + found.n_not_drawn == len(frame)
    assert found.effect == lottery_effect(frame, "y").effect


def test_nothing_comparable_is_a_verdict_not_a_number() -> None:
    frame = pd.DataFrame(
        {
            "lottery": [1, 1, 1],
            "drawn": [True, False, False],
            "took_up": [True, False, False],
            "y": [0, 1, 1],
        }
    )
    found = lottery_effect(frame, "y")
    assert found.verdict.startswith(f"no lottery had at least {MIN_PER_ARM} people drawn")
    assert np.isnan(found.effect.estimate) and found.among_takers is None


def test_without_uptake_there_is_no_effect_among_takers_and_the_first_stage_says_so() -> None:
    rng = np.random.default_rng(8)
    frame = _trial(rng, effect=0.1, uptake=0.0).assign(took_up=False)
    found = lottery_effect(frame, "y")
    assert found.among_takers is None
    assert found.uptake.estimate == 0.0
    assert found.first_stage_f == 0.0  # no instrument at all, not an infinitely strong one


@pytest.mark.parametrize("shift", [0.0, 0.4])
def test_the_difference_between_two_kinds_of_help_is_found_only_when_there(shift: float) -> None:
    rng = np.random.default_rng(9)
    a = lottery_effect(_trial(rng, effect=0.3, uptake=1.0, n=20_000), "y")
    b = lottery_effect(_trial(rng, effect=0.3 - shift, uptake=1.0, n=20_000), "y")
    found = difference(b, a)
    assert found is not None
    assert found.excludes(0.0) == (shift > 0)
