"""The BentoML scoring service: ``POST /v1/score`` turns feature records into explained risks.

It loads the model the registry's ``champion`` alias points to (resolved to a pinned
version at start-up) from the MLflow tracking URI in ``RISKSTRAT_TRACKING_URI`` (all its
settings: ``serving.settings.ServiceSettings``). Start it with ``riskstrat serve`` or
``bentoml serve serving.service:RiskService``.

Without a champion (none promoted yet, the registry unreachable) it starts all the same:
``/livez`` answers, ``/readyz`` and the model endpoints answer 503 saying why, and the model
is loaded as soon as one is promoted.

When the registry also has a champion of potentially avoidable admissions
(``avoidable-admission-risk``), every score carries that risk too (``avoidable_risk``, and the
model's version in the response); without one those fields are null. Tiers, percentiles and
reasons are the first model's.
"""

from __future__ import annotations

import asyncio
import atexit
import gc
import json
import logging
import math
import threading
import time
from dataclasses import replace
from datetime import date, datetime
from http import HTTPStatus
from typing import Annotated, Any

import bentoml
import numpy as np
import pandas as pd
from bentoml.exceptions import BentoMLException, InvalidArgument, NotFound
from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema
from starlette.exceptions import HTTPException
from starlette.responses import Response

from riskstrat.features.spec import FeatureSpec
from riskstrat.models.bundle import FeatureRangeError, ModelBundle
from riskstrat.models.registry import RegisteredBundle, registered_name
from riskstrat.models.store import NoChampionError, champion_version, load_champion
from riskstrat.models.tiers import LISTED_TIERS, SCORED_TIERS, ListedTier, spelled
from riskstrat.serving.access import (
    AccessMiddleware,
    OutsideScopeError,
    caller,
    note,
)
from riskstrat.serving.audit import audit_writable
from riskstrat.serving.errors import ErrorShape, error_json
from riskstrat.serving.evaluations import (
    NAME_PATTERN,
    NAME_RULE,
    BadNameError,
    EvaluationStore,
    NoEvaluationsError,
    PublicEvaluation,
    evaluation_store,
)
from riskstrat.serving.history import MAX_PEOPLE, PersonHistory, history_features
from riskstrat.serving.limits import MAX_RECORDS, RequestLimits
from riskstrat.serving.settings import ServiceSettings, SettingsError
from riskstrat.serving.timeouts import cancel_request_timers
from riskstrat.serving.web.app import app as web_pages
from riskstrat.serving.web.gate import PageGate
from riskstrat.serving.weekly.referrals import ReferralCriteria, select_referrals
from riskstrat.serving.weekly.store import Week, WeekStore

logger = logging.getLogger(__name__)
# Below this many rows one thread answers fastest (OpenMP start-up costs more than it saves).
SINGLE_THREAD_ROWS = 200
# Up to this many rows /v1/score answers on the event loop: handing a request to a thread and
# back costs more than scoring a few people. Larger batches go to a thread.
INLINE_ROWS = 10

# The request fields as the published description types them, strictly: a boolean is not
# an integer (``top_k: false``), a number not a boolean. An optional date has no null: it is
# left out for the default (the description says string, and so does the validator).
TopK = Annotated[int, Field(strict=True, ge=0, le=10, description="reasons per person")]
Limit = Annotated[int, Field(strict=True, ge=1, le=MAX_RECORDS, description="rows at most")]
Offset = Annotated[int, Field(strict=True, ge=0, description="rows to skip")]
Flag = Annotated[bool, Field(strict=True)]
# Typed as ``ReferralCriteria.from_json`` reads it (the endpoint validates it with that).
Criteria = Annotated[dict[str, Any], WithJsonSchema(ReferralCriteria.json_schema())]


class FeatureRecord(BaseModel):
    """One person's feature values, keyed by feature name (see ``/v1/model``)."""

    model_config = ConfigDict(extra="forbid")
    id: str = Field(min_length=1, max_length=64, description="caller's pseudonymised id, echoed")
    # Strict: a string or a boolean is refused, not read as a number; NaN and infinities are
    # refused (null says a value is unknown).
    features: dict[str, Annotated[float, Field(strict=True, allow_inf_nan=False)] | None] = Field(
        description="every feature of the model (see /v1/model), each within its valid range"
    )


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
        description=f"{spelled(SCORED_TIERS)}: the model's cut-offs, as the weekly lists"
    )
    reasons: list[ReasonOut]
    avoidable_risk: float | None = Field(
        None,
        description="calibrated probability of a potentially avoidable emergency admission "
        "(avoidable_model); null when the service has no such model",
    )


class ScoreResponse(BaseModel):
    model: str
    model_version: str
    outcome: str
    scores: list[ScoreOut]
    avoidable_model: str | None = Field(
        None, description="the model behind avoidable_risk; null when there is none"
    )
    avoidable_model_version: str | None = None
    avoidable_outcome: str | None = None


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
    avoidable_model: str | None = Field(
        None, description="the model of potentially avoidable admissions; null when none"
    )
    avoidable_model_version: str | None = None
    avoidable_outcome_description: str | None = None
    avoidable_metrics: dict[str, float] | None = None


class EvaluationListed(BaseModel):
    name: str = Field(description="the evaluation's folder name, for /v1/evaluation")
    created: datetime
    title: str = Field(description="the analysis plan's title")
    intervention: str
    plan_sha256: str = Field(description="the analysis plan's SHA-256 when it ran")


class EvaluationList(BaseModel):
    evaluations: list[EvaluationListed] = Field(description="by name; unreadable ones left out")


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
    tier: str = Field(description=spelled(LISTED_TIERS))
    change: float | None = Field(description="risk now minus last week's (null if new)")
    week_status: str = Field(description="new or stayed (empty when not listed)")
    reasons: list[str]
    flags: list[str]
    pathway: str
    pathway_rule: str
    matched: str | None = Field(None, description="referrals only: why the person matched")
    avoidable_risk: float | None = Field(
        None, description="risk of a potentially avoidable admission (null: no such model)"
    )
    offer: str | None = Field(
        None, description="help proposed this week (empty: none; null: no offers that week)"
    )
    offer_reason: str | None = Field(None, description="why offered or not, in plain words")


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
            change=_known(r["change"]),
            week_status=str(r["week_status"]),
            reasons=[r[f"reason_{k}"] for k in (1, 2, 3) if r[f"reason_{k}"]],
            flags=[f for f in str(r["flags"]).split("; ") if f],
            pathway=str(r["pathway"]),
            pathway_rule=str(r["pathway_rule"]),
            matched=r.get("matched"),
            avoidable_risk=_known(r.get("avoidable_risk")),
            offer=r.get("offer"),
            offer_reason=r.get("offer_reason"),
        )
        for r in frame.to_dict("records")
    ]


def _known(value: object) -> float | None:
    """A number, or None when the week has no such column or no value."""
    return None if value is None or pd.isna(value) else float(value)


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
    pausing every request in flight (docs/figures.md gives the before and after). They
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


def _evaluations() -> EvaluationStore:
    try:
        return evaluation_store()
    except NoEvaluationsError as exc:
        raise NotFound(str(exc)) from None


def _evaluation(store: EvaluationStore, name: str) -> PublicEvaluation | Response:
    """Evaluation ``name``: 400 for a name that is not a plain folder name, 404 if there is
    none, 500 saying so (the log says why, the client not the server's paths) if its
    results cannot be read."""
    try:
        return PublicEvaluation.of(store.load(name))
    except BadNameError as exc:
        raise InvalidArgument(str(exc)) from None
    except FileNotFoundError:
        raise NotFound(f"name: no evaluation named {name!r}") from None
    except ValueError as exc:
        logger.error("evaluation %r cannot be read: %s", name, exc)
        message = f"evaluation {name!r} cannot be read (the service's log says why)"
        return Response(error_json(message), 500, media_type="application/json")


def _page(week: Week, chosen: pd.DataFrame, limit: int, offset: int) -> ListResponse:
    shown = chosen.iloc[offset : offset + limit]
    note(patient_ids=[str(i) for i in shown["patient_id"]], model_version=week.model_version)
    return ListResponse(
        week=week.as_of,
        model_version=week.model_version,
        total=len(chosen),
        rows=_rows(shown),
    )


def _audit_problem() -> str | None:
    """Why no patient data may be served now: the audit log cannot be written."""
    return None if audit_writable() else "the audit log cannot be written"


def records_matrix(records: list[FeatureRecord], names: list[str]) -> np.ndarray:
    """The records' values as a float array in the model's column order (null -> NaN);
    400 naming the record on unknown or missing features (``FeatureRecord`` refuses NaN and
    infinities, ``in_range`` checks the model's ranges).

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
    return values


def in_range(bundle: ModelBundle, values: np.ndarray, where: str) -> np.ndarray:
    """``values`` if each lies in its feature's valid range, else 400 naming the row as
    ``where`` formatted with its position (``records[{}].features``) and the feature."""
    try:
        bundle.check_ranges(values)
    except FeatureRangeError as exc:
        raise InvalidArgument(f"{where.format(exc.row)}: {exc}") from None
    return values


def feature_schema(spec: FeatureSpec) -> dict:
    """One feature's value as ``FeatureRecord`` and ``ModelBundle.check_ranges`` accept it: a
    number within its bounds (a whole code for a categorical), or null for unknown."""
    low, high = spec.bounds
    value: dict[str, Any] = {"type": "integer" if spec.categorical else "number"}
    if math.isfinite(low):
        value["minimum"] = low
    if math.isfinite(high):
        value["maximum"] = high
    return {"anyOf": [value, {"type": "null"}], "description": spec.description}


def features_schema(bundle: ModelBundle) -> dict:
    """``FeatureRecord.features`` for ``bundle``: every feature, required, no other key."""
    return {
        "type": "object",
        "description": "every feature of the model (see /v1/model), each within its range",
        "properties": {s.name: feature_schema(s) for s in bundle.specs},
        "required": bundle.feature_names,
        "additionalProperties": False,
    }


def describe_model(spec: dict) -> dict:
    """The OpenAPI description with the features of the model this worker serves (while
    there is none, the model endpoints answer 503 and the features stay an open map)."""
    model = bentoml.get_current_service().model
    if model is not None:
        record = spec["components"]["schemas"]["FeatureRecord"]
        record["properties"]["features"] = features_schema(model.bundle)
    return spec


class NotReady(HTTPException):
    """/readyz's 503, saying why."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__(503, "not ready: " + "; ".join(reasons))


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
        self.model: RegisteredBundle | None = None
        self.avoidable: RegisteredBundle | None = None  # the optional second model
        self.no_model = "the champion is being loaded"  # why there is no model, while none
        self._load_first()
        threading.Thread(target=self._watch, args=(settings.reload_seconds,), daemon=True).start()

    def __is_ready__(self) -> bool:
        """True when every part is ready; else /readyz answers 503 with the reasons."""
        reasons = [r for r in (self._model_problem(), _audit_problem()) if r]
        if reasons:
            raise NotReady(reasons)
        return True

    def _model_problem(self) -> str | None:
        return None if self.model is not None else f"no model: {self.no_model}"

    def _no_model(self) -> Response:
        """The model endpoints' answer while there is no model: 503 saying why."""
        return Response(
            error_json(f"no model: {self.no_model}"), 503, media_type="application/json"
        )

    def _load_first(self) -> bool:
        """Load the champion if there is none yet; True if loaded. Without one, the reason
        is kept (and logged when it changes) for /readyz and the model endpoints."""
        try:
            self.model = load_champion(self.tracking_uri)
        except NoChampionError as exc:
            reason = detail = str(exc)
        except Exception as exc:  # the registry or the store: not ready, try again later
            # /readyz is open to anyone: the error's text (hosts, paths) goes to the log only.
            reason = f"the champion could not be loaded ({type(exc).__name__}, see the log)"
            detail = f"the champion could not be loaded: {type(exc).__name__}: {exc}"
        else:
            self._second()
            freeze_long_lived()
            logger.info("serving admission-risk version %s", self.model.version)
            return True
        if reason != self.no_model:
            logger.warning("no model to serve yet: %s", detail)
            self.no_model = reason
        return False

    def refresh(self) -> bool:
        """Switch to the current champion if the alias has moved (or load the first one);
        True if it switched.

        The new bundle is loaded first and then swapped in with one assignment: requests
        already running finish with the model they started with, none is dropped.
        """
        if self.model is None:
            return self._load_first()
        version = champion_version(self.tracking_uri)
        if version == self.model.version:
            return self._second()
        self.model = load_champion(self.tracking_uri)
        self._second(recheck=True)
        freeze_long_lived()
        logger.info("switched to admission-risk version %s", self.model.version)
        return True

    def _second(self, recheck: bool = False) -> bool:
        """Switch to the current champion of potentially avoidable admissions, or to none;
        True if it changed. ``recheck``: load it again even if unchanged (the first model
        changed: its features must still cover the second's). A registry or store failure
        keeps what is served (logged)."""
        name = registered_name("avoidable")
        try:
            try:
                version: str | None = champion_version(self.tracking_uri, name)
            except NoChampionError:
                version = None
            if not recheck and version == (self.avoidable.version if self.avoidable else None):
                return False
            found = load_champion(self.tracking_uri, name) if version else None
        except Exception:  # the first model is served all the same
            logger.exception("could not load the champion of %s", name)
            return False
        if found is not None and self.model is not None:
            lacking = set(found.bundle.feature_names) - set(self.model.bundle.feature_names)
            if lacking:
                logger.warning(
                    "not serving %s version %s: it needs features the first model does not "
                    "take (%s)",
                    name,
                    found.version,
                    ", ".join(sorted(lacking)[:5]),
                )
                found = None
        self.avoidable = found
        logger.info("serving %s version %s", name, found.version if found else "none")
        return True

    def _watch(self, seconds: float) -> None:
        """Every ``seconds``, look for a new champion. With checks off (0) the service still
        looks, at the default pace, for its first one, and stops once it has it."""
        pace = seconds or ServiceSettings.model_fields["reload_seconds"].default
        while seconds or self.model is None:
            time.sleep(pace)
            try:
                self.refresh()
            except Exception:  # keep serving the current model whatever the registry does
                logger.exception("could not check the champion alias")

    @bentoml.api(route="/v1/score")
    async def score(
        self,
        records: Annotated[list[FeatureRecord], Field(min_length=1, max_length=MAX_RECORDS)],
        top_k: TopK = 3,
    ) -> ScoreResponse:
        """Calibrated risk, tier, percentile and the top reasons for each record."""
        # One pair of models for the whole request, even if a switch happens.
        model, avoidable = self.model, self.avoidable
        if model is None:
            return self._no_model()
        values = records_matrix(records, model.bundle.feature_names)
        in_range(model.bundle, values, "records[{}].features")
        ids = [r.id for r in records]
        if len(values) <= INLINE_ROWS:
            return _respond(model, ids, values, top_k, avoidable)
        return await asyncio.to_thread(_respond, model, ids, values, top_k, avoidable)

    @bentoml.api(route="/v1/score-history")
    def score_history(
        self,
        people: Annotated[list[PersonHistory], Field(min_length=1, max_length=MAX_PEOPLE)],
        as_of: date,
        top_k: TopK = 3,
    ) -> ScoreResponse:
        """The same answer as ``/v1/score``, from events: features computed as in training."""
        model, avoidable = self.model, self.avoidable
        if model is None:
            return self._no_model()
        try:
            features = history_features(people, as_of)
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        values = in_range(model.bundle, model.bundle.values(features), "people[{}]")
        return _respond(model, list(features.index), values, top_k, avoidable)

    @bentoml.api(route="/v1/weekly-list")
    def weekly_list(
        self,
        week: date = None,  # noqa: RUF013 (left out: the latest week; null is refused)
        localities: list[str] = [],  # noqa: B006 (pydantic copies defaults)
        tiers: list[ListedTier] = [],  # noqa: B006
        new_only: Flag = False,
        limit: Limit = 500,
        offset: Offset = 0,
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
        criteria: Criteria = {},  # noqa: B006
        week: date = None,  # noqa: RUF013 (left out: the latest week; null is refused)
        limit: Limit = 500,
        offset: Offset = 0,
    ) -> ListResponse:
        """The social prescribing filter (fields as ``riskstrat referrals``), with reasons."""
        try:
            chosen = ReferralCriteria.from_json(json.dumps(criteria), "criteria")
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from exc
        chosen = replace(chosen, localities=_scope(list(chosen.localities)))
        found = _week(week)
        return _page(found, select_referrals(found.people, chosen), limit, offset)

    @bentoml.api(route="/v1/evaluation")
    def evaluation(
        self,
        name: Annotated[
            str,
            Field(
                min_length=1,
                max_length=100,
                description=f"the evaluation's name: {NAME_RULE}",
                json_schema_extra={"pattern": NAME_PATTERN},
            ),
        ],
    ) -> PublicEvaluation:
        """A finished evaluation's results (aggregate only): estimates, checks, verdicts,
        summaries, and the analysis plan with its SHA-256; numbers or null, no server paths."""
        note(evaluation=name)
        return _evaluation(_evaluations(), name)

    @bentoml.api(route="/v1/evaluations")
    def evaluations(self) -> EvaluationList:
        """The finished evaluations: name, when, and the plan's title and SHA-256."""
        store = _evaluations()
        found = []
        for name in store.names():
            try:
                results = store.load(name)
            except (FileNotFoundError, ValueError) as exc:
                logger.warning("evaluation %r left out of the list: %s", name, exc)
                continue
            found.append(
                EvaluationListed(
                    name=name,
                    created=results.created,
                    title=results.plan.title,
                    intervention=results.plan.intervention,
                    plan_sha256=results.plan.sha256,
                )
            )
        return EvaluationList(evaluations=found)

    @bentoml.api(route="/v1/model")
    def model_info(self) -> ModelInfo:
        """Which model answers, what it predicts, and how well it did out of time."""
        model, avoidable = self.model, self.avoidable
        if model is None:
            return self._no_model()
        about = model.bundle.described
        second = avoidable.bundle.described if avoidable else None
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
            metrics=_finite(about.metrics),
            avoidable_model=avoidable.name if avoidable else None,
            avoidable_model_version=avoidable.version if avoidable else None,
            avoidable_outcome_description=second.outcome.sentence() if second else None,
            avoidable_metrics=_finite(second.metrics) if second else None,
        )


def _finite(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


def second_risk(
    avoidable: RegisteredBundle | None, names: list[str], values: np.ndarray, threads: int
) -> np.ndarray | None:
    """The second model's risk for rows of ``values`` (columns ``names``, the first model's
    order), or None without one (or, for the moment a first model switches, with one whose
    features the first does not cover)."""
    if avoidable is None:
        return None
    wanted = avoidable.bundle.feature_names
    if wanted != names:
        where = {n: i for i, n in enumerate(names)}
        if not all(n in where for n in wanted):
            return None
        values = values[:, [where[n] for n in wanted]]
    return avoidable.bundle.predict(values, threads)


def _respond(
    model: RegisteredBundle,
    ids: list[str],
    values: np.ndarray,
    top_k: int,
    avoidable: RegisteredBundle | None = None,
) -> ScoreResponse:
    """Scores, tiers and reasons for rows of model-ready values (in ``feature_names`` order),
    with the second model's risk when there is one, noted in the request's audit record."""
    bundle = model.bundle
    threads = threads_for(len(values))
    second = second_risk(avoidable, bundle.feature_names, values, threads)
    if second is None:
        avoidable, second_values = None, [None] * len(values)
    else:
        second_values = [float(r) for r in second]
    note(patient_ids=[str(i) for i in ids], model_version=model.version)
    if avoidable is not None:
        note(avoidable_model_version=avoidable.version)
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
            avoidable_risk=a,
        )
        for person, r, p, t, why, a in zip(
            ids, risk, percentile, tiers, reasons, second_values, strict=True
        )
    ]
    return ScoreResponse(
        model=model.name,
        model_version=model.version,
        outcome=about.outcome.name,
        scores=scores,
        avoidable_model=avoidable.name if avoidable else None,
        avoidable_model_version=avoidable.version if avoidable else None,
        avoidable_outcome=avoidable.bundle.described.outcome.name if avoidable else None,
    )


# The first added is the outermost: refusals take one shape and one log line; a body too
# large or not JSON is refused before the access middleware or an endpoint reads it.
RiskService.add_asgi_middleware(ErrorShape, describe=describe_model)
RiskService.add_asgi_middleware(RequestLimits)
RiskService.add_asgi_middleware(AccessMiddleware, pages=PageGate)
