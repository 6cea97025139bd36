"""The roles and what each may do: the one table the API (``serving.access``) and the pages
(``serving.web.roles``) both read. An endpoint or a page names the thing it does (a
``Can``); who may do it is decided here only, so the two cannot drift apart.

Nothing but the standard library is imported, so that the command line can offer the roles
as choices without loading the service's settings (``riskstrat --help`` stays fast).
"""

from __future__ import annotations

from enum import StrEnum


class Role(StrEnum):
    """Who a token belongs to, as the access file names it."""

    SYSTEM = "system"
    DATA_SCIENTIST = "data_scientist"
    SOCIAL_PRESCRIBER = "social_prescriber"
    LOCALITY_TEAM = "locality_team"


class Can(StrEnum):
    """Something a role may do, through the API, the pages or both."""

    SCORE = "score people and read their risk history"
    SEE_MODEL = "see which model is serving"
    SEE_WEEKLY_LIST = "see the weekly list"
    FIND_REFERRALS = "find people for social prescribing"
    READ_EVALUATION_RESULTS = "read evaluations' aggregate results"
    READ_EVALUATION_REPORTS = "read evaluations' reports and plots"
    OPEN_PERSON = "open a person's page (in their localities)"
    OPEN_ANY_PERSON = "open the page of anyone in their localities, not only those explained"
    SIGN_OUT = "sign out"


EVERYONE = frozenset({Can.SEE_MODEL, Can.READ_EVALUATION_RESULTS, Can.OPEN_PERSON, Can.SIGN_OUT})
MAY: dict[Role, frozenset[Can]] = {
    Role.SYSTEM: frozenset(Can),
    Role.DATA_SCIENTIST: frozenset(Can),
    # Referral candidates only: a person's page just for those the weekly run explained.
    Role.SOCIAL_PRESCRIBER: EVERYONE | {Can.FIND_REFERRALS},
    Role.LOCALITY_TEAM: EVERYONE | {Can.SEE_WEEKLY_LIST, Can.OPEN_ANY_PERSON},
}
ROLES: tuple[str, ...] = tuple(role.value for role in Role)


def roles_that(can: Can) -> tuple[str, ...]:
    """The roles that may do ``can``, in ``ROLES`` order."""
    return tuple(role.value for role in Role if can in MAY[role])


def may(role: str, can: Can) -> bool:
    """Whether ``role`` may do ``can`` (an unknown role may do nothing)."""
    return role in ROLES and can in MAY[Role(role)]
