"""Age bands shared by lists and reports, so a team's list and the fairness table agree."""

from __future__ import annotations

import pandas as pd

AGE_EDGES = (0, 18, 40, 65, 75, 85, 200)
AGE_LABELS = ("0-17", "18-39", "40-64", "65-74", "75-84", "85+")


def age_band(age: pd.Series) -> pd.Series:
    """The band of each age in years ("85+" and so on), as text."""
    return pd.cut(age, list(AGE_EDGES), labels=list(AGE_LABELS), right=False).astype(str)
