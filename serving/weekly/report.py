"""A self-contained HTML report of one week's list: no scripts, no files or hosts fetched.

Rendered from ``templates/report.html``. Charts are inline SVG bar charts with their numbers
written beside the bars (readable without colour, printable, and they open on any NHS desktop
browser).
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path

import pandas as pd
from jinja2 import Environment

from riskstrat.common.templates import html_environment
from riskstrat.serving.weekly.monitoring import Monitoring

TEMPLATES = Path(__file__).parent / "templates"
CHART = {"bar": 22, "label": 280, "width": 640, "span": 640 - 280 - 60}


def cell(value: object) -> str:
    """A table cell as text: empty for missing, ``{:g}`` for floats."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


@cache
def _environment() -> Environment:
    return html_environment(TEMPLATES, filters={"cell": cell})


def report_html(
    *,
    title: str,
    summary: Sequence[tuple[str, str]],
    charts: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    drift: dict | None,
    monitoring: Monitoring | None,
    table: pd.DataFrame,
    outcome: str,
) -> str:
    """The whole page: summary, drift verdict, monitoring (the borough's), charts, and the
    list itself."""
    return (
        _environment()
        .get_template("report.html")
        .render(
            title=title,
            summary=summary,
            charts=charts,
            drift=drift,
            monitoring=monitoring,
            columns=[str(c) for c in table.columns],
            rows=list(table.itertuples(index=False)),
            outcome=outcome,
            chart=CHART,
        )
    )
