"""Who lives in the synthetic borough: practices, and each person's fixed characteristics.

Shaped like the borough in the design guide: 3 localities, 7 GP clusters (one pilot cluster
holding 31,000 of 265,000 people), 30 practices, an England-like age pyramid, deprivation
that differs by locality, London-like ethnicity groups.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from riskstrat.common.months import DAYS_PER_YEAR

# (locality, cluster, share of the population, mean deprivation decile, practices)
CLUSTERS: tuple[tuple[str, str, float, float, int], ...] = (
    ("North", "North 1", 0.147, 6.0, 4),
    ("North", "North 2", 0.147, 5.0, 4),
    ("Central", "Central Pilot", 31_000 / 265_000, 3.0, 5),
    ("Central", "Central 2", 0.147, 3.5, 4),
    ("Central", "Central 3", 0.147, 4.0, 4),
    ("South", "South 1", 0.147, 6.5, 5),
    ("South", "South 2", 0.148, 7.0, 4),
)
# Five-year age bands 0-4 .. 90-94 (and 95-104 as the last), shares of the population.
AGE_BAND_SHARES = np.array(
    [
        5.4,
        6.0,
        6.0,
        5.7,
        6.0,
        6.6,
        6.9,
        6.6,
        6.3,
        6.4,
        6.9,
        6.7,
        5.9,
        5.0,
        5.0,
        3.6,
        2.4,
        1.5,
        0.7,
        0.2,
    ]
)
ETHNICITY_SHARES: dict[str, float] = {
    "White": 0.58,
    "Asian": 0.18,
    "Black": 0.12,
    "Mixed": 0.05,
    "Other": 0.04,
    "Unknown": 0.03,
}


@dataclass(frozen=True, slots=True)
class People:
    """Fixed characteristics, one array element per person ever simulated."""

    age0: np.ndarray  # age in years on the start date
    female: np.ndarray
    practice: np.ndarray  # index into the practices frame
    deprivation: np.ndarray  # decile 1..10, 1 = most deprived
    ethnicity: np.ndarray  # index into ETHNICITY_SHARES
    health: np.ndarray  # hidden ill-health propensity, higher is worse
    mood: np.ndarray  # hidden long-run mental ill-health level
    sociability: np.ndarray  # hidden long-run loneliness level
    care_noise: np.ndarray  # hidden person-level offset of care needs
    joins: np.ndarray  # month index of registration (0 = registered before start)

    @property
    def size(self) -> int:
        return len(self.age0)

    def take(self, index: np.ndarray) -> People:
        """The characteristics of a subset (or a repeat) of people."""
        return People(*(getattr(self, f)[index] for f in People.__slots__))


def make_practices(rng: np.random.Generator) -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    """Practices with their cluster and locality; also each practice's share and deprivation."""
    rows, shares, deprivation = [], [], []
    number = 0
    for locality, cluster, share, dep, n_practices in CLUSTERS:
        sizes = rng.lognormal(0.0, 0.4, n_practices)
        for size in sizes / sizes.sum():
            number += 1
            rows.append(
                (f"Z{number:05d}", f"{cluster} Practice {len(rows) + 1}", cluster, locality)
            )
            shares.append(share * size)
            deprivation.append(np.clip(dep + rng.normal(0, 0.8), 1.5, 9.5))
    frame = pd.DataFrame(rows, columns=["practice_id", "practice_name", "gp_cluster", "locality"])
    shares_arr = np.asarray(shares)
    return frame, shares_arr / shares_arr.sum(), np.asarray(deprivation)


def sample_ages(rng: np.random.Generator, n: int, young_adult_boost: float = 0.0) -> np.ndarray:
    """Ages from the pyramid; ``young_adult_boost`` tilts towards 20-39 (people who move)."""
    shares = AGE_BAND_SHARES.copy()
    shares[4:8] *= 1 + young_adult_boost
    band = rng.choice(len(shares), n, p=shares / shares.sum())
    width = np.where(band == len(shares) - 1, 10.0, 5.0)
    return band * 5 + rng.random(n) * width


def make_people(
    rng: np.random.Generator,
    n_start: int,
    n_joiners: int,
    months: int,
    practice_share: np.ndarray,
    practice_deprivation: np.ndarray,
) -> People:
    """Everyone registered on the start date, then the people who join during the period."""
    n = n_start + n_joiners
    age0 = np.concatenate([sample_ages(rng, n_start), sample_ages(rng, n_joiners, 1.5)])
    joins = np.concatenate([np.zeros(n_start, np.int32), rng.integers(1, months, n_joiners)])
    # A joiner's age on the start date is their age on joining minus the months before.
    age0 = age0 - joins / 12.0  # negative: born after the start, joins as a baby
    practice = rng.choice(len(practice_share), n, p=practice_share)
    deprivation = np.clip(
        np.rint(practice_deprivation[practice] + rng.normal(0, 1.8, n)), 1, 10
    ).astype(np.int8)
    p_female = np.where(age0 > 80, 0.6, 0.505)
    shares = np.fromiter(ETHNICITY_SHARES.values(), float)
    deprived = (5.5 - deprivation) / 4.5
    return People(
        age0=age0,
        female=rng.random(n) < p_female,
        practice=practice.astype(np.int16),
        deprivation=deprivation,
        ethnicity=rng.choice(len(shares), n, p=shares).astype(np.int8),
        health=rng.normal(0, 1, n) + 0.25 * deprived,
        mood=rng.normal(0, 1, n) + 0.3 * deprived,
        sociability=rng.normal(0, 1, n),
        care_noise=rng.normal(0, 0.35, n),
        joins=joins.astype(np.int32),
    )


def birth_days(people: People, start_day: int) -> np.ndarray:
    """Each person's birth month as the patients table records it: the first day of the
    month, in days since 1970-01-01 (``start_day`` is the simulation's start, the same count)."""
    birth = pd.to_datetime(start_day - np.rint(people.age0 * DAYS_PER_YEAR), unit="D")
    months = ((birth.year - 1970) * 12 + birth.month - 1).to_numpy()
    return (pd.to_datetime(months, unit="M") - pd.Timestamp("1970-01-01")).days.to_numpy()
