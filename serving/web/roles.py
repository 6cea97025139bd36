"""What each page does, and where each role lands after signing in. Who may do what is
``serving.roles``' table, the one the API reads too."""

from __future__ import annotations

from riskstrat.serving.access import Principal
from riskstrat.serving.roles import Can, Role, may, roles_that

BASE = "/ui"  # where the pages are mounted on the service
EVALUATIONS = f"{BASE}/evaluations"  # the list; each report and its plots are below it
PAGES: dict[str, Can] = {
    BASE: Can.SEE_WEEKLY_LIST,
    f"{BASE}/list.csv": Can.SEE_WEEKLY_LIST,
    f"{BASE}/referrals": Can.FIND_REFERRALS,
    f"{BASE}/referrals.csv": Can.FIND_REFERRALS,
    f"{BASE}/patient": Can.OPEN_PERSON,  # the page itself checks localities (and explained people)
    f"{BASE}/logout": Can.SIGN_OUT,
}
# Pages that show patient data: audited like the scoring endpoints.
PATIENT_PAGES = tuple(p for p, can in PAGES.items() if can != Can.SIGN_OUT)
# Folders of pages: every path below one does what the folder does.
FOLDERS: dict[str, Can] = {EVALUATIONS: Can.READ_EVALUATION_REPORTS}
HOME = {Role.SOCIAL_PRESCRIBER.value: f"{BASE}/referrals"}
# The header's links, each shown to the roles that may open it.
NAV: tuple[tuple[str, str, Can], ...] = (
    ("Weekly list", f"{BASE}/", Can.SEE_WEEKLY_LIST),
    ("Social prescribing", f"{BASE}/referrals", Can.FIND_REFERRALS),
    ("Evaluations", EVALUATIONS, Can.READ_EVALUATION_REPORTS),
)


def home(principal: Principal) -> str:
    """Where ``principal`` lands after signing in."""
    return HOME.get(principal.role, f"{BASE}/")


def is_audited(path: str) -> bool:
    """Whether opening the page is audited: the pages with patient data, and the list of
    evaluations and each evaluation's report (not the images a report shows)."""
    if path in PATIENT_PAGES or path == EVALUATIONS:
        return True
    return path.startswith(EVALUATIONS + "/") and path.endswith("/report.html")


def page_does(path: str) -> Can | None:
    """What opening ``path`` does: from the pages' table, or from the folder it is in;
    None for an unknown page."""
    if path in PAGES:
        return PAGES[path]
    if path in FOLDERS:
        return FOLDERS[path]
    return next((can for f, can in FOLDERS.items() if path.startswith(f + "/")), None)


def allowed_roles(path: str) -> tuple[str, ...] | None:
    """The roles that may open ``path``; None for an unknown page."""
    can = page_does(path)
    return None if can is None else roles_that(can)


def page_refusal(principal: Principal, path: str) -> tuple[int, str] | None:
    """(status, message) when a signed-in principal may not open the page, else None.

    Paths in neither table (unknown pages) are left to the pages app, which answers 404.
    """
    can = page_does(path)
    if can is None or may(principal.role, can):
        return None
    return 403, f"The {principal.role.replace('_', ' ')} role cannot open this page."
