"""Bad input never makes the service answer 5xx: generated requests against a real server.

Schemathesis generates requests from the service's own OpenAPI description and checks every
answer against it (status codes, content types, bodies, refusal of invalid data). A
Hypothesis generator adds what the description cannot say: valid requests with one part
replaced by something wrong (unknown features or kinds, absurd numbers, oversize batches),
arbitrary JSON and non-JSON bytes, all posted over loopback.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import schemathesis
from evaluation_fixture import write_evaluation
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from servers import running_service, write_access

from riskstrat.models.registry import RegisteredBundle

pytestmark = pytest.mark.slow  # end to end: costs tens of seconds before its first test

TOKEN = "fuzz-token"
json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)  # JSON has neither
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4)
    ),
    max_leaves=12,
)


@pytest.fixture(scope="module")
def server(
    champion: RegisteredBundle, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    folder = tmp_path_factory.mktemp("fuzz")
    environment = {
        "RISKSTRAT_TRACKING_URI": tracking_uri,
        "RISKSTRAT_ACCESS_FILE": str(
            write_access(folder / "access.toml", {"fuzzer": ("system", TOKEN, [])})
        ),
        "RISKSTRAT_AUDIT_LOG": str(folder / "audit.jsonl"),
        "RISKSTRAT_EVALUATIONS_DIR": str(write_evaluation(folder / "evaluations" / "e1").parent),
    }
    with running_service(environment, token=TOKEN) as url:
        yield url


# Every check, on every operation, as configured by default but for one thing: three rules of
# /v1/score-history compare fields, which JSON Schema cannot (an event ending before it
# starts, a person born after the as-of date, an id given twice), so there a body valid by
# the description may rightly get its documented 400.
ACCEPTED = ["2xx", "3xx", "400", "401", "403", "404", "409", "429", "5xx"]  # default and 400
CONFIG = schemathesis.config.SchemathesisConfig.from_dict(
    {
        "operations": [
            {
                "include-path": "/v1/score-history",
                "checks": {"positive_data_acceptance": {"expected-statuses": ACCEPTED}},
            }
        ]
    }
)


@pytest.mark.parametrize("mode", list(schemathesis.GenerationMode))
def test_the_api_keeps_to_its_description(server: str, mode: schemathesis.GenerationMode) -> None:
    """Every operation, with data valid by the description and data that is not, and every
    check schemathesis has (none left out).

    (Each operation is driven here rather than by ``schemathesis.pytest``, whose fixture
    loader does not run under pytest 9.)"""
    schema = schemathesis.openapi.from_url(f"{server}/docs.json", config=CONFIG)
    operations = [r.ok() for r in schema.get_all_operations()]
    assert len(operations) == 11  # the seven of /v1, the probes and /metrics
    for operation in operations:
        if mode is schemathesis.GenerationMode.NEGATIVE and operation.method == "get":
            continue  # the probes and /metrics take no input: nothing in them can be wrong

        @settings(max_examples=15, deadline=None, suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(mode))
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(headers={"Authorization": f"Bearer {TOKEN}"})

        check()


def _valid_record(names: list[str]) -> dict:
    return {"id": "p1", "features": dict.fromkeys(names, 0.0)}


def _valid_person() -> dict:
    return {
        "id": "p1",
        "birth_month": "1950-01-01",
        "sex": "F",
        "events": [{"kind": "gp_contact", "start": "2024-01-01"}],
    }


@st.composite
def bodies(draw: st.DrawFn, names: list[str]) -> tuple[str, object]:
    endpoint = draw(st.sampled_from(["/v1/score", "/v1/score-history", "/v1/model"]))
    if endpoint == "/v1/score-history":
        body = {"people": [_valid_person()], "as_of": "2025-01-01"}
        target = draw(st.sampled_from(["people", "as_of", "person", "event", "top_k"]))
    else:
        body = {"records": [_valid_record(names)]}
        target = draw(st.sampled_from(["records", "record", "feature", "top_k", "size"]))
    wrong = draw(json_values)
    if target in ("people", "as_of", "records", "top_k"):
        body[target] = wrong
    elif target == "person":
        body["people"][0][
            draw(
                st.sampled_from(
                    ["id", "birth_month", "sex", "deprivation_decile", "ethnicity_group", "events"]
                )
            )
        ] = wrong
    elif target == "event":
        body["people"][0]["events"][0][draw(st.sampled_from(["kind", "start", "end", "value"]))] = (
            wrong
        )
    elif target == "record":
        body["records"][0][draw(st.sampled_from(["id", "features", "extra"]))] = wrong
    elif target == "feature":
        name = draw(st.sampled_from([*names, "not_a_feature"]))
        body["records"][0]["features"][name] = draw(
            json_values | st.sampled_from([1e308, -1e308, 10**400])
        )
    else:
        body["records"] = body["records"] * draw(st.sampled_from([0, 10_001]))
    return endpoint, draw(st.sampled_from([body, wrong]))


def test_no_generated_request_gets_a_server_error(server: str, champion: RegisteredBundle) -> None:
    client = httpx.Client(base_url=server, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60)
    seen: set[int] = set()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(request=bodies(champion.bundle.feature_names))
    def check(request: tuple[str, object]) -> None:
        endpoint, body = request
        response = client.post(endpoint, json=body)
        seen.add(response.status_code)
        assert response.status_code < 500, (endpoint, body, response.text[:300])
        if response.status_code >= 400:
            assert list(response.json()) == ["error"], response.text[:300]

    check()
    assert {200, 400} <= seen  # the generator reaches both the models and the validation
    for raw in (b"", b"{", b"\xff\xfe", b"[]" * 1000, b'{"records": NaN}'):
        response = client.post(
            "/v1/score", content=raw, headers={"content-type": "application/json"}
        )
        assert response.status_code < 500, (raw[:20], response.text[:300])
