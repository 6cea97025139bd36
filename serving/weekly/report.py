"""A self-contained HTML report of one week's list: no scripts, no files or hosts fetched.

Charts are inline SVG bar charts with their numbers written beside the bars (readable
without colour, printable, and they open on any NHS desktop browser).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

import pandas as pd

_STYLE = """
body{font-family:Arial,sans-serif;color:#212b32;margin:24px;max-width:1280px}
h1{font-size:28px}h2{font-size:22px;margin-top:32px}
table{border-collapse:collapse;font-size:14px;width:100%}
th,td{border-bottom:1px solid #d8dde0;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f5}.warn{border-left:6px solid #ffeb3b;padding:8px 16px;background:#fff9c4}
.ok{border-left:6px solid #007f3b;padding:8px 16px;background:#e8f5e9}
.charts{display:flex;flex-wrap:wrap;gap:24px}
"""
_BAR, _LABEL, _WIDTH = 22, 280, 640


def bar_chart(title: str, items: Sequence[tuple[str, float]]) -> str:
    """A horizontal bar chart as inline SVG, each bar labelled with its value."""
    height = 30 + _BAR * max(len(items), 1) + 8
    top = max((v for _, v in items), default=0) or 1
    span = _WIDTH - _LABEL - 60
    rows = []
    for i, (label, value) in enumerate(items):
        y = 30 + i * _BAR
        width = span * value / top
        rows.append(
            f'<text x="{_LABEL - 8}" y="{y + 15}" text-anchor="end">{escape(label)}</text>'
            f'<rect x="{_LABEL}" y="{y + 3}" width="{width:.1f}" height="{_BAR - 6}" '
            f'fill="#005eb8"/>'
            f'<text x="{_LABEL + width + 6:.1f}" y="{y + 15}">{value:,.0f}</text>'
        )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'role="img" aria-label="{escape(title)}" font-family="Arial" font-size="13">'
        f'<text x="0" y="18" font-size="15" font-weight="bold">{escape(title)}</text>'
        f"{''.join(rows)}</svg>"
    )


def _table(frame: pd.DataFrame) -> str:
    head = "".join(f'<th scope="col">{escape(str(c))}</th>' for c in frame.columns)
    body = "".join(
        "<tr>" + "".join(f"<td>{escape(_cell(v))}</td>" for v in row) + "</tr>"
        for row in frame.itertuples(index=False)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _cell(value: object) -> str:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def report_html(
    *,
    title: str,
    summary: Sequence[tuple[str, str]],
    charts: Sequence[tuple[str, Sequence[tuple[str, float]]]],
    drift: dict | None,
    table: pd.DataFrame,
) -> str:
    """The whole page: summary, drift verdict, charts, and the list itself."""
    facts = "".join(
        f'<tr><th scope="row">{escape(k)}</th><td>{escape(v)}</td></tr>' for k, v in summary
    )
    verdict = ""
    if drift is not None:
        css = "warn" if drift.get("retrain_suggested") else "ok"
        verdict = f'<p class="{css}"><strong>Model check:</strong> {escape(drift["verdict"])}</p>'
    svg = "".join(f"<div>{bar_chart(name, items)}</div>" for name, items in charts)
    return (
        '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head><body>"
        f"<h1>{escape(title)}</h1><table>{facts}</table>{verdict}"
        f'<h2>This week at a glance</h2><div class="charts">{svg}</div>'
        f"<h2>The list ({len(table):,} people)</h2>{_table(table)}"
        "<p>Scores are calibrated probabilities of an emergency admission in the next 12 "
        "months. Reasons are the model's largest contributions for the person, in plain "
        "words; they describe the score, not the cause of an admission.</p>"
        "</body></html>\n"
    )
