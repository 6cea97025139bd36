"""Who may call what: bearer tokens mapped to roles, checked in front of every endpoint, and an
append-only audit log of every request that touches patient data.

Tokens live in a TOML file (``RISKSTRAT_ACCESS_FILE``) as SHA-256 hashes only:

    [[token]]
    name = "coordination-centre"      # who, as the audit log names them
    sha256 = "9f86d08..."             # hashlib.sha256(token.encode()).hexdigest()
    role = "system"                   # system, data_scientist, social_prescriber, locality_team
    localities = ["North"]            # locality_team only: the localities it may see

No token: 401. A role not allowed on an endpoint: 403. Probes and the API description
(/livez, /readyz, /metrics, /docs.json, /schema.json, /docs) need no token.

The web pages under /ui use the same principals: a person signs in at /ui/login with their
token and gets a session cookie (see ``serving.web.session``), accepted for /ui paths only
(a bearer header works there too). Without either, a page redirects to the login page; a
role not allowed on a page gets a 403 page. Pages showing patient data are audited like the
scoring endpoints, and so are sign-ins and sign-outs.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import os
import time
import tomllib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

ROLES = ("system", "data_scientist", "social_prescriber", "locality_team")
OPEN_PATHS = (
    "/livez",
    "/readyz",
    "/healthz",
    "/metrics",
    "/docs.json",
    "/schema.json",
    "/docs",
    "/",
)
ALLOWED: dict[str, tuple[str, ...]] = {
    "/v1/score": ("system", "data_scientist"),
    "/v1/score-history": ("system", "data_scientist"),
    "/v1/model": ROLES,
    "/v1/weekly-list": ("system", "data_scientist", "locality_team"),
    "/v1/referrals": ("system", "data_scientist", "social_prescriber"),
}
PATIENT_ENDPOINTS = ("/v1/score", "/v1/score-history", "/v1/weekly-list", "/v1/referrals")
# Where the request body may name localities: checked against a locality-scoped token.
SCOPED_ENDPOINTS = ("/v1/weekly-list", "/v1/referrals")

UI = "/ui"
LIST_ROLES = ("locality_team", "data_scientist", "system")
REFERRAL_ROLES = ("social_prescriber", "data_scientist", "system")
PAGES_ALLOWED: dict[str, tuple[str, ...]] = {
    "/ui": LIST_ROLES,
    "/ui/list.csv": LIST_ROLES,
    "/ui/referrals": REFERRAL_ROLES,
    "/ui/referrals.csv": REFERRAL_ROLES,
    "/ui/patient": ROLES,  # the page itself checks localities (and explained people)
    "/ui/logout": ROLES,
}
PATIENT_PAGES = ("/ui", "/ui/list.csv", "/ui/referrals", "/ui/referrals.csv", "/ui/patient")
# Where a role lands after signing in.
HOME = {"social_prescriber": "/ui/referrals"}
OUTCOMES = {200: "shown", 303: "redirected", 400: "bad request", 401: "no valid token"}
OUTCOMES |= {403: "refused", 404: "not found", 405: "method not allowed", 413: "too large"}

# Filled by the endpoint (ids scored, model version) and written by the middleware.
audit_record: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "audit_record", default=None
)


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    localities: tuple[str, ...] = ()


def note(**fields: object) -> None:
    """Add ``fields`` (ids shown, model version, week) to the current request's audit record;
    nothing outside a request."""
    record = audit_record.get()
    if record is not None:
        record.update(fields)


def caller() -> Principal | None:
    """Who is making the current request (set by the middleware), for scoping by locality."""
    record = audit_record.get()
    return None if record is None else record.get("principal")


def outside_scope(principal: Principal, asked: list[str]) -> str | None:
    """Why asking for ``asked`` localities is refused for this principal, or None."""
    outside = [loc for loc in asked if loc not in principal.localities]
    if principal.localities and outside:
        return (
            f"{principal.name} may not see locality {', '.join(outside)} "
            f"(allowed: {', '.join(principal.localities)})"
        )
    return None


def asked_localities(body: bytes) -> list[str]:
    """Localities named in a list or referral request body (none if it cannot be read:
    the endpoint then answers 400 for the body itself)."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return []
    if not isinstance(data, dict):
        return []
    criteria = data.get("criteria")
    asked = criteria.get("localities") if isinstance(criteria, dict) else data.get("localities")
    if isinstance(asked, str):
        asked = asked.split(",")
    if not isinstance(asked, list):
        return []
    return [str(a).strip() for a in asked if str(a).strip()]


class AccessConfigError(ValueError):
    """The access file is missing or wrong; names the file and the entry."""


def load_principals(path: Path) -> dict[str, Principal]:
    """Principals by token hash, from the TOML file at ``path``."""
    try:
        entries = tomllib.loads(path.read_text()).get("token", [])
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise AccessConfigError(f"{path}: cannot read the access file ({exc})") from exc
    principals = {}
    for i, entry in enumerate(entries):
        role, digest = entry.get("role"), str(entry.get("sha256", "")).lower()
        if role not in ROLES:
            raise AccessConfigError(f"{path}: token[{i}] role {role!r} is not one of {ROLES}")
        if len(digest) != 64:
            raise AccessConfigError(f"{path}: token[{i}] needs a 64-character sha256")
        if role == "locality_team" and not entry.get("localities"):
            raise AccessConfigError(f"{path}: token[{i}] is a locality team without localities")
        principals[digest] = Principal(
            str(entry.get("name", f"token-{i}")), role, tuple(entry.get("localities", ()))
        )
    return principals


def token_digest(token: str) -> str:
    """The token's SHA-256, as the access file stores it."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def identify(principals: dict[str, Principal], authorization: str | None) -> Principal | None:
    """The principal behind an ``Authorization: Bearer`` header, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return by_digest(principals, token_digest(authorization[len("Bearer ") :]))


def by_digest(principals: dict[str, Principal], digest: str) -> Principal | None:
    """The principal whose token hashes to ``digest``, compared in constant time."""
    for known, principal in principals.items():
        if hmac.compare_digest(known, digest):
            return principal
    return None


def refusal(principal: Principal | None, path: str) -> tuple[int, str] | None:
    """(status, message) when the request must be refused, else None."""
    if path in OPEN_PATHS:
        return None
    if principal is None:
        return 401, "a valid bearer token is required (Authorization: Bearer <token>)"
    allowed = ALLOWED.get(path)
    if allowed is None:
        return 403, f"no role may call {path}"
    if principal.role not in allowed:
        return 403, f"role {principal.role} may not call {path} (allowed: {', '.join(allowed)})"
    return None


def is_page(path: str) -> bool:
    return path == UI or path.startswith(UI + "/")


def page_refusal(principal: Principal, path: str) -> tuple[int, str] | None:
    """(status, message) when a signed-in principal may not open the page, else None.

    Paths not in the table (unknown pages) are left to the pages app, which answers 404.
    """
    allowed = PAGES_ALLOWED.get(path)
    if allowed is None or principal.role in allowed:
        return None
    return 403, f"The {principal.role.replace('_', ' ')} role cannot open this page."


class AuditLog:
    """Append-only JSON lines: when, who, role, endpoint, outcome, patients, model version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


ACCESS_FILE_ENV = "RISKSTRAT_ACCESS_FILE"
AUDIT_LOG_ENV = "RISKSTRAT_AUDIT_LOG"


class AccessMiddleware:
    """ASGI middleware: authenticate, authorise, and audit patient-data requests.

    Built when the server starts (not on import): reads the access file named by
    ``RISKSTRAT_ACCESS_FILE`` and appends to the audit log named by ``RISKSTRAT_AUDIT_LOG``;
    without either the server refuses to start. It also holds the pages' sessions.
    """

    def __init__(self, app) -> None:
        from serving.web.session import SessionStore, sessions_path

        for variable in (ACCESS_FILE_ENV, AUDIT_LOG_ENV):
            if not os.environ.get(variable):
                raise AccessConfigError(f"set {variable} before starting the service")
        self.app = app
        self.principals = load_principals(Path(os.environ[ACCESS_FILE_ENV]))
        self.audit = AuditLog(Path(os.environ[AUDIT_LOG_ENV]))
        self.sessions = SessionStore(sessions_path(Path(os.environ[AUDIT_LOG_ENV])))

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        if is_page(path):
            await self._page(scope, receive, send, path, headers)
            return
        principal = identify(self.principals, headers.get("authorization"))
        refused = refusal(principal, path)
        if refused:
            await _send_json(send, *refused)
            if path in PATIENT_ENDPOINTS:
                self._write(principal, path, refused[0], {}, 0.0)
            return
        if path in SCOPED_ENDPOINTS and principal.localities:
            body = await _read_body(receive)
            reason = outside_scope(principal, asked_localities(body))
            if reason:
                await _send_json(send, 403, reason)
                self._write(principal, path, 403, {}, 0.0)
                return
            receive = _replay(body, receive)
        await self._pass(scope, receive, send, principal, path, path in PATIENT_ENDPOINTS)

    async def _pass(self, scope, receive, send, principal, path: str, audited: bool) -> None:
        """Call the app with an audit record open (holding the principal, see ``caller``);
        write it to the audit log if ``audited``."""
        record: dict = {"principal": principal}
        token = audit_record.set(record)
        status = {"code": 500}
        began = time.perf_counter()

        async def remember(message: dict) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, remember)
        finally:
            audit_record.reset(token)
            if audited:
                self._write(principal, path, status["code"], record, time.perf_counter() - began)

    async def _page(self, scope, receive, send, path: str, headers: dict[str, str]) -> None:
        """The pages: session cookie (or bearer), sign-in and sign-out, roles, audit."""
        from serving.web import session

        send = _with_page_headers(send, no_store=not path.startswith("/ui/static"))
        secure = session.is_https(scope, headers)
        if path == "/ui/login" and scope["method"] == "POST":
            await self._login(receive, send, headers, secure)
            return
        if path == "/ui/login" or path.startswith("/ui/static/"):
            await self.app(scope, receive, send)
            return
        cookie = session.cookie_value(headers)
        digest = self.sessions.digest(cookie)
        principal = by_digest(self.principals, digest) if digest else None
        principal = principal or identify(self.principals, headers.get("authorization"))
        audited = path in PATIENT_PAGES
        if principal is None:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + ("?" + query if query else "")
            await _redirect(send, session.login_url(target if scope["method"] == "GET" else None))
            if audited:
                self._write(None, path, 303, {}, 0.0)
            return
        if path == "/ui/logout":
            if scope["method"] != "POST":
                await _send_page(send, 405, "Sign out with the button", "Use the Sign out button.")
                return
            self.sessions.close(cookie)
            await _redirect(send, session.login_url(ended="1"), cookie=session.clear_cookie(secure))
            self._write(principal, path, 303, {}, 0.0)
            return
        refused = page_refusal(principal, path)
        if refused:
            await _send_page(send, refused[0], "You cannot open this page", refused[1], principal)
            if audited:
                self._write(principal, path, refused[0], {}, 0.0)
            return
        await self._pass(scope, receive, send, principal, path, audited)

    async def _login(self, receive, send, headers: dict[str, str], secure: bool) -> None:
        """Check the pasted token; open a session and go on, or back to the form."""
        from serving.web import session

        if not session.same_origin(headers):
            await _send_page(send, 403, "Sign in refused", "The form came from another site.")
            return
        form = await session.read_form(receive)
        if form is None:
            await _send_page(send, 413, "Sign in refused", "The form is too large.")
            return
        token = form.get("token", "").strip()
        digest = token_digest(token) if token else ""
        principal = by_digest(self.principals, digest) if token else None
        target = form.get("next") or None
        if principal is None:
            await _redirect(send, session.login_url(target, error="1"))
            self._write(None, "/ui/login", 401, {}, 0.0)
            return
        session_id = self.sessions.open(digest)
        home = HOME.get(principal.role, "/ui/")
        await _redirect(
            send, session.safe_next(target, home), cookie=session.set_cookie(session_id, secure)
        )
        self._write(principal, "/ui/login", 303, {}, 0.0)

    def _write(
        self, principal: Principal | None, path: str, status: int, record: dict, seconds: float
    ) -> None:
        ids = record.get("patient_ids", [])
        entry = {
            "when": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": principal.name if principal else None,
            "role": principal.role if principal else None,
            "endpoint": path,
            "status": status,
            "outcome": OUTCOMES.get(status, "error" if status >= 500 else str(status)),
            "patients": len(ids),
            "patient_ids": ids,
            "model_version": record.get("model_version"),
            "seconds": round(seconds, 4),
        }
        if "week" in record:
            entry["week"] = record["week"]
        self.audit.write(entry)


def _with_page_headers(send, no_store: bool):
    """``send`` adding the pages' security headers, and ``Cache-Control: no-store`` (pages
    with patient data must not stay in the browser's cache) when ``no_store``."""
    from serving.web.render import NO_STORE, SECURITY_HEADERS

    async def wrapped(message: dict) -> None:
        if message["type"] == "http.response.start":
            names = {k.lower() for k, _ in message.get("headers", [])}
            extra = [h for h in SECURITY_HEADERS if h[0] not in names]
            if no_store and NO_STORE[0] not in names:
                extra.append(NO_STORE)
            message = {**message, "headers": [*message.get("headers", []), *extra]}
        await send(message)

    return wrapped


async def _redirect(send, location: str, cookie: bytes | None = None) -> None:
    headers = [(b"location", location.encode()), (b"content-length", b"0")]
    if cookie:
        headers.append((b"set-cookie", cookie))
    await send({"type": "http.response.start", "status": 303, "headers": headers})
    await send({"type": "http.response.body", "body": b""})


async def _send_page(
    send, status: int, title: str, message: str, principal: Principal | None = None
) -> None:
    from serving.web.render import render

    body = render("message.html", title=title, message=message, principal=principal).encode()
    await _send(send, status, b"text/html; charset=utf-8", body)


async def _read_body(receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


def _replay(body: bytes, receive):
    """A ``receive`` that hands the app the body already read, then defers to the client."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(send, status: int, message: str) -> None:
    await _send(send, status, b"application/json", json.dumps({"error": message}).encode())


async def _send(send, status: int, content_type: bytes, body: bytes) -> None:
    """A whole response from the middleware itself (a refusal, a sign-in page)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
