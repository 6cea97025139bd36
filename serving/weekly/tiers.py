"""The comparison with last week: who is new on the list, who stayed, who left and why.

The tiers themselves come from the model (``models.tiers``): the same cut-offs as ``/v1/score``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from riskstrat.models.tiers import NOT_LISTED

NEW, STAYED = "new", "stayed"


def week_status(tier: pd.Series, previous: pd.DataFrame | None) -> pd.Series:
    """ "new" or "stayed" for everyone listed this week (by ``previous`` tiers), else empty."""
    listed = listed_mask(tier)
    if previous is None:
        was_listed = pd.Series(False, index=tier.index)
    else:
        was_listed = listed_mask(previous["tier"]).reindex(tier.index, fill_value=False)
    status = np.where(listed & was_listed, STAYED, np.where(listed, NEW, ""))
    return pd.Series(status, index=tier.index, dtype="str")


def left_the_list(current: pd.DataFrame, previous: pd.DataFrame) -> pd.DataFrame:
    """People listed last week and not this week, with why: not scored now, or risk fell.

    ``current`` and ``previous`` are indexed by patient with ``tier`` and ``risk``; the
    result keeps last week's row and adds ``risk_now``, ``tier_now`` and ``reason_left``.
    """
    before = previous[listed_mask(previous["tier"])]
    gone = before[~before.index.isin(current.index[listed_mask(current["tier"])])].copy()
    still_here = gone.index.isin(current.index)
    gone["risk_now"] = current["risk"].reindex(gone.index)
    gone["tier_now"] = current["tier"].reindex(gone.index).fillna(NOT_LISTED)
    gone["reason_left"] = np.where(
        still_here, "risk fell below the list", "no longer registered (moved, left or died)"
    )
    return gone


def listed_mask(tier: pd.Series) -> pd.Series:
    """Who is on the list: any tier but ``NOT_LISTED`` (the one rule the run and its
    monitoring share)."""
    return tier != NOT_LISTED
