"""Out-of-time evaluation: discrimination with a bootstrap interval, and calibration."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import average_precision_score, brier_score_loss, roc_auc_score


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


def calibration_slope_intercept(labels: np.ndarray, risk: np.ndarray) -> tuple[float, float]:
    """Slope and intercept of the logistic recalibration of ``labels`` on logit(risk)."""
    from sklearn.linear_model import LogisticRegression

    clipped = np.clip(risk, 1e-6, 1 - 1e-6)
    logit = np.log(clipped / (1 - clipped)).reshape(-1, 1)
    model = LogisticRegression(C=1e6, max_iter=1000).fit(logit, labels)
    return float(model.coef_[0, 0]), float(model.intercept_[0])


def top_share_ppv(labels: np.ndarray, risk: np.ndarray, share: float) -> tuple[float, float]:
    """PPV and sensitivity among the ``share`` of people with the highest risk."""
    k = max(1, round(share * len(risk)))
    top = np.argsort(-risk, kind="stable")[:k]
    hits = labels[top].sum()
    return float(hits / k), float(hits / max(labels.sum(), 1))


def evaluate(labels: np.ndarray, risk: np.ndarray, resamples: int, seed: int) -> dict[str, float]:
    """The headline metrics of one set of predictions against observed outcomes."""
    auroc, low, high = auroc_with_interval(labels, risk, resamples, seed)
    slope, intercept = calibration_slope_intercept(labels, risk)
    metrics = {
        "auroc": auroc,
        "auroc_ci_low": low,
        "auroc_ci_high": high,
        "auprc": float(average_precision_score(labels, risk)),
        "brier": float(brier_score_loss(labels, risk)),
        "observed_rate": float(labels.mean()),
        "mean_predicted": float(risk.mean()),
        "calibration_slope": slope,
        "calibration_intercept": intercept,
    }
    for share in (0.01, 0.05):
        ppv, sensitivity = top_share_ppv(labels, risk, share)
        metrics[f"ppv_top_{share * 100:g}pct"] = ppv
        metrics[f"sensitivity_top_{share * 100:g}pct"] = sensitivity
    return metrics
