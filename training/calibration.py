"""Calibration measures beyond slope and intercept: a smoothed calibration curve, ICI, E50, E90.

Following Austin and Steyerberg (2019): regress the outcome on the predicted risk with a
local linear smoother (tricube weights, span 0.75, as R's ``loess``), then measure how far
the predictions lie from that curve: ICI is the mean absolute distance, E50 the median, E90
the 90th percentile. The smoother is statsmodels' LOWESS without its robustness iterations:
those down-weight large residuals, and with a 0/1 outcome every event is a large residual.
"""

from __future__ import annotations

import numpy as np
from statsmodels.nonparametric.smoothers_lowess import lowess

SPAN = 0.75  # the share of the people each local fit uses


def lowess_curve(x: np.ndarray, y: np.ndarray, grid: np.ndarray, span: float = SPAN) -> np.ndarray:
    """Local linear fit of ``y`` on ``x`` evaluated at ``grid``, tricube-weighted, in [0, 1]."""
    fitted = lowess(y, x, frac=span, it=0, xvals=grid)
    return np.clip(fitted, 0.0, 1.0)


def smoothed_calibration(
    labels: np.ndarray, risk: np.ndarray, points: int = 100, sample: int = 50_000, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """The smoothed observed rate at ``points`` risk quantiles (on a sample, for speed)."""
    rng = np.random.default_rng(seed)
    idx = rng.choice(len(risk), min(sample, len(risk)), replace=False)
    grid = np.unique(np.quantile(risk, np.linspace(0.0, 1.0, points)))
    return grid, lowess_curve(risk[idx], labels[idx].astype(float), grid)


def ici_e50_e90(labels: np.ndarray, risk: np.ndarray, seed: int = 0) -> dict[str, float]:
    """Integrated calibration index and the median and 90th percentile absolute error."""
    grid, observed = smoothed_calibration(labels, risk, seed=seed)
    error = np.abs(risk - np.interp(risk, grid, observed))
    return {
        "ici": float(error.mean()),
        "e50": float(np.median(error)),
        "e90": float(np.quantile(error, 0.9)),
    }
