"""One table of roles and what each may do (``serving.roles``), read by the API's access
check and the pages' gate alike: neither keeps roles of its own."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from riskstrat.serving import access
from riskstrat.serving.access import Principal, parse_principals, refusal
from riskstrat.serving.roles import MAY, ROLES, Can, Role, may, roles_that
from riskstrat.serving.web import roles as pages

SERVING = Path(__file__).resolve().parent.parent / "serving"
EVALUATION_PAGES = ("/ui/evaluations", "/ui/evaluations/x/report.html")


def test_every_role_has_a_row_and_the_access_file_accepts_exactly_those() -> None:
    assert set(MAY) == set(Role)
    assert tuple(r.value for r in Role) == ROLES
    for role in ROLES:
        places = '\nlocalities = ["North"]' if role == Role.LOCALITY_TEAM else ""
        entry = f'[[token]]\nname = "x"\nrole = "{role}"\nsha256 = "{"a" * 64}"{places}\n'
        assert [p.role for p in parse_principals(entry, "test").values()] == [role]


def test_the_api_and_the_pages_ask_the_one_table() -> None:
    for path, can in access.ENDPOINTS.items():
        assert access.ALLOWED[path] == roles_that(can)
    for path, can in pages.PAGES.items():
        assert pages.allowed_roles(path) == roles_that(can)
    for folder, can in pages.FOLDERS.items():
        assert pages.allowed_roles(f"{folder}/any/report.html") == roles_that(can)
    # The API and the pages show the same things to the same roles.
    assert access.ENDPOINTS["/v1/weekly-list"] == pages.PAGES[pages.BASE]
    assert access.ENDPOINTS["/v1/referrals"] == pages.PAGES[f"{pages.BASE}/referrals"]


def _role_literals(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.lineno, node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and node.value in ROLES
    ]


def test_no_module_of_the_service_but_the_table_names_a_role() -> None:
    named = {
        str(path.relative_to(SERVING)): found
        for path in sorted(SERVING.rglob("*.py"))
        if path.name != "roles.py" or path.parent != SERVING
        if (found := _role_literals(path))
    }
    assert named == {}


@pytest.mark.parametrize(
    ("role", "endpoints", "page_paths"),
    [
        ("system", list(access.ENDPOINTS), [*pages.PAGES, *EVALUATION_PAGES]),
        ("data_scientist", list(access.ENDPOINTS), [*pages.PAGES, *EVALUATION_PAGES]),
        (
            "social_prescriber",
            ["/v1/model", "/v1/referrals", "/v1/evaluation", "/v1/evaluations"],
            ["/ui/referrals", "/ui/referrals.csv", "/ui/patient", "/ui/logout"],
        ),
        (
            "locality_team",
            ["/v1/model", "/v1/weekly-list", "/v1/evaluation", "/v1/evaluations"],
            ["/ui", "/ui/list.csv", "/ui/patient", "/ui/logout"],
        ),
    ],
)
def test_who_may_do_what(role: str, endpoints: list[str], page_paths: list[str]) -> None:
    principal = Principal("someone", role, ("North",))
    api = {path: refusal(principal, path) is None for path in access.ENDPOINTS}
    assert api == {path: path in endpoints for path in access.ENDPOINTS}
    known = [*pages.PAGES, *EVALUATION_PAGES]
    shown = {path: pages.page_refusal(principal, path) is None for path in known}
    assert shown == {path: path in page_paths for path in known}
    # Only the social prescriber is kept to the people the weekly run explained.
    assert may(role, Can.OPEN_ANY_PERSON) == (role != "social_prescriber")


def test_an_unknown_role_may_do_nothing() -> None:
    assert [c for c in Can if may("admin", c)] == []
