"""The pages in a real headless Chromium against a real ``bentoml serve`` on loopback.

Debian's chromium (``make browser`` installs it) driven by Playwright's Python package; no
browser is downloaded. Screenshots at 1366x768 go to ``test-artefacts/browser/``.
"""

from __future__ import annotations

import csv
import io
import os
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest
from evaluation_fixture import HOSTILE_TITLE, write_evaluation
from servers import started_service, worker_processes, write_access
from weekly_fixture import WEEK, write_contract, write_weeks

from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving.weekly.referrals import DRIVERS, ReferralCriteria, select_referrals

pytestmark = pytest.mark.browser

CHROMIUM = Path(os.environ.get("RISKSTRAT_CHROMIUM", "/usr/bin/chromium"))
ARTEFACTS = Path(__file__).resolve().parent.parent / "test-artefacts" / "browser"
TOKENS = {
    "north-team": ("locality_team", "browser-north", ["North"]),
    "link-worker": ("social_prescriber", "browser-prescriber", []),
    "evaluator": ("data_scientist", "browser-evaluator", []),
}
VIEWPORT = {"width": 1366, "height": 768}


@pytest.fixture(scope="module")
def server(
    champion: RegisteredBundle, tracking_uri: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, Path]]:
    """The service (API and pages) on a free loopback port, with a two-week fixture and a
    finished evaluation."""
    folder = tmp_path_factory.mktemp("browser")
    weekly = write_weeks(folder / "weekly")
    people = pd.read_parquet(weekly / WEEK.isoformat() / "people.parquet")
    environment = {
        "RISKSTRAT_TRACKING_URI": tracking_uri,
        "RISKSTRAT_ACCESS_FILE": str(write_access(folder / "access.toml", TOKENS)),
        "RISKSTRAT_AUDIT_LOG": str(folder / "audit.jsonl"),
        "RISKSTRAT_WEEKLY_DIR": str(weekly),
        "RISKSTRAT_DATA_DIR": str(write_contract(folder / "data", people)),
        "RISKSTRAT_EVALUATIONS_DIR": str(write_evaluation(folder / "evaluations" / "pilot").parent),
        # As deployed: sessions opened in one worker must be known to the other.
        "RISKSTRAT_WORKERS": "2",
    }
    with started_service(environment) as started:
        assert worker_processes(started) == 2  # RISKSTRAT_WORKERS honoured
        yield started.url, folder / "audit.jsonl"


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium; run `make browser` "
            "(apt-get install chromium) or set RISKSTRAT_CHROMIUM"
        )
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, server):
    """A fresh browser context (no cookies) that records every request and console error."""
    url, _ = server
    context = browser.new_context(viewport=VIEWPORT, accept_downloads=True, base_url=url)
    page = context.new_page()
    page.requests, page.errors = [], []
    page.on("request", lambda r: page.requests.append(r.url))
    page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
    yield page
    offsite = [r for r in page.requests if not r.startswith(url)]
    context.close()
    assert offsite == [], "the pages must make no request outside the server"
    assert page.errors == [], "the console shows errors (a Content-Security-Policy refusal?)"


def server_people(server: tuple[str, Path]) -> pd.DataFrame:
    return pd.read_parquet(server[1].parent / "weekly" / WEEK.isoformat() / "people.parquet")


def _shot(page, name: str) -> None:
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=False)


def _sign_in(page, who: str) -> None:
    page.get_by_label("Access token").fill(TOKENS[who][1])
    with page.expect_navigation():  # the sign-in's redirect, loaded before anything is read
        page.get_by_role("button", name="Sign in").click()


def _download(page, link_text: str) -> list[dict]:
    with page.expect_download() as info:
        page.get_by_role("link", name=link_text).click()
    return list(csv.DictReader(io.StringIO(Path(info.value.path()).read_text())))


def test_locality_team_filters_the_list_opens_a_person_and_downloads(page, server) -> None:
    page.goto("/ui/")
    assert "/ui/login" in page.url
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Skip to main content"
    _shot(page, "01-login")
    _sign_in(page, "north-team")
    assert page.get_by_role("heading", name="Weekly list").is_visible()
    assert page.get_by_text("Model version 3").is_visible()

    page.get_by_label("Tier").select_option("high")
    page.get_by_label("Sort by").select_option("age")
    page.get_by_role("button", name="Apply filters").click()
    assert "tier=high" in page.url and "sort=age" in page.url
    rows = page.locator("table.rs-table tbody tr")
    count = rows.count()
    assert count > 0
    assert all("North" in rows.nth(i).inner_text() for i in range(count))
    assert all("High" in rows.nth(i).locator("td").nth(2).inner_text() for i in range(count))
    _shot(page, "02-list-filtered")

    downloaded = _download(page, f"Download these {count} people as CSV")
    assert [r["patient_id"] for r in downloaded] == [
        rows.nth(i).locator("th a").inner_text() for i in range(count)
    ]
    assert {r["locality"] for r in downloaded} == {"North"}
    assert {r["tier"] for r in downloaded} == {"high"}
    ages = [int(r["age"]) for r in downloaded]
    assert ages == sorted(ages, reverse=True)

    first = rows.nth(0).locator("th a")
    patient_id = first.inner_text()
    first.click()
    assert page.get_by_role("heading", name=f"Person {patient_id}").is_visible()
    assert page.locator("table.rs-chart tbody tr").count() == 5
    assert page.locator("table.rs-chart td.rs-effect", has_text="lowers").count() == 1
    assert page.locator("table.rs-timeline tbody tr").count() == 4
    _shot(page, "03-patient")

    page.get_by_role("button", name="Sign out").click()
    assert page.get_by_text("You have signed out").is_visible()
    page.goto("/ui/")
    assert "/ui/login" in page.url


def test_social_prescriber_runs_the_filter_and_downloads(page, server) -> None:
    page.goto("/ui/referrals")
    _sign_in(page, "link-worker")
    assert page.get_by_role("heading", name="Social prescribing").is_visible()
    default_count = int(page.locator("#result-count strong").inner_text())

    page.get_by_label("Lowest tier").select_option("")
    page.locator("input[name=drivers][value=frequent_gp]").uncheck()
    page.get_by_label("Lowest age").fill("18")
    page.get_by_role("button", name="Find people").click()
    assert "run=1" in page.url
    count = int(page.locator("#result-count strong").inner_text())
    assert count > default_count
    _shot(page, "04-referrals")
    expected = select_referrals(
        server_people(server),
        ReferralCriteria(min_tier=None, drivers=tuple(d for d in DRIVERS if d != "frequent_gp")),
    )
    rows = page.locator("table.rs-table tbody tr")
    shown = [rows.nth(i).locator("th").inner_text().split()[0] for i in range(rows.count())]
    assert shown == list(expected["patient_id"])

    downloaded = _download(page, f"Download these {count} people as CSV")
    assert [r["patient_id"] for r in downloaded] == list(expected["patient_id"])
    assert [r["matched"] for r in downloaded] == list(expected["matched"])

    page.goto("/ui/")
    assert page.get_by_role("heading", name="You cannot open this page").is_visible()
    page.errors.remove(
        "Failed to load resource: the server responded with a status of 403 (Forbidden)"
    )


def test_a_data_scientist_opens_an_evaluation_report_whole(page, server) -> None:
    """The report's inline style passes its policy (no console error), and every plot loads."""
    page.goto("/ui/evaluations")
    _sign_in(page, "evaluator")
    assert page.get_by_role("heading", name="Evaluations").is_visible()
    with page.expect_navigation():  # the report and its images loaded before anything is read
        page.get_by_role("link", name="pilot").click()
    assert page.url.endswith("/ui/evaluations/pilot/report.html")
    assert page.get_by_role("heading", name=f"Evaluation: {HOSTILE_TITLE}").is_visible()
    images = page.evaluate("Array.from(document.images).map(i => i.complete && i.naturalWidth > 0)")
    assert images == [True] * 4
    heading = page.locator("h2").first
    assert heading.evaluate("e => getComputedStyle(e).color") == "rgb(0, 94, 184)"
    _shot(page, "05-evaluation-report")
