"""Where the service keeps the state its workers and servers share: the pages' sessions and
the token throttle. One interface, two stores:

- ``SQLiteStore``, a file on one machine (the default: ``RISKSTRAT_SESSIONS``, or
  ``sessions.sqlite`` beside the audit log), shared by the workers of one server;
- ``PostgresStore`` (``RISKSTRAT_DATABASE_URL``), shared by every server behind a load balancer.

Their users write their SQL once, in what both databases understand alike (``?`` for a value,
``TEXT`` and ``DOUBLE PRECISION`` columns, ``CREATE ... IF NOT EXISTS``), create their tables
on first use with ``create`` and run each read or change in one ``transaction``.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from riskstrat.serving.database import connect
from riskstrat.serving.settings import ServiceSettings

if TYPE_CHECKING:
    import psycopg


class StateUnavailableError(RuntimeError):
    """The store cannot be reached now (its server down, the connection lost): the request
    fails closed with a 503, the next one tries again."""


class Transaction(Protocol):
    """What a transaction offers: run one statement and get its rows (none for a change)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]: ...


class StateStore(ABC):
    """A database of shared state; each ``transaction`` commits whole or not at all."""

    @abstractmethod
    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises. One
        that only reads (``write=False``) sees one consistent state without holding back
        the writers where the store allows it."""

    def create(self, statements: Sequence[str]) -> None:
        """Run ``CREATE ... IF NOT EXISTS`` ``statements`` (tables on first use), all at once."""
        with self.transaction() as db:
            for statement in statements:
                db.execute(statement)


class _SQLiteTransaction:
    def __init__(self, connection: sqlite3.Connection) -> None:
        self._connection = connection

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        return self._connection.execute(sql, tuple(params)).fetchall()


class SQLiteStore(StateStore):
    """A SQLite file readable by its owner only. A transaction that writes takes the write
    lock at once (``BEGIN IMMEDIATE``), so that workers never interleave a read and a
    change; one that only reads takes a shared lock (``BEGIN``). Each thread keeps its own
    connection, opened on first use (and again in a forked child): opening one per request
    cost more than the queries it ran."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        sqlite3.connect(self.path).close()
        os.chmod(path, 0o600)
        self._local = threading.local()

    def _connection(self) -> sqlite3.Connection:
        held: tuple[int, sqlite3.Connection] | None = getattr(self._local, "held", None)
        if held is None or held[0] != os.getpid():
            connection = sqlite3.connect(self.path, timeout=10, isolation_level=None)
            self._local.held = held = (os.getpid(), connection)
        return held[1]

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Transaction]:
        connection = self._connection()
        connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")
        try:
            yield _SQLiteTransaction(connection)
        except BaseException:
            connection.execute("ROLLBACK")
            raise
        connection.execute("COMMIT")


class _PostgresTransaction:
    def __init__(self, cursor: psycopg.Cursor) -> None:
        self._cursor = cursor

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]:
        self._cursor.execute(sql.replace("?", "%s"), tuple(params))
        return self._cursor.fetchall() if self._cursor.description else []


class PostgresStore(StateStore):
    """A PostgreSQL database (``RISKSTRAT_DATABASE_URL``) through one connection per process,
    opened on first use (so never shared across a fork) and again after it was lost (the
    request that lost it fails, the next one reconnects)."""

    # Held while tables are created, so that servers starting together do not race.
    CREATE_LOCK = 0x7269736B  # "risk"

    def __init__(self, url: str) -> None:
        self.url = url
        self._lock = threading.Lock()
        self._connection: psycopg.Connection | None = None
        self._pid = 0

    def _connected(self) -> psycopg.Connection:
        connection = self._connection
        if connection is None or connection.closed or connection.broken or self._pid != os.getpid():
            connection, self._pid = connect(self.url), os.getpid()
            self._connection = connection
        return connection

    @contextmanager
    def transaction(self, write: bool = True) -> Iterator[Transaction]:
        import psycopg

        with self._lock:
            try:
                connection = self._connected()
                with connection.transaction(), connection.cursor() as cursor:
                    yield _PostgresTransaction(cursor)
            except psycopg.OperationalError as exc:
                raise StateUnavailableError(f"the shared state's database: {exc}") from exc

    def create(self, statements: Sequence[str]) -> None:
        with self.transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(?)", (self.CREATE_LOCK,))
            for statement in statements:
                db.execute(statement)


def state_store(settings: ServiceSettings) -> StateStore:
    """The store the settings choose: PostgreSQL at ``RISKSTRAT_DATABASE_URL`` if set, else
    the SQLite file ``RISKSTRAT_SESSIONS`` (or ``sessions.sqlite`` beside the audit log); one
    object per store in a process, shared by the sessions and the throttle."""
    if settings.database_url:
        return _postgres(settings.database_url)
    return _sqlite(settings.sessions_file())


@lru_cache(maxsize=8)
def _postgres(url: str) -> StateStore:
    return PostgresStore(url)


@lru_cache(maxsize=8)
def _sqlite(path: Path) -> StateStore:
    return SQLiteStore(path)
