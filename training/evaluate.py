"""Headline metrics of one set of predictions: discrimination with a bootstrap interval,
calibration (in the large, slope, ICI/E50/E90), and what listing the top few percent finds."""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.optimize import brentq
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score

from riskstrat.training.calibration import ici_e50_e90
from riskstrat.training.fit import platt


def auroc_with_interval(
    labels: np.ndarray, scores: np.ndarray, resamples: int, seed: int
) -> tuple[float, float, float]:
    """AUROC and a percentile bootstrap 95% interval (resampling people with replacement)."""
    point = float(roc_auc_score(labels, scores))
    rng = np.random.default_rng(seed)
    draws = []
    for _ in range(resamples):
        idx = rng.integers(0, len(labels), len(labels))
        if labels[idx].min() != labels[idx].max():
            draws.append(roc_auc_score(labels[idx], scores[idx]))
    low, high = np.percentile(draws, [2.5, 97.5]) if draws else (np.nan, np.nan)
    return point, float(low), float(high)


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
    """The headline metrics of calibrated risks against observed outcomes."""
    auroc, low, high = auroc_with_interval(labels, risk, resamples, seed)
    metrics = {
        "auroc": auroc,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
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
