"""A fix for BentoML 1.4.39's request timeout, which made the service pause for up to a second.

``TimeoutMiddleware`` arms a ``loop.call_later(timeout, ...)`` timer for every request and
never cancels it. Each timer keeps a copy of the request's context (its tracing span, the
request) alive for the whole timeout: at a few hundred requests a second that is hundreds of
thousands of live objects, and every full garbage collection walks them all, stopping the
worker for longer and longer (docs/figures.md gives what was measured).

``cancel_request_timers`` swaps in the same middleware logic with the timer cancelled once
the request is answered. It checks that the method still looks as expected, so a BentoML
upgrade that changes it fails loudly at start-up instead of being silently patched.
"""

from __future__ import annotations

import asyncio
import hashlib
import inspect

# SHA-256 of the source of TimeoutMiddleware.__call__ in BentoML 1.4.39, the version fixed.
FIXED_SOURCE_SHA256 = "fd8b9e3da28ed2b44cfd508d641617e049fcd4986138197ce7bb227332505896"


async def _call_cancelling_timer(self, scope, receive, send) -> None:
    """BentoML's ``TimeoutMiddleware.__call__``, with its timer cancelled when done."""
    if scope["type"] not in ("http", "websocket"):
        await self.app(scope, receive, send)
        return
    loop = asyncio.get_running_loop()
    waiter = loop.create_future()
    timer = loop.call_later(self.timeout, self._set_timer_out, waiter)

    async def _send(message) -> None:
        if not waiter.done():
            waiter.set_result(None)
        await send(message)

    task = asyncio.ensure_future(self.app(scope, receive, _send), loop=loop)
    try:
        await waiter
    except TimeoutError:
        if task.cancel():
            from starlette.responses import JSONResponse

            message = f"Not able to process the request in {self.timeout} seconds"
            await JSONResponse({"error": message}, status_code=504)(scope, receive, send)
    else:
        await task
    finally:
        timer.cancel()


def cancel_request_timers() -> None:
    """Patch BentoML's ``TimeoutMiddleware`` (once) so each request's timer is cancelled."""
    from bentoml._internal.server.http.traffic import TimeoutMiddleware

    if TimeoutMiddleware.__call__ is _call_cancelling_timer:
        return
    source = inspect.getsource(TimeoutMiddleware.__call__)
    digest = hashlib.sha256(source.encode()).hexdigest()
    if digest != FIXED_SOURCE_SHA256:
        raise RuntimeError(
            "BentoML's TimeoutMiddleware changed since 1.4.39: check whether it still leaves "
            "request timers armed, then update or drop serving/timeouts.py"
        )
    TimeoutMiddleware.__call__ = _call_cancelling_timer
