"""Weekly run settings: a frozen object validated when built, loadable from a TOML file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class WeeklyConfig:
    """How the list is cut and what each row carries.

    Tiers follow the population ranking: the top ``very_high_share`` are very high, the next
    ``high_share`` high. "Rising" is for people below those tiers whose risk rose most since
    last week: at most ``rising_share`` of the population, each up by ``rising_min_increase``
    (absolute probability) or more. Reasons are computed for everyone listed and for the
    top ``explain_share`` of the population, so the social prescribing view can show them.
    """

    very_high_share: float = 0.005
    high_share: float = 0.025
    rising_share: float = 0.005
    rising_min_increase: float = 0.02
    explain_share: float = 0.10
    reasons_kept: int = 10
    recent_discharge_days: int = 30
    frailty_index_threshold: float = 0.25  # eFI: moderate frailty from 0.25
    drift_key_features: int = 10

    def __post_init__(self) -> None:
        shares = (self.very_high_share, self.high_share, self.rising_share, self.explain_share)
        if not all(0.0 <= s <= 1.0 for s in shares):
            raise ValueError("tier and explanation shares must be between 0 and 1")
        if self.very_high_share + self.high_share + self.rising_share > 0.5:
            raise ValueError("the tiers together must stay under half the population")
        if not 0.0 < self.rising_min_increase < 1.0:
            raise ValueError("rising_min_increase must be between 0 and 1")
        if not 3 <= self.reasons_kept <= 20:
            raise ValueError("reasons_kept must be between 3 and 20")
        if not 1 <= self.recent_discharge_days <= 365:
            raise ValueError("recent_discharge_days must be between 1 and 365")
        if not 0.0 < self.frailty_index_threshold < 1.0:
            raise ValueError("frailty_index_threshold must be between 0 and 1")

    @classmethod
    def from_toml(cls, path: Path) -> WeeklyConfig:
        """Read the ``[weekly]`` table; errors name the file and the setting."""
        try:
            body = tomllib.loads(path.read_text()).get("weekly", {})
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise ValueError(f"{path}: cannot read the settings ({exc})") from exc
        unknown = set(body) - {f.name for f in fields(cls)}
        if unknown:
            raise ValueError(f"{path}: unknown [weekly] settings: {', '.join(sorted(unknown))}")
        try:
            return cls(**body)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"{path}: {exc}") from exc
