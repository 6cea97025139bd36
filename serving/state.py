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
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Protocol

from riskstrat.serving.settings import ServiceSettings


class Transaction(Protocol):
    """What a transaction offers: run one statement and get its rows (none for a change)."""

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple]: ...


class StateStore(ABC):
    """A database of shared state; each ``transaction`` commits whole or not at all."""

    @abstractmethod
    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """One transaction: committed when the block ends, rolled back if it raises."""

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
    """A SQLite file readable by its owner only; each transaction takes the write lock at
    once (``BEGIN IMMEDIATE``), so that workers never interleave a read and a change."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._connect().close()
        os.chmod(path, 0o600)

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level="IMMEDIATE")

    @contextmanager
    def transaction(self) -> Iterator[Transaction]:
        with closing(self._connect()) as connection, connection:
            yield _SQLiteTransaction(connection)


def state_store(settings: ServiceSettings) -> StateStore:
    """The store the settings choose: ``RISKSTRAT_SESSIONS`` (or ``sessions.sqlite`` beside
    the audit log); one object per store in a process, shared by sessions and throttle."""
    return _store(settings.sessions_file())


@lru_cache(maxsize=8)
def _store(path: Path) -> StateStore:
    return SQLiteStore(path)
