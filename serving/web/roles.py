"""Which roles may open which page, and where each role lands after signing in."""

from __future__ import annotations

from serving.access import ROLES, Principal

BASE = "/ui"  # where the pages are mounted on the service
LIST_ROLES = ("locality_team", "data_scientist", "system")
REFERRAL_ROLES = ("social_prescriber", "data_scientist", "system")
PAGES_ALLOWED: dict[str, tuple[str, ...]] = {
    BASE: LIST_ROLES,
    f"{BASE}/list.csv": LIST_ROLES,
    f"{BASE}/referrals": REFERRAL_ROLES,
    f"{BASE}/referrals.csv": REFERRAL_ROLES,
    f"{BASE}/patient": ROLES,  # the page itself checks localities (and explained people)
    f"{BASE}/logout": ROLES,
}
# Pages that show patient data: audited like the scoring endpoints.
PATIENT_PAGES = tuple(p for p in PAGES_ALLOWED if not p.endswith("/logout"))
HOME = {"social_prescriber": f"{BASE}/referrals"}


def home(principal: Principal) -> str:
    """Where ``principal`` lands after signing in."""
    return HOME.get(principal.role, f"{BASE}/")


def page_refusal(principal: Principal, path: str) -> tuple[int, str] | None:
    """(status, message) when a signed-in principal may not open the page, else None.

    Paths not in the table (unknown pages) are left to the pages app, which answers 404.
    """
    allowed = PAGES_ALLOWED.get(path)
    if allowed is None or principal.role in allowed:
        return None
    return 403, f"The {principal.role.replace('_', ' ')} role cannot open this page."
