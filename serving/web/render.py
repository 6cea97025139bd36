"""Jinja2 templates (autoescaped) and the headers every page carries."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from jinja2 import Environment

from riskstrat.common.templates import html_environment
from riskstrat.models.tiers import HIGH, RISING, VERY_HIGH
from riskstrat.serving.access import Principal
from riskstrat.serving.roles import may
from riskstrat.serving.web.roles import BASE, NAV

TEMPLATES = Path(__file__).parent / "templates"
# Everything from this server; no script at all; not framed; forms post here only.
CSP = (
    "default-src 'self'; script-src 'none'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"x-frame-options", b"DENY"),
)
NO_STORE = (b"cache-control", b"no-store")
TIER_COLOURS = {VERY_HIGH: "red", HIGH: "orange", RISING: "yellow"}  # NHS tag colours


def percent(value: float | None, digits: int = 1) -> str:
    if value is None or value != value:
        return ""
    return f"{100 * value:.{digits}f}%"


def points(value: float | None) -> str:
    """A change in risk as signed percentage points ("+3.2 points")."""
    if value is None or value != value:
        return "not scored last week"
    return f"{100 * value:+.1f} points".replace("-", "\u2212")


def signed_points(value: float) -> str:
    """A change in risk in percentage points, signed, for a column headed "(points)"."""
    return f"{100 * value:+.1f}".replace("-", "\u2212")


def nav(principal: Principal | None) -> list[tuple[str, str]]:
    """The header's links for this role."""
    if principal is None:
        return []
    return [(label, path) for label, path, can in NAV if may(principal.role, can)]


@cache
def environment() -> Environment:
    return html_environment(
        TEMPLATES,
        filters={"percent": percent, "points": points, "signed_points": signed_points},
        globals_={"base": BASE, "nav": nav, "tier_colours": TIER_COLOURS},
    )


def render(name: str, **context: object) -> str:
    return environment().get_template(name).render(**context)
