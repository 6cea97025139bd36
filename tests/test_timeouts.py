"""BentoML's request timeout, patched so that answered requests leave no timer behind."""

from __future__ import annotations

import asyncio

import pytest
from bentoml._internal.server.http.traffic import TimeoutMiddleware

from riskstrat.serving import timeouts


async def _answer(scope, receive, send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _too_slow(scope, receive, send) -> None:
    await asyncio.sleep(5)
    await _answer(scope, receive, send)


async def _call(app, timeout: float) -> tuple[list[dict], int]:
    """Call ``app`` behind the middleware; what it sent, and how many timers are still armed."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    scope = {"type": "http", "method": "GET", "path": "/", "headers": []}
    await TimeoutMiddleware(app, timeout=timeout)(scope, receive, send)
    await asyncio.sleep(0)  # let a cancelled app unwind
    loop = asyncio.get_running_loop()
    armed = [h for h in loop._scheduled if not h.cancelled()]  # asyncio's timer heap
    return sent, len(armed)


@pytest.fixture(autouse=True)
def _patched() -> None:
    timeouts.cancel_request_timers()


def test_an_answered_request_leaves_no_timer_armed() -> None:
    sent, armed = asyncio.run(_call(_answer, timeout=60))
    assert sent[0]["status"] == 200
    assert armed == 0  # unpatched, a 60 s timer holding the request's context stays armed


def test_a_request_over_the_timeout_still_gets_504() -> None:
    sent, armed = asyncio.run(_call(_too_slow, timeout=0.05))
    assert sent[0]["status"] == 504
    assert b"Not able to process the request in 0.05 seconds" in sent[1]["body"]
    assert armed == 0


def test_a_changed_bentoml_middleware_is_refused_not_patched(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async def changed(self, scope, receive, send) -> None:  # a different upstream version
        await self.app(scope, receive, send)

    monkeypatch.setattr(TimeoutMiddleware, "__call__", changed)
    with pytest.raises(RuntimeError, match=r"TimeoutMiddleware changed since 1\.4\.39"):
        timeouts.cancel_request_timers()
    assert TimeoutMiddleware.__call__ is changed
