"""One shape for every refusal of the API, ``{"error": "<one line naming the field>"}``, logged
in one line.

BentoML answers bad input in shapes of its own (pydantic's list of details; a list holding an
error object), neither the one its OpenAPI description promises, and logs each with a full
traceback at ERROR. ``ErrorShape``, ASGI middleware in front of the API, rewrites every 4xx
body under ``/v1/`` into ``ErrorBody``, logs it in one line at WARNING (method, path, status:
never the message, which can carry patient ids or values), keeps BentoML's tracebacks of
client errors out of the log, and documents the shape on every operation of ``/docs.json``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus

from pydantic import BaseModel, ConfigDict, Field, ValidationError

API_PREFIX = "/v1/"
OPENAPI_PATH = "/docs.json"
# What any /v1 operation may answer besides 200: bad input, no or wrong token, a role or
# locality not allowed, no weekly lists, a body too large or not JSON, too many wrong tokens
# from one address (the token throttle answers any request while it pauses), a server fault,
# and no model (or audit) to serve with.
ERROR_STATUSES = (400, 401, 403, 404, 413, 415, 429, 500, 503)
MAX_PROBLEMS = 3  # of pydantic's list, in the one line
logger = logging.getLogger(__name__)
# BentoML logs every exception of an endpoint here, with its traceback.
BENTOML_LOGGER = "bentoml._internal.server.http_app"


class ErrorBody(BaseModel):
    """Why a request was refused or failed, in one line naming the field."""

    model_config = ConfigDict(extra="forbid", title="ErrorBody")
    error: str = Field(description="what was wrong, naming the field or record")


def error_json(message: str) -> bytes:
    """The body of a refusal: ``ErrorBody`` as JSON."""
    return ErrorBody(error=message).model_dump_json().encode()


def _where(loc: Iterable[object]) -> str:
    """A pydantic location as a path: ``records[0].features.age``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else f".{part}" if out else str(part)
    return out or "body"


def one_line(body: bytes, status: int) -> str:
    """The message of any error body BentoML or the middleware wrote, as one line."""
    try:
        data = json.loads(body or b"null")
    except ValueError:
        data = None
    if isinstance(data, list) and len(data) == 1:
        data = data[0]
    if isinstance(data, dict) and isinstance(data.get("detail"), list):
        problems = [p for p in data["detail"] if isinstance(p, dict)]
        said = [f"{_where(p.get('loc', ()))}: {p.get('msg', 'invalid')}" for p in problems]
        more = len(said) - MAX_PROBLEMS
        return "; ".join(said[:MAX_PROBLEMS]) + (f" (and {more} more)" if more > 0 else "")
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        return data["error"]
    return HTTPStatus(status).phrase


class _ClientErrorTracebacks(logging.Filter):
    """Drops BentoML's traceback of a client error (``ErrorShape`` logs it in one line)."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, ValidationError):
            return False
        code = getattr(getattr(error, "error_code", None), "value", 500)
        return not (isinstance(code, int) and code < 500)


def quiet_client_errors() -> None:
    """Install the filter on BentoML's endpoint logger, once per process."""
    target = logging.getLogger(BENTOML_LOGGER)
    if not any(isinstance(f, _ClientErrorTracebacks) for f in target.filters):
        target.addFilter(_ClientErrorTracebacks())


def document_errors(spec: dict) -> dict:
    """The OpenAPI description with ``ErrorBody`` as every error answer of every operation,
    and a body marked required where it has required fields (BentoML leaves that out, so
    the description allowed a request without a body that is then refused)."""
    schemas = spec.setdefault("components", {}).setdefault("schemas", {})
    schemas["ErrorBody"] = ErrorBody.model_json_schema()
    answer = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
    for path, item in spec.get("paths", {}).items():
        if not path.startswith(API_PREFIX):
            continue
        for operation in item.values():
            if isinstance(operation, dict) and _required_fields(operation):
                operation["requestBody"]["required"] = True
            if isinstance(operation, dict) and "responses" in operation:
                operation["responses"].update(
                    {
                        str(code): {"description": HTTPStatus(code).phrase, "content": answer}
                        for code in ERROR_STATUSES
                    }
                )
    return spec


def _required_fields(operation: dict) -> list:
    """The required fields of an operation's JSON body, as its inline schema lists them."""
    body = operation.get("requestBody", {}).get("content", {}).get("application/json", {})
    return body.get("schema", {}).get("required", [])


class ErrorShape:
    """ASGI middleware: every 4xx under ``/v1/`` as ``ErrorBody``, logged in one line; the
    OpenAPI description saying so, completed by ``describe`` (what only the running service
    knows, such as the model's features). Built when the server starts (it installs the log
    filter)."""

    def __init__(self, app, describe: Callable[[dict], dict] | None = None) -> None:
        self.app = app
        self.describe = describe or (lambda spec: spec)
        quiet_client_errors()

    async def __call__(self, scope, receive, send) -> None:
        path = scope.get("path", "") if scope["type"] == "http" else ""
        if path.startswith(API_PREFIX):

            def refusal(status: int, body: bytes) -> bytes:
                logger.warning(
                    "%s %s answered %d %s", scope["method"], path, status, _phrase(status)
                )
                return error_json(one_line(body, status))

            send = _Rewriter(send, lambda status: 400 <= status < 500, refusal)
        elif path == OPENAPI_PATH:
            send = _Rewriter(
                send,
                lambda status: status == 200,
                lambda _, body: json.dumps(
                    self.describe(document_errors(json.loads(body)))
                ).encode(),
            )
        await self.app(scope, receive, send)


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "error"


class _Rewriter:
    """A ``send`` that holds a response whose status ``wants`` and sends
    ``rewrite(status, body)`` as its JSON body instead; others pass through unbuffered."""

    def __init__(
        self, send, wants: Callable[[int], bool], rewrite: Callable[[int, bytes], bytes]
    ) -> None:
        self.send, self.wants, self.rewrite = send, wants, rewrite
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message: dict) -> None:
        if message["type"] == "http.response.start" and self.wants(message["status"]):
            self.start = message
        elif self.start is None or message["type"] != "http.response.body":
            await self.send(message)
        else:
            self.chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                await self._flush(self.start)

    async def _flush(self, start: dict) -> None:
        body = self.rewrite(start["status"], b"".join(self.chunks))
        kept = [
            (k, v)
            for k, v in start.get("headers", [])
            if k.lower() not in (b"content-length", b"content-type")
        ]
        headers = [*kept, (b"content-type", b"application/json")]
        headers.append((b"content-length", str(len(body)).encode()))
        await self.send({**start, "headers": headers})
        await self.send({"type": "http.response.body", "body": body})
