"""Settings of the synthetic borough: a frozen, validated object."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthConfig:
    """What to generate. ``patients`` counts people registered on ``start``.

    ``truth_as_of`` are the dates (each the first of a month) for which the generator writes
    every living person's exact probability of an emergency admission within
    ``horizon_days``; ``truth_paths`` is the number of sampled paths of the slow state drift.
    """

    patients: int = 265_000
    seed: int = 42
    start: date = date(2021, 1, 1)
    end: date = date(2026, 10, 31)
    truth_as_of: tuple[date, ...] = field(default=(date(2024, 1, 1), date(2025, 1, 1)))
    horizon_days: int = 365
    truth_paths: int = 12
    yearly_leaving_rate: float = 0.045

    def __post_init__(self) -> None:
        if self.patients < 100:
            raise ValueError(f"patients must be at least 100, got {self.patients}")
        if self.start.day != 1:
            raise ValueError(f"start must be the first day of a month, got {self.start}")
        if self.end <= self.start:
            raise ValueError(f"end ({self.end}) must be after start ({self.start})")
        for as_of in self.truth_as_of:
            if as_of.day != 1 or not self.start < as_of <= self.end:
                raise ValueError(
                    f"truth_as_of {as_of} must be the first of a month after start and not "
                    f"after end"
                )
        if not 1 <= self.horizon_days <= 3 * 365:
            raise ValueError(f"horizon_days must be 1..1095, got {self.horizon_days}")
        if self.truth_paths < 4:
            raise ValueError(f"truth_paths must be at least 4, got {self.truth_paths}")
        if not 0 <= self.yearly_leaving_rate < 0.5:
            raise ValueError(
                f"yearly_leaving_rate must be in [0, 0.5), got {self.yearly_leaving_rate}"
            )

    @property
    def months(self) -> int:
        """Number of calendar months simulated, the month holding ``end`` included."""
        return (self.end.year - self.start.year) * 12 + self.end.month - self.start.month + 1
