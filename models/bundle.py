"""The model bundle: what training produces and serving loads, saved without pickle.

A LightGBM booster (text), Platt calibration (two numbers), the feature specs (names, dtypes,
vocabularies, reason templates) and the model's description (``models.description``: outcome,
training window, test design, metrics, tier cut-offs), written as ``model.txt`` and
``bundle.json`` in one folder.

Platt scaling keeps explanations additive: the calibrated log-odds are ``a * raw + b``, so
each LightGBM contribution (identical to SHAP's TreeExplainer values) times ``a`` is that
feature's share of the calibrated log-odds, and the shares plus the base sum to the score.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd

from riskstrat.common.errors import UserError
from riskstrat.features.spec import FeatureSpec
from riskstrat.models.description import ModelDescription
from riskstrat.models.legacy import description_from_metadata

MODEL_FILE = "model.txt"
BUNDLE_FILE = "bundle.json"
FORMAT_VERSION = 2  # 1: an untyped "metadata" dict instead of "description"


class FeatureMismatchError(UserError):
    """Input columns do not match the bundle's feature list."""


class FeatureRangeError(UserError):
    """A value outside its feature's valid range; ``row`` is its position in the input."""

    def __init__(self, row: int, spec: FeatureSpec, value: float) -> None:
        super().__init__(f"{spec.name} {value:g} is not valid: must be {spec.range_text()}")
        self.row, self.spec, self.value = row, spec, value


@dataclass(frozen=True, slots=True)
class Reason:
    """One plain-English reason for a score and its signed share of the calibrated log-odds."""

    concept: str
    features: tuple[str, ...]  # every column of the concept
    contribution: float
    sentence: str
    feature: str  # the column the sentence speaks of: the concept's strongest
    value: float

    @property
    def direction(self) -> str:
        return "raises risk" if self.contribution > 0 else "lowers risk"


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling: calibrated log-odds = slope * raw log-odds + intercept."""

    slope: float
    intercept: float

    def apply(self, raw: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * raw + self.intercept)))


@dataclass(frozen=True, slots=True)
class _Concepts:
    """Which feature columns make up each reason concept, as a column-to-concept matrix."""

    names: list[str]
    members: list[list[int]]
    indicator: np.ndarray

    @classmethod
    def of(cls, specs: tuple[FeatureSpec, ...]) -> _Concepts:
        names = list(dict.fromkeys(s.concept for s in specs))
        members = [[i for i, s in enumerate(specs) if s.concept == c] for c in names]
        indicator = np.zeros((len(specs), len(names)))
        for j, idx in enumerate(members):
            indicator[idx, j] = 1.0
        return cls(names, members, indicator)


@dataclass(frozen=True)
class ModelBundle:
    booster: lgb.Booster
    calibration: Calibration
    specs: tuple[FeatureSpec, ...]
    description: ModelDescription | None = None  # None only while training builds it

    @property
    def described(self) -> ModelDescription:
        """The description; every saved bundle has one."""
        if self.description is None:
            raise ValueError("this model bundle has no description: it was not saved by training")
        return self.description

    def describe(self, description: ModelDescription) -> ModelBundle:
        """The same model with ``description``."""
        return ModelBundle(self.booster, self.calibration, self.specs, description)

    @property
    def feature_names(self) -> list[str]:
        return [s.name for s in self.specs]

    def matrix(self, features: pd.DataFrame) -> pd.DataFrame:
        """The model's columns in order, as float64; names what is missing or not numeric."""
        missing = [n for n in self.feature_names if n not in features.columns]
        if missing:
            raise FeatureMismatchError(f"missing feature columns: {', '.join(missing)}")
        frame = features[self.feature_names]
        bad = [c for c in frame.columns if not pd.api.types.is_numeric_dtype(frame[c])]
        if bad:
            raise FeatureMismatchError(f"feature columns must be numeric: {', '.join(bad)}")
        return frame.astype("float64")

    def values(self, features: pd.DataFrame | np.ndarray) -> np.ndarray:
        """The model's columns in order as a float64 array: ``matrix`` without pandas' cost
        (a person on the phone waits for it); the same errors. An array is taken as already
        in ``feature_names`` order (the service builds one straight from JSON)."""
        if isinstance(features, np.ndarray):
            if features.ndim != 2 or features.shape[1] != len(self.specs):
                raise FeatureMismatchError(
                    f"expected rows of {len(self.specs)} features, got shape {features.shape}"
                )
            return features.astype("float64", copy=False)
        try:
            frame = features[self.feature_names]
        except KeyError:
            frame = None
        if frame is None or {dtype.kind for dtype in frame.dtypes} - set("biuf"):
            return self.matrix(features).to_numpy()  # raises, naming the columns
        return frame.to_numpy(dtype="float64")

    def check_ranges(self, values: np.ndarray) -> None:
        """Raise ``FeatureRangeError`` for the first value (row by row) outside its feature's
        range, or a categorical value that is not a whole code; missing values pass."""
        low, high, categorical = self._ranges
        with np.errstate(invalid="ignore"):
            bad = (values < low) | (values > high)
            bad[:, categorical] |= values[:, categorical] % 1 > 0
        if bad.any():
            row, column = np.argwhere(bad)[0]
            raise FeatureRangeError(int(row), self.specs[column], float(values[row, column]))

    @cached_property
    def _ranges(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        bounds = np.array([s.bounds for s in self.specs]).reshape(-1, 2)
        categorical = np.array([s.categorical for s in self.specs], dtype=bool)
        return bounds[:, 0], bounds[:, 1], categorical

    def raw_score(self, features: pd.DataFrame | np.ndarray, threads: int = 0) -> np.ndarray:
        return self.booster.predict(self.values(features), raw_score=True, num_threads=threads)

    def predict(self, features: pd.DataFrame | np.ndarray, threads: int = 0) -> np.ndarray:
        """Calibrated probability of the outcome, one per row."""
        return self.calibration.apply(self.raw_score(features, threads))

    def contributions(self, features: pd.DataFrame, threads: int = 0) -> pd.DataFrame:
        """Per-feature shares of the calibrated log-odds; column ``_base`` holds the rest."""
        raw = self.booster.predict(self.values(features), pred_contrib=True, num_threads=threads)
        shares = raw * self.calibration.slope
        shares[:, -1] += self.calibration.intercept
        return pd.DataFrame(shares, index=features.index, columns=[*self.feature_names, "_base"])

    def explain(
        self, features: pd.DataFrame, top_k: int = 3, threads: int = 0, *, signed: bool = False
    ) -> list[list[Reason]]:
        """The ``top_k`` reasons per row, grouped by concept.

        A concept's share is the sum of its columns' shares; its sentence is the one of its
        column that pushes the same way most. By default only concepts that raise risk are
        reasons, strongest first; with ``signed`` the largest shares either way are.
        """
        return self.predict_and_explain(features, top_k, threads, signed=signed)[1]

    def predict_and_explain(
        self,
        features: pd.DataFrame | np.ndarray,
        top_k: int = 3,
        threads: int = 0,
        *,
        signed: bool = False,
    ) -> tuple[np.ndarray, list[list[Reason]]]:
        """Calibrated risk and reasons from one TreeSHAP pass (contributions sum to the score)."""
        values = self.values(features)
        if len(values) == 0:  # LightGBM refuses an empty matrix
            return np.empty(0), []
        raw = self.booster.predict(values, pred_contrib=True, num_threads=threads)
        risk = self.calibration.apply(raw.sum(axis=1))
        return risk, self._reasons(values, raw[:, :-1] * self.calibration.slope, top_k, signed)

    def _reasons(
        self, values: np.ndarray, shares: np.ndarray, top_k: int, signed: bool
    ) -> list[list[Reason]]:
        grouped = shares @ self._concepts.indicator
        order = np.abs(grouped) if signed else grouped
        top = np.argsort(-order, axis=1, kind="stable")[:, :top_k]
        concepts, members = self._concepts.names, self._concepts.members
        out = []
        for row in range(len(shares)):
            reasons = []
            for j in top[row]:
                share = grouped[row, j]
                if share == 0 or (share < 0 and not signed):
                    break
                idx = members[j]
                pushes = shares[row, idx] * np.sign(share)
                lead = idx[int(np.argmax(pushes))]
                reasons.append(
                    Reason(
                        concepts[j],
                        tuple(self.specs[i].name for i in idx),
                        float(share),
                        self.specs[lead].sentence(values[row, lead]),
                        self.specs[lead].name,
                        float(values[row, lead]),
                    )
                )
            out.append(reasons)
        return out

    @cached_property
    def _concepts(self) -> _Concepts:
        return _Concepts.of(self.specs)

    def save(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster.save_model(folder / MODEL_FILE)
        body = {
            "format_version": FORMAT_VERSION,
            "calibration": {
                "slope": self.calibration.slope,
                "intercept": self.calibration.intercept,
            },
            "features": [s.to_dict() for s in self.specs],
            "description": self.described.model_dump(mode="json"),
        }
        (folder / BUNDLE_FILE).write_text(json.dumps(body, indent=2))
        return folder

    @classmethod
    def load(cls, folder: Path) -> ModelBundle:
        path = folder / BUNDLE_FILE
        body = json.loads(path.read_text())
        version = body.get("format_version")
        if version == FORMAT_VERSION:
            description = ModelDescription.model_validate(body["description"])
        elif version == 1:
            description = description_from_metadata(body["metadata"])
        else:
            raise ValueError(f"{path}: unsupported format {version}")
        booster = lgb.Booster(model_file=str(folder / MODEL_FILE))
        specs = tuple(FeatureSpec.from_dict(s) for s in body["features"])
        if booster.feature_name() != [s.name for s in specs]:
            raise ValueError(f"{folder}: booster features differ from {BUNDLE_FILE}")
        return cls(booster, Calibration(**body["calibration"]), specs, description)
