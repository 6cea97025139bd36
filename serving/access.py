"""Who may call what: bearer tokens mapped to roles, checked in front of every endpoint, and an
append-only audit log of every request that touches patient data or reads an evaluation.

Tokens live in a TOML file (``RISKSTRAT_ACCESS_FILE``) as SHA-256 hashes only:

    [[token]]
    name = "coordination-centre"      # who, as the audit log names them
    sha256 = "9f86d08..."             # hashlib.sha256(token.encode()).hexdigest()
    role = "system"                   # one of serving.roles.ROLES
    localities = ["North"]            # locality_team only: the localities it may see

No token: 401. A role not allowed on an endpoint: 403. Probes and the API description
(/livez, /readyz, /metrics, /docs.json, /schema.json, /docs) need no token. Wrong tokens are
counted by the token throttle (``serving.throttle``, shared with the sign-in form); while it
pauses a client's tokens they are not checked, and the answer is a 429 with ``Retry-After``.

The web pages use the same principals and the same audit log, through a page gate handed to
``AccessMiddleware`` (``serving.web.gate``: sign-in, sessions, page roles); this module knows
nothing of pages. Without a gate, page paths are refused like any unknown endpoint.

Fail closed: no patient data leaves without its audit line. The line is written when the
answer starts, before its body; if it cannot be written the answer is a 503 instead, and
/readyz reports not ready while the audit log cannot be written. If the access file (or
anything else the check needs) is wrong at start, the log names it and every request but
/livez answers 503 until the service is restarted with a good one.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import hmac
import json
import logging
import time
import tomllib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import ClassVar, Protocol

from riskstrat.common.errors import UserError
from riskstrat.serving.audit import AuditError, AuditLog
from riskstrat.serving.audit_stores import open_audit_log
from riskstrat.serving.roles import ROLES, Can, Role, roles_that
from riskstrat.serving.settings import ServiceSettings
from riskstrat.serving.state import StateUnavailableError, state_store
from riskstrat.serving.throttle import Pause, TokenThrottle

logger = logging.getLogger(__name__)
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
# What each endpoint does; who may do it is ``serving.roles``' table, shared with the pages.
ENDPOINTS: dict[str, Can] = {
    "/v1/score": Can.SCORE,
    "/v1/score-history": Can.SCORE,
    "/v1/model": Can.SEE_MODEL,
    "/v1/weekly-list": Can.SEE_WEEKLY_LIST,
    "/v1/referrals": Can.FIND_REFERRALS,
    # Aggregate results only, no patient-level data.
    "/v1/evaluation": Can.READ_EVALUATION_RESULTS,
    "/v1/evaluations": Can.READ_EVALUATION_RESULTS,
}
ALLOWED: dict[str, tuple[str, ...]] = {path: roles_that(can) for path, can in ENDPOINTS.items()}
PATIENT_ENDPOINTS = ("/v1/score", "/v1/score-history", "/v1/weekly-list", "/v1/referrals")
# Audited when answered (their audit line written before the answer, as patient data's).
AUDITED_ENDPOINTS = (*PATIENT_ENDPOINTS, "/v1/evaluation", "/v1/evaluations")
# Where the request body may name localities: checked against a locality-scoped token.
SCOPED_ENDPOINTS = ("/v1/weekly-list", "/v1/referrals")
OUTCOMES = {200: "shown", 303: "redirected", 400: "bad request", 401: "no valid token"}
OUTCOMES |= {403: "refused", 404: "not found", 405: "method not allowed", 413: "too large"}
OUTCOMES |= {429: "throttled", 503: "unavailable"}
# What a client is told when its answer cannot be audited (the log says why, the client not).
UNAUDITED = "the audit log cannot be written, so no patient data is sent; try again later"
UNCHECKED = "the service cannot check access (its log says why); it must be restarted"
NO_STATE = "the service cannot reach its shared state (its log says why); try again later"
LIVE_PATHS = ("/livez", "/healthz", "/metrics")  # answered even when access cannot be checked
READY_PATH = "/readyz"
# Refused API requests: what they asked is read from at most this much of the body.
ASKED_BYTES = 1 << 20
ASKED_IDS = 10_000

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
    """Add ``fields`` (ids shown, model version, week, evaluation) to the current request's
    audit record; nothing outside a request."""
    record = audit_record.get()
    if record is not None:
        record.update(fields)


def caller() -> Principal | None:
    """Who is making the current request (set by the middleware), for scoping by locality."""
    record = audit_record.get()
    return None if record is None else record.get("principal")


@dataclass(frozen=True, slots=True)
class Asked:
    """What a request asked for (pseudonymised ids, localities, week), for its audit line:
    written for refusals too, so that a refused attempt says what it was after."""

    ids: tuple[str, ...] = ()
    localities: tuple[str, ...] = ()
    week: str | None = None
    unread: str | None = None  # why the request could not be read for the rest

    @classmethod
    def of(cls, ids: Iterable[object], localities: Iterable[object], week: object) -> Asked:
        """Cut to size: ids and localities as the API bounds them, at most ``ASKED_IDS`` ids."""
        return cls(
            tuple(str(i)[:64] for i in ids)[:ASKED_IDS],
            tuple(str(loc)[:200] for loc in localities)[:ASKED_IDS],
            None if week is None else str(week)[:32],
        )

    @classmethod
    def from_body(cls, body: bytes, complete: bool = True) -> Asked:
        """What an API request body asks for: the ids of its records or people, the
        localities and the week it names. ``complete`` False: only the first
        ``ASKED_BYTES`` were read."""
        if not complete:
            return cls(unread=f"a body of more than {ASKED_BYTES} bytes")
        data = _parsed(body)
        people = [
            item
            for key in ("records", "people")
            if isinstance(data.get(key), list)
            for item in data[key]
        ]
        ids = [p["id"] for p in people if isinstance(p, dict) and p.get("id") is not None]
        return cls.of(ids, _localities(data), data.get("week"))

    def fields(self) -> dict[str, object]:
        """The audit line's ``asked`` object: only what was asked."""
        values = {
            "ids": list(self.ids),
            "localities": list(self.localities),
            "week": self.week,
            "unread": self.unread,
        }
        return {k: v for k, v in values.items() if v}


def _parsed(body: bytes) -> dict:
    """The JSON object in ``body``, or an empty one if it holds none."""
    try:
        data = json.loads(body or b"{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _localities(data: dict) -> list[str]:
    criteria = data.get("criteria")
    asked = criteria.get("localities") if isinstance(criteria, dict) else data.get("localities")
    if isinstance(asked, str):
        asked = asked.split(",")
    if not isinstance(asked, list):
        return []
    return [str(a).strip() for a in asked if str(a).strip()]


def asked_localities(body: bytes) -> list[str]:
    """Localities named in a list or referral request body (none if it cannot be read:
    the endpoint then answers 400 for the body itself)."""
    return _localities(_parsed(body))


class AccessConfigError(UserError):
    """The access file is missing or wrong; names the file and the entry."""


ENTRY_FIELDS = ("name", "role", "sha256", "localities")
HEX = frozenset("0123456789abcdef")


def load_principals(path: Path) -> dict[str, Principal]:
    """Principals by token hash, from the TOML file at ``path``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise AccessConfigError(f"{path}: cannot read the access file ({exc})") from exc
    return parse_principals(text, path)


def parse_principals(text: str, source: Path | str) -> dict[str, Principal]:
    """Principals by token hash from access-file ``text``; an ``AccessConfigError`` naming
    ``source`` and the entry (``token[i]`` and its name) for anything the service would not
    use as written. ``riskstrat token`` checks a new entry with this too."""
    try:
        entries = tomllib.loads(text).get("token", [])
    except tomllib.TOMLDecodeError as exc:
        raise AccessConfigError(f"{source}: cannot read the access file ({exc})") from exc
    if not isinstance(entries, list):
        raise AccessConfigError(f"{source}: tokens are [[token]] entries")
    principals: dict[str, Principal] = {}
    for i, entry in enumerate(entries):
        principal, digest = _principal(entry, i, source)
        if digest in principals:
            raise AccessConfigError(
                f"{source}: token[{i}] ({principal.name}) has the same token as "
                f"{principals[digest].name}"
            )
        principals[digest] = principal
    return principals


def _principal(entry: object, i: int, source: Path | str) -> tuple[Principal, str]:
    """One ``[[token]]`` entry as a principal and its token hash, checked."""
    if not isinstance(entry, dict):
        raise AccessConfigError(f"{source}: token[{i}] is not a table")
    name = entry.get("name", f"token-{i}")
    where = f"{source}: token[{i}]" + (f" ({name})" if "name" in entry else "")
    unknown = sorted(set(entry) - set(ENTRY_FIELDS))
    if unknown:
        raise AccessConfigError(f"{where}: unknown field {unknown[0]!r} (known: {ENTRY_FIELDS})")
    role, digest = entry.get("role"), str(entry.get("sha256", "")).lower()
    localities = entry.get("localities", [])
    if not isinstance(name, str) or not name.strip():
        raise AccessConfigError(f"{where}: name must be some text")
    if role not in ROLES:
        raise AccessConfigError(f"{where}: role {role!r} is not one of {ROLES}")
    if len(digest) != 64 or not set(digest) <= HEX:
        raise AccessConfigError(f"{where}: needs a 64-character sha256")
    if not isinstance(localities, list) or not all(
        isinstance(loc, str) and loc.strip() for loc in localities
    ):
        raise AccessConfigError(f"{where}: localities must be a list of locality names")
    if role == Role.LOCALITY_TEAM and not localities:
        raise AccessConfigError(
            f"{where}: is a locality team without localities (give them: "
            'localities = ["North"], or riskstrat token --locality North)'
        )
    return Principal(name, role, tuple(localities)), digest


def token_digest(token: str) -> str:
    """The token's SHA-256, as the access file stores it."""
    return hashlib.sha256(token.strip().encode()).hexdigest()


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header, or None."""
    if not authorization or not authorization.startswith("Bearer "):
        return None
    return authorization[len("Bearer ") :]


def identify(principals: dict[str, Principal], authorization: str | None) -> Principal | None:
    """The principal behind an ``Authorization: Bearer`` header, or None."""
    token = bearer_token(authorization)
    return None if token is None else by_digest(principals, token_digest(token))


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


class BadHeaderError(ValueError):
    """A request header whose name or value is not UTF-8 text; names the header."""


def request_headers(scope: dict) -> dict[str, str]:
    """The request's headers as text, by lower-case name; a header sent more than once is
    one, its values joined with ", " ("; " for cookies), as HTTP reads them.

    ``BadHeaderError`` naming the first header that is not UTF-8 text. HTTP lets a value
    carry other bytes (Latin-1, "obs-text"), but no header riskstrat reads (tokens,
    cookies, addresses) holds any: such a request is refused (400), not guessed at.
    """
    headers: dict[str, str] = {}
    for raw_name, raw_value in scope.get("headers", []):
        try:
            name, value = raw_name.decode("ascii").lower(), raw_value.decode("utf-8")
        except UnicodeDecodeError:
            shown = raw_name.decode("latin-1")[:40]
            raise BadHeaderError(f"the request header {shown!r} is not UTF-8 text") from None
        joined = headers.get(name)
        headers[name] = value if joined is None else joined + _JOINERS.get(name, ", ") + value
    return headers


_JOINERS = {"cookie": "; "}


def _forwarded(headers: dict[str, str], name: str, proxies: int) -> str | None:
    """The ``proxies``-th entry from the right of forwarded header ``name``: what the
    outermost trusted proxy wrote (entries left of it, the client wrote itself); None
    without proxies or without that many entries."""
    hops = [h.strip() for h in headers.get(name, "").split(",") if h.strip()]
    return hops[-proxies] if proxies and len(hops) >= proxies else None


def client_address(scope: dict, headers: dict[str, str], proxies: int = 0) -> str | None:
    """The client's address: the connection's peer; with ``proxies`` reverse proxies in front
    (``RISKSTRAT_TRUSTED_PROXIES``), the address the outermost of them saw, from
    X-Forwarded-For. Without enough entries in the header, the peer. Nothing else is
    believed: the web server's own handling of forwarded headers is off
    (``SERVER_PROXY_HEADERS``), and ``Forwarded`` is never read."""
    forwarded = _forwarded(headers, "x-forwarded-for", proxies)
    if forwarded:
        return forwarded[:64]
    client = scope.get("client")
    return str(client[0]) if client else None


def is_https(scope: dict, headers: dict[str, str], proxies: int = 0) -> bool:
    """Whether the client's connection is https: the connection's own scheme, or with
    ``proxies`` in front, what the outermost of them wrote in X-Forwarded-Proto."""
    scheme = _forwarded(headers, "x-forwarded-proto", proxies) or scope.get("scheme")
    return scheme == "https"


async def _unaudited(send) -> None:
    await _send_json(send, 503, UNAUDITED)


class Access:
    """The principals, the audit log and the token throttle, shared by the API and the pages."""

    def __init__(
        self,
        principals: dict[str, Principal],
        audit: AuditLog,
        throttle: TokenThrottle,
        proxies: int = 0,
    ) -> None:
        self.principals, self.audit, self.proxies = principals, audit, proxies
        self.throttle = throttle

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> Access:
        """From ``RISKSTRAT_ACCESS_FILE`` and ``RISKSTRAT_AUDIT_LOG`` (both must be set),
        ``RISKSTRAT_TRUSTED_PROXIES`` and the state store (``serving.state``)."""
        principals = load_principals(settings.require("access_file"))
        throttle = TokenThrottle(state_store(settings))
        return cls(principals, open_audit_log(settings), throttle, settings.trusted_proxies)

    def authenticate(self, token: str | None, client: str | None) -> Principal | Pause | None:
        """The principal whose token ``token`` is (from a bearer header or the sign-in form),
        or None; a ``Pause`` instead, without checking the token, while the throttle holds
        tokens from ``client`` (or this token) back. A wrong token is counted."""
        token = (token or "").strip()
        digest = token_digest(token) if token else None
        pause = self.throttle.pause(client, digest)
        if pause or digest is None:
            return pause
        principal = by_digest(self.principals, digest)
        if principal is None:
            self.throttle.failed(client, digest)
        return principal

    def client(self, scope: dict, headers: dict[str, str]) -> str | None:
        """The request's client address, as the audit log records it."""
        return client_address(scope, headers, self.proxies)

    def is_https(self, scope: dict, headers: dict[str, str]) -> bool:
        """Whether the client reached the service over https (see ``is_https``)."""
        return is_https(scope, headers, self.proxies)

    async def run(
        self,
        app,
        scope,
        receive,
        send,
        principal: Principal,
        path: str,
        audited: bool,
        *,
        client: str | None = None,
        asked: Asked | None = None,
        unaudited=_unaudited,
    ) -> None:
        """Call ``app`` with an audit record open (holding the principal, see ``caller``).

        If ``audited``, the audit line is written when the answer starts, before any of it
        leaves: the endpoint has noted by then what it shows. If the line cannot be written,
        ``unaudited(send)`` answers (a 503) and nothing of the app's answer is sent.
        """
        record: dict = {"principal": principal}
        token = audit_record.set(record)
        began = time.perf_counter()
        state = {"written": not audited, "withheld": False}

        async def guarded(message: dict) -> None:
            if state["withheld"]:
                return
            if message["type"] == "http.response.start" and not state["written"]:
                state["written"] = True
                seconds = time.perf_counter() - began
                try:
                    await self.write(
                        principal, path, message["status"], record, seconds, client, asked
                    )
                except AuditError:
                    state["withheld"] = True
                    await unaudited(send)
                    return
            await send(message)

        try:
            await app(scope, receive, guarded)
        finally:
            audit_record.reset(token)
            if not state["written"]:  # the app failed before answering
                with contextlib.suppress(AuditError):  # logged; the app's error goes on
                    seconds = time.perf_counter() - began
                    await self.write(principal, path, 500, record, seconds, client, asked)

    async def write(
        self,
        principal: Principal | None,
        path: str,
        status: int,
        record: dict | None = None,
        seconds: float = 0.0,
        client: str | None = None,
        asked: Asked | None = None,
    ) -> None:
        """One audit entry (``AuditError`` if it cannot be written); ``record`` holds what
        the endpoint noted (ids shown, model, week, and the reason for a refusal). Other
        requests go on while it is written and flushed (``write_async``)."""
        record = record or {}
        ids = record.get("patient_ids", [])
        entry = {
            "when": datetime.now(UTC).isoformat(timespec="milliseconds"),
            "who": principal.name if principal else None,
            "role": principal.role if principal else None,
            "client": client,
            "endpoint": path,
            "status": status,
            "outcome": OUTCOMES.get(status, "error" if status >= 500 else str(status)),
            "patients": len(ids),
            "patient_ids": ids,
            "model_version": record.get("model_version"),
            "seconds": round(seconds, 4),
        }
        for noted in ("avoidable_model_version", "week", "evaluation", "reason"):
            if noted in record:
                entry[noted] = record[noted]
        if asked and asked.fields():
            entry["asked"] = asked.fields()
        await self.audit.write_async(entry)


class PageGate(Protocol):
    """What guards the pages under ``prefix``, built by the middleware with the shared access."""

    prefix: ClassVar[str]

    def __init__(self, app, access: Access, settings: ServiceSettings) -> None: ...

    async def __call__(self, scope, receive, send) -> None: ...


class AccessMiddleware:
    """ASGI middleware: authenticate, authorise, and audit patient-data requests.

    Built when the server starts (not on import) from the service settings. Requests under
    the prefix of ``pages`` (a ``PageGate`` class) go to the gate it builds, over the same
    principals and audit log; all others are API calls. If it cannot be built (no access
    file or audit log set, a wrong access file, a sessions file it cannot open), the log
    says why, /livez still answers and every other request, /readyz included, is a 503:
    fail closed, never a 500 on every probe.
    """

    def __init__(self, app, pages: type[PageGate] | None = None) -> None:
        self.app = app
        self.access: Access | None = None
        self.pages: PageGate | None = None
        try:
            settings = ServiceSettings.load()
            self.access = Access.from_settings(settings)
            self.pages = pages(app, self.access, settings) if pages else None
        except Exception as exc:  # whatever stops access being checked, refuse everything
            self.access = None
            logger.error(
                "riskstrat cannot check access: %s. Every request but %s answers 503 until "
                "the service is restarted with this fixed.",
                exc,
                ", ".join(LIVE_PATHS),
            )

    async def __call__(self, scope, receive, send) -> None:
        """Check the request; a 503 if the shared state (sessions, throttle) cannot be
        reached before anything was answered."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched(message: dict) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self._checked(scope, receive, watched)
        except StateUnavailableError as exc:
            if started:
                raise
            logger.error("%s: requests that need a token answer 503 until it is back", exc)
            await _send_json(send, 503, NO_STATE)

    async def _checked(self, scope, receive, send) -> None:
        path = scope["path"].rstrip("/") or "/"
        try:
            headers = request_headers(scope)
        except BadHeaderError as exc:
            await _send_json(send, 400, str(exc))
            return
        if self.access is None:
            if path in LIVE_PATHS:
                await self.app(scope, receive, send)
            else:
                await _send_json(send, 503, UNCHECKED)
            return
        if path == READY_PATH and self.access.audit.problem():
            await _send_json(send, 503, "not ready: the audit log cannot be written")
            return
        if self.pages and (path == self.pages.prefix or path.startswith(self.pages.prefix + "/")):
            await self.pages(scope, receive, send)
            return
        client = self.access.client(scope, headers)
        principal = None
        if path not in OPEN_PATHS:
            principal = self.access.authenticate(bearer_token(headers.get("authorization")), client)
        if isinstance(principal, Pause):
            pause, principal = principal, None
            refused, extra = (429, pause.sentence()), [pause.header()]
        else:
            refused, extra = refusal(principal, path), None
        if refused:
            if path in PATIENT_ENDPOINTS:
                body, complete = await _read_body(receive, ASKED_BYTES)
                asked = Asked.from_body(body, complete)
                await self._refuse(send, principal, path, refused, client, asked, extra)
            else:
                await _send_json(send, *refused, extra)
            return
        if path in SCOPED_ENDPOINTS and principal.localities:
            body, _ = await _read_body(receive)
            try:
                principal.localities_for(asked_localities(body))
            except OutsideScopeError as exc:
                refused = (403, str(exc))
                await self._refuse(send, principal, path, refused, client, Asked.from_body(body))
                return
            receive = replayed(body, receive)
        audited = path in AUDITED_ENDPOINTS
        await self.access.run(
            self.app, scope, receive, send, principal, path, audited, client=client
        )

    async def _refuse(
        self,
        send,
        principal: Principal | None,
        path: str,
        refused: tuple[int, str],
        client: str | None,
        asked: Asked,
        extra: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        """Refuse a patient-data request, its audit line written first (503 if it cannot be),
        with the ``extra`` headers."""
        try:
            await self.access.write(principal, path, refused[0], client=client, asked=asked)
        except AuditError:
            refused, extra = (503, UNAUDITED), None
        await _send_json(send, *refused, extra)


async def _read_body(receive, limit: int | None = None) -> tuple[bytes, bool]:
    """The request body, and whether it is all there: reading stops past ``limit`` bytes."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        chunks.append(chunk)
        size += len(chunk)
        if limit is not None and size > limit:
            return b"".join(chunks), False
        if not message.get("more_body"):
            return b"".join(chunks), True


def replayed(body: bytes, receive):
    """A ``receive`` that hands the app the body already read, then defers to the client."""
    sent = False

    async def replay() -> dict:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


async def _send_json(
    send, status: int, message: str, extra: list[tuple[bytes, bytes]] | None = None
) -> None:
    body = json.dumps({"error": message}).encode()
    await send_whole(send, status, b"application/json", body, extra)


async def send_whole(
    send,
    status: int,
    content_type: bytes,
    body: bytes,
    extra: list[tuple[bytes, bytes]] | None = None,
) -> None:
    """A whole response from a middleware itself (a refusal, a sign-in page), with the
    ``extra`` headers."""
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    headers += extra or []
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
