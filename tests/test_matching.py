"""The matched comparison recovers known rate ratios from a confounded simulated population,
balances it, reports whom it drops, and refuses bad input naming the column."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import statsmodels.api as sm

from riskstrat.impact.matching import (
    PROGNOSTIC,
    PROPENSITY,
    SMD_TARGET,
    MatchedEstimate,
    expected_untreated,
    matched_comparison,
)

FEATURES = ["age", "sex", "deprivation", "frailty", "prior_admissions"]
PRIMARY = "emergency_admissions"
OUTCOMES = [PRIMARY, "package_cost", "deaths"]


def population(
    seed: int, n: int = 2000, ratio: float = 0.8, n_treated: int | None = None
) -> pd.DataFrame:
    """People whose chance of being treated rises with age, frailty, deprivation and prior
    admissions, all of which also raise their admission rate (confounding by indication),
    with a hidden frailty that drives both the prior and the follow-up admissions. Treatment
    multiplies the admission rate and the package cost by ``ratio``; deaths are untouched."""
    rng = np.random.default_rng(seed)
    age = rng.uniform(65, 95, n)
    sex = rng.integers(0, 2, n)
    deprivation = rng.integers(1, 11, n).astype(float)
    frailty = rng.binomial(1, 1 / (1 + np.exp(-(age - 80) / 5)))
    hidden = rng.gamma(2.0, 0.5, n)
    rate = np.exp(-2.3 + 0.04 * (age - 80) + 0.6 * frailty + 0.05 * (deprivation - 5)) * hidden
    prior = rng.poisson(rate)
    score = -1.0 + 0.05 * (age - 80) + 0.8 * frailty + 0.5 * np.minimum(prior, 3)
    score += 0.08 * (deprivation - 5)
    treated = rng.random(n) < 1 / (1 + np.exp(-score))
    if n_treated is not None:
        treated[np.flatnonzero(treated)[n_treated:]] = False
    exposure = np.where(rng.random(n) < 0.1, rng.uniform(0.1, 1, n), 1.0)
    effect = np.where(treated, ratio, 1.0)
    cost_rate = 300 * rate * np.exp(0.3 * frailty)
    return pd.DataFrame(
        {
            "person": [f"p{i}" for i in range(n)],
            "unit": np.where(treated, "pilot", rng.choice(["north", "south"], n)),
            "treated": treated,
            "age": age,
            "sex": sex,
            "deprivation": deprivation,
            "frailty": frailty,
            "prior_admissions": prior,
            PRIMARY: rng.poisson(rate * exposure * effect),
            f"pre_{PRIMARY}": prior,
            "package_cost": rng.gamma(2.0, cost_rate * exposure * effect / 2.0),
            "pre_package_cost": rng.gamma(2.0, cost_rate / 2.0),
            "deaths": rng.binomial(1, 1 - np.exp(-0.05 * exposure * np.exp(0.05 * (age - 80)))),
            "pre_deaths": np.zeros(n),
            "exposure": exposure,
        }
    )


def compare(people: pd.DataFrame, **kwargs: object) -> MatchedEstimate:
    arguments = {"features": FEATURES, "outcomes": OUTCOMES, "primary": PRIMARY, "seed": 7}
    return matched_comparison(people, **{**arguments, **kwargs})


@pytest.fixture(scope="module")
def confounded() -> tuple[pd.DataFrame, MatchedEstimate]:
    people = population(seed=11, n=4000)
    return people, compare(people, k=2)


def test_matching_removes_the_confounding_that_biases_the_naive_ratio(confounded):
    people, result = confounded
    admissions = result.outcome(PRIMARY)
    assert result.verdict == "answered"
    assert admissions.naive_rate_ratio > admissions.ci_high  # the sicker are treated
    assert admissions.ci_low <= 0.8 <= admissions.ci_high
    assert admissions.ci_low < admissions.rate_ratio < admissions.ci_high
    assert admissions.n_treated == result.counts.matched
    assert admissions.n_controls == result.counts.controls_used
    # The absolute effect is the treated rate against its counterfactual, in the same
    # direction as the ratio, inside its own interval.
    assert admissions.treated_rate == pytest.approx(
        people.loc[people["treated"], PRIMARY].sum()
        / people.loc[people["treated"], "exposure"].sum(),
        rel=0.05,
    )
    assert admissions.rate_difference == pytest.approx(
        admissions.treated_rate * (1 - 1 / admissions.rate_ratio)
    )
    assert admissions.difference_ci_low < admissions.rate_difference
    assert admissions.rate_difference < admissions.difference_ci_high
    assert 0 < admissions.mde_ratio < 1
    assert type(admissions.naive_rate_ratio) is float


def test_matched_people_are_balanced_on_every_feature_and_score(confounded):
    _, result = confounded
    balance = result.balance.set_index("feature")
    assert list(balance.index) == [*FEATURES, PROPENSITY, PROGNOSTIC]
    assert (balance.loc[["age", "frailty", PROPENSITY], "smd_before"] > 0.3).all()
    assert (result.balance["smd_after"].abs() < SMD_TARGET).all()
    assert result.balance["balanced"].all()
    assert result.balance["variance_ratio_after"].between(0.8, 1.25).all()


def test_a_continuous_outcome_and_one_without_a_pre_period_are_estimated_too(confounded):
    _, result = confounded
    cost = result.outcome("package_cost")
    assert cost.ci_low <= 0.8 <= cost.ci_high
    deaths = result.outcome("deaths")  # no one died before baseline: no pre adjustment
    assert deaths.verdict == "answered"
    assert deaths.ci_low <= 1.0 <= deaths.ci_high


def test_the_interval_covers_the_true_ratio_over_seeds_and_the_null_too():
    covered, logs = 0, []
    for seed in range(20):
        effect = compare(population(seed), outcomes=[PRIMARY]).outcome(PRIMARY)
        covered += effect.ci_low <= 0.8 <= effect.ci_high
        logs.append(math.log(effect.rate_ratio))
    assert covered >= 17
    assert abs(np.mean(logs) - math.log(0.8)) < 0.1
    null = compare(population(99, ratio=1.0, n=4000), outcomes=[PRIMARY]).outcome(PRIMARY)
    assert null.ci_low <= 1.0 <= null.ci_high
    assert null.p_value > 0.05
    assert null.naive_rate_ratio > null.ci_high


def test_the_clustered_standard_error_is_the_two_way_sandwich(confounded):
    """The matched set and the person, each a cluster: checked by hand, because statsmodels
    warns (and the estimator silences) that robust covariances with weights are not fully
    supported."""
    people, result = confounded
    matches = result.matches
    first = matches.drop_duplicates("set")
    rows = np.concatenate([first["treated_row"], matches["control_row"]])
    sets = np.concatenate([first["set"], matches["set"]])
    weights = np.concatenate([np.ones(len(first)), matches["weight"]])
    x = np.column_stack([np.ones(rows.size), np.r_[np.ones(len(first)), np.zeros(len(matches))]])
    y = people[PRIMARY].to_numpy(dtype=float)[rows]
    expected = expected_untreated(people, FEATURES, PRIMARY, seed=7)[rows]
    fit = sm.GLM(
        y, x, family=sm.families.Poisson(), offset=np.log(expected), var_weights=weights
    ).fit()
    scores = x * (weights * (y - fit.mu))[:, None]
    bread = np.linalg.inv((x * (weights * fit.mu)[:, None]).T @ x)

    def meat(groups: np.ndarray) -> np.ndarray:
        _, code = np.unique(groups, return_inverse=True)
        sums = np.zeros((code.max() + 1, x.shape[1]))
        np.add.at(sums, code, scores)
        g, n = code.max() + 1, rows.size
        return sums.T @ sums * g / (g - 1) * (n - 1) / (n - x.shape[1])

    both = meat(sets) + meat(rows) - meat(sets * rows.size + rows)
    assert result.outcome(PRIMARY).log_se == pytest.approx(
        math.sqrt((bread @ both @ bread)[1, 1]), rel=1e-9
    )
    assert result.outcome(PRIMARY).rate_ratio == pytest.approx(math.exp(fit.params[1]))


def test_no_one_s_expected_count_is_fitted_to_their_own_outcome():
    """Cross-fitting: a comparison person's expectation comes from a model fitted without
    them, as a treated person's does, so their own events cannot pull it towards them (fitted
    in-sample, a rare outcome's expectations followed the controls' own outcomes and made the
    treated look better than their controls with no effect at all)."""
    people = population(seed=5, n=400)
    before = expected_untreated(people, FEATURES, "deaths", seed=3)
    control = int(np.flatnonzero(~people["treated"].to_numpy())[0])
    changed = people.assign(deaths=people["deaths"].where(people.index != control, 4))
    after = expected_untreated(changed, FEATURES, "deaths", seed=3)
    assert after[control] == before[control]
    moved = np.flatnonzero(after != before)
    assert moved.size and control not in moved  # the others' models saw the change
    assert (after > 0).all()


def test_without_an_event_outside_some_fold_the_outcome_model_is_fitted_once():
    people = population(seed=5, n=300).assign(deaths=0)
    first = int(np.flatnonzero(~people["treated"].to_numpy())[0])
    people.loc[first, "deaths"] = 1  # one event: the models without its fold would see none
    expected = expected_untreated(people, FEATURES, "deaths")
    assert np.isfinite(expected).all() and (expected > 0).all()
    np.testing.assert_array_equal(expected, expected_untreated(people, FEATURES, "deaths", folds=1))


def test_each_treated_person_gets_the_nearest_comparison_people_within_the_caliper():
    people = population(seed=3, n=1000)
    result = compare(people, k=1)
    scores = result.scores.set_index("person")
    points = scores[[PROPENSITY, PROGNOSTIC]].to_numpy()
    treated = scores["treated"].to_numpy()
    cov = (np.cov(points[treated].T) + np.cov(points[~treated].T)) / 2
    inverse = np.linalg.inv(cov)
    logits = scores[PROPENSITY]
    width = result.caliper * math.sqrt((logits[treated].var() + logits[~treated].var()) / 2)
    controls = scores.index[~treated]
    for pair in result.matches.itertuples():
        gap = (
            points[~treated] - scores.loc[pair.treated_person, [PROPENSITY, PROGNOSTIC]].to_numpy()
        )
        distance = pd.Series(np.einsum("ij,jk,ik->i", gap, inverse, gap), index=controls)
        within = distance[np.abs(gap[:, 0]) <= width]
        assert pair.control_person in within.index
        assert distance[pair.control_person] == pytest.approx(within.min())


def test_treated_people_without_a_comparison_within_the_caliper_are_dropped_and_listed():
    people = population(seed=5)
    outliers = people[people["treated"]].head(4).copy()
    outliers["person"] = [f"outlier{i}" for i in range(4)]
    outliers["age"] = 140.0
    people = pd.concat([people, outliers], ignore_index=True)
    result = compare(people)
    assert set(result.dropped["person"]) >= set(outliers["person"])
    assert result.counts.dropped_by_caliper == len(result.dropped)
    assert result.counts.matched + result.counts.dropped_by_caliper == result.counts.treated
    assert not set(result.matches["treated_person"]) & set(result.dropped["person"])
    assert result.outcome(PRIMARY).n_treated == result.counts.matched


def test_poor_overlap_accepted_by_a_wide_caliper_fails_balance_naming_the_feature():
    rng = np.random.default_rng(0)
    people = population(seed=8)
    people["marker"] = rng.normal(np.where(people["treated"], 2.5, 0.0), 1.0)
    wide = compare(people, features=[*FEATURES, "marker"], caliper=100.0)
    assert wide.verdict.startswith("balance not achieved")
    assert "marker" in wide.verdict
    assert not wide.balance.set_index("feature").loc["marker", "balanced"]
    assert wide.outcome(PRIMARY).verdict == wide.verdict
    narrow = compare(people, features=[*FEATURES, "marker"])
    assert narrow.counts.dropped_by_caliper > wide.counts.dropped_by_caliper


def test_ties_are_broken_by_the_seed_and_repeat_exactly():
    people = population(seed=4, n=600)
    twins = people[~people["treated"]].copy()
    twins["person"] = twins["person"] + "twin"
    people = pd.concat([people, twins], ignore_index=True)
    first, again = compare(people, seed=1), compare(people, seed=1)
    pd.testing.assert_frame_equal(first.matches, again.matches)
    other = compare(people, seed=2)
    assert (first.matches["control_person"] != other.matches["control_person"]).any()
    assert (
        first.matches["control_person"].str.removesuffix("twin").tolist()
        == other.matches["control_person"].str.removesuffix("twin").tolist()
    )


def test_verdicts_when_the_data_cannot_answer():
    few = compare(population(seed=2, n_treated=30))
    assert few.verdict == "too few treated people: 30 matched, at least 50 needed"
    assert few.outcomes == ()
    assert few.counts.matched == 30
    assert few.balance["smd_after"].notna().all()
    one = compare(population(seed=2, n_treated=1))
    assert one.verdict == "too few treated people: 1 matched, at least 50 needed"
    unmatched = compare(population(seed=2), caliper=1e-12)
    assert unmatched.counts.matched == 0
    assert unmatched.counts.dropped_by_caliper == unmatched.counts.treated
    assert len(unmatched.dropped) == unmatched.counts.treated
    assert unmatched.verdict.startswith("too few treated people: 0 matched")
    assert unmatched.outcomes == ()
    only_treated = population(seed=2)
    only_treated = only_treated[only_treated["treated"]]
    none = compare(only_treated)
    assert none.verdict == "no comparison people"
    assert none.outcomes == ()
    assert none.counts.treated == len(only_treated)


def test_an_outcome_nobody_treated_had_is_said_plainly():
    people = population(seed=6)
    people.loc[people["treated"], "deaths"] = 0
    deaths = compare(people).outcome("deaths")
    assert deaths.verdict == "no deaths among the treated people"
    assert math.isnan(deaths.rate_ratio)


def test_the_input_frame_is_not_changed():
    people = population(seed=9, n=800)
    before = people.copy()
    compare(people)
    pd.testing.assert_frame_equal(people, before)


def _without(column: str) -> pd.DataFrame:
    return population(seed=1, n=300).drop(columns=column)


def _with(column: str, value: object, row: int = 5) -> pd.DataFrame:
    people = population(seed=1, n=300)
    people[column] = people[column].astype(float) if isinstance(value, float) else people[column]
    people.loc[row, column] = value
    return people


@pytest.mark.parametrize(
    ("people", "column"),
    [
        (_without("frailty"), "'frailty'"),
        (_without("pre_package_cost"), "'pre_package_cost'"),
        (_without("exposure"), "'exposure'"),
        (_with("exposure", 0.0), "'exposure'"),
        (_with("exposure", -1.0), "'exposure'"),
        (_with("deprivation", math.nan), "'deprivation'"),
        (_with("age", math.inf), "'age'"),
        (_with("package_cost", -5.0), "'package_cost'"),
        (_with("person", "p0"), "'person'"),
        (population(seed=1, n=300).assign(treated=False), "'treated'"),
        (population(seed=1, n=300).assign(treated=lambda d: d["treated"].astype(int)), "'treated'"),
        (population(seed=1, n=300).assign(age=lambda d: d["age"].astype(str)), "'age'"),
    ],
)
def test_bad_input_is_refused_naming_the_column(people, column):
    with pytest.raises(ValueError, match=column):
        compare(people)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"primary": "bed_days"}, "primary outcome 'bed_days'"),
        ({"k": 0}, "k must be a positive integer"),
        ({"caliper": -0.1}, "caliper must be a positive number"),
        ({"features": []}, "no baseline features"),
        ({"features": ["age", "age"]}, "feature 'age' named twice"),
        ({"features": ["age", "exposure"]}, "'exposure' is a reserved column"),
    ],
)
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        compare(population(seed=1, n=300), **kwargs)


def _prognosis_apart(seed: int, n: int = 2000) -> pd.DataFrame:
    """A null (no effect) in which what predicts the follow-up (``now``, say frailty coded at
    the baseline) is not what predicted the year before it (``past``): the prognostic score,
    fitted on the pre-period, matches on the wrong thing, and the treated people, higher on
    both, are left with more follow-up events than their matched controls."""
    rng = np.random.default_rng(seed)
    now, past = rng.normal(0, 1, (2, n))
    treated = rng.random(n) < 1 / (1 + np.exp(2.5 - 1.5 * now - past))
    return pd.DataFrame(
        {
            "person": np.arange(n),
            "unit": np.where(treated, "pilot", "rest"),
            "treated": treated,
            "now": now,
            "past": past,
            PRIMARY: rng.poisson(np.exp(1.5 + now)),
            f"pre_{PRIMARY}": rng.poisson(np.exp(1.5 + past)),
            "exposure": np.ones(n),
        }
    )


def test_no_effect_is_found_where_the_pre_period_predicts_the_follow_up_poorly():
    """The outcome model (fitted on every comparison person's follow-up) removes what
    matching on the two scores leaves; adjusting for the pre-period count alone left a
    clear positive bias here."""
    logs = []
    for seed in range(8):
        people = _prognosis_apart(seed)
        result = matched_comparison(
            people, features=["now", "past"], outcomes=[PRIMARY], primary=PRIMARY, k=3
        )
        assert result.verdict == "answered"
        logs.append(math.log(result.outcome(PRIMARY).rate_ratio))
    assert abs(np.mean(logs)) < 0.02
    assert abs(np.mean(logs)) < 2.5 * np.std(logs, ddof=1) / math.sqrt(len(logs))


def test_an_outcome_model_with_no_more_events_than_coefficients_is_not_fitted():
    # Five comparison deaths against seven coefficients: the near-unpenalised Poisson fit
    # separates them and its expected totals run to exp(+-hundreds) (a singular matched fit
    # on a small locality-level borough), so no number is given.
    people = population(seed=6)
    comparison = np.flatnonzero(~people["treated"].to_numpy())
    people.loc[comparison[5:], "deaths"] = 0
    people.loc[comparison[:5], "deaths"] = 1
    deaths = compare(people).outcome("deaths")
    assert deaths.verdict == (
        "too few comparison people with deaths (5) to fit the outcome model's 7 coefficients"
    )
    assert math.isnan(deaths.rate_ratio)
