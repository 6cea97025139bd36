"""A real PostgreSQL server for the tests that need shared state: started once per test
session with initdb and pg_ctl in a temporary folder, on a loopback port, and stopped at the
end. Each test gets its own fresh database (``postgres_url``).

The server binaries come from Debian's ``postgresql`` package (``make postgres`` installs
it unattended when missing). PostgreSQL refuses to run as root, so as root the server runs as
the package's ``postgres`` user.
"""

from __future__ import annotations

import glob
import itertools
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from servers import free_port

from riskstrat.serving.database import connect

SUPERUSER = "riskstrat"
_databases = itertools.count()


def server_binary(name: str) -> str:
    """``name`` (initdb, pg_ctl) on the PATH or in Debian's versioned folder, newest first."""
    found = shutil.which(name) or next(
        iter(sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"), reverse=True)), None
    )
    if found is None:
        pytest.fail(f"PostgreSQL's {name} not found: run `make postgres` (Debian's postgresql)")
    return found


@dataclass(frozen=True)
class PostgresServer:
    """A running server: where it listens and how to reach its maintenance database."""

    port: int
    folder: Path

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its URL."""
        name = f"test_{os.getpid()}_{next(_databases)}"
        with connect(self.url()) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        return self.url(name)


def _as_server_user() -> dict[str, object]:
    """subprocess arguments that run the server as ``postgres`` when we are root."""
    return (
        {"user": "postgres", "group": "postgres", "extra_groups": []} if os.geteuid() == 0 else {}
    )


def _run(*command: str) -> None:
    subprocess.run(command, check=True, capture_output=True, **_as_server_user())


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    folder = Path(tempfile.mkdtemp(prefix="riskstrat-postgres-"))
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    data, port = folder / "data", free_port()
    _run(server_binary("initdb"), "-D", str(data), "-U", SUPERUSER, "-A", "trust", "--no-sync")
    options = f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c fsync=off"
    pg_ctl = server_binary("pg_ctl")
    _run(pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "server.log"), "-w", "start")
    try:
        yield PostgresServer(port, folder)
    finally:
        _run(pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop")
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh database of the session's server, for this test alone."""
    return postgres_server.create_database()
