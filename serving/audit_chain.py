"""The audit chain: every audit line sealed to the one before it, so that a line deleted,
edited, added or moved is found by whoever holds the key.

A sealed line is the entry as compact JSON with two fields added, ``seq`` (its number in the
chain, counting on across rotated files and 1 for the first) and, last, ``mac``: the
HMAC-SHA256, under the audit key, of the previous line's MAC (32 zero bytes before the
first) followed by the line's bytes up to the ``mac`` field (closed with ``}``). The first
line of a file after the first also names the MAC it chains to (``prev``), so that a later
file can be checked on its own and lines cut from the start of a file are found. The MAC is
over the bytes as written, never over JSON parsed and written again.

Without the key nobody can seal a line that verifies; deleting the last lines of the newest
file leaves a shorter chain that still verifies, which is why the service logs the head of
the chain (its last number and MAC) when it starts, and ``riskstrat audit verify`` prints it
for the custodian to note.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from riskstrat.common.errors import UserError

GENESIS = "0" * 64  # the MAC the first line chains to
MIN_KEY_BYTES = 32
_SEAL = re.compile(rb',"mac":"([0-9a-f]{64})"\}')
_SEAL_BYTES = 74  # len(',"mac":"') + 64 + len('"}')
SEALED_FIELDS = ("seq", "prev", "mac")


class AuditKeyError(UserError):
    """The audit key cannot be read or is too short; names its file."""


class ChainBrokenError(UserError):
    """The chain does not verify; names the file, the line and what is wrong with it."""


@dataclass(frozen=True, slots=True)
class Head:
    """The end of a chain: the last line's number (0 when there is none) and its MAC."""

    seq: int = 0
    mac: str = GENESIS


@dataclass(frozen=True, slots=True)
class Sealed:
    """One line taken apart: the bytes the MAC covers, its number, the MAC it names as the
    one before (file starts only), and its MAC."""

    content: bytes
    seq: int
    prev: str | None
    mac: str

    def verifies(self, before: str, key: bytes) -> bool:
        """Whether its MAC is the one the key gives after ``before``."""
        return hmac.compare_digest(self.mac, _mac(key, before, self.content))


def read_key(path: Path) -> bytes:
    """The audit key held in ``path`` (whitespace at the ends is not part of it)."""
    try:
        key = path.read_bytes().strip()
    except OSError as exc:
        raise AuditKeyError(f"{path}: cannot read the audit key ({exc.strerror or exc})") from None
    if len(key) < MIN_KEY_BYTES:
        raise AuditKeyError(
            f"{path}: the audit key has {len(key)} bytes; it needs at least {MIN_KEY_BYTES} "
            "(random ones: python -c 'import secrets; print(secrets.token_hex(32))')"
        )
    return key


def _mac(key: bytes, before: str, content: bytes) -> str:
    return hmac.new(key, bytes.fromhex(before) + content, hashlib.sha256).hexdigest()


def seal(entry: dict, head: Head, key: bytes, starts_file: bool) -> tuple[bytes, Head]:
    """``entry`` as one sealed line (newline included) after ``head``, and the new head.
    ``starts_file``: the line opens a file, so it names the MAC it chains to."""
    clash = [name for name in SEALED_FIELDS if name in entry]
    if clash:
        raise ValueError(f"an audit entry may not hold {clash}: the chain writes them")
    fields = {**entry, "seq": head.seq + 1}
    if starts_file and head.seq:
        fields["prev"] = head.mac
    content = json.dumps(fields, separators=(",", ":"), ensure_ascii=False).encode()
    mac = _mac(key, head.mac, content)
    return content[:-1] + b',"mac":"' + mac.encode() + b'"}\n', Head(head.seq + 1, mac)


def unseal(line: bytes) -> Sealed | None:
    """A line (without its newline) taken apart, or None if it is not a sealed line."""
    found = _SEAL.fullmatch(line, len(line) - _SEAL_BYTES)
    if not found or len(line) <= _SEAL_BYTES:
        return None
    content = line[: found.start()] + b"}"
    try:
        fields = json.loads(content)
    except ValueError:
        return None
    if not isinstance(fields, dict) or "mac" in fields:
        return None
    seq, prev = fields.get("seq"), fields.get("prev")
    if type(seq) is not int or seq < 1:
        return None
    if prev is not None and not (isinstance(prev, str) and re.fullmatch("[0-9a-f]{64}", prev)):
        return None
    return Sealed(content, seq, prev, found.group(1).decode())


def entry_of(line: bytes | str) -> dict:
    """The audit entry a sealed line records, without the chain's own fields (what a
    reader of the log wants); ``ValueError`` if it is not a sealed line."""
    sealed = unseal(line.encode() if isinstance(line, str) else line.rstrip(b"\n"))
    if sealed is None:
        raise ValueError("not a sealed audit line")
    fields = json.loads(sealed.content)
    return {k: v for k, v in fields.items() if k not in SEALED_FIELDS}


def lines_of(path: Path) -> Iterator[tuple[int, bytes, bool]]:
    """Each line of ``path``: its number (from 1), its bytes without the newline, and
    whether it had one (only a torn last line has not)."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            yield number, raw.rstrip(b"\n"), raw.endswith(b"\n")


@dataclass(frozen=True, slots=True)
class Verified:
    """A chain that verifies: how many lines, the first line's number, and the head."""

    lines: int
    first: int
    head: Head

    def summary(self) -> str:
        """One line for the command and the service's log."""
        if not self.lines:
            return "no audit lines"
        span = f"records {self.first}-{self.head.seq}"
        trust = (
            f"; record {self.first} chains to record {self.first - 1} in an earlier file not "
            "given here"
            if self.first > 1
            else ""
        )
        return f"{self.lines} audit lines verify ({span}{trust}); head MAC {self.head.mac}"


class Chain:
    """Walks sealed lines in order, across files, checking each against the one before.

    ``check`` raises ``ChainBrokenError`` naming the first line that is torn, not sealed,
    out of order, after missing lines, or edited (its MAC does not match)."""

    def __init__(self, key: bytes, head: Head | None = None) -> None:
        self.key = key
        self.head = head  # None: nothing read yet, the first line says where it starts
        self.lines = 0
        self.first = 0

    def check(self, where: str, line: bytes, whole: bool, starts_file: bool) -> Sealed:
        """Check one line (``where`` names it: file and line number) and move on to it."""
        sealed = unseal(line) if whole else None
        if sealed is None:
            what = "is torn (no newline at its end)" if not whole else "is not a sealed audit line"
            raise ChainBrokenError(f"{where} {what}{_unsealed_hint(line)}")
        before = self._before(where, sealed, starts_file)
        if not sealed.verifies(before.mac, self.key):
            raise ChainBrokenError(
                f"{where} (record {sealed.seq}) was edited, or sealed with another key: its "
                "MAC does not match"
            )
        self.head = Head(sealed.seq, sealed.mac)
        self.lines += 1
        self.first = self.first or sealed.seq
        return sealed

    def _before(self, where: str, sealed: Sealed, starts_file: bool) -> Head:
        """The head this line must chain to, or ``ChainBrokenError`` if it is out of place."""
        if self.head is None:  # the first line given: it says where it starts
            if sealed.seq == 1:
                return Head()
            if sealed.prev is None:
                raise ChainBrokenError(
                    f"{where} is record {sealed.seq} but does not start a file: records "
                    f"before it are missing"
                )
            return Head(sealed.seq - 1, sealed.prev)
        expected = self.head.seq + 1
        if sealed.seq > expected:
            gap = f"{expected}" if sealed.seq == expected + 1 else f"{expected}-{sealed.seq - 1}"
            raise ChainBrokenError(f"{where}: record {gap} is missing before it")
        if sealed.seq < expected:
            raise ChainBrokenError(
                f"{where} is record {sealed.seq} after record {self.head.seq}: lines were "
                "moved or repeated"
            )
        if starts_file and sealed.prev != self.head.mac:
            raise ChainBrokenError(f"{where} does not chain to the end of the file before it")
        return self.head

    def verified(self) -> Verified:
        return Verified(self.lines, self.first, self.head or Head())


def _unsealed_hint(line: bytes) -> str:
    """Why a whole line may not be sealed: an audit log from before the chain."""
    try:
        fields = json.loads(line)
    except ValueError:
        return ""
    if isinstance(fields, dict) and "mac" not in fields:
        return (
            " (an audit log written before the chain? keep it, move it aside and start a new one)"
        )
    return ""


def verify_files(paths: Iterable[Path], key: bytes) -> Verified:
    """Check the chain through ``paths`` in order (a log and the files rotated from it,
    oldest first); ``ChainBrokenError`` names the first line that breaks it."""
    chain = Chain(key)
    for path in paths:
        try:
            for number, line, whole in lines_of(path):
                chain.check(f"{path} line {number}", line, whole, starts_file=number == 1)
        except OSError as exc:
            raise ChainBrokenError(f"{path}: cannot read it ({exc.strerror or exc})") from None
    return chain.verified()
