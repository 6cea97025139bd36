"""The audit log in PostgreSQL (``RISKSTRAT_DATABASE_URL``), for a service on several
servers: one append-only table, ``audit_log``, holding the same sealed lines as the file
(``serving.audit_chain``), one row each, keyed by the chain's number.

Appends are serialised across every server and worker by a transaction-scoped advisory lock
taken before the head is read, so the chain has one order. A trigger refuses UPDATE, DELETE
and TRUNCATE on the table; the service's database role should also be granted only INSERT
and SELECT on it (docs/security.md), and whoever can get around both still cannot seal a
line without the key.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from typing import TYPE_CHECKING

from riskstrat.serving.audit import (
    StoreWriteError,
    database_name,
    recent_failure,
    recording_failures,
)
from riskstrat.serving.audit_chain import Chain, Head, Verified, seal, unseal
from riskstrat.serving.audit_flush import in_thread
from riskstrat.serving.database import connect

if TYPE_CHECKING:
    import psycopg

logger = logging.getLogger(__name__)
# pg_advisory_xact_lock's key for appending to the audit chain (any fixed number of ours).
APPEND_LOCK = 0x72736B_617564
# At start, the last this many rows are checked (``riskstrat audit verify`` checks all).
TAIL_ROWS = 10_000
SCHEMA = """
CREATE TABLE IF NOT EXISTS audit_log (
    seq bigint PRIMARY KEY CHECK (seq > 0),
    line bytea NOT NULL
);
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit log is append-only: % refused', TG_OP;
END
$$;
CREATE OR REPLACE TRIGGER audit_log_no_change BEFORE UPDATE OR DELETE ON audit_log
    FOR EACH ROW EXECUTE FUNCTION audit_log_append_only();
CREATE OR REPLACE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION audit_log_append_only();
"""


class DatabaseAuditLog:
    """The audit chain in the database at ``url``; the same ``write``, ``problem`` and
    ``start`` as the file log."""

    def __init__(self, url: str, key: bytes) -> None:
        self.url, self.key = url, key
        self.name = database_name(url)
        self._connection: psycopg.Connection | None = None
        self._lock = threading.Lock()  # one statement at a time on this process's connection
        self._checked = False  # the table made and its tail verified (``start``)

    def problem(self) -> str | None:
        """Why the table cannot be written now, as far as this process knows: the last write
        failed in the last ``AUDIT_RETRY_SECONDS``."""
        return recent_failure(self.name)

    def start(self) -> Verified | None:
        """Make the table (once, whichever server is first) and check the last
        ``TAIL_ROWS`` rows; ``ChainBrokenError`` names the row that breaks the chain. A
        database that cannot be reached now is checked before the first write instead (and
        None returned)."""
        try:
            return self._check()
        except StoreWriteError as exc:
            logger.error(
                "audit log %s cannot be checked now (%s); it is checked before its next line",
                self.name,
                exc,
            )
            return None

    def _check(self) -> Verified:
        with self._session() as connection, connection.transaction():
            connection.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
            if connection.execute("SELECT to_regclass('audit_log')").fetchone()[0] is None:
                connection.execute(SCHEMA)
            rows = connection.execute(
                "SELECT seq, line FROM audit_log WHERE seq > "
                "(SELECT coalesce(max(seq), 0) FROM audit_log) - %s ORDER BY seq",
                (TAIL_ROWS + 1,),
            ).fetchall()
        verified = _checked(rows, self.key, self.name, anchored=len(rows) > TAIL_ROWS)
        self._checked = True
        logger.info("audit log %s: %s", self.name, verified.summary())
        return verified

    def write(self, entry: dict) -> None:
        """Append ``entry`` as the chain's next row, committed before this returns;
        ``AuditError`` if it cannot be (then nothing was added). The commit is the flush and
        must come inside the advisory lock, so nothing is shared as in the file log."""
        with recording_failures(self.name):
            if not self._checked:
                self._check()
            with self._session() as connection, connection.transaction():
                connection.execute("SELECT pg_advisory_xact_lock(%s)", (APPEND_LOCK,))
                last = connection.execute(
                    "SELECT line FROM audit_log ORDER BY seq DESC LIMIT 1"
                ).fetchone()
                line, after = seal(entry, _head(last), self.key, starts_file=False)
                connection.execute(
                    "INSERT INTO audit_log (seq, line) VALUES (%s, %s)", (after.seq, line[:-1])
                )

    async def write_async(self, entry: dict) -> None:
        """``write`` from a thread, so that the event loop serves other requests meanwhile."""
        await in_thread(self.write, entry)

    @contextlib.contextmanager
    def _session(self) -> Iterator[psycopg.Connection]:
        """This process's connection (made again after a failure), one user at a time;
        a database error is a ``StoreWriteError`` saying why."""
        import psycopg

        with self._lock:
            try:
                if self._connection is None or self._connection.closed:
                    self._connection = connect(self.url)
                yield self._connection
            except psycopg.Error as exc:
                if self._connection is not None and self._connection.broken:
                    self._connection = None
                raise StoreWriteError(str(exc).strip().splitlines()[0]) from exc


def _head(row: tuple | None) -> Head:
    """The head after the table's last row (none: the chain's start)."""
    if row is None:
        return Head()
    sealed = unseal(bytes(row[0]))
    if sealed is None:
        raise StoreWriteError("the audit table's last row is not a sealed audit line")
    return Head(sealed.seq, sealed.mac)


def _checked(rows: list[tuple], key: bytes, name: str, anchored: bool) -> Verified:
    """Check ``rows`` (seq, line) in order; ``anchored``: the first is taken as the start
    (the rows before it are not read here)."""
    chain = Chain(key)
    if anchored:
        first = unseal(bytes(rows[0][1]))
        chain = Chain(key, Head(first.seq, first.mac) if first else None)
        rows = rows[1:]
    for seq, line in rows:
        chain.check(f"{name} row seq={seq}", bytes(line), True, starts_file=False)
    return chain.verified()


def verify_table(url: str, key: bytes) -> Verified:
    """Check the whole chain in the table at ``url`` (``riskstrat audit verify --database``),
    read in order in batches; ``ChainBrokenError`` names the first row that breaks it."""
    chain = Chain(key)
    name = database_name(url)
    with connect(url) as connection, connection.transaction():
        cursor = connection.cursor(name="audit_rows")
        cursor.execute("SELECT seq, line FROM audit_log ORDER BY seq")
        for seq, line in cursor:
            chain.check(f"{name} row seq={seq}", bytes(line), True, starts_file=False)
    return chain.verified()
