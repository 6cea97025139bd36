"""The BentoML scoring service: ``POST /v1/score`` turns feature records into explained risks.

It loads the model the registry's ``champion`` alias points to (resolved to a pinned
version at start-up) from the MLflow tracking URI in ``RISKSTRAT_TRACKING_URI``.
Start it with ``riskstrat serve`` or ``bentoml serve serving.service:RiskService``.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from datetime import date
from typing import Annotated

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import InvalidArgument
from pydantic import BaseModel, ConfigDict, Field

from models.registry import RegisteredBundle
from models.store import champion_version, load_champion
from serving.access import AccessMiddleware, audit_record
from serving.history import MAX_PEOPLE, PersonHistory, history_features
from serving.scoring import percentile_in_population, tier_by_threshold
from serving.web.app import app as web_pages

TRACKING_URI_ENV = "RISKSTRAT_TRACKING_URI"
RELOAD_ENV = "RISKSTRAT_RELOAD_SECONDS"
DEFAULT_RELOAD_SECONDS = 30.0
logger = logging.getLogger(__name__)
MAX_RECORDS = 10_000


class FeatureRecord(BaseModel):
    """One person's feature values, keyed by feature name (see ``/v1/model``)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, description="caller's pseudonymised id, echoed")
    features: dict[str, float | None]


class ReasonOut(BaseModel):
    concept: str
    sentence: str
    feature: str = Field(description="the feature the sentence speaks of")
    value: float | None = Field(description="its value for this person (null if unknown)")
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


@bentoml.asgi_app(web_pages, path="/ui")
@bentoml.service(name="riskstrat", traffic={"timeout": 60})
class RiskService:
    """Scores for other systems; every call but the probes needs a bearer token.
    The web pages are mounted under /ui, behind the same access middleware."""

    def __init__(self) -> None:
        uri = os.environ.get(TRACKING_URI_ENV)
        if not uri:
            raise RuntimeError(f"set {TRACKING_URI_ENV} to the MLflow tracking URI")
        self.tracking_uri = uri
        self.model = load_champion(uri)
        seconds = float(os.environ.get(RELOAD_ENV, DEFAULT_RELOAD_SECONDS))
        if seconds > 0:
            threading.Thread(target=self._watch, args=(seconds,), daemon=True).start()

    def __is_ready__(self) -> bool:
        return self.model is not None

    def refresh(self) -> bool:
        """Switch to the current champion if the alias has moved; True if it switched.

        The new bundle is loaded first and then swapped in with one assignment: requests
        already running finish with the model they started with, none is dropped.
        """
        version = champion_version(self.tracking_uri)
        if version == self.model.version:
            return False
        self.model = load_champion(self.tracking_uri)
        logger.info("switched to admission-risk version %s", self.model.version)
        return True

    def _watch(self, seconds: float) -> None:
        while True:
            time.sleep(seconds)
            try:
                self.refresh()
            except Exception:  # keep serving the current model whatever the registry does
                logger.exception("could not check the champion alias")

    @bentoml.api(route="/v1/score")
    def score(
        self,
        records: Annotated[list[FeatureRecord], Field(min_length=1, max_length=MAX_RECORDS)],
        top_k: Annotated[int, Field(ge=0, le=10)] = 3,
    ) -> ScoreResponse:
        """Calibrated risk, tier, percentile and the top reasons for each record."""
        model = self.model  # one model for the whole request, even if a switch happens
        return _respond(model, records_frame(records, model.bundle.feature_names), top_k)

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
        model = self.model
        return _respond(model, model.bundle.matrix(features), top_k)

    @bentoml.api(route="/v1/model")
    def model_info(self) -> ModelInfo:
        """Which model answers, what it predicts, and how well it did out of time."""
        model = self.model
        meta = model.bundle.metadata
        return ModelInfo(
            model=model.name,
            model_version=model.version,
            outcome=meta["outcome"],
            train_as_of=meta["train_as_of"],
            test_as_of=meta["test_as_of"],
            features=model.bundle.feature_names,
            metrics={k: v for k, v in meta["metrics"].items() if np.isfinite(v)},
        )


def _respond(model: RegisteredBundle, frame: pd.DataFrame, top_k: int) -> ScoreResponse:
    """Scores, tiers and reasons for a model-ready frame, noted in the request's audit record."""
    record = audit_record.get()
    if record is not None:
        record.update(patient_ids=[str(i) for i in frame.index], model_version=model.version)
    bundle = model.bundle
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
                ReasonOut(
                    concept=x.concept,
                    sentence=x.sentence,
                    feature=x.feature,
                    value=None if np.isnan(x.value) else x.value,
                    contribution=x.contribution,
                )
                for x in why
            ],
        )
        for person, r, p, t, why in zip(frame.index, risk, percentile, tiers, reasons, strict=True)
    ]
    return ScoreResponse(
        model=model.name,
        model_version=model.version,
        outcome=bundle.metadata["outcome"],
        scores=scores,
    )


RiskService.add_asgi_middleware(AccessMiddleware)
