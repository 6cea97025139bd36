"""Read bundles saved before the typed description (format 1: a "metadata" dict).

Models promoted before the upgrade keep serving: their dict is turned into a
``ModelDescription`` with the tier policy they were cut with (the top 0.5% very high and the
next 2.5% high of the test population, the defaults then and now).
"""

from __future__ import annotations

import re
from datetime import date

from riskstrat.models.description import ModelDescription, OutcomeDescription, TestDesign
from riskstrat.models.drift import DriftReference, Profile
from riskstrat.models.tiers import TierPolicy, Tiers

_TABLE_PREFIX = "table:"


def description_from_metadata(metadata: dict) -> ModelDescription:
    """The description of a format-1 bundle; ValueError naming what is missing."""
    try:
        name = str(metadata["outcome"])
        horizon = int(metadata["horizon_days"])
        cut = metadata["tier_thresholds"]
        label = name[len(_TABLE_PREFIX) :] if name.startswith(_TABLE_PREFIX) else None
        test_as_of = _date(metadata["test_as_of"])
        reference = metadata.get("drift_reference")
        return ModelDescription(
            outcome=OutcomeDescription(
                name=name,
                horizon_days=horizon,
                include_death="_or_death_" in name,
                label_column=label,
            ),
            train_as_of=tuple(d for d in map(_date, metadata["train_as_of"]) if d),
            test=TestDesign(kind="out_of_time", as_of=test_as_of)
            if test_as_of or label is None
            else TestDesign(kind="held_out_groups", held_out_share=0.2),  # format 1's only share
            data_fingerprint=str(metadata["data_fingerprint"]),
            metrics=metadata.get("metrics", {}),
            tiers=Tiers(policy=TierPolicy(), very_high=cut["very_high"], high=cut["high"]),
            test_risk_quantiles=tuple(metadata["test_population_risk_quantiles"]),
            drift_reference=None
            if reference is None
            else DriftReference(
                score=Profile.from_dict(reference["score"]),
                features={n: Profile.from_dict(b) for n, b in reference["features"].items()},
            ),
        )
    except (KeyError, TypeError) as exc:
        raise ValueError(f"a format-1 model bundle without {exc} in its metadata") from exc


def _date(text: str) -> date | None:
    """The ISO date in ``text`` ("2025-01-01", or a table's "out of time: rows of
    2025-01-01"), or None (a table's "20% of groups held out")."""
    found = re.search(r"\d{4}-\d{2}-\d{2}", text)
    return date.fromisoformat(found.group()) if found else None
