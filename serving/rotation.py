"""When the audit log starts a new file (``RISKSTRAT_AUDIT_ROTATE``): by size, by day or by
month. Rotation bounds what the service checks when it starts (the whole current file) and
what an auditor is sent; the chain goes on across files.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

MIB = 1 << 20
DEFAULT = "16MiB"
_SIZE = re.compile(r"([1-9][0-9]{0,5})MiB")
# The part of an ISO date that changes at each period.
_PERIODS = {"daily": 10, "monthly": 7}


@dataclass(frozen=True, slots=True)
class Rotation:
    """Start a new file once the current one would pass ``max_bytes``, or once a line's
    date (``when``) falls in another period than the file's first line (``period``)."""

    max_bytes: int | None = None
    period: str | None = None

    @classmethod
    def parse(cls, text: str) -> Rotation:
        """``64MiB`` (any whole number of MiB), ``daily`` or ``monthly``; ``ValueError``
        for anything else."""
        if text in _PERIODS:
            return cls(period=text)
        size = _SIZE.fullmatch(text)
        if size:
            return cls(max_bytes=int(size.group(1)) * MIB)
        raise ValueError(f"must be a size such as {DEFAULT}, or daily or monthly (got {text!r})")

    def due(self, size: int, adding: int, first_when: str | None, when: str) -> bool:
        """Whether a line of ``adding`` bytes dated ``when`` goes into a new file, the
        current one holding ``size`` bytes from a first line dated ``first_when``."""
        if not size:
            return False
        if self.max_bytes is not None:
            return size + adding > self.max_bytes
        cut = _PERIODS[self.period or "daily"]
        return first_when is not None and first_when[:cut] != when[:cut]
