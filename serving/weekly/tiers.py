"""Risk tiers and the comparison with last week: who is new, who stayed, who left, who rose."""

from __future__ import annotations

import numpy as np
import pandas as pd

from serving.scoring import HIGH, NOT_LISTED, VERY_HIGH
from serving.weekly.config import WeeklyConfig

RISING = "rising"
NEW, STAYED = "new", "stayed"
LISTED_TIERS = (VERY_HIGH, HIGH, RISING)


def top_mask(values: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` largest values (NaN never chosen; ties by position)."""
    mask = np.zeros(len(values), dtype=bool)
    if count <= 0:
        return mask
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:count]
    mask[order] = True
    return mask & ~np.isnan(values)


def assign_tiers(risk: np.ndarray, change: np.ndarray, config: WeeklyConfig) -> np.ndarray:
    """Very high and high by rank in this population; rising for the largest increases.

    ``change`` is this week's risk minus last week's (NaN when not scored last week). Rising
    people are below the other tiers and rose by at least ``rising_min_increase``.
    """
    n = len(risk)
    very_high = top_mask(risk, round(config.very_high_share * n))
    high = top_mask(risk, round((config.very_high_share + config.high_share) * n)) & ~very_high
    eligible = np.where(
        ~very_high & ~high & (np.nan_to_num(change, nan=0.0) >= config.rising_min_increase),
        change,
        np.nan,
    )
    rising = top_mask(eligible, round(config.rising_share * n))
    return np.select([very_high, high, rising], [VERY_HIGH, HIGH, RISING], NOT_LISTED)


def week_status(tier: pd.Series, previous: pd.DataFrame | None) -> pd.Series:
    """ "new" or "stayed" for everyone listed this week (by ``previous`` tiers), else empty."""
    listed = tier != NOT_LISTED
    if previous is None:
        was_listed = pd.Series(False, index=tier.index)
    else:
        was_listed = (previous["tier"] != NOT_LISTED).reindex(tier.index, fill_value=False)
    status = np.where(listed & was_listed, STAYED, np.where(listed, NEW, ""))
    return pd.Series(status, index=tier.index, dtype="str")


def left_the_list(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """People listed last week and not this week, with why: not scored now, or risk fell.

    ``current`` and ``previous`` are indexed by patient with ``tier`` and ``risk``; the
    result keeps last week's row and adds ``risk_now``, ``tier_now`` and ``reason_left``.
    """
    before = previous[previous["tier"] != NOT_LISTED]
    gone = before[~before.index.isin(current.index[current["tier"] != NOT_LISTED])].copy()
    still_here = gone.index.isin(current.index)
    gone["risk_now"] = current["risk"].reindex(gone.index)
    gone["tier_now"] = current["tier"].reindex(gone.index).fillna(NOT_LISTED)
    gone["reason_left"] = np.where(
        still_here, "risk fell below the list", "no longer registered (moved, left or died)"
    )
    return gone
