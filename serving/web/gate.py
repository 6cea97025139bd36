"""The pages' gate: sign-in, sessions, page roles and page headers, in front of the pages app.

A person signs in at /ui/login with their token and gets a session cookie (see
``serving.web.session``), accepted for /ui paths only (a bearer header works there too).
Without either, a page redirects to the login page; a role not allowed on a page gets a 403
page. Pages showing patient data are audited like the scoring endpoints, and so are
sign-ins and sign-outs, in the service's one audit log.

``serving.access.AccessMiddleware(app, pages=PageGate)`` builds the gate when the server
starts, over the same principals and audit log as the API.
"""

from __future__ import annotations

from serving.access import Access, Principal, by_digest, identify, send_whole, token_digest
from serving.settings import ServiceSettings
from serving.web import session
from serving.web.render import NO_STORE, SECURITY_HEADERS, render
from serving.web.roles import BASE, PATIENT_PAGES, home, page_refusal
from serving.web.session import SessionStore

LOGIN = f"{BASE}/login"
LOGOUT = f"{BASE}/logout"
STATIC = f"{BASE}/static"


class PageGate:
    """ASGI app for the paths under ``prefix``: checks, then hands allowed requests to ``app``."""

    prefix = BASE

    def __init__(self, app, access: Access, settings: ServiceSettings) -> None:
        self.app = app
        self.access = access
        self.sessions = SessionStore(settings.sessions_file())

    async def __call__(self, scope, receive, send) -> None:
        path = scope["path"].rstrip("/") or "/"
        headers = {k.decode().lower(): v.decode() for k, v in scope.get("headers", [])}
        send = with_page_headers(send, no_store=not path.startswith(STATIC))
        secure = session.is_https(scope, headers)
        if path == LOGIN and scope["method"] == "POST":
            await self._login(receive, send, headers, secure)
            return
        if path == LOGIN or path.startswith(STATIC + "/"):
            await self.app(scope, receive, send)
            return
        principals = self.access.principals
        cookie = session.cookie_value(headers)
        digest = self.sessions.digest(cookie)
        principal = by_digest(principals, digest) if digest else None
        principal = principal or identify(principals, headers.get("authorization"))
        audited = path in PATIENT_PAGES
        if principal is None:
            query = scope.get("query_string", b"").decode("latin-1")
            target = scope["path"] + ("?" + query if query else "")
            await _redirect(send, session.login_url(target if scope["method"] == "GET" else None))
            if audited:
                self.access.write(None, path, 303)
            return
        if path == LOGOUT:
            if scope["method"] != "POST":
                await _send_page(send, 405, "Sign out with the button", "Use the Sign out button.")
                return
            self.sessions.close(cookie)
            await _redirect(send, session.login_url(ended="1"), cookie=session.clear_cookie(secure))
            self.access.write(principal, path, 303)
            return
        refused = page_refusal(principal, path)
        if refused:
            await _send_page(send, refused[0], "You cannot open this page", refused[1], principal)
            if audited:
                self.access.write(principal, path, refused[0])
            return
        await self.access.run(self.app, scope, receive, send, principal, path, audited)

    async def _login(self, receive, send, headers: dict[str, str], secure: bool) -> None:
        """Check the pasted token; open a session and go on, or back to the form."""
        if not session.same_origin(headers):
            await _send_page(send, 403, "Sign in refused", "The form came from another site.")
            return
        form = await session.read_form(receive)
        if form is None:
            await _send_page(send, 413, "Sign in refused", "The form is too large.")
            return
        token = form.get("token", "").strip()
        digest = token_digest(token) if token else ""
        principal = by_digest(self.access.principals, digest) if token else None
        target = form.get("next") or None
        if principal is None:
            await _redirect(send, session.login_url(target, error="1"))
            self.access.write(None, LOGIN, 401)
            return
        session_id = self.sessions.open(digest)
        await _redirect(
            send,
            session.safe_next(target, home(principal)),
            cookie=session.set_cookie(session_id, secure),
        )
        self.access.write(principal, LOGIN, 303)


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
    send, status: int, title: str, message: str, principal: Principal | None = None
) -> None:
    body = render("message.html", title=title, message=message, principal=principal).encode()
    await send_whole(send, status, b"text/html; charset=utf-8", body)
