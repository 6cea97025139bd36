"""Regression discontinuity at the risk list's cut-off, for the actions the list triggers.

People whose score on a list run is at or above the tier cut-off are listed, and listed people
are offered a reablement plan or a social prescribing referral with a capacity-limited
probability. The cut-off therefore changes the probability of an action, not from 0 to 1: a
fuzzy design. Comparing people just either side of the cut-off gives two estimates:

- the intention-to-treat (ITT) effect of being listed: the jump in the outcome at the cut-off
  (a sharp RD of the outcome on the score);
- the effect of the action on those who take it up at the cut-off: the ITT jump divided by
  the jump in take-up (the first stage), a local Wald ratio.

The outcome is the rate ``y / exposure`` weighted by ``exposure``, so a local mean is the
ratio of summed outcomes to summed exposure (the rate per unit of exposure), as in the other
designs. Estimation is ``rdrobust``'s local linear fit with a triangular kernel, one common
MSE-optimal bandwidth (``mserd``), the conventional point estimate and the robust
bias-corrected 95% interval and p-value (Calonico, Cattaneo and Titiunik 2014). A person
scored at several runs contributes several rows, so standard errors are clustered on groups of
people that keep each person's rows together (``VARIANCE_GROUPS``: rdrobust's cluster variance
is too slow with one cluster per person). The manipulation check is ``rddensity``'s local
polynomial density test at the cut-off (Cattaneo, Jansson and Ma 2020). Nothing is written by
hand that the two libraries do.
"""

from __future__ import annotations

import contextlib
import io
import math
import numbers
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from riskstrat.impact.missing import unestimated

COLUMNS = ("person", "score", "took_up", "y", "exposure")

ANSWERED = "answered"
# Fewer rows than this on either side within the bandwidth and the verdict says the data
# cannot answer. The robust interval is a large-sample approximation that also fits a local
# quadratic for the bias on each side, and the density test needs its own local sample
# (rddensity's floor is 20 + p + 1 = 23 a side): in simulations with known effects the
# interval held its coverage from about this many people a side and slipped below it with
# fewer.
MIN_PEOPLE_PER_SIDE = 100
# First-stage F below this is a weak instrument (Staiger and Stock 1997; Stock and Yogo 2005):
# the Wald ratio's interval is then unreliable however narrow it looks.
WEAK_FIRST_STAGE_F = 10.0
# The density test's p-value below this flags manipulation of the score at the cut-off.
MANIPULATION_ALPHA = 0.05
LEVEL = 95
# Standard errors are clustered on this many groups of people, each person's rows in one
# group. Any grouping that keeps a person's rows together is valid for cluster-robust errors,
# and with this many groups the variance is estimated nearly as precisely as per person;
# rdrobust's cluster variance loops over clusters in Python, so one cluster per person made
# each fit slow in proportion to the people in the band.
VARIANCE_GROUPS = 1000


@dataclass(frozen=True)
class RdEffect:
    """A jump at the cut-off: the conventional local linear estimate with the robust
    bias-corrected 95% interval and two-sided p-value."""

    estimate: float
    ci_low: float
    ci_high: float
    p_value: float


@dataclass(frozen=True)
class RdEstimate:
    """The regression discontinuity at the list's cut-off.

    ``itt`` is the jump in the outcome rate (effect of being listed), ``fuzzy`` the effect of
    the action on those who take it up at the cut-off, ``first_stage`` the jump in the share
    taking it up and ``first_stage_f`` its strength (squared conventional t statistic).
    ``control_mean`` is the outcome rate just below the cut-off (the ITT's comparison level,
    for a relative effect). Bandwidths are in score units (the same each side). ``n_left`` and
    ``n_right`` count rows (person-runs) below and at-or-above the cut-off within the ITT
    bandwidth, or on each side in all when no estimate was made. ``density_p`` is the
    manipulation test's p-value. Estimates the data could not give are ``None``; ``verdict``
    is ``ANSWERED`` or the plain reason the data cannot answer.
    """

    cutoff: float
    itt: RdEffect | None
    fuzzy: RdEffect | None
    first_stage: RdEffect | None
    first_stage_f: float | None
    control_mean: float | None
    itt_bandwidth: float | None
    fuzzy_bandwidth: float | None
    n_left: int
    n_right: int
    n_people: int
    density_p: float | None
    verdict: str


def regression_discontinuity(frame: pd.DataFrame, *, cutoff: float) -> RdEstimate:
    """Estimate the ITT and fuzzy effects at ``cutoff`` from one row per person and list run
    (columns ``COLUMNS``), check the density of scores and give a verdict. Deterministic: the
    libraries draw nothing at random, and rows are put in a fixed order first."""
    data = _validated(frame, cutoff)
    below = data["score"] < cutoff
    n_people = int(data["person"].nunique())
    sides = (int(below.sum()), int((~below).sum()))
    if min(sides) < MIN_PEOPLE_PER_SIDE:
        return unestimated(
            RdEstimate,
            None,
            cutoff=float(cutoff),
            n_left=sides[0],
            n_right=sides[1],
            n_people=n_people,
            verdict=_too_few(*sides),
        )
    score = data["score"].to_numpy(float)
    rate = (data["y"] / data["exposure"]).to_numpy(float)
    weights = data["exposure"].to_numpy(float)
    cluster = _variance_groups(data["person"])
    sharp = _rdrobust(rate, score, cutoff, weights=weights, cluster=cluster)
    n_left, n_right = (int(n) for n in sharp.N_h)
    taken_up = bool(data.loc[~below, "took_up"].any())
    fuzzy: RdEffect | None = None
    first_stage: RdEffect | None = None
    first_stage_f: float | None = None
    fuzzy_bandwidth: float | None = None
    if taken_up:
        fit = _rdrobust(
            rate,
            score,
            cutoff,
            weights=weights,
            cluster=cluster,
            fuzzy=data["took_up"].to_numpy(float),
        )
        fuzzy = _effect(fit.coef, fit.ci, fit.pv)
        first_stage = _effect(fit.tau_T, fit.ci_T, fit.pv_T)
        first_stage_f = _first_stage_f(fit.tau_T, fit.se_T)
        fuzzy_bandwidth = float(fit.bws.loc["h", "left"])
    density_p = _density_p(score, cutoff)
    return RdEstimate(
        cutoff=float(cutoff),
        itt=_effect(sharp.coef, sharp.ci, sharp.pv),
        fuzzy=fuzzy,
        first_stage=first_stage,
        first_stage_f=first_stage_f,
        control_mean=float(sharp.tau_cl[0]),
        itt_bandwidth=float(sharp.bws.loc["h", "left"]),
        fuzzy_bandwidth=fuzzy_bandwidth,
        n_left=n_left,
        n_right=n_right,
        n_people=n_people,
        density_p=density_p,
        verdict=_verdict(n_left, n_right, taken_up, first_stage_f, density_p),
    )


def rd_bins(frame: pd.DataFrame, cutoff: float, bins: int = 20) -> pd.DataFrame:
    """Binned means for the RD plot: each side of ``cutoff`` cut into ``bins`` equal-width
    bins of score; per non-empty bin its side (``below`` or ``at_or_above``), mid-point,
    outcome rate (summed ``y`` over summed ``exposure``, the estimate's scale), take-up share
    and number of rows."""
    if isinstance(bins, bool) or not isinstance(bins, int) or bins < 1:
        raise ValueError(f"RD bins: bins must be a positive whole number, got {bins!r}")
    data = _validated(frame, cutoff)
    low, high = float(data["score"].min()), float(data["score"].max())
    parts = []
    for side, rows, edges in (
        ("below", data[data["score"] < cutoff], np.linspace(low, cutoff, bins + 1)),
        ("at_or_above", data[data["score"] >= cutoff], np.linspace(cutoff, high, bins + 1)),
    ):
        # Bins are closed on the left; the last also takes the side's top edge.
        index = np.clip(np.searchsorted(edges, rows["score"], side="right") - 1, 0, bins - 1)
        grouped = rows.assign(bin=index).groupby("bin")
        summed = grouped[["y", "exposure"]].sum()
        parts.append(
            pd.DataFrame(
                {
                    "side": side,
                    "mid": (edges[summed.index] + edges[summed.index + 1]) / 2,
                    "rate": (summed["y"] / summed["exposure"]).to_numpy(),
                    "took_up": grouped["took_up"].mean().to_numpy(float),
                    "n": grouped.size().to_numpy(int),
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def _validated(frame: pd.DataFrame, cutoff: float) -> pd.DataFrame:
    """The frame's RD columns in a fixed row order, or a ValueError naming the bad column,
    row or value."""
    missing = [column for column in COLUMNS if column not in frame.columns]
    if missing:
        raise ValueError(f"RD frame: missing column(s) {', '.join(map(repr, missing))}")
    if frame.empty:
        raise ValueError("RD frame: no rows")
    for column in ("score", "y", "exposure"):
        if not pd.api.types.is_numeric_dtype(frame[column]) or pd.api.types.is_bool_dtype(
            frame[column]
        ):
            raise ValueError(f"RD frame: column '{column}' must be numeric")
        _no_bad_rows(frame, column, ~np.isfinite(frame[column].to_numpy(float)), "not finite")
    _no_bad_rows(frame, "y", frame["y"].to_numpy(float) < 0, "negative")
    _no_bad_rows(frame, "exposure", frame["exposure"].to_numpy(float) <= 0, "not positive")
    if not pd.api.types.is_bool_dtype(frame["took_up"]) or frame["took_up"].isna().any():
        raise ValueError("RD frame: column 'took_up' must be boolean without missing values")
    _no_bad_rows(frame, "person", frame["person"].isna().to_numpy(), "missing")
    if (
        isinstance(cutoff, bool)
        or not isinstance(cutoff, numbers.Real)
        or not math.isfinite(cutoff)
    ):
        raise ValueError(f"RD cut-off must be a finite number, got {cutoff!r}")
    low, high = float(frame["score"].min()), float(frame["score"].max())
    if not low < cutoff <= high:
        side = "below" if cutoff <= low else "at or above"
        raise ValueError(
            f"RD cut-off {cutoff} is outside the scores' range: no score {side} it "
            f"(column 'score' runs from {low} to {high})"
        )
    return (
        frame.loc[:, list(COLUMNS)]
        .astype({"took_up": bool})
        .sort_values(["score", "person"], kind="stable")
        .reset_index(drop=True)
    )


def _no_bad_rows(frame: pd.DataFrame, column: str, bad: np.ndarray, what: str) -> None:
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise ValueError(
            f"RD frame: {int(bad.sum())} row(s) with '{column}' {what}, the first at row {row} "
            f"(person {frame['person'].iloc[row]!r}, {column}={frame[column].iloc[row]!r})"
        )


def _variance_groups(person: pd.Series) -> np.ndarray:
    """Each row's variance group: people in the order of their ids, dealt round
    ``VARIANCE_GROUPS`` groups, so a person's rows share a group whatever the row order."""
    rank, _ = pd.factorize(person.astype(str), sort=True)
    return rank % VARIANCE_GROUPS


def _rdrobust(y: np.ndarray, x: np.ndarray, cutoff: float, **options: Any) -> Any:
    """One local linear RD fit; rdrobust prints notes (mass points) that are not ours to
    print, so its output is kept off stdout."""
    from rdrobust import rdrobust

    with _quiet():
        return rdrobust(
            y,
            x,
            c=cutoff,
            p=1,
            kernel="triangular",
            bwselect="mserd",
            level=LEVEL,
            **options,
        )


def _density_p(score: np.ndarray, cutoff: float) -> float:
    """The p-value of rddensity's test that the score's density is continuous at the cut-off
    (jackknife standard errors, its default)."""
    # Imported when used: rddensity imports sympy, which takes seconds.
    from rddensity import rddensity

    with _quiet():
        result = rddensity(score, c=cutoff)
    return float(result.test["p_jk"])


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _effect(coef: pd.DataFrame, ci: pd.DataFrame, pv: pd.DataFrame) -> RdEffect:
    """The conventional estimate with the robust bias-corrected interval and p-value, from
    rdrobust's tables (rows: Conventional, Bias-Corrected, Robust)."""
    return RdEffect(
        estimate=float(coef.loc["Conventional"].iloc[0]),
        ci_low=float(ci.loc["Robust", "CI Lower"]),
        ci_high=float(ci.loc["Robust", "CI Upper"]),
        p_value=float(pv.loc["Robust"].iloc[0]),
    )


def _first_stage_f(coef: pd.DataFrame, se: pd.DataFrame) -> float:
    """The first stage's strength: the squared t statistic of the conventional jump."""
    jump, error = float(coef.loc["Conventional"].iloc[0]), float(se.loc["Conventional"].iloc[0])
    return (jump / error) ** 2 if error > 0 else math.inf


def _too_few(n_left: int, n_right: int) -> str:
    return (
        f"too few people near the cut-off: {n_left} below and {n_right} at or above it "
        f"(at least {MIN_PEOPLE_PER_SIDE} each side needed)"
    )


def _verdict(
    n_left: int,
    n_right: int,
    taken_up: bool,
    first_stage_f: float | None,
    density_p: float,
) -> str:
    """``ANSWERED``, or the first reason, most fundamental first, why the data cannot answer."""
    if min(n_left, n_right) < MIN_PEOPLE_PER_SIDE:
        return _too_few(n_left, n_right)
    if not taken_up:
        return "no take-up: nobody at or above the cut-off took up a list-triggered action"
    if density_p < MANIPULATION_ALPHA:
        return (
            f"manipulation detected: the density of scores jumps at the cut-off "
            f"(density test p = {density_p:.3g})"
        )
    if first_stage_f is None or not first_stage_f >= WEAK_FIRST_STAGE_F:
        return (
            f"weak first stage: take-up barely changes at the cut-off "
            f"(F = {first_stage_f:.3g}, at least {WEAK_FIRST_STAGE_F:g} needed)"
        )
    return ANSWERED
