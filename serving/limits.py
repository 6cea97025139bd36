"""What a request body may be: JSON on the API, and never larger than a full batch.

``RequestLimits``, ASGI middleware in front of the access middleware, refuses with 413 a body
over ``MAX_BODY_BYTES`` (at once from its Content-Length, else as soon as the bytes streamed
in pass it) before anything parses it, and with 415 a ``/v1/`` body that is not
``application/json`` (UTF-8, the only charset JSON has). The body read is handed on whole.
"""

from __future__ import annotations

from riskstrat.serving.access import replayed
from riskstrat.serving.errors import API_PREFIX, error_json

MAX_RECORDS = 10_000  # records to score, or list rows, in one request
# A record of every feature at full precision with the longest id, with room to spare
# (tests/test_request_limits.py keeps it so as features are added).
RECORD_BYTES = 4_096
MAX_BODY_BYTES = MAX_RECORDS * RECORD_BYTES
JSON = "application/json"


class BodyTooLargeError(Exception):
    """The body streamed in passed ``MAX_BODY_BYTES``."""


def body_problem(headers: dict[bytes, bytes], path: str) -> tuple[int, str] | None:
    """(status, message) if the headers alone show the body must be refused, else None."""
    length = headers.get(b"content-length")
    if length is not None and not length.isdigit():
        return 400, "the Content-Length header is not a number"
    if length is not None and int(length) > MAX_BODY_BYTES:
        return 413, too_large()
    has_body = (length is not None and int(length) > 0) or b"transfer-encoding" in headers
    if path.startswith(API_PREFIX) and has_body:
        given = headers.get(b"content-type", b"").decode("latin-1")
        media, _, parameters = given.partition(";")
        charset = parameters.strip().lower().removeprefix("charset=").strip('"')
        if media.strip().lower() != JSON or charset not in ("", "utf-8"):
            return 415, f"the body must be {JSON} (UTF-8), not {given.strip() or 'untyped'}"
    return None


def too_large() -> str:
    return f"the body is larger than {MAX_BODY_BYTES} bytes (at most {MAX_RECORDS} records)"


async def read_limited(receive) -> bytes:
    """The whole body, or ``BodyTooLargeError`` as soon as it passes ``MAX_BODY_BYTES``."""
    chunks, size = [], 0
    while True:
        message = await receive()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise BodyTooLargeError
        chunks.append(chunk)
        if message["type"] != "http.request" or not message.get("more_body"):
            return b"".join(chunks)


class RequestLimits:
    """ASGI middleware: the content type and size checks above, for every HTTP request."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers", []))
        problem = body_problem(headers, scope["path"])
        if problem is None and (b"content-length" in headers or b"transfer-encoding" in headers):
            try:
                receive = replayed(await read_limited(receive), receive)
            except BodyTooLargeError:
                problem = 413, too_large()
        if problem is not None:
            await _refuse(send, *problem)
            return
        await self.app(scope, receive, send)


async def _refuse(send, status: int, message: str) -> None:
    body = error_json(message)
    headers = [(b"content-type", JSON.encode()), (b"content-length", str(len(body)).encode())]
    headers.append((b"connection", b"close"))  # the rest of a refused body is not read
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
