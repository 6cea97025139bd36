"""Weekly run settings: a frozen object validated when built, loadable from a TOML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator

from riskstrat.common.settings import Integer, load_table, settings_model
from riskstrat.features.exposure import ExposureRule

TABLE = "weekly"
OFFERS_TABLE = f"{TABLE}.offers"
# The help a week can offer: the event kinds list-triggered help is recorded as.
ACTIONS: tuple[str, ...] = ExposureRule().kinds
Team = Literal["locality", "gp_cluster"]
Places = Annotated[int, Field(ge=0, le=100_000)]


@settings_model
class OfferSettings:
    """Offers a week per team and action, and the lottery (``[weekly.offers]``).

    ``capacity`` maps an action (an event kind in ``ACTIONS``) to each team's offers a week
    (``[weekly.offers.capacity.reablement_plan]`` ``North = 10``); a team or action not named
    gets no proposals. Teams are localities, or GP clusters (``team = "gp_cluster"``). The
    lottery (off by default) orders people whose ranking keys lie within ``lottery_band``
    (a share of the key at the capacity boundary) of that boundary by a draw seeded with
    ``lottery_seed``, which must be chosen (and recorded) before the week when it is on.
    """

    team: Team = "locality"
    capacity: dict[str, dict[str, Places]] = Field(default_factory=dict)
    lottery: bool = False
    lottery_band: float = Field(0.1, gt=0, le=1)
    lottery_seed: Integer | None = Field(None, ge=0)

    @field_validator("capacity")
    @classmethod
    def _known_actions(cls, capacity: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        unknown = sorted(set(capacity) - set(ACTIONS))
        if unknown:
            raise ValueError(f"unknown action(s) {unknown} (known: {', '.join(ACTIONS)})")
        return {a: dict(sorted(capacity[a].items())) for a in ACTIONS if a in capacity}

    @model_validator(mode="after")
    def _seed_when_drawing(self) -> OfferSettings:
        if self.lottery and self.lottery_seed is None:
            raise ValueError(
                "lottery_seed is required when lottery = true: choose it before the week "
                "and record it"
            )
        return self

    @property
    def active(self) -> bool:
        """Whether any team has places for any action (else no proposals: the list as before)."""
        return any(places for teams in self.capacity.values() for places in teams.values())


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
    offers: OfferSettings = Field(default_factory=OfferSettings)

    @classmethod
    def from_toml(cls, path: Path) -> WeeklyConfig:
        """Read the ``[weekly]`` table; errors name the file, the table and the setting."""
        return load_table(path, TABLE, cls)
