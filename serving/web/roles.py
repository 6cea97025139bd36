"""Which roles may open which page, and where each role lands after signing in."""

from __future__ import annotations

from riskstrat.serving.access import ROLES, Principal

BASE = "/ui"  # where the pages are mounted on the service
LIST_ROLES = ("locality_team", "data_scientist", "system")
REFERRAL_ROLES = ("social_prescriber", "data_scientist", "system")
EVALUATION_ROLES = ("data_scientist", "system")
EVALUATIONS = f"{BASE}/evaluations"  # the list; each report and its plots are below it
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
# Folders of pages: every path below one is open to its roles.
FOLDERS_ALLOWED: dict[str, tuple[str, ...]] = {EVALUATIONS: EVALUATION_ROLES}
HOME = {"social_prescriber": f"{BASE}/referrals"}


def home(principal: Principal) -> str:
    """Where ``principal`` lands after signing in."""
    return HOME.get(principal.role, f"{BASE}/")


def is_audited(path: str) -> bool:
    """Whether opening the page is audited: the pages with patient data, and the list of
    evaluations and each evaluation's report (not the images a report shows)."""
    if path in PATIENT_PAGES or path == EVALUATIONS:
        return True
    return path.startswith(EVALUATIONS + "/") and path.endswith("/report.html")


def allowed_roles(path: str) -> tuple[str, ...] | None:
    """The roles that may open ``path``: from the pages' table, or from the folder it is
    in; None for an unknown page."""
    if path in PAGES_ALLOWED:
        return PAGES_ALLOWED[path]
    if path in FOLDERS_ALLOWED:
        return FOLDERS_ALLOWED[path]
    return next((r for f, r in FOLDERS_ALLOWED.items() if path.startswith(f + "/")), None)


def page_refusal(principal: Principal, path: str) -> tuple[int, str] | None:
    """(status, message) when a signed-in principal may not open the page, else None.

    Paths in neither table (unknown pages) are left to the pages app, which answers 404.
    """
    allowed = allowed_roles(path)
    if allowed is None or principal.role in allowed:
        return None
    return 403, f"The {principal.role.replace('_', ' ')} role cannot open this page."
