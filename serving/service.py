"""The BentoML scoring service: ``POST /v1/score`` turns feature records into explained risks.

It loads the model the registry's ``champion`` alias points to (resolved to a pinned
version at start-up) from the MLflow tracking URI in ``RISKSTRAT_TRACKING_URI``.
Start it with ``riskstrat serve`` or ``bentoml serve serving.service:RiskService``.
"""

from __future__ import annotations

import os
from datetime import date
from typing import Annotated

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, ConfigDict, Field

from models.registry import load_registered
from serving.access import AccessMiddleware, audit_record
from serving.history import MAX_PEOPLE, PersonHistory, history_features
from serving.scoring import percentile_in_population, tier_by_threshold

TRACKING_URI_ENV = "RISKSTRAT_TRACKING_URI"
MAX_RECORDS = 10_000


class FeatureRecord(BaseModel):
    """One person's feature values, keyed by feature name (see ``/v1/model``)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, description="caller's pseudonymised id, echoed")
    features: dict[str, float | None]


class ReasonOut(BaseModel):
    concept: str
    sentence: str
    contribution: float = Field(description="share of the calibrated log-odds")


class ScoreOut(BaseModel):
    id: str
    risk: float = Field(description="calibrated probability of the outcome")
    percentile: float = Field(description="position among the model's test population, 0-100")
    tier: str
    reasons: list[ReasonOut]


class ScoreResponse(BaseModel):
    model: str
    model_version: str
    outcome: str
    scores: list[ScoreOut]


class ModelInfo(BaseModel):
    model: str
    model_version: str
    outcome: str
    train_as_of: list[str]
    test_as_of: str
    features: list[str]
    metrics: dict[str, float]


def records_frame(records: list[FeatureRecord], names: list[str]) -> pd.DataFrame:
    """The records as a float frame in the model's column order; 400 on unknown or missing."""
    known = set(names)
    for i, record in enumerate(records):
        unknown = sorted(set(record.features) - known)
        missing = [n for n in names if n not in record.features]
        if unknown:
            raise InvalidArgument(f"records[{i}].features: unknown feature(s) {unknown[:5]}")
        if missing:
            raise InvalidArgument(f"records[{i}].features: missing feature(s) {missing[:5]}")
    values = [[r.features[n] for n in names] for r in records]
    frame = pd.DataFrame(values, columns=names, index=[r.id for r in records], dtype="float64")
    if not np.isfinite(frame.fillna(0.0).to_numpy()).all():
        raise InvalidArgument("records: feature values must be finite numbers or null")
    return frame


@bentoml.service(name="riskstrat", traffic={"timeout": 60})
class RiskService:
    """Scores for other systems; every call but the probes needs a bearer token."""

    def __init__(self) -> None:
        uri = os.environ.get(TRACKING_URI_ENV)
        if not uri:
            raise RuntimeError(f"set {TRACKING_URI_ENV} to the MLflow tracking URI")
        self.model = load_registered(uri)

    @bentoml.api(route="/v1/score")
    def score(
        self,
        records: Annotated[list[FeatureRecord], Field(min_length=1, max_length=MAX_RECORDS)],
        top_k: Annotated[int, Field(ge=0, le=10)] = 3,
    ) -> ScoreResponse:
        """Calibrated risk, tier, percentile and the top reasons for each record."""
        return self._respond(records_frame(records, self.model.bundle.feature_names), top_k)

    @bentoml.api(route="/v1/score-history")
    def score_history(
        self,
        people: Annotated[list[PersonHistory], Field(min_length=1, max_length=MAX_PEOPLE)],
        as_of: date,
        top_k: Annotated[int, Field(ge=0, le=10)] = 3,
    ) -> ScoreResponse:
        """The same answer as ``/v1/score``, from events: features computed as in training."""
        try:
            features = history_features(people, as_of)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        return self._respond(self.model.bundle.matrix(features), top_k)

    def _respond(self, frame: pd.DataFrame, top_k: int) -> ScoreResponse:
        record = audit_record.get()
        if record is not None:
            record.update(
                patient_ids=[str(i) for i in frame.index], model_version=self.model.version
            )
        bundle = self.model.bundle
        risk = bundle.predict(frame, threads=1)
        percentile = percentile_in_population(bundle, risk)
        tiers = tier_by_threshold(bundle, risk)
        reasons = bundle.explain(frame, top_k, threads=1) if top_k else [[] for _ in risk]
        scores = [
            ScoreOut(
                id=str(person),
                risk=float(r),
                percentile=float(p),
                tier=str(t),
                reasons=[
                    ReasonOut(concept=x.concept, sentence=x.sentence, contribution=x.contribution)
                    for x in why
                ],
            )
            for person, r, p, t, why in zip(
                frame.index, risk, percentile, tiers, reasons, strict=True
            )
        ]
        return ScoreResponse(
            model=self.model.name,
            model_version=self.model.version,
            outcome=bundle.metadata["outcome"],
            scores=scores,
        )

    @bentoml.api(route="/v1/model")
    def model_info(self) -> ModelInfo:
        """Which model answers, what it predicts, and how well it did out of time."""
        meta = self.model.bundle.metadata
        return ModelInfo(
            model=self.model.name,
            model_version=self.model.version,
            outcome=meta["outcome"],
            train_as_of=meta["train_as_of"],
            test_as_of=meta["test_as_of"],
            features=self.model.bundle.feature_names,
            metrics={k: v for k, v in meta["metrics"].items() if np.isfinite(v)},
        )


RiskService.add_asgi_middleware(AccessMiddleware)
