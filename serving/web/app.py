"""The pages as one Starlette app, mounted under ``/ui`` on the BentoML service.

Nothing is read when this module is imported: the weekly folders are found on the first
request (``RISKSTRAT_WEEKLY_DIR``), so importing the service stays cheap.
"""

from __future__ import annotations

from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from riskstrat.serving.access import caller
from riskstrat.serving.web import evaluation_pages, pages

STATIC = Path(__file__).parent / "static"


async def _http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    title = {404: "Page not found", 405: "Not allowed"}.get(status, "Something went wrong")
    return pages.message_page(status, title, title + ".", caller())


def build_app() -> Starlette:
    """The routes (paths relative to the mount point)."""
    return Starlette(
        routes=[
            Route("/", pages.weekly_list),
            Route("/list.csv", pages.list_csv),
            Route("/patient", pages.patient),
            Route("/referrals", pages.referrals),
            Route("/referrals.csv", pages.referrals_csv),
            Route("/login", pages.login),
            Route("/evaluations", evaluation_pages.evaluations),
            Route("/evaluations/{name}/report.html", evaluation_pages.report),
            Route("/evaluations/{name}/plots/{file}", evaluation_pages.plot),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        exception_handlers={404: _http_error, 405: _http_error},
    )


app = build_app()
