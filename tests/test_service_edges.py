"""The edges of a request, through BentoML's own app in-process (as ``bentoml serve`` runs it):
bodies that are not JSON or too large, values no person could have, one shape for every
refusal, and one log line for it without a traceback or patient data."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import InProcessService, enable_loggers
from starlette.testclient import TestClient

from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.limits import MAX_BODY_BYTES, MAX_RECORDS

TOKEN = "edges-token"
ENDPOINTS = (
    "/v1/score",
    "/v1/score-history",
    "/v1/weekly-list",
    "/v1/referrals",
    "/v1/model",
    "/v1/evaluation",
    "/v1/evaluations",
)


@pytest.fixture(scope="module")
def client(in_process_service: InProcessService) -> Iterator[TestClient]:
    patch = pytest.MonkeyPatch()
    for key, value in in_process_service.environment.items():
        patch.setenv(key, value)
    yield in_process_service.client(headers={"Authorization": f"Bearer {TOKEN}"})
    patch.undo()


def _record(champion: RegisteredBundle, **values: object) -> dict:
    features: dict[str, object] = dict.fromkeys(champion.bundle.feature_names, 0.0)
    features |= {"age": 80.0, "deprivation_decile": None, **values}
    return {"id": "pt-secret-7", "features": features}


def _one_shape(answer) -> str:
    """The refusal's message, checking it is exactly ``{"error": "<one line>"}``."""
    assert answer.headers["content-type"] == "application/json"
    body = answer.json()
    assert list(body) == ["error"] and isinstance(body["error"], str), body
    assert "\n" not in body["error"]
    return body["error"]


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("text/plain", b'{"records": []}'),
        ("application/xml", b"<records/>"),
        ("application/octet-stream", b"\x00\x01\x02"),
        ("application/json; charset=latin-1", b"{}"),
    ],
)
def test_a_body_that_is_not_json_is_refused_with_415(
    client: TestClient, endpoint: str, content_type: str, body: bytes
) -> None:
    answer = client.post(endpoint, content=body, headers={"content-type": content_type})
    assert answer.status_code == 415
    assert _one_shape(answer).startswith("the body must be application/json")


@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_multipart_is_refused_with_415_not_500(client: TestClient, endpoint: str) -> None:
    answer = client.post(endpoint, files={"records": ("r.json", b"[]", "application/json")})
    assert answer.status_code == 415
    _one_shape(answer)


def test_json_with_its_charset_is_accepted(client: TestClient) -> None:
    answer = client.post(
        "/v1/model", content=b"{}", headers={"content-type": "application/json; charset=utf-8"}
    )
    assert answer.status_code == 200


def test_a_body_over_the_limit_is_refused_before_it_is_read(client: TestClient) -> None:
    stated = client.post(
        "/v1/score",
        content=b"x",
        headers={"content-type": "application/json", "content-length": str(MAX_BODY_BYTES + 1)},
    )
    assert stated.status_code == 413
    assert f"larger than {MAX_BODY_BYTES} bytes" in _one_shape(stated)

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams in
        yield b'{"records": ['
        for _ in range(MAX_BODY_BYTES // 2**20 + 1):
            yield b" " * 2**20

    streamed = client.post(
        "/v1/score", content=chunks(), headers={"content-type": "application/json"}
    )
    assert streamed.status_code == 413


def test_the_limit_holds_a_full_batch_of_the_widest_records(champion: RegisteredBundle) -> None:
    import json

    widest = {
        "id": "x" * 64,
        "features": dict.fromkeys(champion.bundle.feature_names, -1.2345678901234567e-300),
    }
    assert MAX_RECORDS * len(json.dumps(widest).encode()) < 0.9 * MAX_BODY_BYTES


@pytest.mark.parametrize(
    ("values", "message"),
    [
        (
            {"age": 1e308},
            r"records\[1\]\.features: age 1e\+308 is not valid: must be from 0 to 120",
        ),
        ({"emergency_admissions_365d": -1e308}, "emergency_admissions_365d -1e\\+308 is not valid"),
        ({"sex": 7.0}, "sex 7 is not valid: must be a whole number from -1 to 1"),
        ({"has_copd": 0.5}, None),
        ({"age": "80"}, r"records\[1\]\.features\.age: Input should be a valid number"),
        ({"age": True}, r"records\[1\]\.features\.age: Input should be a valid number"),
    ],
)
def test_scores_refuse_values_no_person_could_have(
    client: TestClient, champion: RegisteredBundle, values: dict, message: str | None
) -> None:
    answer = client.post(
        "/v1/score", json={"records": [_record(champion), _record(champion, **values)]}
    )
    if message is None:
        assert answer.status_code == 200
        return
    assert answer.status_code == 400
    error = _one_shape(answer)
    assert re.search(message, error), error


def test_every_feature_at_its_most_negative_is_refused(
    client: TestClient, champion: RegisteredBundle
) -> None:
    record = {"id": "p", "features": dict.fromkeys(champion.bundle.feature_names, -1e308)}
    answer = client.post("/v1/score", json={"records": [record]})
    assert answer.status_code == 400
    assert _one_shape(answer).startswith("records[0].features: age -1e+308 is not valid")


def test_a_history_making_an_impossible_feature_is_refused_naming_the_person(
    client: TestClient,
) -> None:
    person = {"id": "p1", "birth_month": "1850-01-01", "sex": "F", "events": []}
    ok = {"id": "p0", "birth_month": "1950-01-01", "sex": "M", "events": []}
    answer = client.post("/v1/score-history", json={"people": [ok, person], "as_of": "2025-01-06"})
    assert answer.status_code == 400
    assert _one_shape(answer).startswith("people[1]: age 175")


def test_pydantic_and_endpoint_refusals_take_the_same_shape(client: TestClient) -> None:
    wrong_type = client.post("/v1/score", json={"records": "none"})
    too_many = client.post("/v1/score", json={"records": [{"id": "a", "features": {}}] * 3})
    assert (wrong_type.status_code, too_many.status_code) == (400, 400)
    assert _one_shape(wrong_type).startswith("records: Input should be a valid array")
    assert "records[0].features: missing feature(s)" in _one_shape(too_many)
    assert _one_shape(client.post("/v1/score", json={"records": []}, headers={"Authorization": ""}))


def test_refusals_are_logged_in_one_line_without_patient_data(
    client: TestClient,
    champion: RegisteredBundle,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from riskstrat.serving.errors import BENTOML_LOGGER

    enable_loggers(monkeypatch, "riskstrat.serving.errors", BENTOML_LOGGER)
    with caplog.at_level(logging.INFO):
        client.post("/v1/score", json={"records": [_record(champion, age=1e308)]})
        client.post("/v1/score", json={"records": [_record(champion, age="eighty")]})
        client.post("/v1/score", content=b"{", headers={"content-type": "application/json"})
        client.post("/v1/score", content=b"x", headers={"content-type": "text/plain"})
    mine = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert [r.getMessage() for r in mine] == [
        "POST /v1/score answered 400 Bad Request",
        "POST /v1/score answered 400 Bad Request",
        "POST /v1/score answered 400 Bad Request",
        "POST /v1/score answered 415 Unsupported Media Type",
    ]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]
    assert "pt-secret-7" not in logged and "1e+308" not in logged and "eighty" not in logged


def test_the_openapi_description_documents_every_refusal(client: TestClient) -> None:
    spec = client.get("/docs.json").json()
    assert spec["components"]["schemas"]["ErrorBody"]["required"] == ["error"]
    for path in ENDPOINTS:
        responses = spec["paths"][path]["post"]["responses"]
        for status in ("400", "401", "403", "404", "413", "415", "429", "500", "503"):
            schema = responses[status]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, status)


def test_the_log_filter_lets_server_errors_keep_their_traceback(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bentoml.exceptions import InvalidArgument

    from riskstrat.serving.errors import BENTOML_LOGGER, quiet_client_errors

    enable_loggers(monkeypatch, BENTOML_LOGGER)
    quiet_client_errors()
    logger = logging.getLogger(BENTOML_LOGGER)
    with caplog.at_level(logging.ERROR, logger=BENTOML_LOGGER):
        for error in (InvalidArgument("bad"), RuntimeError("broken")):
            try:
                raise error
            except Exception:
                logger.error("Exception on /v1/score [POST]", exc_info=True)
    assert [type(r.exc_info[1]) for r in caplog.records] == [RuntimeError]


def test_refusals_reach_the_audit_log_path_unread(tmp_path: Path) -> None:
    """A refused body is never handed on: the app behind never runs."""
    import asyncio

    from riskstrat.serving.limits import RequestLimits

    reached = []

    async def app(scope, receive, send) -> None:
        reached.append(scope["path"])

    sent: list[dict] = []

    async def receive() -> dict:
        return {"type": "http.request", "body": b"x" * 2**20, "more_body": True}

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "path": "/v1/score",
        "method": "POST",
        "headers": [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")],
    }
    asyncio.run(RequestLimits(app)(scope, receive, send))
    assert reached == [] and sent[0]["status"] == 413


def test_the_api_names_the_tiers_of_the_tier_policy(client: TestClient) -> None:
    """Tier names come from ``models.tiers``, not a copy in the service."""
    from riskstrat.models.tiers import LISTED_TIERS, SCORED_TIERS, spelled
    from riskstrat.serving.web.render import TIER_COLOURS

    spec = client.get("/docs.json").json()
    schemas = spec["components"]["schemas"]
    body = spec["paths"]["/v1/weekly-list"]["post"]["requestBody"]["content"]
    tiers = _resolved(spec, body["application/json"]["schema"])["properties"]["tiers"]
    assert tuple(tiers["items"]["enum"]) == LISTED_TIERS
    assert schemas["ListRow"]["properties"]["tier"]["description"] == spelled(LISTED_TIERS)
    assert schemas["ScoreOut"]["properties"]["tier"]["description"].startswith(
        spelled(SCORED_TIERS)
    )
    assert tuple(TIER_COLOURS) == LISTED_TIERS


def _resolved(spec: dict, schema: dict) -> dict:
    """``schema``, or what its ``$ref`` points to."""
    ref = schema.get("$ref")
    return spec["components"]["schemas"][ref.rpartition("/")[2]] if ref else schema


def _features_schema(client: TestClient) -> dict:
    spec = client.get("/docs.json").json()
    return spec["components"]["schemas"]["FeatureRecord"]["properties"]["features"]


def test_the_description_lists_the_models_features_as_the_validator_checks_them(
    client: TestClient, champion: RegisteredBundle
) -> None:
    """A record the description allows is scored; one it refuses is refused (the bounds and
    whole codes of ``ModelBundle.check_ranges``, every feature required, no other)."""
    from jsonschema import Draft202012Validator

    described = _features_schema(client)
    bundle = champion.bundle
    assert described["required"] == bundle.feature_names
    assert described["additionalProperties"] is False
    schema = Draft202012Validator(described)
    lowest = {s.name: s.bounds[0] if s.bounds[0] > -1e300 else -1e6 for s in bundle.specs}
    highest = {s.name: s.bounds[1] if s.bounds[1] < 1e300 else 1e6 for s in bundle.specs}
    extremes = [{"id": "low", "features": lowest}, {"id": "high", "features": highest}]
    assert all(schema.is_valid(r["features"]) for r in extremes)
    assert client.post("/v1/score", json={"records": extremes, "top_k": 0}).status_code == 200
    wrong = [{**lowest, "not_a_feature": 0.0}, {k: v for k, v in lowest.items() if k != "age"}]
    for spec in bundle.specs:
        low, high = spec.bounds
        wrong += [{**lowest, spec.name: low - 1}, {**lowest, spec.name: high + 1}]
        if spec.categorical:
            wrong.append({**lowest, spec.name: 0.5})
    for features in wrong:
        if any(abs(v) == float("inf") for v in features.values()):
            continue  # an unbounded end: nothing lies beyond it
        assert not schema.is_valid(features), features
        answer = client.post("/v1/score", json={"records": [{"id": "p", "features": features}]})
        assert answer.status_code == 400, features


def test_the_description_types_history_and_referrals_as_their_validators(
    client: TestClient,
) -> None:
    from riskstrat.contract.schema import ETHNICITY_GROUPS
    from riskstrat.serving.weekly.referrals import ReferralCriteria

    spec = client.get("/docs.json").json()
    person = spec["components"]["schemas"]["PersonHistory"]["properties"]
    assert tuple(person["ethnicity_group"]["anyOf"][0]["enum"]) == ETHNICITY_GROUPS
    body = spec["paths"]["/v1/referrals"]["post"]["requestBody"]["content"]
    criteria = _resolved(spec, body["application/json"]["schema"])["properties"]["criteria"]
    assert criteria == {**ReferralCriteria.json_schema(), "default": {}}
    assert criteria["additionalProperties"] is False
    for status in ("400", "429"):
        assert status in spec["paths"]["/v1/score-history"]["post"]["responses"]


@pytest.mark.parametrize(
    ("event", "message"),
    [
        ({"value": False}, r"value: Input should be a valid number"),
        ({"cost": "12"}, r"cost: Input should be a valid number"),
        ({"end": "2023-12-31"}, r"end 2023-12-31 is before start 2024-01-01"),
    ],
)
def test_history_events_are_typed_strictly(client: TestClient, event: dict, message: str) -> None:
    person = {
        "id": "p1",
        "birth_month": "1950-01-01",
        "sex": "F",
        "events": [{"kind": "gp_contact", "start": "2024-01-01", **event}],
    }
    answer = client.post("/v1/score-history", json={"people": [person], "as_of": "2025-01-06"})
    assert answer.status_code == 400
    assert re.search(message, _one_shape(answer)), _one_shape(answer)


@pytest.mark.parametrize(
    ("criteria", "message"),
    [
        ({"min_tier": "rising", "shoe_size": 9}, "criteria: shoe_size: unknown setting"),
        ({"localities": "North"}, "criteria: localities: must be a list"),
        ({"min_risk": "0.5"}, "criteria: min_risk: must be a number"),
        ({"exclude_care_home": "true"}, "criteria: exclude_care_home: must be true or false"),
    ],
)
def test_referral_criteria_in_json_are_typed(
    client: TestClient, criteria: dict, message: str
) -> None:
    """JSON says what it means: no key the description does not list, no number or list as
    text (the web form and command line still take text)."""
    answer = client.post("/v1/referrals", json={"criteria": criteria})
    assert answer.status_code == 400
    assert _one_shape(answer).startswith(message), _one_shape(answer)
