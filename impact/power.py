"""Power: the smallest effect a design could tell from noise in this data."""

from __future__ import annotations

from scipy.stats import norm

ALPHA = 0.05
POWER = 0.8


def minimum_detectable_effect(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """The true effect (in the estimate's own units) a two-sided test at ``alpha`` detects
    with probability ``power``, given the estimate's standard error ``se``."""
    if se < 0:
        raise ValueError(f"standard error must not be negative, got {se}")
    return float((norm.ppf(1 - alpha / 2) + norm.ppf(power)) * se)
