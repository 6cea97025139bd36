"""The matched comparison, as the Improvement Analytics Unit (IAU) evaluates new care models.

Treated people are matched at baseline to similar people in not-yet-treated units, balance is
checked by standardised mean differences, and each outcome's effect is a rate ratio from a
count model on the matched sample.

Input: one row per person (``person``, ``unit``, ``treated``, the numeric baseline features
named by ``features``, ``<o>`` the follow-up count or total and ``pre_<o>`` the same over the
year before baseline for each outcome ``o``, and ``exposure``: follow-up person-years > 0).

The steps, and why:

1. Two scores per person. The propensity score (a logistic regression of ``treated`` on the
   features) balances the features; the prognostic score (a Poisson regression of the primary
   outcome's pre-period count on the features, fitted on the comparison people only, as the
   IAU does, so that no treated person's outcome shapes it) carries what predicts the outcome.
   Matching on both protects against confounding through either route.
2. Nearest-neighbour matching with replacement: each treated person gets the ``k`` comparison
   people nearest by Mahalanobis distance on (propensity logit, prognostic log-rate), chosen
   among those within the caliper on the propensity logit (``caliper`` pooled SDs, 0.2 after
   Austin 2011). Mahalanobis distance on the two continuous scores weighs both jointly
   without coarsening the prognostic score into arbitrary strata; the caliper keeps matches
   inside the region where treated and comparison people overlap. Treated people with no
   comparison person within the caliper are dropped and listed, never silently. Equal
   distances are broken by a random order of the comparison people drawn from ``seed``.
3. Balance: the standardised mean difference of every feature and both scores before and
   after matching (controls weighted by how often, and in how large a set, they are used),
   with the variance ratio; the target is |SMD| < 0.1.
4. Effects: per outcome, a rate ratio that is doubly robust. An outcome model, a Poisson
   regression of the follow-up total on the matching features and ``log(1 + pre-period
   total)`` with a ``log(exposure)`` offset, is fitted on the comparison people (not only
   the matched, and never on a treated person's outcome) and gives each person an expected
   total without the programme. It is cross-fitted (``expected_untreated``): nobody's
   expectation comes from a model fitted to their own outcome, so the treated people's and
   their controls' expectations err alike. The rate ratio is the treated people's observed over
   expected total divided by the same ratio among their matched controls (weighted): a
   Poisson quasi-likelihood GLM (statsmodels) on the matched sample with the expected total
   as offset. Why both: matching alone leaves the matched sets' residual differences in
   the features (inexact matches on two scores, means balanced but not every feature's
   distribution), which bias the ratio when the outcome depends on them; on the synthetic
   borough the pilot's people had more events than their matched controls with no effect
   at all. The outcome model removes those differences (Abadie and Imbens' bias
   correction for matching, on the ratio scale); if it is wrong, the controls' own observed
   over expected ratio corrects it as far as matching balanced the features. Poisson QMLE
   needs only the mean to be right, so it serves counts and non-negative totals (bed
   days, package cost in GBP) alike: one model for all outcomes.
   Standard errors are clustered two ways, on the matched set and on the person: a treated
   person and their controls were chosen for being alike, so their outcomes are correlated;
   and with replacement one control serves several sets, so those rows are the same person
   (clustering on the set alone would count them as independent; Austin and Cafri 2020).
   The outcome model's own uncertainty is not added: the ratio moves with its coefficients
   only through what remains unbalanced between the treated people and their matched
   controls, which matching keeps small, and it is fitted on the comparison people.
   This is person-level inference: it assumes no shocks shared by everyone in a unit (a
   new ward, a closed care home) that differ between treated and comparison units; the
   difference-in-differences design clusters at the unit for that reason.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass

import numpy as np
import pandas as pd
import statsmodels.api as sm
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from statsmodels.tools.sm_exceptions import SpecificationWarning
from threadpoolctl import threadpool_limits

from riskstrat.impact.missing import unestimated
from riskstrat.impact.power import minimum_detectable_effect

CALIPER = 0.2
"""Default caliper, in pooled standard deviations of the propensity logit."""
SMD_TARGET = 0.1
"""Balance is achieved when every |standardised mean difference| after matching is below it."""
MIN_TREATED = 50
"""Fewer matched treated people than this cannot answer the question."""
FOLDS = 5
"""Cross-fitting folds of the outcome model (``expected_untreated``)."""
ANSWERED = "answered"
PROPENSITY = "propensity_logit"
PROGNOSTIC = "prognostic_score"
_RESERVED = ("person", "unit", "treated", "exposure", PROPENSITY, PROGNOSTIC)


@dataclass(frozen=True, slots=True)
class OutcomeEffect:
    """One outcome's effect among the matched treated people.

    Rates are per person-year. ``control_rate`` is the matched comparison people's observed
    rate; ``counterfactual_rate`` is the treated people's rate divided by the adjusted rate
    ratio, and ``rate_difference`` (treated minus counterfactual) its absolute effect, whose
    interval treats the treated rate as fixed. ``mde_ratio`` is the smallest reduction, as a
    rate ratio below 1, that this design detects with 80% power at the 5% level.
    ``naive_rate_ratio`` compares all treated with all comparison people, unmatched and
    unadjusted, to show what matching changed. ``verdict`` is the design's verdict when the
    balance failed, else this outcome's own.
    """

    outcome: str
    rate_ratio: float
    ci_low: float
    ci_high: float
    p_value: float
    log_se: float
    treated_rate: float
    control_rate: float
    counterfactual_rate: float
    rate_difference: float
    difference_ci_low: float
    difference_ci_high: float
    naive_rate_ratio: float
    n_treated: int
    n_controls: int
    mde_ratio: float
    verdict: str


@dataclass(frozen=True, slots=True)
class MatchCounts:
    """Who was matched: treated people in and matched, dropped by the caliper, comparison
    people available and used (distinct), and the units each side comes from."""

    treated: int
    matched: int
    dropped_by_caliper: int
    comparison: int
    controls_used: int
    treated_units: int
    control_units: int


@dataclass(frozen=True, eq=False)
class MatchedEstimate:
    """The matched comparison's result.

    ``balance``: one row per feature and score, columns ``feature``, ``smd_before``,
    ``smd_after``, ``variance_ratio_before``, ``variance_ratio_after``, ``balanced``.
    ``matches``: one row per (matched set, control): ``set``, ``treated_person``,
    ``control_person``, their row positions in the input (``treated_row``, ``control_row``)
    and ``weight`` (1/number of controls in the set). ``dropped``: the treated people with no
    comparison person within the caliper (``person``, ``unit``, ``propensity_logit``).
    ``scores``: each person's two scores. ``outcomes`` is empty when there are too few
    matched treated people or no comparison people: no number rather than a misleading one.
    """

    balance: pd.DataFrame
    outcomes: tuple[OutcomeEffect, ...]
    counts: MatchCounts
    matches: pd.DataFrame
    dropped: pd.DataFrame
    scores: pd.DataFrame
    k: int
    caliper: float
    verdict: str

    def outcome(self, name: str) -> OutcomeEffect:
        """The effect on outcome ``name``."""
        for effect in self.outcomes:
            if effect.outcome == name:
                return effect
        raise KeyError(f"no outcome {name!r} in this matched comparison")


def matched_comparison(
    people: pd.DataFrame,
    *,
    features: list[str],
    outcomes: list[str],
    primary: str,
    k: int = 1,
    caliper: float = CALIPER,
    seed: int = 0,
) -> MatchedEstimate:
    """Match each treated person to ``k`` comparison people and estimate each outcome's rate
    ratio (see the module's docstring). ``primary`` names the outcome whose pre-period count
    the prognostic score predicts. Bad input raises ValueError naming the column.

    The fits are small, so they run on one thread: BLAS and OpenMP threads only contend
    with each other, and with whatever else shares the cores."""
    _check_arguments(features, outcomes, primary, k, caliper)
    _check_people(people, features, outcomes)
    with threadpool_limits(limits=1):
        return _compare(people, features, outcomes, primary, k, caliper, seed)


def _compare(
    people: pd.DataFrame,
    features: list[str],
    outcomes: list[str],
    primary: str,
    k: int,
    caliper: float,
    seed: int,
) -> MatchedEstimate:
    treated = people["treated"].to_numpy(dtype=bool)
    x = people[features].to_numpy(dtype=float)
    if treated.all():
        return _without_comparison(people, k, caliper)

    propensity = _propensity_logit(x, treated)
    prognostic = _prognostic_score(x, treated, people[f"pre_{primary}"].to_numpy(dtype=float))
    scores = pd.DataFrame(
        {
            "person": people["person"].to_numpy(),
            "treated": treated,
            PROPENSITY: propensity,
            PROGNOSTIC: prognostic,
        }
    )
    width = caliper * _pooled_sd(propensity, treated)
    controls = _match(
        np.column_stack([propensity, prognostic]), treated, k=k, width=width, seed=seed
    )
    treated_idx = np.flatnonzero(treated)
    matched = np.zeros(len(people), dtype=bool)
    matched[treated_idx[[c.size > 0 for c in controls]]] = True
    dropped_idx = treated_idx[[c.size == 0 for c in controls]]
    matches = _matches_frame(people, treated_idx, controls)
    weight = _control_weights(len(people), matches)

    features_and_scores = pd.concat(
        [people[features].astype(float).reset_index(drop=True), scores[[PROPENSITY, PROGNOSTIC]]],
        axis=1,
    )
    balance = _balance(features_and_scores, treated, matched, weight)
    counts = MatchCounts(
        treated=int(treated.sum()),
        matched=int(matched.sum()),
        dropped_by_caliper=int(dropped_idx.size),
        comparison=int((~treated).sum()),
        controls_used=int((weight > 0).sum()),
        treated_units=int(people.loc[treated, "unit"].nunique()),
        control_units=int(people.loc[weight > 0, "unit"].nunique()),
    )
    verdict = _verdict(counts, balance)
    # Too few matched people give no number rather than a misleading one; a failed balance
    # still gives the numbers, flagged by the verdict, for the evaluator to inspect.
    effects = (
        tuple(_effect(people, o, matches, treated, verdict, features, seed) for o in outcomes)
        if counts.matched >= MIN_TREATED
        else ()
    )
    dropped = pd.DataFrame(
        {
            "person": people["person"].to_numpy()[dropped_idx],
            "unit": people["unit"].to_numpy()[dropped_idx],
            PROPENSITY: propensity[dropped_idx],
        }
    )
    return MatchedEstimate(
        balance=balance,
        outcomes=effects,
        counts=counts,
        matches=matches,
        dropped=dropped,
        scores=scores,
        k=k,
        caliper=caliper,
        verdict=verdict,
    )


def _check_arguments(
    features: list[str], outcomes: list[str], primary: str, k: int, caliper: float
) -> None:
    if not features:
        raise ValueError("matched comparison: no baseline features named")
    if not outcomes:
        raise ValueError("matched comparison: no outcomes named")
    for names, what in ((features, "feature"), (outcomes, "outcome")):
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"matched comparison: {what} {repeated[0]!r} named twice")
    for name in features:
        if name in _RESERVED:
            raise ValueError(f"matched comparison: feature {name!r} is a reserved column name")
    if primary not in outcomes:
        raise ValueError(f"matched comparison: primary outcome {primary!r} is not an outcome")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"matched comparison: k must be a positive integer, got {k!r}")
    if not (isinstance(caliper, int | float) and math.isfinite(caliper) and caliper > 0):
        raise ValueError(f"matched comparison: caliper must be a positive number, got {caliper!r}")


def _check_people(people: pd.DataFrame, features: list[str], outcomes: list[str]) -> None:
    """Fail closed on the one-row-per-person frame, naming the column and a person."""
    numeric = [*features, "exposure", *outcomes, *(f"pre_{o}" for o in outcomes)]
    for column in ["person", "unit", "treated", *numeric]:
        if column not in people.columns:
            raise ValueError(f"people frame: missing column {column!r}")
    for column in ("person", "unit", "treated"):
        missing = people[column].isna()
        if missing.any():
            row = missing.index[missing.to_numpy()][0]
            raise ValueError(f"people frame, column {column!r}: missing value in row {row}")
    if people["person"].duplicated().any():
        person = people.loc[people["person"].duplicated(), "person"].iloc[0]
        raise ValueError(f"people frame, column 'person': person {person!r} appears twice")
    if not pd.api.types.is_bool_dtype(people["treated"]):
        raise ValueError(
            f"people frame, column 'treated': must be boolean, got {people['treated'].dtype}"
        )
    if not people["treated"].any():
        raise ValueError("people frame, column 'treated': no treated person")
    for column in numeric:
        values = people[column]
        if not pd.api.types.is_numeric_dtype(values):
            raise ValueError(
                f"people frame, column {column!r}: must be numeric, got {values.dtype}"
            )
        array = values.to_numpy(dtype=float, na_value=np.nan)
        bad = ~np.isfinite(array)
        if bad.any():
            raise ValueError(
                f"people frame, column {column!r}: missing or infinite value for person "
                f"{people['person'].iloc[int(np.argmax(bad))]!r}"
            )
        if column == "exposure" and (array <= 0).any():
            at = int(np.argmax(array <= 0))
            raise ValueError(
                f"people frame, column 'exposure': must be > 0 person-years, got {array[at]} "
                f"for person {people['person'].iloc[at]!r}"
            )
        if column not in features and column != "exposure" and (array < 0).any():
            at = int(np.argmax(array < 0))
            raise ValueError(
                f"people frame, column {column!r}: must not be negative, got {array[at]} "
                f"for person {people['person'].iloc[at]!r}"
            )


def _standardise(x: np.ndarray) -> np.ndarray:
    sd = x.std(axis=0)
    return (x - x.mean(axis=0)) / np.where(sd > 0, sd, 1.0)


def _propensity_logit(x: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """The logit of the propensity score. A light ridge penalty on standardised features
    keeps the fit finite when a feature separates the groups."""
    z = _standardise(x)
    model = LogisticRegression(C=1.0, max_iter=1000).fit(z, treated)
    return model.decision_function(z)


def _prognostic_score(x: np.ndarray, treated: np.ndarray, pre: np.ndarray) -> np.ndarray:
    """The log of the expected pre-period count of the primary outcome given the features,
    from a Poisson regression fitted on the comparison people only; zero for everyone when
    no comparison person had any (nothing to predict, so it adds nothing to the distance)."""
    if not pre[~treated].any():
        return np.zeros(len(x))
    z = _standardise(x)
    model = PoissonRegressor(alpha=1e-6, solver="newton-cholesky", max_iter=1000)
    model.fit(z[~treated], pre[~treated])
    return z @ model.coef_ + model.intercept_


def _variance(values: np.ndarray) -> float:
    """The sample variance; zero for a single value."""
    return float(values.var(ddof=1)) if values.size > 1 else 0.0


def _pooled_sd(values: np.ndarray, treated: np.ndarray) -> float:
    return math.sqrt((_variance(values[treated]) + _variance(values[~treated])) / 2)


def _covariance(points: np.ndarray) -> np.ndarray:
    """The sample covariance of the rows; zero for a single row."""
    if len(points) < 2:
        return np.zeros((points.shape[1], points.shape[1]))
    return np.atleast_2d(np.cov(points, rowvar=False))


def _whiten(points: np.ndarray, treated: np.ndarray) -> np.ndarray:
    """Coordinates in which Euclidean distance is the Mahalanobis distance under the pooled
    within-group covariance; directions without variance are left out."""
    cov = (_covariance(points[treated]) + _covariance(points[~treated])) / 2
    values, vectors = np.linalg.eigh(cov)
    keep = values > 1e-12 * max(float(values.max()), 1e-300)
    return (points - points.mean(axis=0)) @ vectors[:, keep] / np.sqrt(values[keep])


def _match(
    points: np.ndarray, treated: np.ndarray, *, k: int, width: float, seed: int
) -> list[np.ndarray]:
    """For each treated person (in row order), the row indices of their ``k`` nearest
    comparison people within ``width`` on the propensity logit (``points[:, 0]``), nearest
    first; empty when none is within it."""
    white = _whiten(points, treated)
    control_rows = np.flatnonzero(~treated)
    order = np.argsort(points[control_rows, 0], kind="stable")
    control_rows = control_rows[order]
    logit_c = points[control_rows, 0]
    white_c = white[control_rows]
    tie_rank = np.random.default_rng(seed).permutation(control_rows.size)
    treated_rows = np.flatnonzero(treated)
    lows = np.searchsorted(logit_c, points[treated_rows, 0] - width, side="left")
    highs = np.searchsorted(logit_c, points[treated_rows, 0] + width, side="right")
    found = []
    for row, low, high in zip(treated_rows, lows, highs, strict=True):
        if high <= low:
            found.append(np.empty(0, dtype=np.intp))
            continue
        distance = np.sum((white_c[low:high] - white[row]) ** 2, axis=1)
        if distance.size > k:
            kth = np.partition(distance, k - 1)[k - 1]
            near = np.flatnonzero(distance <= kth)
        else:
            near = np.arange(distance.size)
        pick = near[np.lexsort((tie_rank[low:high][near], distance[near]))[:k]]
        found.append(control_rows[low + pick])
    return found


def _matches_frame(
    people: pd.DataFrame, treated_idx: np.ndarray, controls: list[np.ndarray]
) -> pd.DataFrame:
    sizes = np.array([c.size for c in controls], dtype=np.intp)
    has = sizes > 0
    sets = np.repeat(np.arange(int(has.sum())), sizes[has])
    treated_rows = np.repeat(treated_idx[has], sizes[has])
    control_rows = np.concatenate([c for c in controls if c.size]) if has.any() else sets
    person = people["person"].to_numpy()
    return pd.DataFrame(
        {
            "set": sets,
            "treated_row": treated_rows,
            "control_row": control_rows,
            "treated_person": person[treated_rows],
            "control_person": person[control_rows],
            "weight": 1.0 / np.repeat(sizes[has], sizes[has]),
        }
    )


def _control_weights(n: int, matches: pd.DataFrame) -> np.ndarray:
    """Each person's total weight as a control: the sum, over the sets they serve, of one over
    the set's number of controls."""
    return np.bincount(
        matches["control_row"].to_numpy(), weights=matches["weight"].to_numpy(), minlength=n
    )


def _weighted_moments(values: np.ndarray, weights: np.ndarray) -> tuple[float, float]:
    """Weighted mean and variance; NaN for nobody (no one matched)."""
    if not values.size:
        return math.nan, math.nan
    mean = float(np.average(values, weights=weights))
    return mean, float(np.average((values - mean) ** 2, weights=weights))


def _balance(
    table: pd.DataFrame, treated: np.ndarray, matched: np.ndarray, weight: np.ndarray
) -> pd.DataFrame:
    """SMD and variance ratio of each column before and after matching. Both SMDs divide by
    the same pooled SD before matching, so that matching cannot improve an SMD by changing
    its denominator."""
    rows = {}
    for column in table.columns:
        values = table[column].to_numpy(dtype=float)
        t, c = values[treated], values[~treated]
        var_t, var_c = _variance(t), _variance(c)
        scale = math.sqrt((var_t + var_c) / 2)
        mean_mt, var_mt = _weighted_moments(values[matched], np.ones(int(matched.sum())))
        mean_mc, var_mc = _weighted_moments(values[weight > 0], weight[weight > 0])
        rows[column] = {
            "smd_before": _smd(t.mean() - c.mean(), scale),
            "smd_after": _smd(mean_mt - mean_mc, scale),
            "variance_ratio_before": _ratio(var_t, var_c),
            "variance_ratio_after": _ratio(var_mt, var_mc),
        }
    balance = pd.DataFrame.from_dict(rows, orient="index").rename_axis("feature").reset_index()
    balance["balanced"] = balance["smd_after"].abs() < SMD_TARGET
    return balance


def _smd(difference: float, scale: float) -> float:
    if scale > 0:
        return difference / scale
    return 0.0 if difference == 0 else math.copysign(math.inf, difference)


def _ratio(numerator: float, denominator: float) -> float:
    if math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    if denominator > 0:
        return float(numerator / denominator)
    return 1.0 if numerator == 0 else math.inf


def _verdict(counts: MatchCounts, balance: pd.DataFrame) -> str:
    if counts.matched < MIN_TREATED:
        return f"too few treated people: {counts.matched} matched, at least {MIN_TREATED} needed"
    failing = balance.loc[~balance["balanced"], "feature"].tolist()
    if failing:
        return f"balance not achieved: |SMD| >= {SMD_TARGET} after matching for " + ", ".join(
            failing
        )
    return ANSWERED


def expected_untreated(
    people: pd.DataFrame,
    features: list[str],
    outcome: str,
    *,
    folds: int = FOLDS,
    seed: int = 0,
) -> np.ndarray:
    """Each person's expected follow-up total of ``outcome`` without the programme: a Poisson
    regression of the follow-up rate on the standardised features and ``log(1 + pre-period
    total)``, weighted by exposure (a log-exposure offset), fitted on comparison people only,
    so that no treated person's outcome shapes it.

    Cross-fitted: the comparison people are split at random (``seed``) into ``folds``
    folds, a model is fitted without each fold, and each comparison person's expectation
    comes from the model fitted without them; a treated person's is the mean over the
    models. So nobody's expectation is fitted to their own outcome: the treated people's
    and their matched controls' expectations are both out-of-sample, and err alike. Fitted
    in-sample, the controls' expectations would follow their own outcomes, the treated
    people's would not, and for a rare outcome (deaths, care-home moves: a few hundred
    events against some twenty coefficients) that difference alone made the treated look
    better than their controls with no effect at all."""
    treated = people["treated"].to_numpy(dtype=bool)
    x = np.column_stack(
        [
            people[features].to_numpy(dtype=float),
            np.log1p(people[f"pre_{outcome}"].to_numpy(dtype=float)),
        ]
    )
    centre, sd = x[~treated].mean(axis=0), x[~treated].std(axis=0)
    z = (x - centre) / np.where(sd > 0, sd, 1.0)
    exposure = people["exposure"].to_numpy(dtype=float)
    rate = people[outcome].to_numpy(dtype=float) / exposure
    comparison = np.flatnonzero(~treated)
    fold = _folds(rate[comparison], folds, seed)
    n_folds = int(fold.max()) + 1
    expected = np.zeros(len(people))
    for k in range(n_folds):
        train = comparison[fold != k] if n_folds > 1 else comparison
        model = PoissonRegressor(alpha=1e-6, solver="newton-cholesky", max_iter=1000)
        model.fit(z[train], rate[train], sample_weight=exposure[train])
        predicted = np.exp(z @ model.coef_ + model.intercept_) * exposure
        held_out = comparison[fold == k]
        expected[held_out] = predicted[held_out]
        expected[treated] += predicted[treated] / n_folds
    return expected


def _folds(rate: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Each comparison person's fold (0 .. folds - 1, at random from ``seed``); one fold for
    everyone (an in-sample fit) when some fold's complement holds no event, since a model
    fitted to no event expects none anywhere."""
    fold = np.random.default_rng(seed).permutation(rate.size) % max(folds, 1)
    if all(rate[fold != k].sum() > 0 for k in range(int(fold.max(initial=0)) + 1)):
        return fold
    return np.zeros(rate.size, dtype=int)


def _too_few_for_outcome_model(comparison_y: np.ndarray, features: list[str], outcome: str) -> str:
    """Why ``expected_untreated`` cannot be fitted for ``outcome``, or "" when it can: with
    no more comparison people with an event than the model has coefficients (the features,
    the pre-period total and the intercept), the events can be separated from the rest, the
    near-unpenalised Poisson fit's coefficients diverge and its expected totals run to
    exp(+-hundreds), which leave the matched fit's information matrix singular."""
    coefficients = len(features) + 2
    with_event = int((comparison_y > 0).sum())
    if with_event > coefficients:
        return ""
    return (
        f"too few comparison people with {outcome} ({with_event}) to fit the outcome model's "
        f"{coefficients} coefficients"
    )


def _effect(
    people: pd.DataFrame,
    outcome: str,
    matches: pd.DataFrame,
    treated: np.ndarray,
    verdict: str,
    features: list[str],
    seed: int = 0,
) -> OutcomeEffect:
    """The rate ratio of one outcome, doubly robust: the treated people's observed over
    expected totals (``expected_untreated``), divided by the same ratio among their matched
    controls. It is a weighted Poisson QMLE on the stacked matched sets (each treated person
    with weight 1, each of their controls with 1/set size) with the expected total as the
    offset, clustered on the set and the person."""
    y_all = people[outcome].to_numpy(dtype=float)
    exposure_all = people["exposure"].to_numpy(dtype=float)
    first = matches.drop_duplicates("set")
    rows = np.concatenate([first["treated_row"].to_numpy(), matches["control_row"].to_numpy()])
    sets = np.concatenate([first["set"].to_numpy(), matches["set"].to_numpy()])
    weights = np.concatenate([np.ones(len(first)), matches["weight"].to_numpy()])
    is_treated = np.concatenate([np.ones(len(first)), np.zeros(len(matches))])
    y, exposure = y_all[rows], exposure_all[rows]

    treated_rate = y[is_treated == 1].sum() / exposure[is_treated == 1].sum()
    control_w = weights * (is_treated == 0)
    control_rate = float((control_w * y).sum() / (control_w * exposure).sum())
    naive = _ratio(
        y_all[treated].sum() / exposure_all[treated].sum(),
        y_all[~treated].sum() / exposure_all[~treated].sum(),
    )
    n_controls = int(matches["control_row"].nunique())
    counts = {"n_treated": len(first), "n_controls": n_controls}
    if treated_rate == 0 or control_rate == 0:
        side = "treated" if treated_rate == 0 else "matched comparison"
        why = f"no {outcome} among the {side} people"
    else:
        why = _too_few_for_outcome_model(y_all[~treated], features, outcome)
    if why:
        return unestimated(
            OutcomeEffect,
            math.nan,
            outcome=outcome,
            treated_rate=float(treated_rate),
            control_rate=control_rate,
            naive_rate_ratio=naive,
            verdict=verdict if verdict != ANSWERED else why,
            **counts,
        )
    expected = expected_untreated(people, features, outcome, seed=seed)[rows]
    model = sm.GLM(
        y,
        np.column_stack([np.ones_like(y), is_treated]),
        family=sm.families.Poisson(),
        offset=np.log(expected),
        var_weights=weights,
    )
    with warnings.catch_warnings():
        # statsmodels warns that robust covariances are "not fully supported" with
        # var_weights; for this Poisson fit its two-way sandwich equals the hand-computed
        # one with weighted scores (tests/test_matching.py checks it).
        warnings.simplefilter("ignore", SpecificationWarning)
        fit = model.fit(cov_type="cluster", cov_kwds={"groups": np.column_stack([sets, rows])})
    beta, se = float(fit.params[1]), float(fit.bse[1])
    low, high = (float(v) for v in fit.conf_int()[1])
    ratio = math.exp(beta)
    counterfactual = treated_rate / ratio
    return OutcomeEffect(
        outcome=outcome,
        rate_ratio=ratio,
        ci_low=math.exp(low),
        ci_high=math.exp(high),
        p_value=float(fit.pvalues[1]),
        log_se=se,
        treated_rate=float(treated_rate),
        control_rate=control_rate,
        counterfactual_rate=float(counterfactual),
        rate_difference=float(treated_rate - counterfactual),
        difference_ci_low=float(treated_rate * (1 - math.exp(-low))),
        difference_ci_high=float(treated_rate * (1 - math.exp(-high))),
        naive_rate_ratio=naive,
        mde_ratio=math.exp(-minimum_detectable_effect(se)),
        verdict=verdict,
        **counts,
    )


def _without_comparison(people: pd.DataFrame, k: int, caliper: float) -> MatchedEstimate:
    """Every person is treated: nothing to compare with, said as the verdict."""
    treated = people["treated"].to_numpy(dtype=bool)
    return MatchedEstimate(
        balance=pd.DataFrame(
            columns=[
                "feature",
                "smd_before",
                "smd_after",
                "variance_ratio_before",
                "variance_ratio_after",
                "balanced",
            ]
        ),
        outcomes=(),
        counts=MatchCounts(
            treated=int(treated.sum()),
            matched=0,
            dropped_by_caliper=0,
            comparison=0,
            controls_used=0,
            treated_units=int(people["unit"].nunique()),
            control_units=0,
        ),
        matches=_matches_frame(people, np.empty(0, dtype=np.intp), []),
        dropped=pd.DataFrame(columns=["person", "unit", PROPENSITY]),
        scores=pd.DataFrame(columns=["person", "treated", PROPENSITY, PROGNOSTIC]),
        k=k,
        caliper=caliper,
        verdict="no comparison people",
    )
