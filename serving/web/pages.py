"""The page handlers: read a week, keep what the caller may see, render, note it for audit.

The page gate has already checked the session and the role (``serving.web.gate``); here
each page narrows the rows to the caller's localities (``Principal.localities_for``, the
rule the API uses) and records the pseudonymised ids it shows in the request's audit
record. Bad parameters give a 400 page naming them.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from dataclasses import replace
from datetime import date
from urllib.parse import urlencode

import pandas as pd
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from riskstrat.models.tiers import NOT_LISTED
from riskstrat.serving.access import OutsideScopeError, Principal, caller, note
from riskstrat.serving.roles import Can, may
from riskstrat.serving.web.data import (
    NoWeeklyDataError,
    Week,
    may_open,
    timeline,
    visible_people,
    weekly_store,
)
from riskstrat.serving.web.filters import (
    FLAGS,
    LIST_CSV_COLUMNS,
    ORDERS,
    PATHWAYS,
    REFERRAL_CSV_COLUMNS,
    SORTS,
    BadQueryError,
    Items,
    ListQuery,
    check_known,
    page_of,
    parse_referral_query,
    parse_week,
    referral_fields,
    referral_items,
    to_csv,
)
from riskstrat.serving.web.render import BASE, render
from riskstrat.serving.weekly.offers import words
from riskstrat.serving.weekly.referrals import DRIVERS, TIERS, select_referrals

logger = logging.getLogger(__name__)
TIMELINE_ROWS = 300


class PageError(Exception):
    """Stop and show a message page with this status."""

    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


def message_page(status: int, title: str, message: str, principal: Principal | None) -> Response:
    body = render("message.html", title=title, message=message, principal=principal)
    return HTMLResponse(body, status_code=status)


def page(handler: Callable[[Request, Principal], Response]) -> Callable[[Request], Response]:
    """The handler with the caller's principal, and errors as message pages (never a 500
    for bad input: unknown weeks and parameters are 400, other localities 403)."""

    @functools.wraps(handler)
    def wrapped(request: Request) -> Response:
        principal = caller()
        if principal is None:  # only reachable without the access middleware in front
            return message_page(401, "Sign in", "Sign in to see this page.", None)
        try:
            return handler(request, principal)
        except BadQueryError as exc:
            return message_page(400, "There is a problem with the request", str(exc), principal)
        except OutsideScopeError as exc:
            allowed, outside = ", ".join(principal.localities), ", ".join(exc.outside)
            message = f"locality: you may see {allowed} only, not {outside}"
            return message_page(403, "You cannot see this", message, principal)
        except PermissionError as exc:
            return message_page(403, "You cannot see this", str(exc), principal)
        except NoWeeklyDataError as exc:
            logger.warning("pages: %s", exc)
            return message_page(503, "No weekly list yet", str(exc), principal)
        except PageError as exc:
            return message_page(exc.status, exc.title, exc.message, principal)

    return wrapped


def _items(request: Request) -> Items:
    return list(request.query_params.multi_items())


def _week(items: Items) -> tuple[Week, list[date]]:
    store = weekly_store()
    as_of = parse_week(items)
    dates = store.weeks()[::-1]  # newest first
    if as_of is not None and as_of not in dates:
        shown = ", ".join(d.isoformat() for d in dates[:8])
        raise BadQueryError("week", f"no weekly run for {as_of} (there are: {shown})")
    if not dates:
        raise NoWeeklyDataError("no weekly run yet")
    return store.load(as_of), dates


def _note(week: Week, ids: pd.Series | list[str]) -> None:
    """Record the pseudonymised ids this response shows, for the audit log."""
    note(
        patient_ids=[str(i) for i in ids],
        week=week.as_of.isoformat(),
        model_version=week.model_version,
    )


def _context(principal: Principal, week: Week, dates: list[date], title: str) -> dict:
    return {
        "principal": principal,
        "week": week,
        "dates": dates,
        "title": title,
    }


def _url(path: str, items: Items) -> str:
    return f"{BASE}{path}" + ("?" + urlencode(items) if items else "")


def _list_rows(request: Request, principal: Principal):
    """The week, its dates, the query, the listed people the caller may see, and the rows
    the query selects from them."""
    items = _items(request)
    query = ListQuery.parse(items)
    principal.localities_for([query.locality] if query.locality else [])
    week, dates = _week(items)
    listed = visible_people(principal, week)
    listed = listed[listed["tier"] != NOT_LISTED]
    return week, dates, query, listed, query.select(listed)


@page
def weekly_list(request: Request, principal: Principal) -> Response:
    """The ranked list: filters, sort, 50 a page, each row linking to the person's page."""
    week, dates, query, listed, chosen = _list_rows(request, principal)
    shown, pages = page_of(chosen, query.page)
    _note(week, shown["patient_id"])
    offers = has_offers(listed)
    if offers:
        shown = shown.assign(offer_words=[words(a) if a else "" for a in shown["offer"]])
    practices = (
        listed[["practice_id", "practice_name"]]
        .drop_duplicates("practice_id")
        .sort_values("practice_id")
    )
    context = _context(principal, week, dates, "Weekly list")
    context |= {
        "query": query,
        "rows": shown.to_dict("records"),
        "avoidable": "avoidable_risk" in shown.columns,  # the week has the second model
        "offers": offers,
        "total": len(chosen),
        "listed": len(listed),
        "new_count": int((listed["week_status"] == "new").sum()),
        "pages": pages,
        "page_links": [
            (n, _url("/", query.items(page=n))) for n in _page_numbers(query.page, pages)
        ],
        "previous_url": _url("/", query.items(page=query.page - 1)) if query.page > 1 else None,
        "next_url": _url("/", query.items(page=query.page + 1)) if query.page < pages else None,
        "csv_url": _url("/list.csv", query.items(page=1)),
        "localities": sorted(listed["locality"].unique()),
        "clusters": sorted(listed["gp_cluster"].unique()),
        "practices": [
            (pid, name if isinstance(name, str) and name else pid)
            for pid, name in practices.itertuples(index=False)
        ],
        "tiers": TIERS,
        "flags": FLAGS,
        "pathways": PATHWAYS,
        "sorts": SORTS,
        "orders": ORDERS,
        "patient_url": lambda pid: _url(
            "/patient", [("id", pid), ("week", week.as_of.isoformat())]
        ),
    }
    return HTMLResponse(render("list.html", **context))


@page
def list_csv(request: Request, principal: Principal) -> Response:
    """Every row the list's filters select (all pages), as the page shows them."""
    week, _, _, _, chosen = _list_rows(request, principal)
    _note(week, chosen["patient_id"])
    return _csv(to_csv(chosen, LIST_CSV_COLUMNS), f"riskstrat-list-{week.as_of}.csv")


def _csv(text: str, name: str) -> Response:
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"content-disposition": f'attachment; filename="{name}"'},
    )


def _page_numbers(page: int, pages: int) -> list[int]:
    """Page links around the current one, with the first and the last."""
    near = range(max(1, page - 2), min(pages, page + 2) + 1)
    return sorted({1, pages, *near})


@page
def patient(request: Request, principal: Principal) -> Response:
    """One person: risk, tier, change, flags, pathway, the reasons chart and the timeline."""
    items = _items(request)
    check_known(items, frozenset({"id", "week"}))
    patient_id = next((v.strip() for k, v in items if k == "id"), "")
    if not patient_id or len(patient_id) > 64:
        raise BadQueryError("id", "give the person's pseudonymised id (id=...)")
    week, dates = _week(items)
    found = week.people[week.people["patient_id"] == patient_id]
    if found.empty or not may_open(principal, week, found.iloc[0]):
        # The same answer for an unknown id and for someone the caller may not see, so
        # that it does not tell whether the id exists elsewhere; the audit line tells.
        if not found.empty:
            note(reason="outside the people this principal may see")
        raise PageError(
            404,
            "Not found",
            f"No one with that id among the people you may see in week {week.as_of}.",
        )
    person = found.iloc[0]
    _note(week, [patient_id])
    reasons = week.reasons[week.reasons["patient_id"] == patient_id].sort_values("position")
    largest = float(reasons["contribution"].abs().max()) if len(reasons) else 0.0
    events = timeline(patient_id, week.as_of)
    context = _context(principal, week, dates, f"Person {patient_id}")
    context |= {
        "person": person.to_dict(),
        "offer": words(person["offer"]) if has_offers(week.people) and person["offer"] else "",
        "offers": has_offers(week.people),
        "flags": [label for name, label in FLAGS.items() if bool(person.get(f"flag_{name}"))],
        "reasons": reasons.to_dict("records"),
        "largest": largest or 1.0,
        "events": None if events is None else events.head(TIMELINE_ROWS).to_dict("records"),
        "events_total": None if events is None else len(events),
        "back_url": _back(principal, week),
    }
    return HTMLResponse(render("patient.html", **context))


def has_offers(people: pd.DataFrame) -> bool:
    """Whether the week proposed offers (set places; a week before offers existed has none)."""
    return "offer_reason" in people.columns and bool((people["offer_reason"] != "").any())


def _back(principal: Principal, week: Week) -> tuple[str, str]:
    items = [("week", week.as_of.isoformat())]
    if may(principal.role, Can.SEE_WEEKLY_LIST):
        return "Back to the weekly list", _url("/", items)
    return "Back to social prescribing", _url("/referrals", items)


def _referral_rows(request: Request, principal: Principal):
    items = _items(request)
    week, dates = _week(items)
    criteria, page_number = parse_referral_query(items)
    criteria = replace(criteria, localities=principal.localities_for(criteria.localities))
    visible = visible_people(principal, week)
    try:
        matches = select_referrals(visible, criteria)
    except ValueError as exc:  # a week written before the filter's columns existed
        raise PageError(503, "The filter cannot run on this week", str(exc)) from None
    return week, dates, criteria, page_number, visible, matches


@page
def referrals(request: Request, principal: Principal) -> Response:
    """The social prescribing filter: a form of the criteria, the matches and why."""
    week, dates, criteria, page_number, visible, matches = _referral_rows(request, principal)
    shown, pages = page_of(matches, page_number)
    _note(week, shown["patient_id"])
    allowed = principal.localities
    query = referral_items(criteria, allowed, week.as_of)
    linkable = may(principal.role, Can.OPEN_ANY_PERSON)
    context = _context(principal, week, dates, "Social prescribing")
    context |= {
        "fields": referral_fields(criteria),
        "criteria": criteria,
        "tiers": TIERS,
        "drivers": DRIVERS,
        "localities": sorted(visible["locality"].unique()),
        "rows": shown.to_dict("records"),
        "total": len(matches),
        "pages": pages,
        "page": page_number,
        "previous_url": _url("/referrals", [*query, ("page", str(page_number - 1))])
        if page_number > 1
        else None,
        "next_url": _url("/referrals", [*query, ("page", str(page_number + 1))])
        if page_number < pages
        else None,
        "csv_url": _url("/referrals.csv", query),
        "patient_url": lambda pid: (
            _url("/patient", [("id", pid), ("week", week.as_of.isoformat())])
            if linkable or pid in week.explained
            else None
        ),
    }
    return HTMLResponse(render("referrals.html", **context))


@page
def referrals_csv(request: Request, principal: Principal) -> Response:
    """Every match of the criteria (all pages) with why it matched."""
    week, _, _, _, _, matches = _referral_rows(request, principal)
    _note(week, matches["patient_id"])
    return _csv(to_csv(matches, REFERRAL_CSV_COLUMNS), f"riskstrat-referrals-{week.as_of}.csv")


def login(request: Request) -> Response:
    """The sign-in form (the access middleware checks what it posts)."""
    params = request.query_params
    error = params.get("error") == "1"
    body = render(
        "login.html",
        title="Sign in",
        principal=None,
        error=error,
        ended=params.get("ended") == "1",
        next=params.get("next", "")[:500],
    )
    return HTMLResponse(body)
