"""The fitted benefit model: per action of list-triggered help, the expected potentially
avoidable emergency admissions it prevents for a person, from their features.

What ``training.benefit`` produces and the weekly allocation of offers loads: per action
(named by its contract event kind, ``reablement_plan``, ``social_prescribing_referral``)
either an estimate (a LightGBM regression of the doubly robust pseudo-outcome on the
model's features, saved as text, with the average effect and its standard error) or the
one-line reason it was refused (help that never varied, too little overlap). Saved as one
JSON file, no pickle.

The per-person effect is the avoidable admissions expected without help (a baseline
model) times a relative effect: help that scales a hazard prevents in proportion to the
admissions it can reach. The relative effect is a model of the person's features only when
it ranked held-out pseudo-outcomes better than a constant did (``varies_slope`` and
``varies_se``, the held-out check); otherwise it is one number for everyone (``relative``),
and the ranking is the baseline's.

Benefit is ``-CATE``: the estimated conditional average treatment effect on the count of
avoidable admissions over ``horizon_days`` after the list run (a difference: with help minus
without), sign flipped so that a positive benefit is admissions prevented. It is *not*
clipped at zero: a negative value says the estimate, for people like this one, is that the
help prevents nothing (within its noise), and clipping would bias every average up and hide
it. A refused action's column is NaN (no estimate), never zero (which would read as "no
benefit"). The per-person values carry no interval: only the average effect has one
(``ActionEffect.interval``).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from riskstrat.common.errors import UserError
from riskstrat.models.bundle import FeatureMismatchError

BENEFIT_PREFIX = "benefit_"  # per-person columns: benefit_<event kind>
FORMAT_VERSION = 1
Z95 = 1.959963984540054


def benefit_column(kind: str) -> str:
    """The per-person column of an action's expected admissions prevented."""
    return f"{BENEFIT_PREFIX}{kind}"


@dataclass(frozen=True, slots=True)
class ActionEffect:
    """One action's estimate, or why there is none.

    ``units`` (person, list run) compared (the action against no help), ``treated`` of them
    given the action, ``trimmed`` left out for a propensity outside the overlap bounds;
    ``ate`` the average effect on avoidable admissions per person over the horizon among the
    units kept (negative: fewer admissions), ``se`` its standard error (from the
    pseudo-outcomes, clustered by person). The per-person effect is ``baseline(x)`` (a
    LightGBM booster, text: the avoidable admissions expected without help) times the
    relative effect: ``model(x)`` (a booster) where the held-out check found it varies by
    person, else the constant ``relative``. ``varies_slope`` and ``varies_se`` are that
    check's slope (1: the model's differences between people are borne out on held-out
    people; 0: no better than a constant; below 0: backwards) and its standard error.
    ``refused`` is the reason when nothing was estimated."""

    kind: str
    units: int
    treated: int
    trimmed: int = 0
    ate: float | None = None
    se: float | None = None
    baseline: str | None = None
    model: str | None = None
    relative: float | None = None
    varies_slope: float | None = None
    varies_se: float | None = None
    refused: str | None = None

    def __post_init__(self) -> None:
        one_relative = (self.model is None) != (self.relative is None)
        fitted = self.baseline is not None and one_relative
        if (self.refused is None) != fitted:
            raise ValueError(
                f"{self.kind}: an action has a baseline and one relative effect (a model or "
                "a constant), or a refusal"
            )

    @property
    def estimated(self) -> bool:
        return self.refused is None

    @property
    def varies(self) -> bool:
        """Whether the relative effect is a model of the person's features."""
        return self.model is not None

    def describe_variation(self) -> str:
        """The held-out check in words (an estimated action)."""
        if self.varies_slope is None or self.varies_se is None:
            found = "not checked on held-out people"
        else:
            found = f"held-out slope {self.varies_slope:+.2f}, standard error {self.varies_se:.2f}"
        if self.varies:
            return f"varies by person ({found})"
        return (
            f"no variation by person found ({found}): every person's benefit is their "
            f"expected admissions times {self.relative:+.3f}"
        )

    def interval(self, z: float = Z95) -> tuple[float, float] | None:
        """The average effect's normal interval (95% by default); None when refused."""
        if self.ate is None or self.se is None:
            return None
        return self.ate - z * self.se, self.ate + z * self.se

    def describe(self) -> str:
        if self.refused is not None:
            return f"{self.kind}: no estimate ({self.refused})"
        low, high = self.interval()  # type: ignore[misc]
        return (
            f"{self.kind}: {-self.ate:+.4f} admissions prevented per person "  # type: ignore[operator]
            f"(effect {self.ate:+.4f}, 95% interval {low:+.4f} to {high:+.4f}; "
            f"{self.units:,} units, {self.treated:,} helped, {self.trimmed:,} trimmed); "
            f"relative effect: {self.describe_variation()}"
        )


@dataclass(frozen=True)
class BenefitModel:
    """Every action's estimate over one horizon, for the features it was fitted on."""

    features: tuple[str, ...]
    horizon_days: int
    runs: tuple[date, ...]  # the list runs it learnt from
    actions: tuple[ActionEffect, ...]
    boosters: dict[str, tuple[lgb.Booster, lgb.Booster | None]] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        boosters = {
            a.kind: (
                lgb.Booster(model_str=a.baseline),
                None if a.model is None else lgb.Booster(model_str=a.model),
            )
            for a in self.actions
            if a.baseline is not None
        }
        object.__setattr__(self, "boosters", boosters)

    @property
    def kinds(self) -> tuple[str, ...]:
        return tuple(a.kind for a in self.actions)

    def action(self, kind: str) -> ActionEffect:
        for effect in self.actions:
            if effect.kind == kind:
                return effect
        raise KeyError(f"no action {kind!r} in the benefit model (has {list(self.kinds)})")

    def save(self, path: Path) -> None:
        """Write the model to ``path`` whole (through a partial file renamed into place)."""
        payload = {
            "format_version": FORMAT_VERSION,
            "features": list(self.features),
            "horizon_days": self.horizon_days,
            "runs": [d.isoformat() for d in self.runs],
            "actions": [asdict(a) for a in self.actions],
        }
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.partial")
        partial.write_text(json.dumps(payload, indent=1))
        partial.replace(path)  # a reader sees the old model or the new one, never half

    @classmethod
    def load(cls, path: Path) -> BenefitModel:
        """Read a saved model; a file that is not one is refused in one line."""
        return cls.read(path)[0]

    @classmethod
    def read(cls, path: Path) -> tuple[BenefitModel, str]:
        """A saved model and the SHA-256 of the very bytes it was parsed from (the file may
        be replaced while a run uses it)."""
        try:
            data = path.read_bytes()
            payload = json.loads(data)
        except (OSError, ValueError) as error:
            raise UserError(f"{path}: not a benefit model ({error})") from None
        if not isinstance(payload, dict) or payload.get("format_version") != FORMAT_VERSION:
            found = payload.get("format_version") if isinstance(payload, dict) else None
            raise UserError(
                f"{path}: not a benefit model (format {found!r}, expected {FORMAT_VERSION})"
            )
        try:
            model = cls(
                features=tuple(payload["features"]),
                horizon_days=int(payload["horizon_days"]),
                runs=tuple(date.fromisoformat(d) for d in payload["runs"]),
                actions=tuple(ActionEffect(**a) for a in payload["actions"]),
            )
        except (ValueError, KeyError, TypeError) as error:
            raise UserError(f"{path}: not a benefit model ({error})") from None
        return model, hashlib.sha256(data).hexdigest()


def expected_prevented(model: BenefitModel, features: pd.DataFrame) -> pd.DataFrame:
    """Per person (``features``' index) and action: the expected potentially avoidable
    admissions the action prevents over the model's horizon, ``benefit_<event kind>``
    (NaN for an action the model refused to estimate). Valid only for people like those the
    help was offered to (listed, without help running); see docs/targeting.md."""
    missing = [n for n in model.features if n not in features.columns]
    if missing:
        raise FeatureMismatchError(f"missing feature columns: {', '.join(missing)}")
    matrix = features[list(model.features)].to_numpy(dtype="float64")
    out = {}
    for effect in model.actions:
        fitted = model.boosters.get(effect.kind)
        if fitted is None:
            out[benefit_column(effect.kind)] = np.full(len(features), np.nan)
        else:
            baseline, relative = fitted
            ratio = effect.relative if relative is None else relative.predict(matrix)
            out[benefit_column(effect.kind)] = -baseline.predict(matrix) * ratio
    return pd.DataFrame(out, index=features.index)
