"""The pages' gate: sign-in, sessions, page roles and page headers, in front of the pages app.

A person signs in at /ui/login with their token and gets a session cookie (see
``serving.web.session``), accepted for /ui paths only (a bearer header works there too).
Without either, a page redirects to the login page; a role not allowed on a page gets a 403
page. Pages showing patient data or an evaluation are audited like the scoring endpoints,
and so are sign-ins and sign-outs, in the service's one audit log, with the client's
address and what the request asked for (ids, localities, week). As on the API, no such page
leaves without its audit line: if it cannot be written the answer is a 503 page. Wrong
tokens pause sign-in and bearer tokens alike (``serving.throttle``, through
``Access.authenticate``).

``serving.access.AccessMiddleware(app, pages=PageGate)`` builds the gate when the server
starts, over the same principals and audit log as the API.
"""

from __future__ import annotations

from urllib.parse import parse_qsl

from riskstrat.serving.access import (
    UNAUDITED,
    Access,
    Asked,
    AuditError,
    BadHeaderError,
    Principal,
    bearer_token,
    by_digest,
    request_headers,
    send_whole,
    token_digest,
)
from riskstrat.serving.errors import error_json
from riskstrat.serving.settings import ServiceSettings
from riskstrat.serving.state import state_store
from riskstrat.serving.throttle import Pause
from riskstrat.serving.web import session
from riskstrat.serving.web.render import NO_STORE, SECURITY_HEADERS, render
from riskstrat.serving.web.roles import BASE, home, is_audited, page_refusal
from riskstrat.serving.web.session import SessionStore

LOGIN = f"{BASE}/login"
LOGOUT = f"{BASE}/logout"
STATIC = f"{BASE}/static"


class PageGate:
    """ASGI app for the paths under ``prefix``: checks, then hands allowed requests to ``app``."""

    prefix = BASE

    def __init__(self, app, access: Access, settings: ServiceSettings) -> None:
        self.app = app
        self.access = access
        self.sessions = SessionStore(state_store(settings))

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"].rstrip("/") or "/"
        try:
            headers = request_headers(scope)
        except BadHeaderError as exc:
            await send_whole(send, 400, b"application/json", error_json(str(exc)))
            return
        send = with_page_headers(send, no_store=not path.startswith(STATIC))
        secure = self.access.is_https(scope, headers)
        client = self.access.client(scope, headers)
        if path == LOGIN and scope["method"] == "POST":
            await self._login(receive, send, headers, secure, client)
            return
        if path == LOGIN or path.startswith(STATIC + "/"):
            await self.app(scope, receive, send)
            return
        principals = self.access.principals
        cookie = session.cookie_value(headers)
        digest = self.sessions.digest(cookie)
        principal = by_digest(principals, digest) if digest else None
        if principal is None and "authorization" in headers:
            principal = self.access.authenticate(bearer_token(headers["authorization"]), client)
            if isinstance(principal, Pause):
                title = "Access tokens are paused"
                await _send_page(
                    send, 429, title, principal.sentence(), headers=[principal.header()]
                )
                return
        audited = is_audited(path)
        asked = asked_in_query(scope) if audited else None
        if principal is None:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + ("?" + query if query else "")
            if audited and not await self._audit(None, path, 303, client, asked):
                await _send_page(send, 503, "Not available", UNAUDITED)
                return
            await _redirect(send, session.login_url(target if scope["method"] == "GET" else None))
            return
        if path == LOGOUT:
            if scope["method"] != "POST":
                await _send_page(send, 405, "Sign out with the button", "Use the Sign out button.")
                return
            self.sessions.close(cookie)
            await self._audit(principal, path, 303, client)  # signing out goes ahead regardless
            await _redirect(send, session.login_url(ended="1"), cookie=session.clear_cookie(secure))
            return
        refused = page_refusal(principal, path)
        if refused:
            status, message = refused
            if audited and not await self._audit(principal, path, status, client, asked):
                status, message = 503, UNAUDITED
            await _send_page(send, status, "You cannot open this page", message, principal)
            return

        async def unaudited(send) -> None:
            await _send_page(send, 503, "Not available", UNAUDITED, principal)

        await self.access.run(
            self.app,
            scope,
            receive,
            send,
            principal,
            path,
            audited,
            client=client,
            asked=asked,
            unaudited=unaudited,
        )

    async def _audit(
        self,
        principal: Principal | None,
        path: str,
        status: int,
        client: str | None,
        asked: Asked | None = None,
    ) -> bool:
        """Write the audit line; False if it cannot be (the audit log says why in the log)."""
        try:
            await self.access.write(principal, path, status, client=client, asked=asked)
        except AuditError:
            return False
        return True

    async def _login(
        self, receive, send, headers: dict[str, str], secure: bool, client: str | None
    ) -> None:
        """Check the pasted token; open a session and go on, or back to the form. Every
        attempt is audited first; none goes on if its line cannot be written."""
        if not session.same_origin(headers):
            status, title, message = 403, "Sign in refused", "The form came from another site."
            await self._login_refusal(send, client, status, title, message)
            return
        form = await session.read_form(receive)
        if form is None:
            message = "The form is too large."
            await self._login_refusal(send, client, 413, "Sign in refused", message)
            return
        token = form.get("token", "").strip()
        principal = self.access.authenticate(token, client)
        if isinstance(principal, Pause):
            title, sentence = "Signing in is paused", principal.sentence()
            await self._login_refusal(send, client, 429, title, sentence, [principal.header()])
            return
        target = session.safe_next(form.get("next") or None, "") or None
        if principal is None:
            if not await self._audit(None, LOGIN, 401, client):
                await _send_page(send, 503, "Not available", UNAUDITED)
                return
            await _redirect(send, session.login_url(target, error="1"))
            return
        session_id = self.sessions.open(token_digest(token))
        if not await self._audit(principal, LOGIN, 303, client):
            self.sessions.close(session_id)
            await _send_page(send, 503, "Not available", UNAUDITED)
            return
        await _redirect(
            send,
            target or home(principal),
            cookie=session.set_cookie(session_id, secure),
        )

    async def _login_refusal(
        self,
        send,
        client: str | None,
        status: int,
        title: str,
        message: str,
        headers: list[tuple[bytes, bytes]] | None = None,
    ) -> None:
        if not await self._audit(None, LOGIN, status, client):
            status, title, message, headers = 503, "Not available", UNAUDITED, None
        await _send_page(send, status, title, message, headers=headers)


def asked_in_query(scope: dict) -> Asked:
    """What a page's query asks for: the ``id`` of a person, the ``locality`` or
    ``localities`` and the ``week``."""
    query = scope.get("query_string", b"").decode("latin-1")
    items = parse_qsl(query, keep_blank_values=True)
    return Asked.of(
        (v for k, v in items if k == "id"),
        (v for k, v in items if k in ("locality", "localities")),
        next((v for k, v in items if k == "week"), None),
    )


def with_page_headers(send, no_store: bool):
    """``send`` adding the pages' security headers, and ``Cache-Control: no-store`` (pages
    with patient data must not stay in the browser's cache) when ``no_store``."""

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
    send,
    status: int,
    title: str,
    message: str,
    principal: Principal | None = None,
    headers: list[tuple[bytes, bytes]] | None = None,
) -> None:
    body = render("message.html", title=title, message=message, principal=principal).encode()
    await send_whole(send, status, b"text/html; charset=utf-8", body, headers)
