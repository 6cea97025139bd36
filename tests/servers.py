"""For tests that run the service: an access file of tokens, the real server on loopback, and
the one in-process service (``conftest.in_process_service``)."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from starlette.testclient import TestClient

from riskstrat.serving.access import token_digest
from riskstrat.serving.settings import ServiceSettings

if TYPE_CHECKING:
    from bentoml._internal.utils.circus import Server


def write_access(path: Path, tokens: Mapping[str, tuple[str, str, list[str]]]) -> Path:
    """An access file with one entry per ``name: (role, token, localities)``; only hashes."""
    path.write_text(
        "".join(
            f"[[token]]\nname = {json.dumps(name)}\nrole = {json.dumps(role)}\n"
            f'sha256 = "{token_digest(token)}"\nlocalities = {json.dumps(localities)}\n'
            for name, (role, token, localities) in tokens.items()
        )
    )
    return path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def started_service(
    environment: Mapping[str, str], token: str | None = None, *, ready: bool = True
) -> Iterator[Server]:
    """``bentoml serve`` of the service with ``environment`` set, ready (or, with ``ready``
    False, only alive); yields the server.

    The environment goes through the service settings as ``riskstrat serve`` passes it on:
    validated, with the worker count handed to BentoML in its own configuration.
    """
    import bentoml

    patch = pytest.MonkeyPatch()
    for key, value in {"BENTOML_DO_NOT_TRACK": "True", **environment}.items():
        patch.setenv(key, value)
    for key, value in ServiceSettings.load().environment(os.environ).items():
        if os.environ.get(key) != value:
            patch.setenv(key, value)
    try:
        with serving_in_process(free_port()) as server:
            if ready:
                with bentoml.SyncHTTPClient(server.url, token=token, server_ready_timeout=60):
                    yield server
            else:
                _wait_alive(server.url)
                yield server
    finally:
        patch.undo()


@contextmanager
def serving_in_process(port: int) -> Iterator[Server]:
    """``bentoml.serve`` of the service on loopback at ``port``, leaving this process's logging
    as it found it: BentoML applies its command-line logging configuration here, which
    disables every logger that already exists (and later tests' ``caplog`` would see nothing
    from them)."""
    import bentoml

    loggers = logging.root.manager.loggerDict.values()
    enabled = [each for each in loggers if isinstance(each, logging.Logger) and not each.disabled]
    level = logging.root.level
    service = "riskstrat.serving.service:RiskService"
    with bentoml.serve(service, port=port, host="127.0.0.1") as server:
        for each in enabled:
            each.disabled = False
        logging.root.setLevel(level)
        yield server


def _wait_alive(url: str, seconds: float = 60) -> None:
    """Poll /livez until it answers 200, for ``seconds`` at most."""
    import httpx

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/livez", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.25)
    raise TimeoutError(f"{url}/livez did not answer within {seconds:g} s")


@contextmanager
def running_service(environment: Mapping[str, str], token: str | None = None) -> Iterator[str]:
    """As ``started_service``; yields the server's URL."""
    with started_service(environment, token) as server:
        yield server.url


def worker_processes(server: Server) -> int:
    """How many worker processes serve the service (BentoML's circus watcher "service")."""
    (watcher,) = [w for w in server.arbiter.watchers if w.name == "service"]
    assert watcher.numprocesses == len(watcher.processes)
    return len(watcher.processes)


def enable_loggers(monkeypatch: pytest.MonkeyPatch, *names: str) -> None:
    """Turn ``names`` back on for a test that reads them: BentoML's logging set-up, run by
    any test that starts a server from this process, disables every logger made before it."""
    import logging

    for name in names:
        monkeypatch.setattr(logging.getLogger(name), "disabled", False)


# The principals of the in-process service: name -> (role, token, localities).
IN_PROCESS_TOKENS = {
    "edges": ("system", "edges-token", []),
    "ds": ("data_scientist", "token-ds", []),
    "system": ("system", "token-system", []),
    "north": ("locality_team", "token-north", ["North"]),
    "prescriber": ("social_prescriber", "token-prescriber", []),
}


@dataclass(frozen=True)
class InProcessService:
    """The service's ASGI app (API, middleware and pages), started once, its audit log, and
    the settings it started with, which a module sets again around its requests (the
    settings a request reads, such as the folders, are the module's own)."""

    app: Any
    audit: Path
    environment: dict[str, str]

    def client(self, **kwargs: Any) -> TestClient:
        """A client of the running app (its own cookies and headers)."""
        return TestClient(self.app, **kwargs)
