"""Weekly run settings: a frozen object validated when built, loadable from a TOML file."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, fields
from pathlib import Path


@dataclass(frozen=True, slots=True, kw_only=True)
class WeeklyConfig:
    """What each row of the list carries.

    The tiers are not set here: they are the model's (``models.tiers``, set at training with
    ``[train.tiers]``), so the API and the lists agree. Reasons are computed for everyone
    listed and for the top ``explain_share`` of the population, so the social prescribing view
    can show them.
    """

    explain_share: float = 0.10
    reasons_kept: int = 10
    recent_discharge_days: int = 30
    frailty_index_threshold: float = 0.25  # eFI: moderate frailty from 0.25

    def __post_init__(self) -> None:
        if not 0.0 <= self.explain_share <= 1.0:
            raise ValueError("explain_share must be between 0 and 1")
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
