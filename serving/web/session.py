"""Browser sessions for the pages: a random session id in a cookie, the principal server-side.

Why not the token itself in the cookie: the bearer token is a long-lived credential that
also opens the API; a session id opens only the pages, expires (30 minutes idle, 12 hours at
most), ends for good at sign-out (the server forgets it), and never lets the token out of the
login form. Sessions live in the service's ``StateStore`` (``serving.state``: a SQLite file
beside the audit log by default, PostgreSQL with ``RISKSTRAT_DATABASE_URL``) so that every
worker, and every server behind a load balancer, knows them; it holds only hashes of session
ids and of tokens, never a usable cookie or token.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from urllib.parse import parse_qs, quote

from riskstrat.serving.state import StateStore

COOKIE = "riskstrat_session"
COOKIE_PATH = "/ui"
IDLE_SECONDS = 30 * 60
LONGEST_SECONDS = 12 * 3600
MAX_FORM_BYTES = 8_192
NEXT = re.compile(r"/ui(?:[/?][!-~]*)?")  # a path under /ui, printable ASCII only


TABLES = (
    "CREATE TABLE IF NOT EXISTS sessions (key TEXT PRIMARY KEY, digest TEXT NOT NULL,"
    " began DOUBLE PRECISION NOT NULL, seen DOUBLE PRECISION NOT NULL)",
)


class SessionStore:
    """Session ids (stored hashed) mapped to the hash of the token they were opened with."""

    def __init__(self, store: StateStore, clock=time.time) -> None:
        self.store = store
        self._clock = clock
        store.create(TABLES)

    @staticmethod
    def _key(session_id: str) -> str:
        return hashlib.sha256(session_id.encode()).hexdigest()

    def open(self, digest: str) -> str:
        """A new session for the token with hash ``digest``; returns its id for the cookie.
        Expired sessions are deleted here."""
        session_id = secrets.token_urlsafe(32)
        now = self._clock()
        with self.store.transaction() as db:
            db.execute(
                "DELETE FROM sessions WHERE seen < ? OR began < ?",
                (now - IDLE_SECONDS, now - LONGEST_SECONDS),
            )
            db.execute(
                "INSERT INTO sessions (key, digest, began, seen) VALUES (?, ?, ?, ?)",
                (self._key(session_id), digest, now, now),
            )
        return session_id

    def digest(self, session_id: str | None) -> str | None:
        """The token hash behind a live session (and keep it alive), or None."""
        if not session_id or len(session_id) > 100:
            return None
        now, key = self._clock(), self._key(session_id)
        with self.store.transaction() as db:
            rows = db.execute("SELECT digest, began, seen FROM sessions WHERE key = ?", (key,))
            if not rows:
                return None
            digest, began, seen = rows[0]
            if now - seen > IDLE_SECONDS or now - began > LONGEST_SECONDS:
                db.execute("DELETE FROM sessions WHERE key = ?", (key,))
                return None
            db.execute("UPDATE sessions SET seen = ? WHERE key = ?", (now, key))
        return digest

    def close(self, session_id: str | None) -> None:
        if session_id:
            with self.store.transaction() as db:
                db.execute("DELETE FROM sessions WHERE key = ?", (self._key(session_id),))


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


def safe_next(target: str | None, default: str) -> str:
    """Where to go after signing in: a path under /ui on this server, in printable ASCII (no
    space, CR or LF: it goes into a Location header), else ``default``."""
    if target and NEXT.fullmatch(target) and "\\" not in target:
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
