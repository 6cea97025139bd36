"""Weekly run settings: a frozen object validated when built, loadable from a TOML file."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from riskstrat.common.settings import Integer, load_table, settings_model

TABLE = "weekly"


@settings_model
class WeeklyConfig:
    """What each row of the list carries (``[weekly]``).

    The tiers are not set here: they are the model's (``models.tiers``, set at training with
    ``[train.tiers]``), so the API and the lists agree. Reasons are computed for everyone
    listed and for the top ``explain_share`` of the population, so the social prescribing view
    can show them.
    """

    explain_share: float = Field(0.10, ge=0, le=1)
    reasons_kept: Integer = Field(10, ge=3, le=20)
    recent_discharge_days: Integer = Field(30, ge=1, le=365)
    frailty_index_threshold: float = Field(0.25, gt=0, lt=1)  # eFI: moderate frailty from 0.25
    # GP contacts in 12 months that count as frequent: the social prescribing driver, decided
    # once per week for the pathways and the referral filter alike (``FREQUENT_GP``).
    frequent_gp_contacts: Integer = Field(12, ge=1, le=366)

    @classmethod
    def from_toml(cls, path: Path) -> WeeklyConfig:
        """Read the ``[weekly]`` table; errors name the file, the table and the setting."""
        return load_table(path, TABLE, cls)
