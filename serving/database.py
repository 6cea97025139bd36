"""The PostgreSQL database a service on several servers shares (``RISKSTRAT_DATABASE_URL``).

Sessions, the sign-in throttle and the audit log keep their state here when it is set, so
that every server behind one load balancer sees the same; unset, they use files on one
machine. psycopg is imported on first use, so a service without a database never loads it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import psycopg

CONNECT_SECONDS = 10


def connect(url: str) -> psycopg.Connection:
    """A new connection to ``url`` in autocommit (each statement its own transaction, unless
    the caller opens one with ``connection.transaction()``)."""
    import psycopg

    return psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_SECONDS)
