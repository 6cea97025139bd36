"""Failed sign-ins, counted per client address and in all, shared by the service's workers.

A token is a long random string, so guessing one is hopeless; still, nobody should be able
to try thousands a second. After ``PER_CLIENT`` wrong tokens from one address within
``WINDOW_SECONDS``, sign-in from that address pauses until the oldest of them is older than
the window; after ``IN_ALL`` wrong tokens from any addresses, sign-in pauses for everyone
(a spread-out attack also stops, at the price of keeping people out for a while). While
paused, a pasted token is not checked at all. Signed-in sessions carry on.

The failures live in the sessions' SQLite file (``ServiceSettings.sessions_file``), so that
every worker counts the same ones; addresses are stored as hashes, failures expire.
"""

from __future__ import annotations

import hashlib
import math
import sqlite3
import time
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

PER_CLIENT = 10
IN_ALL = 100
WINDOW_SECONDS = 15 * 60


@dataclass(frozen=True, slots=True)
class Pause:
    """Sign-in is paused for ``seconds`` more, for this address or (``everyone``) for all."""

    seconds: float
    everyone: bool

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))

    def sentence(self) -> str:
        who = "on this service" if self.everyone else "from your address"
        return (
            f"Too many wrong access tokens were tried {who}, so signing in is paused. "
            f"Try again in {self.minutes} minute{'s' if self.minutes > 1 else ''}."
        )


class SignInThrottle:
    """Wrong tokens by client address (hashed) and time, in a SQLite file."""

    def __init__(
        self,
        path: Path,
        clock=time.time,
        per_client: int = PER_CLIENT,
        in_all: int = IN_ALL,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.path, self._clock = path, clock
        self.per_client, self.in_all, self.window = per_client, in_all, window
        path.parent.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db, db:
            db.execute(
                "CREATE TABLE IF NOT EXISTS failed_sign_ins"
                " (client TEXT NOT NULL, at REAL NOT NULL)"
            )
            db.execute("CREATE INDEX IF NOT EXISTS failed_by_client ON failed_sign_ins (client)")

    def _connect(self) -> sqlite3.Connection:
        return sqlite3.connect(self.path, timeout=10, isolation_level="IMMEDIATE")

    @staticmethod
    def _key(client: str | None) -> str:
        return hashlib.sha256((client or "unknown").encode()).hexdigest()

    def pause(self, client: str | None) -> Pause | None:
        """Whether sign-in is paused for ``client`` now, and for how long."""
        now = self._clock()
        with closing(self._connect()) as db, db:
            db.execute("DELETE FROM failed_sign_ins WHERE at <= ?", (now - self.window,))
            everyone = db.execute("SELECT count(*), min(at) FROM failed_sign_ins").fetchone()
            mine = db.execute(
                "SELECT count(*), min(at) FROM failed_sign_ins WHERE client = ?",
                (self._key(client),),
            ).fetchone()
        if everyone[0] >= self.in_all:
            return Pause(everyone[1] + self.window - now, everyone=True)
        if mine[0] >= self.per_client:
            return Pause(mine[1] + self.window - now, everyone=False)
        return None

    def failed(self, client: str | None) -> None:
        """Count one wrong token from ``client``."""
        with closing(self._connect()) as db, db:
            db.execute(
                "INSERT INTO failed_sign_ins VALUES (?, ?)", (self._key(client), self._clock())
            )
