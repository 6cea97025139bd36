"""Staggered difference-in-differences (impact/did.py) on small panels with known answers."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pandas as pd
import pytest
from differences import ATTgt
from panels import unit_panel

from riskstrat.impact.did import ALPHA, DidEstimate, _invert, _relative, staggered_did

# Eight units: two go live at period 3, two at period 5, one at period 6, three never.
SCHEDULE = (3, 3, 5, 5, 6, -1, -1, -1)
PERIODS = 10


def _exposure(n_people: int, n_periods: int) -> np.ndarray:
    """Deterministic exposures in (0, 1], with some people leaving part-way (rows dropped)."""
    grid = np.ones((n_people, n_periods))
    for i in range(n_people):
        if i % 3 == 1:
            grid[i, (i * 7) % n_periods] = 0.25 + 0.05 * (i % 5)
        if i % 4 == 2:
            leave = n_periods - 1 - i % 3
            grid[i, leave] = 0.5
            grid[i, leave + 1 :] = 0.0
    return grid


def _noise_free(effect, schedule=SCHEDULE, n_periods=PERIODS, n_people=6) -> pd.DataFrame:
    """Rates = cohort level + period level + effect(g, e) exactly, as y = rate * exposure."""
    exposure = _exposure(n_people, n_periods)
    rows = []
    for u, g in enumerate(schedule):
        level = 0.05 + 0.01 * (g % 4)  # differs by cohort, common within it
        for i in range(n_people):
            for t in range(n_periods):
                if exposure[i, t] == 0:
                    continue
                rate = level + 0.002 * t + 0.001 * (t % 3)
                if g >= 0 and t >= g:
                    rate += effect(g, t - g)
                rows.append((f"u{u}-p{i}", f"unit{u}", t, g, rate * exposure[i, t], exposure[i, t]))
    return pd.DataFrame(
        rows, columns=["person", "unit", "period", "first_treated", "y", "exposure"]
    )


def _poisson(
    seed: int,
    ratio: float = 1.0,
    schedule=SCHEDULE,
    n_periods: int = 16,
    n_people: int = 300,
    pre_trend: float = 0.0,
) -> pd.DataFrame:
    """Poisson counts around a rate of 0.3 per person-month; treated months x ``ratio``;
    ``pre_trend`` adds a linear drift to treated units' rates before their go-live."""
    rng = np.random.default_rng(seed)
    frames = []
    for u, g in enumerate(schedule):
        person = np.repeat(np.arange(n_people), n_periods)
        period = np.tile(np.arange(n_periods), n_people)
        frailty = rng.gamma(4.0, 0.25, n_people)[person]
        rate = 0.3 * (1 + 0.1 * u) * frailty * (1 + 0.01 * period)
        if g >= 0:
            rate = rate * np.where(period >= g, ratio, 1 + pre_trend * (period - g))
        frames.append(unit_panel(u, g, [f"u{u}-p{i}" for i in person], period, rng.poisson(rate)))
    return pd.concat(frames, ignore_index=True)


def _cohort_weights(panel: pd.DataFrame) -> pd.Series:
    """Treated person-months by (cohort, period): the aggregation weights."""
    treated = panel[panel["first_treated"] >= 0]
    return treated.groupby(["first_treated", "period"])["exposure"].sum()


def _dynamic(g: int, e: int) -> float:
    return -0.01 * (1 + e) if g == 3 else -0.03


@pytest.mark.parametrize("control", ["not_yet_treated", "never_treated"])
def test_noise_free_panel_gives_the_exact_effects(control):
    panel = _noise_free(_dynamic)
    result = staggered_did(panel, control=control, inference="wild_cluster", draws=199)
    weights = _cohort_weights(panel)
    post = weights[[t >= g for g, t in weights.index]]
    truth = {(g, t): _dynamic(g, t - g) for g, t in post.index}
    expected_att = sum(post[k] * truth[k] for k in truth) / post.sum()
    assert result.att == pytest.approx(expected_att, abs=1e-12)
    for cell in result.group_time:
        expected = (
            _dynamic(cell.cohort, cell.period - cell.cohort) if cell.period >= cell.cohort else 0
        )
        assert cell.att == pytest.approx(expected, abs=1e-12)
    events = {p.relative_period: p.estimate for p in result.event_study}
    for e in range(0, PERIODS - 3):
        cells = [(g, g + e) for g in (3, 5, 6) if g + e < PERIODS]
        expected = sum(post[c] * truth[c] for c in cells) / sum(post[c] for c in cells)
        assert events[e] == pytest.approx(expected, abs=1e-12)
    assert all(events[e] == pytest.approx(0, abs=1e-12) for e in events if e < 0)
    assert -1 not in events  # the reference period
    observed = (panel.y[panel.period >= panel.first_treated][panel.first_treated >= 0]).sum()
    observed_rate = observed / post.sum()
    assert result.counterfactual_rate == pytest.approx(observed_rate - expected_att, abs=1e-12)
    assert result.relative_effect == pytest.approx(expected_att / (observed_rate - expected_att))
    assert result.pre_trend.largest_deviation == pytest.approx(0, abs=1e-12)


def test_group_time_effects_match_the_differences_library():
    panel = _poisson(seed=3, ratio=0.8, n_periods=8, n_people=20)
    ours = staggered_did(panel, inference="wild_cluster", draws=199)
    data = panel.assign(first_treated=panel["first_treated"].astype(float).replace(-1, np.nan))
    reference = ATTgt(
        data.set_index(["person", "period"]), cohort_column="first_treated", base_period="universal"
    )
    reference.fit("y", control_group="not_yet_treated", progress_bar=False)
    theirs = reference.results().iloc[:, 0]
    theirs = {(int(g), int(t)): v for (g, _, t), v in theirs.items() if t != g - 1}
    assert {(c.cohort, c.period): pytest.approx(c.att) for c in ours.group_time} == theirs
    simple = float(reference.aggregate("simple").iloc[0, 0])
    assert ours.att == pytest.approx(simple)


def _twfe(panel: pd.DataFrame) -> float:
    """Two-way fixed effects (unit and period dummies) on unit-period rates, exposure-weighted."""
    cells = panel.groupby(["unit", "period"], as_index=False).agg(
        y=("y", "sum"), exposure=("exposure", "sum"), first_treated=("first_treated", "first")
    )
    rate = cells["y"] / cells["exposure"]
    treated = ((cells["first_treated"] >= 0) & (cells["period"] >= cells["first_treated"])) * 1.0
    design = pd.concat(
        [
            treated.rename("d"),
            pd.get_dummies(cells["unit"], dtype=float),
            pd.get_dummies(cells["period"], dtype=float, drop_first=True),
        ],
        axis=1,
    ).to_numpy()
    root = np.sqrt(cells["exposure"].to_numpy())
    coefficients = np.linalg.lstsq(design * root[:, None], rate * root, rcond=None)[0]
    return float(coefficients[0])


def test_heterogeneous_cohort_effects_are_recovered_where_two_way_fixed_effects_fail():
    # The early cohort's effect grows with time since go-live; the late one has none.
    schedule = (2, 2, 7, 7, 7, -1, -1)

    def growing(g: int, e: int) -> float:
        return -0.02 * (1 + e) if g == 2 else 0.0

    panel = _noise_free(growing, schedule=schedule, n_periods=12)
    result = staggered_did(panel, control="not_yet_treated", inference="wild_cluster", draws=199)
    weights = _cohort_weights(panel)
    post = weights[[t >= g for g, t in weights.index]]
    truth = sum(post[(g, t)] * growing(g, t - g) for g, t in post.index) / post.sum()
    assert result.att == pytest.approx(truth, abs=1e-12)
    twfe = _twfe(panel)
    assert abs(twfe - truth) > 0.25 * abs(truth)


@pytest.mark.parametrize("inference", ["randomisation", "person_cluster"])
def test_a_linear_pre_trend_in_treated_units_is_rejected(inference):
    schedule = (8, 8, 10, 10, 12, -1, -1, -1)
    panel = _poisson(seed=5, pre_trend=0.05, schedule=schedule, n_people=2000)
    result = staggered_did(panel, inference=inference)
    assert result.pre_trend.p_value < 0.05
    assert result.verdict.startswith("pre-trends rejected")
    assert result.pre_trend.largest_deviation_period is not None
    assert result.pre_trend.largest_deviation_period <= -2


@pytest.mark.parametrize("inference", ["randomisation", "person_cluster"])
def test_a_null_effect_is_covered_and_answered(inference):
    result = staggered_did(_poisson(seed=11), inference=inference, seed=2)
    assert result.ci_low < 0 < result.ci_high
    assert result.relative_ci_low < 0 < result.relative_ci_high
    assert result.p_value > 0.05
    assert result.verdict == "answered"
    assert result.inference == inference


def test_randomisation_is_exact_over_every_distinct_schedule():
    result = staggered_did(_poisson(seed=11, ratio=0.7), inference="randomisation")
    # 8! / (2! 2! 1! 3!) distinct schedules, the observed one included.
    assert (result.exact, result.draws) == (True, 1680 - 1)
    assert result.p_value < 0.05
    assert result.ci_low < result.att < result.ci_high < 0
    assert result.relative_ci_low < -0.3 + 0.1 < result.relative_ci_high < 0


def test_one_treated_unit_cannot_answer_at_cluster_level():
    panel = _poisson(seed=1, ratio=0.8, schedule=(6, -1, -1, -1, -1, -1, -1, -1))
    result = staggered_did(panel, inference="randomisation")
    assert "cannot answer at cluster level" in result.verdict
    assert result.n_treated_units == 1


def test_too_few_units_and_missing_never_treated_are_reported():
    small = _poisson(seed=1, schedule=(3, 3, 5, -1, -1))
    assert staggered_did(small, inference="person_cluster").verdict.startswith("only 5 units")
    no_never = _poisson(seed=1, schedule=(3, 3, 5, 5, 6, 6, 8, 8))
    result = staggered_did(no_never, control="never_treated", inference="person_cluster")
    assert result.verdict == "no never-treated unit to compare with"
    assert math.isnan(result.att)


def test_a_cohort_without_comparison_units_is_reported():
    panel = _poisson(seed=1, schedule=(3, 3, 5, 5, 6, 6, 8, 8))
    result = staggered_did(panel, control="not_yet_treated", inference="person_cluster")
    assert (
        result.verdict
        == "no not-yet-treated comparison units after the cohort going live in period 8"
    )


def test_same_seed_same_answer_and_the_input_is_untouched():
    panel = _poisson(seed=4, ratio=0.9)
    before = panel.copy()
    first = staggered_did(panel, inference="wild_cluster", seed=7, draws=499)
    again = staggered_did(panel, inference="wild_cluster", seed=7, draws=499)
    assert isinstance(first, DidEstimate)
    assert first == again
    pd.testing.assert_frame_equal(panel, before)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p: p.drop(columns="exposure"), r"missing column\(s\) \['exposure'\]"),
        (lambda p: p.assign(exposure=p["exposure"].where(p.index != 5, 0.0)), "'exposure'"),
        (lambda p: p.assign(exposure=p["exposure"].where(p.index != 5, 1.5)), "'exposure'"),
        (lambda p: p.assign(y=p["y"].where(p.index != 5, np.nan)), "'y' must be finite"),
        (
            lambda p: p.assign(first_treated=p["first_treated"].where(p.unit != "unit2", 40)),
            "unit 'unit2': first_treated 40 is not a period of the panel",
        ),
        (
            lambda p: p.assign(
                first_treated=p["first_treated"].where(~((p.unit == "unit3") & (p.period > 8)), 6)
            ),
            "unit 'unit3' has more than one go-live date",
        ),
        (lambda p: pd.concat([p, p.iloc[[0]]]), "more than one row per person and period"),
        (lambda p: p[p.period != 4], "consecutive periods"),
    ],
)
def test_bad_input_is_refused_naming_the_column_or_unit(change, message):
    panel = _poisson(seed=1, n_people=5)
    with pytest.raises(ValueError, match=message):
        staggered_did(change(panel))


def test_bad_options_are_refused():
    panel = _poisson(seed=1, n_people=5)
    with pytest.raises(ValueError, match="control"):
        staggered_did(panel, control="everyone")
    with pytest.raises(ValueError, match="inference"):
        staggered_did(panel, inference="bootstrap")


def test_the_wild_cluster_bootstrap_refuses_a_cohort_of_one_unit():
    result = staggered_did(_poisson(seed=11), inference="wild_cluster", draws=199)
    assert result.verdict.startswith("the cohort going live in period 6 has a single unit")


def test_a_cohort_live_from_the_first_period_has_no_pre_period():
    panel = _poisson(seed=1, schedule=(0, 0, 5, 5, 6, -1, -1, -1))
    result = staggered_did(panel, inference="person_cluster")
    assert result.verdict == "the cohort going live in period 0 has no pre-period"
    assert {c.cohort for c in result.group_time} == {5, 6}


def test_unit_and_person_labels_need_not_be_strings():
    panel = _poisson(seed=2, ratio=0.8, n_people=40)
    codes = panel.assign(
        unit=panel["unit"].str[4:].astype(int), person=pd.factorize(panel["person"])[0]
    )
    for inference in ("person_cluster", "randomisation"):
        named = staggered_did(panel, inference=inference)
        coded = staggered_did(codes, inference=inference)
        assert (coded.att, coded.ci_low, coded.ci_high) == (named.att, named.ci_low, named.ci_high)


@pytest.mark.parametrize("seed", range(4))
def test_the_randomisation_interval_is_the_accepted_set_of_a_fine_grid(seed):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=60), rng.normal(0.3, 0.3, 60)
    b[0], b[5:8], a[6] = 1.0, 1.0, a[0]  # ties with the observed schedule, one identical
    grid = np.linspace(-30, 30, 60_001)[:, None]
    accepted = np.mean(np.abs(a - grid * b) >= np.abs(a[0] - grid * b[0]), axis=1) > ALPHA
    low, high = _invert(a, b)
    inside = grid[accepted, 0]
    assert low == pytest.approx(inside.min(), abs=2e-3) if low > -30 else inside.min() == -30
    assert high == pytest.approx(inside.max(), abs=2e-3) if high < 30 else inside.max() == 30


def test_a_noisy_first_cluster_is_covered_by_the_studentised_randomisation_interval():
    """Randomisation inference re-assigns the go-live dates; when the first cluster is far
    noisier than the rest (small, with a few heavy users) and fewer than 5% of re-assigned
    schedules put a cluster as noisy first, the unstudentised statistic's reference
    distribution is too narrow for the schedule that happened (MacKinnon and Webb 2020):
    it covered no effect 11 times in 20 here. Each schedule's statistic is divided by its
    own person-clustered standard error."""
    schedule = (2, 9, *([-1] * 19))
    covered = 0
    for seed in range(16):
        rng = np.random.default_rng(seed)
        frames = []
        for u, g in enumerate(schedule):
            n, rate, shape = (60, 1.2, 0.5) if u == 0 else (300, 0.3, 2.0)
            person, period = np.repeat(np.arange(n), 10), np.tile(np.arange(10), n)
            frailty = rng.gamma(shape, 1 / shape, n)[person]
            people = [f"u{u}-p{i}" for i in person]
            frames.append(unit_panel(u, g, people, period, rng.poisson(rate * frailty)))
        result = staggered_did(pd.concat(frames, ignore_index=True), inference="randomisation")
        assert result.exact
        covered += result.ci_low <= 0 <= result.ci_high
    assert covered >= 14


def test_an_outcome_no_one_has_is_answered_without_an_error():
    """No event anywhere (a rare outcome thinned by the plasmode check): no schedule's effect
    has a spread to studentise by, so the randomisation falls back to the raw effect."""
    panel = _poisson(seed=11).assign(y=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # and without a warning for the user's console
        result = staggered_did(panel, inference="randomisation", seed=2)
    assert result.att == 0 and result.p_value == 1


def test_a_relative_bound_at_the_end_of_the_scale_is_a_number_not_nan() -> None:
    # s = 1 - 1/theta: s = -infinity is theta = 0, every event gone (a -100% change), which a
    # randomisation interval reaches on small panels ("95% CI nan% higher" in the report).
    assert _relative(-math.inf) == -1.0
    assert _relative(1.0) == math.inf
    assert _relative(0.5) == 1.0
