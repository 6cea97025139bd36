"""Population stability: has this week's population moved away from the model's training data?

Training saves a ``Profile`` (bin edges and shares) of the score and of the key features with
the model; each weekly run compares its own population with it by the population stability
index, PSI = sum((now - then) * ln(now / then)) over the bins. Rules of thumb used in credit
and clinical scoring: below 0.1 stable, 0.1 to 0.25 a moderate shift, above 0.25 a major one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MODERATE_PSI, MAJOR_PSI = 0.1, 0.25
_FLOOR = 1e-4  # a share of zero would make the logarithm infinite


@dataclass(frozen=True, slots=True)
class Profile:
    """Where a variable's values fell at training: interior bin edges and each bin's share."""

    edges: tuple[float, ...]
    shares: tuple[float, ...]

    @classmethod
    def of(cls, values: np.ndarray, bins: int = 10) -> Profile:
        """Quantile bins of ``values`` (fewer when values repeat, as counts and flags do)."""
        values = np.asarray(values, dtype="float64")
        values = values[~np.isnan(values)]
        if values.size == 0:
            raise ValueError("cannot profile a variable with no values")
        quantiles = np.quantile(values, np.linspace(0, 1, bins + 1)[1:-1])
        edges = tuple(float(e) for e in np.unique(quantiles))
        return cls(edges, tuple(float(s) for s in _shares(values, edges)))

    def psi(self, values: np.ndarray) -> float:
        """Population stability index of ``values`` against this profile."""
        values = np.asarray(values, dtype="float64")
        now = np.maximum(_shares(values[~np.isnan(values)], self.edges), _FLOOR)
        then = np.maximum(np.asarray(self.shares), _FLOOR)
        return float(np.sum((now - then) * np.log(now / then)))

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "shares": list(self.shares)}

    @classmethod
    def from_dict(cls, body: dict) -> Profile:
        return cls(tuple(body["edges"]), tuple(body["shares"]))


@dataclass(frozen=True, slots=True)
class DriftReference:
    """The profiles saved with a model: its score and its key features on the training data."""

    score: Profile
    features: dict[str, Profile]


def _shares(values: np.ndarray, edges: tuple[float, ...]) -> np.ndarray:
    """Share of values in each bin; a value equal to an edge falls in the bin above it."""
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    return counts / max(len(values), 1)


def shift(psi: float) -> str:
    """The rule-of-thumb reading of a PSI."""
    if psi >= MAJOR_PSI:
        return "major shift"
    if psi >= MODERATE_PSI:
        return "moderate shift"
    return "stable"
