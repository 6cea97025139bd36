"""For tests that run the service: an access file of tokens, and the real server on loopback."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pytest

from serving.access import token_digest


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
def running_service(environment: Mapping[str, str], token: str | None = None) -> Iterator[str]:
    """``bentoml serve`` of the service with ``environment`` set, ready; yields its URL."""
    import bentoml

    patch = pytest.MonkeyPatch()
    for key, value in {"BENTOML_DO_NOT_TRACK": "True", **environment}.items():
        patch.setenv(key, value)
    try:
        with (
            bentoml.serve(
                "serving.service:RiskService", port=free_port(), host="127.0.0.1"
            ) as server,
            bentoml.SyncHTTPClient(server.url, token=token, server_ready_timeout=60),
        ):
            yield server.url
    finally:
        patch.undo()
