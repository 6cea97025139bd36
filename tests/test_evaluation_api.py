"""Finished evaluations through the service, in-process behind its real middleware:
``/v1/evaluation`` and ``/v1/evaluations`` for any signed principal (401 without, audited),
names that are plain folder names only, and the pages' list and reports for data scientists
and systems only, served read-only from the evaluations folder and nowhere else. On the
session's one in-process service, given this module's evaluations folder."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from evaluation_fixture import HOSTILE_TITLE, evaluation, write_evaluation
from markupsafe import escape
from servers import IN_PROCESS_TOKENS, InProcessService
from starlette.testclient import TestClient

from riskstrat.impact.results import EvaluationResults
from riskstrat.serving.evaluations import PublicEvaluation

WHO = ("ds", "system", "north", "prescriber")  # of IN_PROCESS_TOKENS: one of each role
NAME = "pilot-2024"
UNBOUNDED = "unbounded-2024"
REPORT = f"/ui/evaluations/{NAME}/report.html"


@dataclass
class Served:
    service: InProcessService
    root: Path
    results: EvaluationResults

    @property
    def audit(self) -> Path:
        return self.service.audit

    def api(self, path: str, body: dict, who: str | None = "ds"):
        headers = {"Authorization": f"Bearer {IN_PROCESS_TOKENS[who][1]}"} if who else {}
        return self.service.client().post(path, json=body, headers=headers)

    def browser(self) -> TestClient:
        """A browser with its own cookie jar."""
        return self.service.client(follow_redirects=False)

    def signed_in(self, who: str) -> TestClient:
        """A browser signed in as ``who``."""
        browser = self.browser()
        answer = browser.post("/ui/login", data={"token": IN_PROCESS_TOKENS[who][1]})
        assert answer.status_code == 303, answer.text
        return browser

    def entries(self) -> list[dict]:
        return [json.loads(line) for line in self.audit.read_text().splitlines()]


@pytest.fixture(scope="module")
def served(
    in_process_service: InProcessService, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("evaluations")
    root = folder / "evaluations"
    results = evaluation(NAME)
    write_evaluation(root / NAME, results)
    write_evaluation(root / UNBOUNDED, _unbounded(results))
    # Around it: what must never be listed or served.
    evaluation("staging").save(_made(root / ".pilot-2025.partial-1"))  # a run in progress
    _made(root / "empty")  # a folder without results
    evaluation("secret").save(_made(folder / "elsewhere" / "secret"))
    (root / "linked").symlink_to(folder / "elsewhere" / "secret")  # leads outside
    (_made(root / "broken") / "results.json").write_text("{not json")
    patch = pytest.MonkeyPatch()
    for key, value in in_process_service.environment.items():
        patch.setenv(key, value)
    patch.setenv("RISKSTRAT_EVALUATIONS_DIR", str(root))
    patch.delenv("RISKSTRAT_WEEKLY_DIR", raising=False)
    yield Served(in_process_service, root, results)
    patch.undo()


def _unbounded(results: EvaluationResults) -> EvaluationResults:
    """``results`` with an interval no effect size bounds, a check without a value and a NaN
    in a table, read from a data folder and a plan whose paths are the server's."""
    design = results.designs[0]
    outcome = design.outcomes[0]
    effect = outcome.effect.model_copy(update={"ci_low": -math.inf, "ci_high": math.inf})
    checks = [design.checks[0].model_copy(update={"value": math.nan}), *design.checks[1:]]
    tables = {**design.tables, "extra": [{"x": math.nan, "y": math.inf}]}
    design = design.model_copy(
        update={
            "outcomes": [outcome.model_copy(update={"effect": effect}), *design.outcomes[1:]],
            "checks": checks,
            "tables": tables,
        }
    )
    plan = results.plan.model_copy(update={"file": "/srv/riskstrat/plans/ilm-pilot.toml"})
    return results.model_copy(
        update={
            "name": UNBOUNDED,
            "data": "/srv/riskstrat/validated",
            "plan": plan,
            "designs": [design, *results.designs[1:]],
        }
    )


def _made(folder: Path) -> Path:
    folder.mkdir(parents=True)
    return folder


# The API


def test_without_a_token_the_api_answers_401(served: Served) -> None:
    for path, body in (("/v1/evaluation", {"name": NAME}), ("/v1/evaluations", {})):
        answer = served.api(path, body, who=None)
        assert answer.status_code == 401 and "bearer token" in answer.json()["error"]


@pytest.mark.parametrize("who", WHO)
def test_any_principal_reads_the_typed_results_and_is_audited(served: Served, who: str) -> None:
    answer = served.api("/v1/evaluation", {"name": NAME}, who)
    assert answer.status_code == 200, answer.text
    assert PublicEvaluation.model_validate(answer.json()) == PublicEvaluation.of(served.results)
    assert answer.json()["plan"]["title"] == HOSTILE_TITLE  # JSON, as written
    entry = served.entries()[-1]
    assert (entry["endpoint"], entry["who"], entry["status"]) == ("/v1/evaluation", who, 200)
    assert (entry["evaluation"], entry["patients"]) == (NAME, 0)


@pytest.mark.parametrize("who", WHO)
def test_numbers_are_numbers_or_null_and_no_server_path_is_shown(served: Served, who: str) -> None:
    """An unbounded interval, a check that could not be computed and a NaN in a table are
    null, as the description types them; the data folder and the plan's folder are not sent."""
    answer = served.api("/v1/evaluation", {"name": UNBOUNDED}, who)
    assert answer.status_code == 200, answer.text
    assert not re.search(r"NaN|Infinity", answer.text)
    assert "/srv/riskstrat" not in answer.text and "plans/" not in answer.text
    body = answer.json()
    assert "data" not in body and body["plan"]["file"] == "ilm-pilot.toml"
    effect = body["designs"][0]["outcomes"][0]["effect"]
    assert (effect["ci_low"], effect["ci_high"]) == (None, None)
    assert body["designs"][0]["checks"][0]["value"] is None


@pytest.mark.parametrize("name", ["nobody", "empty", "linked"])
def test_an_evaluation_that_is_not_there_is_404(served: Served, name: str) -> None:
    answer = served.api("/v1/evaluation", {"name": name})
    assert answer.status_code == 404
    assert answer.json() == {"error": f"name: no evaluation named {name!r}"}


@pytest.mark.parametrize(
    "name", ["../x", "/etc", "a/b", "..", ".", "a.b", ".pilot-2025.partial-1", "a\\b", "", " x"]
)
def test_a_name_that_is_not_a_plain_folder_name_is_400_naming_the_field(
    served: Served, name: str
) -> None:
    before = len(served.entries())
    answer = served.api("/v1/evaluation", {"name": name})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("name: ")
    assert [e["status"] for e in served.entries()[before:]] == [400]  # audited too


def test_results_that_cannot_be_read_are_a_500_without_the_servers_paths(
    served: Served,
) -> None:
    answer = served.api("/v1/evaluation", {"name": "broken"})
    assert answer.status_code == 500
    assert answer.json() == {
        "error": "evaluation 'broken' cannot be read (the service's log says why)"
    }


def test_the_list_holds_only_finished_readable_evaluations(served: Served) -> None:
    answer = served.api("/v1/evaluations", {}, "north")
    assert answer.status_code == 200
    assert answer.json()["evaluations"] == [
        {
            "name": name,
            "created": "2026-03-02T09:30:00Z",
            "title": HOSTILE_TITLE,
            "intervention": "Integrated locality model",
            "plan_sha256": served.results.plan.sha256,
        }
        for name in (NAME, UNBOUNDED)
    ]
    assert served.entries()[-1]["endpoint"] == "/v1/evaluations"


def test_without_an_evaluations_folder_the_api_says_what_to_set(
    served: Served, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RISKSTRAT_EVALUATIONS_DIR")
    for path, body in (("/v1/evaluation", {"name": NAME}), ("/v1/evaluations", {})):
        answer = served.api(path, body)
        assert answer.status_code == 404
        assert "set RISKSTRAT_EVALUATIONS_DIR" in answer.json()["error"]


# The pages


@pytest.mark.parametrize("who", ["ds", "system"])
def test_data_scientists_and_systems_see_the_link_and_the_list(served: Served, who: str) -> None:
    page = served.signed_in(who).get("/ui/evaluations")
    assert page.status_code == 200
    assert 'href="/ui/evaluations"' in page.text  # in the menu
    links = re.findall(r'href="(/ui/evaluations/[^"]+)"', page.text)
    assert links == [REPORT, f"/ui/evaluations/{UNBOUNDED}/report.html"]
    assert str(escape(HOSTILE_TITLE)) in page.text and "<script" not in page.text
    assert "broken" in page.text and "its results cannot be read" in page.text
    for hidden in ("secret", "staging", "partial", "empty"):
        assert hidden not in page.text


def test_the_report_is_served_as_written_with_its_plots(served: Served) -> None:
    browser = served.signed_in("ds")
    before = len(served.entries())
    answer = browser.get(REPORT)
    assert answer.status_code == 200
    assert answer.content == (served.root / NAME / "report.html").read_bytes()
    assert answer.headers["content-type"] == "text/html; charset=utf-8"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert answer.headers["cache-control"] == "no-store"
    # Its one inline style is allowed by hash, images from here, nothing else.
    (style,) = re.findall(rb"<style>(.*?)</style>", answer.content, flags=re.DOTALL)
    digest = base64.b64encode(hashlib.sha256(style).digest()).decode()
    policy = answer.headers["content-security-policy"]
    assert f"style-src 'sha256-{digest}';" in policy
    assert policy.startswith("default-src 'none'; img-src 'self' data:;")
    (entry,) = served.entries()[before:]
    assert (entry["endpoint"], entry["evaluation"], entry["status"]) == (REPORT, NAME, 200)
    # Every image and data file it links to, relative to it, is served (and not audited).
    links = re.findall(r'(?:src|href)="([^":]+)"', answer.text)  # all but the data: icon
    assert len(links) == 8
    for link in links:
        fetched = browser.get(f"/ui/evaluations/{NAME}/{link}")
        assert fetched.status_code == 200, link
        assert fetched.content == (served.root / NAME / link).read_bytes()
        kind = "image/png" if link.endswith(".png") else "text/csv; charset=utf-8"
        assert fetched.headers["content-type"] == kind
    assert len(served.entries()) == before + 1


@pytest.mark.parametrize(
    "path",
    [
        "/ui/evaluations/linked/report.html",
        "/ui/evaluations/empty/report.html",
        "/ui/evaluations/%2E%2E/report.html",
        "/ui/evaluations/.pilot-2025.partial-1/report.html",
        f"/ui/evaluations/{NAME}/plots/..%2Fresults.json",
        f"/ui/evaluations/{NAME}/plots/results.json",
        f"/ui/evaluations/{NAME}/results.json",
        "/ui/evaluations/linked/plots/x.png",
    ],
)
def test_nothing_outside_the_finished_evaluations_is_served(served: Served, path: str) -> None:
    answer = served.signed_in("ds").get(path)
    assert answer.status_code == 404
    assert b"secret" not in answer.content and b'"format"' not in answer.content


@pytest.mark.parametrize("who", ["north", "prescriber"])
def test_other_roles_neither_see_the_link_nor_open_a_report(served: Served, who: str) -> None:
    browser = served.signed_in(who)
    start = browser.get("/ui/" if who == "north" else "/ui/referrals")
    assert "Signed in as" in start.text and "/ui/evaluations" not in start.text
    for path in ("/ui/evaluations", REPORT, f"/ui/evaluations/{NAME}/plots/matched_balance.png"):
        answer = browser.get(path)
        assert answer.status_code == 403, path
        assert b"<style>" not in answer.content and b"PNG" not in answer.content[:8]


def test_without_signing_in_a_report_goes_to_the_sign_in_page(served: Served) -> None:
    answer = served.browser().get(REPORT)
    assert answer.status_code == 303 and answer.headers["location"].startswith("/ui/login?")
