"""Calibration measures beyond slope and intercept: a smoothed calibration curve, ICI, E50, E90.

Following Austin and Steyerberg (2019): regress the outcome on the predicted risk with a
local linear smoother (tricube weights, span 0.75, as R's ``loess``), then measure how far
the predictions lie from that curve: ICI is the mean absolute distance, E50 the median, E90
the 90th percentile.
"""

from __future__ import annotations

import numpy as np


def lowess_curve(x: np.ndarray, y: np.ndarray, grid: np.ndarray, span: float = 0.75) -> np.ndarray:
    """Local linear fit of ``y`` on ``x`` evaluated at ``grid``, tricube-weighted."""
    k = max(2, int(np.ceil(span * len(x))))
    fitted = np.empty(len(grid))
    for i, point in enumerate(grid):
        distance = np.abs(x - point)
        bandwidth = np.partition(distance, k - 1)[k - 1] or 1e-12
        weight = np.clip(1 - (distance / bandwidth) ** 3, 0, None) ** 3
        total = weight.sum()
        mean_x, mean_y = weight @ x / total, weight @ y / total
        spread = weight @ (x - mean_x) ** 2
        slope = weight @ ((x - mean_x) * (y - mean_y)) / spread if spread > 0 else 0.0
        fitted[i] = mean_y + slope * (point - mean_x)
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
