"""Headline metrics of one set of predictions: discrimination with a bootstrap interval,
calibration (in the large, slope, ICI/E50/E90), and what listing the top few percent finds."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from scipy.stats import DegenerateDataWarning, bootstrap
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from riskstrat.training.calibration import ici_e50_e90
from riskstrat.training.fit import platt

BATCH_VALUES = 1 << 22  # resampled values held in memory at once: bounds the bootstrap's memory


@dataclass(frozen=True, slots=True)
class Interval:
    """A percentile bootstrap 95% interval, or why there is none (then ``low`` and ``high``
    are NaN and ``missing`` says why)."""

    low: float
    high: float
    missing: str = ""

    @classmethod
    def absent(cls, why: str) -> Interval:
        return cls(math.nan, math.nan, why)


def auroc(labels: np.ndarray, scores: np.ndarray) -> float:
    """AUROC, or NaN when the labels hold one outcome only (AUROC is then undefined)."""
    if labels.min() == labels.max():
        return math.nan
    return float(roc_auc_score(labels, scores))


def bootstrap_interval(
    statistic: Callable[..., float], samples: tuple[np.ndarray, ...], resamples: int, seed: int
) -> Interval:
    """Percentile bootstrap 95% interval of ``statistic(*samples)``, resampling people with
    replacement, the same people from every sample (paired: the samples are columns of one
    table). There is none when ``resamples`` is 0 or when a resample gives NaN (a resample with
    one outcome only: too few events to bootstrap)."""
    if resamples == 0:
        return Interval.absent("no bootstrap resamples were asked for (bootstrap = 0)")
    with warnings.catch_warnings():  # a NaN in the distribution is reported below, in words
        warnings.simplefilter("ignore", DegenerateDataWarning)
        result = bootstrap(
            samples,
            statistic,
            n_resamples=resamples,
            batch=max(1, BATCH_VALUES // (len(samples) * len(samples[0]))),
            vectorized=False,
            paired=True,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    unusable = int(np.isnan(result.bootstrap_distribution).sum())
    if unusable:
        return Interval.absent(
            f"{unusable} of {resamples} bootstrap resamples had one outcome only "
            "(too few events for an interval)"
        )
    low, high = result.confidence_interval
    return Interval(float(low), float(high))


def auroc_with_interval(
    labels: np.ndarray, scores: np.ndarray, resamples: int, seed: int
) -> tuple[float, Interval]:
    """AUROC and its percentile bootstrap 95% interval (resampling people with replacement)."""
    return auroc(labels, scores), bootstrap_interval(auroc, (labels, scores), resamples, seed)


def _logit(risk: np.ndarray) -> np.ndarray:
    clipped = np.clip(risk, 1e-6, 1 - 1e-6)
    return np.log(clipped / (1 - clipped))


def calibration_slope(labels: np.ndarray, risk: np.ndarray) -> float:
    """Slope of the logistic recalibration of ``labels`` on logit(risk); 1 is ideal."""
    return platt(_logit(risk), labels).slope


def calibration_in_the_large(labels: np.ndarray, risk: np.ndarray) -> float:
    """Intercept ``a`` with the slope fixed at 1: mean(sigmoid(logit(risk) + a)) = mean(labels).

    0 is ideal; positive means risks are too low on average.
    """
    logit, target = _logit(risk), labels.mean()
    return float(brentq(lambda a: np.mean(1 / (1 + np.exp(-(logit + a)))) - target, -10, 10))


def _as_outcomes(p_true: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, ...]:
    """Each person twice: a positive weighted ``p_true`` and a negative weighted 1 - p."""
    p = np.asarray(p_true, dtype=float)
    return (
        np.concatenate([np.ones(len(p)), np.zeros(len(p))]),
        np.concatenate([score, score]),
        np.concatenate([p, 1.0 - p]),
    )


def truth_auroc(p_true: np.ndarray, score: np.ndarray) -> float:
    """AUROC against known risks rather than outcomes: each person counts as a positive with
    weight ``p_true`` and as a negative with weight 1 - ``p_true`` (the AUROC expected over
    outcomes drawn from those risks, without their noise)."""
    labels, scores, weights = _as_outcomes(p_true, np.asarray(score, dtype=float))
    return float(roc_auc_score(labels, scores, sample_weight=weights))


def truth_calibration_slope(p_true: np.ndarray, risk: np.ndarray) -> float:
    """The calibration slope against known risks, weighted as ``truth_auroc``; 1 is ideal."""
    labels, risks, weights = _as_outcomes(p_true, np.asarray(risk, dtype=float))
    return platt(_logit(risks), labels, weights).slope


TOP_SHARES = (0.005, 0.01, 0.02, 0.05, 0.1)


def top_share_table(
    labels: np.ndarray, risk: np.ndarray, shares: tuple[float, ...] = TOP_SHARES
) -> pd.DataFrame:
    """PPV, sensitivity and the risk threshold when the top ``share`` of people is listed.

    Ties at the threshold are broken by row order (stable sort), as a list would be.
    """
    order = np.argsort(-risk, kind="stable")
    rows = []
    for share in shares:
        k = max(1, round(share * len(risk)))
        hits = labels[order[:k]].sum()
        rows.append(
            {
                "top_share": share,
                "people": k,
                "threshold": float(risk[order[k - 1]]),
                "ppv": float(hits / k),
                "sensitivity": float(hits / max(labels.sum(), 1)),
            }
        )
    return pd.DataFrame(rows)


def discrimination(labels: np.ndarray, score: np.ndarray) -> dict[str, float]:
    """AUROC, AUPRC and PPV in the top 1% for any score (risks or counts)."""
    return {
        "auroc": float(roc_auc_score(labels, score)),
        "auprc": float(average_precision_score(labels, score)),
        "ppv_top_1pct": float(top_share_table(labels, score, (0.01,))["ppv"].iloc[0]),
    }


def evaluate(labels: np.ndarray, risk: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    """The headline metrics of calibrated risks against observed outcomes (``resamples``
    bootstrap resamples for the AUROC's interval, drawn from ``seed``)."""
    point, interval = auroc_with_interval(labels, risk, resamples, seed)
    metrics = {
        "auroc": point,
        "auroc_ci_low": interval.low,  # NaN when there is no interval (bootstrap = 0)
        "auroc_ci_high": interval.high,
        "auprc": float(average_precision_score(labels, risk)),
        "brier": float(brier_score_loss(labels, risk)),
        "observed_rate": float(labels.mean()),
        "mean_predicted": float(risk.mean()),
        "calibration_slope": calibration_slope(labels, risk),
        "calibration_intercept": calibration_in_the_large(labels, risk),
        **ici_e50_e90(labels, risk, seed),
    }
    for row in top_share_table(labels, risk).itertuples():
        metrics[f"ppv_top_{row.top_share * 100:g}pct"] = row.ppv
        metrics[f"sensitivity_top_{row.top_share * 100:g}pct"] = row.sensitivity
    return metrics
