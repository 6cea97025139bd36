"""The BentoML scoring service: ``POST /v1/score`` turns feature records into explained risks.

It loads the model the registry's ``champion`` alias points to (resolved to a pinned
version at start-up) from the MLflow tracking URI in ``RISKSTRAT_TRACKING_URI`` (all its
settings: ``serving.settings.ServiceSettings``). Start it with ``riskstrat serve`` or
``bentoml serve serving.service:RiskService``.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import logging
import threading
import time
from dataclasses import replace
from datetime import date
from http import HTTPStatus
from typing import Annotated, Literal

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound
from pydantic import BaseModel, ConfigDict, Field

from models.registry import RegisteredBundle
from models.store import champion_version, load_champion
from models.tiers import LISTED_TIERS
from serving.access import AccessMiddleware, OutsideScopeError, audit_writable, caller, note
from serving.history import MAX_PEOPLE, PersonHistory, history_features
from serving.settings import ServiceSettings, SettingsError
from serving.timeouts import cancel_request_timers
from serving.web.app import app as web_pages
from serving.web.gate import PageGate
from serving.weekly.referrals import ReferralCriteria, select_referrals
from serving.weekly.store import Week, WeekStore

logger = logging.getLogger(__name__)
MAX_RECORDS = 10_000
# Below this many rows one thread answers fastest (OpenMP start-up costs more than it saves).
SINGLE_THREAD_ROWS = 200
# Up to this many rows /v1/score answers on the event loop: handing a request to a thread and
# back costs more than scoring a few people. Larger batches go to a thread.
INLINE_ROWS = 10


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
    tier: str = Field(
        description="very high, high, or empty: the model's cut-offs, as the weekly lists"
    )
    reasons: list[ReasonOut]


class ScoreResponse(BaseModel):
    model: str
    model_version: str
    outcome: str
    scores: list[ScoreOut]


class TierCutoffs(BaseModel):
    very_high: float = Field(description="risk at or above which a person is very high")
    high: float = Field(description="risk at or above which (below very high) a person is high")


class ModelInfo(BaseModel):
    model: str
    model_version: str
    outcome: str
    outcome_description: str
    train_as_of: list[date]
    test: str = Field(description="how the model was tested: out of time, or held-out groups")
    test_as_of: date | None = Field(description="the out-of-time test's as-of date")
    tiers: TierCutoffs = Field(description="the cut-offs /v1/score and the weekly lists apply")
    features: list[str]
    metrics: dict[str, float]


class Forbidden(BentoMLException):
    """403: the caller's role or localities do not cover what was asked."""

    error_code = HTTPStatus.FORBIDDEN


class ListRow(BaseModel):
    rank: int = Field(description="position in the borough, 1 = highest risk")
    id: str = Field(description="pseudonymised id")
    practice: str
    gp_cluster: str
    locality: str
    age_band: str
    sex: str
    risk: float
    tier: str = Field(description="very high, high, rising, or empty when not listed")
    change: float | None = Field(description="risk now minus last week's (null if new)")
    week_status: str = Field(description="new or stayed (empty when not listed)")
    reasons: list[str]
    flags: list[str]
    pathway: str
    pathway_rule: str
    matched: str | None = Field(None, description="referrals only: why the person matched")


class ListResponse(BaseModel):
    week: date
    model_version: str
    total: int = Field(description="rows matching before paging")
    rows: list[ListRow]


def _rows(frame: pd.DataFrame) -> list[ListRow]:
    return [
        ListRow(
            rank=int(r["rank"]),
            id=str(r["patient_id"]),
            practice=str(r["practice_id"]),
            gp_cluster=str(r["gp_cluster"]),
            locality=str(r["locality"]),
            age_band=str(r["age_band"]),
            sex=str(r["sex"]),
            risk=float(r["risk"]),
            tier=str(r["tier"]),
            change=None if pd.isna(r["change"]) else float(r["change"]),
            week_status=str(r["week_status"]),
            reasons=[r[f"reason_{k}"] for k in (1, 2, 3) if r[f"reason_{k}"]],
            flags=[f for f in str(r["flags"]).split("; ") if f],
            pathway=str(r["pathway"]),
            pathway_rule=str(r["pathway_rule"]),
            matched=r.get("matched"),
        )
        for r in frame.to_dict("records")
    ]


def _scope(asked: list[str]) -> tuple[str, ...]:
    """The localities a request may see: what it asked for, or all of a scoped caller's own.

    The access middleware has already refused (with its reason) a request for localities
    outside the caller's; this check repeats it in case the service runs without it.
    """
    principal = caller()
    if principal is None:
        return tuple(asked)
    try:
        return principal.localities_for(asked)
    except OutsideScopeError as exc:
        raise Forbidden(str(exc)) from None


def threads_for(rows: int) -> int:
    """LightGBM threads for a call on ``rows`` rows: one below ``SINGLE_THREAD_ROWS``, else all."""
    return 1 if rows <= SINGLE_THREAD_ROWS else 0


def freeze_long_lived() -> None:
    """Move what the worker holds for life (libraries, the model) out of the collector's
    full passes, which under load run every few seconds and would otherwise walk all of it,
    pausing every request in flight (the README's figures give the before and after). They
    are unfrozen at exit, so that extension modules can still free theirs."""
    gc.freeze()
    atexit.unregister(gc.unfreeze)
    atexit.register(gc.unfreeze)


def _week(week: date | None) -> Week:
    try:
        root = ServiceSettings.current().require("weekly_dir")
    except SettingsError as exc:
        raise NotFound(f"no weekly lists configured ({exc})") from None
    try:
        return WeekStore(root).load(week)
    except FileNotFoundError as exc:
        raise NotFound(str(exc).replace(str(root), "weekly lists")) from exc


def _page(week: Week, chosen: pd.DataFrame, limit: int, offset: int) -> ListResponse:
    shown = chosen.iloc[offset : offset + limit]
    note(patient_ids=[str(i) for i in shown["patient_id"]], model_version=week.model_version)
    return ListResponse(
        week=week.as_of,
        model_version=week.model_version,
        total=len(chosen),
        rows=_rows(shown),
    )


def records_matrix(records: list[FeatureRecord], names: list[str]) -> np.ndarray:
    """The records' values as a float array in the model's column order (null -> NaN);
    400 naming the record on unknown, missing or infinite values.

    Built straight from the parsed JSON: a DataFrame here cost more than the model call.
    """
    values = np.empty((len(records), len(names)))
    expected = set(names)
    for i, record in enumerate(records):
        given = record.features
        if given.keys() != expected:
            unknown = sorted(given.keys() - expected)
            if unknown:
                raise InvalidArgument(f"records[{i}].features: unknown feature(s) {unknown[:5]}")
            missing = [n for n in names if n not in given]
            raise InvalidArgument(f"records[{i}].features: missing feature(s) {missing[:5]}")
        values[i] = [given[n] for n in names]
    if np.isinf(values).any():
        raise InvalidArgument("records: feature values must be finite numbers or null")
    return values


@bentoml.asgi_app(web_pages, path="/ui")
# The workers count here is only the default (plain ``bentoml serve``, a built Bento): BentoML
# fixes the count from its own configuration before any worker imports this module, and
# ``BENTOML_CONFIG_OVERRIDES='{"services": {"riskstrat": {"workers": N}}}'`` overrides it.
# ``riskstrat serve`` sets that from RISKSTRAT_WORKERS (``ServiceSettings.bentoml_overrides``).
@bentoml.service(
    name="riskstrat",
    traffic={"timeout": 60},
    workers=ServiceSettings.model_fields["workers"].default,
)
class RiskService:
    """Scores for other systems; every call but the probes needs a bearer token.
    The web pages are mounted under /ui, behind the same access middleware."""

    def __init__(self) -> None:
        settings = ServiceSettings.load()
        self.tracking_uri = settings.require("tracking_uri")
        cancel_request_timers()
        self.model = load_champion(self.tracking_uri)
        freeze_long_lived()
        seconds = settings.reload_seconds
        if seconds > 0:
            threading.Thread(target=self._watch, args=(seconds,), daemon=True).start()

    def __is_ready__(self) -> bool:
        """Ready when a model is loaded and the audit log can be written: without the log,
        no patient data may be served."""
        return self.model is not None and audit_writable()

    def refresh(self) -> bool:
        """Switch to the current champion if the alias has moved; True if it switched.

        The new bundle is loaded first and then swapped in with one assignment: requests
        already running finish with the model they started with, none is dropped.
        """
        version = champion_version(self.tracking_uri)
        if version == self.model.version:
            return False
        self.model = load_champion(self.tracking_uri)
        freeze_long_lived()
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
    async def score(
        self,
        records: Annotated[list[FeatureRecord], Field(min_length=1, max_length=MAX_RECORDS)],
        top_k: Annotated[int, Field(ge=0, le=10)] = 3,
    ) -> ScoreResponse:
        """Calibrated risk, tier, percentile and the top reasons for each record."""
        model = self.model  # one model for the whole request, even if a switch happens
        values = records_matrix(records, model.bundle.feature_names)
        ids = [r.id for r in records]
        if len(values) <= INLINE_ROWS:
            return _respond(model, ids, values, top_k)
        return await asyncio.to_thread(_respond, model, ids, values, top_k)

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
        return _respond(model, list(features.index), model.bundle.values(features), top_k)

    @bentoml.api(route="/v1/weekly-list")
    def weekly_list(
        self,
        week: date | None = None,
        localities: list[str] = [],  # noqa: B006 (pydantic copies defaults)
        tiers: list[Literal["very high", "high", "rising"]] = [],  # noqa: B006
        new_only: bool = False,
        limit: Annotated[int, Field(ge=1, le=MAX_RECORDS)] = 500,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> ListResponse:
        """A week's list (default: the latest), most at risk first; locality teams see theirs."""
        found = _week(week)
        people = found.people
        keep = people["tier"].isin(tiers or LISTED_TIERS)
        scope = _scope(localities)
        if scope:
            keep &= people["locality"].isin(scope)
        if new_only:
            keep &= people["week_status"] == "new"
        return _page(found, people[keep], limit, offset)

    @bentoml.api(route="/v1/referrals")
    def referrals(
        self,
        criteria: dict[str, str | float | bool | list[str] | None] = {},  # noqa: B006
        week: date | None = None,
        limit: Annotated[int, Field(ge=1, le=MAX_RECORDS)] = 500,
        offset: Annotated[int, Field(ge=0)] = 0,
    ) -> ListResponse:
        """The social prescribing filter (fields as ``riskstrat referrals``), with reasons."""
        try:
            chosen = ReferralCriteria.from_mapping(criteria, "criteria")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        chosen = replace(chosen, localities=_scope(list(chosen.localities)))
        found = _week(week)
        return _page(found, select_referrals(found.people, chosen), limit, offset)

    @bentoml.api(route="/v1/model")
    def model_info(self) -> ModelInfo:
        """Which model answers, what it predicts, and how well it did out of time."""
        model = self.model
        about = model.bundle.described
        return ModelInfo(
            model=model.name,
            model_version=model.version,
            outcome=about.outcome.name,
            outcome_description=about.outcome.sentence(),
            train_as_of=list(about.train_as_of),
            test=about.test.phrase(),
            test_as_of=about.test.as_of,
            tiers=TierCutoffs(very_high=about.tiers.very_high, high=about.tiers.high),
            features=model.bundle.feature_names,
            metrics={k: v for k, v in about.metrics.items() if np.isfinite(v)},
        )


def _respond(
    model: RegisteredBundle, ids: list[str], values: np.ndarray, top_k: int
) -> ScoreResponse:
    """Scores, tiers and reasons for rows of model-ready values (in ``feature_names`` order),
    noted in the request's audit record."""
    note(patient_ids=[str(i) for i in ids], model_version=model.version)
    bundle = model.bundle
    threads = threads_for(len(values))
    if top_k:
        risk, reasons = bundle.predict_and_explain(values, top_k, threads)
    else:
        risk, reasons = bundle.predict(values, threads), [[] for _ in range(len(values))]
    about = bundle.described
    percentile = about.percentile(risk)
    tiers = about.tiers.assign(risk)
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
        for person, r, p, t, why in zip(ids, risk, percentile, tiers, reasons, strict=True)
    ]
    return ScoreResponse(
        model=model.name,
        model_version=model.version,
        outcome=about.outcome.name,
        scores=scores,
    )


RiskService.add_asgi_middleware(AccessMiddleware, pages=PageGate)
