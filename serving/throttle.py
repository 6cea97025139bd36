"""Wrong access tokens, counted so that nobody can try thousands: one throttle for the API's
bearer tokens and the sign-in form, shared by every worker and every server.

A token is 32 random bytes, so guessing one is hopeless; the throttle bounds how many guesses
anyone gets, without letting one address lock out the people who share it (an NHS trust's
staff often reach the service through one NAT address). So it counts *different* wrong
tokens, because only a different token is a new guess, and pauses in three scopes, each
while its count within ``WINDOW_SECONDS`` is at its limit:

- ``PER_TOKEN`` tries of the same wrong token from one address pause that token there (a
  script retrying a revoked token stops, its neighbours behind the same address carry on);
- ``PER_CLIENT`` different wrong tokens from one address pause every token from it;
- ``IN_ALL`` different wrong tokens from any addresses pause every token for everyone (a
  guess spread over many addresses also stops, at the price of keeping people out a while).

While paused, a token is not checked at all (a right one would tell the guesser it is right);
signed-in sessions carry on. docs/security.md argues the numbers. The failures live in the
service's ``StateStore`` (``serving.state``): client addresses and tokens stored as hashes
only, expired failures deleted.
"""

from __future__ import annotations

import hashlib
import math
import time
from dataclasses import dataclass
from enum import StrEnum

from riskstrat.serving.state import StateStore

PER_TOKEN = 10
PER_CLIENT = 30
IN_ALL = 100
WINDOW_SECONDS = 15 * 60

TABLES = (
    "CREATE TABLE IF NOT EXISTS failed_tokens"
    " (client TEXT NOT NULL, token TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS failed_tokens_by_client ON failed_tokens (client, token, at)",
    "CREATE INDEX IF NOT EXISTS failed_tokens_by_time ON failed_tokens (at)",
)
# When the newest ``limit`` different tokens (of one address, or of all) were last tried:
# the oldest of those times, if there are that many in the window.
LAST_OF_DIFFERENT = (
    "SELECT max(at) AS last FROM failed_tokens WHERE at > ? {mine}"
    " GROUP BY token ORDER BY last DESC LIMIT 1 OFFSET ?"
)
# Whether any wrong token was tried in the window (none: no pause can hold).
ANY_SINCE = "SELECT 1 FROM failed_tokens WHERE at > ? LIMIT 1"
LAST_OF_SAME = (
    "SELECT at FROM failed_tokens WHERE client = ? AND token = ? AND at > ?"
    " ORDER BY at DESC LIMIT 1 OFFSET ?"
)


class Scope(StrEnum):
    """Whom a pause holds back."""

    TOKEN = "token"
    ADDRESS = "address"
    EVERYONE = "everyone"


SENTENCES = {
    Scope.TOKEN: "This access token is wrong and was tried too many times from your address,"
    " so it is not checked",
    Scope.ADDRESS: "Too many wrong access tokens were tried from your address, so tokens from"
    " it are not checked",
    Scope.EVERYONE: "Too many wrong access tokens were tried on this service, so no token is"
    " checked",
}


@dataclass(frozen=True, slots=True)
class Pause:
    """Tokens in ``scope`` are not checked for ``seconds`` more."""

    seconds: float
    scope: Scope

    @property
    def minutes(self) -> int:
        return max(1, math.ceil(self.seconds / 60))

    def header(self) -> tuple[bytes, bytes]:
        """The ``Retry-After`` header: whole seconds, rounded up."""
        return b"retry-after", str(max(1, math.ceil(self.seconds))).encode()

    def sentence(self) -> str:
        return (
            f"{SENTENCES[self.scope]} for now. "
            f"Try again in {self.minutes} minute{'s' if self.minutes > 1 else ''}."
        )


def _hashed(text: str | None) -> str:
    return hashlib.sha256((text or "unknown").encode()).hexdigest()


class TokenThrottle:
    """Wrong tokens by client address and token (both hashed) and time, in a ``StateStore``."""

    def __init__(
        self,
        store: StateStore,
        clock=time.time,
        *,
        per_token: int = PER_TOKEN,
        per_client: int = PER_CLIENT,
        in_all: int = IN_ALL,
        window: float = WINDOW_SECONDS,
    ) -> None:
        self.store, self._clock = store, clock
        self.per_token, self.per_client, self.in_all = per_token, per_client, in_all
        self.window = window
        store.create(TABLES)

    def pause(self, client: str | None, digest: str | None = None) -> Pause | None:
        """Whether tokens are paused now for ``client`` (and the token hashing to ``digest``,
        if it brought one), and for how long: the widest pause that holds."""
        now = self._clock()
        since, mine = now - self.window, _hashed(client)
        checks = [
            (Scope.EVERYONE, LAST_OF_DIFFERENT.format(mine=""), (since, self.in_all - 1)),
            (
                Scope.ADDRESS,
                LAST_OF_DIFFERENT.format(mine="AND client = ?"),
                (since, mine, self.per_client - 1),
            ),
        ]
        if digest:
            same = (mine, _hashed(digest), since, self.per_token - 1)
            checks.append((Scope.TOKEN, LAST_OF_SAME, same))
        with self.store.transaction(write=False) as db:
            if not db.execute(ANY_SINCE, (since,)):  # the usual case: one look at an index
                return None
            for scope, sql, params in checks:
                rows = db.execute(sql, params)
                if rows:
                    return Pause(rows[0][0] + self.window - now, scope)
        return None

    def failed(self, client: str | None, digest: str) -> None:
        """Count one wrong token (hashing to ``digest``) from ``client``; forget expired ones."""
        now = self._clock()
        with self.store.transaction() as db:
            db.execute("DELETE FROM failed_tokens WHERE at <= ?", (now - self.window,))
            db.execute(
                "INSERT INTO failed_tokens (client, token, at) VALUES (?, ?, ?)",
                (_hashed(client), _hashed(digest), now),
            )
