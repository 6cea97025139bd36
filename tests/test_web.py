"""The pages in-process, behind the real access middleware: sign-in and sessions, role and
locality scoping, CSV downloads equal to what is selected, audit entries, and clear 400s."""

from __future__ import annotations

import csv
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st
from servers import write_access
from starlette.applications import Starlette
from starlette.routing import Mount
from starlette.testclient import TestClient
from weekly_fixture import (
    OFFERED_PER_LOCALITY,
    PREVIOUS,
    WEEK,
    write_contract,
    write_week,
    write_weeks,
)

from riskstrat.common import spreadsheet
from riskstrat.models.registry import RegisteredBundle
from riskstrat.serving import throttle
from riskstrat.serving.access import AccessMiddleware
from riskstrat.serving.audit_chain import entry_of
from riskstrat.serving.web import filters
from riskstrat.serving.web.app import STATIC, build_app
from riskstrat.serving.web.gate import PageGate
from riskstrat.serving.weekly.referrals import ReferralCriteria, select_referrals

TOKENS = {
    "ds": ("data_scientist", []),
    "north": ("locality_team", ["North"]),
    "prescriber": ("social_prescriber", []),
    "south-prescriber": ("social_prescriber", ["South"]),
    "system": ("system", []),
}
LINK = re.compile(r'href="/ui/patient\?id=([^&"]+)')


@dataclass
class Web:
    app: object  # an ASGI app
    people: pd.DataFrame
    reasons: pd.DataFrame
    audit: Path
    root: Path

    def client(self, who: str | None = None, **kwargs) -> TestClient:
        client = TestClient(self.app, follow_redirects=False, **kwargs)
        if who:
            answer = client.post("/ui/login", data={"token": f"token-{who}"})
            assert answer.status_code == 303, answer.text
        return client

    def entries(self) -> list[dict]:
        if not self.audit.exists():
            return []
        return [entry_of(line) for line in self.audit.read_text().splitlines()]


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    folder = tmp_path_factory.mktemp("web")
    root = write_weeks(folder / "weekly")
    people = pd.read_parquet(root / WEEK.isoformat() / "people.parquet")
    reasons = pd.read_parquet(root / WEEK.isoformat() / "reasons.parquet")
    tokens = {who: (role, f"token-{who}", places) for who, (role, places) in TOKENS.items()}
    access = write_access(folder / "access.toml", tokens)
    patch = pytest.MonkeyPatch()
    patch.setenv("RISKSTRAT_ACCESS_FILE", str(access))
    patch.setenv("RISKSTRAT_AUDIT_LOG", str(folder / "audit.jsonl"))
    patch.setenv("RISKSTRAT_WEEKLY_DIR", str(root))
    patch.setenv("RISKSTRAT_DATA_DIR", str(write_contract(folder / "data", people)))
    app = AccessMiddleware(Starlette(routes=[Mount("/ui", build_app())]), pages=PageGate)
    yield Web(app, people, reasons, folder / "audit.jsonl", root)
    patch.undo()


def _ids(html: str) -> list[str]:
    return LINK.findall(html)


def _csv(text: str) -> list[dict]:
    return list(csv.DictReader(io.StringIO(text)))


def _listed(web: Web, locality: str | None = None) -> pd.DataFrame:
    listed = web.people[web.people["tier"] != ""]
    if locality:
        listed = listed[listed["locality"] == locality]
    return listed.sort_values("risk", ascending=False)


# Signing in and out


def test_pages_redirect_to_the_login_page_and_the_api_keeps_401(web: Web) -> None:
    client = web.client()
    answer = client.get("/ui/patient?id=pt0001")
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?next=%2Fui%2Fpatient%3Fid%3Dpt0001"
    assert client.get("/ui/login").status_code == 200
    assert client.get("/ui/static/riskstrat.css").status_code == 200
    api = client.post("/v1/model", json={})
    assert api.status_code == 401 and "bearer token" in api.json()["error"]


def test_sign_in_sets_a_strict_http_only_cookie_and_goes_on(web: Web) -> None:
    client = web.client()
    answer = client.post("/ui/login", data={"token": "token-north", "next": "/ui/?tier=high"})
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/?tier=high"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/ui" in cookie
    assert "Secure" not in cookie and "token-north" not in cookie
    assert client.get("/ui/").status_code == 200
    over_https = web.client(base_url="https://testserver")
    answer = over_https.post("/ui/login", data={"token": "token-north"})
    assert "; Secure" in answer.headers["set-cookie"]
    # The page cookie does not open the API: the API wants the bearer token.
    assert client.post("/v1/model", json={}).status_code == 401


def test_a_wrong_token_goes_back_to_the_form_and_is_audited(web: Web) -> None:
    answer = web.client().post("/ui/login", data={"token": "nope", "next": "/ui/"})
    assert answer.status_code == 303
    assert answer.headers["location"] == "/ui/login?error=1&next=%2Fui%2F"
    assert "set-cookie" not in answer.headers
    assert web.entries()[-1] | {"when": None, "seconds": None} == {
        "when": None,
        "who": None,
        "role": None,
        "client": "testclient",
        "endpoint": "/ui/login",
        "status": 401,
        "outcome": "no valid token",
        "patients": 0,
        "patient_ids": [],
        "model_version": None,
        "seconds": None,
    }
    page = web.client().get("/ui/login?error=1")
    assert "The access token was not recognised" in page.text


@pytest.mark.parametrize("target", ["https://elsewhere.example/", "//elsewhere.example", "/v1/x"])
def test_sign_in_never_sends_the_browser_off_the_pages(web: Web, target: str) -> None:
    answer = web.client().post("/ui/login", data={"token": "token-north", "next": target})
    assert answer.headers["location"] == "/ui/"


def test_a_prescriber_lands_on_the_referral_view(web: Web) -> None:
    answer = web.client().post("/ui/login", data={"token": "token-prescriber"})
    assert answer.headers["location"] == "/ui/referrals"


def test_a_form_posted_from_another_site_is_refused(web: Web) -> None:
    answer = web.client().post(
        "/ui/login", data={"token": "token-ds"}, headers={"origin": "https://evil.example"}
    )
    assert answer.status_code == 403 and "set-cookie" not in answer.headers


def test_sign_out_ends_the_session_on_the_server(web: Web) -> None:
    client = web.client("north")
    session = client.cookies.get("riskstrat_session")
    assert client.get("/ui/logout").status_code == 405
    answer = client.post("/ui/logout")
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/login?ended=1"
    assert "Max-Age=0" in answer.headers["set-cookie"]
    replay = web.client()
    replay.cookies.set("riskstrat_session", session, path="/ui")
    assert replay.get("/ui/").status_code == 303
    assert (web.entries()[-2]["endpoint"], web.entries()[-2]["who"]) == ("/ui/logout", "north")


def test_a_line_break_in_next_is_dropped_and_the_sign_in_audited(web: Web) -> None:
    before = len(web.entries())
    for target in ("/ui/\r\nSet-Cookie: planted=1", "/ui/?tier=high\nX: 1", "/ui/ x"):
        answer = web.client().post("/ui/login", data={"token": "token-north", "next": target})
        assert answer.status_code == 303 and answer.headers["location"] == "/ui/"
        assert "planted" not in answer.headers["set-cookie"]
    wrong = web.client().post("/ui/login", data={"token": "nope", "next": "/ui/\r\nX: 1"})
    assert wrong.headers["location"] == "/ui/login?error=1"
    assert [e["status"] for e in web.entries()[before:]] == [303, 303, 303, 401]


def test_wrong_tokens_pause_sign_in_from_that_address(web: Web) -> None:
    guesser = web.client(client=("192.0.2.7", 40000))
    for i in range(throttle.PER_CLIENT):
        answer = guesser.post("/ui/login", data={"token": f"guess-{i}"})
        assert answer.headers["location"] == "/ui/login?error=1"
    paused = guesser.post("/ui/login", data={"token": "token-north"})  # even the right one
    assert paused.status_code == 429 and "set-cookie" not in paused.headers
    assert "Too many wrong access tokens were tried from your address" in paused.text
    assert 0 < int(paused.headers["retry-after"]) <= throttle.WINDOW_SECONDS + 1
    entry = web.entries()[-1]
    assert (entry["status"], entry["outcome"], entry["client"]) == (429, "throttled", "192.0.2.7")
    web.client("north")  # another address still signs in


@contextmanager
def _audit_log_a_folder(web: Web) -> Iterator[None]:
    kept = web.audit.with_suffix(".kept")
    web.audit.rename(kept)
    web.audit.mkdir()
    try:
        yield
    finally:
        web.audit.rmdir()
        kept.rename(web.audit)


def test_no_page_with_patient_data_leaves_without_its_audit_line(web: Web) -> None:
    person = _listed(web, "North")["patient_id"].iloc[0]
    client = web.client("north")
    with _audit_log_a_folder(web):
        for url in (f"/ui/patient?id={person}", "/ui/", "/ui/list.csv", "/ui/?locality=South"):
            answer = client.get(url)
            assert answer.status_code == 503 and "audit log cannot be written" in answer.text
            assert not re.findall(r"pt\d{4}", answer.text)
        signing_in = web.client().post("/ui/login", data={"token": "token-north"})
        assert signing_in.status_code == 503 and "set-cookie" not in signing_in.headers
    assert client.get(f"/ui/patient?id={person}").status_code == 200
    assert web.entries()[-1]["patient_ids"] == [person]


# Who sees what


def test_a_locality_team_sees_only_its_localities(web: Web) -> None:
    client = web.client("north")
    page = client.get("/ui/")
    assert page.status_code == 200
    north, south = _listed(web, "North"), _listed(web, "South")
    assert _ids(page.text) == list(north["patient_id"])
    assert not set(south["patient_id"]) & set(re.findall(r"pt\d{4}", page.text))
    crafted = client.get("/ui/?locality=South")
    assert crafted.status_code == 403 and "North only" in crafted.text
    assert not set(south["patient_id"]) & set(re.findall(r"pt\d{4}", crafted.text))
    assert client.get("/ui/list.csv?locality=South").status_code == 403
    other_cluster = client.get("/ui/", params={"cluster": "South A"})
    assert other_cluster.status_code == 400 and "cluster" in other_cluster.text
    everything = _csv(client.get("/ui/list.csv").text)
    assert {r["locality"] for r in everything} == {"North"}


def test_patient_pages_are_scoped_the_same_way(web: Web) -> None:
    north_person = _listed(web, "North")["patient_id"].iloc[0]
    south_person = _listed(web, "South")["patient_id"].iloc[0]
    team = web.client("north")
    shown = team.get(f"/ui/patient?id={north_person}")
    assert shown.status_code == 200 and f"Person {north_person}" in shown.text
    # Someone in another locality and no one at all get the same answer: the page does not
    # tell that the id exists elsewhere.
    refused = team.get(f"/ui/patient?id={south_person}")
    unknown = team.get(f"/ui/patient?id={south_person}".replace(south_person, "pt9999"))
    assert refused.status_code == unknown.status_code == 404 and south_person not in refused.text
    assert refused.text.replace(south_person, "pt9999") == unknown.text
    assert team.get("/ui/referrals").status_code == 403
    assert web.client("ds").get(f"/ui/patient?id={south_person}").status_code == 200


def test_prescribers_see_referrals_and_the_people_explained(web: Web) -> None:
    client = web.client("prescriber")
    assert client.get("/ui/").status_code == 403
    assert client.get("/ui/list.csv").status_code == 403
    assert client.get("/ui/referrals").status_code == 200
    explained = set(web.reasons["patient_id"])
    unexplained = sorted(set(web.people["patient_id"]) - explained)
    assert client.get(f"/ui/patient?id={sorted(explained)[0]}").status_code == 200
    hidden, unknown = (client.get(f"/ui/patient?id={i}") for i in (unexplained[0], "pt9999"))
    assert hidden.status_code == unknown.status_code == 404 and hidden.text == unknown.text


def test_a_prescriber_for_one_locality_cannot_widen_it(web: Web) -> None:
    client = web.client("south-prescriber")
    page = client.get("/ui/referrals?run=1&min_tier=&drivers=isolation&drivers=low_mood")
    assert page.status_code == 200
    shown = set(re.findall(r"pt\d{4}", page.text))
    assert shown and shown <= set(web.people.loc[web.people["locality"] == "South", "patient_id"])
    widened = client.get("/ui/referrals.csv?run=1&drivers=isolation&localities=North")
    assert widened.status_code == 403 and "North" in widened.text


# What the pages show


def test_the_list_filters_sorts_and_pages(web: Web, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(filters, "PAGE_SIZE", 5)
    client = web.client("ds")
    listed = _listed(web)
    chosen = listed[listed["flag_frailty"] & (listed["tier"] != "very high")]
    chosen = chosen.sort_values("age", kind="stable")
    query = "?flag=frailty&tier=high&tier=rising"
    assert client.get("/ui/" + query).status_code == 400  # tier given twice
    expected = chosen[chosen["tier"] == "rising"]
    query = "?flag=frailty&tier=rising&sort=age&order=asc"
    first, second = client.get("/ui/" + query), client.get("/ui/" + query + "&page=2")
    assert _ids(first.text) == list(expected["patient_id"][:5])
    assert _ids(second.text) == list(expected["patient_id"][5:10])
    rows = _csv(client.get("/ui/list.csv" + query).text)
    assert [r["patient_id"] for r in rows] == list(expected["patient_id"])
    assert [float(r["risk_percent"]) for r in rows] == list((100 * expected["risk"]).round(1))
    assert rows[0].keys() == set(filters.LIST_CSV_COLUMNS)
    new = client.get("/ui/list.csv?new=1").text
    assert {r["new_or_stayed"] for r in _csv(new)} == {"new"}


def test_the_week_picker_shows_an_older_week_and_ignores_staging(web: Web) -> None:
    client = web.client("ds")
    latest = client.get("/ui/")
    assert "Model version 3" in latest.text and "Drift check: no drift" in latest.text
    assert f'value="{PREVIOUS.isoformat()}"' in latest.text
    assert "2026-11-02" not in latest.text and "2026-11-09" not in latest.text
    older = client.get(f"/ui/?week={PREVIOUS.isoformat()}")
    assert "Model version 2" in older.text
    previous = pd.read_parquet(web.root / PREVIOUS.isoformat() / "people.parquet")
    assert _ids(older.text) == list(previous[previous["tier"] != ""]["patient_id"])


def test_the_patient_page_shows_risk_reasons_and_timeline(web: Web) -> None:
    person = _listed(web, "North").iloc[0]
    page = web.client("north").get(f"/ui/patient?id={person['patient_id']}").text
    assert f"{100 * person['risk']:.1f}%" in page
    assert person["pathway"] in page and person["pathway_rule"] in page
    reasons = web.reasons[web.reasons["patient_id"] == person["patient_id"]]
    for sentence in reasons["sentence"]:
        assert sentence.replace("&", "&amp;") in page
    assert page.count("rs-bar--raises") == 4 and page.count("rs-bar--lowers") == 1
    dates = re.findall(r'<td class="nhsuk-table__cell rs-nowrap">([^<]+)</td>', page)
    parsed = [pd.Timestamp(d) for d in dates]
    assert len(parsed) == 4 and parsed == sorted(parsed, reverse=True)
    assert pd.Timestamp(WEEK) not in parsed  # an event on the as-of date is not history


def test_the_list_and_patient_pages_show_the_offer_and_why(web: Web) -> None:
    north = web.client("north")
    listed = _listed(web, "North")
    page = north.get("/ui/").text
    assert "Offer this week" in page
    offered = listed[listed["offer"] != ""]
    assert len(offered) == OFFERED_PER_LOCALITY
    for reason in listed["offer_reason"]:
        assert reason in page
    person = north.get(f"/ui/patient?id={offered.iloc[0]['patient_id']}").text
    assert "Offer this week" in person and "<strong>reablement plan</strong>" in person
    assert offered.iloc[0]["offer_reason"] in person
    older = north.get(f"/ui/?week={PREVIOUS}").text  # a week before offers existed
    assert "Offer this week" not in older


def test_the_referral_page_matches_the_filter_and_its_csv(web: Web) -> None:
    client = web.client("ds")
    query = "?run=1&min_tier=&min_risk=20&drivers=isolation&drivers=bereavement&min_age=18"
    query += "&not_referred_months=6&exclude_care_home=true"
    expected = select_referrals(
        web.people,
        ReferralCriteria(
            min_tier=None,
            min_risk=0.2,
            drivers=("isolation", "bereavement"),
            exclude_mental_health_care=False,
        ),
    )
    page = client.get("/ui/referrals" + query)
    assert _ids(page.text) == list(expected["patient_id"])
    rows = _csv(client.get("/ui/referrals.csv" + query).text)
    assert [r["patient_id"] for r in rows] == list(expected["patient_id"])
    assert [r["matched"] for r in rows] == list(expected["matched"])
    default = client.get("/ui/referrals")
    assert _ids(default.text) == list(
        select_referrals(web.people, ReferralCriteria())["patient_id"]
    )


def test_page_views_are_audited_with_the_ids_shown(web: Web) -> None:
    client = web.client("north")
    client.get("/ui/?tier=high")
    client.get("/ui/list.csv?tier=high")
    entries = web.entries()[-2:]
    expected = list(_listed(web, "North").query("tier == 'high'")["patient_id"])
    for entry, endpoint in zip(entries, ["/ui", "/ui/list.csv"], strict=True):
        assert (entry["who"], entry["role"], entry["endpoint"]) == (
            "north",
            "locality_team",
            endpoint,
        )
        assert entry["patient_ids"] == expected and entry["patients"] == len(expected)
        assert (entry["week"], entry["model_version"], entry["outcome"]) == (
            "2026-10-26",
            "3",
            "shown",
        )
    south_person = _listed(web, "South")["patient_id"].iloc[0]
    client.get(f"/ui/patient?id={south_person}&week=2026-10-26")
    refused = web.entries()[-1]
    assert (refused["status"], refused["patients"], refused["client"]) == (404, 0, "testclient")
    assert refused["asked"] == {"ids": [south_person], "week": "2026-10-26"}
    assert refused["reason"] == "outside the people this principal may see"
    client.get("/ui/list.csv?locality=South")
    assert web.entries()[-1]["status"] == 403
    assert web.entries()[-1]["asked"] == {"localities": ["South"]}
    web.client().get(f"/ui/patient?id={south_person}")
    anonymous = web.entries()[-1]
    assert (anonymous["status"], anonymous["who"]) == (303, None)
    assert anonymous["asked"] == {"ids": [south_person]}


def test_downloads_neutralise_formulas_by_the_one_csv_rule(
    web: Web, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One rule for every spreadsheet we hand out: change it there, the pages follow."""
    hostile = ['=HYPERLINK("http://x","click")', "@SUM(1+1)", "+1+1", "|calc"]
    rows = web.people.head(len(hostile)).assign(practice_name=hostile)
    monkeypatch.setattr(spreadsheet, "FORMULA_LEADS", spreadsheet.FORMULA_LEADS | {"|"})
    written = _csv(filters.to_csv(rows, filters.LIST_CSV_COLUMNS))
    assert [r["practice_name"] for r in written] == ["'" + h for h in hostile]


def test_pages_carry_security_headers_and_the_css_stays_on_the_server(web: Web) -> None:
    page = web.client("ds").get("/ui/")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-content-type-options"] == "nosniff"
    for css in STATIC.rglob("*.css"):
        urls = re.findall(r"url\(([^)]*)\)", css.read_text())
        assert not [u for u in urls if "//" in u or u.startswith("/")], css


def test_no_patient_data_in_the_application_log(web: Web, caplog: pytest.LogCaptureFixture) -> None:
    # BentoML's own access log, as the real server wraps the app in it (path, not query).
    from bentoml._internal.server.http.access import AccessLogMiddleware

    person = _listed(web)["patient_id"].iloc[0]
    logged = Web(AccessLogMiddleware(web.app), web.people, web.reasons, web.audit, web.root)
    with caplog.at_level(logging.DEBUG):
        client = logged.client("ds")
        client.get("/ui/")
        client.get(f"/ui/patient?id={person}")
        client.get("/ui/referrals.csv")
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("httpx"))
    assert "path=/ui/patient" in ours
    assert person not in ours and "pt0" not in ours


# Bad input


@pytest.mark.parametrize(
    ("url", "names"),
    [
        ("/ui/?page=x", "page"),
        ("/ui/?page=0", "page"),
        ("/ui/?page=99", "page"),
        ("/ui/?tier=extreme", "tier"),
        ("/ui/?sort=name", "sort"),
        ("/ui/?order=sideways", "order"),
        ("/ui/?week=last", "week"),
        ("/ui/?week=2020-01-06", "week"),
        ("/ui/?flag=tall", "flag"),
        ("/ui/?new=yes", "new"),
        ("/ui/?colour=red", "colour"),
        ("/ui/?practice=X1", "practice"),
        ("/ui/list.csv?locality=North&locality=South", "locality"),
        ("/ui/patient", "id"),
        ("/ui/patient?id=pt0001&extra=1", "extra"),
        ("/ui/referrals?min_risk=abc", "min_risk"),
        ("/ui/referrals?min_risk=150", "min_risk"),
        ("/ui/referrals?min_age=-1", "min_age"),
        ("/ui/referrals?run=1", "drivers"),
        ("/ui/referrals?drivers=wealth", "drivers"),
        ("/ui/referrals?run=1&drivers=isolation&exclude_care_home=maybe", "exclude_care_home"),
        ("/ui/referrals.csv?min_tier=low", "min_tier"),
    ],
)
def test_bad_parameters_are_400s_naming_them(web: Web, url: str, names: str) -> None:
    answer = web.client("ds").get(url)
    assert answer.status_code == 400, answer.text
    assert names in answer.text


@given(
    path=st.sampled_from(["/ui/", "/ui/list.csv", "/ui/patient", "/ui/referrals"]),
    params=st.lists(
        st.tuples(
            st.sampled_from(["week", "page", "tier", "flag", "id", "min_risk", "drivers", "run"]),
            st.text(max_size=12),
        ),
        max_size=4,
    ),
)
def test_no_query_makes_a_page_fail(web: Web, path: str, params: list) -> None:
    answer = web.client("ds").get(path, params=params)
    assert answer.status_code in (200, 400, 404), answer.text


def test_without_a_weekly_run_the_pages_say_so(
    web: Web, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RISKSTRAT_WEEKLY_DIR", str(tmp_path))
    answer = web.client("ds").get("/ui/")
    assert answer.status_code == 503 and "No weekly list yet" in answer.text
    write_week(tmp_path, WEEK, None)
    assert web.client("ds").get("/ui/").status_code == 200


@pytest.mark.slow
def test_the_pages_read_a_real_weekly_run(
    validated: Path,
    champion: RegisteredBundle,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    web: Web,
) -> None:
    """The same pages on what ``riskstrat weekly`` writes, with the validated tables."""
    from riskstrat.serving.weekly.run import weekly_run

    weekly_run(validated, WEEK, champion, tmp_path / "weekly")
    monkeypatch.setenv("RISKSTRAT_WEEKLY_DIR", str(tmp_path / "weekly"))
    monkeypatch.setenv("RISKSTRAT_DATA_DIR", str(validated))
    people = pd.read_parquet(tmp_path / "weekly" / WEEK.isoformat() / "people.parquet")
    listed = people[people["tier"] != ""]
    client = web.client("ds")
    page = client.get("/ui/")
    assert page.status_code == 200 and f"Model version {champion.version}" in page.text
    assert _ids(page.text) == list(listed["patient_id"][: filters.PAGE_SIZE])
    rows = _csv(client.get("/ui/list.csv").text)
    assert [r["patient_id"] for r in rows] == list(listed["patient_id"])
    top = listed.iloc[0]["patient_id"]
    person = client.get(f"/ui/patient?id={top}")
    assert person.status_code == 200 and "rs-bar--raises" in person.text
    assert "Emergency admission" in person.text or "GP contact" in person.text
    matches = select_referrals(people, ReferralCriteria())
    referrals = _csv(client.get("/ui/referrals.csv").text)
    assert [r["patient_id"] for r in referrals] == list(matches["patient_id"])
