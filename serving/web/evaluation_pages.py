"""The evaluation pages: the list of finished evaluations, and each one's report.html with
its plots and their data, served read-only as the evaluation run wrote them.

Files are found only through ``serving.evaluations.EvaluationStore`` (plain folder names,
nothing outside the evaluations folder). The gate has already checked the session and
that the role may read reports (``serving.roles.Can.READ_EVALUATION_REPORTS``). The report
is a self-contained page with one inline ``<style>``: it is served with its own
Content-Security-Policy (``report_csp``) that allows that style by its SHA-256, images from
this server, and nothing else (no script, no form).
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from riskstrat.impact.results import EvaluationResults
from riskstrat.serving.access import Principal, note
from riskstrat.serving.evaluations import (
    BadNameError,
    EvaluationStore,
    NoEvaluationsError,
    evaluation_store,
)
from riskstrat.serving.web.pages import PageError, page
from riskstrat.serving.web.render import render

logger = logging.getLogger(__name__)
MEDIA_TYPES = {".png": "image/png", ".csv": "text/csv; charset=utf-8"}
STYLE = re.compile(rb"<style>(.*?)</style>", re.DOTALL)


def report_csp(html: bytes) -> str:
    """The report's Content-Security-Policy: its own ``<style>`` blocks (by hash), images
    from this server and its empty ``data:`` icon (which keeps the browser from asking the
    API for /favicon.ico); nothing else."""
    hashes = [
        f"'sha256-{base64.b64encode(hashlib.sha256(block).digest()).decode()}'"
        for block in STYLE.findall(html)
    ]
    styles = " ".join(hashes) or "'none'"
    return (
        f"default-src 'none'; img-src 'self' data:; style-src {styles}; base-uri 'none'; "
        "form-action 'none'; frame-ancestors 'none'"
    )


@dataclass(frozen=True)
class Listed:
    """One row of the list: the evaluation, or why it cannot be read."""

    name: str
    results: EvaluationResults | None
    problem: str | None = None


def _listed(store: EvaluationStore) -> list[Listed]:
    rows = []
    for name in store.names():
        try:
            rows.append(Listed(name, store.load(name)))
        except (FileNotFoundError, ValueError) as exc:
            logger.warning("evaluation %r cannot be read: %s", name, exc)
            rows.append(Listed(name, None, "its results cannot be read"))
    return rows


@page
def evaluations(request: Request, principal: Principal) -> Response:
    """The finished evaluations by name, each linking to its report."""
    try:
        rows, unset = _listed(evaluation_store()), None
    except NoEvaluationsError as exc:
        rows, unset = [], str(exc)
    body = render(
        "evaluations.html", title="Evaluations", principal=principal, rows=rows, unset=unset
    )
    return HTMLResponse(body)


def _found(find: Callable[[EvaluationStore], Path], name: str) -> Path:
    """The file ``find`` names in the store; a 404 page when there is none."""
    try:
        return find(evaluation_store())
    except (NoEvaluationsError, BadNameError, FileNotFoundError):
        raise PageError(404, "Not found", f"No evaluation {name[:100]!r} with that file.") from None


@page
def report(request: Request, principal: Principal) -> Response:
    """An evaluation's report.html, as written."""
    name = request.path_params["name"]
    note(evaluation=name[:100])
    html = _found(lambda store: store.report(name), name).read_bytes()
    return Response(
        html,
        media_type="text/html; charset=utf-8",
        headers={"content-security-policy": report_csp(html)},
    )


@page
def plot(request: Request, principal: Principal) -> Response:
    """One of an evaluation's plots (PNG) or the data behind it (CSV)."""
    name, file = request.path_params["name"], request.path_params["file"]
    path = _found(lambda store: store.plot(name, file), name)
    return Response(path.read_bytes(), media_type=MEDIA_TYPES[path.suffix])
