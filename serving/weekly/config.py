"""Weekly run settings: a frozen object validated when built, loadable from a TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Self

from pydantic import Field, model_validator

from features.settings import Integer, load_table, settings_model

TABLE = "weekly"


@settings_model
class WeeklyConfig:
    """How the list is cut and what each row carries (``[weekly]``).

    Tiers follow the population ranking: the top ``very_high_share`` are very high, the next
    ``high_share`` high. "Rising" is for people below those tiers whose risk rose most since
    last week: at most ``rising_share`` of the population, each up by ``rising_min_increase``
    (absolute probability) or more. Reasons are computed for everyone listed and for the
    top ``explain_share`` of the population, so the social prescribing view can show them.
    """

    very_high_share: float = Field(0.005, ge=0, le=1)
    high_share: float = Field(0.025, ge=0, le=1)
    rising_share: float = Field(0.005, ge=0, le=1)
    rising_min_increase: float = Field(0.02, gt=0, lt=1)
    explain_share: float = Field(0.10, ge=0, le=1)
    reasons_kept: Integer = Field(10, ge=3, le=20)
    recent_discharge_days: Integer = Field(30, ge=1, le=365)
    frailty_index_threshold: float = Field(0.25, gt=0, lt=1)  # eFI: moderate frailty from 0.25
    drift_key_features: Integer = 10

    @model_validator(mode="after")
    def _tiers_under_half(self) -> Self:
        together = self.very_high_share + self.high_share + self.rising_share
        if together > 0.5:
            raise ValueError(
                "very_high_share + high_share + rising_share must stay under half the "
                f"population (got {together:g})"
            )
        return self

    @classmethod
    def from_toml(cls, path: Path) -> WeeklyConfig:
        """Read the ``[weekly]`` table; errors name the file, the table and the setting."""
        return load_table(path, TABLE, cls)
