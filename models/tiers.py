"""The one tier policy: which risks are "very high", "high" and "rising".

The shares are set when a model is trained (``[train.tiers]``) and turned into risk cut-offs
on the model's out-of-time test population (the top 0.5% very high, the next 2.5% high by
default). Those cut-offs are saved with the model, so ``/v1/score`` and the weekly lists give
any person the same tier for the same risk. "Rising" needs last week's risk, so only the
weekly run can say it: people below the other tiers whose risk rose most, each by at least
``rising_min_increase``, at most ``rising_share`` of the week's population.
"""

from __future__ import annotations

from typing import Literal, Self

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

from riskstrat.common.settings import settings_model

VERY_HIGH, HIGH, RISING, NOT_LISTED = "very high", "high", "rising", ""
LISTED_TIERS = (VERY_HIGH, HIGH, RISING)  # most to least urgent
# What a single score can say: "rising" needs last week's risk, so only the weekly run has it.
SCORED_TIERS = (VERY_HIGH, HIGH)
ListedTier = Literal[LISTED_TIERS]  # for pydantic models and API parameters


def spelled(tiers: tuple[str, ...]) -> str:
    """The tiers in words, with the unlisted one, for API descriptions and messages."""
    return f"{', '.join(tiers)}, or empty when not listed"


def top_mask(values: np.ndarray, count: int) -> np.ndarray:
    """Mask of the ``count`` largest values (NaN never chosen; ties by position)."""
    mask = np.zeros(len(values), dtype=bool)
    if count <= 0:
        return mask
    order = np.argsort(-np.nan_to_num(values, nan=-np.inf), kind="stable")[:count]
    mask[order] = True
    return mask & ~np.isnan(values)


@settings_model
class TierPolicy:
    """The shares that define the tiers (``[train.tiers]``; see the module docstring)."""

    very_high_share: float = Field(0.005, ge=0, le=1)
    high_share: float = Field(0.025, ge=0, le=1)
    rising_share: float = Field(0.005, ge=0, le=1)
    rising_min_increase: float = Field(0.02, gt=0, lt=1)

    @model_validator(mode="after")
    def _under_half(self) -> Self:
        together = self.very_high_share + self.high_share + self.rising_share
        if together > 0.5:
            raise ValueError(
                "very_high_share + high_share + rising_share must stay under half the "
                f"population (got {together:g})"
            )
        return self

    @property
    def listed_share(self) -> float:
        """The share of the reference population at high risk or above."""
        return self.very_high_share + self.high_share

    def cut(self, reference_risk: np.ndarray) -> Tiers:
        """The cut-offs of this policy on a reference population's risks."""
        risk = np.asarray(reference_risk, dtype="float64")
        return Tiers(
            policy=self,
            very_high=float(np.quantile(risk, 1.0 - self.very_high_share)),
            high=float(np.quantile(risk, 1.0 - self.listed_share)),
        )


class Tiers(BaseModel):
    """A tier policy with its risk cut-offs fixed on the model's test population."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    policy: TierPolicy
    very_high: float = Field(ge=0.0, le=1.0, description="risk at or above: very high")
    high: float = Field(ge=0.0, le=1.0, description="risk at or above (and below very high): high")

    def assign(self, risk: np.ndarray, change: np.ndarray | None = None) -> np.ndarray:
        """The tier of each risk; with ``change`` (risk minus last week's, NaN when not scored
        last week) also "rising" for the largest increases below the other tiers."""
        risk = np.asarray(risk, dtype="float64")
        very_high = risk >= self.very_high
        high = (risk >= self.high) & ~very_high
        rising = np.zeros(len(risk), dtype=bool)
        if change is not None:
            increase = np.nan_to_num(change, nan=0.0)
            eligible = ~very_high & ~high & (increase >= self.policy.rising_min_increase)
            rising = top_mask(
                np.where(eligible, change, np.nan), round(self.policy.rising_share * len(risk))
            )
        return np.select([very_high, high, rising], [VERY_HIGH, HIGH, RISING], NOT_LISTED)
