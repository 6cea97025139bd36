"""Sessions and the token throttle behave the same on each store of shared state (a SQLite
file on one machine, PostgreSQL for several servers): every test runs on both, each store
object standing for another worker or server over the same database."""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from riskstrat.serving.state import PostgresStore, SQLiteStore, StateStore
from riskstrat.serving.throttle import Pause, Scope, TokenThrottle
from riskstrat.serving.web.session import IDLE_SECONDS, LONGEST_SECONDS, SessionStore

Stores = Callable[[], StateStore]  # another store object over the same database


@pytest.fixture(params=["sqlite", "postgresql"])
def stores(request: pytest.FixtureRequest, tmp_path: Path) -> Stores:
    if request.param == "postgresql":
        url = request.getfixturevalue("postgres_url")
        return lambda: PostgresStore(url)
    return lambda: SQLiteStore(tmp_path / "state.sqlite")


def _rows(store: StateStore, table: str) -> list[tuple]:
    with store.transaction() as db:
        return db.execute(f"SELECT * FROM {table}")


# Sessions


def test_sessions_expire_when_idle_and_at_the_longest(stores: Stores) -> None:
    now = [0.0]
    store = SessionStore(stores(), clock=lambda: now[0])
    session = store.open("a" * 64)
    now[0] = IDLE_SECONDS - 1
    assert store.digest(session) == "a" * 64
    now[0] += IDLE_SECONDS + 1
    assert store.digest(session) is None
    assert store.digest("made-up") is None
    busy = store.open("c" * 64)
    for _ in range(LONGEST_SECONDS // IDLE_SECONDS):
        now[0] += IDLE_SECONDS - 1
        assert store.digest(busy) == "c" * 64
    now[0] += IDLE_SECONDS - 1
    assert store.digest(busy) is None  # used all along, but open more than 12 hours


def test_every_worker_knows_a_session_and_only_hashes_are_kept(stores: Stores) -> None:
    first, second = SessionStore(stores()), SessionStore(stores())
    session = first.open("b" * 64)
    assert second.digest(session) == "b" * 64
    assert all(session not in map(str, row) for row in _rows(first.store, "sessions"))
    second.close(session)
    assert first.digest(session) is None


def test_threads_of_one_worker_use_the_store_at_once(stores: Stores) -> None:
    """A worker's request threads each reach the store (SQLite: a connection per thread),
    while other threads write, without an error or a lost session."""
    sessions = SessionStore(stores())
    with ThreadPoolExecutor(8) as pool:
        opened = list(pool.map(lambda i: sessions.open(f"{i:064x}"), range(48)))
        found = list(pool.map(sessions.digest, opened))
        list(pool.map(sessions.close, opened[::2]))
        after = list(pool.map(sessions.digest, opened))
    assert found == [f"{i:064x}" for i in range(48)]
    assert after == [None if i % 2 == 0 else f"{i:064x}" for i in range(48)]


def test_a_failed_transaction_leaves_nothing_and_the_store_carries_on(stores: Stores) -> None:
    store = stores()
    store.create(["CREATE TABLE IF NOT EXISTS notes (text TEXT NOT NULL)"])
    with pytest.raises(ZeroDivisionError), store.transaction() as db:
        db.execute("INSERT INTO notes (text) VALUES (?)", ("half",))
        _ = 1 / 0
    with store.transaction() as db:
        db.execute("INSERT INTO notes (text) VALUES (?)", ("whole",))
    with store.transaction(write=False) as db:
        assert db.execute("SELECT text FROM notes") == [("whole",)]


def test_expired_sessions_are_deleted(stores: Stores) -> None:
    now = [0.0]
    store = SessionStore(stores(), clock=lambda: now[0])
    for _ in range(3):
        store.open("d" * 64)
    now[0] = IDLE_SECONDS + 1
    store.open("e" * 64)
    assert [row[1] for row in _rows(store.store, "sessions")] == ["e" * 64]


# The token throttle


def _throttle(stores: Stores, now: list[float]) -> TokenThrottle:
    limits = {"per_token": 2, "per_client": 3, "in_all": 5, "window": 600}
    return TokenThrottle(stores(), lambda: now[0], **limits)


def test_the_pause_is_shared_by_workers_counts_everyone_and_ends(stores: Stores) -> None:
    now = [0.0]
    first, second = _throttle(stores, now), _throttle(stores, now)
    for guess in ("g1", "g2", "g3"):
        first.failed("10.0.0.1", guess)
    assert second.pause("10.0.0.1") == Pause(600, Scope.ADDRESS)
    assert second.pause("10.0.0.1", "t-right") == Pause(600, Scope.ADDRESS)
    assert second.pause("10.0.0.2") is None
    first.failed("10.0.0.2", "g4")
    now[0] = 1
    second.failed("10.0.0.3", "g5")
    now[0] = 599
    assert first.pause("10.0.0.4") == Pause(1, Scope.EVERYONE)
    assert "Try again in 1 minute." in Pause(1, Scope.EVERYONE).sentence()
    now[0] = 600
    assert first.pause("10.0.0.4") is None  # four different tokens left in the window
    assert first.pause("10.0.0.1") is None


def test_only_a_different_token_is_a_new_guess(stores: Stores) -> None:
    """The same wrong token again and again pauses that token from that address, no more."""
    now = [0.0]
    throttle = _throttle(stores, now)
    for _ in range(10):
        throttle.failed("10.0.0.1", "revoked")
    assert throttle.pause("10.0.0.1", "revoked") == Pause(600, Scope.TOKEN)
    assert throttle.pause("10.0.0.1", "t-right") is None
    assert throttle.pause("10.0.0.1") is None
    assert throttle.pause("10.0.0.2", "revoked") is None
    now[0] = 300
    throttle.failed("10.0.0.1", "revoked")
    now[0] = 601
    assert throttle.pause("10.0.0.1", "revoked") is None  # one try left in the window
    throttle.failed("10.0.0.1", "revoked")
    assert throttle.pause("10.0.0.1", "revoked") == Pause(299, Scope.TOKEN)


def test_a_token_tried_again_stays_counted_until_its_last_try_expires(stores: Stores) -> None:
    now = [0.0]
    throttle = _throttle(stores, now)
    throttle.failed("10.0.0.1", "g1")
    now[0] = 100
    throttle.failed("10.0.0.1", "g2")
    now[0] = 200
    throttle.failed("10.0.0.1", "g3")
    throttle.failed("10.0.0.1", "g1")  # g1 again: the oldest different guess is now g2's
    assert throttle.pause("10.0.0.1") == Pause(500, Scope.ADDRESS)


def test_failures_keep_no_address_or_token_and_expire(stores: Stores) -> None:
    now = [0.0]
    throttle = _throttle(stores, now)
    throttle.failed("10.0.0.1", "f" * 64)
    now[0] = 601
    throttle.failed("10.0.0.2", "0" * 64)
    (row,) = _rows(throttle.store, "failed_tokens")
    assert "10.0.0" not in str(row) and "0" * 64 not in row
