"""A risk-list run's recorded lottery for scarce help, analysed as the randomised trial it is.

When more people qualify for an offer than a team has offers, the weekly run can decide who
is offered by a seeded draw; each draw is kept as ``risk_list_lottery`` events (the help
drawn for; drawn or not). Each run, kind of help and team is one lottery with its own chance
of being drawn, so the comparison is stratified: in each lottery, the mean outcome of those
drawn minus that of those not drawn, averaged over the lotteries weighted by their size,
with Neyman's variance per lottery (Imbens and Rubin 2015, ch. 9). That is the effect of
the offer (intention to treat): everyone drawn counts, whether they took it up or not.

Who takes an offer up is not random; the draw is, so it is an instrument. The effect among
those who took help up because they were drawn (the complier average causal effect; Angrist,
Imbens and Rubin 1996) is the offer's effect divided by the difference in uptake the draw
made (Wald), with a delta-method interval from the residuals ``y - effect * took_up``. It
needs the draw to act on outcomes only through the help (no one is told they lost in a way
that changes their care) and nobody less likely to take help up because they were drawn.

No pre-trends, matching or outcome model is needed. The check is that the arms' outcomes
in the year before the run do not differ beyond chance: a draw that was overridden or not
recorded as made fails it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import stats

from riskstrat.impact.results import ANSWERED, Interval

Z = float(stats.norm.ppf(0.975))
MIN_PER_ARM = 2  # a lottery with fewer in either arm has no variance to estimate: left out
MIN_FIRST_STAGE_F = 10.0  # the usual floor for an instrument that is not weak


@dataclass(frozen=True, slots=True)
class Difference:
    """A stratified difference in means (drawn minus not drawn) and its parts."""

    estimate: float
    variance: float
    drawn_mean: float
    not_drawn_mean: float
    drawn_variance: float  # of the weighted mean of the drawn
    not_drawn_variance: float

    @property
    def se(self) -> float:
        return float(np.sqrt(self.variance))


@dataclass(frozen=True, slots=True)
class LotteryEstimate:
    """What the lotteries say about one outcome; ``verdict`` is ``ANSWERED`` or why not."""

    effect: Interval  # the offer's effect (intention to treat), in the outcome's units
    relative: Interval | None  # the same as a proportional change
    relative_se: float | None  # its standard error, before the interval is cut at -100%
    among_takers: Interval | None  # the effect among those the draw made take help up
    uptake: Interval  # the difference in uptake the draw made (the first stage)
    first_stage_f: float
    drawn_mean: float
    not_drawn_mean: float
    n_drawn: int
    n_not_drawn: int
    n_lotteries: int
    lotteries_left_out: int
    verdict: str = ANSWERED


def usable(frame: pd.DataFrame) -> pd.Series:
    """Per row of ``frame`` (columns ``lottery`` and ``drawn``): whether its lottery has at
    least ``MIN_PER_ARM`` people in each arm."""
    arms = frame.groupby("lottery")["drawn"].agg(drawn="sum", n="size")
    ok = (arms["drawn"] >= MIN_PER_ARM) & (arms["n"] - arms["drawn"] >= MIN_PER_ARM)
    return frame["lottery"].map(ok).astype(bool)


def stratified_difference(values: pd.Series, frame: pd.DataFrame) -> Difference:
    """Drawn minus not drawn in ``values``, per lottery of ``frame`` (``lottery``,
    ``drawn``), weighted by the lottery's size; every lottery must have two in each arm."""
    data = pd.DataFrame({"v": values.to_numpy(float), "lottery": frame["lottery"].to_numpy()})
    data["drawn"] = frame["drawn"].to_numpy(bool)
    arms = data.groupby(["lottery", "drawn"])["v"].agg(["mean", "var", "size"]).unstack("drawn")
    sizes = arms["size"].sum(axis=1)
    w = sizes / sizes.sum()
    m1, m0 = arms["mean"][True], arms["mean"][False]
    v1 = (w**2 * arms["var"][True] / arms["size"][True]).sum()
    v0 = (w**2 * arms["var"][False] / arms["size"][False]).sum()
    return Difference(
        estimate=float((w * (m1 - m0)).sum()),
        variance=float(v1 + v0),
        drawn_mean=float((w * m1).sum()),
        not_drawn_mean=float((w * m0).sum()),
        drawn_variance=float(v1),
        not_drawn_variance=float(v0),
    )


def interval(estimate: float, se: float) -> Interval:
    """A normal 95% interval and two-sided p-value (a point when ``se`` is 0 or unknown)."""
    if not np.isfinite(se) or se <= 0:
        return Interval(estimate=estimate, ci_low=estimate, ci_high=estimate, p_value=None)
    return Interval(
        estimate=estimate,
        ci_low=estimate - Z * se,
        ci_high=estimate + Z * se,
        p_value=float(2 * stats.norm.sf(abs(estimate) / se)),
    )


def _relative(diff: Difference) -> tuple[Interval | None, float | None]:
    """The ratio of the arms' means minus 1 with a delta-method interval (treating the arms'
    weighted means as independent), and its standard error; none when the not-drawn mean is
    not positive. A rate cannot fall by more than all of it: the interval stops at -100%."""
    m0 = diff.not_drawn_mean
    if m0 <= 0:
        return None, None
    ratio = diff.drawn_mean / m0
    se = float(np.sqrt(diff.drawn_variance + ratio**2 * diff.not_drawn_variance) / m0)
    found = interval(ratio - 1.0, se)
    cut = {k: max(getattr(found, k), -1.0) for k in ("estimate", "ci_low", "ci_high")}
    return found.model_copy(update=cut), se


def difference(a: LotteryEstimate, b: LotteryEstimate) -> Interval | None:
    """``a``'s proportional change minus ``b``'s, from independent lotteries; none when
    either has none."""
    if a.relative is None or b.relative is None or a.relative_se is None or b.relative_se is None:
        return None
    return interval(
        a.relative.estimate - b.relative.estimate, np.hypot(a.relative_se, b.relative_se)
    )


def lottery_effect(frame: pd.DataFrame, outcome: str) -> LotteryEstimate:
    """The offer's effect on ``outcome`` and its effect among those who took help up.

    ``frame`` has one row per person and lottery: ``lottery`` (its id), ``drawn``,
    ``took_up`` (booleans) and the outcome column; lotteries without two people in each
    arm are left out and counted."""
    keep = usable(frame)
    left_out = int(frame.loc[~keep, "lottery"].nunique())
    data = frame[keep]
    n_drawn = int(data["drawn"].sum())
    empty = Interval(estimate=np.nan, ci_low=np.nan, ci_high=np.nan)
    if data.empty:
        return LotteryEstimate(
            effect=empty,
            relative=None,
            relative_se=None,
            among_takers=None,
            uptake=empty,
            first_stage_f=np.nan,
            drawn_mean=np.nan,
            not_drawn_mean=np.nan,
            n_drawn=0,
            n_not_drawn=0,
            n_lotteries=0,
            lotteries_left_out=left_out,
            verdict=f"no lottery had at least {MIN_PER_ARM} people drawn and {MIN_PER_ARM} not",
        )
    y = data[outcome].astype(float)
    took = data["took_up"].astype(float)
    itt = stratified_difference(y, data)
    first = stratified_difference(took, data)
    if first.variance > 0:
        f_stat = first.estimate**2 / first.variance
    else:  # uptake the same in every person of each arm: strong if it differs, else none
        f_stat = np.inf if first.estimate != 0 else 0.0
    among = None
    if first.estimate > 0:
        beta = itt.estimate / first.estimate
        residual = stratified_difference(y - beta * took, data)
        among = interval(beta, residual.se / first.estimate)
    relative, relative_se = _relative(itt)
    return LotteryEstimate(
        effect=interval(itt.estimate, itt.se),
        relative=relative,
        relative_se=relative_se,
        among_takers=among,
        uptake=interval(first.estimate, first.se),
        first_stage_f=float(f_stat),
        drawn_mean=itt.drawn_mean,
        not_drawn_mean=itt.not_drawn_mean,
        n_drawn=n_drawn,
        n_not_drawn=len(data) - n_drawn,
        n_lotteries=int(data["lottery"].nunique()),
        lotteries_left_out=left_out,
    )
