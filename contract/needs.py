"""What each command needs of the events table: the event kinds it cannot work without.

Real extracts rarely hold every kind (a borough without social-care data, a GP extract
without prescriptions). A command works on whatever kinds are there and reports the missing
ones as absent (features take their declared defaults, outcomes are not measured, referral
drivers cannot apply); only a kind named in ``REQUIRED_KINDS`` for a command stops it, with
one line naming the kind. The tests run every command with each kind removed against this
table, so it is the one place the rule is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import cache

import ibis.expr.types as ir

from riskstrat.common.errors import UserError
from riskstrat.contract.schema import EVENTS, EventKind
from riskstrat.contract.tables import ContractTables, unbound

REQUIRED_KINDS: dict[str, dict[EventKind, str]] = {
    "features": {},
    "train": {EventKind.EMERGENCY_ADMISSION: "the label the model learns"},
    "promote": {EventKind.EMERGENCY_ADMISSION: "the labels the challenger is tested on"},
    "weekly": {},
    "referrals": {},
    # And the kinds of the plan's primary outcome (features.outcomes.OUTCOME_KINDS): an
    # evaluation whose primary outcome cannot be counted answers nothing.
    "evaluate": {},
}
"""Per command, the event kinds without which it stops, and what each is needed for; every
other kind is optional."""

OPTIONAL_KINDS: tuple[EventKind, ...] = tuple(
    k for k in EventKind if not any(k in kinds for kinds in REQUIRED_KINDS.values())
)
"""The kinds no command requires."""


class AbsentKindError(UserError):
    """The data hold no events of a kind the command cannot work without."""


@cache
def _kinds() -> ir.Table:
    events = unbound(EVENTS.name)
    return events.select("kind").distinct()


def present_kinds(tables: ContractTables) -> frozenset[str]:
    """The event kinds with at least one event in ``tables``."""
    return frozenset(tables.run(_kinds(), keep=False)["kind"])


def absent_kinds(present: Iterable[str]) -> tuple[str, ...]:
    """The contract's event kinds not in ``present``, in the contract's order."""
    have = set(present)
    return tuple(k.value for k in EventKind if k.value not in have)


def require(needed: dict[EventKind, str], present: Iterable[str], source: str, who: str) -> None:
    """Stop with one line when a kind of ``needed`` (kind: what it is needed for) has no
    event in ``present``, the kinds of the data in ``source``; ``who`` needs them."""
    have = set(present)
    for kind, purpose in needed.items():
        if kind.value not in have:
            raise AbsentKindError(
                f"{source}: the data hold no {kind.value} events, which {who} needs for {purpose}"
            )


def require_for(command: str, present: Iterable[str], source: str) -> None:
    """Stop ``command`` when the data in ``source`` lack a kind it requires."""
    require(REQUIRED_KINDS[command], present, source, f"`riskstrat {command}`")
