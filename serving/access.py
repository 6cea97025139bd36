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

The web pages use the same principals and the same audit log, through a page gate handed to
``AccessMiddleware`` (``serving.web.gate``: sign-in, sessions, page roles); this module knows
nothing of pages. Without a gate, page paths are refused like any unknown endpoint.
"""

from __future__ import annotations

import contextvars
import hashlib
import hmac
import json
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Protocol

from serving.settings import ServiceSettings

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
OUTCOMES = {200: "shown", 303: "redirected", 400: "bad request", 401: "no valid token"}
OUTCOMES |= {403: "refused", 404: "not found", 405: "method not allowed", 413: "too large"}

# Filled by the endpoint (ids scored, model version) and written by the middleware.
audit_record: contextvars.ContextVar[dict | None] = contextvars.ContextVar(
    "audit_record", default=None
)


class OutsideScopeError(PermissionError):
    """A request names localities its principal may not see."""

    def __init__(self, principal: Principal, outside: tuple[str, ...]) -> None:
        super().__init__(
            f"{principal.name} may not see locality {', '.join(outside)} "
            f"(allowed: {', '.join(principal.localities)})"
        )
        self.principal, self.outside = principal, outside


@dataclass(frozen=True, slots=True)
class Principal:
    name: str
    role: str
    localities: tuple[str, ...] = ()  # empty: every locality

    def localities_for(self, asked: Iterable[str] = ()) -> tuple[str, ...]:
        """The locality-scope rule, the one place it is decided: the localities a request
        may see are those ``asked`` for, or, if none, all of the principal's own (empty:
        every locality). ``OutsideScopeError`` if it asks for one outside its own."""
        asked = tuple(asked)
        if self.localities:
            outside = tuple(a for a in asked if a not in self.localities)
            if outside:
                raise OutsideScopeError(self, outside)
        return asked or self.localities


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


class AuditLog:
    """Append-only JSON lines: when, who, role, endpoint, outcome, patients, model version."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, entry: dict) -> None:
        line = json.dumps(entry, separators=(",", ":")) + "\n"
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)


class Access:
    """The principals and the audit log, shared by the API and the pages."""

    def __init__(self, principals: dict[str, Principal], audit: AuditLog) -> None:
        self.principals, self.audit = principals, audit

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Access:
        """From ``RISKSTRAT_ACCESS_FILE`` and ``RISKSTRAT_AUDIT_LOG``; both must be set."""
        access_file, audit_log = settings.require("access_file"), settings.require("audit_log")
        return cls(load_principals(access_file), AuditLog(audit_log))

    async def run(self, app, scope, receive, send, principal, path: str, audited: bool) -> None:
        """Call ``app`` with an audit record open (holding the principal, see ``caller``);
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
            await app(scope, receive, remember)
        finally:
            audit_record.reset(token)
            if audited:
                self.write(principal, path, status["code"], record, time.perf_counter() - began)

    def write(
        self,
        principal: Principal | None,
        path: str,
        status: int,
        record: dict | None = None,
        seconds: float = 0.0,
    ) -> None:
        """One audit entry; ``record`` holds what the endpoint noted (ids, model, week)."""
        record = record or {}
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


class PageGate(Protocol):
    """What guards the pages under ``prefix``, built by the middleware with the shared access."""

    prefix: ClassVar[str]

    def __init__(self, app, access: Access, settings: ServiceSettings) -> None: ...

    async def __call__(self, scope, receive, send) -> None: ...


class AccessMiddleware:
    """ASGI middleware: authenticate, authorise, and audit patient-data requests.

    Built when the server starts (not on import) from the service settings: without an
    access file and an audit log the server refuses to start. Requests under the prefix of
    ``pages`` (a ``PageGate`` class) go to the gate it builds, over the same principals and
    audit log; all others are API calls.
    """

    def __init__(self, app, pages: type[PageGate] | None = None) -> None:
        settings = ServiceSettings.load()
        self.app = app
        self.access = Access.from_settings(settings)
        self.pages = pages(app, self.access, settings) if pages else None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"].rstrip("/") or "/"
        if self.pages and (path == self.pages.prefix or path.startswith(self.pages.prefix + "/")):
            await self.pages(scope, receive, send)
            return
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        principal = identify(self.access.principals, headers.get("authorization"))
        refused = refusal(principal, path)
        if refused:
            await _send_json(send, *refused)
            if path in PATIENT_ENDPOINTS:
                self.access.write(principal, path, refused[0])
            return
        if path in SCOPED_ENDPOINTS and principal.localities:
            body = await _read_body(receive)
            try:
                principal.localities_for(asked_localities(body))
            except OutsideScopeError as exc:
                await _send_json(send, 403, str(exc))
                self.access.write(principal, path, 403)
                return
            receive = _replay(body, receive)
        audited = path in PATIENT_ENDPOINTS
        await self.access.run(self.app, scope, receive, send, principal, path, audited)


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
    await send_whole(send, status, b"application/json", json.dumps({"error": message}).encode())


async def send_whole(send, status: int, content_type: bytes, body: bytes) -> None:
    """A whole response from a middleware itself (a refusal, a sign-in page)."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
