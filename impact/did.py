"""Staggered difference-in-differences: Callaway and Sant'Anna group-time effects on rates.

Each cohort g (the units that go live in period g) is compared, in every period t, with the
units not yet treated by then (or never treated): ATT(g, t) = [r_g(t) - r_g(g-1)] -
[r_C(t) - r_C(g-1)], where r_S(t) is the outcome rate per person-month of the units S in
period t (their summed outcome over their summed exposure). Every cell uses the period
before go-live as its base ("universal" base), so pre-period cells are the event-study
placebos and period g-1 is the reference (zero by construction, not reported). The overall
ATT averages the post-go-live cells weighted by the cohort's person-months in them (Callaway
and Sant'Anna's "simple" aggregation with exposure in place of group size): it is the rate
effect among the eligible people of treated units in their post-go-live months. The
counterfactual rate is the observed post-go-live rate minus the ATT; the relative effect is
ATT / counterfactual rate. Two-way fixed effects is deliberately not used: with effects that
differ by cohort it compares late cohorts with already-treated early ones and is biased.

Why by hand rather than the ``differences`` library: it estimates person-level 2x2
regressions for every (g, t) cell, treats an unbalanced panel (people who die or leave) as
repeated cross-sections, takes weights but not a rate per person-month, clusters only by
averaging influence functions within a cluster, and draws Rademacher (two-point) multiplier
weights, which give only 2^G distinct draws with G clusters; on a borough-sized panel it is
far slower than this module's target. Without covariates the unit x period sums of the
outcome and of the exposure are sufficient statistics for these group-time effects, so the
estimator below works on a G x T table, which also makes re-estimating under every
re-assignment of the roll-out (randomisation inference) cheap. tests/test_did.py checks it
against ``differences`` on a small balanced panel.

Inference (``inference=``), recorded in the result:

- ``"randomisation"``: the roll-out schedule (the multiset of go-live periods) is re-assigned
  across units, every distinct schedule when there are at most ``EXACT_SCHEDULES`` (exact),
  otherwise ``draws`` random ones. The statistic is the overall ATT studentised by its own
  person-clustered standard error under each schedule (randomisation-t, MacKinnon and Webb
  2020): unstudentised, the reference distribution mixes schedules whose first cohort is a
  quiet cluster with the one that happened, and when the cluster that went first is noisier
  than most (smaller, sicker) the interval is too narrow for it; the test stays exact
  whatever the statistic. The p-value is that of the sharp null of no effect in any
  person-month. The interval for the ATT inverts the test of a constant additive effect on
  the rate, the interval for the relative effect the test of a constant multiplicative
  effect (both exactly: the standard errors come from the observed outcomes, so the
  statistic stays linear in the hypothesised effect).
  Event-study and group-time spreads come from the re-assignment distribution after
  removing the estimated relative effect. Valid with area-level (unit-by-month) shocks if
  the schedule is as good as randomly assigned across units.
- ``"wild_cluster"``: a multiplier bootstrap of the unit-level influence functions (the
  linearised rates, summed within each unit of roll-out) with Webb's six-point weights
  (6^G distinct draws). Intervals and p-values are pointwise (the bootstrap distribution of
  |estimate - truth| gives the margin); the pre-trend test is a sup-t test over the
  pre-period event-study estimates. A cohort of one unit contributes no influence of its
  own (its rate is its own mean), so with one or two units per cohort this understates the
  variance when units have their own shocks; the verdict then says the data cannot answer
  this way.
- ``"person_cluster"``: the same influence functions summed within each person (serial
  correlation within a person allowed), with normal intervals. Valid only if there are no
  area-level shocks: it treats the people of a unit as independent of one another.

The pre-trend check is a sup-t test that every pre-period event-study estimate (e <= -2) is
zero, against the same method's null draws (bootstrap, Gaussian or re-assigned schedules).

The verdict is "answered" unless one of these holds: fewer than ``MIN_TREATED_UNITS``
treated units (no unit-level comparison is possible); fewer than ``MIN_UNITS`` units in all
(seven is the fewest for which two units going live together, the smallest roll-out this
accepts, has C(7, 2) = 21 >= 20 distinct schedules, so that a randomisation test can reach
the 5% level); no never-treated unit for the never-treated comparison; a cohort with no
pre-period or with no comparison units after go-live; with ``wild_cluster``, a cohort or
post-period comparison group of a single unit; too few distinct schedules for a
randomisation test at the 5% level; or the pre-trend test rejects.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Literal, get_args

import numpy as np
import pandas as pd
from scipy.stats import norm

from riskstrat.impact.missing import unestimated
from riskstrat.impact.power import ALPHA

Control = Literal["not_yet_treated", "never_treated"]
Inference = Literal["randomisation", "wild_cluster", "person_cluster"]
CONTROLS: tuple[str, ...] = get_args(Control)
INFERENCES: tuple[str, ...] = get_args(Inference)

COLUMNS = ("person", "unit", "period", "first_treated", "y", "exposure")
NEVER = -1
MIN_UNITS = 7
MIN_TREATED_UNITS = 2
EXACT_SCHEDULES = 5_000
DRAWS = 9_999
WEBB = np.array([-math.sqrt(1.5), -1.0, -math.sqrt(0.5), math.sqrt(0.5), 1.0, math.sqrt(1.5)])
_CHUNK = 256


@dataclass(frozen=True)
class GroupTimeEffect:
    """ATT(g, t) on the rate; ``n_people`` and ``exposure`` are the cohort's in period t."""

    cohort: int
    period: int
    att: float
    se: float
    n_people: int
    exposure: float


@dataclass(frozen=True)
class EventStudyPoint:
    """Exposure-weighted mean of ATT(g, g + e) over cohorts, with its pointwise 95% CI."""

    relative_period: int
    estimate: float
    ci_low: float
    ci_high: float
    exposure: float


@dataclass(frozen=True)
class PreTrendCheck:
    """Joint (sup-t) test that every pre-period event-study estimate (e <= -2) is zero."""

    statistic: float
    p_value: float
    largest_deviation: float
    largest_deviation_period: int | None
    n_pre_periods: int


@dataclass(frozen=True)
class DidEstimate:
    """The staggered DiD result: ATT on the rate per person-month, checks and verdict.

    ``se`` is the influence-function standard error (``wild_cluster``, ``person_cluster``)
    or the spread of the randomisation distribution; intervals are 95% and pointwise;
    ``relative_*`` is ATT / counterfactual rate; ``draws`` counts bootstrap draws or
    re-assigned schedules, ``exact`` says whether every schedule was used. Estimates are NaN
    when no cell can be estimated (the verdict says why).
    """

    att: float
    se: float
    ci_low: float
    ci_high: float
    p_value: float
    counterfactual_rate: float
    relative_effect: float
    relative_ci_low: float
    relative_ci_high: float
    group_time: tuple[GroupTimeEffect, ...]
    event_study: tuple[EventStudyPoint, ...]
    pre_trend: PreTrendCheck
    n_people: int
    n_units: int
    n_treated_units: int
    n_periods: int
    control: Control
    inference: Inference
    draws: int
    exact: bool
    seed: int
    verdict: str
    # The relative effect's null draws (estimate minus truth, NaN where a schedule cannot be
    # estimated), one per re-assigned schedule or bootstrap draw in the order the seed fixes:
    # two subgroups' draws line up, so their difference has a joint interval. None without.
    null_relative: np.ndarray | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class _Table:
    """Unit x period totals of the panel (sufficient statistics without covariates)."""

    units: tuple[str, ...]
    start: int
    cohort: np.ndarray  # (U,) go-live as a period index; ``late`` when never treated
    y: np.ndarray  # (U, T)
    exposure: np.ndarray  # (U, T)
    people: np.ndarray  # (U, T)
    n_people: int
    late: int
    row_unit: np.ndarray  # (rows,) the unit code of every panel row


@dataclass(frozen=True)
class _Cells:
    """The (g, t) cells: cohort index, period index and base period index g - 1."""

    cohort: np.ndarray
    t: np.ndarray
    base: np.ndarray
    never_only: bool

    @property
    def post(self) -> np.ndarray:
        return self.t >= self.cohort

    @property
    def relative(self) -> np.ndarray:
        return self.t - self.cohort


@dataclass(frozen=True)
class _Fit:
    """Estimates for a stack of schedules (P) and outcomes (O)."""

    att: np.ndarray  # (O, P, K)
    weight: np.ndarray  # (P, K): the cohort's exposure in the cell, 0 when not estimable
    overall: np.ndarray  # (O, P)
    observed: np.ndarray  # (O, P): exposure-weighted post-period rate of the treated
    event: np.ndarray  # (O, P, n_e)
    event_weight: np.ndarray  # (P, n_e)


def staggered_did(
    panel: pd.DataFrame,
    *,
    control: Control = "not_yet_treated",
    inference: Inference = "randomisation",
    seed: int = 0,
    draws: int = DRAWS,
) -> DidEstimate:
    """Callaway-Sant'Anna ATT on the outcome rate from a person-month ``panel``.

    ``panel`` has the columns ``COLUMNS``: person, unit (of roll-out), period (consecutive
    integers), first_treated (the unit's go-live period, -1 for never), y (the outcome in the
    person-month) and exposure (the share of the month present, in (0, 1]); months a person
    was absent have no row. It is not modified. ``control`` picks the comparison units,
    ``inference`` the method (module docstring), ``seed`` makes draws repeatable, ``draws``
    is the number of bootstrap draws, or of random schedules when there are too many to
    enumerate. Raises ValueError naming the column, person or unit of bad input.
    """
    if control not in CONTROLS:
        raise ValueError(f"control must be one of {CONTROLS}, got {control!r}")
    if inference not in INFERENCES:
        raise ValueError(f"inference must be one of {INFERENCES}, got {inference!r}")
    if draws < 99:
        raise ValueError(f"draws must be at least 99, got {draws}")
    frame = _validated(panel)
    table = _table(frame)
    cells = _cells(table, control)
    observed = table.cohort[None, :]
    fit = _fit(observed, cells, table.y[None], table.exposure, control)
    rng = np.random.default_rng(seed)
    n_treated_units = int((table.cohort < table.late).sum())
    common = {
        "n_people": table.n_people,
        "n_units": len(table.units),
        "n_treated_units": n_treated_units,
        "n_periods": table.y.shape[1],
        "control": control,
        "inference": inference,
        "seed": seed,
    }
    if not (fit.weight[0] * cells.post).any():
        nan = math.nan
        return unestimated(
            DidEstimate,
            nan,
            group_time=(),
            event_study=(),
            pre_trend=PreTrendCheck(nan, nan, nan, None, 0),
            draws=draws,
            exact=False,
            verdict=_verdict(table, cells, fit, control, inference, None, None),
            **common,
        )
    if inference == "randomisation":
        products = _cross_products(frame, table)
        result = _randomisation(table, cells, fit, control, rng, draws, products)
    else:
        result = _influence(frame, table, cells, fit, inference, rng, draws)
    n_schedules = result.pop("n_schedules")
    verdict = _verdict(table, cells, fit, control, inference, result["pre_trend"], n_schedules)
    if verdict == "answered" and not result["counterfactual_rate"] > 0:
        verdict = (
            "no events expected without the programme (a comparison rate of zero): "
            "there is no change to measure"
        )
    return DidEstimate(**result, **common, verdict=verdict)


def _ratio(effect: float, base: float) -> float:
    """The effect relative to a positive base rate; NaN when there is no base to compare."""
    return effect / base if base > 0 else math.nan


def _validated(panel: pd.DataFrame) -> pd.DataFrame:
    """The panel's columns, checked; raises ValueError naming the column, person or unit."""
    missing = [c for c in COLUMNS if c not in panel.columns]
    if missing:
        raise ValueError(f"panel is missing column(s) {missing}")
    frame = panel.loc[:, list(COLUMNS)]
    if frame.empty:
        raise ValueError("panel has no rows")
    for column in ("person", "unit"):
        if frame[column].isna().any():
            raise ValueError(f"column {column!r} has missing values")
    for column in ("period", "first_treated"):
        if not pd.api.types.is_integer_dtype(frame[column]):
            raise ValueError(f"column {column!r} must hold integers, got {frame[column].dtype}")
    for column in ("y", "exposure"):
        if not pd.api.types.is_numeric_dtype(frame[column]):
            raise ValueError(f"column {column!r} must be numeric, got {frame[column].dtype}")
    bad = _first_row(frame, ~np.isfinite(frame["y"].to_numpy(dtype=float)))
    if bad is not None:
        raise ValueError(f"column 'y' must be finite: {bad}")
    exposure = frame["exposure"].to_numpy(dtype=float)
    bad = _first_row(frame, ~((exposure > 0) & (exposure <= 1)))
    if bad is not None:
        raise ValueError(f"column 'exposure' must be in (0, 1]: {bad}")
    periods = np.unique(frame["period"].to_numpy())
    if periods[0] < 0 or len(periods) != periods[-1] - periods[0] + 1:
        raise ValueError(
            f"column 'period' must hold consecutive periods >= 0, got {len(periods)} distinct "
            f"values from {periods[0]} to {periods[-1]}"
        )
    duplicated = frame.duplicated(["person", "period"])
    bad = _first_row(frame, duplicated.to_numpy())
    if bad is not None:
        raise ValueError(f"more than one row per person and period: {bad}")
    per_person = frame.groupby("person", sort=False)["unit"].nunique()
    if (per_person > 1).any():
        person = per_person.index[per_person.to_numpy() > 1][0]
        units = sorted(frame.loc[frame["person"] == person, "unit"].unique())
        raise ValueError(f"person {person!r} is in more than one unit: {units}")
    dates = frame.groupby("unit", sort=True)["first_treated"].unique()
    for unit, values in dates.items():
        if len(values) > 1:
            raise ValueError(
                f"unit {unit!r} has more than one go-live date (first_treated {sorted(values)})"
            )
        value = int(values[0])
        if value != NEVER and not periods[0] <= value <= periods[-1]:
            raise ValueError(
                f"unit {unit!r}: first_treated {value} is not a period of the panel "
                f"({periods[0]}..{periods[-1]}) nor {NEVER} (never treated)"
            )
    return frame


def _first_row(frame: pd.DataFrame, bad: np.ndarray) -> str | None:
    if not bad.any():
        return None
    row = frame.iloc[int(np.argmax(bad))]
    return (
        f"{int(bad.sum())} row(s), first person {row['person']!r} period {row['period']} "
        f"(y={row['y']}, exposure={row['exposure']})"
    )


def _table(frame: pd.DataFrame) -> _Table:
    """Sum y, exposure and people by unit and period."""
    unit_code, units = pd.factorize(frame["unit"], sort=True)
    start = int(frame["period"].min())
    t = frame["period"].to_numpy() - start
    n_units, n_periods = len(units), int(t.max()) + 1
    key = unit_code * n_periods + t

    def total(weights: np.ndarray | None) -> np.ndarray:
        sums = np.bincount(key, weights=weights, minlength=n_units * n_periods)
        return sums.reshape(n_units, n_periods).astype(float)

    first = frame.groupby(unit_code)["first_treated"].first().to_numpy()
    late = n_periods + 1
    cohort = np.where(first == NEVER, late, first - start)
    return _Table(
        units=tuple(str(u) for u in units),
        start=start,
        cohort=cohort.astype(int),
        y=total(frame["y"].to_numpy(dtype=float)),
        exposure=total(frame["exposure"].to_numpy(dtype=float)),
        people=total(None),
        n_people=int(frame["person"].nunique()),
        late=late,
        row_unit=unit_code,
    )


def _cells(table: _Table, control: Control) -> _Cells:
    """Every (g, t) with a base period g - 1 inside the panel."""
    n_periods = table.y.shape[1]
    cohorts = np.unique(table.cohort[(table.cohort < table.late) & (table.cohort >= 1)])
    rows = np.array(
        [(g, t, g - 1) for g in cohorts for t in range(n_periods) if t != g - 1], dtype=int
    ).reshape(-1, 3)
    return _Cells(
        cohort=rows[:, 0], t=rows[:, 1], base=rows[:, 2], never_only=control == "never_treated"
    )


def _masks(schedule: np.ndarray, cells: _Cells, late: int) -> tuple[np.ndarray, np.ndarray]:
    """Treated and comparison units of every cell, for schedules (P, U): (P, K, U) each."""
    given = schedule[:, None, :]
    treated = given == cells.cohort[None, :, None]
    if cells.never_only:
        comparison = given == late
    else:
        comparison = given > np.maximum(cells.t, cells.cohort)[None, :, None]
    return treated.astype(float), comparison.astype(float)


def _fit(
    schedules: np.ndarray,
    cells: _Cells,
    outcomes: np.ndarray,
    exposure: np.ndarray,
    control: Control,
) -> _Fit:
    """Group-time, event-study and overall estimates for schedules (P, U), outcomes (O, U, T).

    Rates are the outcome totals over the exposure totals, so every estimate is linear in the
    outcome for a fixed schedule: stacking outcomes shares the exposure work.
    """
    late = exposure.shape[1] + 1
    relative = cells.relative
    events = np.unique(relative)
    indicator = (relative[None, :] == events[:, None]).astype(float)  # (n_e, K)
    post = cells.post.astype(float)
    parts = []
    for start in range(0, schedules.shape[0], _CHUNK):
        parts.append(_fit_chunk(schedules[start : start + _CHUNK], cells, outcomes, exposure, late))
    att = np.concatenate([p[0] for p in parts], axis=1)
    observed_rate = np.concatenate([p[1] for p in parts], axis=1)
    weight = np.concatenate([p[2] for p in parts], axis=0)
    filled = np.nan_to_num(att)
    post_weight = weight * post
    total = post_weight.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        overall = (filled * post_weight).sum(axis=2) / total
        observed = (np.nan_to_num(observed_rate) * post_weight).sum(axis=2) / total
        event_weight = weight @ indicator.T
        event = (filled * weight) @ indicator.T / event_weight
    return _Fit(att, weight, overall, observed, event, event_weight)


def _fit_chunk(
    schedules: np.ndarray, cells: _Cells, outcomes: np.ndarray, exposure: np.ndarray, late: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    treated, comparison = _masks(schedules, cells, late)

    def totals(mask: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        y = np.einsum("pku,oku->opk", mask, outcomes[:, :, index].transpose(0, 2, 1))
        e = np.einsum("pku,ku->pk", mask, exposure[:, index].T)
        return y, e

    y_tt, e_tt = totals(treated, cells.t)
    y_tb, e_tb = totals(treated, cells.base)
    y_ct, e_ct = totals(comparison, cells.t)
    y_cb, e_cb = totals(comparison, cells.base)
    valid = (e_tt > 0) & (e_tb > 0) & (e_ct > 0) & (e_cb > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        observed = y_tt / e_tt
        att = observed - y_tb / e_tb - y_ct / e_ct + y_cb / e_cb
    att = np.where(valid[None], att, np.nan)
    return att, np.where(valid[None], observed, np.nan), np.where(valid, e_tt, 0.0)


def _schedules(cohort: np.ndarray, rng: np.random.Generator, draws: int) -> tuple[np.ndarray, bool]:
    """Re-assignments of the go-live periods across units, the observed one first."""
    counts = Counter(cohort.tolist())
    n_distinct = math.factorial(len(cohort))
    for c in counts.values():
        n_distinct //= math.factorial(c)
    if n_distinct <= EXACT_SCHEDULES:
        every = [s for s in _distinct(list(counts.items()), len(cohort)) if s != tuple(cohort)]
        return np.array([tuple(cohort), *every], dtype=int), True
    shuffled = rng.permuted(np.tile(cohort, (draws, 1)), axis=1)
    return np.vstack([cohort[None, :], shuffled]), False


def _distinct(counts: list[tuple[int, int]], n: int) -> list[tuple[int, ...]]:
    """Every distinct arrangement of the multiset ``counts`` over n positions."""
    if not counts:
        return [()]
    (value, count), rest = counts[0], counts[1:]
    out = []
    for chosen in itertools.combinations(range(n), count):
        others = [i for i in range(n) if i not in chosen]
        for tail in _distinct(rest, n - count):
            arrangement = [0] * n
            for i in chosen:
                arrangement[i] = value
            for i, v in zip(others, tail, strict=True):
                arrangement[i] = v
            out.append(tuple(arrangement))
    return out


def _randomisation(
    table: _Table,
    cells: _Cells,
    fit: _Fit,
    control: Control,
    rng: np.random.Generator,
    draws: int,
    products: np.ndarray,
) -> dict:
    """Randomisation inference on the studentised overall ATT (module docstring);
    ``products`` are the panel's ``_cross_products``."""
    schedules, exact = _schedules(table.cohort, rng, draws)
    treated_now = np.arange(table.y.shape[1])[None, :] >= table.cohort[:, None]
    outcomes = np.stack([table.y, table.exposure * treated_now, table.y * treated_now])
    perm = _fit(schedules, cells, outcomes, table.exposure, control)
    scale = _schedule_se(schedules, cells, table, perm.weight, products)
    if not (np.isfinite(scale[0]) and scale[0] > 0):
        # The observed schedule's effect has no spread to divide by (no event varies among
        # its treated people): compare the raw effects, Fisher's statistic, instead.
        scale = np.ones_like(scale)
    keep = np.isfinite(perm.overall).all(axis=0) & (scale > 0)
    if not keep[0]:
        raise ValueError("the observed schedule's effect is not finite")
    a, b, c = perm.overall[:, keep]
    att, observed = float(a[0]), float(fit.observed[0, 0])
    # No event among the treated after go-live: no multiplicative effect to take out.
    shift = att / observed if observed > 0 else 0.0
    t_a, t_b, t_c = (a, b, c) / scale[keep]
    p_value = float(np.mean(np.abs(t_a) >= np.abs(t_a[0]) * (1 - 1e-9)))
    ci_low, ci_high = _invert(t_a, t_b)
    s_low, s_high = _invert(t_a, t_c)
    null_event = (perm.event[0] - shift * perm.event[2])[keep]
    null_cells = (perm.att[0] - shift * perm.att[2])[keep]
    margin = np.nanquantile(np.abs(null_event), 1 - ALPHA, axis=0)
    events = np.unique(cells.relative)
    pre = (events <= -2) & (fit.event_weight[0] > 0)
    spread = np.nanstd(null_event[:, pre], axis=0)
    pre_trend = _sup_test(fit.event[0, 0, pre], spread, null_event[:, pre], events[pre], True)
    event_est = fit.event[0, 0]
    counterfactual = observed - att
    null_att = np.where(keep, perm.overall[0] - shift * perm.overall[2], np.nan)
    with np.errstate(divide="ignore", invalid="ignore"):  # no events: no relative change (nan)
        null_relative = null_att * observed / counterfactual**2
    return {
        "null_relative": null_relative,
        "att": att,
        "se": float(np.std(a - shift * c)),
        "ci_low": ci_low,
        "ci_high": ci_high,
        "p_value": p_value,
        "counterfactual_rate": observed - att,
        "relative_effect": _ratio(att, observed - att),
        "relative_ci_low": _relative(s_low),
        "relative_ci_high": _relative(s_high),
        "group_time": _group_time(table, cells, fit, np.nanstd(null_cells, axis=0)),
        "event_study": _event_study(events, event_est, event_est - margin, event_est + margin, fit),
        "pre_trend": pre_trend,
        "draws": len(a) - 1,
        "exact": exact,
        "n_schedules": len(a),
    }


def _schedule_se(
    schedules: np.ndarray,
    cells: _Cells,
    table: _Table,
    weight: np.ndarray,
    products: np.ndarray,
) -> np.ndarray:
    """The person-clustered standard error of the overall ATT under each schedule (P, U),
    from the observed outcomes: the scale that studentises the randomisation statistic. It
    does not move with the hypothesised effect, so the statistic stays linear in it and
    ``_invert`` stays exact. ``weight`` is the fit's (P, K) cell weights; NaN for a
    schedule with no estimable post-go-live cell. The linearisation is ``_linearised``'s
    overall-ATT row (aggregation weights held fixed), for every schedule at once."""
    n_periods = table.y.shape[1]
    post_weight = weight * cells.post
    total = post_weight.sum(axis=1, keepdims=True)
    overall_map = np.divide(post_weight, total, out=np.zeros_like(post_weight), where=total > 0)
    at = np.eye(n_periods)
    variance = np.empty(len(schedules))
    for start in range(0, len(schedules), _CHUNK):
        part = slice(start, start + _CHUNK)
        treated, comparison = _masks(schedules[part], cells, table.late)
        alpha = np.zeros((treated.shape[0], len(table.units), n_periods))
        beta = np.zeros_like(alpha)
        for mask, index, sign in (
            (treated, cells.t, 1.0),
            (treated, cells.base, -1.0),
            (comparison, cells.t, -1.0),
            (comparison, cells.base, 1.0),
        ):
            y = np.einsum("pku,ku->pk", mask, table.y[:, index].T)
            e = np.einsum("pku,ku->pk", mask, table.exposure[:, index].T)
            with np.errstate(invalid="ignore", divide="ignore"):
                coefficient = np.where(e > 0, sign * overall_map[part] / e, 0.0)
                rate = np.where(e > 0, y / e, 0.0)
            by_unit = mask.transpose(0, 2, 1)  # (P, U, K)
            alpha += (by_unit * coefficient[:, None, :]) @ at[index]
            beta += (by_unit * (coefficient * rate)[:, None, :]) @ at[index]
        both = np.concatenate([alpha, -beta], axis=2).transpose(1, 0, 2)  # (U, P, 2T)
        variance[part] = ((both @ products) * both).sum(axis=(0, 2))
    return np.where(total[:, 0] > 0, np.sqrt(np.clip(variance, 0, None)), np.nan)


def _relative(shift: float) -> float:
    """Relative effect theta - 1 from s = 1 - 1/theta (s >= 1: unbounded; s = -infinity is
    theta = 0, a 100% reduction)."""
    if shift >= 1:
        return math.inf
    if shift == -math.inf:
        return -1.0
    return shift / (1 - shift)


def _invert(a: np.ndarray, b: np.ndarray) -> tuple[float, float]:
    """95% interval for tau from the randomisation test of |a - tau b| (index 0 observed).

    p(tau) is the share of schedules with f_p(tau) = (a_p - tau b_p)^2 - (a_0 - tau b_0)^2
    >= 0. f_p is the product of two linear factors, so it changes sign exactly at their
    roots: a sweep over the sorted roots, starting from each schedule's state at -infinity,
    gives p(tau) on every interval between roots. The interval is the hull of the accepted
    set (p > ALPHA), infinite when the test accepts arbitrarily large effects.
    """
    a0, b0 = a[0], b[0]
    tol = 1e-12 * (np.abs(a).max() + np.abs(b).max() + 1e-300)
    same = (np.abs(a - a0) <= tol) & (np.abs(b - b0) <= tol)
    mirrored = (np.abs(a + a0) <= tol) & (np.abs(b + b0) <= tol)
    always = same | mirrored
    quad, lin, const = b**2 - b0**2, a * b - a0 * b0, a**2 - a0**2
    lead = np.where(np.abs(quad) > tol**2, np.sign(quad), 0.0)
    lead = np.where(lead == 0, np.where(np.abs(lin) > tol**2, np.sign(lin), 0.0), lead)
    lead = np.where(lead == 0, np.where(const >= -(tol**2), 1.0, -1.0), lead)
    initial = always | (lead > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        roots = np.stack([(a - a0) / (b - b0), (a + a0) / (b + b0)], axis=1)
    roots[always[:, None] | ~np.isfinite(roots)] = np.nan
    roots.sort(axis=1)  # NaN last
    first = np.where(initial, -1.0, 1.0)
    deltas = np.stack([first, -first], axis=1)
    finite = np.isfinite(roots)
    points, index = np.unique(roots[finite], return_inverse=True)
    change = np.zeros(points.size)
    np.add.at(change, index, deltas[finite])
    counts = initial.sum() + np.concatenate([[0.0], np.cumsum(change)])
    accepted = counts / a.size > ALPHA
    if not accepted.any():
        return math.nan, math.nan
    inside = np.flatnonzero(accepted)
    low = -math.inf if inside[0] == 0 else float(points[inside[0] - 1])
    high = math.inf if inside[-1] == points.size else float(points[inside[-1]])
    return low, high


def _influence(
    frame: pd.DataFrame,
    table: _Table,
    cells: _Cells,
    fit: _Fit,
    inference: Inference,
    rng: np.random.Generator,
    draws: int,
) -> dict:
    """Wild cluster (unit) bootstrap or person-clustered inference from influence functions."""
    alpha, beta, estimate = _linearised(table, cells, fit)
    n_cells = cells.t.size
    events = np.unique(cells.relative)
    if inference == "wild_cluster":
        psi = np.einsum("jut,ut->ju", alpha, table.y) - np.einsum(
            "jut,ut->ju", beta, table.exposure
        )
        se = np.sqrt((psi**2).sum(axis=1))
        weights = rng.choice(WEBB, size=(draws, psi.shape[1]))
        boot = weights @ psi.T
        margin = np.quantile(np.abs(boot), 1 - ALPHA, axis=0)
        p_values = np.mean(np.abs(boot) >= np.abs(estimate) * (1 - 1e-9), axis=0)
    else:
        covariance = _person_covariance(frame, table, alpha, beta)
        se = np.sqrt(np.clip(np.diag(covariance), 0, None))
        margin = norm.ppf(1 - ALPHA / 2) * se
        with np.errstate(invalid="ignore", divide="ignore"):
            p_values = np.where(se > 0, 2 * norm.sf(np.abs(estimate) / se), 1.0 * (estimate == 0))
    event_rows = slice(n_cells, n_cells + events.size)
    pre = (events <= -2) & (fit.event_weight[0] > 0)
    pre_rows = np.arange(n_cells, n_cells + events.size)[pre]
    if inference == "wild_cluster":
        pre_draws = boot[:, pre_rows]
    else:
        pre_draws = _gaussian_draws(covariance[np.ix_(pre_rows, pre_rows)], rng, draws)
    pre_trend = _sup_test(estimate[pre_rows], se[pre_rows], pre_draws, events[pre], False)
    att_row, log_row = n_cells + events.size, n_cells + events.size + 2
    att, observed = float(estimate[att_row]), float(fit.observed[0, 0])
    counterfactual = observed - att
    log_ratio = math.log(observed / counterfactual) if observed > 0 < counterfactual else math.nan
    event_est = estimate[event_rows]
    return {
        "null_relative": (
            boot[:, att_row] * observed / counterfactual**2 if inference == "wild_cluster" else None
        ),
        "att": att,
        "se": float(se[att_row]),
        "ci_low": att - float(margin[att_row]),
        "ci_high": att + float(margin[att_row]),
        "p_value": float(p_values[att_row]),
        "counterfactual_rate": counterfactual,
        "relative_effect": _ratio(att, counterfactual),
        "relative_ci_low": math.expm1(log_ratio - float(margin[log_row])),
        "relative_ci_high": math.expm1(log_ratio + float(margin[log_row])),
        "group_time": _group_time(table, cells, fit, se[:n_cells]),
        "event_study": _event_study(
            events, event_est, event_est - margin[event_rows], event_est + margin[event_rows], fit
        ),
        "pre_trend": pre_trend,
        "draws": draws,
        "exact": False,
        "n_schedules": None,
    }


def _linearised(
    table: _Table, cells: _Cells, fit: _Fit
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Linearisation of every reported estimate in the unit x period totals.

    A rate r_S(t) = Y_S(t) / E_S(t) moves by sum_u (dY[u, t] - r_S(t) dE[u, t]) / E_S(t), so
    each estimate j is sum_{u,t} alpha[j, u, t] Y[u, t] - beta[j, u, t] E[u, t] to first
    order. Rows: the cells, the event-study points, the overall ATT, the observed post-period
    rate and the log of observed over counterfactual rate. The aggregation weights (the
    treated person-months) are held fixed: the estimand is the effect on these people in
    these months.
    """
    treated, comparison = _masks(table.cohort[None, :], cells, table.late)
    treated, comparison = treated[0], comparison[0]
    n_cells, (n_units, n_periods) = cells.t.size, table.y.shape
    valid = fit.weight[0] > 0
    alpha_att = np.zeros((n_cells, n_units, n_periods))
    beta_att = np.zeros_like(alpha_att)
    alpha_obs = np.zeros_like(alpha_att)
    beta_obs = np.zeros_like(alpha_att)
    k = np.arange(n_cells)
    for mask, index, sign, is_observed in (
        (treated, cells.t, 1.0, True),
        (treated, cells.base, -1.0, False),
        (comparison, cells.t, -1.0, False),
        (comparison, cells.base, 1.0, False),
    ):
        y = (mask * table.y[:, index].T).sum(axis=1)
        e = (mask * table.exposure[:, index].T).sum(axis=1)
        with np.errstate(invalid="ignore", divide="ignore"):
            scale = np.where(valid, sign / e, 0.0)
            rate = np.where(valid, y / e, 0.0)
        alpha_att[k, :, index] += mask * scale[:, None]
        beta_att[k, :, index] += mask * (scale * rate)[:, None]
        if is_observed:
            alpha_obs[k, :, index] = mask * scale[:, None]
            beta_obs[k, :, index] = mask * (scale * rate)[:, None]
    weight = fit.weight[0]
    events = np.unique(cells.relative)
    indicator = (cells.relative[None, :] == events[:, None]) * weight[None, :]
    totals = indicator.sum(axis=1, keepdims=True)
    event_map = np.divide(indicator, totals, out=np.zeros_like(indicator), where=totals > 0)
    post_weight = weight * cells.post
    overall_map = post_weight / post_weight.sum()
    att_map = np.vstack([np.eye(n_cells), event_map, overall_map, np.zeros(n_cells)])
    obs_map = np.vstack([np.zeros((n_cells + events.size + 1, n_cells)), overall_map])
    alpha = np.tensordot(att_map, alpha_att, 1) + np.tensordot(obs_map, alpha_obs, 1)
    beta = np.tensordot(att_map, beta_att, 1) + np.tensordot(obs_map, beta_obs, 1)
    att, observed = fit.overall[0, 0], fit.observed[0, 0]
    counterfactual = observed - att
    # log(O / CF) with CF = O - ATT: d = dO (1/O - 1/CF) + dATT / CF; not finite when no
    # event was observed, which the outcome's verdict then reports.
    with np.errstate(divide="ignore", invalid="ignore"):
        a_log = alpha[-1] * (1 / observed - 1 / counterfactual) + alpha[-2] / counterfactual
        b_log = beta[-1] * (1 / observed - 1 / counterfactual) + beta[-2] / counterfactual
    alpha = np.concatenate([alpha, a_log[None]])
    beta = np.concatenate([beta, b_log[None]])
    estimate = np.concatenate(
        [np.nan_to_num(fit.att[0, 0]), np.nan_to_num(fit.event[0, 0]), [att, observed, 0.0]]
    )
    return alpha, beta, estimate


def _cross_products(frame: pd.DataFrame, table: _Table) -> np.ndarray:
    """Per unit, Z_u = X_u' X_u of its people's monthly (y, exposure) vectors X_u, stacked
    (U, 2T, 2T): sufficient for the person-clustered variance of any estimate linear in the
    unit x period totals, sum_u C_u Z_u C_u' with C_u = [alpha[:, u], -beta[:, u]]."""
    person_code, _ = pd.factorize(frame["person"])
    t = frame["period"].to_numpy() - table.start
    n_periods = table.y.shape[1]
    n_people = int(person_code.max()) + 1
    wide = np.zeros((n_people, 2 * n_periods))
    wide[person_code, t] = frame["y"].to_numpy(dtype=float)
    wide[person_code, n_periods + t] = frame["exposure"].to_numpy(dtype=float)
    person_unit = np.zeros(n_people, dtype=int)
    person_unit[person_code] = table.row_unit
    return np.stack(
        [wide[person_unit == u].T @ wide[person_unit == u] for u in range(len(table.units))]
    )


def _person_covariance(
    frame: pd.DataFrame, table: _Table, alpha: np.ndarray, beta: np.ndarray
) -> np.ndarray:
    """Covariance of the estimates with the influence functions summed within each person
    (``_cross_products``)."""
    products = _cross_products(frame, table)
    covariance = np.zeros((alpha.shape[0], alpha.shape[0]))
    for u in range(len(table.units)):
        coefficients = np.concatenate([alpha[:, u], -beta[:, u]], axis=1)
        covariance += coefficients @ products[u] @ coefficients.T
    return covariance


def _gaussian_draws(covariance: np.ndarray, rng: np.random.Generator, draws: int) -> np.ndarray:
    values, vectors = np.linalg.eigh(covariance)
    root = vectors * np.sqrt(np.clip(values, 0, None))
    return rng.standard_normal((draws, covariance.shape[0])) @ root.T


def _sup_test(
    estimate: np.ndarray,
    scale: np.ndarray,
    null: np.ndarray,
    periods: np.ndarray,
    includes_observed: bool,
) -> PreTrendCheck:
    """Sup-t test that all ``estimate`` are zero, against ``null`` draws (rows) of them."""
    if estimate.size == 0:
        return PreTrendCheck(math.nan, math.nan, math.nan, None, 0)
    positive = scale > 0
    with np.errstate(invalid="ignore", divide="ignore"):
        t_obs = np.where(positive, np.abs(estimate) / scale, np.where(estimate == 0, 0, np.inf))
        t_null = np.where(positive, np.abs(null) / scale, 0.0)
    statistic = float(np.max(t_obs))
    null_max = np.nanmax(t_null, axis=1)
    p_value = float(np.mean(null_max >= statistic * (1 - 1e-9)))
    if not includes_observed and math.isinf(statistic):
        p_value = 0.0
    largest = int(np.argmax(np.abs(estimate)))
    return PreTrendCheck(
        statistic=statistic,
        p_value=p_value,
        largest_deviation=float(estimate[largest]),
        largest_deviation_period=int(periods[largest]),
        n_pre_periods=int(estimate.size),
    )


def _group_time(
    table: _Table, cells: _Cells, fit: _Fit, se: np.ndarray
) -> tuple[GroupTimeEffect, ...]:
    treated = table.cohort[:, None] == cells.cohort[None, :]
    people = (treated * table.people[:, cells.t]).sum(axis=0)
    valid = fit.weight[0] > 0
    return tuple(
        GroupTimeEffect(
            cohort=int(cells.cohort[k]) + table.start,
            period=int(cells.t[k]) + table.start,
            att=float(fit.att[0, 0, k]),
            se=float(se[k]),
            n_people=int(people[k]),
            exposure=float(fit.weight[0, k]),
        )
        for k in np.flatnonzero(valid)
    )


def _event_study(
    events: np.ndarray, estimate: np.ndarray, low: np.ndarray, high: np.ndarray, fit: _Fit
) -> tuple[EventStudyPoint, ...]:
    weight = fit.event_weight[0]
    return tuple(
        EventStudyPoint(int(e), float(estimate[i]), float(low[i]), float(high[i]), float(weight[i]))
        for i, e in enumerate(events)
        if weight[i] > 0
    )


def _verdict(
    table: _Table,
    cells: _Cells,
    fit: _Fit,
    control: Control,
    inference: Inference,
    pre_trend: PreTrendCheck | None,
    n_schedules: int | None,
) -> str:
    """ "answered", or the first plain reason why this data cannot answer."""
    n_units = len(table.units)
    treated_units = table.cohort < table.late
    n_treated = int(treated_units.sum())
    if n_treated < MIN_TREATED_UNITS:
        return (
            f"only {n_treated} treated unit(s): an effect at the level of the roll-out units "
            f"needs at least {MIN_TREATED_UNITS}, so the data cannot answer at cluster level"
        )
    if n_units < MIN_UNITS:
        return (
            f"only {n_units} units in all: at least {MIN_UNITS} are needed to tell an effect "
            "from differences between units"
        )
    if control == "never_treated" and not (~treated_units).any():
        return "no never-treated unit to compare with"
    estimable = fit.weight[0] > 0
    for g in np.unique(table.cohort[treated_units]):
        label = int(g) + table.start
        if g < 1:
            return f"the cohort going live in period {label} has no pre-period"
        if not (estimable & cells.post & (cells.cohort == g)).any():
            kind = control.replace("_", "-")
            return f"no {kind} comparison units after the cohort going live in period {label}"
    if inference == "wild_cluster":
        smallest = _smallest_group(table, cells, estimable)
        if smallest is not None:
            return (
                f"{smallest} has a single unit: the unit-level bootstrap cannot see that unit's "
                "own variation, so its interval is too narrow (use randomisation inference)"
            )
    if n_schedules is not None and n_schedules * ALPHA < 1:
        return (
            f"only {n_schedules} distinct roll-out schedules: a randomisation test cannot reach "
            f"the {ALPHA:.0%} level"
        )
    if pre_trend is None or pre_trend.n_pre_periods == 0:
        return "no pre-period before go-live (other than the reference month) to check trends"
    if pre_trend.p_value < ALPHA:
        return (
            f"pre-trends rejected (p = {pre_trend.p_value:.3f}): treated and comparison units "
            "did not move together before go-live"
        )
    return "answered"


def _smallest_group(table: _Table, cells: _Cells, estimable: np.ndarray) -> str | None:
    """A cohort or post-period comparison group of one unit, named, if there is one."""
    treated, comparison = _masks(table.cohort[None, :], cells, table.late)
    use = estimable & cells.post
    for k in np.flatnonzero(use & (treated[0].sum(axis=1) < 2)):
        return f"the cohort going live in period {int(cells.cohort[k]) + table.start}"
    for k in np.flatnonzero(use & (comparison[0].sum(axis=1) < 2)):
        return f"the comparison group in period {int(cells.t[k]) + table.start}"
    return None
