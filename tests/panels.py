"""Simulated unit-by-period panels for the difference-in-differences tests."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd


def unit_panel(
    unit: int, first_treated: int, people: Sequence[str], period: np.ndarray, y: np.ndarray
) -> pd.DataFrame:
    """Unit ``unit``'s person-months (go-live ``first_treated``, -1 never), one row per
    person id in ``people`` and ``period``, with counts ``y`` and exposure 1."""
    return pd.DataFrame(
        {
            "person": people,
            "unit": f"unit{unit}",
            "period": period,
            "first_treated": first_treated,
            "y": y.astype(float),
            "exposure": 1.0,
        }
    )
