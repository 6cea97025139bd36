"""Where a risk stands: its percentile in the model's test population and its tier.

Shared by the weekly lists and the HTTP service so both say the same thing about a person.
"""

from __future__ import annotations

import numpy as np

from models.bundle import ModelBundle

VERY_HIGH, HIGH, NOT_LISTED = "very high", "high", ""


def percentile_in_population(bundle: ModelBundle, risk: np.ndarray) -> np.ndarray:
    """Where each risk falls among the model's test population (0-100)."""
    quantiles = np.asarray(bundle.metadata["test_population_risk_quantiles"])
    return np.interp(risk, quantiles, np.linspace(0, 100, len(quantiles)))


def tier_by_threshold(bundle: ModelBundle, risk: np.ndarray) -> np.ndarray:
    """Tier from the thresholds saved with the model (top 0.5% and next 2.5% at test)."""
    cut = bundle.metadata["tier_thresholds"]
    return np.where(
        risk >= cut["very_high"], VERY_HIGH, np.where(risk >= cut["high"], HIGH, NOT_LISTED)
    )
