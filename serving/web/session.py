"""Browser sessions for the pages: a random session id in a cookie, the principal server-side.

Why not the token itself in the cookie: the bearer token is a long-lived credential that
also opens the API; a session id opens only the pages, expires (30 minutes idle, 12 hours at
most), ends for good at sign-out (the server forgets it), and never lets the token out of the
login form. Sessions are kept in the worker's memory: a restart signs everyone out, and the
service runs one worker (more would each need the person to sign in again).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from dataclasses import dataclass
from urllib.parse import parse_qs, quote

COOKIE = "riskstrat_session"
COOKIE_PATH = "/ui"
IDLE_SECONDS = 30 * 60
LONGEST_SECONDS = 12 * 3600
MAX_SESSIONS = 10_000
MAX_FORM_BYTES = 8_192


@dataclass(slots=True)
class _Session:
    digest: str  # the token's SHA-256, as in the access file
    began: float
    seen: float


class SessionStore:
    """Session ids (stored hashed) mapped to the token hash they were opened with."""

    def __init__(self, clock=time.monotonic) -> None:
        self._sessions: dict[str, _Session] = {}
        self._lock = threading.Lock()
        self._clock = clock

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def open(self, digest: str) -> str:
        """A new session for the token with hash ``digest``; returns its id for the cookie."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._expire(now)
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].seen)
                del self._sessions[oldest]
            self._sessions[self._key(session_id)] = _Session(digest, now, now)
        return session_id

    def digest(self, session_id: str | None) -> str | None:
        """The token hash behind a live session (and keep it alive), or None."""
        if not session_id:
            return None
        now = self._clock()
        with self._lock:
            session = self._sessions.get(self._key(session_id))
            if session is None:
                return None
            if now - session.seen > IDLE_SECONDS or now - session.began > LONGEST_SECONDS:
                del self._sessions[self._key(session_id)]
                return None
            session.seen = now
            return session.digest

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(self._key(session_id), None)

    def _expire(self, now: float) -> None:
        stale = [
            k
            for k, s in self._sessions.items()
            if now - s.seen > IDLE_SECONDS or now - s.began > LONGEST_SECONDS
        ]
        for key in stale:
            del self._sessions[key]


def cookie_value(headers: dict[str, str]) -> str | None:
    """The session cookie from a ``cookie`` header, or None."""
    for part in headers.get("cookie", "").split(";"):
        name, _, value = part.strip().partition("=")
        if name == COOKIE and value:
            return value
    return None


def set_cookie(session_id: str, secure: bool) -> bytes:
    flags = f"; Path={COOKIE_PATH}; HttpOnly; SameSite=Strict" + ("; Secure" if secure else "")
    return f"{COOKIE}={session_id}{flags}".encode()


def clear_cookie(secure: bool) -> bytes:
    flags = f"; Path={COOKIE_PATH}; Max-Age=0; HttpOnly; SameSite=Strict"
    return f"{COOKIE}={flags}{'; Secure' if secure else ''}".encode()


def is_https(scope: dict, headers: dict[str, str]) -> bool:
    """Served over https (directly, or behind a proxy that says so)."""
    return scope.get("scheme") == "https" or headers.get("x-forwarded-proto") == "https"


def safe_next(target: str | None, default: str) -> str:
    """Where to go after signing in: a path under /ui on this server, else ``default``."""
    if target and target.startswith("/ui") and not target.startswith("//") and "\\" not in target:
        return target
    return default


def login_url(target: str | None = None, **flags: str) -> str:
    query = [f"{k}={quote(v)}" for k, v in flags.items()]
    if target:
        query.append(f"next={quote(target, safe='')}")
    return "/ui/login" + ("?" + "&".join(query) if query else "")


async def read_form(receive, limit: int = MAX_FORM_BYTES) -> dict[str, str] | None:
    """A urlencoded request body as a dict (first value of each field); None when too big."""
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if len(body) > limit:
            return None
        if not message.get("more_body"):
            break
    fields = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def same_origin(headers: dict[str, str]) -> bool:
    """False when the browser says the form came from another site (login CSRF)."""
    origin = headers.get("origin")
    if not origin or origin == "null":
        return origin is None
    return origin.split("://", 1)[-1] == headers.get("host", "")
